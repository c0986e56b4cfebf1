#ifndef BP_LIB_SDNOTIFY_H
#define BP_LIB_SDNOTIFY_H

#include "lib/err.h"

/* Tells the service manager about the service's state: the sd_notify(3) protocol, without
 * libsystemd. When $NOTIFY_SOCKET names a unix datagram socket (a path, or "@name" in the
 * abstract namespace), state ("READY=1\nSTATUS=...", newline-separated assignments) is sent to
 * it as one datagram. Without $NOTIFY_SOCKET (not started by systemd, or not Type=notify) it
 * does nothing and returns BP_OK. Returns BP_ERR_IO when the socket cannot be reached; the
 * caller decides whether that matters (for a notify service it shows as a start timeout). */
bp_err bp_sdnotify(const char *state);

/* The same with printf formatting; the text is cut at 1 KiB. */
bp_err bp_sdnotifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif

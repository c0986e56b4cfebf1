#ifndef BP_LIB_TLSSOCK_H
#define BP_LIB_TLSSOCK_H

/* OpenSSL over our non-blocking sockets, shared by the two sides that speak TLS: the listener's
 * connections (http/tls.c) and Core's (upstream/tls.c). */

#include <openssl/bio.h>

#include "lib/err.h"

/* Initialises OpenSSL once for the process (any thread, any number of times); BP_ERR_IO when it
 * cannot. */
bp_err bp_tlssock_init(void);

/* A BIO on fd (not closed with the BIO) that writes with send(..., MSG_NOSIGNAL): OpenSSL's own
 * socket BIO writes with write(2), which raises SIGPIPE on a connection the peer reset, and
 * neither side may depend on the process ignoring it. NULL when out of memory. Needs
 * bp_tlssock_init. */
BIO *bp_tlssock_bio(int fd);

#endif

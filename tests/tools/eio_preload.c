/* Injects I/O errors for the store fault tests (issue 11, item 10): preloaded into blnkproxy
 * (LD_PRELOAD), it fails write(2), pwrite(2), writev(2), fsync(2) and fdatasync(2) with EIO on
 * files whose path contains a rule's text while the rule's flag file exists, so a test switches
 * the fault on and off by creating and deleting files. Rules come from BP_EIO_RULES:
 * "FLAG=TEXT;FLAG=TEXT". Everything else (sockets, pipes, other files) is untouched. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static bool
path_of(int fd, char *out, size_t cap)
{
    char link[64];
    ssize_t n;

    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, out, cap - 1);
    if (n <= 0 || out[0] != '/') {
        return false; /* a socket, a pipe, an anonymous file */
    }
    out[n] = '\0';
    return true;
}

static bool
should_fail(int fd)
{
    const char *rules = getenv("BP_EIO_RULES");
    char path[4096];
    char rule[8192];

    if (rules == NULL || !path_of(fd, path, sizeof(path))) {
        return false;
    }
    while (*rules != '\0') {
        const char *end = strchr(rules, ';');
        size_t len = end != NULL ? (size_t)(end - rules) : strlen(rules);
        char *eq;
        if (len < sizeof(rule)) {
            memcpy(rule, rules, len);
            rule[len] = '\0';
            eq = strchr(rule, '=');
            if (eq != NULL) {
                *eq = '\0';
                if (strstr(path, eq + 1) != NULL && access(rule, F_OK) == 0) {
                    return true;
                }
            }
        }
        rules += len;
        if (*rules == ';') {
            rules++;
        }
    }
    return false;
}

#define NEXT(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

ssize_t
write(int fd, const void *buf, size_t n)
{
    if (should_fail(fd)) {
        errno = EIO;
        return -1;
    }
    return NEXT(write)(fd, buf, n);
}

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (should_fail(fd)) {
        errno = EIO;
        return -1;
    }
    return NEXT(pwrite)(fd, buf, n, off);
}

ssize_t
pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
    if (should_fail(fd)) {
        errno = EIO;
        return -1;
    }
    return NEXT(pwrite64)(fd, buf, n, off);
}

ssize_t
writev(int fd, const struct iovec *iov, int n)
{
    if (should_fail(fd)) {
        errno = EIO;
        return -1;
    }
    return NEXT(writev)(fd, iov, n);
}

int
fsync(int fd)
{
    if (should_fail(fd)) {
        errno = EIO;
        return -1;
    }
    return NEXT(fsync)(fd);
}

int
fdatasync(int fd)
{
    if (should_fail(fd)) {
        errno = EIO;
        return -1;
    }
    return NEXT(fdatasync)(fd);
}

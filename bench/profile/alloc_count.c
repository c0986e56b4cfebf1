/* alloc_count.so: counts heap allocations in the process it is preloaded into, for the
 * per-request profile (bench/profile/run.sh). LD_PRELOAD it; send SIGUSR2 and it writes
 * "malloc calloc realloc free" counts (since start) as one line to $ALLOC_COUNT_FILE.
 * Counts every thread's calls, the loop's, the audit writer's and the libraries' alike. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static atomic_ulong n_malloc;
static atomic_ulong n_calloc;
static atomic_ulong n_realloc;
static atomic_ulong n_free;

void *
malloc(size_t n)
{
    atomic_fetch_add_explicit(&n_malloc, 1, memory_order_relaxed);
    return __libc_malloc(n);
}

void *
calloc(size_t a, size_t b)
{
    atomic_fetch_add_explicit(&n_calloc, 1, memory_order_relaxed);
    return __libc_calloc(a, b);
}

void *
realloc(void *p, size_t n)
{
    atomic_fetch_add_explicit(&n_realloc, 1, memory_order_relaxed);
    return __libc_realloc(p, n);
}

void
free(void *p)
{
    if (p != NULL) {
        atomic_fetch_add_explicit(&n_free, 1, memory_order_relaxed);
    }
    __libc_free(p);
}

int
posix_memalign(void **out, size_t align, size_t n)
{
    void *p;
    atomic_fetch_add_explicit(&n_malloc, 1, memory_order_relaxed);
    p = __libc_memalign(align, n);
    if (p == NULL) {
        return 12;
    }
    *out = p;
    return 0;
}

static size_t
put_num(char *out, unsigned long v)
{
    char tmp[24];
    size_t n = 0;
    size_t k = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    while (n > 0) {
        out[k++] = tmp[--n];
    }
    return k;
}

static void
dump(int sig)
{
    const char *path = getenv("ALLOC_COUNT_FILE");
    char line[128];
    size_t len = 0;
    int fd;
    (void)sig;

    if (path == NULL) {
        return;
    }
    len += put_num(line + len, atomic_load(&n_malloc));
    line[len++] = ' ';
    len += put_num(line + len, atomic_load(&n_calloc));
    line[len++] = ' ';
    len += put_num(line + len, atomic_load(&n_realloc));
    line[len++] = ' ';
    len += put_num(line + len, atomic_load(&n_free));
    line[len++] = '\n';
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
        ssize_t ignored = write(fd, line, len);
        (void)ignored;
        close(fd);
    }
}

__attribute__((constructor)) static void
init(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = dump;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, NULL);
}

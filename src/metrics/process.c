/* The standard process metrics of the Prometheus client libraries (process_cpu_seconds_total,
 * process_resident_memory_bytes, process_virtual_memory_bytes, process_open_fds,
 * process_max_fds, process_start_time_seconds), read from /proc/self as they do.
 *
 * Read at each scrape on the thread that renders (a loop thread): procfs answers from kernel
 * memory, without disk I/O, so the read does not block the way a file write could. Counting
 * /proc/self/fd walks one directory entry per open descriptor; at max_connections (10,000 by
 * default) that is a few milliseconds per scrape, once per scrape interval. A value procfs does
 * not give (no /proc mounted, e.g. in a bare chroot) is left out of the exposition rather than
 * reported as 0. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "metrics/metrics-int.h"

/* The fields of /proc/self/stat after "pid (comm) ", counted from field 3 (state) as index 0;
 * see proc(5). */
enum { STAT_UTIME = 11, STAT_STIME = 12, STAT_STARTTIME = 19, STAT_VSIZE = 20, STAT_RSS = 21, STAT_FIELDS };

/* Splits /proc/self/stat into its numeric fields after the command name, which may itself hold
 * spaces and parentheses: the fields start after the last ')'. */
static bool
read_stat(unsigned long long out[STAT_FIELDS])
{
    char buf[1024];
    ssize_t n;
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    char *p;

    if (fd < 0) {
        return false;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return false;
    }
    buf[n] = '\0';
    p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ') {
        return false;
    }
    p += 2;
    for (int i = 0; i < STAT_FIELDS; i++) {
        char *end;
        if (i == 0) {
            out[i] = 0; /* the state letter */
            end = strchr(p, ' ');
            if (end == NULL) {
                return false;
            }
        } else {
            out[i] = strtoull(p, &end, 10);
            if (end == p) {
                return false;
            }
        }
        p = end;
        while (*p == ' ') {
            p++;
        }
    }
    return true;
}

static long
clock_ticks(void)
{
    long t = sysconf(_SC_CLK_TCK);
    return t > 0 ? t : 100;
}

void
bp_metrics__process_read(struct bp_metrics__process *out)
{
    unsigned long long f[STAT_FIELDS];
    struct rlimit rl;
    DIR *d;

    memset(out, 0, sizeof(*out));
    if (read_stat(f)) {
        long page = sysconf(_SC_PAGESIZE);
        out->has_stat = true;
        out->cpu_us = (f[STAT_UTIME] + f[STAT_STIME]) * 1000000ULL / (unsigned long long)clock_ticks();
        out->rss_bytes = f[STAT_RSS] * (unsigned long long)(page > 0 ? page : 4096);
        out->vsize_bytes = f[STAT_VSIZE];
    }
    d = opendir("/proc/self/fd");
    if (d != NULL) {
        const struct dirent *e;
        uint64_t n = 0;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] != '.') {
                n++;
            }
        }
        closedir(d);
        /* Not counting the descriptor that read the directory. */
        out->open_fds = n > 0 ? n - 1 : 0;
        out->has_fds = true;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        out->max_fds = (uint64_t)rl.rlim_cur;
        out->has_max_fds = true;
    }
}

int64_t
bp_metrics__process_start_us(void)
{
    unsigned long long f[STAT_FIELDS];
    unsigned long long btime = 0;
    char line[256];
    FILE *st;

    if (!read_stat(f)) {
        return 0;
    }
    /* starttime counts clock ticks since boot; btime is the boot time in Unix seconds. */
    st = fopen("/proc/stat", "re");
    if (st == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), st) != NULL) {
        if (strncmp(line, "btime ", 6) == 0) {
            btime = strtoull(line + 6, NULL, 10);
            break;
        }
    }
    fclose(st);
    if (btime == 0) {
        return 0;
    }
    return (int64_t)(btime * 1000000ULL + f[STAT_STARTTIME] * 1000000ULL / (unsigned long long)clock_ticks());
}

/* Runs a program under the sandbox of packaging/blnkproxy.service that seccomp enforces, for
 * tests/integration/seccomp.test.mjs (this machine has systemd's tools but no running systemd):
 *
 *   bp_seccomp_exec [--protect-system] [--proc-subset] [--user UID:GID] [--allow FILE]
 *                   [--families unix,inet,inet6] [--mdwe] -- PROGRAM ARG...
 *
 *   --protect-system  ProtectSystem=strict with PrivateTmp=, approximately: in a new mount
 *               namespace the whole tree is read-only except /tmp, /var/tmp and /dev (under the
 *               unit, /tmp and /var/tmp are the service's private ones, and its state directory
 *               is writable: the test keeps the store under /tmp)
 *   --proc-subset  ProcSubset=pid and ProtectProc=invisible: /proc is remounted with subset=pid
 *               and hidepid=invisible (no /proc/stat, no other users' processes)
 *   --user      drops to UID:GID first (User=/Group=: SQLite, for one, acts differently as root)
 *   --allow     SystemCallFilter=: only the system calls named in FILE (one per line, as the test
 *               expands the unit's groups with `systemd-analyze syscall-filter`); any other call
 *               kills the process (stricter than the unit's SystemCallErrorNumber=EPERM, so that
 *               the test sees every call outside the list instead of an error the program might
 *               hide)
 *   --families  RestrictAddressFamilies=: socket() of another family fails with EAFNOSUPPORT
 *   --mdwe      MemoryDenyWriteExecute=: writable and executable mappings fail with EPERM
 *
 * The filters are built as systemd builds them (seccomp-util.c), each loaded on its own; the
 * kernel applies the strictest answer of all loaded filters. no_new_privs is set, as
 * NoNewPrivileges= (and any SystemCallFilter=) sets it. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static int
fail(const char *what, int rc)
{
    fprintf(stderr, "bp_seccomp_exec: %s: %s\n", what, strerror(rc < 0 ? -rc : rc));
    return 126;
}

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

struct attr {
    unsigned long long set;
    unsigned long long clr;
    unsigned long long propagation;
    unsigned long long userns_fd;
};

/* mount_setattr(2) on a whole subtree (glibc 2.36 has no wrapper). */
static int
set_rdonly(const char *path, bool rdonly)
{
    struct attr a = {.set = rdonly ? MOUNT_ATTR_RDONLY : 0, .clr = rdonly ? 0 : MOUNT_ATTR_RDONLY};
    return (int)syscall(SYS_mount_setattr, AT_FDCWD, path, AT_RECURSIVE, &a, sizeof(a));
}

static int
sandbox_mounts(bool protect_system, bool proc_subset)
{
    static const char *const writable[] = {"/tmp", "/var/tmp", "/dev"};

    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        return fail("a private mount namespace", errno);
    }
    if (protect_system) {
        /* Each writable path becomes a mount of its own, then everything turns read-only, then
         * those are made writable again. */
        for (size_t i = 0; i < sizeof(writable) / sizeof(writable[0]); i++) {
            if (mount(writable[i], writable[i], NULL, MS_BIND | MS_REC, NULL) != 0) {
                return fail(writable[i], errno);
            }
        }
        if (set_rdonly("/", true) != 0) {
            return fail("read-only /", errno);
        }
        for (size_t i = 0; i < sizeof(writable) / sizeof(writable[0]); i++) {
            if (set_rdonly(writable[i], false) != 0) {
                return fail(writable[i], errno);
            }
        }
    }
    if (proc_subset && mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                             "subset=pid,hidepid=invisible") != 0) {
        return fail("/proc with subset=pid", errno);
    }
    return 0;
}

static int
drop_user(const char *spec)
{
    char *end;
    unsigned long uid = strtoul(spec, &end, 10);
    unsigned long gid;

    if (*end != ':') {
        fprintf(stderr, "bp_seccomp_exec: --user wants UID:GID\n");
        return 2;
    }
    gid = strtoul(end + 1, NULL, 10);
    if (setgroups(0, NULL) != 0 || setgid((gid_t)gid) != 0 || setuid((uid_t)uid) != 0) {
        return fail("dropping to --user", errno);
    }
    return 0;
}

static int
load_allow_list(const char *file)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
    char name[128];
    FILE *f = fopen(file, "r");
    int rc = 0;
    int allowed = 0;

    if (ctx == NULL || f == NULL) {
        return fail(file, errno);
    }
    while (fscanf(f, "%127s", name) == 1) {
        int nr = seccomp_syscall_resolve_name(name);
        if (nr == __NR_SCMP_ERROR) {
            continue; /* a call of another architecture (the groups name every arch's) */
        }
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
        if (rc != 0 && rc != -EEXIST) {
            fclose(f);
            return fail(name, rc);
        }
        allowed++;
    }
    fclose(f);
    if (allowed == 0) {
        fprintf(stderr, "bp_seccomp_exec: %s names no system call of this architecture\n", file);
        return 2;
    }
    rc = seccomp_load(ctx);
    seccomp_release(ctx);
    return rc == 0 ? 0 : fail("loading the allow-list", rc);
}

static int
family_of(const char *name)
{
    if (strcmp(name, "unix") == 0) {
        return AF_UNIX;
    }
    if (strcmp(name, "inet") == 0) {
        return AF_INET;
    }
    if (strcmp(name, "inet6") == 0) {
        return AF_INET6;
    }
    return -1;
}

/* As systemd: socket() with a family above the largest allowed one, or with any family at or
 * below it that is not allowed, fails with EAFNOSUPPORT. */
static int
load_families(const char *list)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    char copy[128];
    int allowed[16];
    int n = 0;
    int max = 0;
    char *save = NULL;
    int rc;

    snprintf(copy, sizeof(copy), "%s", list);
    for (char *w = strtok_r(copy, ",", &save); w != NULL && n < 16; w = strtok_r(NULL, ",", &save)) {
        allowed[n] = family_of(w);
        if (allowed[n] < 0) {
            fprintf(stderr, "bp_seccomp_exec: unknown family %s\n", w);
            return 2;
        }
        max = allowed[n] > max ? allowed[n] : max;
        n++;
    }
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
                          SCMP_A0(SCMP_CMP_GT, (scmp_datum_t)max));
    for (int fam = 0; rc == 0 && fam < max; fam++) {
        bool ok = false;
        for (int i = 0; i < n; i++) {
            ok = ok || allowed[i] == fam;
        }
        if (!ok) {
            rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
                                  SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)fam));
        }
    }
    if (rc == 0) {
        rc = seccomp_load(ctx);
    }
    seccomp_release(ctx);
    return rc == 0 ? 0 : fail("loading the address family filter", rc);
}

/* As systemd: no mapping both writable and executable, no making memory executable later. */
static int
load_mdwe(void)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    int rc;

    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(mmap), 1,
                          SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC | PROT_WRITE, PROT_EXEC | PROT_WRITE));
    if (rc == 0) {
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(mprotect), 1,
                              SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC));
    }
    if (rc == 0) {
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(pkey_mprotect), 1,
                              SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC));
    }
    if (rc == 0) {
        rc = seccomp_load(ctx);
    }
    seccomp_release(ctx);
    return rc == 0 ? 0 : fail("loading the write-execute filter", rc);
}

int
main(int argc, char **argv)
{
    const char *user = NULL;
    const char *allow = NULL;
    const char *families = NULL;
    bool mdwe = false;
    bool protect_system = false;
    bool proc_subset = false;
    int i = 1;
    int rc;

    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--user") == 0 && i + 1 < argc) {
            user = argv[++i];
        } else if (strcmp(argv[i], "--allow") == 0 && i + 1 < argc) {
            allow = argv[++i];
        } else if (strcmp(argv[i], "--families") == 0 && i + 1 < argc) {
            families = argv[++i];
        } else if (strcmp(argv[i], "--mdwe") == 0) {
            mdwe = true;
        } else if (strcmp(argv[i], "--protect-system") == 0) {
            protect_system = true;
        } else if (strcmp(argv[i], "--proc-subset") == 0) {
            proc_subset = true;
        } else {
            fprintf(stderr, "bp_seccomp_exec: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (i + 1 >= argc) {
        fprintf(stderr, "usage: bp_seccomp_exec [--protect-system] [--proc-subset] [--user UID:GID] "
                        "[--allow FILE] [--families LIST] [--mdwe] -- PROGRAM ARG...\n");
        return 2;
    }
    /* Mounts first (they need root), then the user, then the filters: as systemd orders them. */
    rc = protect_system || proc_subset ? sandbox_mounts(protect_system, proc_subset) : 0;
    if (rc == 0 && user != NULL) {
        rc = drop_user(user);
    }
    /* The narrower filters first: once the allow-list is loaded, seccomp() itself is a call
     * the program may not make (it is not in @system-service). */
    if (rc == 0 && families != NULL) {
        rc = load_families(families);
    }
    if (rc == 0 && mdwe) {
        rc = load_mdwe();
    }
    if (rc == 0 && allow != NULL) {
        rc = load_allow_list(allow);
    }
    if (rc != 0) {
        return rc;
    }
    execvp(argv[i + 1], argv + i + 1);
    return fail(argv[i + 1], errno);
}

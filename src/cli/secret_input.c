/* Secrets given to the CLI (a Core secret key, an operator password) come only from a file or an
 * environment variable, never from argv where `ps` and shell history would keep them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli-int.h"
#include "lib/alloc.h"
#include "lib/secret.h"

#define SECRET_MAX_LEN 4096

/* header_safe: the secret becomes an HTTP header value, so visible ASCII only and nothing can
 * split the header. Otherwise (passwords) any byte but control characters. */
static bool
secret_is_valid(const char *s, size_t len, bool header_safe)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (header_safe ? (ch < 0x21 || ch > 0x7e) : (ch < 0x20 || ch == 0x7f)) {
            return false;
        }
    }
    return true;
}

static const char *
rule(bool header_safe)
{
    return header_safe ? "visible ASCII characters" : "characters without control characters";
}

/* The file's content without one trailing "\n" or "\r\n". */
static int
read_file(const char *flag, const char *path, bool header_safe, char **out, size_t *out_len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;
    bool too_big;

    if (f == NULL) {
        bp_cli__error("cannot read %s %s: %s", flag, path, strerror(errno));
        return BP_CLI_EXIT_USAGE;
    }
    buf = bp_malloc(SECRET_MAX_LEN + 3);
    n = fread(buf, 1, SECRET_MAX_LEN + 3, f);
    too_big = n == SECRET_MAX_LEN + 3;
    if (ferror(f)) {
        bp_cli__error("cannot read %s %s", flag, path);
        fclose(f);
        bp_wipe(buf, SECRET_MAX_LEN + 3);
        bp_free(buf);
        return BP_CLI_EXIT_USAGE;
    }
    fclose(f);
    if (!too_big && n > 0 && buf[n - 1] == '\n') {
        n--;
        if (n > 0 && buf[n - 1] == '\r') {
            n--;
        }
    }
    if (too_big || n > SECRET_MAX_LEN || n == 0 || !secret_is_valid(buf, n, header_safe)) {
        bp_cli__error("%s %s: the secret must be 1..%d %s (one trailing newline is ignored)", flag, path,
                      SECRET_MAX_LEN, rule(header_safe));
        bp_wipe(buf, SECRET_MAX_LEN + 3);
        bp_free(buf);
        return BP_CLI_EXIT_USAGE;
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return BP_CLI_EXIT_OK;
}

static int
read_env(const char *flag, const char *var, bool header_safe, char **out, size_t *out_len)
{
    const char *val = var[0] != '\0' ? getenv(var) : NULL;
    size_t n;

    if (val == NULL || val[0] == '\0') {
        bp_cli__error("%s: environment variable %.100s is unset or empty", flag, var);
        return BP_CLI_EXIT_USAGE;
    }
    n = strlen(val);
    if (n > SECRET_MAX_LEN || !secret_is_valid(val, n, header_safe)) {
        bp_cli__error("%s %.100s: the secret must be 1..%d %s", flag, var, SECRET_MAX_LEN, rule(header_safe));
        return BP_CLI_EXIT_USAGE;
    }
    *out = bp_memdup(val, n + 1);
    *out_len = n;
    return BP_CLI_EXIT_OK;
}

int
bp_cli__read_secret(const struct bp_cli_flag *file, const struct bp_cli_flag *env, bool header_safe, char **out,
                    size_t *out_len)
{
    if (file->seen && env->seen) {
        bp_cli__error("use only one of %s and %s", file->name, env->name);
        return BP_CLI_EXIT_USAGE;
    }
    if (file->seen) {
        return read_file(file->name, file->value, header_safe, out, out_len);
    }
    if (env->seen) {
        return read_env(env->name, env->value, header_safe, out, out_len);
    }
    return BP_CLI_EXIT_OK;
}

/* Configuration loading for `serve` (DESIGN §7).
 *
 * Purpose: turn defaults, one JSON file, BLNKPROXY_* variables and flags into one struct
 * bp_config, applied in that order so later sources override earlier ones. Every value goes
 * through the settings table in settings.c, so a setting has the same syntax and bounds
 * wherever it comes from, and every error names where the bad value came from.
 *
 * Threads and lifecycle: runs once on the main thread before any other thread starts; reads the
 * environment and the file and returns. The result is immutable afterwards; nothing here opens
 * sockets or databases.
 *
 * Invariant: unknown flags and unknown JSON keys are errors. A typo in a limit or timeout must
 * not silently leave the default in place. */

#include "config/config.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/settings-int.h"
#include "core/log.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/str.h"

/* A config file is a few hundred bytes; anything near this is a mistake (wrong path). */
#define CONFIG_FILE_MAX (1024 * 1024)

struct flag_value {
    const struct bp_setting *setting;
    const char *value;
};

static void fail(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
fail(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || err_len == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* Renders attacker-shaped text (JSON keys, argv) safely and briefly for an error message. */
static const char *
printable(const char *s, size_t len, char *buf, size_t cap)
{
    bp_json_escape(buf, cap, s, len);
    return buf;
}

/* Turns a JSON value into the text form the table parsers take. Numbers are accepted where a
 * number makes sense: integers for counts, sizes and durations (seconds), fractions only for
 * durations. Returns false when the JSON type cannot be the setting's value. */
static bool
json_value_text(const struct bp_setting *s, json_t *v, char *buf, size_t cap, const char **out)
{
    int n;

    if (s->type == BP_SETTING_BOOL) {
        /* A boolean is a JSON true or false, not the string "true". */
        if (!json_is_boolean(v)) {
            return false;
        }
        *out = json_is_true(v) ? "true" : "false";
        return true;
    }
    if (json_is_string(v)) {
        *out = json_string_value(v);
        return true;
    }
    if (s->type != BP_SETTING_INT && s->type != BP_SETTING_SIZE && s->type != BP_SETTING_DURATION) {
        return false;
    }
    if (json_is_integer(v)) {
        n = snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_real(v) && s->type == BP_SETTING_DURATION) {
        double d = json_real_value(v);
        /* Negative or huge values fail the duration parser; %.9f keeps what it can use. */
        if (!isfinite(d) || d < 0 || d > 1e15) {
            return false;
        }
        n = snprintf(buf, cap, "%.9f", d);
    } else {
        return false;
    }
    if (n < 0 || (size_t)n >= cap) {
        return false;
    }
    *out = buf;
    return true;
}

/* Sections: objects whose members are settings named "<section>.<member>". Taken from the
 * table, so a new "<section>.x" row needs nothing here (health.* once did). */
static bool
is_section(const char *key)
{
    size_t len = strlen(key);

    for (size_t i = 0; i < bp_config__n_settings; i++) {
        const char *k = bp_config__settings[i].key;
        if (strncmp(k, key, len) == 0 && k[len] == '.') {
            return true;
        }
    }
    return false;
}

/* Applies the members of obj; section is NULL at the top level, else the object's key.
 * jansson keeps insertion order, so the first bad key in the file is the one reported. */
static bp_err
apply_members(json_t *obj, const char *section, const char *source, struct bp_config *c, char *err,
              size_t err_len)
{
    for (void *it = json_object_iter(obj); it != NULL; it = json_object_iter_next(obj, it)) {
        const char *member = json_object_iter_key(it);
        json_t *value = json_object_iter_value(it);
        char key[128];
        char keybuf[80];
        char numbuf[64];
        char why[256];
        const struct bp_setting *s;
        const char *vtext;
        bp_err rc;

        if (section == NULL && strcmp(member, "routes") == 0) {
            rc = bp_config__load_routes(value, source, c, err, err_len);
            if (rc != BP_OK) {
                return rc;
            }
            continue;
        }
        if (section == NULL && is_section(member)) {
            if (!json_is_object(value)) {
                fail(err, err_len, "%s: key \"%s\": must be an object", source, member);
                return BP_ERR_INVALID;
            }
            rc = apply_members(value, member, source, c, err, err_len);
            if (rc != BP_OK) {
                return rc;
            }
            continue;
        }
        if (section != NULL) {
            int n = snprintf(key, sizeof(key), "%s.%s", section, member);
            s = n > 0 && (size_t)n < sizeof(key) ? bp_config__find_key(key) : NULL;
        } else {
            /* A dotted name at the top level is not a spelling the file accepts. */
            s = strchr(member, '.') == NULL ? bp_config__find_key(member) : NULL;
        }
        if (s == NULL) {
            printable(member, strlen(member), keybuf, sizeof(keybuf));
            if (section != NULL) {
                fail(err, err_len, "%s: unknown key \"%s.%s\"", source, section, keybuf);
            } else {
                fail(err, err_len, "%s: unknown key \"%s\"", source, keybuf);
            }
            return BP_ERR_INVALID;
        }
        if (!json_value_text(s, value, numbuf, sizeof(numbuf), &vtext)) {
            bp_config__describe(s, why, sizeof(why));
            rc = BP_ERR_INVALID;
        } else {
            rc = bp_config__set_text(s, vtext, c, why, sizeof(why));
        }
        if (rc != BP_OK) {
            fail(err, err_len, "%s: key \"%s\": %s", source, s->key, why);
            return rc;
        }
    }
    return BP_OK;
}

bp_err
bp_config__load_json_text(const char *text, size_t len, const char *source, struct bp_config *c, char *err,
                          size_t err_len)
{
    json_error_t jerr;
    json_t *root;
    bp_err rc = BP_OK;

    /* DESIGN §7: a key given twice is a mistake in a hand-edited file; say so. */
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        fail(err, err_len, "%s:%d: %s", source, jerr.line, jerr.text);
        return BP_ERR_INVALID;
    }
    if (!json_is_object(root)) {
        fail(err, err_len, "%s: expected a JSON object at the top level", source);
        rc = BP_ERR_INVALID;
        goto done;
    }
    rc = apply_members(root, NULL, source, c, err, err_len);
done:
    json_decref(root);
    return rc;
}

/* Reads and applies one config file. who names the source that asked for it ("--config",
 * "BLNKPROXY_CONFIG") or is NULL for the optional default file, which may be absent. */
static bp_err
load_file(const char *path, const char *who, struct bp_config *c, char *err, size_t err_len)
{
    FILE *f;
    char *text = NULL;
    size_t len;
    const char *source = who != NULL ? path : BP_CONFIG_FILE_DEFAULT;
    bp_err rc = BP_OK;

    f = fopen(path, "rb");
    if (f == NULL) {
        if (who == NULL && errno == ENOENT) {
            return BP_OK;
        }
        fail(err, err_len, "%s: cannot read %s: %s", who != NULL ? who : source, path, strerror(errno));
        return BP_ERR_INVALID;
    }
    text = bp_malloc(CONFIG_FILE_MAX + 1);
    len = fread(text, 1, CONFIG_FILE_MAX + 1, f);
    if (ferror(f)) {
        fail(err, err_len, "%s: cannot read %s: %s", who != NULL ? who : source, path, strerror(errno));
        rc = BP_ERR_INVALID;
        goto done;
    }
    if (len > CONFIG_FILE_MAX) {
        fail(err, err_len, "%s: larger than %d bytes", source, CONFIG_FILE_MAX);
        rc = BP_ERR_INVALID;
        goto done;
    }
    rc = bp_config__load_json_text(text, len, source, c, err, err_len);
    if (rc == BP_OK) {
        bp_free(c->file);
        c->file = bp_strdup(source);
    }
done:
    bp_free(text);
    fclose(f);
    return rc;
}

/* An empty variable counts as unset, as `FOO= cmd` in a shell or compose file usually means. */
static const char *
env_value(const char *name)
{
    const char *v = getenv(name);
    return (v != NULL && v[0] != '\0') ? v : NULL;
}

static bp_err
apply_env(struct bp_config *c, char *err, size_t err_len)
{
    char why[256];

    for (size_t i = 0; i < bp_config__n_settings; i++) {
        const struct bp_setting *s = &bp_config__settings[i];
        const char *v = env_value(s->env);
        if (v == NULL) {
            continue;
        }
        if (bp_config__set_text(s, v, c, why, sizeof(why)) != BP_OK) {
            fail(err, err_len, "%s: %s", s->env, why);
            return BP_ERR_INVALID;
        }
    }
    return BP_OK;
}

/* Flags that serve takes besides the settings; candidates for the "did you mean" hint. */
static const char *const other_flags[] = {"--config", "--check", "--json", "--help"};

/* "unknown option --wrokers (did you mean --workers?)". Only the name is echoed: a value after
 * '=' could be anything, a secret included. */
static void
unknown_flag(const char *arg, size_t name_len, char *err, size_t err_len)
{
    const char *candidates[BP_CONFIG_MAX_CHANGES + BP_ARRAY_LEN(other_flags)];
    size_t n = 0;
    char name[80];
    char shown[80];
    const char *near;

    BP_BUG_ON(bp_config__n_settings > BP_CONFIG_MAX_CHANGES);
    for (size_t i = 0; i < bp_config__n_settings; i++) {
        candidates[n++] = bp_config__settings[i].flag;
    }
    for (size_t i = 0; i < BP_ARRAY_LEN(other_flags); i++) {
        candidates[n++] = other_flags[i];
    }
    snprintf(name, sizeof(name), "%.*s", (int)(name_len < sizeof(name) ? name_len : sizeof(name) - 1), arg);
    near = bp_str_nearest(name, candidates, n);
    printable(arg, name_len, shown, sizeof(shown));
    if (near != NULL) {
        fail(err, err_len, "unknown option %s (did you mean %s?)", shown, near);
    } else {
        fail(err, err_len, "unknown option %s", shown);
    }
}

/* Splits argv into (setting, value) pairs and the --config path without applying anything, so
 * that flags can be applied last while a misspelt flag is still reported before any file is
 * read. Values are borrowed from argv. */
static bp_err
scan_flags(int argc, char **argv, struct flag_value *out, size_t *out_n, const char **out_config, char *err,
           size_t err_len)
{
    size_t n = 0;
    char shown[80];

    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        const char *eq = strchr(arg, '=');
        size_t name_len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        const struct bp_setting *s = NULL;
        bool is_config;
        const char *value;

        if (arg[0] != '-') {
            fail(err, err_len, "unexpected argument \"%s\"",
                 printable(arg, strlen(arg), shown, sizeof(shown)));
            return BP_ERR_INVALID;
        }
        is_config = name_len == strlen("--config") && strncmp(arg, "--config", name_len) == 0;
        if (!is_config) {
            s = bp_config__find_flag(arg, name_len);
            if (s == NULL) {
                unknown_flag(arg, name_len, err, err_len);
                return BP_ERR_INVALID;
            }
        }
        if (eq != NULL) {
            value = eq + 1;
        } else if (s != NULL && s->type == BP_SETTING_BOOL) {
            /* "--reuse-port" alone is true; a following true/false is its value, anything else
             * is the next argument. */
            value = "true";
            if (i + 1 < argc && (strcmp(argv[i + 1], "true") == 0 || strcmp(argv[i + 1], "false") == 0)) {
                value = argv[++i];
            }
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            fail(err, err_len, "%s: missing value", is_config ? "--config" : s->flag);
            return BP_ERR_INVALID;
        }
        if (is_config) {
            *out_config = value;
        } else {
            out[n].setting = s;
            out[n].value = value;
            n++;
        }
    }
    *out_n = n;
    return BP_OK;
}

bp_err
bp_config_load(int argc, char **argv, struct bp_config *out, char *err, size_t err_len)
{
    struct bp_config c;
    struct flag_value *flags = NULL;
    size_t n_flags = 0;
    const char *config_flag = NULL;
    const char *config_env = env_value(BP_CONFIG_FILE_ENV);
    char why[256];
    bp_err rc;

    bp_config__defaults(&c);
    flags = bp_calloc(argc > 0 ? (size_t)argc : 1, sizeof(*flags));
    rc = scan_flags(argc, argv, flags, &n_flags, &config_flag, err, err_len);
    if (rc != BP_OK) {
        goto done;
    }
    if (config_flag != NULL) {
        rc = load_file(config_flag, "--config", &c, err, err_len);
    } else if (config_env != NULL) {
        rc = load_file(config_env, BP_CONFIG_FILE_ENV, &c, err, err_len);
    } else {
        rc = load_file(BP_CONFIG_FILE_DEFAULT, NULL, &c, err, err_len);
    }
    if (rc != BP_OK) {
        goto done;
    }
    rc = apply_env(&c, err, err_len);
    if (rc != BP_OK) {
        goto done;
    }
    for (size_t i = 0; i < n_flags; i++) {
        rc = bp_config__set_text(flags[i].setting, flags[i].value, &c, why, sizeof(why));
        if (rc != BP_OK) {
            fail(err, err_len, "%s: %s", flags[i].setting->flag, why);
            goto done;
        }
    }
    *out = c;
    memset(&c, 0, sizeof(c)); /* the caller owns the strings now */
done:
    bp_config_cleanup(&c);
    bp_free(flags);
    return rc;
}

void
bp_config_cleanup(struct bp_config *c)
{
    if (c == NULL) {
        return;
    }
    bp_free(c->db);
    c->db = NULL;
    bp_free(c->oauth_issuer);
    c->oauth_issuer = NULL;
    bp_free(c->audit_spool);
    c->audit_spool = NULL;
    bp_free(c->audit_signing_key);
    c->audit_signing_key = NULL;
    bp_free(c->node_name);
    c->node_name = NULL;
    bp_free(c->health_probe_instances);
    c->health_probe_instances = NULL;
    bp_free(c->trusted_proxies);
    c->trusted_proxies = NULL;
    bp_free(c->listen_host);
    c->listen_host = NULL;
    bp_free(c->ops_listen_host);
    c->ops_listen_host = NULL;
    bp_free(c->tls_listen_host);
    c->tls_listen_host = NULL;
    bp_free(c->tls_cert);
    c->tls_cert = NULL;
    bp_free(c->tls_key);
    c->tls_key = NULL;
    bp_free(c->file);
    c->file = NULL;
    bp_config__routes_cleanup(c);
}

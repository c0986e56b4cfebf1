/* /admin/api/keys and /admin/api/clients: API keys and OAuth clients, as `key …` and
 * `client …` show and change them (same audit actions, same JSON field names). A new key is
 * in the creating answer once, and nowhere else. */
#include <stdio.h>
#include <string.h>

#include "admin/admin-int.h"
#include "auth/auth.h"
#include "lib/alloc.h"
#include "lib/buf.h"
#include "lib/ipnet.h"
#include "lib/rand.h"
#include "lib/secret.h"
#include "lib/str.h"
#include "lib/url.h"
#include "oauth/oauth.h"

#define NAME_MAX_LEN 100
#define INSTANCES_MAX 64

static const char *
cred_status(bool revoked, int64_t expires_at, int64_t now)
{
    if (revoked) {
        return "revoked";
    }
    return expires_at != 0 && expires_at <= now ? "expired" : "active";
}

static json_t *
key_json(const struct bp_key_rec *k, int64_t now)
{
    json_t *j = json_object();

    json_object_set_new(j, "id", bp_admin__jstr(k->id));
    json_object_set_new(j, "name", bp_admin__jstr(k->name));
    json_object_set_new(j, "prefix", bp_admin__jstr(k->prefix));
    json_object_set_new(j, "scopes", bp_admin__jcsv(k->scopes));
    json_object_set_new(j, "instances", bp_admin__jcsv(k->instances));
    json_object_set_new(j, "allow_from", bp_admin__jcsv(k->allow_from));
    json_object_set_new(j, "rate_limit", bp_admin__jstr(k->rate_limit));
    json_object_set_new(j, "burst", k->rate_burst > 0 ? json_integer(k->rate_burst) : json_null());
    json_object_set_new(j, "status", json_string(cred_status(k->revoked, k->expires_at, now)));
    json_object_set_new(j, "created_at", bp_admin__jtime(k->created_at));
    json_object_set_new(j, "expires_at", bp_admin__jtime(k->expires_at));
    json_object_set_new(j, "last_used_at", bp_admin__jtime(k->last_used_at));
    json_object_set_new(j, "revoked_at", bp_admin__jtime(k->revoked_at));
    json_object_set_new(j, "replaces", bp_admin__jstr(k->replaces));
    json_object_set_new(j, "replaced_by", bp_admin__jstr(k->replaced_by));
    return j;
}

static json_t *
client_json(const struct bp_client_rec *cl, int64_t now)
{
    json_t *j = json_object();
    json_t *uris = json_array();

    for (size_t i = 0; i < cl->n_redirect_uris; i++) {
        json_array_append_new(uris, bp_admin__jstr(cl->redirect_uris[i]));
    }
    json_object_set_new(j, "id", bp_admin__jstr(cl->id));
    json_object_set_new(j, "name", bp_admin__jstr(cl->name));
    json_object_set_new(j, "scopes", bp_admin__jcsv(cl->scopes));
    json_object_set_new(j, "grant_types", bp_admin__jcsv(cl->grant_types));
    json_object_set_new(j, "redirect_uris", uris);
    json_object_set_new(j, "instances", bp_admin__jcsv(cl->instances));
    json_object_set_new(j, "allow_from", bp_admin__jcsv(cl->allow_from));
    json_object_set_new(j, "rate_limit", bp_admin__jstr(cl->rate_limit));
    json_object_set_new(j, "burst", cl->rate_burst > 0 ? json_integer(cl->rate_burst) : json_null());
    json_object_set_new(j, "status", json_string(cred_status(cl->revoked, cl->expires_at, now)));
    json_object_set_new(j, "created_at", bp_admin__jtime(cl->created_at));
    json_object_set_new(j, "expires_at", bp_admin__jtime(cl->expires_at));
    json_object_set_new(j, "revoked_at", bp_admin__jtime(cl->revoked_at));
    return j;
}

/* ---- a new key's fields ---- */

bool
bp_admin__name_ok(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > NAME_MAX_LEN) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch < 0x20 || ch == 0x7f) {
            return false;
        }
    }
    return true;
}

/* "scopes": an array of scope names (or one comma-separated string), into canonical text. */
static const char *
parse_scopes(json_t *v, char *out, size_t cap)
{
    unsigned bits = 0;
    size_t i;
    json_t *item;

    if (json_is_string(v)) {
        if (strlen(json_string_value(v)) != json_string_length(v) ||
            bp_scopes_parse(json_string_value(v), &bits) != BP_OK) {
            return "unknown scope (known: *, proxy:read, proxy:write)";
        }
    } else if (json_is_array(v) && json_array_size(v) > 0) {
        json_array_foreach(v, i, item)
        {
            unsigned one;
            if (!json_is_string(item) || strlen(json_string_value(item)) != json_string_length(item) ||
                bp_scopes_parse(json_string_value(item), &one) != BP_OK) {
                return "unknown scope (known: *, proxy:read, proxy:write)";
            }
            bits |= one;
        }
    } else {
        return "scopes must be a non-empty array of scope names";
    }
    bp_scopes_format(bits, out, cap);
    return NULL;
}

static bool
id_ok(const char *id, size_t len)
{
    if (len == 0 || len > 100 || strlen(id) != len) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char ch = id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              ch == '-')) {
            return false;
        }
    }
    return true;
}

/* "instances": ids that exist, deduplicated, into a comma-separated list (NULL: every one). */
static const char *
parse_instances(struct bp_admin_call *c, json_t *v, char **out)
{
    size_t i;
    json_t *item;
    size_t total = 1;
    size_t off = 0;
    char *list;

    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        return NULL;
    }
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > INSTANCES_MAX) {
        return "instances must be an array of 1 to 64 instance ids";
    }
    json_array_foreach(v, i, item)
    {
        struct bp_instance_rec rec = {0};
        bp_err rc;
        if (!json_is_string(item) || !id_ok(json_string_value(item), json_string_length(item))) {
            return "instances must be an array of instance ids";
        }
        rc = bp_store_instance_get(c->s, json_string_value(item), &rec);
        bp_instance_rec_cleanup(&rec);
        if (rc != BP_OK) {
            return "no such instance in instances";
        }
        total += json_string_length(item) + 1;
    }
    list = bp_calloc(1, total);
    json_array_foreach(v, i, item)
    {
        const char *id = json_string_value(item);
        size_t n = json_string_length(item);
        bool dup = false;
        for (size_t k = 0; k < i; k++) {
            dup = dup || strcmp(json_string_value(json_array_get(v, k)), id) == 0;
        }
        if (!dup) {
            if (off > 0) {
                list[off++] = ',';
            }
            memcpy(list + off, id, n);
            off += n;
        }
    }
    *out = list;
    return NULL;
}

/* "grace": how long the old secret keeps working (default 24h; "0s": not at all), as the CLI's
 * --grace. False when malformed. */
static bool
parse_grace(struct bp_admin_call *c, int64_t *out_until)
{
    bool bad = false;
    const char *text = bp_admin__body_str(c, "grace", &bad);
    int64_t seconds = 24 * 3600;

    if (bad) {
        return false;
    }
    if (text != NULL && strcmp(text, "0") != 0 && strcmp(text, "0s") != 0 &&
        (bp_str_parse_duration(text, &seconds) != BP_OK || seconds < 0)) {
        return false;
    }
    if (text != NULL && (strcmp(text, "0") == 0 || strcmp(text, "0s") == 0)) {
        seconds = 0;
    }
    *out_until = c->now + seconds;
    return true;
}

/* "expires_in": <n>s/m/h/d or never, into an expiry (0: never). False when absent or malformed. */
static bool
parse_expires_in(struct bp_admin_call *c, int64_t *out)
{
    bool bad = false;
    const char *text = bp_admin__body_str(c, "expires_in", &bad);
    int64_t seconds;

    if (bad || text == NULL || bp_str_parse_duration(text, &seconds) != BP_OK) {
        return false;
    }
    *out = seconds < 0 ? 0 : c->now + seconds;
    return true;
}

static char *
new_id(const char *prefix)
{
    char ulid[BP_ULID_LEN + 1];
    char buf[64];

    if (bp_ulid(ulid) != BP_OK) {
        return NULL;
    }
    snprintf(buf, sizeof(buf), "%s_%s", prefix, ulid);
    return bp_strdup(buf);
}

/* ---- where a credential may be used from, and how fast (issue 12), as `update` sets them ---- */

/* "allow_from": addresses or networks (an array, or one comma-separated string), or "any" or
 * null for any address. */
static const char *
parse_allow_from(json_t *v, struct bp_cred_limits *l)
{
    static const char why[] =
        "allow_from must be \"any\" or an array of 1 to 64 addresses or networks such as "
        "\"203.0.113.7\", \"10.0.0.0/8\", \"2001:db8::/32\"";
    struct bp_buf b;
    size_t i;
    json_t *item;
    char *text;
    bool ok;

    if (json_is_null(v)) {
        return bp_cred_limits_allow(l, "any", NULL, 0) ? NULL : why;
    }
    if (json_is_string(v)) {
        return strlen(json_string_value(v)) == json_string_length(v) &&
                       bp_cred_limits_allow(l, json_string_value(v), NULL, 0)
                   ? NULL
                   : why;
    }
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > BP_ALLOW_FROM_MAX) {
        return why;
    }
    bp_buf_init(&b, (size_t)BP_ALLOW_FROM_MAX * (BP_IP_TEXT_MAX + 5));
    json_array_foreach(v, i, item)
    {
        const char *one = json_string_value(item);
        /* One network per item: a comma would make one item two. */
        if (one == NULL || strlen(one) != json_string_length(item) ||
            json_string_length(item) > BP_IP_TEXT_MAX + 4 || strchr(one, ',') != NULL ||
            (i > 0 && bp_buf_append_str(&b, ",") != BP_OK) || bp_buf_append_str(&b, one) != BP_OK) {
            bp_buf_cleanup(&b);
            return why;
        }
    }
    text = bp_buf_take(&b, NULL);
    ok = bp_cred_limits_allow(l, text, NULL, 0);
    bp_free(text);
    return ok ? NULL : why;
}

/* "allow_from", "rate_limit" ("<n>/s|m|h|d", "0": none, "default" or null: the server's
 * rate_limit.default) and "burst" (with a rate that limits), each optional. */
static const char *
parse_limits(struct bp_admin_call *c, struct bp_cred_limits *l)
{
    json_t *allow = json_object_get(c->body, "allow_from");
    json_t *rate = json_object_get(c->body, "rate_limit");
    json_t *burst = json_object_get(c->body, "burst");
    const char *why;

    memset(l, 0, sizeof(*l));
    if (allow != NULL && (why = parse_allow_from(allow, l)) != NULL) {
        return why;
    }
    if (burst != NULL && !json_is_null(burst) && rate == NULL) {
        return "burst goes with rate_limit: send both (e.g. \"rate_limit\": \"100/s\", \"burst\": 200)";
    }
    if (rate != NULL) {
        const char *text = json_is_null(rate) ? "default" : json_string_value(rate);
        if (text == NULL || (json_is_string(rate) && strlen(text) != json_string_length(rate)) ||
            !bp_cred_limits_rate(l, text)) {
            return "rate_limit must be <n>/s, <n>/m, <n>/h or <n>/d, \"0\" for no limit, or \"default\" (the "
                   "server's rate_limit.default)";
        }
    }
    if (burst != NULL && !json_is_null(burst)) {
        json_int_t b = json_is_integer(burst) ? json_integer_value(burst) : 0;
        if (b < 1 || !bp_cred_limits_burst(l, (uint64_t)b)) {
            return "burst must be a number of requests 1..1000000000, with a rate_limit that limits";
        }
    }
    return NULL;
}

/* A new credential's limits, into its record's fields (the caller owns them then). */
static const char *
take_limits(struct bp_admin_call *c, char **allow_from, char **rate_limit, int64_t *burst)
{
    struct bp_cred_limits l;
    const char *why = parse_limits(c, &l);

    if (why == NULL) {
        *allow_from = l.allow_from;
        *rate_limit = l.rate_limit;
        *burst = l.burst;
        l.allow_from = NULL;
        l.rate_limit = NULL;
    }
    bp_cred_limits_cleanup(&l);
    return why;
}

/* PATCH /keys/{id} and /clients/{id}: the limits changed in place, with the records `key update`
 * writes (two of one operation when both change). */
static void cred_one(struct bp_admin_call *c, const char *id, bool client);
static void client_one(struct bp_admin_call *c, const char *id, bool revoke);
static void key_one(struct bp_admin_call *c, const char *id, const char *verb);

static void
cred_update(struct bp_admin_call *c, const char *id, bool client)
{
    struct bp_cred_limits l;
    char operation[BP_UUID_LEN + 1];
    const char *allow_action = client ? "Client allow-list changed" : "Key allow-list changed";
    const char *rate_action = client ? "Client rate limit changed" : "Key rate limit changed";
    const char *why = parse_limits(c, &l);
    bp_err rc;

    if (why == NULL && !l.allow_set && !l.rate_set) {
        why = "send what changes: allow_from, rate_limit (and burst)";
    }
    if (why != NULL) {
        bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST", why);
        bp_cred_limits_cleanup(&l);
        return;
    }
    rc = bp_uuid7(operation) == BP_OK ? bp_store_begin(c->s) : BP_ERR_IO;
    if (rc == BP_OK) {
        bool both = l.allow_set && l.rate_set;
        if (l.allow_set) {
            rc = client ? bp_store_client_set_allow_from(c->s, id, l.allow_from)
                        : bp_store_key_set_allow_from(c->s, id, l.allow_from);
        }
        if (rc == BP_OK && both) {
            rc = bp_admin__record(c, allow_action, id, operation);
        }
        if (rc == BP_OK && l.rate_set) {
            rc = client ? bp_store_client_set_rate(c->s, id, l.rate_limit, l.burst)
                        : bp_store_key_set_rate(c->s, id, l.rate_limit, l.burst);
        }
        rc = both ? bp_admin__finish_op(c, rc, rate_action, id, operation)
                  : bp_admin__finish(c, rc, l.rate_set ? rate_action : allow_action, id, NULL);
    }
    bp_cred_limits_cleanup(&l);
    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, client ? "client" : "key");
    } else {
        cred_one(c, id, client);
    }
}

static void
key_create(struct bp_admin_call *c)
{
    struct bp_key_rec rec = {0};
    char scopes[64];
    char key[BP_APIKEY_LEN + 1];
    const char *why = NULL;
    const char *name;
    const char *expires_in;
    bool bad = false;
    json_t *j;
    bp_err rc;

    name = bp_admin__body_str(c, "name", &bad);
    expires_in = bp_admin__body_str(c, "expires_in", &bad);
    if (bp_admin__refuse_bad_field(c)) {
        return;
    }
    if (bad || name == NULL || !bp_admin__name_ok(name)) {
        why = "name must be 1 to 100 printable characters";
    } else if (json_object_get(c->body, "scopes") == NULL) {
        why = "scopes is required, e.g. [\"proxy:read\"]";
    } else {
        why = parse_scopes(json_object_get(c->body, "scopes"), scopes, sizeof(scopes));
    }
    rec.created_at = c->now;
    if (why == NULL && expires_in != NULL) {
        int64_t seconds;
        if (bp_str_parse_duration(expires_in, &seconds) != BP_OK) {
            why = "expires_in must be <n>s, <n>m, <n>h, <n>d or never";
        } else {
            rec.expires_at = seconds < 0 ? 0 : c->now + seconds;
        }
    }
    if (why == NULL) {
        why = parse_instances(c, json_object_get(c->body, "instances"), &rec.instances);
    }
    if (why == NULL) {
        why = take_limits(c, &rec.allow_from, &rec.rate_limit, &rec.rate_burst);
    }
    if (why != NULL) {
        bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST", why);
        bp_key_rec_cleanup(&rec);
        return;
    }
    rec.id = new_id("key");
    if (rec.id == NULL || bp_apikey_generate(key) != BP_OK) {
        bp_admin__error(c, 500, "GEN_INTERNAL_ERROR", "the system random source failed");
        bp_key_rec_cleanup(&rec);
        return;
    }
    bp_digest(key, BP_APIKEY_LEN, rec.digest);
    rec.prefix = bp_strndup(key, BP_APIKEY_LIST_PREFIX_LEN);
    rec.name = bp_strdup(name);
    rec.scopes = bp_strdup(scopes);
    rc = bp_store_begin(c->s);
    if (rc == BP_OK) {
        rc = bp_admin__finish(c, bp_store_key_insert(c->s, &rec), "Key created", rec.id, NULL);
    }
    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "key");
    } else {
        j = key_json(&rec, c->now);
        json_object_set_new(j, "key", json_string(key));
        bp_admin__json(c, 201, j);
    }
    bp_wipe(key, sizeof(key));
    bp_key_rec_cleanup(&rec);
}

static void
keys_list(struct bp_admin_call *c)
{
    struct bp_key_rec *recs = NULL;
    size_t n = 0;
    bp_err rc = bp_store_key_list(c->s, &recs, &n);
    json_t *a;

    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "key");
        return;
    }
    a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, key_json(&recs[i], c->now));
    }
    bp_key_recs_free(recs, n);
    bp_admin__json(c, 200, json_pack("{s:o}", "keys", a));
}

static void
key_one(struct bp_admin_call *c, const char *id, const char *verb)
{
    struct bp_key_rec rec = {0};
    bp_err rc = bp_store_key_get(c->s, id, &rec);

    if (rc == BP_OK && verb != NULL && strcmp(verb, "revoke") == 0 && !rec.revoked) {
        rc = bp_store_begin(c->s);
        if (rc == BP_OK) {
            rc = bp_admin__finish(c, bp_store_key_revoke(c->s, id, c->now), "Key revoked", id, NULL);
        }
        bp_key_rec_cleanup(&rec);
        if (rc == BP_OK) {
            rc = bp_store_key_get(c->s, id, &rec);
        }
    }
    if (rc == BP_OK) {
        rc = bp_store_key_links(c->s, id, &rec.replaces, &rec.replaced_by);
    }
    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "key");
    } else {
        bp_admin__json(c, 200, key_json(&rec, c->now));
    }
    bp_key_rec_cleanup(&rec);
}

/* POST /keys/{id}/rotate {"grace": "24h"}: a new key with the old one's name, scopes, instances
 * and limits (shown once); the old one expires after the grace. One transaction, two records
 * with one operation id, as `key rotate` writes them. */
static void
key_rotate(struct bp_admin_call *c, const char *id)
{
    struct bp_key_rec old = {0};
    struct bp_key_rec rec = {0};
    char key[BP_APIKEY_LEN + 1];
    char operation[BP_UUID_LEN + 1];
    int64_t old_until = 0;
    json_t *j;
    bp_err rc;

    if (!parse_grace(c, &old_until)) {
        bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST",
                        "grace must be <n>s, <n>m, <n>h or <n>d (0s: at once)");
        return;
    }
    rc = bp_store_key_get(c->s, id, &old);
    if (rc == BP_OK) {
        rc = bp_store_key_links(c->s, id, &old.replaces, &old.replaced_by);
    }
    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "key");
        bp_key_rec_cleanup(&old);
        return;
    }
    if (old.revoked || (old.expires_at != 0 && old.expires_at <= c->now) || old.replaced_by != NULL) {
        bp_admin__error(c, 409, "GEN_CONFLICT",
                        old.replaced_by != NULL
                            ? "this key was rotated already: rotate the key that replaced it"
                            : "this key is revoked or expired: create a new key instead");
        bp_key_rec_cleanup(&old);
        return;
    }
    if (old.expires_at != 0 && old.expires_at < old_until) {
        old_until = old.expires_at;
    }
    rec.id = new_id("key");
    if (rec.id == NULL || bp_uuid7(operation) != BP_OK || bp_apikey_generate(key) != BP_OK) {
        bp_admin__error(c, 500, "GEN_INTERNAL_ERROR", "the system random source failed");
        bp_key_rec_cleanup(&old);
        bp_key_rec_cleanup(&rec);
        return;
    }
    bp_key_rec_inherit(&rec, &old);
    rec.created_at = c->now;
    bp_digest(key, BP_APIKEY_LEN, rec.digest);
    rec.prefix = bp_strndup(key, BP_APIKEY_LIST_PREFIX_LEN);
    rc = bp_store_begin(c->s);
    if (rc == BP_OK) {
        rc = bp_store_key_rotate(c->s, &rec, old.id, old_until);
    }
    if (rc == BP_OK) {
        rc = bp_admin__record(c, "Key rotated", old.id, operation);
    }
    rc = bp_admin__finish_op(c, rc, "Key created", rec.id, operation);
    if (rc == BP_ERR_EXISTS) {
        bp_admin__error(c, 409, "GEN_CONFLICT",
                        "this key changed meanwhile (rotated, revoked or updated): read it again and retry");
    } else if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "key");
    } else {
        rec.replaces = bp_strdup(old.id);
        j = key_json(&rec, c->now);
        json_object_set_new(j, "key", json_string(key));
        json_object_set_new(j, "replaced_key_expires_at", bp_admin__jtime(old_until));
        bp_admin__json(c, 201, j);
    }
    bp_wipe(key, sizeof(key));
    bp_key_rec_cleanup(&old);
    bp_key_rec_cleanup(&rec);
}

static void cred_expire(struct bp_admin_call *c, const char *id, bool client);

static void
cred_one(struct bp_admin_call *c, const char *id, bool client)
{
    if (client) {
        client_one(c, id, false);
    } else {
        key_one(c, id, NULL);
    }
}

void
bp_admin__keys(struct bp_admin_call *c)
{
    if (c->nseg == 1 && bp_admin__method(c, "GET")) {
        keys_list(c);
    } else if (c->nseg == 1 && bp_admin__method(c, "POST")) {
        key_create(c);
    } else if (c->nseg == 1) {
        bp_admin__not_allowed(c, "GET, POST");
    } else if (c->nseg == 2 && bp_admin__method(c, "GET")) {
        key_one(c, c->segs[1], NULL);
    } else if (c->nseg == 2 && bp_admin__method(c, "PATCH")) {
        cred_update(c, c->segs[1], false);
    } else if (c->nseg == 2) {
        bp_admin__not_allowed(c, "GET, PATCH");
    } else if (c->nseg == 3 && strcmp(c->segs[2], "revoke") == 0 && bp_admin__method(c, "POST")) {
        key_one(c, c->segs[1], "revoke");
    } else if (c->nseg == 3 && strcmp(c->segs[2], "rotate") == 0 && bp_admin__method(c, "POST")) {
        key_rotate(c, c->segs[1]);
    } else if (c->nseg == 3 && strcmp(c->segs[2], "expire") == 0 && bp_admin__method(c, "POST")) {
        cred_expire(c, c->segs[1], false);
    } else {
        bp_admin__error(c, 404, "GEN_NOT_FOUND", "no such admin API resource (see docs/ADMIN_API.md)");
    }
}

/* ---- clients ---- */

static void
clients_list(struct bp_admin_call *c)
{
    struct bp_client_rec *recs = NULL;
    size_t n = 0;
    bp_err rc = bp_store_client_list(c->s, &recs, &n);
    json_t *a;

    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "client");
        return;
    }
    a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, client_json(&recs[i], c->now));
    }
    bp_client_recs_free(recs, n);
    bp_admin__json(c, 200, json_pack("{s:o}", "clients", a));
}

static void
client_one(struct bp_admin_call *c, const char *id, bool revoke)
{
    struct bp_client_rec rec = {0};
    bp_err rc = bp_store_client_get(c->s, id, &rec);

    if (rc == BP_OK && revoke && !rec.revoked) {
        rc = bp_store_begin(c->s);
        if (rc == BP_OK) {
            rc = bp_admin__finish(c, bp_store_client_revoke(c->s, id, c->now), "Client revoked", id, NULL);
        }
        bp_client_rec_cleanup(&rec);
        if (rc == BP_OK) {
            rc = bp_store_client_get(c->s, id, &rec);
        }
    }
    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "client");
    } else {
        bp_admin__json(c, 200, client_json(&rec, c->now));
    }
    bp_client_rec_cleanup(&rec);
}

static const struct {
    const char *name;
    unsigned bit;
} GRANTS[] = {
    /* The stored list's canonical order (as the CLI writes it). */
    {"client_credentials", 1u << 0},
    {"authorization_code", 1u << 1},
    {"refresh_token", 1u << 2},
};

/* "redirect_uris": checked and deduplicated, into the record. */
static const char *
parse_redirect_uris(json_t *v, struct bp_client_rec *rec)
{
    size_t i;
    json_t *item;

    if (v == NULL || json_is_null(v)) {
        return NULL;
    }
    if (!json_is_array(v) || json_array_size(v) > 16) {
        return "redirect_uris must be an array of at most 16 URIs";
    }
    rec->redirect_uris = bp_calloc(json_array_size(v) + 1, sizeof(char *));
    json_array_foreach(v, i, item)
    {
        const char *uri = json_string_value(item);
        const char *why;
        bool dup = false;
        if (uri == NULL || strlen(uri) != json_string_length(item)) {
            return "redirect_uris must be an array of URIs";
        }
        why = bp_url_check_redirect(uri);
        if (why != NULL) {
            return why;
        }
        for (size_t k = 0; k < rec->n_redirect_uris; k++) {
            dup = dup || strcmp(rec->redirect_uris[k], uri) == 0;
        }
        if (!dup) {
            rec->redirect_uris[rec->n_redirect_uris++] = bp_strdup(uri);
        }
    }
    return NULL;
}

static const char *
parse_grants(json_t *v, size_t n_uris, char *out, size_t cap)
{
    unsigned bits = 0;
    size_t off = 0;
    size_t i;
    json_t *item;

    if (v == NULL || json_is_null(v)) {
        bits = GRANTS[0].bit | (n_uris > 0 ? GRANTS[1].bit | GRANTS[2].bit : 0);
    } else if (!json_is_array(v) || json_array_size(v) == 0) {
        return "grant_types must be a non-empty array";
    } else {
        json_array_foreach(v, i, item)
        {
            unsigned one = 0;
            for (size_t k = 0; k < sizeof(GRANTS) / sizeof(GRANTS[0]); k++) {
                if (json_is_string(item) && strcmp(json_string_value(item), GRANTS[k].name) == 0) {
                    one = GRANTS[k].bit;
                }
            }
            if (one == 0) {
                return "unknown grant type (known: client_credentials, authorization_code, refresh_token)";
            }
            bits |= one;
        }
    }
    /* RFC 6749 §3.1.2.2: a code can only be sent back to a registered redirect URI. */
    if ((bits & GRANTS[1].bit) && n_uris == 0) {
        return "grant type authorization_code needs at least one redirect URI";
    }
    out[0] = '\0';
    for (size_t k = 0; k < sizeof(GRANTS) / sizeof(GRANTS[0]); k++) {
        if (bits & GRANTS[k].bit) {
            off += (size_t)snprintf(out + off, cap - off, "%s%s", off > 0 ? "," : "", GRANTS[k].name);
        }
    }
    return NULL;
}

/* POST /clients {"name", "scopes", "redirect_uris", "grant_types", "instances", "expires_in"}:
 * the secret is in this answer once. */
static void
client_create(struct bp_admin_call *c)
{
    struct bp_client_rec rec = {0};
    char scopes[64];
    char grants[64];
    char secret[BP_OAUTH_TOKEN_LEN + 1];
    bool bad = false;
    const char *name = bp_admin__body_str(c, "name", &bad);
    const char *why = NULL;
    json_t *j;
    bp_err rc;

    rec.created_at = c->now;
    if (bad || name == NULL || !bp_admin__name_ok(name)) {
        why = "name must be 1 to 100 printable characters";
    } else if (json_object_get(c->body, "scopes") == NULL) {
        why = "scopes is required, e.g. [\"proxy:read\"]";
    } else if ((why = parse_scopes(json_object_get(c->body, "scopes"), scopes, sizeof(scopes))) != NULL) {
        /* why says it */
    } else if ((why = parse_redirect_uris(json_object_get(c->body, "redirect_uris"), &rec)) != NULL) {
        /* why says it */
    } else if ((why = parse_grants(json_object_get(c->body, "grant_types"), rec.n_redirect_uris, grants,
                                   sizeof(grants))) != NULL) {
        /* why says it */
    } else if (json_object_get(c->body, "expires_in") != NULL && !parse_expires_in(c, &rec.expires_at)) {
        why = "expires_in must be <n>s, <n>m, <n>h, <n>d or never";
    } else if ((why = parse_instances(c, json_object_get(c->body, "instances"), &rec.instances)) != NULL) {
        /* why says it */
    } else {
        why = take_limits(c, &rec.allow_from, &rec.rate_limit, &rec.rate_burst);
    }
    if (why != NULL) {
        bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST", why);
        bp_client_rec_cleanup(&rec);
        return;
    }
    rec.id = new_id("client");
    if (rec.id == NULL || bp_oauth_token_generate(BP_CLIENT_SECRET_PREFIX, secret) != BP_OK) {
        bp_admin__error(c, 500, "GEN_INTERNAL_ERROR", "the system random source failed");
        bp_client_rec_cleanup(&rec);
        return;
    }
    bp_digest(secret, BP_OAUTH_TOKEN_LEN, rec.secret_digest);
    rec.name = bp_strdup(name);
    rec.scopes = bp_strdup(scopes);
    rec.grant_types = bp_strdup(grants);
    rc = bp_store_begin(c->s);
    if (rc == BP_OK) {
        rc = bp_admin__finish(c, bp_store_client_insert(c->s, &rec), "Client created", rec.id, NULL);
    }
    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "client");
    } else {
        j = client_json(&rec, c->now);
        json_object_set_new(j, "client_secret", json_string(secret));
        bp_admin__json(c, 201, j);
    }
    bp_wipe(secret, sizeof(secret));
    bp_client_rec_cleanup(&rec);
}

/* POST /clients/{id}/rotate-secret {"grace": "24h"}: a new secret (shown once); the old one keeps
 * working for the grace. */
static void
client_rotate_secret(struct bp_admin_call *c, const char *id)
{
    struct bp_client_rec rec = {0};
    char secret[BP_OAUTH_TOKEN_LEN + 1];
    unsigned char digest[BP_DIGEST_LEN];
    int64_t previous_until = 0;
    json_t *j;
    bp_err rc;

    if (!parse_grace(c, &previous_until)) {
        bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST",
                        "grace must be <n>s, <n>m, <n>h or <n>d (0s: at once)");
        return;
    }
    rc = bp_store_client_get(c->s, id, &rec);
    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "client");
        return;
    }
    if (rec.revoked || (rec.expires_at != 0 && rec.expires_at <= c->now)) {
        bp_admin__error(c, 409, "GEN_CONFLICT",
                        "this client is revoked or expired: its secret cannot be rotated");
        bp_client_rec_cleanup(&rec);
        return;
    }
    if (bp_oauth_token_generate(BP_CLIENT_SECRET_PREFIX, secret) != BP_OK) {
        bp_admin__error(c, 500, "GEN_INTERNAL_ERROR", "the system random source failed");
        bp_client_rec_cleanup(&rec);
        return;
    }
    bp_digest(secret, BP_OAUTH_TOKEN_LEN, digest);
    rc = bp_store_begin(c->s);
    if (rc == BP_OK) {
        rc = bp_admin__finish(c, bp_store_client_rotate_secret(c->s, rec.id, digest, previous_until),
                              "Client secret rotated", rec.id, NULL);
    }
    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "client");
    } else {
        j = client_json(&rec, c->now);
        json_object_set_new(j, "client_secret", json_string(secret));
        json_object_set_new(j, "previous_secret_expires_at", bp_admin__jtime(previous_until));
        bp_admin__json(c, 200, j);
    }
    bp_wipe(secret, sizeof(secret));
    bp_client_rec_cleanup(&rec);
}

/* POST /keys/{id}/expire and /clients/{id}/expire {"expires_in": "30d" | "never"}. */
static void
cred_expire(struct bp_admin_call *c, const char *id, bool client)
{
    int64_t expires_at;
    bp_err rc;

    if (!parse_expires_in(c, &expires_at)) {
        bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST",
                        "expires_in must be <n>s, <n>m, <n>h, <n>d or never");
        return;
    }
    rc = bp_store_begin(c->s);
    if (rc == BP_OK) {
        rc = bp_admin__finish(c,
                              client ? bp_store_client_set_expiry(c->s, id, expires_at)
                                     : bp_store_key_set_expiry(c->s, id, expires_at),
                              client ? "Client expiry changed" : "Key expiry changed", id, NULL);
    }
    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, client ? "client" : "key");
    } else if (client) {
        client_one(c, id, false);
    } else {
        key_one(c, id, NULL);
    }
}

void
bp_admin__clients(struct bp_admin_call *c)
{
    if (c->nseg == 1 && bp_admin__method(c, "GET")) {
        clients_list(c);
    } else if (c->nseg == 1 && bp_admin__method(c, "POST")) {
        client_create(c);
    } else if (c->nseg == 1) {
        bp_admin__not_allowed(c, "GET, POST");
    } else if (c->nseg == 2 && bp_admin__method(c, "GET")) {
        client_one(c, c->segs[1], false);
    } else if (c->nseg == 2 && bp_admin__method(c, "PATCH")) {
        cred_update(c, c->segs[1], true);
    } else if (c->nseg == 2) {
        bp_admin__not_allowed(c, "GET, PATCH");
    } else if (c->nseg == 3 && strcmp(c->segs[2], "revoke") == 0 && bp_admin__method(c, "POST")) {
        client_one(c, c->segs[1], true);
    } else if (c->nseg == 3 && strcmp(c->segs[2], "rotate-secret") == 0 && bp_admin__method(c, "POST")) {
        client_rotate_secret(c, c->segs[1]);
    } else if (c->nseg == 3 && strcmp(c->segs[2], "expire") == 0 && bp_admin__method(c, "POST")) {
        cred_expire(c, c->segs[1], true);
    } else {
        bp_admin__error(c, 404, "GEN_NOT_FOUND", "no such admin API resource (see docs/ADMIN_API.md)");
    }
}

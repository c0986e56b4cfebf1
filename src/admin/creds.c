/* /admin/api/keys and /admin/api/clients: API keys and OAuth clients, as `key …` and
 * `client …` show and change them (same audit actions, same JSON field names). A new key is
 * in the creating answer once, and nowhere else. */
#include <stdio.h>
#include <string.h>

#include "admin/admin-int.h"
#include "auth/auth.h"
#include "lib/alloc.h"
#include "lib/rand.h"
#include "lib/secret.h"
#include "lib/str.h"

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
    } else if (c->nseg == 3 && strcmp(c->segs[2], "revoke") == 0 && bp_admin__method(c, "POST")) {
        key_one(c, c->segs[1], "revoke");
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

void
bp_admin__clients(struct bp_admin_call *c)
{
    if (c->nseg == 1 && bp_admin__method(c, "GET")) {
        clients_list(c);
    } else if (c->nseg == 1) {
        bp_admin__not_allowed(c, "GET");
    } else if (c->nseg == 2 && bp_admin__method(c, "GET")) {
        client_one(c, c->segs[1], false);
    } else if (c->nseg == 3 && strcmp(c->segs[2], "revoke") == 0 && bp_admin__method(c, "POST")) {
        client_one(c, c->segs[1], true);
    } else {
        bp_admin__error(c, 404, "GEN_NOT_FOUND", "no such admin API resource (see docs/ADMIN_API.md)");
    }
}

/* /admin/api/instances: Core instances as `instance …` shows them (never the secret key: only
 * whether there is one), enabled and disabled as `instance enable|disable` does. */
#include <stdio.h>
#include <string.h>

#include "admin/admin-int.h"
#include "health/health.h"
#include "lib/alloc.h"
#include "lib/path.h"
#include "lib/rand.h"
#include "lib/secret.h"
#include "lib/url.h"
#include "upstream/upstream.h"

static json_t *
instance_json(const struct bp_instance_rec *r)
{
    json_t *j = json_object();

    json_object_set_new(j, "id", bp_admin__jstr(r->id));
    json_object_set_new(j, "name", bp_admin__jstr(r->name));
    json_object_set_new(j, "url", bp_admin__jstr(r->url));
    json_object_set_new(j, "enabled", json_boolean(r->enabled));
    json_object_set_new(j, "has_secret_key", json_boolean(r->secret_key != NULL));
    json_object_set_new(j, "ca_file", bp_admin__jstr(r->ca_file));
    json_object_set_new(j, "created_at", bp_admin__jtime(r->created_at));
    json_object_set_new(j, "updated_at", bp_admin__jtime(r->updated_at));
    return j;
}

static void
instances_list(struct bp_admin_call *c)
{
    struct bp_instance_rec *recs = NULL;
    size_t n = 0;
    bp_err rc = bp_store_instance_list(c->s, &recs, &n);
    json_t *a;

    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "instance");
        return;
    }
    a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, instance_json(&recs[i]));
    }
    bp_instance_recs_free(recs, n);
    bp_admin__json(c, 200, json_pack("{s:o}", "instances", a));
}

#define SECRET_MAX_LEN 4096

/* The Core secret becomes an X-Blnk-Key header value: visible ASCII only. */
static bool
secret_ok(const char *s, size_t len)
{
    if (len == 0 || len > SECRET_MAX_LEN || strlen(s) != len) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

/* "ca_file": a CA bundle (PEM) on this node's host to verify Core's certificate with, as an
 * absolute path (a relative one would be relative to wherever serve happens to run) of a file of
 * CA certificates this process can read; its resolved path goes into *out. NULL when fine, else
 * why. The reason never says more than that the file will not do: an admin's call is
 * not a way to learn which paths exist on the host. */
static const char *
parse_ca_file(const char *path, char **out)
{
    static const char why[] = "ca_file must be the absolute path of a readable PEM file of CA certificates "
                              "(at most 1 MiB) on the server";
    char scratch[256];

    if (path[0] != '/' || bp_path_resolve_readable(path, out) != NULL) {
        return why;
    }
    if (bp_upstream_ca_file_check(*out, scratch, sizeof(scratch)) != NULL) {
        bp_free(*out);
        *out = NULL;
        return why;
    }
    return NULL;
}

/* POST /admin/api/instances {"name", "url", "secret_key", "ca_file"}: the secret is entered once and never
 * shown again (answers say has_secret_key). */
static void
instance_add(struct bp_admin_call *c)
{
    struct bp_instance_rec rec = {0};
    char ulid[BP_ULID_LEN + 1];
    char id[16 + BP_ULID_LEN];
    bool bad = false;
    const char *name = bp_admin__body_str(c, "name", &bad);
    const char *url = bp_admin__body_str(c, "url", &bad);
    const char *secret = bp_admin__body_str(c, "secret_key", &bad);
    const char *ca_file = bp_admin__body_str(c, "ca_file", &bad);
    const char *why = NULL;
    bp_err rc;

    if (bp_admin__refuse_bad_field(c)) {
        return;
    }
    if (bad || name == NULL || !bp_admin__name_ok(name)) {
        why = "name must be 1 to 100 printable characters";
    } else if (url == NULL) {
        why = "url is required (http:// or https://)";
    } else if ((why = bp_url_normalise_base(url, &rec.url)) != NULL) {
        /* why says what is wrong with the URL */
    } else if (secret != NULL && !secret_ok(secret, strlen(secret))) {
        why = "secret_key must be 1 to 4096 visible ASCII characters";
    } else if (ca_file != NULL) {
        why = parse_ca_file(ca_file, &rec.ca_file);
    }
    if (why != NULL) {
        bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST", why);
        bp_instance_rec_cleanup(&rec);
        return;
    }
    if (bp_ulid(ulid) != BP_OK) {
        bp_admin__error(c, 500, "GEN_INTERNAL_ERROR", "the system random source failed");
        bp_instance_rec_cleanup(&rec);
        return;
    }
    snprintf(id, sizeof(id), "instance_%s", ulid);
    rec.id = bp_strdup(id);
    rec.name = bp_strdup(name);
    if (secret != NULL) {
        rec.secret_key_len = strlen(secret);
        rec.secret_key = bp_memdup(secret, rec.secret_key_len + 1);
    }
    rec.enabled = true;
    rec.created_at = c->now;
    rec.updated_at = c->now;
    rc = bp_store_begin(c->s);
    if (rc == BP_OK) {
        rc = bp_admin__finish(c, bp_store_instance_insert(c->s, &rec), "Instance added", rec.id, rec.id);
    }
    if (rc == BP_ERR_EXISTS) {
        bp_admin__error(c, 409, "GEN_CONFLICT", "an instance with this name exists already");
    } else if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "instance");
    } else {
        bp_admin__json(c, 201, instance_json(&rec));
    }
    if (rec.secret_key != NULL) {
        bp_wipe(rec.secret_key, rec.secret_key_len);
    }
    bp_instance_rec_cleanup(&rec);
}

/* PATCH /instances/{id} {"name", "url", "secret_key", "ca_file" (null: remove either)}: what is
 * given changes. */
static void
instance_update(struct bp_admin_call *c, const char *id)
{
    struct bp_instance_rec rec = {0};
    bool bad = false;
    const char *name = bp_admin__body_str(c, "name", &bad);
    const char *url = bp_admin__body_str(c, "url", &bad);
    json_t *sv = json_object_get(c->body, "secret_key");
    const char *secret = bp_admin__body_str(c, "secret_key", &bad);
    json_t *cv = json_object_get(c->body, "ca_file");
    const char *ca_file = bp_admin__body_str(c, "ca_file", &bad);
    char *norm = NULL;
    char *ca_path = NULL;
    const char *why = NULL;
    bp_err rc;

    if (bp_admin__refuse_bad_field(c)) {
        return;
    }
    if (bad || (name != NULL && !bp_admin__name_ok(name))) {
        why = "name must be 1 to 100 printable characters";
    } else if (url != NULL && (why = bp_url_normalise_base(url, &norm)) != NULL) {
        /* why says it */
    } else if (secret != NULL && !secret_ok(secret, strlen(secret))) {
        why = "secret_key must be 1 to 4096 visible ASCII characters, or null to remove it";
    } else if (ca_file != NULL && (why = parse_ca_file(ca_file, &ca_path)) != NULL) {
        /* why says it */
    } else if (name == NULL && url == NULL && sv == NULL && cv == NULL) {
        why = "send what changes: name, url, secret_key or ca_file";
    } else if (url != NULL && sv == NULL) {
        /* Otherwise the stored secret would follow the instance to any host the URL names. */
        why = "a new url needs secret_key too (the secret of the Core at that URL, or null for none)";
    }
    if (why != NULL) {
        bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST", why);
        bp_free(norm);
        bp_free(ca_path);
        return;
    }
    rc = bp_store_instance_get(c->s, id, &rec);
    if (rc == BP_OK) {
        if (name != NULL) {
            bp_free(rec.name);
            rec.name = bp_strdup(name);
        }
        if (norm != NULL) {
            bp_free(rec.url);
            rec.url = norm;
            norm = NULL;
        }
        if (sv != NULL) {
            if (rec.secret_key != NULL) {
                bp_wipe(rec.secret_key, rec.secret_key_len);
                bp_free(rec.secret_key);
            }
            rec.secret_key = secret != NULL ? bp_memdup(secret, strlen(secret) + 1) : NULL;
            rec.secret_key_len = secret != NULL ? strlen(secret) : 0;
        }
        if (cv != NULL) {
            bp_free(rec.ca_file);
            rec.ca_file = ca_path;
            ca_path = NULL;
        }
        rec.updated_at = c->now;
        rc = bp_store_begin(c->s);
        if (rc == BP_OK) {
            rc = bp_admin__finish(c, bp_store_instance_update(c->s, &rec), "Instance updated", id, id);
        }
    }
    if (rc == BP_ERR_EXISTS) {
        bp_admin__error(c, 409, "GEN_CONFLICT", "an instance with this name exists already");
    } else if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "instance");
    } else {
        bp_admin__json(c, 200, instance_json(&rec));
    }
    if (rec.secret_key != NULL) {
        bp_wipe(rec.secret_key, rec.secret_key_len);
    }
    bp_free(norm);
    bp_free(ca_path);
    bp_instance_rec_cleanup(&rec);
}

static void
instance_remove(struct bp_admin_call *c, const char *id)
{
    bp_err rc = bp_store_begin(c->s);

    if (rc == BP_OK) {
        rc = bp_admin__finish(c, bp_store_instance_delete(c->s, id), "Instance removed", id, id);
    }
    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "instance");
        return;
    }
    bp_admin__no_content(c);
}

/* POST /instances/{id}/check: Core's GET /health with the instance's secret, as `instance check`
 * calls it (10 s at most; this thread waits for it). */
static void
instance_check(struct bp_admin_call *c, const char *id)
{
    struct bp_instance_rec rec = {0};
    struct bp_health_check chk;
    bp_err rc = bp_store_instance_get(c->s, id, &rec);
    json_t *j;

    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "instance");
        return;
    }
    rc = bp_health_check_once(&(struct bp_health_check_target){.id = rec.id,
                                                               .url = rec.url,
                                                               .secret_key = rec.secret_key,
                                                               .secret_key_len = rec.secret_key_len,
                                                               .ca_file = rec.ca_file},
                              10000, &chk);
    if (rc != BP_OK) {
        bp_admin__error(c, 500, "GEN_INTERNAL_ERROR", "the check could not be made (see the server log)");
    } else {
        j = json_pack("{s:s, s:s, s:b}", "id", rec.id, "name", rec.name, "healthy", chk.healthy);
        json_object_set_new(j, "status", chk.answered ? json_integer(chk.status) : json_null());
        json_object_set_new(j, "time_ms", chk.answered ? json_integer(chk.time_ms) : json_null());
        json_object_set_new(j, "problem", chk.healthy ? json_null() : json_string(chk.problem));
        json_object_set_new(j, "hint", chk.hint[0] != '\0' ? json_string(chk.hint) : json_null());
        bp_admin__json(c, 200, j);
    }
    bp_instance_rec_cleanup(&rec);
}

/* GET one; POST …/enable or …/disable (enabled: 1 or 0; -1 for none). */
static void
instance_one(struct bp_admin_call *c, const char *id, int enabled)
{
    struct bp_instance_rec rec = {0};
    bp_err rc = bp_store_instance_get(c->s, id, &rec);

    if (rc == BP_OK && enabled >= 0 && rec.enabled != (enabled == 1)) {
        rec.enabled = enabled == 1;
        rec.updated_at = c->now;
        rc = bp_store_begin(c->s);
        if (rc == BP_OK) {
            rc = bp_admin__finish(c, bp_store_instance_update(c->s, &rec),
                                  enabled == 1 ? "Instance enabled" : "Instance disabled", id, id);
        }
    }
    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "instance");
    } else {
        bp_admin__json(c, 200, instance_json(&rec));
    }
    bp_instance_rec_cleanup(&rec);
}

void
bp_admin__instances(struct bp_admin_call *c)
{
    if (c->nseg == 1 && bp_admin__method(c, "GET")) {
        instances_list(c);
    } else if (c->nseg == 1 && bp_admin__method(c, "POST")) {
        instance_add(c);
    } else if (c->nseg == 1) {
        bp_admin__not_allowed(c, "GET, POST");
    } else if (c->nseg == 2 && bp_admin__method(c, "GET")) {
        instance_one(c, c->segs[1], -1);
    } else if (c->nseg == 2 && bp_admin__method(c, "PATCH")) {
        instance_update(c, c->segs[1]);
    } else if (c->nseg == 2 && bp_admin__method(c, "DELETE")) {
        instance_remove(c, c->segs[1]);
    } else if (c->nseg == 3 && strcmp(c->segs[2], "check") == 0 && bp_admin__method(c, "POST")) {
        instance_check(c, c->segs[1]);
    } else if (c->nseg == 3 && bp_admin__method(c, "POST") &&
               (strcmp(c->segs[2], "enable") == 0 || strcmp(c->segs[2], "disable") == 0)) {
        instance_one(c, c->segs[1], strcmp(c->segs[2], "enable") == 0 ? 1 : 0);
    } else {
        bp_admin__error(c, 404, "GEN_NOT_FOUND", "no such admin API resource (see docs/ADMIN_API.md)");
    }
}

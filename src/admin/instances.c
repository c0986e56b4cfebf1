/* /admin/api/instances: Core instances as `instance …` shows them (never the secret key: only
 * whether there is one), enabled and disabled as `instance enable|disable` does. */
#include <string.h>

#include "admin/admin-int.h"

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
    } else if (c->nseg == 1) {
        bp_admin__not_allowed(c, "GET");
    } else if (c->nseg == 2 && bp_admin__method(c, "GET")) {
        instance_one(c, c->segs[1], -1);
    } else if (c->nseg == 3 && bp_admin__method(c, "POST") &&
               (strcmp(c->segs[2], "enable") == 0 || strcmp(c->segs[2], "disable") == 0)) {
        instance_one(c, c->segs[1], strcmp(c->segs[2], "enable") == 0 ? 1 : 0);
    } else {
        bp_admin__error(c, 404, "GEN_NOT_FOUND", "no such admin API resource (see docs/ADMIN_API.md)");
    }
}

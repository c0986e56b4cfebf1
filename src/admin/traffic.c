#include "admin/admin-int.h"
#include "lib/alloc.h"
#include "metrics/metrics.h"

/* GET /admin/api/traffic: this node's requests and errors per instance, per minute, over the
 * last hour (from its request counters: metrics/traffic.c). */
void
bp_admin__traffic(struct bp_admin_call *c)
{
    struct bp_metrics_traffic *t = bp_calloc(1, sizeof(*t));
    json_t *insts = json_array();
    json_t *j;

    bp_metrics_traffic_read(c->now, t);
    for (size_t i = 0; i < t->n_instances; i++) {
        json_t *req = json_array();
        json_t *err = json_array();
        for (int k = 0; k < BP_METRICS_TRAFFIC_MINUTES; k++) {
            json_array_append_new(req, json_integer(t->instances[i].requests[k]));
            json_array_append_new(err, json_integer(t->instances[i].errors[k]));
        }
        json_array_append_new(
            insts, json_pack("{s:s, s:o, s:o}", "id", t->instances[i].id, "requests", req, "errors", err));
    }
    j = json_pack("{s:s, s:o, s:i, s:o}", "node", c->a->node, "from", bp_admin__jtime(t->first_minute * 60),
                  "minute_seconds", 60, "instances", insts);
    bp_free(t);
    bp_admin__json(c, 200, j);
}

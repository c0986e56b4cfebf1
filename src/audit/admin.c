/* Records of administrative changes made with the CLI: written at once, on the CLI's own store
 * connection, so a change and its record land together or the command reports the failure. */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "audit/audit.h"
#include "lib/alloc.h"
#include "lib/clock.h"
#include "store/store.h"

/* The OS account that ran the command: the effective user's name, else $USER, else the uid. */
static char *
os_user(void)
{
    struct passwd *pw = getpwuid(geteuid());
    const char *env;
    char buf[32];

    if (pw != NULL && pw->pw_name != NULL && pw->pw_name[0] != '\0') {
        return bp_strdup(pw->pw_name);
    }
    env = getenv("USER");
    if (env != NULL && env[0] != '\0') {
        return bp_strdup(env);
    }
    snprintf(buf, sizeof(buf), "uid:%u", (unsigned)geteuid());
    return bp_strdup(buf);
}

/* The host the command ran on: the CLI's "node". */
static char *
host_name(void)
{
    char host[256];

    if (gethostname(host, sizeof(host)) != 0) {
        return NULL;
    }
    host[sizeof(host) - 1] = '\0';
    return bp_strdup(host);
}

bp_err
bp_audit_admin(struct bp_store *s, const char *action, const char *resource_id, const char *instance_id)
{
    return bp_audit_admin_op(s, action, resource_id, instance_id, NULL);
}

bp_err
bp_audit_admin_op(struct bp_store *s, const char *action, const char *resource_id, const char *instance_id,
                  const char *operation_id)
{
    return bp_audit_admin_by(s, NULL, action, resource_id, instance_id, operation_id);
}

bp_err
bp_audit_admin_by(struct bp_store *s, const struct bp_audit_admin_actor *actor, const char *action,
                  const char *resource_id, const char *instance_id, const char *operation_id)
{
    struct bp_audit_rec rec = {
        .time_us = bp_clock_wall_us(),
        .request_id = operation_id != NULL ? bp_strdup(operation_id) : NULL,
        .instance_id = instance_id ? bp_strdup(instance_id) : NULL,
        .action = bp_strdup(action),
        .category = bp_strdup(BP_AUDIT_CATEGORY_ADMIN),
        .resource_id = resource_id ? bp_strdup(resource_id) : NULL,
    };
    bp_err rc;

    if (actor == NULL) {
        rec.actor_type = bp_strdup("cli");
        rec.actor_id = os_user();
        rec.node = host_name();
    } else {
        rec.actor_type = bp_strdup(actor->type);
        rec.actor_id = bp_strdup(actor->id);
        rec.actor_name = actor->name != NULL ? bp_strdup(actor->name) : NULL;
        rec.client_addr = actor->client_addr != NULL ? bp_strdup(actor->client_addr) : NULL;
        rec.node = bp_strdup(actor->node);
    }
    rc = bp_store_audit_insert(s, &rec, 1);
    bp_audit_rec_cleanup(&rec);
    return rc;
}

void
bp_audit_rec_free(struct bp_audit_rec *rec)
{
    if (rec == NULL) {
        return;
    }
    bp_audit_rec_cleanup(rec);
    bp_free(rec);
}

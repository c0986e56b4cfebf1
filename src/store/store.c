#include "store/store.h"

#include <stdio.h>
#include <string.h>

#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/secret.h"
#include "store/store-int.h"

/* Picks the backend from the DSN and forwards every call through its ops table, so callers
 * never learn which database they talk to. */

static bool
has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

const char *
bp_store__sqlite_path(const char *dsn)
{
    const char *path = dsn;

    if (dsn == NULL || dsn[0] == '\0' || bp_store_dsn_is_pg(dsn)) {
        return NULL;
    }
    if (has_prefix(dsn, "sqlite:")) {
        path = dsn + strlen("sqlite:");
        if (has_prefix(path, "//")) {
            path += 2;
        }
    }
    return path;
}

bp_err
bp_store_open(const char *dsn, unsigned flags, struct bp_store **out, char *err, size_t err_len)
{
    const char *path;

    if (dsn == NULL || dsn[0] == '\0') {
        snprintf(err, err_len, "empty database name");
        return BP_ERR_INVALID;
    }
    /* The DSN may carry a password: the backend names it masked (bp_store_dsn_mask). */
    if (bp_store_dsn_is_pg(dsn)) {
        return bp_store__pg_open(dsn, flags, out, err, err_len);
    }
    path = bp_store__sqlite_path(dsn);
    if (path[0] == '\0') {
        snprintf(err, err_len, "empty SQLite path");
        return BP_ERR_INVALID;
    }
    return bp_store__sqlite_open(path, flags, out, err, err_len);
}

void
bp_store_close(struct bp_store *s)
{
    char *created;

    if (s == NULL) {
        return;
    }
    created = s->created_path;
    s->ops->close(s);
    bp_free(created);
}

const char *
bp_store_created_path(const struct bp_store *s)
{
    return s->created_path;
}

const char *
bp_store_kind(const struct bp_store *s)
{
    return s->ops->name;
}

const char *
bp_store_last_error(struct bp_store *s)
{
    const char *msg = s->ops->last_error(s);
    return msg != NULL && msg[0] != '\0' ? msg : "unknown store error";
}

bp_err
bp_store_migrate(struct bp_store *s, int *out_applied, int *out_version)
{
    return s->ops->migrate(s, out_applied, out_version);
}

bp_err
bp_store_schema_version(struct bp_store *s, int *out)
{
    return s->ops->schema_version(s, out);
}

bp_err
bp_store_backup(struct bp_store *s, const char *path, unsigned flags, struct bp_store_backup_info *out)
{
    return s->ops->backup(s, path, flags, out);
}

bp_err
bp_store_ping(struct bp_store *s)
{
    return s->ops->ping(s);
}

void
bp_store_set_timeout(struct bp_store *s, int64_t timeout_ms)
{
    if (s->ops->set_timeout != NULL) {
        s->ops->set_timeout(s, timeout_ms);
    }
}

bool
bp_store_connected(struct bp_store *s)
{
    return s->ops->connected == NULL || s->ops->connected(s);
}

bp_err
bp_store_listener_open(struct bp_store *s, struct bp_store_listener **out)
{
    if (s->ops->listener_open == NULL) {
        return BP_ERR_INVALID;
    }
    return s->ops->listener_open(s, out);
}

bp_err
bp_store_change_token(struct bp_store *s, int64_t *out)
{
    return s->ops->change_token(s, out);
}

bp_err
bp_store_change_seq(struct bp_store *s, int64_t *out)
{
    return s->ops->change_seq(s, out);
}

bp_err
bp_store_change_purge(struct bp_store *s, int64_t before)
{
    return s->ops->change_purge(s, before);
}

bp_err
bp_store_changes_since(struct bp_store *s, int64_t after, size_t limit, struct bp_change_rec **out,
                       size_t *out_n, int64_t *out_first)
{
    *out = NULL;
    *out_n = 0;
    *out_first = 0;
    return s->ops->changes_since(s, after, limit, out, out_n, out_first);
}

struct bp_change_rec *
bp_change_rows_take(struct bp_change_row *rows, size_t n, int64_t *out_first)
{
    struct bp_change_rec *recs = NULL;

    *out_first = n > 0 ? rows[0].first : 0;
    if (n > 0) {
        recs = bp_calloc(n, sizeof(*recs));
        for (size_t i = 0; i < n; i++) {
            recs[i] = rows[i].rec;
        }
    }
    bp_free(rows);
    return recs;
}

void
bp_change_recs_free(struct bp_change_rec *recs, size_t n)
{
    if (recs == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        bp_free(recs[i].kind);
        bp_free(recs[i].entity_id);
    }
    bp_free(recs);
}

size_t
bp_store_commit_files(struct bp_store *s, const char **out, size_t max)
{
    return s->ops->commit_files(s, out, max);
}

bp_err
bp_store_watcher_put(struct bp_store *s, const struct bp_watcher_rec *rec)
{
    BP_BUG_ON(rec->id == NULL || rec->host == NULL);
    return s->ops->watcher_put(s, rec);
}

bp_err
bp_store_watcher_delete(struct bp_store *s, const char *id)
{
    return s->ops->watcher_delete(s, id);
}

bp_err
bp_store_watcher_list(struct bp_store *s, struct bp_watcher_rec **out, size_t *out_n)
{
    return s->ops->watcher_list(s, out, out_n);
}

void
bp_watcher_rec_cleanup(struct bp_watcher_rec *rec)
{
    if (rec == NULL) {
        return;
    }
    bp_free(rec->id);
    bp_free(rec->host);
    bp_free(rec->node);
    bp_free(rec->version);
    memset(rec, 0, sizeof(*rec));
}

void
bp_watcher_recs_free(struct bp_watcher_rec *recs, size_t n)
{
    if (recs == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        bp_watcher_rec_cleanup(&recs[i]);
    }
    bp_free(recs);
}

bp_err
bp_store_instance_insert(struct bp_store *s, const struct bp_instance_rec *rec)
{
    BP_BUG_ON(rec->id == NULL || rec->name == NULL || rec->url == NULL);
    return s->ops->instance_insert(s, rec);
}

bp_err
bp_store_instance_update(struct bp_store *s, const struct bp_instance_rec *rec)
{
    BP_BUG_ON(rec->id == NULL || rec->name == NULL || rec->url == NULL);
    return s->ops->instance_update(s, rec);
}

bp_err
bp_store_instance_get(struct bp_store *s, const char *id, struct bp_instance_rec *out)
{
    return s->ops->instance_get(s, id, out);
}

bp_err
bp_store_instance_delete(struct bp_store *s, const char *id)
{
    return s->ops->instance_delete(s, id);
}

bp_err
bp_store_instance_list(struct bp_store *s, struct bp_instance_rec **out, size_t *out_n)
{
    return s->ops->instance_list(s, out, out_n);
}

void
bp_instance_rec_cleanup(struct bp_instance_rec *rec)
{
    if (rec == NULL) {
        return;
    }
    if (rec->secret_key != NULL) {
        bp_wipe(rec->secret_key, rec->secret_key_len);
    }
    bp_free(rec->id);
    bp_free(rec->name);
    bp_free(rec->url);
    bp_free(rec->secret_key);
    bp_free(rec->ca_file);
    memset(rec, 0, sizeof(*rec));
}

void
bp_instance_recs_free(struct bp_instance_rec *recs, size_t n)
{
    if (recs == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        bp_instance_rec_cleanup(&recs[i]);
    }
    bp_free(recs);
}

bp_err
bp_store_key_insert(struct bp_store *s, const struct bp_key_rec *rec)
{
    BP_BUG_ON(rec->id == NULL || rec->name == NULL || rec->prefix == NULL || rec->scopes == NULL);
    return s->ops->key_insert(s, rec);
}

bp_err
bp_store_key_get(struct bp_store *s, const char *id, struct bp_key_rec *out)
{
    return s->ops->key_get(s, id, out);
}

bp_err
bp_store_key_list(struct bp_store *s, struct bp_key_rec **out, size_t *out_n)
{
    return s->ops->key_list(s, out, out_n);
}

bp_err
bp_store_key_each(struct bp_store *s, bp_err (*fn)(const struct bp_key_rec *k, void *arg), void *arg)
{
    return s->ops->key_each(s, fn, arg);
}

bp_err
bp_store_key_revoke(struct bp_store *s, const char *id, int64_t now)
{
    return s->ops->key_revoke(s, id, now);
}

bp_err
bp_store_key_link(struct bp_store *s, const char *old_id, const char *new_id)
{
    return s->ops->key_link(s, old_id, new_id);
}

static bool
same_text(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

bp_err
bp_store_key_rotate(struct bp_store *s, const struct bp_key_rec *fresh, const char *old_id, int64_t old_until)
{
    struct bp_key_rec now = {0};
    bp_err err = bp_store_key_insert(s, fresh);

    if (err == BP_OK) {
        /* The link is written only where there is none, to a key not revoked: of two rotations
         * at once, the second waits for the first's row (PostgreSQL) or transaction (SQLite),
         * then finds it; a revocation that came first is found the same way. */
        err = bp_store_key_link(s, old_id, fresh->id);
        err = err == BP_ERR_NOT_FOUND ? BP_ERR_EXISTS : err;
    }
    if (err == BP_OK) {
        /* fresh inherited what the caller read before this transaction began: a change made
         * since (a narrower allow-list, another expiry) would not follow the key. Now that the
         * old row is ours, it is read again; changed, the rotation is refused (try again). */
        err = bp_store_key_get(s, old_id, &now);
        if (err == BP_OK &&
            (!same_text(now.name, fresh->name) || !same_text(now.scopes, fresh->scopes) ||
             !same_text(now.instances, fresh->instances) || !same_text(now.allow_from, fresh->allow_from) ||
             !same_text(now.rate_limit, fresh->rate_limit) || now.rate_burst != fresh->rate_burst ||
             now.expires_at != fresh->expires_at || now.revoked)) {
            err = BP_ERR_EXISTS;
        }
        bp_key_rec_cleanup(&now);
    }
    if (err == BP_OK) {
        err = bp_store_key_set_expiry(s, old_id, old_until);
    }
    return err;
}

bp_err
bp_store_key_links(struct bp_store *s, const char *id, char **out_replaces, char **out_replaced_by)
{
    *out_replaces = NULL;
    *out_replaced_by = NULL;
    return s->ops->key_links(s, id, out_replaces, out_replaced_by);
}

bp_err
bp_store_key_set_expiry(struct bp_store *s, const char *id, int64_t expires_at)
{
    return s->ops->key_set_expiry(s, id, expires_at);
}

bp_err
bp_store_key_set_allow_from(struct bp_store *s, const char *id, const char *allow_from)
{
    return s->ops->key_set_allow_from(s, id, allow_from);
}

bp_err
bp_store_key_set_rate(struct bp_store *s, const char *id, const char *rate_limit, int64_t burst)
{
    return s->ops->key_set_rate(s, id, rate_limit, burst);
}

bp_err
bp_store_key_touch(struct bp_store *s, const char *const *ids, const int64_t *at, size_t n)
{
    if (n == 0) {
        return BP_OK;
    }
    return s->ops->key_touch(s, ids, at, n);
}

void
bp_key_rec_inherit(struct bp_key_rec *fresh, const struct bp_key_rec *old)
{
    fresh->name = bp_strdup(old->name);
    fresh->scopes = bp_strdup(old->scopes);
    fresh->instances = old->instances != NULL ? bp_strdup(old->instances) : NULL;
    fresh->allow_from = old->allow_from != NULL ? bp_strdup(old->allow_from) : NULL;
    fresh->rate_limit = old->rate_limit != NULL ? bp_strdup(old->rate_limit) : NULL;
    fresh->rate_burst = old->rate_burst;
    fresh->expires_at = old->expires_at;
}

void
bp_key_rec_cleanup(struct bp_key_rec *rec)
{
    if (rec == NULL) {
        return;
    }
    bp_free(rec->id);
    bp_free(rec->name);
    bp_free(rec->prefix);
    bp_free(rec->scopes);
    bp_free(rec->instances);
    bp_free(rec->allow_from);
    bp_free(rec->rate_limit);
    bp_free(rec->replaces);
    bp_free(rec->replaced_by);
    memset(rec, 0, sizeof(*rec));
}

void
bp_key_recs_free(struct bp_key_rec *recs, size_t n)
{
    if (recs == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        bp_key_rec_cleanup(&recs[i]);
    }
    bp_free(recs);
}

bp_err
bp_store_begin(struct bp_store *s)
{
    return s->ops->begin(s);
}

bp_err
bp_store_commit(struct bp_store *s)
{
    return s->ops->commit(s);
}

void
bp_store_rollback(struct bp_store *s)
{
    s->ops->rollback(s);
}

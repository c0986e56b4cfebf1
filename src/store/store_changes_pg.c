/* PostgreSQL backend: reading and trimming the change log (migration 4, migrations_pg.c), and the
 * schema version, for the interface the change watcher grows next (issue 8's watcher work puts
 * change_seq, change_purge and schema_version in struct bp_store_ops; these are their PostgreSQL
 * halves, wired where that table gains the entries).
 *
 * The triggers take the CHANGES lock until commit, so MAX(seq) only ever shows a prefix of the
 * log: a reader that saw seq n has seen every change logged before it. The purge keeps the newest
 * row, so MAX(seq) never goes back. */
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "store/pg-int.h"

bp_err
bp_pg__change_seq(struct bp_store *s, int64_t *out)
{
    struct pg_store *st = bp_pg__of(s);
    PGresult *res = NULL;
    bp_err err = bp_pg__run(st, "SELECT COALESCE(MAX(seq), 0) FROM changes", NULL, &res);

    if (err == BP_OK) {
        *out = bp_pg__col_int(res, 0, 0);
    }
    bp_pq.PQclear(res);
    return err;
}

bp_err
bp_pg__change_purge(struct bp_store *s, int64_t before)
{
    struct bp_pg_params p = {0};

    bp_pg__p_int(&p, before);
    return bp_pg__run(bp_pg__of(s),
                      "DELETE FROM changes WHERE seq < (SELECT MAX(seq) FROM changes WHERE at < $1)"
                      " AND seq < (SELECT MAX(seq) FROM changes)",
                      &p, NULL);
}

static void
read_change(const PGresult *res, int row, void *out)
{
    struct bp_change_row *r = out;

    r->rec.seq = bp_pg__col_int(res, row, 0);
    r->rec.kind = bp_pg__col_dup(res, row, 1);
    r->rec.entity_id = bp_pg__col_dup(res, row, 2);
    r->first = bp_pg__col_int(res, row, 3);
}

bp_err
bp_pg__changes_since(struct bp_store *s, int64_t after, size_t limit, struct bp_change_rec **out, size_t *out_n,
                     int64_t *out_first)
{
    struct bp_pg_params p = {0};
    void *recs = NULL;
    size_t n = 0;
    bp_err err;

    bp_pg__p_int(&p, after);
    bp_pg__p_int(&p, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
    /* One statement, one snapshot. When no row is after `after`, nothing can be missing (the
     * purge keeps the newest row), so the first seq is only needed alongside rows. */
    err = bp_pg__collect(bp_pg__of(s),
                         "SELECT seq, kind, entity_id, (SELECT MIN(seq) FROM changes)"
                         "  FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2",
                         &p, sizeof(struct bp_change_row), read_change, &recs, &n);
    if (err != BP_OK) {
        return err;
    }
    *out = bp_change_rows_take(recs, n, out_first);
    *out_n = n;
    return BP_OK;
}

bp_err
bp_pg__schema_version(struct bp_store *s, int *out)
{
    struct pg_store *st = bp_pg__of(s);
    PGresult *res = NULL;
    /* Two statements: one naming schema_migrations fails to parse where the table is missing,
     * even inside a CASE that would not run it. */
    bp_err err = bp_pg__run(st, "SELECT to_regclass('schema_migrations') IS NOT NULL", NULL, &res);
    bool exists = err == BP_OK && bp_pg__col_bool(res, 0, 0);

    bp_pq.PQclear(res);
    res = NULL;
    if (err != BP_OK || !exists) {
        if (err == BP_OK) {
            *out = 0;
        }
        return err;
    }
    err = bp_pg__run(st, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", NULL, &res);
    if (err == BP_OK) {
        *out = (int)bp_pg__col_int(res, 0, 0);
    }
    bp_pq.PQclear(res);
    return err;
}

/* ---- servers' reports (watchers) ---- */

#define WATCHER_COLS "id, host, pid, seq, seen_at, node, version, started_at"

bp_err
bp_pg__watcher_put(struct bp_store *s, const struct bp_watcher_rec *rec)
{
    struct bp_pg_params p = {0};

    bp_pg__p_text(&p, rec->id);
    bp_pg__p_text(&p, rec->host);
    bp_pg__p_int(&p, rec->pid);
    bp_pg__p_int(&p, rec->seq);
    bp_pg__p_int(&p, rec->seen_at);
    bp_pg__p_text(&p, rec->node);
    bp_pg__p_text(&p, rec->version);
    bp_pg__p_int(&p, rec->started_at);
    return bp_pg__run(bp_pg__of(s),
                      "INSERT INTO watchers (" WATCHER_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                      " ON CONFLICT (id) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid,"
                      " seq = EXCLUDED.seq, seen_at = EXCLUDED.seen_at, node = EXCLUDED.node,"
                      " version = EXCLUDED.version, started_at = EXCLUDED.started_at",
                      &p, NULL);
}

bp_err
bp_pg__watcher_delete(struct bp_store *s, const char *id)
{
    struct bp_pg_params p = {0};

    bp_pg__p_text(&p, id);
    return bp_pg__change_one(bp_pg__of(s), "DELETE FROM watchers WHERE id = $1", &p);
}

static void
read_watcher(const PGresult *res, int row, void *out)
{
    struct bp_watcher_rec *rec = out;

    memset(rec, 0, sizeof(*rec));
    rec->id = bp_pg__col_dup(res, row, 0);
    rec->host = bp_pg__col_dup(res, row, 1);
    rec->pid = bp_pg__col_int(res, row, 2);
    rec->seq = bp_pg__col_int(res, row, 3);
    rec->seen_at = bp_pg__col_int(res, row, 4);
    rec->node = bp_pg__col_dup(res, row, 5);
    rec->version = bp_pg__col_dup(res, row, 6);
    rec->started_at = bp_pg__col_int(res, row, 7);
}

bp_err
bp_pg__watcher_list(struct bp_store *s, struct bp_watcher_rec **out, size_t *out_n)
{
    void *recs = NULL;
    bp_err err = bp_pg__collect(bp_pg__of(s), "SELECT " WATCHER_COLS " FROM watchers ORDER BY id", NULL,
                                sizeof(struct bp_watcher_rec), read_watcher, &recs, out_n);

    if (err == BP_OK) {
        *out = recs;
    }
    return err;
}

/* No file to watch: servers LISTEN for the change log's notifications (store_listen_pg.c). */
size_t
bp_pg__commit_files(struct bp_store *s, const char **out, size_t max)
{
    (void)s;
    (void)out;
    (void)max;
    return 0;
}

/* A consistent copy of a PostgreSQL database is pg_dump's job (README "Backup and restore"). */
bp_err
bp_pg__backup(struct bp_store *s, const char *path, unsigned flags, struct bp_store_backup_info *out)
{
    struct pg_store *st = bp_pg__of(s);

    (void)path;
    (void)flags;
    (void)out;
    snprintf(st->errmsg, sizeof(st->errmsg),
             "a PostgreSQL store is backed up with pg_dump, not copied by blnkproxy (README, \"Backup and restore\")");
    return BP_ERR_INVALID;
}

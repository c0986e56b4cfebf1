/* PostgreSQL backend: reading and trimming the change log (migration 4, migrations_pg.c), and the
 * schema version, for the interface the change watcher grows next (issue 8's watcher work puts
 * change_seq, change_purge and schema_version in struct bp_store_ops; these are their PostgreSQL
 * halves, wired where that table gains the entries).
 *
 * The triggers take the CHANGES lock until commit, so MAX(seq) only ever shows a prefix of the
 * log: a reader that saw seq n has seen every change logged before it. The purge keeps the newest
 * row, so MAX(seq) never goes back. */
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
    PQclear(res);
    return err;
}

bp_err
bp_pg__change_purge(struct bp_store *s, int64_t before)
{
    struct bp_pg_params p = {0};

    bp_pg__p_int(&p, before);
    return bp_pg__run(bp_pg__of(s),
                      "DELETE FROM changes WHERE at < $1 AND seq < (SELECT MAX(seq) FROM changes)", &p, NULL);
}

bp_err
bp_pg__schema_version(struct bp_store *s, int *out)
{
    struct pg_store *st = bp_pg__of(s);
    PGresult *res = NULL;
    bp_err err = bp_pg__run(st,
                            "SELECT CASE WHEN to_regclass('schema_migrations') IS NULL THEN 0"
                            " ELSE (SELECT COALESCE(MAX(version), 0) FROM schema_migrations) END",
                            NULL, &res);

    if (err == BP_OK) {
        *out = (int)bp_pg__col_int(res, 0, 0);
    }
    PQclear(res);
    return err;
}

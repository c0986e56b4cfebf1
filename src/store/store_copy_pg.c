/* PostgreSQL backend: what `db copy` needs of its target (issue 9 item 8, store_copy.c). All of
 * it runs inside the transaction the copy holds, so a failure leaves the database as it was. */
#include <stdio.h>

#include <libpq-fe.h>

#include "store/pg-int.h"

bp_err
bp_pg__count_rows(struct bp_store *s, const char *table, int64_t *out)
{
    struct pg_store *st = bp_pg__of(s);
    PGresult *res = NULL;
    char sql[96];
    bp_err err;

    /* table is one of store_copy.c's constant names, never input. */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
    err = bp_pg__run(st, sql, NULL, &res);
    if (err == BP_OK) {
        *out = bp_pg__col_int(res, 0, 0);
    }
    bp_pq.PQclear(res);
    return err;
}

bp_err
bp_pg__snapshot_begin(struct bp_store *s)
{
    return bp_pg__exec(bp_pg__of(s), "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
}

void
bp_pg__snapshot_end(struct bp_store *s)
{
    bp_pg__rollback(bp_pg__of(s));
}

/* Children first: tokens and codes name their client. DELETE, not TRUNCATE: the change log's
 * triggers see it, so servers running on this database drop what they held. */
bp_err
bp_pg__copy_clear(struct bp_store *s)
{
    return bp_pg__exec(bp_pg__of(s), "DELETE FROM audit_log; DELETE FROM audit_chains; DELETE FROM audit_checkpoints;"
                                     " DELETE FROM oauth_sessions; DELETE FROM admin_tokens; DELETE FROM oauth_codes;"
                                     " DELETE FROM oauth_tokens; DELETE FROM oauth_operators;"
                                     " DELETE FROM oauth_clients; DELETE FROM api_keys; DELETE FROM instances");
}

/* Audit records were inserted with their own seq (OVERRIDING SYSTEM VALUE): the identity must
 * hand out numbers after the largest, or the next record would collide. */
bp_err
bp_pg__copy_done(struct bp_store *s)
{
    return bp_pg__exec(bp_pg__of(s), "SELECT setval(pg_get_serial_sequence('audit_log', 'seq'),"
                                     " GREATEST((SELECT max(seq) FROM audit_log), 1),"
                                     " (SELECT max(seq) FROM audit_log) IS NOT NULL)");
}

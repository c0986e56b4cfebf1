#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
/* clang-format off: cmocka needs the four headers above first */
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "lib/alloc.h"
#include "lib/clock.h"
#include "store/pg-int.h"
#include "store/store-int.h"
#include "store/store.h"
#include "testdb.h"
#include "trail/trail.h"

/* The tamper-evident trail (issue 13) on SQLite and, in the _pg run, PostgreSQL: records of
 * several writers land in one chain each; `verify` finds every single edit, deletion, reorder or
 * insertion made behind the store's back; a checkpoint catches a chain rewritten whole; a purge
 * removes only chain prefixes and leaves a signed checkpoint, so what remains still verifies. */

#define T0 1700000000000000LL

static int
setup(void **state)
{
    return bp_testdb_store_setup(state, "store_trail");
}

static struct bp_audit_rec
mk(const char *node, int64_t t_s, int i)
{
    char action[32];

    snprintf(action, sizeof(action), "Ledger created %d", i);
    return (struct bp_audit_rec){
        .time_us = T0 + t_s * 1000000,
        .node = bp_strdup(node),
        .request_id = bp_strdup("req-1"),
        .actor_type = bp_strdup("api_key"),
        .actor_id = bp_strdup("key_1"),
        .method = bp_strdup("POST"),
        .route = bp_strdup("/ledgers"),
        .path = bp_strdup("/ledgers"),
        .action = bp_strdup(action),
        .category = bp_strdup("ledgers"),
        .core_status = 201,
        .status = 201,
        .latency_us = 1000 + i,
        .client_addr = bp_strdup("127.0.0.1"),
    };
}

/* n records of node at t_s, t_s + 1, … (one batch). */
static void
put(struct bp_store *s, const char *node, int64_t t_s, int n)
{
    struct bp_audit_rec *recs = bp_calloc((size_t)n, sizeof(*recs));

    for (int i = 0; i < n; i++) {
        recs[i] = mk(node, t_s + i, i);
    }
    assert_int_equal(bp_store_audit_insert(s, recs, (size_t)n), BP_OK);
    bp_audit_recs_free(recs, (size_t)n);
}

/* Three writers, interleaved, one batch mixing two of them: 10 + 8 + 3 records. */
static void
fill(struct bp_store *s)
{
    struct bp_audit_rec mixed[4] = {mk("node-a", 100, 1), mk("node-b", 100, 2), mk("node-a", 101, 3),
                                    mk("node-b", 101, 4)};

    put(s, "node-a", 0, 4);
    put(s, "node-b", 0, 3);
    put(s, "cli-host", 5, 3);
    assert_int_equal(bp_store_audit_insert(s, mixed, 4), BP_OK);
    for (int i = 0; i < 4; i++) {
        bp_audit_rec_cleanup(&mixed[i]);
    }
    put(s, "node-a", 200, 4);
    put(s, "node-b", 200, 3);
}

static struct bp_trail_report
verify(struct bp_store *s, const struct bp_trail_verify_opts *o)
{
    struct bp_trail_verify_opts none = {0};
    struct bp_trail_report r;

    assert_int_equal(bp_trail_verify(s, o != NULL ? o : &none, &r), BP_OK);
    return r;
}

static void
expect_intact(struct bp_store *s, const struct bp_trail_verify_opts *o)
{
    struct bp_trail_report r = verify(s, o);

    if (r.broken) {
        fail_msg("unexpected break: %s", r.first_break);
    }
}

static void
expect_break(struct bp_store *s, const struct bp_trail_verify_opts *o, const char *what)
{
    struct bp_trail_report r = verify(s, o);

    assert_true(r.broken);
    if (strstr(r.first_break, what) == NULL) {
        fail_msg("break \"%s\" does not say \"%s\"", r.first_break, what);
    }
}

/* An Ed25519 private key in a PEM file under the test's directory. */
static void
make_key(const struct bp_testdb *db, char path[300])
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    FILE *f;

    assert_non_null(k);
    snprintf(path, 300, "%s/signing.pem", db->dir);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    EVP_PKEY_free(k);
}

static void
test_each_writer_has_its_chain(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_audit_head *heads = NULL;
    struct bp_audit_rec *recs = NULL;
    size_t n = 0;
    struct bp_trail_report r;

    fill(f->s);
    assert_int_equal(bp_store_audit_heads(f->s, &heads, &n), BP_OK);
    assert_int_equal(n, 3);
    assert_string_equal(heads[0].chain, "cli-host");
    assert_int_equal(heads[0].n, 3);
    assert_string_equal(heads[1].chain, "node-a");
    assert_int_equal(heads[1].n, 10);
    assert_string_equal(heads[2].chain, "node-b");
    assert_int_equal(heads[2].n, 8);
    /* Each record links to the one before it in its chain and hashes to what it holds. */
    assert_int_equal(bp_store_audit_chain_page(f->s, "node-a", 0, 100, &recs, &n), BP_OK);
    assert_int_equal(n, 10);
    assert_string_equal(recs[0].prev_hash,
                        "0000000000000000000000000000000000000000000000000000000000000000");
    for (size_t i = 0; i < n; i++) {
        char d[BP_AUDIT_HEX];
        assert_int_equal(recs[i].chain_n, (int64_t)i + 1);
        bp_store_audit_digest(&recs[i], d);
        assert_string_equal(d, recs[i].hash);
        if (i > 0) {
            assert_string_equal(recs[i].prev_hash, recs[i - 1].hash);
            assert_true(recs[i].seq > recs[i - 1].seq);
        }
    }
    assert_string_equal(recs[n - 1].hash, heads[1].head);
    bp_audit_recs_free(recs, n);
    bp_audit_heads_free(heads, 3);
    r = verify(f->s, NULL);
    assert_false(r.broken);
    assert_int_equal(r.records, 21);
    assert_int_equal(r.chains, 3);
}

/* The same records inserted again (a spool imported twice), and a batch naming one id twice:
 * each stored once, the chains unchanged and still whole. */
static void
test_repeats_leave_the_chain_whole(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_audit_rec recs[3] = {mk("node-a", 0, 0), mk("node-a", 1, 1), mk("node-a", 2, 2)};
    struct bp_audit_rec again[3];
    struct bp_audit_head *heads = NULL;
    size_t n = 0;

    assert_int_equal(bp_store_audit_insert(f->s, recs, 3), BP_OK);
    for (int i = 0; i < 3; i++) {
        again[i] = mk("node-a", i, i);
        again[i].id = bp_strdup(recs[i].id);
    }
    bp_free(again[2].id);
    again[2].id = bp_strdup(recs[0].id);
    bp_free(again[1].id);
    again[1].id = NULL; /* a new one */
    assert_int_equal(bp_store_audit_insert(f->s, again, 3), BP_OK);
    assert_int_equal(again[0].seq, 0);
    assert_true(again[1].seq > 0);
    assert_int_equal(again[2].seq, 0);
    assert_int_equal(bp_store_audit_heads(f->s, &heads, &n), BP_OK);
    assert_int_equal(n, 1);
    assert_int_equal(heads[0].n, 4);
    bp_audit_heads_free(heads, n);
    expect_intact(f->s, NULL);
    for (int i = 0; i < 3; i++) {
        bp_audit_rec_cleanup(&recs[i]);
        bp_audit_rec_cleanup(&again[i]);
    }
}

/* Two processes that share a node name append to one chain: each finds the head the other
 * moved (on PostgreSQL its one-statement append sees the head changed and takes the lock). */
static void
test_two_writers_share_a_chain(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_store *other = bp_testdb_open(&f->db);
    struct bp_audit_head *heads = NULL;
    size_t n = 0;

    for (int round = 0; round < 6; round++) {
        put(f->s, "node-a", round * 10, 3);
        put(f->s, "node-a", round * 10 + 3, 2);
        put(other, "node-a", round * 10 + 5, 4);
    }
    assert_int_equal(bp_store_audit_heads(f->s, &heads, &n), BP_OK);
    assert_int_equal(n, 1);
    assert_int_equal(heads[0].n, 6 * 9);
    bp_audit_heads_free(heads, n);
    expect_intact(f->s, NULL);
    bp_store_close(other);
}

/* Each change someone with write access to the database could make, one at a time, each undone
 * before the next: verify names it. */
/* Puts rows of the table saved back (PostgreSQL's seq takes a given value only when told). */
static void
restore(const struct bp_testdb *db, const char *where)
{
    char sql[256];

    snprintf(sql, sizeof(sql), "INSERT INTO audit_log %s SELECT * FROM saved WHERE %s",
             bp_testdb_is_pg() ? "OVERRIDING SYSTEM VALUE" : "", where);
    bp_testdb_exec(db, sql);
}

/* Swaps the seqs of records 2 and 3 of node-b (PostgreSQL: seq must first accept given values,
 * as an attacker with the table's owner rights can make it). */
static void
swap_seqs(const struct bp_testdb *db)
{
    if (bp_testdb_is_pg()) {
        bp_testdb_exec(db, "ALTER TABLE audit_log ALTER COLUMN seq SET GENERATED BY DEFAULT");
    }
    bp_testdb_exec(db, "CREATE TABLE sw AS SELECT chain_n, seq FROM audit_log WHERE chain = 'node-b'"
                       " AND chain_n IN (2, 3)");
    bp_testdb_exec(db, "UPDATE audit_log SET seq = -seq WHERE chain = 'node-b' AND chain_n IN (2, 3)");
    bp_testdb_exec(db,
                   "UPDATE audit_log SET seq = (SELECT seq FROM sw WHERE sw.chain_n = 5 - audit_log.chain_n)"
                   " WHERE chain = 'node-b' AND chain_n IN (2, 3)");
    bp_testdb_exec(db, "DROP TABLE sw");
    if (bp_testdb_is_pg()) {
        bp_testdb_exec(db, "ALTER TABLE audit_log ALTER COLUMN seq SET GENERATED ALWAYS");
    }
}

/* Swaps the places (chain_n) of records 1 and 2 of cli-host; twice puts them back. */
static void
swap_places(const struct bp_testdb *db)
{
    bp_testdb_exec(db,
                   "UPDATE audit_log SET chain_n = -chain_n WHERE chain = 'cli-host' AND chain_n IN (1, 2)");
    bp_testdb_exec(
        db, "UPDATE audit_log SET chain_n = 3 + chain_n WHERE chain = 'cli-host' AND chain_n IN (-1, -2)");
}

static void
test_every_single_change_is_found(void **state)
{
    struct bp_testdb_store *f = *state;
    const struct bp_testdb *db = &f->db;

    fill(f->s);
    expect_intact(f->s, NULL);

    /* An edited field. */
    bp_testdb_exec(db, "UPDATE audit_log SET status = 200 WHERE chain = 'node-b' AND chain_n = 4");
    expect_break(f->s, NULL, "chain node-b: record 4 (");
    bp_testdb_exec(db, "UPDATE audit_log SET status = 201 WHERE chain = 'node-b' AND chain_n = 4");
    expect_intact(f->s, NULL);
    /* An edited time, and a NULL made empty. */
    bp_testdb_exec(db, "UPDATE audit_log SET time_us = time_us + 1 WHERE chain = 'node-a' AND chain_n = 7");
    expect_break(f->s, NULL, "record 7");
    bp_testdb_exec(db, "UPDATE audit_log SET time_us = time_us - 1 WHERE chain = 'node-a' AND chain_n = 7");
    bp_testdb_exec(db, "UPDATE audit_log SET error = '' WHERE chain = 'node-a' AND chain_n = 2");
    expect_break(f->s, NULL, "was changed");
    bp_testdb_exec(db, "UPDATE audit_log SET error = NULL WHERE chain = 'node-a' AND chain_n = 2");
    expect_intact(f->s, NULL);

    /* A record removed from the middle, then from the end, then the first. */
    bp_testdb_exec(
        db, "CREATE TABLE saved AS SELECT * FROM audit_log WHERE chain = 'node-a' AND chain_n IN (1, 5, 10)");
    bp_testdb_exec(db, "DELETE FROM audit_log WHERE chain = 'node-a' AND chain_n = 5");
    expect_break(f->s, NULL, "record 5 is missing");
    bp_testdb_exec(db, "DELETE FROM audit_log WHERE chain = 'node-a' AND chain_n IN (5, 10)");
    restore(db, "chain_n = 5");
    expect_break(f->s, NULL, "records after 9 were removed");
    bp_testdb_exec(db, "DELETE FROM audit_log WHERE chain = 'node-a' AND chain_n = 1");
    restore(db, "chain_n = 10");
    expect_break(f->s, NULL, "records 1 to 1 are missing");
    restore(db, "chain_n = 1");
    expect_intact(f->s, NULL);

    /* Two records of a chain swapped in seq order (what `audit list` shows first). */
    swap_seqs(db);
    expect_break(f->s, NULL, "reordered");
    swap_seqs(db);
    expect_intact(f->s, NULL);
    /* Two records' places swapped (their chain_n). */
    swap_places(db);
    expect_break(f->s, NULL, "chain cli-host: record 1");
    swap_places(db);
    expect_intact(f->s, NULL);

    /* A row added by hand: outside any chain, then in a chain of its own making. */
    bp_testdb_exec(db,
                   "INSERT INTO audit_log (time_us, actor_type, action, id) VALUES (1, 'cli', 'Key created',"
                   " 'audit_forged')");
    expect_break(f->s, NULL, "belong to no chain");
    bp_testdb_exec(db, "UPDATE audit_log SET chain = 'node-z', chain_n = 1 WHERE id = 'audit_forged'");
    expect_break(f->s, NULL, "chain node-z, which has no head");
    bp_testdb_exec(db, "DELETE FROM audit_log WHERE id = 'audit_forged'");
    expect_intact(f->s, NULL);
    /* A head moved back to hide the end of its chain. */
    bp_testdb_exec(db, "UPDATE audit_chains SET n = n - 1 WHERE chain = 'node-b'");
    expect_break(f->s, NULL, "chain node-b: the last record is 8 but its head counts 7");
    bp_testdb_exec(db, "UPDATE audit_chains SET n = n + 1 WHERE chain = 'node-b'");
    expect_intact(f->s, NULL);
}

/* Someone who knows the algorithm cuts the end of a chain and sets its head to match: the chain
 * alone verifies, the signed checkpoint taken before does not. */
static void
test_checkpoint_catches_a_rewritten_chain(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_trail_key *key;
    struct bp_trail_report r;
    char path[300];
    char err[256];
    char *cp = NULL;
    char sql[512];
    char prev[BP_AUDIT_HEX];
    struct bp_audit_rec *recs = NULL;
    size_t n = 0;

    fill(f->s);
    make_key(&f->db, path);
    key = bp_trail_key_load(path, true, err, sizeof(err));
    assert_non_null(key);
    assert_int_equal(bp_trail_checkpoint(f->s, "manual", "t", key, false, &cp), BP_OK);
    assert_non_null(cp);
    assert_non_null(strstr(cp, "\"signature\":\""));
    {
        struct bp_trail_verify_opts o = {.checkpoint_text = cp, .key = key};
        r = verify(f->s, &o);
        assert_false(r.broken);
        assert_int_equal(r.checkpoint_matched, 3);
        assert_int_equal(r.signatures_checked, 1);
    }
    put(f->s, "node-a", 300, 2); /* later records are no break */
    assert_int_equal(bp_store_audit_chain_page(f->s, "node-b", 6, 1, &recs, &n), BP_OK);
    assert_int_equal(n, 1);
    memcpy(prev, recs[0].hash, BP_AUDIT_HEX);
    bp_audit_recs_free(recs, n);
    bp_testdb_exec(&f->db, "DELETE FROM audit_log WHERE chain = 'node-b' AND chain_n > 7");
    snprintf(sql, sizeof(sql), "UPDATE audit_chains SET n = 7, head = '%s' WHERE chain = 'node-b'", prev);
    bp_testdb_exec(&f->db, sql);
    expect_intact(f->s, NULL);
    {
        struct bp_trail_verify_opts o = {.checkpoint_text = cp, .key = key};
        expect_break(f->s, &o, "chain node-b has 7 records where the checkpoint counted 8");
    }
    /* A checkpoint file edited to match: its signature no longer holds. */
    {
        char *edited = bp_strdup(cp);
        char *at = strstr(edited, "\"n\":8");
        assert_non_null(at);
        at[4] = '7';
        struct bp_trail_verify_opts o = {.checkpoint_text = edited, .key = key};
        expect_break(f->s, &o, "does not carry a valid signature");
        bp_free(edited);
    }
    bp_free(cp);
    bp_trail_key_free(key);
}

/* Retention: each chain loses only its prefix of old records, behind a signed checkpoint; what
 * stays verifies, the checkpoint must not be touched, and a prefix removed without one is found. */
static void
test_purge_keeps_the_trail_verifiable(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_trail_key *key;
    struct bp_audit_checkpoint *cps = NULL;
    struct bp_trail_report r;
    char path[300];
    char err[256];
    char *before = NULL;
    size_t n = 0;
    int64_t deleted = 0;

    fill(f->s);
    make_key(&f->db, path);
    key = bp_trail_key_load(path, true, err, sizeof(err));
    assert_non_null(key);
    assert_int_equal(bp_trail_checkpoint(f->s, "manual", "t", key, false, &before), BP_OK);
    /* node-a: 0..3 and 100, 101 are older than 150 s; cli-host: all (5..7); node-b: 0..2, 100, 101. */
    assert_int_equal(bp_trail_purge(f->s, T0 + 150 * 1000000LL, "t", key, &deleted), BP_OK);
    assert_int_equal(deleted, 6 + 3 + 5);
    assert_int_equal(bp_store_audit_checkpoint_list(f->s, 0, "purge", 0, &cps, &n), BP_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(cps[i].signature);
    }
    bp_audit_checkpoints_free(cps, n);
    {
        struct bp_trail_verify_opts o = {.key = key, .checkpoint_text = before};
        r = verify(f->s, &o);
        if (r.broken) {
            fail_msg("%s", r.first_break);
        }
        assert_int_equal(r.records, 4 + 3);
        assert_int_equal(r.purged, 3);
        /* The heads of then: node-a's and node-b's records are still there, cli-host's purged. */
        assert_int_equal(r.checkpoint_matched, 2);
        assert_int_equal(r.checkpoint_purged, 1);
        assert_int_equal(r.signatures_checked, 3 + 1); /* the purges' and the given one's */
    }
    /* Nothing left to purge: no new checkpoint. */
    assert_int_equal(bp_trail_purge(f->s, T0 + 150 * 1000000LL, "t", key, &deleted), BP_OK);
    assert_int_equal(deleted, 0);
    assert_int_equal(bp_store_audit_checkpoint_list(f->s, 0, "purge", 0, &cps, &n), BP_OK);
    assert_int_equal(n, 3);
    bp_audit_checkpoints_free(cps, n);
    /* A purge checkpoint edited: with the key, found. */
    bp_testdb_exec(&f->db,
                   "UPDATE audit_checkpoints SET body = replace(body, '\"records\":6', '\"records\":5')"
                   " WHERE kind = 'purge'");
    {
        struct bp_trail_verify_opts o = {.key = key};
        expect_break(f->s, &o, "does not carry a valid signature");
    }
    /* More of a chain's start removed than any checkpoint accounts for. */
    bp_testdb_exec(&f->db, "DELETE FROM audit_log WHERE chain = 'node-b' AND chain_n = 6");
    expect_break(f->s, NULL, "chain node-b: records 1 to 6 are missing");
    bp_free(before);
    bp_trail_key_free(key);
}

/* Checkpoints older than the cut-off go with the records, except each chain's latest purge
 * checkpoint, where verify starts it: the table does not grow for ever. */
static void
test_purge_forgets_old_checkpoints(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_audit_checkpoint *cps = NULL;
    struct bp_trail_report r;
    size_t n = 0;
    int64_t deleted = 0;

    fill(f->s);
    assert_int_equal(bp_trail_checkpoint(f->s, "manual", "t", NULL, false, NULL), BP_OK);
    assert_int_equal(bp_trail_purge(f->s, T0 + 150 * 1000000LL, "t", NULL, &deleted), BP_OK);
    assert_int_equal(deleted, 14);
    assert_int_equal(bp_store_audit_checkpoint_list(f->s, 0, NULL, 0, &cps, &n), BP_OK);
    assert_int_equal(n, 1 + 3);
    bp_audit_checkpoints_free(cps, n);
    /* A limit gives the oldest ones. */
    assert_int_equal(bp_store_audit_checkpoint_list(f->s, 0, NULL, 2, &cps, &n), BP_OK);
    assert_int_equal(n, 2);
    assert_true(cps[0].time_us <= cps[1].time_us);
    bp_audit_checkpoints_free(cps, n);
    /* Everything, checkpoints made until now included. */
    assert_int_equal(bp_trail_purge(f->s, bp_clock_wall_us() + 1000000, "t", NULL, &deleted), BP_OK);
    assert_int_equal(deleted, 7);
    assert_int_equal(bp_store_audit_checkpoint_list(f->s, 0, NULL, 0, &cps, &n), BP_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(cps[i].kind, "purge");
    }
    bp_audit_checkpoints_free(cps, n);
    r = verify(f->s, NULL);
    if (r.broken) {
        fail_msg("%s", r.first_break);
    }
    assert_int_equal(r.records, 0);
    assert_int_equal(r.purged, 3);
    /* New records continue the chains from the purge checkpoints. */
    put(f->s, "node-a", 400, 2);
    expect_intact(f->s, NULL);
}

/* A store from before the trail (schema 9) with records: migration 10 seals them into the chain
 * "legacy", oldest first, so an edit of one of them is found from then on. */
static void
test_migration_seals_older_records(void **state)
{
    const bool pg = bp_testdb_is_pg();
    const char *const *texts = pg ? bp_store__pg_migrations : bp_store__sqlite_migrations;
    struct bp_audit_head *heads = NULL;
    struct bp_trail_report r;
    struct bp_testdb db;
    struct bp_store *s;
    size_t n = 0;

    (void)state;
    bp_testdb_init(&db, "trail_seal");
    bp_testdb_exec(&db, pg ? "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY NOT NULL,"
                             " applied_at BIGINT NOT NULL)"
                           : "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY NOT NULL,"
                             " applied_at INTEGER NOT NULL)");
    for (int v = 1; v <= 9; v++) {
        char sql[96];
        bp_testdb_exec(&db, texts[v - 1]);
        snprintf(sql, sizeof(sql), "INSERT INTO schema_migrations VALUES (%d, 0)", v);
        bp_testdb_exec(&db, sql);
    }
    /* One from before ids (schema 5), two after, one with a NULL in most fields. */
    bp_testdb_exec(&db, "INSERT INTO audit_log (time_us, actor_type, action, category) VALUES"
                        " (1, 'cli', 'Key created', 'admin')");
    bp_testdb_exec(&db, "INSERT INTO audit_log (time_us, actor_type, action, category, id, node, status)"
                        " VALUES (2, 'api_key', 'Ledger created', 'ledgers', 'audit_a', 'old-node', 201),"
                        " (3, 'anonymous', NULL, 'ledgers', 'audit_b', NULL, 401)");
    s = bp_testdb_open(&db);
    assert_int_equal(bp_store_audit_heads(s, &heads, &n), BP_OK);
    assert_int_equal(n, 1);
    assert_string_equal(heads[0].chain, "legacy");
    assert_int_equal(heads[0].n, 3);
    bp_audit_heads_free(heads, n);
    assert_int_equal(bp_trail_verify(s, &(struct bp_trail_verify_opts){0}, &r), BP_OK);
    assert_false(r.broken);
    assert_int_equal(r.records, 3);
    assert_int_equal(r.legacy, 0);
    /* New records go to their own chains beside it. */
    put(s, "node-a", 10, 2);
    expect_intact(s, NULL);
    bp_testdb_exec(&db, "UPDATE audit_log SET status = 200 WHERE id = 'audit_b'");
    expect_break(s, NULL, "chain legacy: record 3 (audit_b");
    bp_store_close(s);
    assert_int_equal(bp_testdb_cleanup(&db), 0);
}

/* --since walks each chain from its first record at or after the time. */
static void
test_since(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_trail_verify_opts o = {.since_us = T0 + 150 * 1000000LL};
    struct bp_trail_report r;

    fill(f->s);
    r = verify(f->s, &o);
    assert_false(r.broken);
    assert_int_equal(r.records, 4 + 3);
    /* A change before --since is not looked at; one after is. */
    bp_testdb_exec(&f->db, "UPDATE audit_log SET status = 500 WHERE chain = 'node-a' AND chain_n = 1");
    expect_intact(f->s, &o);
    bp_testdb_exec(&f->db, "UPDATE audit_log SET status = 500 WHERE chain = 'node-a' AND chain_n = 9");
    expect_break(f->s, &o, "record 9");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_each_writer_has_its_chain, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_repeats_leave_the_chain_whole, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_two_writers_share_a_chain, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_every_single_change_is_found, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_catches_a_rewritten_chain, setup,
                                        bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_purge_keeps_the_trail_verifiable, setup,
                                        bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_purge_forgets_old_checkpoints, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_since, setup, bp_testdb_store_teardown),
        cmocka_unit_test(test_migration_seals_older_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

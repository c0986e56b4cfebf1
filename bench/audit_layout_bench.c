/* What one audit record costs the writer thread in two storage layouts (issue 10): the question
 * the audit-on targets turn on. Prints numbers, asserts none.
 *
 *   rows    the product's layout: bp_store_audit_insert into a SQLite store made by the product
 *           (one row per record in audit_log, its seven indexes, the chain hashes, WAL,
 *           synchronous=FULL), exactly what the audit writer calls.
 *   blocks  a prototype, not product code: a batch is one row holding its records encoded
 *           back to back (each still hashed into its writer's chain), plus one row per distinct
 *           (credential, instance, category, action) of the batch in a key table that `audit
 *           list` filters would read; same pragmas, same durability (one fsync per batch).
 *
 * Both stores are first filled with PREFILL records (not measured), so the B-trees have the
 * depth of a log in use; then RECORDS records go in in batches of BATCH (11 is what a sync
 * write's group commit holds at 32 connections, ~100 an async read's). CPU is the process's
 * user + system time from getrusage (single thread), so the fsyncs' kernel work counts, as it
 * does in the anchors' CPU per request.
 *
 *   build/tests/bench_audit_layout DIR [RECORDS [BATCH [PREFILL]]]
 *       DIR: an empty scratch directory; defaults 100000, 11, 200000
 */
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "lib/alloc.h"
#include "lib/clock.h"
#include "lib/rand.h"
#include "lib/sha256.h"
#include "store/store.h"

#define BATCH_MAX 1024

static const char *const actions[][2] = {
    {"Transaction created", "transactions"},
    {"Balance viewed", "balances"},
    {"Ledger viewed", "ledgers"},
    {"Identity created", "identities"},
};

/* Record i of the run, the same in both layouts: 20 credentials over 3 instances, 4 actions. */
static struct bp_audit_rec
make_rec(long i)
{
    static char actor[20][32];
    static char name[20][24];
    static char inst[3][40];

    if (actor[0][0] == '\0') {
        for (int k = 0; k < 20; k++) {
            snprintf(actor[k], sizeof(actor[k]), "key_01JD4W00000000000000000%02d", k);
            snprintf(name[k], sizeof(name[k]), "service-%02d", k);
        }
        for (int k = 0; k < 3; k++) {
            snprintf(inst[k], sizeof(inst[k]), "instance_01JD4V00000000000000000%d", k);
        }
    }
    return (struct bp_audit_rec){
        .time_us = 1700000000000000LL + i * 97,
        .node = (char *)"node-a",
        .request_id = (char *)"0f0e0d0c-0b0a-4908-8706-050403020100",
        .actor_type = (char *)"api_key",
        .actor_id = actor[i % 20],
        .actor_name = name[i % 20],
        .instance_id = inst[i % 3],
        .method = (char *)"POST",
        .route = (char *)"/transactions",
        .path = (char *)"/transactions",
        .action = (char *)actions[i % 4][0],
        .category = (char *)actions[i % 4][1],
        .core_status = 201,
        .status = 201,
        .latency_us = 2500,
        .client_addr = (char *)"10.0.0.7",
        .resource_id = (char *)"txn_0f0e0d0c-0b0a-4908-8706-050403020100",
    };
}

/* ---- rows: the product ---- */

static int
rows_insert(struct bp_store *s, long first, size_t k)
{
    struct bp_audit_rec recs[BATCH_MAX];

    for (size_t i = 0; i < k; i++) {
        recs[i] = make_rec(first + (long)i);
    }
    if (bp_store_audit_insert(s, recs, k) != BP_OK) {
        fprintf(stderr, "rows: insert failed: %s\n", bp_store_last_error(s));
        return -1;
    }
    for (size_t i = 0; i < k; i++) {
        bp_free(recs[i].id); /* the store's; the other fields are static */
    }
    return 0;
}

/* ---- blocks: the prototype ---- */

struct blocks {
    sqlite3 *db;
    sqlite3_stmt *begin, *commit, *head, *put_head, *put_block, *put_key;
    unsigned char buf[BATCH_MAX * 512];
};

static const char blocks_schema[] =
    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA temp_store=MEMORY;"
    "PRAGMA cache_size=-1024;"
    "CREATE TABLE audit_blocks (first_seq INTEGER PRIMARY KEY, n INTEGER NOT NULL,"
    "  t_min INTEGER NOT NULL, t_max INTEGER NOT NULL, chain TEXT NOT NULL,"
    "  chain_first INTEGER NOT NULL, data BLOB NOT NULL);"
    "CREATE INDEX audit_blocks_time ON audit_blocks (t_max);"
    "CREATE TABLE audit_block_keys (kind INTEGER NOT NULL, value TEXT NOT NULL,"
    "  block INTEGER NOT NULL, PRIMARY KEY (kind, value, block)) WITHOUT ROWID;"
    "CREATE TABLE audit_chains (chain TEXT PRIMARY KEY, n INTEGER NOT NULL, hash BLOB NOT NULL,"
    "  seq INTEGER NOT NULL);"
    "INSERT INTO audit_chains VALUES ('node-a', 0, zeroblob(32), 0);";

static int
prep(sqlite3 *db, const char *sql, sqlite3_stmt **out)
{
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL) != SQLITE_OK) {
        fprintf(stderr, "blocks: %s: %s\n", sql, sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

static int
blocks_open(struct blocks *b, const char *path)
{
    if (sqlite3_open(path, &b->db) != SQLITE_OK ||
        sqlite3_exec(b->db, blocks_schema, NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "blocks: %s: %s\n", path, sqlite3_errmsg(b->db));
        return -1;
    }
    return prep(b->db, "BEGIN IMMEDIATE", &b->begin) || prep(b->db, "COMMIT", &b->commit) ||
           prep(b->db, "SELECT n, hash, seq FROM audit_chains WHERE chain = 'node-a'", &b->head) ||
           prep(b->db, "UPDATE audit_chains SET n = ?1, hash = ?2, seq = ?3 WHERE chain = 'node-a'",
                &b->put_head) ||
           prep(b->db, "INSERT INTO audit_blocks VALUES (?1, ?2, ?3, ?4, 'node-a', ?5, ?6)", &b->put_block) ||
           prep(b->db, "INSERT OR IGNORE INTO audit_block_keys VALUES (?1, ?2, ?3)", &b->put_key);
}

static unsigned char *
put_varint(unsigned char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (unsigned char)v;
    return p;
}

static unsigned char *
put_text(unsigned char *p, const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;

    p = put_varint(p, n);
    memcpy(p, s != NULL ? s : "", n);
    return p + n;
}

static int
step_reset(struct blocks *b, sqlite3_stmt *stmt)
{
    int rc = sqlite3_step(stmt);

    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "blocks: %s\n", sqlite3_errmsg(b->db));
        return -1;
    }
    return 0;
}

/* One batch: its records encoded (id, then the fields, then the record's chain hash), one block
 * row, the batch's distinct keys, the chain's head; one transaction. */
static int
blocks_insert(struct blocks *b, long first, size_t k)
{
    const char *keys[4][BATCH_MAX];
    size_t nkeys[4] = {0};
    unsigned char hash[BP_SHA256_LEN];
    unsigned char rnd[10 * BATCH_MAX];
    unsigned char *p = b->buf;
    int64_t n, seq, t_min = INT64_MAX, t_max = 0;

    if (step_reset(b, b->begin) != 0) {
        return -1;
    }
    if (sqlite3_step(b->head) != SQLITE_ROW) {
        fprintf(stderr, "blocks: no chain head\n");
        return -1;
    }
    n = sqlite3_column_int64(b->head, 0);
    memcpy(hash, sqlite3_column_blob(b->head, 1), sizeof(hash));
    seq = sqlite3_column_int64(b->head, 2);
    sqlite3_reset(b->head);
    (void)bp_rand_id_bytes(rnd, 10 * k);
    for (size_t i = 0; i < k; i++) {
        struct bp_audit_rec r = make_rec(first + (long)i);
        unsigned char *rec = p;
        const void *parts[2];
        size_t lens[2];
        const char *kv[4] = {r.actor_id, r.instance_id, r.category, r.action};

        p = put_varint(p, (uint64_t)r.time_us);
        memcpy(p, rnd + 10 * i, 10); /* the id: its time is time_us's millisecond */
        p += 10;
        p = put_text(p, r.request_id);
        p = put_text(p, r.actor_type);
        p = put_text(p, r.actor_id);
        p = put_text(p, r.actor_name);
        p = put_text(p, r.instance_id);
        p = put_text(p, r.method);
        p = put_text(p, r.route);
        p = put_text(p, r.path);
        p = put_text(p, r.action);
        p = put_text(p, r.category);
        p = put_varint(p, (uint64_t)r.core_status);
        p = put_varint(p, (uint64_t)r.status);
        p = put_varint(p, (uint64_t)r.latency_us);
        p = put_text(p, r.client_addr);
        p = put_text(p, r.resource_id);
        p = put_text(p, r.error);
        parts[0] = hash;
        lens[0] = sizeof(hash);
        parts[1] = rec;
        lens[1] = (size_t)(p - rec);
        bp_sha256_parts(parts, lens, 2, hash);
        memcpy(p, hash, sizeof(hash));
        p += sizeof(hash);
        t_min = r.time_us < t_min ? r.time_us : t_min;
        t_max = r.time_us > t_max ? r.time_us : t_max;
        for (int f = 0; f < 4; f++) {
            size_t j = 0;
            while (j < nkeys[f] && strcmp(keys[f][j], kv[f]) != 0) {
                j++;
            }
            if (j == nkeys[f]) {
                keys[f][nkeys[f]++] = kv[f];
            }
        }
    }
    sqlite3_bind_int64(b->put_block, 1, seq + 1);
    sqlite3_bind_int64(b->put_block, 2, (int64_t)k);
    sqlite3_bind_int64(b->put_block, 3, t_min);
    sqlite3_bind_int64(b->put_block, 4, t_max);
    sqlite3_bind_int64(b->put_block, 5, n + 1);
    sqlite3_bind_blob(b->put_block, 6, b->buf, (int)(p - b->buf), SQLITE_STATIC);
    if (step_reset(b, b->put_block) != 0) {
        return -1;
    }
    for (int f = 0; f < 4; f++) {
        for (size_t j = 0; j < nkeys[f]; j++) {
            sqlite3_bind_int(b->put_key, 1, f);
            sqlite3_bind_text(b->put_key, 2, keys[f][j], -1, SQLITE_STATIC);
            sqlite3_bind_int64(b->put_key, 3, seq + 1);
            if (step_reset(b, b->put_key) != 0) {
                return -1;
            }
        }
    }
    sqlite3_bind_int64(b->put_head, 1, n + (int64_t)k);
    sqlite3_bind_blob(b->put_head, 2, hash, sizeof(hash), SQLITE_STATIC);
    sqlite3_bind_int64(b->put_head, 3, seq + (int64_t)k);
    if (step_reset(b, b->put_head) != 0) {
        return -1;
    }
    return step_reset(b, b->commit);
}

static void
blocks_close(struct blocks *b)
{
    sqlite3_finalize(b->begin);
    sqlite3_finalize(b->commit);
    sqlite3_finalize(b->head);
    sqlite3_finalize(b->put_head);
    sqlite3_finalize(b->put_block);
    sqlite3_finalize(b->put_key);
    sqlite3_close(b->db);
    bp_free(b);
}

/* ---- the run ---- */

/* The process's CPU time so far: user and system, in microseconds. */
static void
cpu_us(int64_t *user, int64_t *sys)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    *user = (int64_t)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec;
    *sys = (int64_t)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
}

static long long
file_bytes(const char *path)
{
    struct stat st;
    char wal[4200];

    snprintf(wal, sizeof(wal), "%s-wal", path);
    return (stat(path, &st) == 0 ? (long long)st.st_size : 0) +
           (stat(wal, &st) == 0 ? (long long)st.st_size : 0);
}

typedef int (*insert_fn)(void *ctx, long first, size_t k);

static int
rows_fn(void *ctx, long first, size_t k)
{
    return rows_insert(ctx, first, k);
}

static int
blocks_fn(void *ctx, long first, size_t k)
{
    return blocks_insert(ctx, first, k);
}

static int
run(const char *name, insert_fn fn, void *ctx, const char *path, long prefill, long records, size_t batch)
{
    int64_t u0, s0, u1, s1, w0;
    long long bytes0;

    for (long i = 0; i < prefill; i += 1000) {
        if (fn(ctx, i, (size_t)(prefill - i < 1000 ? prefill - i : 1000)) != 0) {
            return -1;
        }
    }
    bytes0 = file_bytes(path);
    cpu_us(&u0, &s0);
    w0 = bp_clock_mono_us();
    for (long i = 0; i < records; i += (long)batch) {
        size_t k = (size_t)(records - i < (long)batch ? records - i : (long)batch);
        if (fn(ctx, prefill + i, k) != 0) {
            return -1;
        }
    }
    cpu_us(&u1, &s1);
    printf("%-6s batch %4zu: %6.2f us CPU/record (user %.2f, system %.2f), %6.2f us wall/record, "
           "%4.0f bytes/record on disk (db + wal, prefill %ld)\n",
           name, batch, (double)(u1 - u0 + s1 - s0) / (double)records, (double)(u1 - u0) / (double)records,
           (double)(s1 - s0) / (double)records, (double)(bp_clock_mono_us() - w0) / (double)records,
           (double)(file_bytes(path) - bytes0) / (double)records, prefill);
    return 0;
}

int
main(int argc, char **argv)
{
    long records = argc > 2 ? atol(argv[2]) : 100000;
    size_t batch = argc > 3 ? (size_t)atol(argv[3]) : 11;
    long prefill = argc > 4 ? atol(argv[4]) : 200000;
    char rows_path[4096], blocks_path[4096], err[256];
    struct bp_store *s = NULL;
    struct blocks *b = bp_calloc(1, sizeof(*b));

    if (argc < 2 || batch == 0 || batch > BATCH_MAX || records <= 0 || prefill < 0) {
        fprintf(stderr, "usage: %s DIR [RECORDS [BATCH (1..%d) [PREFILL]]]\n", argv[0], BATCH_MAX);
        return 2;
    }
    snprintf(rows_path, sizeof(rows_path), "%s/rows.db", argv[1]);
    snprintf(blocks_path, sizeof(blocks_path), "%s/blocks.db", argv[1]);
    if (bp_store_open(rows_path, BP_STORE_OPEN_CREATE, &s, err, sizeof(err)) != BP_OK ||
        bp_store_migrate(s, NULL, NULL) != BP_OK) {
        fprintf(stderr, "cannot open %s: %s\n", rows_path, err);
        return 1;
    }
    if (blocks_open(b, blocks_path) != 0) {
        return 1;
    }
    if (run("rows", rows_fn, s, rows_path, prefill, records, batch) != 0 ||
        run("blocks", blocks_fn, b, blocks_path, prefill, records, batch) != 0) {
        return 1;
    }
    bp_store_close(s);
    blocks_close(b);
    return 0;
}

/* `audit verify` on a large log (issue 13): fills a store with N records over three writers'
 * chains (batches of 1,000, as group commits make them), then times bp_trail_verify, the same
 * call `blnkproxy audit verify` makes. Prints numbers, asserts none.
 *
 *   build/tests/bench_trail DSN [N]     (DSN: a SQLite path or a postgresql:// URI; N default 1e6)
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "lib/alloc.h"
#include "lib/clock.h"
#include "store/store.h"
#include "trail/trail.h"

#define BATCH 1000

static const char *const nodes[] = {"node-a", "node-b", "node-c"};

int
main(int argc, char **argv)
{
    struct bp_store *s = NULL;
    struct bp_trail_verify_opts o = {0};
    struct bp_trail_report r;
    char err[256];
    long n = argc > 2 ? atol(argv[2]) : 1000000;
    int64_t t0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s DSN [N]\n", argv[0]);
        return 2;
    }
    if (bp_store_open(argv[1], BP_STORE_OPEN_CREATE, &s, err, sizeof(err)) != BP_OK ||
        bp_store_migrate(s, NULL, NULL) != BP_OK) {
        fprintf(stderr, "cannot open %s: %s\n", argv[1], err);
        return 1;
    }
    t0 = bp_clock_mono_ms();
    for (long done = 0; done < n; done += BATCH) {
        struct bp_audit_rec recs[BATCH];
        size_t k = (size_t)(n - done < BATCH ? n - done : BATCH);
        for (size_t i = 0; i < k; i++) {
            recs[i] = (struct bp_audit_rec){
                .time_us = 1700000000000000LL + (done + (long)i) * 1000,
                .node = bp_strdup(nodes[(done / BATCH) % 3]),
                .request_id = bp_strdup("0f0e0d0c-0b0a-4908-8706-050403020100"),
                .actor_type = bp_strdup("api_key"),
                .actor_id = bp_strdup("key_01JD4W0000000000000000000"),
                .actor_name = bp_strdup("payments-service"),
                .instance_id = bp_strdup("instance_01JD4V000000000000000000"),
                .method = bp_strdup("POST"),
                .route = bp_strdup("/transactions"),
                .path = bp_strdup("/transactions"),
                .action = bp_strdup("Transaction created"),
                .category = bp_strdup("transactions"),
                .core_status = 201,
                .status = 201,
                .latency_us = 2500,
                .client_addr = bp_strdup("10.0.0.7"),
                .resource_id = bp_strdup("txn_0000000000000000000000000000"),
            };
        }
        if (bp_store_audit_insert(s, recs, k) != BP_OK) {
            fprintf(stderr, "insert failed: %s\n", bp_store_last_error(s));
            return 1;
        }
        for (size_t i = 0; i < k; i++) {
            bp_audit_rec_cleanup(&recs[i]);
        }
    }
    printf("inserted %ld records in %lld ms\n", n, (long long)(bp_clock_mono_ms() - t0));
    t0 = bp_clock_mono_ms();
    if (bp_trail_verify(s, &o, &r) != BP_OK) {
        fprintf(stderr, "verify failed: %s\n", bp_store_last_error(s));
        return 1;
    }
    printf("verify: %s, %lld records in %lld chains, %lld ms\n", r.broken ? r.first_break : "intact",
           (long long)r.records, (long long)r.chains, (long long)(bp_clock_mono_ms() - t0));
    bp_store_close(s);
    return 0;
}

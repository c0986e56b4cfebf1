// The threads that serve OAuth, sign-ins, the admin API and Idempotency-Key answers open their
// store connection at their first call, not with the server (issue 10, the memory target). An
// idle server used to hold eleven connections to its store: each SQLite one ~200 KB of parsed
// schema and page cache, each PostgreSQL one a slot on the database server. Runs in both store
// runs: on SQLite the connections are counted as the server's descriptors of the -wal file,
// on PostgreSQL as its backends in pg_stat_activity.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';

import { adminApi, makeAdminToken, makeOperator } from './lib/admin.mjs';
import { startFakeCore } from './lib/fake_core.mjs';
import { createClient, token } from './lib/oauth_flow.mjs';
import { PG, bearer, makeInstance, makeKey, req, sql, startProxy, tmpDb, waitFor } from './lib/harness.mjs';

let core;

before(async () => {
    core = await startFakeCore();
});

after(async () => {
    await core?.close();
});

// The server's open connections to its store.
function connections(proxy) {
    if (PG) {
        return Number(sql(proxy.db, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()").split('\n').find((l) => /^\s*\d+\s*$/.test(l)));
    }
    // Each connection holds the -wal file open. Not the database file: SQLite keeps a closed
    // connection's descriptor of it while other connections hold their locks on it (POSIX
    // locks are the process's), for the next open to reuse.
    const file = `${fs.realpathSync(proxy.db)}-wal`;
    let n = 0;
    for (const fd of fs.readdirSync(`/proc/${proxy.child.pid}/fd`)) {
        try {
            if (fs.readlinkSync(`/proc/${proxy.child.pid}/fd/${fd}`) === file) {
                n++;
            }
        } catch {
            // closed meanwhile
        }
    }
    return n;
}

// Connections settle once the server has loaded its tables and started its watcher.
async function settled(proxy) {
    let last = -1;
    let same = 0;
    await waitFor(() => {
        const n = connections(proxy);
        same = n === last ? same + 1 : 0;
        last = n;
        return same >= 3;
    }, { timeoutMs: 10000, intervalMs: 150, what: 'the connection count to settle' });
    return last;
}

// A store with an instance, an API key, an OAuth client and an admin's token.
function world() {
    const db = tmpDb();
    const inst = makeInstance(db, core.url, { secret: 'connections_secret' });
    const key = makeKey(db, { scopes: ['*'] }).key;
    const client = createClient(db, ['--name', 'conn-app', '--scopes', 'proxy:read']);
    const op = makeOperator(db, 'conn-admin', { password: 'correct horse battery', role: 'admin' });
    return { db, inst, key, client, adminToken: makeAdminToken(db, op) };
}

// A transaction sent with an Idempotency-Key: it goes through the Idempotency-Key threads.
const TX = JSON.stringify({ amount: 1, currency: 'USD', source: '@world', destination: 'bal_1', allow_overdraft: true });
const postIdempotent = (proxy, inst, key, idemKey) =>
    req(proxy.port, 'POST', `/proxy/transactions?instance_id=${inst.id}`, {
        headers: { ...bearer(key), 'content-type': 'application/json', 'idempotency-key': idemKey },
        body: TX,
    });

test(`an idle server holds no store connection for its OAuth, sign-in, admin and Idempotency-Key threads (${PG ? 'PostgreSQL' : 'SQLite'}); each opens one at its first call`, async () => {
    const { db, inst, key, client, adminToken } = world();
    // The purge of expired Idempotency-Key answers runs every idempotency.ttl: each second here.
    const proxy = await startProxy({ db, args: ['--idempotency-ttl', '1s'] });
    try {
        // Proxying needs none of them.
        const got = await req(proxy.port, 'GET', `/proxy/ledgers?instance_id=${inst.id}`, { headers: bearer(key) });
        assert.equal(got.status, 200);
        const idle = await settled(proxy);
        // What remains: the watcher's (and on PostgreSQL its LISTEN connection), the audit
        // writer's, the retention purge's and the cluster wait's after a token. Before, the seven
        // threads held one each as well.
        assert.ok(idle <= (PG ? 5 : 4), `an idle server holds ${idle} store connections`);
        // The purge borrows a connection for the moment on a thread that has none.
        await new Promise((r) => setTimeout(r, 2500));
        assert.equal(await settled(proxy), idle, 'after two purges');

        const tok = await token(proxy.port, client, { grant_type: 'client_credentials' });
        assert.equal(tok.status, 200, JSON.stringify(tok.json));
        assert.equal(await settled(proxy), idle + 1, 'the OAuth thread that answered opened one');

        const keys = await adminApi(proxy.port, 'GET', '/keys', { token: adminToken });
        assert.equal(keys.status, 200, keys.text);
        assert.equal(await settled(proxy), idle + 2, 'the admin thread that answered opened one');

        const posted = await postIdempotent(proxy, inst, key, 'conn-idem-1');
        assert.equal(posted.status, 201, posted.text);
        // Its claim and its answer are two calls, each on either of the two Idempotency-Key threads.
        const afterIdem = await settled(proxy);
        assert.ok(afterIdem === idle + 3 || afterIdem === idle + 4, `the Idempotency-Key threads that answered opened one each: ${idle} then ${afterIdem}`);
    } finally {
        await proxy.stop();
    }
});

test('a thread whose store file cannot be opened answers 503 and opens it at a later call (SQLite)', { skip: PG && 'a SQLite file' }, async () => {
    const { db, inst, key, client, adminToken } = world();
    const proxy = await startProxy({ db });
    const aside = `${db}.aside`;
    let moved = false;
    try {
        await settled(proxy);
        // The file is gone from its path: connections already open keep theirs, new ones fail.
        fs.renameSync(db, aside);
        moved = true;
        for (let i = 0; i < 6; i++) {
            const tok = await token(proxy.port, client, { grant_type: 'client_credentials' });
            assert.equal(tok.status, 503, JSON.stringify(tok.json));
            assert.equal(tok.json.error, 'temporarily_unavailable');
        }
        // A page's outage is a page.
        const page = await req(proxy.port, 'GET', `/oauth/authorize?response_type=code&client_id=${client.id}`, { agent: false });
        assert.equal(page.status, 503);
        assert.match(page.headers['content-type'], /^text\/html/);
        const keys = await adminApi(proxy.port, 'GET', '/keys', { token: adminToken });
        assert.equal(keys.status, 503, keys.text);
        assert.equal(keys.json.error_detail.code, 'GEN_UNAVAILABLE');
        const posted = await postIdempotent(proxy, inst, key, 'conn-idem-2');
        assert.equal(posted.status, 503, posted.text);
        assert.equal(JSON.parse(posted.text).error_detail.code, 'PROXY_IDEMPOTENCY_UNAVAILABLE');
        // Logged once per thread and outage, not once per call: 2 OAuth and 2 admin threads.
        const oauthErrors = proxy.logObjects().filter((l) => l.level === 'error' && l.msg === 'oauth: cannot open the store');
        assert.ok(oauthErrors.length >= 2 && oauthErrors.length <= 4, `${oauthErrors.length} OAuth errors logged`);
        assert.ok(proxy.logObjects().some((l) => l.level === 'error' && l.msg === 'cannot open the store for Idempotency-Key answers'));

        fs.renameSync(aside, db);
        moved = false;
        const again = await token(proxy.port, client, { grant_type: 'client_credentials' });
        assert.equal(again.status, 200, JSON.stringify(again.json));
        assert.equal((await adminApi(proxy.port, 'GET', '/keys', { token: adminToken })).status, 200);
        const retried = await postIdempotent(proxy, inst, key, 'conn-idem-2');
        assert.equal(retried.status, 201, retried.text);
    } finally {
        if (moved) {
            fs.renameSync(aside, db);
        }
        await proxy.stop();
    }
});

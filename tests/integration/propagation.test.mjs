// Issue 8 item 5: a credential the CLI just created (or revoked) is in effect when the CLI
// returns. A provisioning script runs `key create` and uses the key in its very next request, with
// no sleep and no retry: that first request must succeed. The server runs with the default
// reload_interval (no --reload-interval flag), so the timed poll cannot be what makes this work:
// the server wakes on file events for the database (SQLite) or on the change log's notifications
// (PostgreSQL: LISTEN), and the CLI waits until every running server has reported that it
// published the change.
//
// These are behavioural assertions (the first try succeeds, or the first try after a revocation is
// refused); nothing here asserts a duration. How long the CLI took (its commit plus the wait for
// the server) is printed for the report; on a first-try failure the loop keeps asking
// (diagnostics only, after the outcome is recorded) and prints when the server saw the change.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
    assertError,
    bearer,
    cli,
    cliHistory,
    makeInstance,
    makeKey,
    req,
    startProxy,
    tmpDb,
    randomHex,
    sleep,
    sql,
    waitFor,
    WWW_INVALID,
} from './lib/harness.mjs';
import { startFakeCore } from './lib/fake_core.mjs';
import { createClient, token } from './lib/oauth_flow.mjs';

assert.ok(process.env.BLNKPROXY_BIN, 'set BLNKPROXY_BIN to the blnkproxy binary');

const ITERATIONS = 8;
const secrets = [];

let core;
let db;
let instance;
let proxy;

before(async () => {
    core = await startFakeCore();
    db = tmpDb();
    instance = makeInstance(db, core.url, { secret: `core_secret_${randomHex(16)}`, name: 'main' });
    // reloadInterval null: no --reload-interval flag, the server polls at its default (500ms).
    proxy = await startProxy({ db, reloadInterval: null });
});

after(async () => {
    try {
        await proxy?.stop();
    } finally {
        await core?.close();
    }
    // No credential this file created may appear in the server's log or any CLI's stderr.
    const logs = proxy ? proxy.logs().join('\n') : '';
    const stderr = cliHistory.map((h) => h.stderr).join('\n');
    for (const s of secrets) {
        assert.ok(!logs.includes(s), 'a credential appears in the server log');
        assert.ok(!stderr.includes(s), 'a credential appears on a CLI stderr');
    }
});

const proxied = (cred, inst = instance) =>
    req(proxy.port, 'GET', `/proxy/ledgers?instance_id=${inst.id}`, { headers: bearer(cred) });

/** For the printout only: how long after `since` the server answered `wanted` (polled every 2 ms,
 *  up to 3 s); null when it never did. */
async function propagationMs(since, send, wanted) {
    while (Date.now() - since < 3000) {
        const r = await send();
        if (r.status === wanted) {
            return Date.now() - since;
        }
        await sleep(2);
    }
    return null;
}

/** Runs fn (a CLI call) and returns [its result, how long it took in ms]. */
function timed(fn) {
    const t0 = process.hrtime.bigint();
    const r = fn();
    return [r, Number((process.hrtime.bigint() - t0) / 1000n) / 1000];
}

function report(what, rows) {
    const late = rows.filter((r) => !r.firstTry);
    const times = rows.map((r) => r.ms);
    const cliMs = rows.map((r) => r.cliMs).sort((a, b) => a - b);
    console.log(
        `${what}: ${rows.length - late.length}/${rows.length} on the first try; ` +
            `CLI (commit + wait for the server) ${cliMs[0].toFixed(1)}..${cliMs[cliMs.length - 1].toFixed(1)} ms, ` +
            `median ${cliMs[cliMs.length >> 1].toFixed(1)} ms; ` +
            `first-try round trip ${Math.min(...times)}..${Math.max(...times)} ms; ` +
            (late.length ? `late ones seen after ${late.map((r) => r.propagatedMs).join(', ')} ms` : 'none late'),
    );
}

describe('a running server sees CLI changes before the CLI returns to the script', () => {
    test('key create, then at once a proxied call with the new key: every first try succeeds', async () => {
        const rows = [];
        for (let i = 0; i < ITERATIONS; i++) {
            const [k, cliMs] = timed(() => makeKey(db, { scopes: ['proxy:read'], name: `prov-${i}` }));
            secrets.push(k.key);
            const t0 = Date.now();
            const r = await proxied(k.key);
            const row = { firstTry: r.status === 200, status: r.status, code: r.json?.error_detail?.code, ms: Date.now() - t0, cliMs };
            if (!row.firstTry) {
                row.propagatedMs = await propagationMs(t0, () => proxied(k.key), 200);
            }
            rows.push(row);
        }
        report('key create', rows);
        assert.deepEqual(
            rows.filter((r) => !r.firstTry),
            [],
            'every new key works on its first request',
        );
        assert.equal(core.requests.length >= ITERATIONS, true, 'Core saw the proxied calls');
    });

    test('client create, then at once /oauth/token and a proxied call with the token: every first try succeeds', async () => {
        const rows = [];
        for (let i = 0; i < ITERATIONS; i++) {
            const [c, cliMs] = timed(() => createClient(db, ['--name', `prov-app-${i}`, '--scopes', 'proxy:read']));
            secrets.push(c.secret);
            const t0 = Date.now();
            const tok = await token(proxy.port, c, { grant_type: 'client_credentials' });
            assert.equal(tok.status, 200, `client ${i}: /oauth/token on the first try: ${JSON.stringify(tok.json)}`);
            secrets.push(tok.json.access_token);
            const r = await proxied(tok.json.access_token);
            const row = { firstTry: r.status === 200, status: r.status, code: r.json?.error_detail?.code, ms: Date.now() - t0, cliMs };
            if (!row.firstTry) {
                row.propagatedMs = await propagationMs(t0, () => proxied(tok.json.access_token), 200);
            }
            rows.push(row);
        }
        report('client create + token', rows);
        assert.deepEqual(
            rows.filter((r) => !r.firstTry),
            [],
            'every new client token works on its first proxied request',
        );
    });

    test('key revoke, then at once a proxied call with that key: every first try is refused', async () => {
        const rows = [];
        for (let i = 0; i < ITERATIONS; i++) {
            const k = makeKey(db, { scopes: ['proxy:read'], name: `revoke-${i}` });
            secrets.push(k.key);
            // Setup, not under test here: the key works before it is revoked.
            assert.notEqual(await propagationMs(Date.now(), () => proxied(k.key), 200), null, `key ${i} works before its revocation`);
            const [rv, cliMs] = timed(() => cli(['key', 'revoke', k.id], { db }));
            assert.equal(rv.code, 0, `key revoke: ${rv.stderr}`);
            const t0 = Date.now();
            const r = await proxied(k.key);
            const row = { firstTry: r.status === 401, status: r.status, ms: Date.now() - t0, cliMs };
            if (row.firstTry) {
                assertError(r, 401, 'AUTH_INVALID_API_KEY', { wwwAuthenticate: WWW_INVALID });
            } else {
                row.propagatedMs = await propagationMs(t0, () => proxied(k.key), 401);
            }
            rows.push(row);
        }
        report('key revoke', rows);
        assert.deepEqual(
            rows.filter((r) => !r.firstTry),
            [],
            'every revoked key is refused on its first request after `key revoke` returned',
        );
    });

    test('instance add, then at once a proxied call to it: every first try reaches Core', async () => {
        const k = makeKey(db, { scopes: ['proxy:read'], name: 'inst-prov' });
        secrets.push(k.key);
        const rows = [];
        for (let i = 0; i < ITERATIONS; i++) {
            const [inst, cliMs] = timed(() => makeInstance(db, core.url, { name: `added-${i}` }));
            const t0 = Date.now();
            const r = await proxied(k.key, inst);
            const row = { firstTry: r.status === 200, status: r.status, code: r.json?.error_detail?.code, ms: Date.now() - t0, cliMs };
            if (!row.firstTry) {
                row.propagatedMs = await propagationMs(t0, () => proxied(k.key, inst), 200);
            }
            rows.push(row);
        }
        report('instance add', rows);
        assert.deepEqual(
            rows.filter((r) => !r.firstTry),
            [],
            'every new instance is reachable on its first request',
        );
    });
});

function watcherRows(db) {
    return Number(sql(db, 'SELECT count(*) FROM watchers'));
}

describe('the CLI waits only for servers that run, and only so long', () => {
    test('a stopped server: the change is saved and the CLI warns instead of hanging', async (t) => {
        const db2 = tmpDb();
        const inst2 = makeInstance(db2, core.url, { name: 'main' });
        const p2 = await startProxy({ db: db2, reloadInterval: null });
        t.after(() => {
            p2.child.kill('SIGCONT');
            return p2.stop();
        });
        let k;
        // Stopped only once its start-up writes (its watchers row) are done: a process stopped
        // inside a write transaction holds SQLite's write lock, and then no writer can proceed.
        await waitFor(() => watcherRows(db2) === 1, { timeoutMs: 5000, intervalMs: 20, what: 'the server to report itself' });
        p2.child.kill('SIGSTOP');
        try {
            const r = cli(['key', 'create', '--name', 'while-stopped', '--scopes', 'proxy:read'], { db: db2 });
            assert.equal(r.code, 0, `the change itself succeeds: ${r.stderr}`);
            k = r.json.key;
            secrets.push(k);
            assert.match(r.stderr, /^blnkproxy: warning: the change is saved, but 1 running server using this database did not apply it within 2 s; see that server's log\n$/);
        } finally {
            p2.child.kill('SIGCONT');
        }
        // Running again, the server catches up on its own (DESIGN §5: within 2 seconds).
        await waitFor(async () => (await req(p2.port, 'GET', `/proxy/ledgers?instance_id=${inst2.id}`, { headers: bearer(k) })).status === 200,
            { timeoutMs: 2000, intervalMs: 20, what: 'the key works once the server runs again' });
        await p2.stop();
        // A server that stopped cleanly leaves nothing for the CLI to wait for.
        assert.equal(watcherRows(db2), 0);
    });

    test('a server killed without cleaning up is not waited for, and the next server forgets it', async (t) => {
        const db3 = tmpDb();
        makeInstance(db3, core.url, { name: 'main' });
        const p3 = await startProxy({ db: db3, reloadInterval: null });
        t.after(() => p3.stop({ expectCode: null }));
        p3.child.kill('SIGKILL');
        await p3.exited;
        assert.equal(watcherRows(db3), 1, 'the killed server left its row behind');
        const r = cli(['key', 'create', '--name', 'after-kill', '--scopes', 'proxy:read'], { db: db3 });
        assert.equal(r.code, 0, r.stderr);
        secrets.push(r.json.key);
        assert.equal(r.stderr, '', 'no warning: a dead server is not waited for');
        const p4 = await startProxy({ db: db3, reloadInterval: null });
        try {
            assert.equal(watcherRows(db3), 1, 'only the new server is registered');
        } finally {
            await p4.stop();
        }
    });
});

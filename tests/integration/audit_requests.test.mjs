// The audit log from the request side (issue 4): exactly one correct record per /proxy/ request
// and per CLI change; write records survive SIGKILL right after their responses; SIGTERM under
// load loses neither a request nor a record; no secret or body ever reaches a record or a log line.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import os from 'node:os';

import { startFakeCore } from './lib/fake_core.mjs';
import { bearer, cli, cliHistory, makeInstance, makeKey, randomHex, req, sleep, startProxy, tmpDb } from './lib/harness.mjs';

const OS_USER = os.userInfo().username;
const ID_FIELD = { ledgers: 'ledger_id', balances: 'balance_id', transactions: 'transaction_id', identities: 'identity_id' };
const CREATED = {
    ledgers: 'Ledger created',
    balances: 'Balance created',
    transactions: 'Transaction created',
    identities: 'Identity created',
};

function auditRecords(db, args = []) {
    const r = cli(['audit', 'list', '--limit', '100000', ...args], { db });
    assert.equal(r.code, 0, `audit list: ${r.stderr}`);
    return r.stdout
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l))
        .reverse();
}

const cores = [];
after(async () => {
    for (const c of cores) {
        await c.close();
    }
});

// A fake Core, a store with two instances and keys of every kind, and a running proxy.
async function world({ proxyArgs = [] } = {}) {
    const core = await startFakeCore();
    cores.push(core);
    const db = tmpDb();
    const secret = `core_secret_${randomHex(16)}`;
    const inst = makeInstance(db, core.url, { secret, name: 'main' });
    const other = makeInstance(db, core.url, { secret, name: 'other' });
    const keys = {
        all: makeKey(db, { name: 'all' }),
        read: makeKey(db, { name: 'reader', scopes: ['proxy:read'] }),
        otherOnly: makeKey(db, { name: 'other-only', instances: [other.id] }),
        spare: makeKey(db, { name: 'spare' }),
    };
    const proxy = await startProxy({ db, args: proxyArgs });
    const p = (corePath, instanceId = inst.id) => `/proxy${corePath}?instance_id=${instanceId}`;
    return { core, db, secret, inst, other, keys, proxy, p };
}

describe('one correct record per request and per change', () => {
    test('mixed run: creates, reads, 401, 403, 404 and CLI changes', async () => {
        const w = await world();
        const marker = `bodymarker_${randomHex(8)}`;
        const sent = []; // { res, expect }
        const send = async (method, path, headers, body, expect) => {
            const res = await req(w.proxy.port, method, path, {
                headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) },
                body,
            });
            sent.push({ res, expect: { method, ...expect } });
            return res;
        };
        const all = bearer(w.keys.all.key);
        const asAll = { actor_type: 'api_key', actor_id: w.keys.all.id, actor_name: 'all', instance_id: w.inst.id };

        // Creates of each resource type: the record holds the id Core returned.
        for (const cat of ['ledgers', 'balances', 'transactions', 'identities']) {
            const res = await send('POST', w.p(`/${cat}`), all, { name: `${marker}-${cat}`, amount: 1 }, {
                ...asAll, path: `/${cat}`, route: `/${cat}`, category: cat, action: CREATED[cat], status: 201, core_status: 201,
            });
            assert.equal(res.status, 201);
            sent.at(-1).expect.resource_id = res.json[ID_FIELD[cat]];
            assert.ok(sent.at(-1).expect.resource_id, `Core returned ${ID_FIELD[cat]}`);
        }
        // Reads.
        await send('GET', w.p('/ledgers'), all, undefined, {
            ...asAll, path: '/ledgers', category: 'ledgers', action: null, status: 200, core_status: 200, resource_id: null,
        });
        await send('GET', w.p('/transactions/txn_123'), all, undefined, {
            ...asAll, path: '/transactions/txn_123', route: '/transactions/:id', category: 'transactions', status: 200,
            core_status: 200, resource_id: null,
        });
        // 401: no credential, an unknown key.
        await send('POST', w.p('/ledgers'), {}, { name: marker }, {
            actor_type: 'anonymous', actor_id: null, status: 401, core_status: 0, resource_id: null, path: '/ledgers',
        });
        await send('GET', w.p('/ledgers'), bearer(`blnk_${'0'.repeat(64)}`), undefined, {
            actor_id: null, status: 401, core_status: 0, resource_id: null,
        });
        // 403: scope (a read key writing), instance (a key restricted to the other instance).
        await send('POST', w.p('/ledgers'), bearer(w.keys.read.key), { name: marker }, {
            actor_type: 'api_key', actor_id: w.keys.read.id, actor_name: 'reader', status: 403, core_status: 0,
            resource_id: null, category: 'ledgers', action: 'refused: Ledger created', path: '/ledgers',
            instance_id: w.inst.id,
        });
        await send('GET', w.p('/ledgers'), bearer(w.keys.otherOnly.key), undefined, {
            actor_type: 'api_key', actor_id: w.keys.otherOnly.id, actor_name: 'other-only', status: 403, core_status: 0,
            resource_id: null,
        });
        // 404: no such route.
        await send('GET', w.p('/no-such-thing'), all, undefined, {
            actor_id: w.keys.all.id, status: 404, core_status: 0, resource_id: null, route: null,
        });
        // Core's own 404 is forwarded and recorded with both statuses.
        w.core.setHandler({ status: 404, body: '{"error":"not found"}' });
        await send('GET', w.p('/ledgers/ldg_missing'), all, undefined, {
            ...asAll, status: 404, core_status: 404, category: 'ledgers', resource_id: null,
        });
        w.core.setHandler(null);
        // Not audited: the proxy's own endpoints.
        await req(w.proxy.port, 'GET', '/healthz');
        await req(w.proxy.port, 'GET', '/metrics');

        // CLI changes while it runs.
        assert.equal(cli(['key', 'revoke', w.keys.spare.id], { db: w.db }).code, 0);
        assert.equal(cli(['instance', 'update', w.other.id, '--name', 'renamed'], { db: w.db }).code, 0);

        await w.proxy.stop();
        const recs = auditRecords(w.db);
        const requestRecs = recs.filter((r) => r.category !== 'admin');
        assert.equal(requestRecs.length, sent.length, `one record per request:\n${requestRecs.map((r) => JSON.stringify(r)).join('\n')}`);
        for (const { res, expect } of sent) {
            const rid = res.headers['x-request-id'];
            assert.ok(rid, 'response has a request id');
            const mine = requestRecs.filter((r) => r.request_id === rid);
            assert.equal(mine.length, 1, `exactly one record for ${expect.method} ${expect.path ?? ''} (${rid})`);
            const r = mine[0];
            for (const [k, v] of Object.entries(expect)) {
                assert.deepEqual(r[k], v, `${expect.method} ${res.status}: ${k} of ${JSON.stringify(r)}`);
            }
            assert.equal(r.status, res.status);
            assert.equal(r.client_addr, '127.0.0.1');
            assert.ok(r.latency_us >= 0);
            if (res.status >= 400 && r.core_status === 0) {
                assert.ok(res.json?.error_detail?.code, 'the refusal has a code');
                assert.equal(r.error, res.json.error_detail.code, 'the record names the refusal\'s code');
            } else {
                assert.equal(r.error, null);
            }
        }
        // Admin: 2 instances + 4 keys at setup, then the two changes above, by the OS user.
        const admin = recs.filter((r) => r.category === 'admin');
        assert.deepEqual(
            admin.map((r) => [r.action, r.resource_id]),
            [
                ['Instance added', w.inst.id],
                ['Instance added', w.other.id],
                ['Key created', w.keys.all.id],
                ['Key created', w.keys.read.id],
                ['Key created', w.keys.otherOnly.id],
                ['Key created', w.keys.spare.id],
                ['Key revoked', w.keys.spare.id],
                ['Instance updated', w.other.id],
            ],
        );
        for (const r of admin) {
            assert.equal(r.actor_type, 'cli');
            assert.equal(r.actor_id, OS_USER);
        }

        // (d) No secret, no body in any record or log line.
        const haystack = JSON.stringify(recs) + w.proxy.logs().join('\n');
        for (const s of [w.secret, ...Object.values(w.keys).map((k) => k.key), marker]) {
            assert.ok(!haystack.includes(s), `"${s.slice(0, 12)}…" leaked into the audit log or the logs`);
        }
        for (const r of recs) {
            assert.ok(r.path === null || !r.path.includes('?'), 'no query string in a record');
        }
    });
});

describe('durability', () => {
    test('SIGKILL right after write responses: every write has its record', async () => {
        const w = await world();
        const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
        const N = 60;
        const ids = [];
        await Promise.all(
            Array.from({ length: 4 }, async (_, c) => {
                for (let i = 0; i < N / 4; i++) {
                    const res = await req(w.proxy.port, 'POST', w.p('/transactions'), {
                        headers: { ...bearer(w.keys.all.key), 'content-type': 'application/json' },
                        body: { amount: i, c },
                        agent,
                    });
                    assert.equal(res.status, 201);
                    ids.push([res.headers['x-request-id'], res.json.transaction_id]);
                }
            }),
        );
        w.proxy.child.kill('SIGKILL');
        const ex = await w.proxy.exited;
        assert.equal(ex.signal, 'SIGKILL');
        agent.destroy();
        // Straight from the store, without a restart.
        const byId = new Map(auditRecords(w.db, ['--category', 'transactions']).map((r) => [r.request_id, r]));
        for (const [rid, txn] of ids) {
            assert.ok(byId.has(rid), `record of ${rid} survived SIGKILL`);
            assert.equal(byId.get(rid).resource_id, txn);
            assert.equal(byId.get(rid).action, 'Transaction created');
        }
        // And a restart on the same database still has them (and starts cleanly).
        const again = await startProxy({ db: w.db });
        await again.stop();
        assert.equal(auditRecords(w.db, ['--category', 'transactions']).length, N);
    });

    test('SIGTERM under load: no in-flight request fails, no record is lost', async () => {
        const w = await world();
        // Core answers slowly, so SIGTERM lands while many requests are in flight.
        w.core.setHandler(async () => {
            await sleep(150 + Math.floor(Math.random() * 150));
            return null;
        });
        const agent = new http.Agent({ keepAlive: false, maxSockets: 200 });
        const N = 120;
        const inflight = Array.from({ length: N }, (_, i) =>
            req(w.proxy.port, i % 2 ? 'POST' : 'GET', w.p(i % 2 ? '/ledgers' : `/ledgers/ldg_${i}`), {
                headers: { ...bearer(w.keys.all.key), ...(i % 2 ? { 'content-type': 'application/json' } : {}) },
                body: i % 2 ? { name: `l${i}` } : undefined,
                agent,
                timeoutMs: 20000,
            }),
        );
        await w.core.waitForRequests(N / 2, 10000);
        const stopping = w.proxy.stop({ timeoutMs: 20000 });
        const results = await Promise.allSettled(inflight);
        const stopped = await stopping;
        assert.equal(stopped.code, 0, 'exit 0 after SIGTERM');
        const failed = results.filter((r) => r.status === 'rejected' || ![200, 201].includes(r.value.status));
        assert.equal(failed.length, 0, `failed: ${failed.map((r) => r.reason ?? r.value.status).join(', ')}`);
        const rids = results.map((r) => r.value.headers['x-request-id']);
        const recs = auditRecords(w.db, ['--category', 'ledgers']);
        const have = new Set(recs.map((r) => r.request_id));
        for (const rid of rids) {
            assert.ok(have.has(rid), `record of ${rid} after SIGTERM`);
        }
        assert.equal(recs.length, N);
    });
});

test('no CLI output holds a secret', () => {
    for (const h of cliHistory) {
        if (h.args[0] === 'key' && h.args[1] === 'create') {
            continue;
        }
        assert.doesNotMatch(h.stdout + h.stderr, /core_secret_|blnk_[0-9a-f]{64}/, `blnkproxy ${h.args.join(' ')}`);
    }
});

// Idempotency-Key replay (issue 12 item 1, DESIGN §4b), end to end with serve running, on the
// suite's store (SQLite, and PostgreSQL in the _pg run): every row of §4b.
//   - scope (credential, instance, method, route, key) and fingerprint (method, Core path, query
//     without instance_id, original body);
//   - the first request forwarded once, a transaction with a reference derived from the scope;
//     its answer stored and returned with Idempotent-Replayed: false;
//   - a repeat with the same fingerprint answered from the store, byte for byte, with
//     Idempotent-Replayed: true, and Core sees nothing; a different fingerprint → 422; while the
//     first is in flight → 409 (one node, and two nodes on one store);
//   - an outcome unknown (Core times out after receiving) → 409 until the lease passes, then a
//     transaction goes to Core again with the same reference; other routes keep 409;
//   - header errors → 400; answers kept across a restart; too large to keep → 409; expired
//     entries purged; audit records and metrics say what happened.
import assert from 'node:assert/strict';
import { AsyncLocalStorage } from 'node:async_hooks';
import { createRequire } from 'node:module';
import { after, before, test } from 'node:test';

import { startFakeCore } from './lib/fake_core.mjs';
import {
    bearer, cli, closedPort, makeInstance, makeKey, randomHex, rawRequest, req, sleep, sql, startProxy, tmpDb, waitFor,
} from './lib/harness.mjs';

const w = {};

before(async () => {
    w.core = await startFakeCore();
    w.db = tmpDb();
    w.inst = makeInstance(w.db, w.core.url, { secret: 'idem_secret', name: 'idem' });
    w.key = makeKey(w.db, { name: 'idem-app' });
    w.other = makeKey(w.db, { name: 'idem-other' });
    // Two nodes on one store; Core answers within 1 s or the outcome is unknown, and an unknown
    // outcome waits 2 s before a transaction is sent again.
    const args = ['--upstream-timeout', '1s', '--idempotency-lease', '2s'];
    w.a = await startProxy({ db: w.db, args });
    w.b = await startProxy({ db: w.db, args });
});

after(async () => {
    await w.a?.stop();
    await w.b?.stop();
    await w.core?.close();
});

const path = (p, extra = '') => `/proxy${p}?instance_id=${w.inst.id}${extra}`;

function post(port, p, body, { key = w.key.key, idem, headers = {}, extra = '', method = 'POST' } = {}) {
    const h = { ...bearer(key), 'content-type': 'application/json', ...headers };
    if (idem !== undefined) {
        h['idempotency-key'] = idem;
    }
    return req(port, method, path(p, extra), { headers: h, body, agent: false });
}

const newKey = () => `idem-${randomHex(8)}`;
const tx = (amount = 1000) => ({ amount, currency: 'USD', source: '@world', destination: 'bal_1', allow_overdraft: true });

function coreSaw(fn) {
    return w.core.requests.filter(fn);
}

// The answer without what is per response (Date, X-Request-Id) and the replay marker.
function comparable(r) {
    return {
        status: r.status,
        headers: r.rawHeaders.filter(([k]) => !/^(date|x-request-id|idempotent-replayed|connection|keep-alive)$/i.test(k)),
        body: r.body.toString('hex'),
    };
}

function audit(args) {
    const r = cli(['audit', 'list', ...args, '--limit', '200'], { db: w.db });
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

async function metric(port, outcome) {
    const m = await req(port, 'GET', '/metrics', { agent: false });
    const line = m.text.split('\n').find((l) => l.startsWith(`blnkproxy_idempotency_total{outcome="${outcome}"}`));
    return line ? Number(line.split(' ').pop()) : 0;
}

const REF_V8 = /^ref_[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test('the first request goes to Core once; a repeat is the stored answer, byte for byte, and Core sees nothing', async () => {
    const k = newKey();
    const body = tx(1234);
    const storedBefore = await metric(w.a.port, 'stored');
    const replayedBefore = await metric(w.a.port, 'replayed');

    const first = await post(w.a.port, '/transactions', body, { idem: k });
    assert.equal(first.status, 201, first.text);
    assert.equal(first.headers['idempotent-replayed'], 'false');
    const sent = coreSaw((r) => r.headers['idempotency-key'] === k);
    assert.equal(sent.length, 1);
    const got = JSON.parse(sent[0].body.toString('utf8'));
    assert.equal(got.precision, 100);
    assert.match(got.reference, REF_V8, 'a reference derived from the scope (UUIDv8)');

    const seen = w.core.requests.length;
    const again = await post(w.a.port, '/transactions', body, { idem: k });
    assert.equal(again.headers['idempotent-replayed'], 'true');
    assert.deepEqual(comparable(again), comparable(first), 'the replay is the first answer');
    assert.equal(again.json.transaction_id, first.json.transaction_id);
    // The other node answers from the same store.
    const onB = await post(w.b.port, '/transactions', body, { idem: k });
    assert.equal(onB.headers['idempotent-replayed'], 'true');
    assert.deepEqual(comparable(onB), comparable(first));
    assert.equal(w.core.requests.length, seen, 'Core saw neither repeat');
    assert.equal(await metric(w.a.port, 'stored'), storedBefore + 1);
    assert.equal(await metric(w.a.port, 'replayed'), replayedBefore + 1);

    // Audit: the first record reached Core, the replays say so and did not.
    await waitFor(() => audit(['--credential', w.key.id]).filter((r) => r.request_id && r.core_status !== undefined)
        .filter((r) => [first, again, onB].some((x) => x.headers['x-request-id'] === r.request_id)).length === 3,
    { timeoutMs: 5000, what: 'three audit records' });
    const recs = audit(['--credential', w.key.id]);
    const byId = (x) => recs.find((r) => r.request_id === x.headers['x-request-id']);
    assert.equal(byId(first).replayed, false);
    assert.equal(byId(first).core_status, 201);
    for (const x of [again, onB]) {
        const r = byId(x);
        assert.equal(r.replayed, true, JSON.stringify(r));
        assert.equal(r.core_status, 0, 'Core saw nothing');
        assert.equal(r.status, 201);
        assert.equal(r.action, 'Transaction created');
        assert.equal(r.resource_id, first.json.transaction_id);
    }
    const table = cli(['audit', 'list', '--credential', w.key.id, '--limit', '5'], { db: w.db, json: false });
    assert.match(table.stdout, /201 replay/);
});

test('a different request under the key is 422; the scope is per credential, route and key', async () => {
    const k = newKey();
    const first = await post(w.a.port, '/transactions', tx(1), { idem: k });
    assert.equal(first.status, 201);
    const seen = w.core.requests.length;
    const before = await metric(w.a.port, 'mismatch');

    for (const [what, r] of [
        ['body', await post(w.a.port, '/transactions', tx(2), { idem: k })],
        ['query', await post(w.a.port, '/transactions', tx(1), { idem: k, extra: '&x=1' })],
        ['whitespace in the body', await post(w.a.port, '/transactions', `${JSON.stringify(tx(1))} `, { idem: k })],
    ]) {
        assert.equal(r.status, 422, `${what}: ${r.text}`);
        assert.equal(r.json.error_detail.code, 'PROXY_IDEMPOTENCY_KEY_REUSED', what);
    }
    assert.equal(w.core.requests.length, seen, 'no 422 reached Core');
    assert.equal(await metric(w.a.port, 'mismatch'), before + 3);

    // Another credential, another route, another key: each its own scope, forwarded.
    const other = await post(w.a.port, '/transactions', tx(1), { idem: k, key: w.other.key });
    assert.equal(other.status, 201);
    assert.equal(other.headers['idempotent-replayed'], 'false');
    const ledger = await post(w.a.port, '/ledgers', { name: 'l' }, { idem: k });
    assert.equal(ledger.status, 201);
    assert.equal(ledger.headers['idempotent-replayed'], 'false');
    assert.equal(w.core.requests.length, seen + 2);
    // The references of two scopes differ; the same body under a new key gets a new one.
    const refs = coreSaw((r) => r.headers['idempotency-key'] === k && r.path === '/transactions')
        .map((r) => JSON.parse(r.body.toString('utf8')).reference);
    assert.equal(new Set(refs).size, 2);
});

// Twelve copies at once while Core takes 600 ms: one is forwarded, the others find it in flight.
async function concurrentDuplicates(ports) {
    const k = newKey();
    w.core.setHandler(async (rec) => (rec.headers['idempotency-key'] === k ? { delayMs: 600 } : null));
    try {
        const body = tx(77);
        const inFlight = async () => (await metric(w.a.port, 'in_flight')) + (await metric(w.b.port, 'in_flight'));
        const inFlightBefore = await inFlight();
        const all = await Promise.all(Array.from({ length: 12 }, (_, i) =>
            post(ports[i % ports.length], '/transactions', body, { idem: k })));
        assert.equal(coreSaw((r) => r.headers['idempotency-key'] === k).length, 1, 'exactly one reached Core');
        const ok = all.filter((r) => r.status === 201);
        const busy = all.filter((r) => r.status === 409);
        assert.equal(ok.length + busy.length, 12, all.map((r) => r.status).join(','));
        assert.ok(ok.length >= 1);
        for (const r of busy) {
            assert.equal(r.json.error_detail.code, 'PROXY_IDEMPOTENCY_IN_FLIGHT');
            assert.equal(r.headers['retry-after'], '1');
        }
        assert.equal(await inFlight(), inFlightBefore + busy.length);
        // Once answered, every retry is the replay.
        const later = await post(ports[ports.length - 1], '/transactions', body, { idem: k });
        assert.equal(later.headers['idempotent-replayed'], 'true');
        const first = ok.find((r) => r.headers['idempotent-replayed'] === 'false');
        assert.equal(later.json.transaction_id, first.json.transaction_id);
    } finally {
        w.core.setHandler(null);
    }
}

test('concurrent duplicates on one node: exactly one reaches Core, the rest get 409', async () => {
    await concurrentDuplicates([w.a.port]);
});

test('concurrent duplicates on two nodes: exactly one reaches Core, the rest get 409', async () => {
    await concurrentDuplicates([w.a.port, w.b.port]);
});

test('Core times out after receiving: 409 until the lease passes, then the same reference goes again', async () => {
    const k = newKey();
    let calls = 0;
    w.core.setHandler(async (rec) => {
        if (rec.headers['idempotency-key'] !== k) {
            return null;
        }
        calls++;
        return calls === 1 ? { delayMs: 1500 } : null; // the first one: longer than upstream_timeout
    });
    try {
        const unknownBefore = await metric(w.a.port, 'unknown_found');
        const retriedBefore = await metric(w.a.port, 'retried') + await metric(w.b.port, 'retried');
        const body = tx(500);
        const first = await post(w.a.port, '/transactions', body, { idem: k });
        assert.equal(first.status, 504, first.text);
        assert.equal(await metric(w.a.port, 'unknown_found'), unknownBefore + 1);
        // The unknown outcome is stored before the 504 goes out: a retry right after it, on
        // another node, finds it (not an entry still in flight).
        const early = await post(w.b.port, '/transactions', body, { idem: k });
        assert.equal(early.status, 409, early.text);
        assert.equal(early.json.error_detail.code, 'PROXY_IDEMPOTENCY_OUTCOME_UNKNOWN');
        const wait = Number(early.headers['retry-after']);
        assert.ok(wait >= 1 && wait <= 2, `Retry-After ${early.headers['retry-after']}`);
        assert.equal(calls, 1, 'the early retry did not reach Core');

        await sleep(wait * 1000 + 300); // a client that honours Retry-After
        const retry = await post(w.b.port, '/transactions', body, { idem: k });
        assert.equal(retry.status, 201, retry.text);
        assert.equal(retry.headers['idempotent-replayed'], 'false');
        assert.equal(calls, 2);
        const [one, two] = coreSaw((r) => r.headers['idempotency-key'] === k).map((r) => JSON.parse(r.body.toString('utf8')));
        assert.match(one.reference, REF_V8);
        assert.equal(two.reference, one.reference, 'Core got the same reference: it dedupes the transaction');
        assert.equal(await metric(w.a.port, 'retried') + await metric(w.b.port, 'retried'), retriedBefore + 1);
        const last = await post(w.a.port, '/transactions', body, { idem: k });
        assert.equal(last.headers['idempotent-replayed'], 'true');
        assert.equal(calls, 2);
    } finally {
        w.core.setHandler(null);
    }
});

test('an unknown outcome on a route other than transactions keeps answering 409', async () => {
    const k = newKey();
    w.core.setHandler(async (rec) => (rec.headers['idempotency-key'] === k ? { delayMs: 1500 } : null));
    try {
        const first = await post(w.a.port, '/ledgers', { name: 'slow' }, { idem: k });
        assert.equal(first.status, 504);
        await sleep(2600); // past the lease
        const r = await post(w.a.port, '/ledgers', { name: 'slow' }, { idem: k });
        assert.equal(r.status, 409, r.text);
        assert.equal(r.json.error_detail.code, 'PROXY_IDEMPOTENCY_OUTCOME_UNKNOWN');
        assert.equal(r.headers['retry-after'], undefined);
        assert.equal(coreSaw((x) => x.headers['idempotency-key'] === k).length, 1);
    } finally {
        w.core.setHandler(null);
    }
});

test('a request that never reached Core leaves no entry: its retry is sent', async () => {
    const db = tmpDb();
    const dead = makeInstance(db, `http://127.0.0.1:${await closedPort()}`, { name: 'dead' });
    const key = makeKey(db, { name: 'dead-app' });
    const p = await startProxy({ db });
    try {
        const k = newKey();
        const send = () => req(p.port, 'POST', `/proxy/transactions?instance_id=${dead.id}`,
            { headers: { ...bearer(key.key), 'idempotency-key': k }, body: tx(), agent: false });
        const one = await send();
        assert.equal(one.status, 502, one.text);
        // Released before the 502 went out: a retry at once is a first request again.
        assert.equal(sql(db, 'SELECT count(*) FROM idempotency').split('\n').find((l) => /^\s*\d+\s*$/.test(l)).trim(), '0');
        const two = await send();
        // Released, not 409 (a 503 once the instance's health marks it down).
        assert.ok(two.status === 502 || two.status === 503, `${two.status}: ${two.text}`);
        await waitFor(() => sql(db, 'SELECT count(*) FROM idempotency') === '0', { timeoutMs: 3000, what: 'no entry left' });
    } finally {
        await p.stop();
    }
});

test('header errors are 400 and reach nothing; GET ignores the header', async () => {
    const seen = w.core.requests.length;
    const long = await post(w.a.port, '/transactions', tx(), { idem: 'k'.repeat(256) });
    assert.equal(long.status, 400);
    assert.equal(long.json.error_detail.code, 'GEN_MALFORMED_REQUEST');
    assert.match(long.json.error, /longer than 255/);
    const max = await post(w.a.port, '/transactions', tx(9), { idem: `${newKey()}${'k'.repeat(255 - 21)}` });
    assert.equal(max.status, 201, 'exactly 255 is accepted');

    const dup = `POST ${path('/transactions')} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${w.key.key}\r\n` +
        'Idempotency-Key: a\r\nIdempotency-Key: b\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}';
    const r = await rawRequest(w.a.port, Buffer.from(dup));
    assert.match(r.text, /^HTTP\/1\.1 400 /);
    assert.match(r.text, /more than once/);
    const bin = `POST ${path('/transactions')} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${w.key.key}\r\n` +
        'Idempotency-Key: caf\xe9\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}';
    const r2 = await rawRequest(w.a.port, Buffer.from(bin, 'latin1'));
    assert.match(r2.text, /^HTTP\/1\.1 400 /);
    assert.match(r2.text, /printable ASCII/);
    assert.equal(w.core.requests.length, seen + 1, 'only the valid one reached Core');

    const k = newKey();
    for (let i = 0; i < 2; i++) {
        const g = await req(w.a.port, 'GET', path('/ledgers'), { headers: { ...bearer(w.key.key), 'idempotency-key': k }, agent: false });
        assert.equal(g.status, 200);
        assert.equal(g.headers['idempotent-replayed'], undefined);
    }
    assert.equal(coreSaw((x) => x.headers['idempotency-key'] === k).length, 2, 'reads are not remembered');
});

test('answers survive a restart; too large to keep is 409; expired entries are purged', async () => {
    const db = tmpDb();
    const inst = makeInstance(db, w.core.url, { name: 'r' });
    const key = makeKey(db, { name: 'restart-app' });
    const send = (port, k, body = { name: 'x' }) => req(port, 'POST', `/proxy/ledgers?instance_id=${inst.id}`,
        { headers: { ...bearer(key.key), 'idempotency-key': k }, body, agent: false });
    let p = await startProxy({ db, args: ['--idempotency-max-answer-bytes', '2000', '--idempotency-ttl', '5s'] });
    try {
        const k = newKey();
        const first = await send(p.port, k);
        assert.equal(first.status, 201);
        await p.stop();
        p = await startProxy({ db, args: ['--idempotency-max-answer-bytes', '2000', '--idempotency-ttl', '5s'] });
        const again = await send(p.port, k);
        assert.equal(again.headers['idempotent-replayed'], 'true', 'replayed after a restart');
        assert.deepEqual(comparable(again), comparable(first));

        // An answer over idempotency.max_answer_bytes is relayed whole, not kept.
        const big = newKey();
        const bigBody = { name: 'y'.repeat(5000) };
        const one = await send(p.port, big, bigBody);
        assert.equal(one.status, 201);
        assert.equal(one.json.name, bigBody.name);
        const two = await send(p.port, big, bigBody);
        assert.equal(two.status, 409);
        assert.equal(two.json.error_detail.code, 'PROXY_IDEMPOTENCY_ANSWER_NOT_KEPT');

        // idempotency.ttl 5s: the entries are gone a few seconds later, and the key starts afresh.
        await waitFor(() => sql(db, 'SELECT count(*) FROM idempotency') === '0',
            { timeoutMs: 15000, intervalMs: 250, what: 'expired entries purged' });
        assert.ok(await metric(p.port, 'purged') >= 2);
        const fresh = await send(p.port, k);
        assert.equal(fresh.headers['idempotent-replayed'], 'false');
        assert.notEqual(fresh.json.ledger_id, first.json.ledger_id);
    } finally {
        await p.stop();
    }
});

test('bulk transactions get one derived reference each, the same on every attempt', async () => {
    const k = newKey();
    const body = { transactions: [tx(1), tx(2), { ...tx(3), reference: 'mine' }] };
    const r = await post(w.a.port, '/transactions/bulk', body, { idem: k });
    assert.equal(r.status, 201, r.text);
    const sent = JSON.parse(coreSaw((x) => x.headers['idempotency-key'] === k)[0].body.toString('utf8'));
    const refs = sent.transactions.map((t) => t.reference);
    assert.match(refs[0], REF_V8);
    assert.match(refs[1], REF_V8);
    assert.notEqual(refs[0], refs[1]);
    assert.equal(refs[2], 'mine');
});

test("the README's SDK recipe: an Idempotency-Key through @blnkfinance/blnk-typescript", async () => {
    const { BlnkInit } = createRequire(import.meta.url)('@blnkfinance/blnk-typescript');
    const sdkKey = makeKey(w.db, { name: 'idem-sdk', instances: [w.inst.id] });
    const idempotencyKey = new AsyncLocalStorage();
    const plainFetch = globalThis.fetch;
    globalThis.fetch = (url, init = {}) => {
        const key = idempotencyKey.getStore();
        return plainFetch(url, key ? { ...init, headers: { ...init.headers, 'Idempotency-Key': key } } : init);
    };
    try {
        const quiet = { info() {}, error() {}, debug() {}, warn() {} };
        const blnk = BlnkInit(sdkKey.key, { baseUrl: `http://127.0.0.1:${w.a.port}/proxy/`, logger: quiet });
        const k = `order-${randomHex(4)}-payout`;
        const payout = () => blnk.Transactions.create({ amount: 1500, precision: 100, reference: k,
            currency: 'USD', source: '@World', destination: 'bln_1', description: 'Payout' });
        const one = await idempotencyKey.run(k, payout);
        const two = await idempotencyKey.run(k, payout);
        assert.equal(one.status, 201, JSON.stringify(one));
        assert.equal(two.status, 201);
        assert.equal(two.data.transaction_id, one.data.transaction_id, 'the second is the first answer');
        assert.equal(coreSaw((r) => r.headers['idempotency-key'] === k).length, 1, 'one transaction reached Core');
        // Without the key, the same call is a second request to Core.
        await payout();
        assert.equal(coreSaw((r) => r.path === '/transactions' && JSON.parse(r.body.toString('utf8')).reference === k).length, 2);
    } finally {
        globalThis.fetch = plainFetch;
    }
});

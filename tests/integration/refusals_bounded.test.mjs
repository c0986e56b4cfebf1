// What an anonymous client can make the proxy keep (issue 11, item 1, in part): a request refused
// for its credential keeps at most 256 bytes of its raw path in the audit record (it kept 2 KiB);
// a connection whose requests fail authentication 3 times is closed after the third refusal, so
// guessing keys or flooding refusals cannot go on over one kept-alive connection; and refusals
// get at most 20 access lines a second per worker, the rest counted in one line; and refusals
// before authentication cost one audit record per peer (an IPv4 address or IPv6 /64), error and
// status per audit.refusal_window, which counts them, instead of one record each.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { startFakeCore } from './lib/fake_core.mjs';
import { bearer, cli, makeInstance, makeKey, parseResponses, rawRequest, req, startProxy, tmpDb, waitFor } from './lib/harness.mjs';

let core;
let db;
let instance;
let proxy;
let key;

before(async () => {
    core = await startFakeCore();
    db = tmpDb();
    instance = makeInstance(db, core.url, { secret: 'refusal_secret' });
    key = makeKey(db, { scopes: ['*'] }).key;
    proxy = await startProxy({ db, args: ['--audit-refusal-window', '1s'] });
});

after(async () => {
    await proxy?.stop();
    await core?.close();
});

const get = (path, auth) =>
    `GET ${path} HTTP/1.1\r\nHost: x\r\n${auth ? `Authorization: Bearer ${auth}\r\n` : ''}\r\n`;

test('three failed authentications close the connection after the third answer', async () => {
    const wrongKey = `blnk_${'0'.repeat(64)}`;
    const p = `/proxy/ledgers?instance_id=${instance.id}`;
    // Five pipelined requests: no credential, a wrong key, none again, then two more.
    const r = await rawRequest(proxy.port, get(p) + get(p, wrongKey) + get(p) + get(p) + get(p), { timeoutMs: 5000 });
    const responses = parseResponses(r.data);
    assert.equal(responses.length, 3, `answers before the close: ${r.text.slice(0, 400)}`);
    assert.deepEqual(responses.map((x) => x.status), [401, 401, 401]);
    assert.notEqual(responses[0].headers.connection, 'close');
    assert.equal(responses[2].headers.connection, 'close');
    assert.equal(r.closed, true, 'the proxy closed the connection');
});

test('a refused request keeps at most 256 bytes of its raw path in the audit log', async () => {
    // Its own store and server: the record of a refusal is the first of its kind in its window.
    const adb = tmpDb();
    const inst = makeInstance(adb, core.url, { secret: 'path_secret' });
    const one = await startProxy({ db: adb, args: ['--audit-refusal-window', '1s'] });
    try {
        const long = `/proxy/${'a'.repeat(3000)}?instance_id=${inst.id}`;
        const r = await rawRequest(one.port, `GET ${long} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, { timeoutMs: 5000 });
        assert.equal(parseResponses(r.data)[0].status, 401);
        const { value: rec } = await waitFor(() => audit(adb).find((x) => (x.path ?? '').startsWith('/aaaa')),
            { timeoutMs: 10000, what: 'the refusal is recorded' });
        assert.equal(rec.path.length, 256, `kept ${rec.path.length} bytes`);
        assert.equal(rec.count, 1);
    } finally {
        await one.stop();
    }
});

test('access lines of refused anonymous requests are rate-limited; the rest are counted, not lost', async () => {
    const one = await startProxy({ db, workers: 1 });
    try {
        const p = `/proxy/ledgers?instance_id=${instance.id}`;
        // 100 refusals at once: 50 connections, 2 pipelined requests each (under the 3 strikes).
        await Promise.all(
            Array.from({ length: 50 }, () => rawRequest(one.port, get(p) + get(p), { timeoutMs: 5000, until: (b) => parseResponses(b).length === 2 })),
        );
        // A second later, any request logs the count of what was left out.
        await new Promise((res) => setTimeout(res, 1100));
        await rawRequest(one.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { timeoutMs: 5000 });
        await one.waitForLog((x) => x.msg === 'access lines of refused requests suppressed', 5000);
        await one.waitForLog((x) => x.msg === 'access' && x.status === 200, 5000);
        const lines = one.logObjects();
        const logged = lines.filter((x) => x.msg === 'access' && x.status === 401).length;
        const suppressed = lines
            .filter((x) => x.msg === 'access lines of refused requests suppressed')
            .reduce((a, x) => a + x.count, 0);
        assert.ok(logged <= 40, `at most 20 lines a second (the burst may span two seconds): ${logged}`);
        assert.equal(logged + suppressed, 100, `every refusal is a line or counted: ${logged} + ${suppressed}`);
    } finally {
        await one.stop();
    }
});

function audit(dbPath) {
    const out = cli(['audit', 'list', '--limit', '100000'], { db: dbPath });
    assert.equal(out.code, 0, out.stderr);
    return out.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

test('1,000 refusals before authentication from one peer are one audit record with count 1000; authenticated requests keep one each', async () => {
    const adb = tmpDb();
    const inst = makeInstance(adb, core.url, { secret: 'agg_secret' });
    const good = makeKey(adb, { scopes: ['proxy:read'] }).key;
    const p = `/proxy/ledgers?instance_id=${inst.id}`;
    const one = await startProxy({ db: adb, args: ['--audit-refusal-window', '2s'] });
    try {
        const before = audit(adb).length;
        // 500 connections, 2 refusals each (under the 3 strikes), 50 at a time.
        for (let round = 0; round < 10; round++) {
            await Promise.all(
                Array.from({ length: 50 }, () =>
                    rawRequest(one.port, get(p) + get(p), { timeoutMs: 5000, until: (b) => parseResponses(b).length === 2 })),
            );
        }
        // Authenticated: each its own record, at once; a 403 (scope) too.
        for (let i = 0; i < 3; i++) {
            assert.equal((await req(one.port, 'GET', p, { headers: bearer(good), agent: false })).status, 200);
        }
        assert.equal((await req(one.port, 'POST', `/proxy/ledgers?instance_id=${inst.id}`, {
            headers: { ...bearer(good), 'content-type': 'application/json' }, body: '{"name":"x"}', agent: false,
        })).status, 403);
        // The window closes 2 s after its first refusal: then the aggregate is written.
        const { value: agg } = await waitFor(() => audit(adb).find((r) => r.actor_type === 'anonymous'),
            { timeoutMs: 10000, what: 'the aggregated record' });
        const anonymous = audit(adb).filter((r) => r.actor_type === 'anonymous');
        assert.equal(anonymous.length, 1, JSON.stringify(anonymous));
        assert.equal(agg.count, 1000);
        assert.equal(agg.status, 401);
        assert.equal(agg.error, 'AUTH_MISSING_API_KEY');
        assert.equal(agg.client_addr, '127.0.0.1');
        assert.equal(agg.path, '/ledgers');
        assert.match(agg.last_time, /^\d{4}-\d\d-\d\dT/);
        assert.ok(agg.last_time >= agg.time, `${agg.time} .. ${agg.last_time}`);
        const authed = audit(adb).filter((r) => r.actor_type === 'api_key');
        assert.equal(authed.length, 4);
        assert.ok(authed.every((r) => r.count === 1 && r.last_time === null));
        assert.equal(audit(adb).length, before + 5, 'the whole flood cost one record');
        // The table view shows the count beside the status.
        const table = cli(['audit', 'list', '--limit', '10'], { db: adb, json: false });
        assert.match(table.stdout, /401 x1000/);
    } finally {
        await one.stop();
    }
});

test('refusals are grouped per IPv6 /64 and per error, and an open window is written at stop', async () => {
    const adb = tmpDb();
    const inst = makeInstance(adb, core.url, { secret: 'agg6_secret' });
    const p = `/proxy/ledgers?instance_id=${inst.id}`;
    // Through a trusted proxy (127.0.0.1), the client is the X-Forwarded-For address.
    const one = await startProxy({ db: adb, args: ['--audit-refusal-window', '1h', '--trusted-proxies', '127.0.0.1'] });
    let stopped = false;
    try {
        const from = async (addr, headers = {}) =>
            (await req(one.port, 'GET', p, { headers: { 'X-Forwarded-For': addr, ...headers }, agent: false })).status;
        assert.equal(await from('2001:db8:0:0::1'), 401);
        assert.equal(await from('2001:db8:0:0::ffff'), 401); // the same /64
        assert.equal(await from('2001:db8:0:0:1234::9'), 401); // the same /64
        assert.equal(await from('2001:db8:0:1::1'), 401); // another /64
        assert.equal(await from('2001:db8:0:0::1', { Authorization: `Bearer blnk_${'0'.repeat(64)}` }), 401); // another error
        assert.equal(await from('192.0.2.1'), 401);
        assert.equal(await from('192.0.2.2'), 401); // IPv4: each address is a peer
        // The window is an hour: nothing yet; a stop writes it.
        assert.equal(audit(adb).filter((r) => r.actor_type === 'anonymous').length, 0);
        await one.stop();
        stopped = true;
        const recs = audit(adb).filter((r) => r.actor_type === 'anonymous');
        const summary = recs.map((r) => `${r.client_addr} ${r.error} ${r.count}`).sort();
        assert.deepEqual(summary, [
            '192.0.2.1 AUTH_MISSING_API_KEY 1',
            '192.0.2.2 AUTH_MISSING_API_KEY 1',
            '2001:db8:0:1::1 AUTH_MISSING_API_KEY 1',
            '2001:db8::1 AUTH_INVALID_API_KEY 1',
            '2001:db8::1 AUTH_MISSING_API_KEY 3',
        ]);
    } finally {
        if (!stopped) {
            await one.stop();
        }
    }
    assert.ok(key);
});

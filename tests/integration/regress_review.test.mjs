// Regressions from the first security review of the proxy core (issue #2): each case failed
// before its fix.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { assertError, bearer, parseResponses, rawRequest, req, setupWorld, WWW_MISSING } from './lib/harness.mjs';

let w;
before(async () => {
    w = await setupWorld({ keys: { all: ['*'] } });
});
after(async () => {
    await w?.close();
});

test('a header with an empty value reaches Core with an empty value (not a 502)', async () => {
    w.core.reset();
    const r = await rawRequest(
        w.port,
        `GET ${w.p('/ledgers')} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${w.keys.all.key}\r\nX-Empty:\r\nIdempotency-Key: \r\nConnection: close\r\n\r\n`,
    );
    const [res] = parseResponses(r.data);
    assert.equal(res.status, 200);
    assert.equal(w.core.requests.length, 1);
    assert.equal(w.core.requests[0].headerCount('x-empty'), 1);
    assert.equal(w.core.requests[0].headers['x-empty'], '');
    assert.equal(w.core.requests[0].headers['idempotency-key'], '');
});

test('the peer address always ends X-Forwarded-For, however long the client-sent chain', async () => {
    w.core.reset();
    const long = 'c'.repeat(5458);
    const res = await req(w.port, 'GET', w.p('/ledgers'), {
        headers: { ...bearer(w.keys.all.key), 'x-forwarded-for': [long, long, long] },
    });
    assert.equal(res.status, 200);
    const xff = w.core.requests[0].headers['x-forwarded-for'];
    assert.ok(xff.endsWith('127.0.0.1'), `X-Forwarded-For ends with the peer: ...${xff.slice(-40)}`);
    // A chain from a client that is not a trusted proxy is not forwarded at all (issue 11).
    w.core.reset();
    await req(w.port, 'GET', w.p('/ledgers'), { headers: { ...bearer(w.keys.all.key), 'x-forwarded-for': '10.1.2.3' } });
    assert.equal(w.core.requests[0].headers['x-forwarded-for'], '127.0.0.1');
});

test('/proxy and /proxy/ without a credential get 401 first (DESIGN §2 check order)', async () => {
    for (const path of ['/proxy', '/proxy/', '/proxy?instance_id=x']) {
        const res = await req(w.port, 'GET', path);
        assertError(res, 401, 'AUTH_MISSING_API_KEY', { wwwAuthenticate: WWW_MISSING });
    }
    const withKey = await req(w.port, 'GET', '/proxy/', { headers: bearer(w.keys.all.key) });
    assert.ok(withKey.status === 400 || withKey.status === 404, `status ${withKey.status}`);
});

test('a bulk body of many small transactions gets its defaults, not a 413', async () => {
    w.core.reset();
    const body = JSON.stringify({ transactions: Array.from({ length: 500 }, () => ({ amount: 1 })) });
    const res = await req(w.port, 'POST', w.p('/transactions/bulk'), {
        headers: { ...bearer(w.keys.all.key), 'content-type': 'application/json' },
        body,
    });
    assert.equal(res.status, 201);
    const sent = JSON.parse(w.core.requests[0].body.toString());
    assert.equal(sent.transactions.length, 500);
    for (const t of sent.transactions) {
        assert.equal(t.precision, 100);
        assert.match(t.reference, /^ref_/);
    }
});

test('a bodiless write whose Core connection drops is sent to Core once, never retried', async () => {
    for (const [method, path] of [['POST', '/refund-transaction/txn_1'], ['DELETE', '/reconciliation/matching-rules/r1']]) {
        w.core.setHandler(null);
        // Warm a kept-alive connection to Core, so the write goes out on a reused one.
        const warm = await req(w.port, 'GET', w.p('/ledgers'), { headers: bearer(w.keys.all.key) });
        assert.equal(warm.status, 200);
        w.core.reset();
        w.core.setHandler({ destroy: true });
        const res = await req(w.port, method, w.p(path), { headers: bearer(w.keys.all.key) });
        assertError(res, 502, 'PROXY_BAD_GATEWAY');
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(w.core.requests.length, 1, `${method} ${path} reached Core ${w.core.requests.length} times`);
    }
    w.core.setHandler(null);
});

// From the acceptance audit of the first submission.

test('serve accepts --json like every command (its output is JSON lines already)', async () => {
    const { startProxy } = await import('./lib/harness.mjs');
    const proxy = await startProxy({ args: ['--json'] });
    try {
        const res = await req(proxy.port, 'GET', '/healthz');
        assert.equal(res.status, 200);
    } finally {
        await proxy.stop();
    }
});

test('a Core answer over max_response_bytes is a 502, never a truncated 200', async () => {
    const { setupWorld: world } = await import('./lib/harness.mjs');
    const v = await world({ proxyArgs: ['--max-response-bytes', '65536'] });
    try {
        v.core.setHandler({ status: 200, hugeBytes: 65537 });
        const res = await req(v.port, 'GET', v.p('/ledgers'), { headers: bearer(v.keys.all.key) });
        assertError(res, 502, 'PROXY_BAD_GATEWAY');
        v.core.setHandler({ status: 200, hugeBytes: 65536 });
        const exact = await req(v.port, 'GET', v.p('/ledgers'), { headers: bearer(v.keys.all.key) });
        assert.equal(exact.status, 200);
        assert.equal(exact.body.length, 65536);
    } finally {
        await v.close();
    }
});

test('refusals that are not about the credential carry no WWW-Authenticate', async () => {
    const h = await import('./lib/harness.mjs');
    const other = h.makeInstance(w.db, w.core.url, { name: 'other' });
    const restricted = h.makeKey(w.db, { scopes: ['*'], instances: [other.id] });
    // Ready when the running server knows the new key (it may use its own instance).
    await h.waitFor(
        async () => (await req(w.port, 'GET', `/proxy/ledgers?instance_id=${other.id}`, { headers: bearer(restricted.key) })).status === 200,
        { timeoutMs: 2000, what: 'new key and instance loaded' },
    );
    const cases = [
        [await req(w.port, 'GET', w.p('/api-keys'), { headers: bearer(w.keys.all.key) }), 404, 'GEN_NOT_FOUND'],
        [await req(w.port, 'GET', '/proxy/ledgers?instance_id=instance_00000000000000000000000000', { headers: bearer(w.keys.all.key) }), 404, 'PROXY_UNKNOWN_INSTANCE'],
        [await req(w.port, 'GET', w.p('/ledgers'), { headers: bearer(restricted.key) }), 403, 'AUTH_INSUFFICIENT_PERMISSIONS'],
        [await req(w.port, 'GET', '/proxy/ledgers', { headers: bearer(w.keys.all.key) }), 400, 'GEN_MISSING_PARAMETER'],
    ];
    for (const [res, status, code] of cases) {
        assertError(res, status, code);
        assert.equal(res.headers['www-authenticate'], undefined, `${code} has no WWW-Authenticate`);
    }
});

test('with the default reload interval a revoked key is refused within 2 s', async () => {
    const h = await import('./lib/harness.mjs');
    const { startFakeCore } = await import('./lib/fake_core.mjs');
    const core = await startFakeCore();
    const db = h.tmpDb();
    const inst = h.makeInstance(db, core.url, { secret: 'default_interval_secret' });
    const k = h.makeKey(db, { scopes: ['*'] });
    const proxy = await h.startProxy({ db, reloadInterval: null });
    try {
        const path = `/proxy/ledgers?instance_id=${inst.id}`;
        assert.equal((await req(proxy.port, 'GET', path, { headers: bearer(k.key) })).status, 200);
        const revoke = h.cli(['key', 'revoke', k.id], { db });
        assert.equal(revoke.code, 0, revoke.stderr);
        await h.waitFor(
            async () => (await req(proxy.port, 'GET', path, { headers: bearer(k.key) })).status === 401,
            { timeoutMs: 2000, intervalMs: 100, what: 'revoked key refused at the default reload interval' },
        );
    } finally {
        await proxy.stop();
        await core.close();
    }
});

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
    // A short chain is kept in front of the peer.
    w.core.reset();
    await req(w.port, 'GET', w.p('/ledgers'), { headers: { ...bearer(w.keys.all.key), 'x-forwarded-for': '10.1.2.3' } });
    assert.equal(w.core.requests[0].headers['x-forwarded-for'], '10.1.2.3, 127.0.0.1');
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

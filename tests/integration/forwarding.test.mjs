// DESIGN §2 header and body rules in both directions, big and chunked responses, pass-through of
// Core's errors, and refusing a request without reading its body.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { hugeBody, sha256, startFakeCore } from './lib/fake_core.mjs';
import {
    assertError,
    bearer,
    makeInstance,
    parseResponses,
    rawRequest,
    req,
    setupWorld,
} from './lib/harness.mjs';

let w;
let noSecret; // an instance without a Core secret, on the same fake Core
before(async () => {
    w = await setupWorld({ keys: { all: ['*'] } });
    noSecret = makeInstance(w.db, w.core.url, { name: 'nosecret' });
});
after(async () => {
    await w?.close();
});

const K = () => w.keys.all.key;

test('Core receives X-Blnk-Key = the instance secret (without the file\'s trailing newline)', async () => {
    w.core.reset();
    const res = await req(w.port, 'GET', w.p('/ledgers'), { headers: bearer(K()) });
    assert.equal(res.status, 200);
    const rec = w.core.requests[0];
    assert.equal(rec.headers['x-blnk-key'], w.secret);
    assert.equal(rec.headerCount('x-blnk-key'), 1);
});

test('no X-Blnk-Key when the instance has no secret (and never the client\'s)', async () => {
    // the instance was added after the server started: allow the reload interval
    let res;
    for (let i = 0; i < 20; i++) {
        w.core.reset();
        res = await req(w.port, 'GET', `/proxy/ledgers?instance_id=${noSecret.id}`, { headers: { ...bearer(K()), 'X-Blnk-Key': 'client-sent-key' } });
        if (res.status === 200) {
            break;
        }
        await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(res.status, 200, res.text);
    assert.equal(w.core.requests[0].headerCount('x-blnk-key'), 0);
});

test('request headers: credentials and hop-by-hop never forwarded, end-to-end headers are', async () => {
    w.core.reset();
    const headers = {
        ...bearer(K()),
        Cookie: 'session=abc; other=def',
        'X-Blnk-Key': 'client-sent-key',
        Connection: 'keep-alive, X-Hop-Named, x-other-named',
        'X-Hop-Named': 'must-not-pass',
        'X-Other-Named': 'must-not-pass-either',
        'Keep-Alive': 'timeout=5',
        TE: 'trailers',
        'Proxy-Authorization': 'Basic Zm9vOmJhcg==',
        'Proxy-Connection': 'keep-alive',
        'Content-Type': 'application/json; charset=utf-8',
        Accept: 'application/json, text/plain;q=0.5',
        'Accept-Encoding': 'identity',
        'User-Agent': 'blnk-itest/1.0 (+node)',
        'Idempotency-Key': `idem-${Date.now()}-${Math.random()}`,
        'X-Foo': 'custom value  with  spaces',
        'X-Empty-Ok': 'e',
    };
    const body = '{"name":"headers"}';
    const res = await req(w.port, 'POST', w.p('/ledgers'), { headers, body });
    assert.equal(res.status, 201, res.text);
    assert.equal(w.core.requests.length, 1);
    const h = w.core.requests[0].headers;
    for (const never of ['authorization', 'cookie', 'x-hop-named', 'x-other-named', 'keep-alive', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-connection', 'transfer-encoding']) {
        assert.equal(h[never], undefined, `${never} must not reach Core (got ${JSON.stringify(h[never])})`);
    }
    assert.ok(!String(h.connection ?? '').toLowerCase().includes('x-hop-named'), `connection: ${h.connection}`);
    assert.equal(h['x-blnk-key'], w.secret, 'the instance secret, not the client\'s');
    assert.equal(h['content-type'], headers['Content-Type']);
    assert.equal(h.accept, headers.Accept);
    assert.equal(h['user-agent'], headers['User-Agent']);
    assert.equal(h['idempotency-key'], headers['Idempotency-Key']);
    assert.equal(h['x-foo'], headers['X-Foo']);
    assert.equal(h['x-empty-ok'], 'e');
    assert.equal(w.core.requests[0].body.toString(), body);
    // whatever the client sent, nothing of its credentials reaches Core in any header
    for (const [k, v] of w.core.requests[0].rawHeaders) {
        assert.ok(!v.includes(K()), `header ${k} carries the client key`);
        assert.ok(!v.includes('client-sent-key'), `header ${k} carries the client X-Blnk-Key`);
    }
});

test('Upgrade request header is not forwarded', async () => {
    w.core.reset();
    const r = await rawRequest(
        w.port,
        `GET ${w.p('/ledgers/ldg_up')} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${K()}\r\n` + 'Connection: Upgrade, close\r\nUpgrade: websocket\r\n\r\n',
        { timeoutMs: 5000 },
    );
    const [res] = parseResponses(r.data);
    assert.ok(res, r.text);
    assert.notEqual(res.status, 101);
    if (res.status === 200) {
        assert.equal(w.core.requests.length, 1);
        assert.equal(w.core.requests[0].headers.upgrade, undefined);
    } else {
        // refusing an upgrade outright is acceptable; forwarding it is not
        assert.equal(w.core.requests.length, 0);
    }
});

test('repeated end-to-end request headers keep their values in order', async () => {
    w.core.reset();
    const r = await rawRequest(
        w.port,
        `GET ${w.p('/ledgers')} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${K()}\r\nX-Multi: a\r\nX-Multi: b\r\n` +
            'Trailer: X-Checksum\r\nTE: trailers\r\nConnection: close\r\n\r\n',
        { timeoutMs: 5000 },
    );
    assert.equal(parseResponses(r.data)[0]?.status, 200, r.text);
    assert.equal(w.core.requests[0].headers['x-multi'], 'a, b');
    assert.equal(w.core.requests[0].headers.trailer, undefined, 'Trailer not forwarded');
    assert.equal(w.core.requests[0].headers.te, undefined, 'TE not forwarded');
});

test('X-Request-Id: the client\'s is forwarded and returned; otherwise one is generated', async () => {
    w.core.reset();
    let res = await req(w.port, 'GET', w.p('/ledgers'), { headers: { ...bearer(K()), 'X-Request-Id': 'client-req-123' } });
    assert.equal(res.headers['x-request-id'], 'client-req-123');
    assert.equal(w.core.requests[0].headers['x-request-id'], 'client-req-123');
    assert.equal(w.core.requests[0].headerCount('x-request-id'), 1);
    const ids = new Set();
    for (let i = 0; i < 3; i++) {
        w.core.reset();
        res = await req(w.port, 'GET', w.p('/ledgers'), { headers: bearer(K()) });
        const id = res.headers['x-request-id'];
        assert.ok(id && id.length >= 8, `generated id: ${id}`);
        assert.equal(w.core.requests[0].headers['x-request-id'], id, 'Core saw the same id');
        ids.add(id);
    }
    assert.equal(ids.size, 3, 'generated ids are unique');
});

test('X-Forwarded-For and X-Forwarded-Proto', async () => {
    w.core.reset();
    await req(w.port, 'GET', w.p('/ledgers'), { headers: bearer(K()) });
    let h = w.core.requests[0].headers;
    assert.equal(h['x-forwarded-for'], '127.0.0.1');
    assert.equal(h['x-forwarded-proto'], 'http');
    // A client that is not a trusted proxy names no address (issue 11; trusted_proxies.test.mjs).
    w.core.reset();
    await req(w.port, 'GET', w.p('/ledgers'), {
        headers: { ...bearer(K()), 'X-Forwarded-For': '10.1.2.3', 'X-Forwarded-Proto': 'https' },
    });
    h = w.core.requests[0].headers;
    assert.equal(h['x-forwarded-for'], '127.0.0.1');
    assert.equal(h['x-forwarded-proto'], 'http');
    assert.equal(w.core.requests[0].headerCount('x-forwarded-for'), 1);
});

test('response: Core\'s status, body and end-to-end headers unchanged, hop-by-hop removed', async () => {
    const body = Buffer.from('{"ledger_id":"ldg_x","amount":100.50,"big":12345678901234567890123456789012345678901,"s":"é✓"}', 'utf8');
    w.core.setHandler({
        status: 201,
        headers: [
            ['Content-Type', 'application/vnd.blnk+json; charset=utf-8'],
            ['X-Core-Thing', 'core value 1'],
            ['Set-Cookie', 'a=1; Path=/'],
            ['Set-Cookie', 'b=2; Path=/; HttpOnly'],
            ['Cache-Control', 'no-store'],
            ['ETag', '"v1-abc"'],
        ],
        body,
        hopByHop: true,
    });
    try {
        const res = await req(w.port, 'POST', w.p('/ledgers'), { headers: bearer(K()), body: '{}' });
        assert.equal(res.status, 201);
        assert.ok(res.body.equals(body), `body: ${res.text}`);
        assert.equal(res.headers['content-type'], 'application/vnd.blnk+json; charset=utf-8');
        assert.equal(res.headers['x-core-thing'], 'core value 1');
        assert.deepEqual(res.headers['set-cookie'], ['a=1; Path=/', 'b=2; Path=/; HttpOnly']);
        assert.equal(res.headers['cache-control'], 'no-store');
        assert.equal(res.headers.etag, '"v1-abc"');
        assert.equal(res.headers['x-foo'], undefined, 'header named by Core\'s Connection removed');
        assert.ok(!String(res.headers.connection ?? '').toLowerCase().includes('x-foo'), `connection: ${res.headers.connection}`);
        assert.notEqual(res.headers['keep-alive'], 'timeout=7, max=77', 'Core\'s Keep-Alive removed');
        assert.equal(res.headers['proxy-connection'], undefined);
        assert.ok(res.headers['x-request-id']);
    } finally {
        w.core.setHandler(null);
    }
});

test('Core errors (500, 422, 404, 409) pass through unchanged', async () => {
    const cases = [
        [500, 'text/plain; charset=utf-8', 'internal server error\n'],
        [422, 'application/json', '{"error":"amount must be positive","error_detail":{"code":"TXN_INVALID_AMOUNT","message":"amount must be positive"}}'],
        [404, 'application/json', '{"error":"ledger not found"}'],
        [409, 'application/json', '{"error":"conflict"}'],
        [400, 'application/json', '{"errors":{"amount":"required"}}'],
    ];
    for (const [status, ct, body] of cases) {
        w.core.setHandler({ status, headers: { 'Content-Type': ct, 'X-Core-Error': String(status) }, body });
        try {
            const res = await req(w.port, 'POST', w.p('/transactions'), {
                headers: { ...bearer(K()), 'content-type': 'application/json' },
                body: '{"amount":-1,"precision":1,"reference":"r"}',
            });
            assert.equal(res.status, status);
            assert.equal(res.text, body);
            assert.equal(res.headers['content-type'], ct);
            assert.equal(res.headers['x-core-error'], String(status));
        } finally {
            w.core.setHandler(null);
        }
    }
});

test('a 5 MiB response arrives intact', async () => {
    const n = 5 * 1024 * 1024 + 17;
    w.core.setHandler({ status: 200, headers: { 'Content-Type': 'application/octet-stream' }, hugeBytes: n });
    try {
        const res = await req(w.port, 'GET', w.p('/transactions'), { headers: bearer(K()), timeoutMs: 20000 });
        assert.equal(res.status, 200);
        assert.equal(res.body.length, n);
        assert.equal(sha256(res.body), sha256(hugeBody(n)));
    } finally {
        w.core.setHandler(null);
    }
});

test('a chunked Core response arrives intact', async () => {
    const n = 300 * 1024 + 3;
    w.core.setHandler({ status: 200, headers: { 'Content-Type': 'application/json', 'X-Chunky': 'yes' }, hugeBytes: n, chunked: true, chunkSize: 4093 });
    try {
        const res = await req(w.port, 'GET', w.p('/balances'), { headers: bearer(K()) });
        assert.equal(res.status, 200);
        assert.equal(res.headers['x-chunky'], 'yes');
        assert.equal(res.body.length, n);
        assert.equal(sha256(res.body), sha256(hugeBody(n)));
    } finally {
        w.core.setHandler(null);
    }
    // and over a raw connection the framing is valid HTTP/1.1 (one coherent framing, not both)
    w.core.setHandler({ status: 200, headers: { 'Content-Type': 'application/json' }, body: '{"c":1}', chunked: true });
    try {
        const r = await rawRequest(w.port, `GET ${w.p('/balances')} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${K()}\r\nConnection: close\r\n\r\n`, { timeoutMs: 5000 });
        const [res] = parseResponses(r.data);
        assert.equal(res.status, 200);
        assert.ok(!(res.headers['content-length'] !== undefined && res.headers['transfer-encoding'] !== undefined), 'not both CL and TE');
        assert.equal(res.text, '{"c":1}');
    } finally {
        w.core.setHandler(null);
    }
});

test('HEAD keeps Core\'s headers and sends no body', async () => {
    w.core.setHandler({ status: 200, headers: { 'Content-Type': 'application/json', 'X-Core-Thing': 'h' }, body: '{"x":1}' });
    try {
        const r = await rawRequest(w.port, `HEAD ${w.p('/ledgers')} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${K()}\r\nConnection: close\r\n\r\n`, { timeoutMs: 5000 });
        const [res] = parseResponses(r.data, { headMethods: [true] });
        assert.equal(res.status, 200);
        assert.equal(res.headers['x-core-thing'], 'h');
        // A length of 0 would misstate the size of the GET answer; the proxy sends none.
        assert.equal(res.headers['content-length'], undefined);
        assert.ok(r.text.endsWith('\r\n\r\n'), `no body after the head: ${JSON.stringify(r.text)}`);
    } finally {
        w.core.setHandler(null);
    }
});

// DESIGN §2: authentication and the route check happen before the body is read.
async function refusedWithoutBody(extraHead, target, expectStatus, expectCode) {
    w.core.reset();
    const bytes = `POST ${target} HTTP/1.1\r\nHost: x\r\n${extraHead}Content-Type: application/json\r\nContent-Length: 104857600\r\n\r\n`;
    const r = await rawRequest(w.port, bytes, { timeoutMs: 2000, until: (b) => parseResponses(b)[0]?.complete === true });
    assert.ok(!r.timedOut, `a response within 2 s without sending the body (got ${JSON.stringify(r.text.slice(0, 100))})`);
    const [res] = parseResponses(r.data);
    assertError(res, expectStatus, expectCode);
    assert.equal(w.core.requests.length, 0);
    // the connection: either closed, or marked to close (the proxy cannot reuse it without reading 100 MiB)
    if (r.reason === 'until') {
        const hdr = String(res.headers.connection ?? '').toLowerCase();
        assert.ok(hdr.includes('close'), `connection not closed and no "Connection: close" (${res.headers.connection})`);
    }
}

test('a request without a credential is refused before its body is read', async () => {
    await refusedWithoutBody('', w.p('/ledgers'), 401, 'AUTH_MISSING_API_KEY');
});

test('a request with a bad key is refused before its body is read', async () => {
    await refusedWithoutBody(`Authorization: Bearer blnk_${'0'.repeat(64)}\r\n`, w.p('/ledgers'), 401, 'AUTH_INVALID_API_KEY');
});

test('an admin route is refused before its body is read', async () => {
    await refusedWithoutBody(`Authorization: Bearer ${K()}\r\n`, w.p('/api-keys'), 404, 'GEN_NOT_FOUND');
});

test('a body over the limit (by Content-Length) is refused before it is read', async () => {
    // default --max-body-bytes is 1 MiB; 100 MiB announced
    await refusedWithoutBody(`Authorization: Bearer ${K()}\r\n`, w.p('/ledgers'), 413, 'GEN_PAYLOAD_TOO_LARGE');
});

test('Expect: 100-continue with a bad key gets the 401, not 100 Continue', async () => {
    w.core.reset();
    const bytes = `POST ${w.p('/ledgers')} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 12\r\nExpect: 100-continue\r\n\r\n`;
    const r = await rawRequest(w.port, bytes, { timeoutMs: 2000, until: (b) => parseResponses(b)[0]?.complete === true });
    assert.match(r.text, /^HTTP\/1\.1 401 /);
    assert.equal(w.core.requests.length, 0);
});

test('the proxy still serves normally after the refusals', async () => {
    w.core.reset();
    const res = await req(w.port, 'POST', w.p('/ledgers'), { headers: { ...bearer(K()), 'content-type': 'application/json' }, body: '{"name":"after"}', agent: false });
    assert.equal(res.status, 201, res.text);
    assert.equal(w.core.requests.length, 1);
});

test('a body of exactly the default limit (1 MiB) is forwarded intact', async () => {
    const n = 1024 * 1024;
    const body = hugeBody(n);
    w.core.reset();
    const res = await req(w.port, 'POST', w.p('/ledgers'), { headers: { ...bearer(K()), 'content-type': 'application/octet-stream' }, body, agent: false });
    assert.equal(res.status, 201, res.text.slice(0, 200));
    assert.equal(w.core.requests.length, 1);
    assert.equal(sha256(w.core.requests[0].body), sha256(body));
});

// A client (like node's http or an SDK) that sends its body right after the head must still be
// able to read the 413: the proxy has to close gracefully (answer, shut down its write side,
// discard what keeps arriving for a moment) rather than reset the connection under unread data.
test('a client streaming a body over the limit reads the 413 (not a reset)', async () => {
    const outcomes = [];
    for (let i = 0; i < 10; i++) {
        const n = i % 2 ? 1024 * 1024 + 1 : 4 * 1024 * 1024;
        w.core.reset();
        try {
            const res = await req(w.port, 'POST', w.p('/ledgers'), { headers: { ...bearer(K()), 'content-type': 'application/octet-stream' }, body: hugeBody(n), agent: false });
            outcomes.push(res.status === 413 && res.json?.error_detail?.code === 'GEN_PAYLOAD_TOO_LARGE' ? 'ok' : `${res.status} ${res.text.slice(0, 100)}`);
        } catch (e) {
            outcomes.push(`client error ${e.code || e.message}`);
        }
        assert.equal(w.core.requests.length, 0);
    }
    assert.deepEqual(outcomes, Array(10).fill('ok'));
});

test('Expect: 100-continue with a good request gets 100 Continue, then the answer', async () => {
    w.core.reset();
    const body = '{"name":"expect"}';
    const head = `POST ${w.p('/ledgers')} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${K()}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${body.length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`;
    // send only the head; the body goes once the proxy says 100 Continue
    const net = await import('node:net');
    const got = await new Promise((resolve) => {
        const chunks = [];
        let sentBody = false;
        const s = net.connect({ host: '127.0.0.1', port: w.port }, () => s.write(head));
        const t = setTimeout(() => s.destroy(), 4000);
        s.on('data', (d) => {
            chunks.push(d);
            const text = Buffer.concat(chunks).toString('latin1');
            if (!sentBody && text.startsWith('HTTP/1.1 100') && text.includes('\r\n\r\n')) {
                sentBody = true;
                s.write(body);
            }
        });
        s.on('error', () => {});
        s.on('close', () => {
            clearTimeout(t);
            resolve({ text: Buffer.concat(chunks).toString('latin1'), sentBody });
        });
    });
    assert.ok(got.sentBody, `100 Continue first: ${JSON.stringify(got.text.slice(0, 120))}`);
    const final = parseResponses(Buffer.from(got.text, 'latin1')).filter((x) => x.status >= 200);
    assert.equal(final.length, 1);
    assert.equal(final[0].status, 201);
    assert.equal(w.core.requests[0].body.toString(), body);
    assert.equal(w.core.requests[0].headers.expect, undefined, 'Expect is hop-by-hop for the proxy');
});

test('a 204 from Core passes through without a body', async () => {
    w.core.setHandler({ status: 204, headers: { 'X-Core-Thing': 'none' }, body: '' });
    try {
        const r = await rawRequest(w.port, `DELETE ${w.p('/reconciliation/matching-rules/r9')} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${K()}\r\nConnection: close\r\n\r\n`, { timeoutMs: 5000 });
        const [res] = parseResponses(r.data);
        assert.equal(res.status, 204, r.text);
        assert.equal(res.headers['x-core-thing'], 'none');
        assert.ok(r.text.endsWith('\r\n\r\n'), `no body: ${JSON.stringify(r.text)}`);
    } finally {
        w.core.setHandler(null);
    }
});

test('a Core response cut short is never passed off as complete', async () => {
    w.core.setHandler((rec, rq, res) => {
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': '1000' });
        res.write('{"partial":');
        setTimeout(() => rq.socket.destroy(), 50);
        return 'handled';
    });
    try {
        const r = await rawRequest(w.port, `GET ${w.p('/ledgers/cut')} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${K()}\r\nConnection: close\r\n\r\n`, { timeoutMs: 5000 });
        assert.ok(!r.timedOut, 'the proxy answers or closes');
        const [res] = parseResponses(r.data);
        if (res && res.status === 502) {
            assert.equal(res.json?.error_detail?.code, 'PROXY_BAD_GATEWAY');
        } else {
            // already streaming: the client must see a truncated message and a closed connection
            assert.ok(!res || !res.complete, `a truncated body must not look complete: ${JSON.stringify(r.text.slice(0, 200))}`);
            assert.ok(r.closed);
        }
    } finally {
        w.core.setHandler(null);
    }
    const ok = await req(w.port, 'GET', w.p('/ledgers'), { headers: bearer(K()), agent: false });
    assert.equal(ok.status, 200);
});

test('Core closing idle keep-alive connections does not fail the next request', async () => {
    const core2 = await startFakeCore({ keepAliveTimeoutMs: 150 });
    try {
        const inst = makeInstance(w.db, core2.url, { secret: 's2', name: 'short-keepalive' });
        let res;
        for (let i = 0; i < 25; i++) {
            res = await req(w.port, 'POST', `/proxy/ledgers?instance_id=${inst.id}`, { headers: bearer(K()), body: '{"n":0}' });
            if (res.status === 201) {
                break;
            }
            await new Promise((r) => setTimeout(r, 100));
        }
        assert.equal(res.status, 201, res.text);
        for (let i = 1; i <= 3; i++) {
            await new Promise((r) => setTimeout(r, 400)); // Core has closed the pooled connection by now
            core2.reset();
            res = await req(w.port, 'POST', `/proxy/ledgers?instance_id=${inst.id}`, { headers: bearer(K()), body: `{"n":${i}}` });
            assert.equal(res.status, 201, `request ${i} after Core closed the idle connection: ${res.text}`);
            assert.equal(core2.requests.length, 1);
        }
    } finally {
        await core2.close();
    }
});

test('a client that goes away while Core is slow does not disturb the proxy', async () => {
    w.core.setHandler({ delayMs: 500 });
    try {
        const r = await rawRequest(w.port, `GET ${w.p('/ledgers/gone')} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${K()}\r\n\r\n`, { timeoutMs: 100 });
        assert.ok(r.timedOut);
        await new Promise((res) => setTimeout(res, 700));
    } finally {
        w.core.setHandler(null);
    }
    const ok = await req(w.port, 'GET', w.p('/ledgers'), { headers: bearer(K()), agent: false });
    assert.equal(ok.status, 200);
});

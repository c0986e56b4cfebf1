// Issue 10: the proxy reads Core's answers with its own strict HTTP/1.1 client. A Core that
// answers with bytes no strict reader could frame for certain (issue 11 item 6: a bare CR in a
// header value; also NUL, obs-fold, duplicate or conflicting Content-Length, a bad chunk) is a
// 502 PROXY_BAD_GATEWAY, counted as an upstream error of kind "other", never relayed; well-formed
// answers in every framing pass (Content-Length, chunked, HTTP/1.0 until close, after a 1xx).
// Core here is a raw TCP server that writes exactly the bytes each test names.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { assertError, bearer, makeInstance, makeKey, req, startProxy, tmpDb } from './lib/harness.mjs';

const answers = {
    '/ok': 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}',
    '/chunked': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Core: c\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n',
    '/http10-close': 'HTTP/1.0 200 OK\r\nX-Core: old\r\n\r\nuntil the end',
    '/interim': 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok',
    '/bare-cr': 'HTTP/1.1 200 OK\r\nX-Core: a\rb\r\nContent-Length: 2\r\n\r\nok',
    '/nul': 'HTTP/1.1 200 OK\r\nX-Core: a\0b\r\nContent-Length: 2\r\n\r\nok',
    '/obs-fold': 'HTTP/1.1 200 OK\r\nX-Core: a\r\n b\r\nContent-Length: 2\r\n\r\nok',
    '/dup-cl': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok',
    '/cl-te': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
    '/bad-chunk': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n',
    '/bare-lf': 'HTTP/1.1 200 OK\nContent-Length: 2\n\nok',
    '/space-colon': 'HTTP/1.1 200 OK\r\nX-Core : a\r\nContent-Length: 2\r\n\r\nok',
    '/not-http': 'SSH-2.0-OpenSSH_9.2\r\n\r\n',
};
const closeAfter = new Set(['/http10-close']);

let core;
let proxy;
let key;
let inst;
const seen = [];

function startRawCore() {
    const server = net.createServer((sock) => {
        let buf = Buffer.alloc(0);
        sock.on('error', () => {});
        sock.on('data', (d) => {
            buf = Buffer.concat([buf, d]);
            for (;;) {
                const end = buf.indexOf('\r\n\r\n');
                if (end < 0) {
                    return;
                }
                const head = buf.subarray(0, end).toString('latin1');
                const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
                const len = m ? Number(m[1]) : 0;
                if (buf.length < end + 4 + len) {
                    return;
                }
                buf = buf.subarray(end + 4 + len);
                const path = head.split(' ')[1].replace(/^\/ledgers/, '');
                seen.push(path);
                sock.write(Buffer.from(answers[path] ?? 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n', 'latin1'));
                if (closeAfter.has(path)) {
                    sock.end();
                }
            }
        });
    });
    return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

before(async () => {
    core = await startRawCore();
    const db = tmpDb();
    inst = makeInstance(db, `http://127.0.0.1:${core.address().port}`, { secret: 'raw_core_secret', name: 'raw' });
    key = makeKey(db, { scopes: ['*'] }).key;
    proxy = await startProxy({ db });
});

after(async () => {
    await proxy?.stop();
    await new Promise((r) => core.close(r));
});

const P = (path) => `/proxy/ledgers${path}?instance_id=${inst.id}`;

async function otherErrors() {
    const res = await req(proxy.port, 'GET', '/metrics', { agent: false });
    const m = /^blnkproxy_upstream_errors_total\{kind="other"\} (\d+)$/m.exec(res.text);
    assert.ok(m, 'the other-kind series is always written');
    return Number(m[1]);
}

test('well-formed answers pass in every framing', async () => {
    const ok = await req(proxy.port, 'GET', P('/ok'), { headers: bearer(key) });
    assert.equal(ok.status, 200);
    assert.equal(ok.text, '{"ok":true}');
    const chunked = await req(proxy.port, 'GET', P('/chunked'), { headers: bearer(key) });
    assert.equal(chunked.status, 200);
    assert.equal(chunked.text, 'hello world');
    assert.equal(chunked.headers['x-core'], 'c');
    const old = await req(proxy.port, 'GET', P('/http10-close'), { headers: bearer(key) });
    assert.equal(old.status, 200);
    assert.equal(old.text, 'until the end');
    const interim = await req(proxy.port, 'GET', P('/interim'), { headers: bearer(key) });
    assert.equal(interim.status, 201);
    assert.equal(interim.text, 'ok');
});

for (const path of ['/bare-cr', '/nul', '/obs-fold', '/dup-cl', '/cl-te', '/bad-chunk', '/bare-lf', '/space-colon', '/not-http']) {
    test(`a malformed answer (${path.slice(1)}) is a 502, counted, and not relayed`, async () => {
        const before = await otherErrors();
        const n = seen.length;
        const res = await req(proxy.port, 'GET', P(path), { headers: bearer(key) });
        assertError(res, 502, 'PROXY_BAD_GATEWAY');
        assert.equal(res.headers['x-core'], undefined);
        assert.deepEqual(seen.slice(n), [path], 'Core got the request once');
        assert.equal(await otherErrors(), before + 1);
        // The next request is unaffected (a fresh connection to Core if need be).
        const ok = await req(proxy.port, 'GET', P('/ok'), { headers: bearer(key) });
        assert.equal(ok.status, 200);
    });
}

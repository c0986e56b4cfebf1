// HTTPS to Core (DESIGN §2, issue #2 item 6): certificate verification is on; an instance may
// name a CA bundle file. The Core here is a node https server with a certificate made for this
// run by openssl, valid for 127.0.0.1, and signed by a throwaway CA.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';

import { makeCertificates } from './lib/certs.mjs';
import { assertError, bearer, cli, makeKey, req, startProxy, tmpDb, tmpDir } from './lib/harness.mjs';

let core;
let corePort;
let caFile;
let received = [];
let proxy;
let db;
let key;
let trusted;
let untrusted;
let wrongName;


before(async () => {
    const dir = tmpDir();
    caFile = makeCertificates(dir).ca;
    core = https.createServer(
        { key: fs.readFileSync(path.join(dir, 'core.key')), cert: fs.readFileSync(path.join(dir, 'core.pem')) },
        (rq, rs) => {
            const chunks = [];
            rq.on('data', (d) => chunks.push(d));
            rq.on('end', () => {
                received.push({ method: rq.method, url: rq.url, headers: rq.headers, body: Buffer.concat(chunks) });
                rs.writeHead(201, { 'content-type': 'application/json' });
                rs.end('{"ledger_id":"ldg_tls"}');
            });
        },
    );
    await new Promise((r) => core.listen(0, '127.0.0.1', r));
    corePort = core.address().port;

    db = tmpDb();
    const secretDir = tmpDir();
    fs.writeFileSync(path.join(secretDir, 's'), 'tls_core_secret\n');
    const a = cli(['instance', 'add', '--name', 'tls-trusted', '--url', `https://127.0.0.1:${corePort}`,
        '--secret-key-file', path.join(secretDir, 's'), '--ca-file', caFile], { db });
    assert.equal(a.code, 0, a.stderr);
    trusted = a.json;
    const b = cli(['instance', 'add', '--name', 'tls-untrusted', '--url', `https://127.0.0.1:${corePort}`], { db });
    assert.equal(b.code, 0, b.stderr);
    untrusted = b.json;
    // The certificate names 127.0.0.1 only: reached as "localhost", it is for another host.
    const w = cli(['instance', 'add', '--name', 'tls-wrong-name', '--url', `https://localhost:${corePort}`,
        '--ca-file', caFile], { db });
    assert.equal(w.code, 0, w.stderr);
    wrongName = w.json;
    key = makeKey(db, { scopes: ['*'] }).key;
    proxy = await startProxy({ db });
});

after(async () => {
    if (proxy) {
        await proxy.stop();
    }
    if (core) {
        core.closeAllConnections();
        await new Promise((r) => core.close(r));
    }
});

test('an instance with its CA bundle is reached over verified TLS', async () => {
    received = [];
    const body = '{"name":"over tls"}';
    const res = await req(proxy.port, 'POST', `/proxy/ledgers?instance_id=${trusted.id}`, {
        headers: { ...bearer(key), 'content-type': 'application/json' },
        body,
    });
    assert.equal(res.status, 201);
    assert.equal(res.text, '{"ledger_id":"ldg_tls"}');
    assert.equal(received.length, 1);
    assert.equal(received[0].url, '/ledgers');
    assert.equal(received[0].headers['x-blnk-key'], 'tls_core_secret');
    assert.equal(received[0].body.toString(), body);
});

test('a certificate the instance does not trust is refused with 502 and Core sees nothing', async () => {
    received = [];
    const res = await req(proxy.port, 'GET', `/proxy/ledgers?instance_id=${untrusted.id}`, { headers: bearer(key) });
    assertError(res, 502, 'PROXY_BAD_GATEWAY');
    assert.equal(received.length, 0);
});

async function tlsErrors() {
    const res = await req(proxy.port, 'GET', '/metrics');
    const m = /^blnkproxy_upstream_errors_total\{kind="tls"\} (\d+)$/m.exec(res.text);
    assert.ok(m, 'the tls series is always written');
    return Number(m[1]);
}

test('a certificate for another host name is refused with 502, counted as a TLS error', async () => {
    received = [];
    const before = await tlsErrors();
    const res = await req(proxy.port, 'GET', `/proxy/ledgers?instance_id=${wrongName.id}`, { headers: bearer(key) });
    assertError(res, 502, 'PROXY_BAD_GATEWAY');
    assert.equal(received.length, 0);
    assert.equal(await tlsErrors(), before + 1);
    const failure = await proxy.waitForLog((o) => o.msg === 'upstream request failed' && o.instance === wrongName.id);
    assert.match(failure.cause, /hostname mismatch/);
});

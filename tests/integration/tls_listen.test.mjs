// TLS on the listener (issue 11, item 7): `tls_listen` with a PEM certificate chain and key, beside
// the plain `listen`. Real clients only: curl --cacert, node's https/tls, and the Blnk SDK (in a
// child node process that trusts the test CA through NODE_EXTRA_CA_CERTS), against certificates
// made in this run by the openssl CLI. Checked: TLS 1.2 and 1.3 only, ALPN http/1.1, the bytes
// of large answers and bodies, pipelining, X-Forwarded-Proto https to Core, the https OAuth
// issuer and Secure cookie, handshake failures counted (and nothing else affected), a
// certificate replaced on disk and SIGHUP (open connections kept, new ones get the new one, a bad
// one refused with the old one kept), and the configuration errors.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';

import { startFakeCore, sha256 } from './lib/fake_core.mjs';
import { BIN, bearer, cli, makeInstance, makeKey, randomHex, req, sleep, startProxy, tmpDb, tmpDir, waitFor } from './lib/harness.mjs';

/** curl, without blocking this process (the fake Core answers from it). */
const curl = (args) =>
    new Promise((resolve, reject) => {
        execFile('curl', args, { encoding: 'utf8', timeout: 15000 }, (e, stdout, stderr) =>
            e ? reject(new Error(`curl ${args.join(' ')}: ${e.message}\n${stderr}`)) : resolve(stdout));
    });

const openssl = (dir, ...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });

/** A CA and a server certificate for 127.0.0.1 and localhost signed by it, in dir/<name>.*. */
function makePki(dir, name) {
    openssl(dir, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${name} test CA`,
        '-keyout', `${name}-ca.key`, '-out', `${name}-ca.pem`);
    openssl(dir, 'req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', `${name}.key`,
        '-out', `${name}.csr`);
    fs.writeFileSync(path.join(dir, `${name}.ext`), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
    openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', `${name}-ca.pem`, '-CAkey', `${name}-ca.key`,
        '-CAcreateserial', '-days', '1', '-extfile', `${name}.ext`, '-out', `${name}.pem`);
    const f = (s) => path.join(dir, s);
    const pem = fs.readFileSync(f(`${name}.pem`));
    return {
        ca: f(`${name}-ca.pem`),
        cert: f(`${name}.pem`),
        key: f(`${name}.key`),
        fingerprint: new crypto.X509Certificate(pem).fingerprint256,
    };
}

/** One HTTPS request; resolves with status, headers, body and what the TLS session was. */
function httpsReq(port, method, p, { ca, headers = {}, body, agent = false, timeoutMs = 10000, ...tlsOpts } = {}) {
    return new Promise((resolve, reject) => {
        const r = https.request(
            { host: '127.0.0.1', port, method, path: p, headers, agent, ca: ca ? fs.readFileSync(ca) : undefined, ...tlsOpts },
            (res) => {
                const chunks = [];
                // Read now: a kept-alive socket goes back to its agent at the end.
                const session = {
                    alpn: res.socket.alpnProtocol,
                    protocol: res.socket.getProtocol?.(),
                    fingerprint: res.socket.getPeerCertificate?.()?.fingerprint256,
                };
                res.on('data', (d) => chunks.push(d));
                res.on('end', () => {
                    const buf = Buffer.concat(chunks);
                    let json = null;
                    try {
                        json = JSON.parse(buf.toString('utf8'));
                    } catch {
                        json = null;
                    }
                    resolve({
                        status: res.statusCode,
                        headers: res.headers,
                        body: buf,
                        text: buf.toString('utf8'),
                        json,
                        ...session,
                        reusedSocket: r.reusedSocket,
                    });
                });
            },
        );
        r.setTimeout(timeoutMs, () => r.destroy(new Error(`https ${method} ${p}: no answer within ${timeoutMs} ms`)));
        r.on('error', reject);
        r.end(body);
    });
}

/** A TLS connection attempt with these options: { ok, protocol, alpn } or { error }. */
function tlsTry(port, opts) {
    return new Promise((resolve) => {
        const s = tls.connect({ host: '127.0.0.1', port, ...opts }, () => {
            const out = { ok: true, protocol: s.getProtocol(), alpn: s.alpnProtocol };
            s.end();
            resolve(out);
        });
        s.setTimeout(5000, () => s.destroy(new Error('timeout')));
        s.on('error', (e) => resolve({ ok: false, error: e }));
    });
}

async function metric(proxy, name) {
    const m = await req(proxy.port, 'GET', '/metrics', { agent: false });
    const line = m.text.split('\n').find((l) => l.startsWith(`${name} `));
    assert.ok(line, `${name} in /metrics`);
    return Number(line.split(' ')[1]);
}

const OK = 'blnkproxy_tls_handshakes_total{result="ok"}';
const FAILED = 'blnkproxy_tls_handshakes_total{result="failed"}';

describe('tls_listen', () => {
    const w = {};

    before(async () => {
        w.dir = tmpDir();
        w.one = makePki(w.dir, 'one');
        w.two = makePki(w.dir, 'two');
        // The files the server reads; a renewal overwrites them (see the SIGHUP test).
        w.cert = path.join(w.dir, 'server.pem');
        w.key = path.join(w.dir, 'server.key');
        fs.copyFileSync(w.one.cert, w.cert);
        fs.copyFileSync(w.one.key, w.key);
        w.core = await startFakeCore();
        w.db = tmpDb();
        w.secret = `core_secret_${randomHex(12)}`;
        w.instance = makeInstance(w.db, w.core.url, { secret: w.secret, name: 'main' });
        w.apiKey = makeKey(w.db, { scopes: ['*'], instances: [w.instance.id], name: 'tls-app' }).key;
        w.config = path.join(w.dir, 'blnkproxy.json');
        fs.writeFileSync(w.config, JSON.stringify({ tls_cert: w.cert, tls_key: w.key }));
        w.proxy = await startProxy({
            db: w.db,
            args: ['--config', w.config, '--tls-listen', '127.0.0.1:0', '--header-timeout', '1s'],
        });
        w.tls = w.proxy.listening.tls_port;
        assert.ok(Number.isInteger(w.tls) && w.tls > 0 && w.tls !== w.proxy.port, JSON.stringify(w.proxy.listening));
        w.p = (corePath) => `/proxy${corePath}?instance_id=${w.instance.id}`;
    });

    after(async () => {
        if (w.proxy) {
            await w.proxy.stop();
        }
        if (w.core) {
            await w.core.close();
        }
    });

    test('curl --cacert: a proxied call over TLS, HTTP/1.1 even when curl offers h2; Core is told https', async () => {
        const n = w.core.requests.length;
        const out = await curl(['-sS', '--http2', '--cacert', w.one.ca, '-H', `Authorization: Bearer ${w.apiKey}`,
            '-w', '\n%{http_code} %{http_version} %{ssl_verify_result}', `https://127.0.0.1:${w.tls}${w.p('/ledgers')}`]);
        const lines = out.trimEnd().split('\n');
        assert.equal(lines.at(-1), '200 1.1 0', out);
        const rec = w.core.requests[n];
        assert.equal(rec.path, '/ledgers');
        assert.equal(rec.headers['x-forwarded-proto'], 'https');
        assert.equal(rec.headers['x-blnk-key'], w.secret);
        // By name, too (the certificate names localhost).
        const byName = await curl(['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', w.one.ca,
            `https://localhost:${w.tls}/healthz`]);
        assert.equal(byName, '200');
    });

    test('the plain listener serves at the same time, and Core is told http there', async () => {
        const n = w.core.requests.length;
        const r = await req(w.proxy.port, 'GET', w.p('/ledgers'), { headers: bearer(w.apiKey), agent: false });
        assert.equal(r.status, 200);
        assert.equal(w.core.requests[n].headers['x-forwarded-proto'], 'http');
    });

    test('node https: transaction defaults, exact bytes both ways (large body, 3 MiB answer), ALPN http/1.1', async () => {
        const n = w.core.requests.length;
        const sent = '{"amount":10,"currency":"USD","source":"@a","destination":"@b"}';
        const r = await httpsReq(w.tls, 'POST', w.p('/transactions'), {
            ca: w.one.ca, headers: { ...bearer(w.apiKey), 'content-type': 'application/json' }, body: sent,
            ALPNProtocols: ['http/1.1'],
        });
        assert.equal(r.status, 201, r.text);
        assert.equal(r.alpn, 'http/1.1');
        const got = JSON.parse(w.core.requests[n].body.toString('utf8'));
        assert.equal(got.precision, 100);
        assert.match(got.reference, /\S/);

        // 700 KiB of request body, record after record, reaches Core byte for byte.
        const big = `{"name":"${'n'.repeat(700 * 1024)}"}`;
        const b = await httpsReq(w.tls, 'POST', w.p('/ledgers'), {
            ca: w.one.ca, headers: { ...bearer(w.apiKey), 'content-type': 'application/json' }, body: big,
        });
        assert.equal(b.status, 201);
        assert.equal(sha256(w.core.requests[n + 1].body), sha256(Buffer.from(big)));

        // A 3 MiB answer (streamed, written as the socket takes it) arrives whole.
        const answer = Buffer.from(`{"blob":"${crypto.randomBytes(1536 * 1024).toString('hex')}"}`);
        w.core.setHandler((rec) => (rec.path === '/ledgers/big' ? { status: 200, body: answer, headers: { 'Content-Type': 'application/json' } } : undefined));
        try {
            const g = await httpsReq(w.tls, 'GET', w.p('/ledgers/big'), { ca: w.one.ca, headers: bearer(w.apiKey) });
            assert.equal(g.status, 200);
            assert.equal(g.body.length, answer.length);
            assert.equal(sha256(g.body), sha256(answer));
        } finally {
            w.core.setHandler(null);
        }
    });

    test('pipelined requests in one TLS write are all answered, in order', async () => {
        const s = tls.connect({ host: '127.0.0.1', port: w.tls, ca: fs.readFileSync(w.one.ca) });
        await new Promise((r, j) => {
            s.once('secureConnect', r);
            s.once('error', j);
        });
        const one = 'GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n';
        const chunks = [];
        const done = new Promise((r) => s.on('end', r));
        s.on('data', (d) => chunks.push(d));
        s.write(one.repeat(20) + 'GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
        await Promise.race([done, sleep(5000).then(() => assert.fail('no end within 5 s'))]);
        const text = Buffer.concat(chunks).toString('utf8');
        assert.equal(text.match(/HTTP\/1\.1 200 OK/g).length, 21);
        assert.ok(text.endsWith('{"status":"ready"}'), text.slice(-80));
    });

    test('TLS 1.2 and 1.3 only; a client offering only h2 is refused (RFC 7301)', async () => {
        const ca = fs.readFileSync(w.one.ca);
        const v13 = await tlsTry(w.tls, { ca });
        assert.deepEqual(v13, { ok: true, protocol: 'TLSv1.3', alpn: false });
        const v12 = await tlsTry(w.tls, { ca, maxVersion: 'TLSv1.2' });
        assert.equal(v12.ok, true);
        assert.equal(v12.protocol, 'TLSv1.2');
        // The client would speak 1.0/1.1 (its own policy relaxed for the test): the server refuses.
        const v11 = await tlsTry(w.tls, { ca, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
        assert.equal(v11.ok, false);
        assert.match(String(v11.error.code), /PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL/);
        const h2 = await tlsTry(w.tls, { ca, ALPNProtocols: ['h2'] });
        assert.equal(h2.ok, false);
        assert.match(String(h2.error.code), /NO_APPLICATION_PROTOCOL/);
    });

    test('failed handshakes are counted and harm nobody: garbage, plain HTTP (told to use https), silence', async () => {
        const failedBefore = await metric(w.proxy, FAILED);
        const okBefore = await metric(w.proxy, OK);

        // Bytes that are no TLS hello.
        await new Promise((resolve) => {
            const s = net.connect(w.tls, '127.0.0.1', () => s.write(crypto.randomBytes(300)));
            s.on('error', () => {});
            s.on('close', resolve);
            s.setTimeout(5000, () => s.destroy());
        });
        // Plain HTTP to the TLS address: a plain 400 that says what to do.
        const plain = await new Promise((resolve) => {
            const chunks = [];
            const s = net.connect(w.tls, '127.0.0.1', () => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
            s.on('data', (d) => chunks.push(d));
            s.on('error', () => {});
            s.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
            s.setTimeout(5000, () => s.destroy());
        });
        assert.match(plain, /^HTTP\/1\.1 400 Bad Request\r\n/);
        assert.match(plain, /This address speaks HTTPS: use an https:\/\/ URL for it\.\n$/);
        // A client that connects and never says hello is closed after header_timeout (1 s here).
        const t0 = Date.now();
        await new Promise((resolve) => {
            const s = net.connect(w.tls, '127.0.0.1');
            s.on('error', () => {});
            s.on('close', resolve);
            s.setTimeout(8000, () => s.destroy());
        });
        const silentMs = Date.now() - t0;
        assert.ok(silentMs >= 900 && silentMs < 6000, `closed after ${silentMs} ms`);

        // Meanwhile (and after) everyone else is served.
        const r = await httpsReq(w.tls, 'GET', '/healthz', { ca: w.one.ca });
        assert.equal(r.status, 200);
        await waitFor(async () => (await metric(w.proxy, FAILED)) >= failedBefore + 3, { what: 'failures counted', timeoutMs: 3000 });
        assert.equal(await metric(w.proxy, FAILED), failedBefore + 3);
        assert.equal(await metric(w.proxy, OK), okBefore + 1);
        assert.equal(w.proxy.child.exitCode, null);
    });

    test('OAuth over the TLS listener: the derived issuer is https on that port, the sign-in cookie Secure', async () => {
        const meta = await httpsReq(w.tls, 'GET', '/.well-known/oauth-authorization-server', { ca: w.one.ca });
        assert.equal(meta.status, 200);
        assert.equal(meta.json.issuer, `https://127.0.0.1:${w.tls}`);
        assert.equal(meta.json.token_endpoint, `https://127.0.0.1:${w.tls}/oauth/token`);
        const redirect = 'https://app.example.com/cb';
        const c = cli(['client', 'create', '--name', 'tls-web', '--scopes', 'proxy:read', '--redirect-uri', redirect], { db: w.db });
        assert.equal(c.code, 0, c.stderr);
        const q = new URLSearchParams({
            response_type: 'code', client_id: c.json.client_id ?? c.json.id, redirect_uri: redirect, state: 's',
            code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
        });
        const page = await httpsReq(w.tls, 'GET', `/oauth/authorize?${q}`, { ca: w.one.ca });
        assert.equal(page.status, 200, page.text.slice(0, 200));
        assert.match(page.headers['set-cookie'][0], /; Secure/);
    });

    test('the Blnk SDK over https (NODE_EXTRA_CA_CERTS trusts the test CA)', async () => {
        const n = w.core.requests.length;
        const script = `
            const { BlnkInit } = require('@blnkfinance/blnk-typescript');
            const blnk = BlnkInit(process.env.KEY, { baseUrl: process.env.BASE, logger: { info() {}, error() {}, debug() {}, warn() {} } });
            blnk.Ledgers.create({ name: 'tls ledger', meta_data: {} }).then(
                (r) => { process.stdout.write(JSON.stringify(r)); },
                (e) => { process.stdout.write(JSON.stringify({ thrown: String(e) })); });`;
        const out = await new Promise((resolve, reject) => {
            const child = spawn(process.execPath, ['-e', script], {
                cwd: path.dirname(new URL(import.meta.url).pathname),
                env: { ...process.env, NODE_EXTRA_CA_CERTS: w.one.ca, KEY: w.apiKey, BASE: `https://127.0.0.1:${w.tls}/proxy/` },
                stdio: ['ignore', 'pipe', 'pipe'],
            });
            const chunks = [];
            const errs = [];
            child.stdout.on('data', (d) => chunks.push(d));
            child.stderr.on('data', (d) => errs.push(d));
            const t = setTimeout(() => child.kill('SIGKILL'), 20000);
            child.on('error', reject);
            child.on('exit', (code) => {
                clearTimeout(t);
                resolve({ code, stdout: Buffer.concat(chunks).toString(), stderr: Buffer.concat(errs).toString() });
            });
        });
        assert.equal(out.code, 0, out.stderr);
        const res = JSON.parse(out.stdout);
        assert.equal(res.status, 201, out.stdout);
        const rec = w.core.requests[n];
        assert.equal(rec.path, '/ledgers');
        assert.equal(rec.headers['x-blnk-key'], w.secret);
        assert.equal(rec.headers['x-forwarded-proto'], 'https');
    });

    test('SIGHUP reads a renewed certificate: open connections stay, new ones get it; a bad one is refused and the old stays', async () => {
        const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: [fs.readFileSync(w.one.ca), fs.readFileSync(w.two.ca)] });
        try {
            const first = await httpsReq(w.tls, 'GET', '/healthz', { agent });
            assert.equal(first.status, 200);
            assert.equal(first.fingerprint, w.one.fingerprint);

            // The renewal: new files in place, then SIGHUP.
            fs.copyFileSync(w.two.cert, w.cert);
            fs.copyFileSync(w.two.key, w.key);
            const reloads = w.proxy.logObjects().filter((o) => o.msg === 'configuration reloaded').length;
            w.proxy.child.kill('SIGHUP');
            const line = await w.proxy.waitForLog(
                () => w.proxy.logObjects().filter((o) => o.msg === 'configuration reloaded').length > reloads, 5000);
            assert.equal(w.proxy.logObjects().filter((o) => o.msg === 'configuration reloaded').at(-1).tls_certificate_reloaded, true, JSON.stringify(line));

            // The kept-alive connection goes on with the session it has.
            const again = await httpsReq(w.tls, 'GET', '/healthz', { agent });
            assert.equal(again.status, 200);
            assert.equal(again.reusedSocket, true);
            assert.equal(again.fingerprint, w.one.fingerprint);
            // A new connection gets the new certificate: trusted through the new CA only.
            const fresh = await httpsReq(w.tls, 'GET', '/healthz', { ca: w.two.ca });
            assert.equal(fresh.status, 200);
            assert.equal(fresh.fingerprint, w.two.fingerprint);
            await assert.rejects(httpsReq(w.tls, 'GET', '/healthz', { ca: w.one.ca }), /self[- ]signed|unable to verify|UNABLE_TO_VERIFY|certificate/i);

            // A key that is not the certificate's: the reload is refused, nothing changes.
            fs.copyFileSync(w.one.key, w.key);
            const refusals = w.proxy.logObjects().filter((o) => o.msg.startsWith('configuration reload refused')).length;
            w.proxy.child.kill('SIGHUP');
            await w.proxy.waitForLog(
                () => w.proxy.logObjects().filter((o) => o.msg.startsWith('configuration reload refused')).length > refusals, 5000);
            const refused = w.proxy.logObjects().filter((o) => o.msg.startsWith('configuration reload refused')).at(-1);
            assert.match(refused.reason, /tls_key: .*server\.key is not the private key of the certificate in .*server\.pem/);
            const still = await httpsReq(w.tls, 'GET', '/healthz', { ca: w.two.ca });
            assert.equal(still.status, 200);
            assert.equal(still.fingerprint, w.two.fingerprint);
        } finally {
            agent.destroy();
            fs.copyFileSync(w.two.key, w.key);
        }
    });

    test('no log line holds key material', () => {
        const keyPem = fs.readFileSync(w.two.key, 'utf8').split('\n')[1];
        const all = w.proxy.logs().join('\n');
        assert.ok(!all.includes(keyPem));
        assert.ok(!all.includes(w.apiKey));
    });
});

describe('tls_listen configuration errors (serve --check, and serve itself)', () => {
    const dir = tmpDir();
    const one = makePki(dir, 'cfg');
    const other = makePki(dir, 'cfg2');
    const check = (args) => {
        const r = cli(['serve', '--check', '--db', path.join(dir, 'check.db'), ...args], { json: false });
        return { code: r.code, text: `${r.stdout}\n${r.stderr}` };
    };

    test('tls_listen without a certificate and key, or them without tls_listen', () => {
        const a = check(['--tls-listen', '127.0.0.1:0']);
        assert.notEqual(a.code, 0);
        assert.match(a.text, /tls_listen needs tls_cert .* and tls_key/);
        const b = check(['--tls-cert', one.cert, '--tls-key', one.key]);
        assert.notEqual(b.code, 0);
        assert.match(b.text, /tls_cert and tls_key are for tls_listen, which is not set/);
    });

    test('unreadable, not PEM, mismatched and encrypted files are named with the reason', () => {
        const missing = check(['--tls-listen', '127.0.0.1:0', '--tls-cert', path.join(dir, 'nope.pem'), '--tls-key', one.key]);
        assert.notEqual(missing.code, 0);
        assert.match(missing.text, /tls_cert: cannot read .*nope\.pem: No such file or directory/);
        const notPem = path.join(dir, 'not.pem');
        fs.writeFileSync(notPem, 'hello\n');
        const bad = check(['--tls-listen', '127.0.0.1:0', '--tls-cert', notPem, '--tls-key', one.key]);
        assert.match(bad.text, /tls_cert: .*not\.pem is not a PEM certificate chain/);
        const mismatch = check(['--tls-listen', '127.0.0.1:0', '--tls-cert', one.cert, '--tls-key', other.key]);
        assert.match(mismatch.text, /tls_key: .* is not the private key of the certificate/);
        const enc = path.join(dir, 'enc.key');
        openssl(dir, 'pkey', '-in', one.key, '-aes256', '-passout', 'pass:secret-pass', '-out', enc);
        const encrypted = check(['--tls-listen', '127.0.0.1:0', '--tls-cert', one.cert, '--tls-key', enc]);
        assert.notEqual(encrypted.code, 0);
        assert.match(encrypted.text, /a key with a passphrase cannot be used/);
        const good = check(['--tls-listen', '127.0.0.1:0', '--tls-cert', one.cert, '--tls-key', one.key]);
        assert.equal(good.code, 0, good.text);
    });

    test('serve refuses to start on a bad certificate, and tls_listen may not be listen', async () => {
        const db = tmpDb();
        const r = cli(['serve', '--db', db, '--listen', '127.0.0.1:0', '--tls-listen', '127.0.0.1:0', '--tls-cert', one.cert,
            '--tls-key', other.key], { json: false, timeoutMs: 10000 });
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /is not the private key of the certificate/);
        const port = 20000 + Math.floor(Math.random() * 20000);
        const same = cli(['serve', '--db', db, '--listen', `127.0.0.1:${port}`, '--tls-listen', `127.0.0.1:${port}`,
            '--tls-cert', one.cert, '--tls-key', one.key], { json: false, timeoutMs: 10000 });
        assert.notEqual(same.code, 0);
        assert.match(same.stderr, /tls_listen \(127\.0\.0\.1:\d+\) is also listen or ops_listen/);
        assert.ok(BIN);
    });
});

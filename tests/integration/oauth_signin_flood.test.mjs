// Sign-ins never starve token issuance (issue 11, item 5). A flood of operator sign-ins from many
// addresses (each verifies a password with Argon2id) used to share the OAuth threads and their
// queue with /oauth/token, so legitimate client_credentials requests got 503 or waited seconds.
// Now sign-ins have their own threads and queue (oauth.password_threads): while 200 addresses
// flood the authorize page, every client_credentials request is answered 200, and sign-ins that
// find their queue full get 429, never 503. Latency is measured by bench/, never asserted here.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { cli, req, setupWorld, tmpDir } from './lib/harness.mjs';

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const REDIRECT = 'http://127.0.0.1:1/cb';
const PEERS = 200;
const form = (o) => new URLSearchParams(o).toString();

let w;
let machine;
let web;

function clientCreate(args) {
    const res = cli(['client', 'create', ...args], { db: w.db });
    assert.equal(res.code, 0, `client create: ${res.stderr}`);
    return { id: res.json.client_id, secret: res.json.client_secret };
}

before(async () => {
    // Two OAuth threads and one sign-in thread, as by default; the sign-in queue holds 8.
    w = await setupWorld({ keys: {}, proxyArgs: ['--oauth-threads', '2', '--oauth-password-threads', '1'] });
    machine = clientCreate(['--name', 'machine', '--scopes', 'proxy:read']);
    web = clientCreate(['--name', 'web', '--scopes', 'proxy:read', '--redirect-uri', REDIRECT]);
    const pwFile = path.join(tmpDir(), 'pw');
    fs.writeFileSync(pwFile, 'correct horse battery staple\n', { mode: 0o600 });
    const op = cli(['operator', 'create', '--name', 'alice', '--password-file', pwFile], { db: w.db });
    assert.equal(op.code, 0, op.stderr);
});

after(async () => {
    await w?.close();
});

/** A request from a given loopback address (each is its own peer for the throttles). */
function from(localAddress, method, p, { headers = {}, body } = {}) {
    return new Promise((resolve, reject) => {
        const b = body !== undefined ? Buffer.from(body) : null;
        const r = http.request(
            {
                host: '127.0.0.1',
                port: w.port,
                method,
                path: p,
                localAddress,
                agent: false,
                headers: { ...headers, ...(b ? { 'content-length': String(b.length) } : {}) },
            },
            (res) => {
                const chunks = [];
                res.on('data', (d) => chunks.push(d));
                res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString() }));
            },
        );
        r.setTimeout(60000, () => r.destroy(new Error('no answer in 60 s')));
        r.on('error', reject);
        r.end(b ?? undefined);
    });
}

/** One peer: opens the authorize page (a session and its CSRF token), then tries 5 wrong passwords. */
async function floodFrom(i, statuses) {
    const addr = `127.0.${1 + Math.floor(i / 250)}.${2 + (i % 250)}`;
    const q = {
        response_type: 'code',
        client_id: web.id,
        redirect_uri: REDIRECT,
        state: 'st',
        scope: 'proxy:read',
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
        code_challenge_method: 'S256',
    };
    const page = await from(addr, 'GET', `/oauth/authorize?${form(q)}`);
    if (page.status !== 200) {
        statuses[`page ${page.status}`] = (statuses[`page ${page.status}`] ?? 0) + 1;
        return;
    }
    const cookie = page.headers['set-cookie'][0].split(';')[0];
    const csrf = page.text.match(/name="csrf" value="([0-9a-f]{64})"/)[1];
    await Promise.all(
        Array.from({ length: 5 }, async (_, k) => {
            const r = await from(addr, 'POST', '/oauth/authorize', {
                headers: { ...FORM, cookie },
                body: form({ ...q, csrf, action: 'login', name: `nobody-${i}-${k}`, password: 'wrong password' }),
            });
            statuses[r.status] = (statuses[r.status] ?? 0) + 1;
        }),
    );
}

const pct = (xs, p) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};

test('a sign-in flood from 200 addresses: every client_credentials request is answered 200; sign-ins get 429, never 503', async () => {
    const statuses = {};
    const tokens = {};
    const basic = `Basic ${Buffer.from(`${machine.id}:${machine.secret}`).toString('base64')}`;
    const token = () =>
        req(w.port, 'POST', '/oauth/token', {
            headers: { ...FORM, authorization: basic },
            body: form({ grant_type: 'client_credentials' }),
            timeoutMs: 60000,
        });
    // The same requests idle first, for the latency line below (printed, not asserted).
    const idleMs = [];
    for (let i = 0; i < 40; i++) {
        const r = await token();
        assert.equal(r.status, 200, r.text);
        idleMs.push(r.ms);
    }
    const floodMs = [];
    let flooding = true;
    const flood = (async () => {
        const running = [];
        for (let i = 0; i < PEERS; i++) {
            running.push(floodFrom(i, statuses));
            if (running.length % 40 === 0) {
                await Promise.all(running.splice(0));
            }
        }
        await Promise.all(running);
        flooding = false;
    })();
    let n = 0;
    while (flooding || n < 20) {
        const batch = await Promise.all(Array.from({ length: 4 }, token));
        for (const r of batch) {
            tokens[r.status] = (tokens[r.status] ?? 0) + 1;
            floodMs.push(r.ms);
            n++;
        }
    }
    await flood;
    console.log(
        `sign-ins: ${JSON.stringify(statuses)}; client_credentials: ${JSON.stringify(tokens)}; ` +
            `client_credentials ms p50/p99: idle ${pct(idleMs, 50)}/${pct(idleMs, 99)}, ` +
            `under the flood ${pct(floodMs, 50)}/${pct(floodMs, 99)} (${floodMs.length} requests)`,
    );
    assert.deepEqual(Object.keys(tokens), ['200'], `every client_credentials answered 200: ${JSON.stringify(tokens)}`);
    assert.equal(statuses[503], undefined, 'no sign-in got 503');
    assert.ok((statuses[429] ?? 0) > 0, `the sign-in queue filled: ${JSON.stringify(statuses)}`);
    assert.ok((statuses[401] ?? 0) > 0, `sign-ins were checked: ${JSON.stringify(statuses)}`);
});

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
import { Worker } from 'node:worker_threads';

import { cli, setupWorld, tmpDir } from './lib/harness.mjs';

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

/** The token requests under the flood: 4 at a time until told to stop (at least 20), then their
 * statuses and times go back as one message. */
const METER = `
const http = require('node:http');
const { parentPort, workerData } = require('node:worker_threads');
const body = 'grant_type=client_credentials';
let stop = false;
parentPort.on('message', () => { stop = true; });
function token() {
    return new Promise((resolve, reject) => {
        const t0 = process.hrtime.bigint();
        const r = http.request({ host: '127.0.0.1', port: workerData.port, method: 'POST', path: '/oauth/token', agent: false,
            headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: workerData.basic,
                'content-length': String(body.length) } }, (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
        });
        r.setTimeout(60000, () => r.destroy(new Error('no answer in 60 s')));
        r.on('error', reject);
        r.end(body);
    });
}
(async () => {
    const out = [];
    while (!stop || out.length < workerData.min) {
        out.push(...(await Promise.all([token(), token(), token(), token()])));
    }
    parentPort.postMessage(out);
})();
`;

const ms = (x) => x.toFixed(1);
const pct = (xs, p) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};

test('a sign-in flood from 200 addresses: every client_credentials request is answered 200; sign-ins get 429, never 503', async () => {
    const statuses = {};
    const tokens = {};
    const basic = `Basic ${Buffer.from(`${machine.id}:${machine.secret}`).toString('base64')}`;
    // The token requests run on a thread of their own (its own event loop), so that their times
    // are not those of this loop, busy with the flood's 1,000 requests: first idle (the same
    // 4-at-a-time requests for 2 s), then for as long as the flood lasts.
    const meter = (until, min) => {
        const m = new Worker(METER, { eval: true, workerData: { port: w.port, basic, min } });
        const done = new Promise((resolve, reject) => {
            m.on('message', resolve);
            m.on('error', reject);
        });
        return until.then(async () => {
            m.postMessage('stop');
            const out = await done;
            await m.terminate();
            return out;
        });
    };
    const idle = await meter(new Promise((r) => setTimeout(r, 2000)), 40);
    const idleMs = idle.map((r) => r.ms);
    assert.deepEqual([...new Set(idle.map((r) => r.status))], [200]);
    const floodMs = [];
    const flood = (async () => {
        const running = [];
        for (let i = 0; i < PEERS; i++) {
            running.push(floodFrom(i, statuses));
            if (running.length % 40 === 0) {
                await Promise.all(running.splice(0));
            }
        }
        await Promise.all(running);
    })();
    for (const r of await meter(flood, 20)) {
        tokens[r.status] = (tokens[r.status] ?? 0) + 1;
        floodMs.push(r.ms);
    }
    console.log(
        `sign-ins: ${JSON.stringify(statuses)}; client_credentials: ${JSON.stringify(tokens)}; ` +
            `client_credentials ms p50/p99: idle ${ms(pct(idleMs, 50))}/${ms(pct(idleMs, 99))} (${idleMs.length} requests), ` +
            `under the flood ${ms(pct(floodMs, 50))}/${ms(pct(floodMs, 99))} (${floodMs.length} requests)`,
    );
    assert.deepEqual(Object.keys(tokens), ['200'], `every client_credentials answered 200: ${JSON.stringify(tokens)}`);
    assert.equal(statuses[503], undefined, 'no sign-in got 503');
    assert.ok((statuses[429] ?? 0) > 0, `the sign-in queue filled: ${JSON.stringify(statuses)}`);
    assert.ok((statuses[401] ?? 0) > 0, `sign-ins were checked: ${JSON.stringify(statuses)}`);
});

// Slow and greedy clients (issue 11, item 2): a request body has a deadline (body_timeout, kept
// going by body_min_rate), a body read before authentication (OAuth) gets no more time than a
// head, and one peer cannot hold more than max_connections_per_peer connections. Before these,
// each body byte reset the idle timeout, so one byte every few seconds held a connection for
// days, and 2,500 such sockets from one client made everyone else time out.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';

import { startFakeCore } from './lib/fake_core.mjs';
import { assertError, bearer, makeInstance, makeKey, rawRequest, req, sleep, startProxy, tmpDb, waitFor } from './lib/harness.mjs';

let core;
let db;
let instance;
let key;
const sockets = [];

before(async () => {
    core = await startFakeCore();
    db = tmpDb();
    instance = makeInstance(db, core.url, { secret: 'slow_secret' });
    key = makeKey(db, { scopes: ['*'] }).key;
});

after(async () => {
    for (const s of sockets) {
        s.destroy();
    }
    await core?.close();
});

/**
 * Sends head at once, then the body `bytesPerTick` bytes every `tickMs` until the server answers
 * or closes (or the whole body went out). Resolves with the status line's code (or null), how
 * many body bytes went out, and the time from the head to the answer.
 */
function trickle(port, head, bodyLen, { bytesPerTick = 1, tickMs = 200, timeoutMs = 15000 } = {}) {
    return new Promise((resolve) => {
        const sock = net.connect({ host: '127.0.0.1', port });
        sockets.push(sock);
        const chunks = [];
        let sent = 0;
        let t0 = 0;
        let timer = null;
        let done = false;
        const finish = () => {
            if (done) {
                return;
            }
            done = true;
            clearInterval(timer);
            clearTimeout(guard);
            sock.destroy();
            const text = Buffer.concat(chunks).toString('latin1');
            const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
            resolve({ status: m ? Number(m[1]) : null, sent, ms: Date.now() - t0, text });
        };
        const guard = setTimeout(finish, timeoutMs);
        sock.on('connect', () => {
            t0 = Date.now();
            sock.write(head);
            timer = setInterval(() => {
                if (sent >= bodyLen) {
                    clearInterval(timer);
                    return;
                }
                const n = Math.min(bytesPerTick, bodyLen - sent);
                sock.write('x'.repeat(n));
                sent += n;
            }, tickMs);
        });
        sock.on('data', (d) => {
            chunks.push(d);
            if (/^HTTP\/1\.1 \d{3}[^]*\r\n\r\n/.test(Buffer.concat(chunks).toString('latin1'))) {
                finish();
            }
        });
        sock.on('error', () => {});
        sock.on('close', finish);
    });
}

const postHead = (len) =>
    `POST /proxy/ledgers?instance_id=${instance.id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${len}\r\n\r\n`;

test('a request body that trickles in is cut off at body_timeout with 408; other clients are served meanwhile', async () => {
    const proxy = await startProxy({ db, args: ['--body-timeout', '1s', '--body-min-rate', '0'] });
    try {
        core.reset();
        const slow = trickle(proxy.port, postHead(1000), 1000, { tickMs: 200 });
        await sleep(300);
        const other = await req(proxy.port, 'GET', `/proxy/ledgers?instance_id=${instance.id}`, { headers: bearer(key) });
        assert.equal(other.status, 200, 'a legitimate request while the slow body is pending');
        const r = await slow;
        assert.equal(r.status, 408, r.text);
        assert.ok(r.sent < 1000, `cut off before the whole body: ${r.sent} bytes sent in ${r.ms} ms`);
        assert.equal(core.requests.filter((q) => q.method === 'POST').length, 0, 'Core never saw the cut request');
        const access = await proxy.waitForLog(() => proxy.logObjects().find((l) => l.msg === 'access' && l.status === 408), 5000);
        assert.equal(access.reason, 'request body too slow');
    } finally {
        await proxy.stop();
    }
});

test('body_min_rate keeps a body going that arrives steadily, and cuts one that does not', async () => {
    // 1 s, plus a second per 20 bytes received.
    const proxy = await startProxy({ db, args: ['--body-timeout', '1s', '--body-min-rate', '20'] });
    try {
        core.reset();
        // 10 bytes every 200 ms = 50 B/s: past the bare 1 s, and it completes (147 bytes, 3 s).
        const body = JSON.stringify({ name: 'x'.repeat(136) });
        assert.equal(body.length, 147);
        const steady = await new Promise((resolve) => {
            const sock = net.connect({ host: '127.0.0.1', port: proxy.port });
            sockets.push(sock);
            const chunks = [];
            sock.on('connect', async () => {
                sock.write(postHead(body.length));
                for (let off = 0; off < body.length; off += 10) {
                    await sleep(200);
                    sock.write(body.slice(off, off + 10));
                }
            });
            sock.on('data', (d) => {
                chunks.push(d);
                const text = Buffer.concat(chunks).toString('latin1');
                if (/\r\n\r\n/.test(text)) {
                    sock.destroy();
                    resolve(text);
                }
            });
            sock.on('error', () => {});
        });
        assert.match(steady, /^HTTP\/1\.1 201 /, steady.slice(0, 200));
        assert.equal(core.requests.filter((q) => q.method === 'POST').length, 1);
        // 1 byte every 200 ms = 5 B/s, below the rate: cut.
        const slow = await trickle(proxy.port, postHead(1000), 1000, { tickMs: 200 });
        assert.equal(slow.status, 408, slow.text);
    } finally {
        await proxy.stop();
    }
});

test('an OAuth body, read before any authentication, must arrive within header_timeout of the request', async () => {
    // Generous body_timeout: the OAuth form is bound by header_timeout instead.
    const proxy = await startProxy({ db, args: ['--header-timeout', '1s', '--body-timeout', '1h'] });
    try {
        const head = 'POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\n';
        const r = await trickle(proxy.port, head, 500, { tickMs: 100 });
        assert.equal(r.status, 408, r.text);
        assert.ok(r.sent < 500, `cut off before the whole form: ${r.sent} bytes in ${r.ms} ms`);
    } finally {
        await proxy.stop();
    }
});

function connectIdle(port) {
    return new Promise((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port });
        sockets.push(s);
        s.on('connect', () => resolve(s));
        s.on('error', () => {});
    });
}

/** Whether the server closes the socket without a word (true) or answers a request on it. */
async function closedAtOnce(port) {
    const r = await rawRequest(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', {
        timeoutMs: 5000,
        until: (b) => /\r\n\r\n/.test(b.toString('latin1')),
    });
    return r.data.length === 0 && r.closed;
}

async function refusedCount(port) {
    const m = await req(port, 'GET', '/metrics');
    const line = m.text.split('\n').find((l) => l.startsWith('blnkproxy_client_connections_refused_total '));
    return Number(line.split(' ')[1]);
}

test('one peer holds at most max_connections_per_peer connections; a trusted proxy is not limited', async () => {
    // One worker: its listener accepts in arrival order, so the fourth connection is the one
    // refused (with two, their listeners race and any of the four may be).
    const proxy = await startProxy({ db, workers: 1, args: ['--max-connections-per-peer', '3'] });
    try {
        const held = [await connectIdle(proxy.port), await connectIdle(proxy.port)];
        // The third place is this request's; a fourth connection is closed at once.
        const third = await connectIdle(proxy.port);
        assert.equal(await closedAtOnce(proxy.port), true, 'the fourth connection is closed without an answer');
        third.destroy();
        // A place frees when a connection closes: served again.
        await waitFor(async () => !(await closedAtOnce(proxy.port)), { timeoutMs: 5000, what: 'a place again' });
        held.forEach((s) => s.destroy());
        await waitFor(async () => (await refusedCount(proxy.port)) >= 1, { timeoutMs: 5000, what: 'the refusal counted' });
        const warn = proxy.logObjects().find((l) => /max_connections_per_peer/.test(l.msg ?? ''));
        assert.ok(warn, 'the refusal is logged');
        assert.equal(warn.peer, '127.0.0.1');
    } finally {
        await proxy.stop();
    }
    const trusting = await startProxy({ db, args: ['--max-connections-per-peer', '3', '--trusted-proxies', '127.0.0.1'] });
    try {
        const many = [];
        for (let i = 0; i < 6; i++) {
            many.push(await connectIdle(trusting.port));
        }
        assert.equal(await closedAtOnce(trusting.port), false, 'a trusted proxy carries many clients');
        many.forEach((s) => s.destroy());
        assert.equal(await refusedCount(trusting.port), 0);
    } finally {
        await trusting.stop();
    }
});

/** Head and the first `sent` bytes of a JSON body of `len` bytes; resolves with the socket. */
function partialPost(port, len, sent) {
    return new Promise((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port });
        sockets.push(s);
        s.on('error', () => {});
        s.on('connect', () => {
            s.write(postHead(len));
            s.write(`{"name":"${'x'.repeat(sent - 9)}`);
            resolve(s);
        });
    });
}

test('request bodies in memory are bounded over all connections (max_buffered_bytes): beyond it 503 before reading, and the room comes back', async () => {
    const proxy = await startProxy({ db, args: ['--max-buffered-bytes', '64KiB', '--body-timeout', '1h'] });
    let first = null;
    try {
        core.reset();
        const len = 40000;
        const body = JSON.stringify({ name: 'y'.repeat(len - 11) });
        assert.equal(body.length, len);
        const post = () =>
            req(proxy.port, 'POST', `/proxy/ledgers?instance_id=${instance.id}`, {
                headers: { ...bearer(key), 'content-type': 'application/json' },
                body,
                agent: false,
            });
        // One body of 40,000 bytes is coming in slowly: the budget (64 KiB) has no room for another.
        first = await partialPost(proxy.port, len, 100);
        await sleep(200);
        const refused = await post();
        assertError(refused, 503, 'PROXY_OVERLOADED');
        assert.equal(refused.headers['retry-after'], '1');
        assert.equal(core.requests.length, 0, 'Core never saw the refused request');
        // The slow client leaves: its room comes back.
        first.destroy();
        await waitFor(async () => (await post()).status === 201, { timeoutMs: 5000, what: 'room again' });
        // Two bodies that fit together are both taken, while one is still coming in.
        const small = JSON.stringify({ name: 'z'.repeat(20000 - 11) });
        const held = await partialPost(proxy.port, 20000, 100);
        const other = await req(proxy.port, 'POST', `/proxy/ledgers?instance_id=${instance.id}`, {
            headers: { ...bearer(key), 'content-type': 'application/json' },
            body: small,
            agent: false,
        });
        assert.equal(other.status, 201, other.text);
        held.destroy();
    } finally {
        first?.destroy(); /* a body still coming in would hold the shutdown for shutdown_timeout */
        await proxy.stop();
    }
});

// Soak (issue 11, item 10): SOAK_CONNECTIONS (10,000) client connections held open at once, each
// sending a proxied GET every few seconds, for SOAK_SECONDS (10 in CI; `bench/soak.sh` runs the
// 10-minute version). Asserts that every request is answered 200, no connection fails, and the
// server's memory is flat once all connections are open: its RSS may not grow by more than
// SOAK_RSS_GROWTH_MIB (8) from the first third of the run to the end. Prints the RSS with the
// connections idle and under traffic (issue 10 asks for 10,000 idle connections in <= 64 MB).
//
// max_connections is set 20 % above SOAK_CONNECTIONS (see before()). The clients come from ten loopback addresses (127.0.0.1-127.0.0.10), 1,000 each, under the
// default max_connections_per_peer of 1,024: the limit stays on, as in production.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { after, before, test } from 'node:test';

import { makeInstance, makeKey, sleep, startProxy, tmpDb } from './lib/harness.mjs';

const CONNECTIONS = Number(process.env.SOAK_CONNECTIONS ?? 10000);
const SECONDS = Number(process.env.SOAK_SECONDS ?? 10);
const GROWTH_MIB = Number(process.env.SOAK_RSS_GROWTH_MIB ?? 8);
const SOURCES = 10;

let core;
let proxy;
let instance;
let key;
const sockets = [];

// Core: a fixed answer, nothing recorded (a 10-minute run makes millions of requests).
function startCore() {
    const body = JSON.stringify({ ledger_id: 'ldg_soak', name: 'soak' });
    const srv = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => {
            res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
            res.end(body);
        });
    });
    srv.keepAliveTimeout = 60000;
    return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(srv)));
}

function rssMiB(pid) {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Number(m[1]) / 1024;
}

before(async () => {
    core = await startCore();
    const db = tmpDb();
    instance = makeInstance(db, `http://127.0.0.1:${core.address().port}`, { secret: 'soak_secret' });
    key = makeKey(db, { scopes: ['*'] }).key;
    // max_connections is split evenly between the workers, and the kernel spreads connections
    // between their listeners by a hash, never exactly evenly: a worker at its share leaves the
    // rest waiting in its backlog (by design, README). Room for the spread.
    proxy = await startProxy({
        db,
        workers: 2,
        // Under AddressSanitizer (the CI's second run) freed memory waits in a quarantine of 256 MB
        // by default, which would read as growth: a small one keeps "flat" meaningful there too.
        // A build without ASan ignores the variable.
        env: { ASAN_OPTIONS: [process.env.ASAN_OPTIONS, 'quarantine_size_mb=16'].filter(Boolean).join(':') },
        args: ['--audit-reads', 'async', '--max-connections', String(Math.ceil(CONNECTIONS * 1.2))],
    });
});

after(async () => {
    for (const s of sockets) {
        s.destroy();
    }
    await proxy?.stop();
    await new Promise((r) => core?.close(r) ?? r());
});

/** One keep-alive client: sends a request when asked, counts complete answers by their status. */
function client(i, stats) {
    return new Promise((resolve, reject) => {
        const request = Buffer.from(
            `GET /proxy/ledgers?instance_id=${instance.id} HTTP/1.1\r\nHost: soak\r\nAuthorization: Bearer ${key}\r\n\r\n`,
            'latin1',
        );
        const s = net.connect({ host: '127.0.0.1', port: proxy.port, localAddress: `127.0.0.${1 + (i % SOURCES)}` });
        sockets.push(s);
        let buf = Buffer.alloc(0);
        let waiting = false;
        s.setNoDelay(true);
        s.on('connect', () =>
            resolve({
                send() {
                    if (!waiting && !s.destroyed) {
                        waiting = true;
                        stats.sent++;
                        s.write(request);
                    }
                },
            }),
        );
        s.on('data', (d) => {
            buf = buf.length ? Buffer.concat([buf, d]) : d;
            for (;;) {
                const end = buf.indexOf('\r\n\r\n');
                if (end < 0) {
                    return;
                }
                const head = buf.subarray(0, end).toString('latin1');
                const len = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
                if (buf.length < end + 4 + len) {
                    return;
                }
                const status = Number(head.slice(9, 12));
                stats.status[status] = (stats.status[status] ?? 0) + 1;
                buf = buf.subarray(end + 4 + len);
                waiting = false;
            }
        });
        s.on('error', (e) => {
            stats.errors.push(`${i}: ${e.code ?? e.message}`);
            reject(e);
        });
        s.on('close', () => {
            if (!stats.closing) {
                stats.closed++;
            }
        });
    });
}

test(`${CONNECTIONS} connections held ${SECONDS} s with steady traffic: every answer 200, memory flat`, { timeout: (SECONDS + 180) * 1000 }, async () => {
    const stats = { sent: 0, status: {}, errors: [], closed: 0, closing: false };
    const clients = [];
    const rssStart = rssMiB(proxy.child.pid);
    for (let i = 0; i < CONNECTIONS; i += 500) {
        const batch = [];
        for (let j = i; j < Math.min(CONNECTIONS, i + 500); j++) {
            batch.push(client(j, stats));
        }
        clients.push(...(await Promise.all(batch)));
    }
    await sleep(1000);
    const rssIdle = rssMiB(proxy.child.pid);
    assert.equal(stats.closed, 0, 'no connection closed by the server while idle');

    // Each connection sends a request every `period` ms, spread evenly: CONNECTIONS / period * 1000 req/s.
    const period = 5000;
    const t0 = Date.now();
    let rssEarly = null;
    let tick = 0;
    const perTick = Math.ceil(CONNECTIONS / (period / 50));
    while (Date.now() - t0 < SECONDS * 1000) {
        for (let k = 0; k < perTick; k++) {
            clients[(tick * perTick + k) % CONNECTIONS].send();
        }
        tick++;
        if (rssEarly === null && Date.now() - t0 >= (SECONDS * 1000) / 3) {
            rssEarly = rssMiB(proxy.child.pid);
        }
        await sleep(50);
    }
    // Let the last answers arrive.
    const deadline = Date.now() + Number(process.env.SOAK_DRAIN_MS ?? 30000);
    const answered = () => Object.values(stats.status).reduce((a, b) => a + b, 0);
    while (answered() < stats.sent && Date.now() < deadline) {
        await sleep(100);
    }
    const rssEnd = rssMiB(proxy.child.pid);
    stats.closing = true;
    if (process.env.SOAK_DEBUG) {
        const acc = proxy.logObjects().filter((l) => l.msg === 'access').sort((a, b) => b.total_ms - a.total_ms);
        console.log('slowest', JSON.stringify(acc.slice(0, 5).map((l) => [l.total_ms, l.upstream_ms, l.status])));
        const over = acc.filter((l) => l.total_ms > 1000).length;
        console.log('over 1s', over, 'of', acc.length);
    }
    console.log(
        `soak: ${CONNECTIONS} connections, ${SECONDS} s, ${stats.sent} requests (${Math.round(stats.sent / SECONDS)}/s); ` +
            `server RSS MiB: before ${rssStart.toFixed(1)}, ${CONNECTIONS} idle ${rssIdle.toFixed(1)}, ` +
            `after a third ${rssEarly?.toFixed(1)}, end ${rssEnd.toFixed(1)}; statuses ${JSON.stringify(stats.status)}`,
    );
    assert.deepEqual(stats.errors, [], 'no socket error');
    assert.equal(stats.closed, 0, 'no connection closed by the server');
    assert.equal(answered(), stats.sent, 'every request answered');
    assert.deepEqual(Object.keys(stats.status), ['200'], `only 200s: ${JSON.stringify(stats.status)}`);
    assert.ok(rssEnd - rssEarly <= GROWTH_MIB, `RSS flat: ${rssEarly.toFixed(1)} -> ${rssEnd.toFixed(1)} MiB`);
});

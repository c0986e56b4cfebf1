// Issue 10: Core's answer is streamed to the client, not buffered whole. A 64 MiB answer to a
// client that reads slowly must not cost the proxy 64 MiB: its peak resident memory while relaying
// it (VmHWM, reset before the request through /proc/<pid>/clear_refs; the highest VmRSS sampled
// as well) stays far below the answer, and every byte arrives, in order (SHA-256). An answer of
// unknown length goes out chunked. A client that leaves mid-answer frees the Core connection: Core
// sees it closed, and the next request is answered on a fresh one (never on a connection with
// the rest of the old answer still in it). A streamed answer to a write that is audited
// synchronously still waits for its record: the record is in the store when the head arrives,
// with the created resource's id read from the answer's first bytes.
//
// Core here is a raw TCP server that writes its answers in 64 KiB blocks as fast as the proxy
// takes them (block i starts with i, so a block out of order changes the hash).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';

import { bearer, cli, makeInstance, makeKey, parseResponses, rawRequest, req, startProxy, tmpDb, waitFor } from './lib/harness.mjs';

const MiB = 1024 * 1024;
const BIG = 64 * MiB;
const BLOCK = 64 * 1024;
const MID = 2 * MiB;
// A Core answer of unknown length that is larger than the proxy buffers, but not huge.
// The proxy's memory may grow by this much while it relays BIG bytes: half of the answer.
const GROWTH_BOUND = 32 * MiB;

const pattern = crypto.randomBytes(BLOCK);

function block(i) {
    const b = Buffer.from(pattern);
    b.writeUInt32BE(i >>> 0, 0);
    return b;
}

function expectedHash(total) {
    const h = crypto.createHash('sha256');
    for (let i = 0; i * BLOCK < total; i++) {
        h.update(block(i).subarray(0, Math.min(BLOCK, total - i * BLOCK)));
    }
    return h.digest('hex');
}

// The creation's answer: a JSON object whose id comes first and whose blob makes it BIG bytes.
const CREATED_ID = 'ldg_streamed_0001';
const CREATED_HEAD = Buffer.from(`{"ledger_id":"${CREATED_ID}","name":"big","meta_data":{"blob":"`);
const CREATED_TAIL = Buffer.from('"}}');

let core;
const conns = new Map(); // id → {closed, paths}
const served = []; // {path, conn}
let nextConn = 0;

async function writeAll(sock, chunks) {
    for (const c of chunks) {
        if (sock.destroyed) {
            return;
        }
        if (!sock.write(c)) {
            await new Promise((resolve) => {
                const done = () => {
                    sock.off('drain', done);
                    sock.off('close', done);
                    resolve();
                };
                sock.on('drain', done);
                sock.on('close', done);
            });
        }
    }
}

function* lengthBody(total) {
    for (let i = 0; i * BLOCK < total; i++) {
        yield block(i).subarray(0, Math.min(BLOCK, total - i * BLOCK));
    }
}

function* chunked(pieces) {
    for (const p of pieces) {
        yield Buffer.from(`${p.length.toString(16)}\r\n`);
        yield p;
        yield Buffer.from('\r\n');
    }
    yield Buffer.from('0\r\n\r\n');
}

function* createdBody() {
    yield CREATED_HEAD;
    const blob = Buffer.alloc(BLOCK, 'a');
    let left = BIG - CREATED_HEAD.length - CREATED_TAIL.length;
    while (left > 0) {
        yield blob.subarray(0, Math.min(BLOCK, left));
        left -= BLOCK;
    }
    yield CREATED_TAIL;
}

async function answer(sock, path) {
    if (path === '/big-length') {
        await writeAll(sock, [Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${BIG}\r\n\r\n`)]);
        await writeAll(sock, lengthBody(BIG));
    } else if (path === '/big-chunked') {
        await writeAll(sock, [Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n')]);
        await writeAll(sock, chunked(lengthBody(BIG)));
    } else if (path === '/mid-chunked') {
        await writeAll(sock, [Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n')]);
        await writeAll(sock, chunked(lengthBody(MID)));
    } else if (path === '/cut-length') {
        // Core dies after a MiB of the 8 it announced.
        await writeAll(sock, [Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${8 * MiB}\r\n\r\n`)]);
        await writeAll(sock, lengthBody(MiB));
        sock.destroy();
    } else if (path === '') {
        // POST /ledgers: a creation, chunked.
        await writeAll(sock, [Buffer.from('HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n')]);
        await writeAll(sock, chunked(createdBody()));
    } else {
        await writeAll(sock, [Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}')]);
    }
}

function startRawCore() {
    const server = net.createServer((sock) => {
        const id = nextConn++;
        const conn = { closed: false, paths: [] };
        conns.set(id, conn);
        let buf = Buffer.alloc(0);
        let busy = Promise.resolve();
        sock.on('error', () => {});
        sock.on('close', () => {
            conn.closed = true;
        });
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
                const path = head.split(' ')[1].replace(/^\/ledgers/, '').replace(/\?.*$/, '');
                conn.paths.push(path);
                served.push({ path, conn: id });
                busy = busy.then(() => answer(sock, path));
            }
        });
    });
    return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function status(pid) {
    const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(text)[1]) * 1024;
    return { rss: kib('VmRSS'), hwm: kib('VmHWM') };
}

// Resets the peak (VmHWM) to the current RSS; false where the kernel does not allow it.
function resetPeak(pid) {
    try {
        fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
        return true;
    } catch {
        return false;
    }
}

let proxy;
let db;
let key;
let inst;

before(async () => {
    core = await startRawCore();
    db = tmpDb();
    inst = makeInstance(db, `http://127.0.0.1:${core.address().port}`, { secret: 'stream_core_secret', name: 'stream' });
    key = makeKey(db, { scopes: ['*'] }).key;
    // One worker, so that the next request after a disconnect meets the same upstream pool.
    // Under AddressSanitizer, freed memory waits in a quarantine (256 MiB by default) before it is
    // reused, which would count as growth here: keep it small.
    const asan = [process.env.ASAN_OPTIONS, 'quarantine_size_mb=1'].filter(Boolean).join(':');
    proxy = await startProxy({ db, workers: 1, env: { ASAN_OPTIONS: asan } });
    // Warm: the worker's pools and the Core connection exist before the baseline.
    for (let i = 0; i < 3; i++) {
        assert.equal((await req(proxy.port, 'GET', P('/small'), { headers: bearer(key) })).status, 200);
    }
});

after(async () => {
    await proxy?.stop();
    await new Promise((r) => core.close(r));
});

const P = (path) => `/proxy/ledgers${path}?instance_id=${inst.id}`;

// One request read slowly (a pause every MiB), hashing what arrives. onHead(res) runs when the
// head has arrived, before any body byte is read. → {status, headers, bytes, hash, growth}
function slowRequest(method, path, { body, onHead } = {}) {
    const pid = proxy.child.pid;
    const peakReset = resetPeak(pid);
    const base = status(pid).rss;
    let maxRss = base;
    const sampler = setInterval(() => {
        maxRss = Math.max(maxRss, status(pid).rss);
    }, 20);
    return new Promise((resolve, reject) => {
        const headers = { ...bearer(key) };
        if (body !== undefined) {
            headers['content-type'] = 'application/json';
            headers['content-length'] = String(Buffer.byteLength(body));
        }
        const r = http.request({ host: '127.0.0.1', port: proxy.port, method, path: P(path), headers, agent: false }, (res) => {
            if (onHead) {
                onHead(res);
            }
            const hash = crypto.createHash('sha256');
            let bytes = 0;
            let nextPause = MiB;
            res.on('data', (d) => {
                hash.update(d);
                bytes += d.length;
                if (bytes >= nextPause) {
                    nextPause += MiB;
                    res.pause();
                    setTimeout(() => res.resume(), 20);
                }
            });
            res.on('end', () => {
                clearInterval(sampler);
                const s = status(pid);
                const peak = peakReset ? Math.max(s.hwm, maxRss) : maxRss;
                resolve({ status: res.statusCode, headers: res.headers, bytes, hash: hash.digest('hex'), growth: peak - base });
            });
            res.on('error', (e) => {
                clearInterval(sampler);
                reject(e);
            });
        });
        r.on('error', (e) => {
            clearInterval(sampler);
            reject(e);
        });
        r.setTimeout(120000, () => r.destroy(new Error(`${method} ${path}: no complete answer within 120 s`)));
        r.end(body);
    });
}

function records() {
    const out = cli(['audit', 'list', '--json', '--limit', '100000'], { db, json: false });
    assert.equal(out.code, 0, out.stderr);
    return out.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((r) => r.request_id);
}

test('a 64 MiB answer with a Content-Length reaches a slow client whole, without the proxy holding it', async (t) => {
    const res = await slowRequest('GET', '/big-length');
    t.diagnostic(`peak growth ${(res.growth / MiB).toFixed(1)} MiB`);
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-length'], String(BIG));
    assert.equal(res.bytes, BIG);
    assert.equal(res.hash, expectedHash(BIG));
    assert.ok(res.growth < GROWTH_BOUND, `the proxy grew by ${(res.growth / MiB).toFixed(1)} MiB relaying 64 MiB`);
});

test('a 64 MiB answer of unknown length goes out chunked, whole, without the proxy holding it', async (t) => {
    const res = await slowRequest('GET', '/big-chunked');
    t.diagnostic(`peak growth ${(res.growth / MiB).toFixed(1)} MiB`);
    assert.equal(res.status, 200);
    assert.equal(res.headers['transfer-encoding'], 'chunked');
    assert.equal(res.headers['content-length'], undefined);
    assert.equal(res.bytes, BIG);
    assert.equal(res.hash, expectedHash(BIG));
    assert.ok(res.growth < GROWTH_BOUND, `the proxy grew by ${(res.growth / MiB).toFixed(1)} MiB relaying 64 MiB`);
});

test('a streamed answer to a synchronously audited write waits for its record, which names what was created', async (t) => {
    let seenAtHead = null;
    const res = await slowRequest('POST', '', {
        body: '{"name":"big"}',
        onHead: (r) => {
            // Read before any body byte: the record must already be durable.
            seenAtHead = records().find((x) => x.request_id === r.headers['x-request-id']) ?? null;
        },
    });
    t.diagnostic(`peak growth ${(res.growth / MiB).toFixed(1)} MiB`);
    assert.equal(res.status, 201);
    assert.equal(res.headers['transfer-encoding'], 'chunked');
    assert.equal(res.bytes, BIG);
    const want = crypto.createHash('sha256');
    for (const piece of createdBody()) {
        want.update(piece);
    }
    assert.equal(res.hash, want.digest('hex'));
    assert.ok(seenAtHead, 'the record was in the store when the head arrived');
    assert.equal(seenAtHead.status, 201);
    assert.equal(seenAtHead.core_status, 201);
    assert.equal(seenAtHead.action, 'Ledger created');
    assert.equal(seenAtHead.resource_id, CREATED_ID);
    assert.ok(res.growth < GROWTH_BOUND, `the proxy grew by ${(res.growth / MiB).toFixed(1)} MiB relaying 64 MiB`);
});

test('a client that leaves mid-answer frees the Core connection; the next request gets a fresh one', async () => {
    const n = served.length;
    const got = await new Promise((resolve, reject) => {
        const r = http.request({ host: '127.0.0.1', port: proxy.port, method: 'GET', path: P('/big-length'), headers: bearer(key), agent: false }, (res) => {
            let bytes = 0;
            res.on('data', (d) => {
                bytes += d.length;
                if (bytes >= MiB) {
                    res.destroy();
                    resolve(bytes);
                }
            });
            res.on('error', () => {});
        });
        r.on('error', (e) => (e.code === 'ECONNRESET' ? null : reject(e)));
        r.setTimeout(60000, () => r.destroy(new Error('no MiB of the answer within 60 s')));
        r.end();
    });
    assert.ok(got >= MiB);
    const big = served.slice(n).find((s) => s.path === '/big-length');
    assert.ok(big, 'Core got the request');
    await waitFor(() => conns.get(big.conn).closed, { timeoutMs: 5000, what: 'the Core connection of the abandoned answer closed' });
    const next = await req(proxy.port, 'GET', P('/small'), { headers: bearer(key), agent: false });
    assert.equal(next.status, 200);
    assert.equal(next.text, '{"ok":true}');
    const small = served.slice(n).find((s) => s.path === '/small');
    assert.notEqual(small.conn, big.conn);
});

// The whole of an answer as node sees it, including whether it was complete.
function fetchAll(port, path) {
    return new Promise((resolve, reject) => {
        const r = http.request({ host: '127.0.0.1', port, method: 'GET', path: P(path), headers: bearer(key), agent: false }, (res) => {
            const chunks = [];
            res.on('data', (d) => chunks.push(d));
            res.on('error', () => {});
            res.on('close', () => resolve({ status: res.statusCode, headers: res.headers, complete: res.complete, body: Buffer.concat(chunks) }));
        });
        r.on('error', reject);
        r.setTimeout(60000, () => r.destroy(new Error(`${path}: nothing within 60 s`)));
        r.end();
    });
}

test('Core failing in the middle of a streamed answer leaves the client with a cut answer, never a whole one', async () => {
    const res = await fetchAll(proxy.port, '/cut-length');
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-length'], String(8 * MiB));
    assert.equal(res.complete, false);
    assert.ok(res.body.length >= 64 * 1024 && res.body.length < 8 * MiB, `${res.body.length} bytes arrived`);
    const line = await proxy.waitForLog((o) => o.msg === 'access' && o.request_id === res.headers['x-request-id']);
    assert.equal(line.status, 200);
    assert.equal(line.upstream_status, 200);
    assert.ok(line.error, 'the access line names the failure');
});

test('an answer of unknown length: chunked to an HTTP/1.1 client, whole with a Content-Length to an HTTP/1.0 one', async () => {
    const want = expectedHash(MID);
    const r11 = await fetchAll(proxy.port, '/mid-chunked');
    assert.equal(r11.headers['transfer-encoding'], 'chunked');
    assert.equal(r11.complete, true);
    assert.equal(crypto.createHash('sha256').update(r11.body).digest('hex'), want);
    // HTTP/1.0 has no chunked coding and a body until the close looks whole when cut, so that
    // client gets the answer buffered (up to max_response_bytes) and framed with its length.
    const raw = await rawRequest(
        proxy.port,
        `GET ${P('/mid-chunked')} HTTP/1.0\r\nAuthorization: Bearer ${key}\r\n\r\n`,
        { timeoutMs: 30000 },
    );
    const [r10] = parseResponses(raw.data);
    assert.equal(r10.status, 200);
    assert.equal(r10.headers['content-length'], String(MID));
    assert.equal(r10.headers['transfer-encoding'], undefined);
    assert.equal(crypto.createHash('sha256').update(r10.body).digest('hex'), want);
});

test('an answer of unknown length over max_response_bytes is cut once it passes the limit, and counted', async (t) => {
    const small = await startProxy({ db, workers: 1, args: ['--max-response-bytes', '1MiB'] });
    t.after(() => small.stop());
    const other = async () => {
        const m = await req(small.port, 'GET', '/metrics', { agent: false });
        return Number(/^blnkproxy_upstream_errors_total\{kind="other"\} (\d+)$/m.exec(m.text)[1]);
    };
    const before = await other();
    const res = await fetchAll(small.port, '/mid-chunked');
    assert.equal(res.status, 200);
    assert.equal(res.headers['transfer-encoding'], 'chunked');
    assert.equal(res.complete, false);
    assert.ok(res.body.length <= MiB, `${res.body.length} bytes arrived`);
    assert.equal(await other(), before + 1);
});

// harness.mjs — runs the real blnkproxy binary for the integration tests.
//
// API (also used by other test files, e.g. the SDK tests; keep it stable):
//
//   BIN                      process.env.BLNKPROXY_BIN (default /work/main/build/blnkproxy)
//   tmpDir() / tmpDb()       fresh temp directory / a fresh, migrated store inside one (made with
//                            `db migrate`: only a few commands create a store, issue 8); both
//                            removed at exit. For a path with no store yet: path.join(tmpDir(), …)
//                            With BLNKPROXY_TEST_STORE=pg, tmpDb() is a fresh, migrated PostgreSQL
//                            database's DSN instead (dropped at exit): see "PostgreSQL" at the end
//   emptyDb()                where a store may be created, with none there yet: a path in a fresh
//                            temp directory, or (PG) a fresh database with no schema
//   maskDsn(db)              db as blnkproxy may print it: a DSN's password replaced by ***
//   STORE, PG                'sqlite' or 'pg'; PG is true for the PostgreSQL run
//   sql(db, query)           one query against the store, either kind (sqlite3 or psql) → its
//                            text output, trimmed; write it in SQL both understand
//   storeBytes(db)           everything the store holds as one Buffer, to search for secrets: the
//                            SQLite file (and -wal, -shm); PostgreSQL: pg_dump's text, bytea
//                            values also decoded
//   cli(args, {db, env, json = true, timeoutMs = 15000, input})
//       spawnSync(BIN, [...args, '--db', db, '--json']) → {code, stdout, stderr, json}
//       json = stdout parsed as JSON, or null. Every call is appended to cliHistory.
//   cliHistory               [{args, code, stdout, stderr}] of every cli() call in this process
//   makeInstance(db, coreUrl, {secret, name})
//       secret (if given) is written to a temp file with a trailing newline and passed with
//       --secret-key-file. Asserts success. → the instance JSON ({id, name, url, ...}).
//   makeKey(db, {scopes = ['*'], instances, expiresIn, name})
//       `key create`; asserts success and the key format. → {id, key, json}
//   startProxy({db, env, args, workers = 2, reloadInterval = '200ms', timeoutMs = 10000})
//       spawns `BIN serve --db <db> --listen 127.0.0.1:0 --workers 2 --reload-interval 200ms
//       ...args` (cwd: a fresh temp dir), collects stderr lines, waits for {"msg":"listening"}.
//       → { port, url, db, child, logs() (raw stderr lines), logObjects() (parsed lines),
//           accessLogs() (parsed lines with msg "access"), stdout(),
//           waitForLog(pred, timeoutMs), exited (Promise {code, signal}),
//           stop({signal = 'SIGTERM', timeoutMs = 10000, expectCode = 0}) }
//       stop() signals, waits (then SIGKILL) and asserts the exit code; calling it again is a no-op.
//   req(port, method, path, {headers, body, agent, timeoutMs = 10000})
//       one HTTP request over node:http (default: a shared keep-alive agent; agent: false
//       for a fresh connection). → {status, headers (lowercase map as node gives it),
//       rawHeaders [[k, v]...], body (Buffer), text, json (parsed or null), ms}
//   rawRequest(port, bytes, {timeoutMs = 5000, until, chunkSize = 0, chunkDelayMs = 1})
//       writes raw bytes (in chunkSize pieces chunkDelayMs apart when chunkSize > 0) on a new TCP connection, collects the reply until the server closes,
//       `until(buffer)` returns true, or the timeout. → {data, text (latin1), closed, timedOut,
//       error, ms}
//   parseResponses(buf, {headMethods})  → [{status, statusLine, rawHeaders, headers, body,
//       complete}] for raw HTTP/1.x responses (Content-Length, chunked, or until close)
//   bearer(key)              {authorization: 'Bearer ' + key}
//   assertError(res, status, code, {wwwAuthenticate, requestId = true})
//       exact DESIGN §2 error shape: JSON content type, body keys exactly {error, error_detail},
//       error_detail keys exactly {code, message}, error === message, and the code.
//   closedPort()             a 127.0.0.1 port nothing listens on (for 502 tests)
//   sleep(ms), waitFor(fn, {timeoutMs, intervalMs})  poll until fn() is truthy (async ok);
//       returns {value, ms}; throws on timeout.
//   randomHex(n), UNKNOWN_INSTANCE (a well-formed id no store holds)
//   setupWorld({secret, proxyArgs, keys = {all: ['*']}, env})
//       fake Core + db + one instance (with secret) + the named keys + a running proxy.
//       → {core, db, instance, secret, keys: {name: {id, key}}, proxy, port,
//          p(corePath, extraQuery) → '/proxy<corePath>?instance_id=<id>[&extra]', close()}

import './node_compat.mjs'; // first: shims for Debian 12's node 18 (see that file)

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

import { startFakeCore } from './fake_core.mjs';

export const BIN = process.env.BLNKPROXY_BIN || '/work/main/build/blnkproxy';
export const UNKNOWN_INSTANCE = 'instance_00000000000000000000000000';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function randomHex(nBytes) {
    return crypto.randomBytes(nBytes).toString('hex');
}

const tmpDirs = [];
const children = new Set();

// A test process ended by a signal (ctest's timeout, the runner's, Ctrl-C) still takes its
// servers with it: exiting runs the handler below, which a signal's default action would skip.
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    process.on(sig, () => process.exit(128 + (sig === 'SIGTERM' ? 15 : sig === 'SIGINT' ? 2 : 1)));
}

process.on('exit', () => {
    for (const c of children) {
        try {
            c.kill('SIGKILL');
        } catch {
            // already gone
        }
    }
    for (const d of tmpDirs) {
        try {
            fs.rmSync(d, { recursive: true, force: true });
        } catch {
            // best effort
        }
    }
});

export function tmpDir() {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'bp-itest-'));
    tmpDirs.push(d);
    return d;
}

export function emptyDb() {
    return PG ? pgCreateDb() : path.join(tmpDir(), 'proxy.db');
}

export function tmpDb() {
    const db = emptyDb();
    const r = spawnSync(BIN, ['db', 'migrate', '--db', db], { encoding: 'utf8', timeout: 15000 });
    assert.equal(r.status, 0, `db migrate: ${r.error ?? r.stderr}`);
    return db;
}

export const cliHistory = [];

export function cli(args, { db, env = {}, json = true, timeoutMs = 15000, input } = {}) {
    const argv = [...args];
    if (db !== undefined) {
        argv.push('--db', db);
    }
    if (json && !argv.includes('--json')) {
        argv.push('--json');
    }
    const r = spawnSync(BIN, argv, {
        encoding: 'utf8',
        timeout: timeoutMs,
        env: { ...process.env, ...env },
        input,
    });
    if (r.error) {
        throw new Error(`cli ${args.join(' ')}: ${r.error.message}`);
    }
    let parsed = null;
    try {
        parsed = JSON.parse(r.stdout);
    } catch {
        parsed = null;
    }
    const out = { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, json: parsed };
    cliHistory.push({ args: argv, code: r.status, stdout: r.stdout, stderr: r.stderr });
    return out;
}

function cliOk(args, opts) {
    const r = cli(args, opts);
    assert.equal(r.code, 0, `blnkproxy ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    assert.ok(r.json, `blnkproxy ${args.join(' ')}: stdout is not JSON: ${r.stdout}`);
    return r.json;
}

export function makeInstance(db, coreUrl, { secret, name } = {}) {
    const args = ['instance', 'add', '--name', name ?? `core-${randomHex(3)}`, '--url', coreUrl];
    if (secret !== undefined && secret !== null) {
        const f = path.join(tmpDir(), 'core.secret');
        fs.writeFileSync(f, `${secret}\n`, { mode: 0o600 });
        args.push('--secret-key-file', f);
    }
    const j = cliOk(args, { db });
    assert.match(j.id, /^instance_[0-9A-HJKMNP-TV-Z]{26}$/, `instance id: ${j.id}`);
    return j;
}

export function makeKey(db, { scopes = ['*'], instances, expiresIn, name } = {}) {
    const args = ['key', 'create', '--name', name ?? `key-${randomHex(3)}`, '--scopes', scopes.join(',')];
    if (expiresIn !== undefined) {
        args.push('--expires-in', expiresIn);
    }
    if (instances !== undefined) {
        args.push('--instances', instances.join(','));
    }
    const j = cliOk(args, { db });
    assert.match(j.key, /^blnk_[0-9a-f]{64}$/, 'key format');
    assert.match(j.id, /^key_/, 'key id');
    return { id: j.id, key: j.key, json: j };
}

export function bearer(key) {
    return { authorization: `Bearer ${key}` };
}

/** The part of a server's stderr worth reading after a bad exit: a sanitizer report from its
 *  first line, else the last 20 lines. */
function crashReport(lines) {
    const at = lines.findIndex((l) => /ERROR: (Address|Leak|Thread)Sanitizer|runtime error:|"msg":"bug"/.test(l));
    return (at >= 0 ? lines.slice(at, at + 120) : lines.slice(-20)).join('\n');
}

// wrap(bin, argv) -> [command, args]: runs serve through another program (e.g. unshare), which
// must exec it, so that the child's pid is the server's.
// Every test client is 127.0.0.1, and many tests present bad credentials on purpose: the limit on
// failed authentications per peer (rate_limit.auth_failures) is off unless authFailureLimit is
// true (its defaults) or args set it (rate_limits.test.mjs tests it).
export async function startProxy({ db, env = {}, args = [], workers = 2, reloadInterval = '200ms', timeoutMs = 10000, wrap,
    authFailureLimit = false } = {}) {
    db ??= tmpDb();
    const argv = ['serve', '--db', db, '--listen', '127.0.0.1:0', '--workers', String(workers)];
    if (reloadInterval) {
        argv.push('--reload-interval', reloadInterval);
    }
    if (!authFailureLimit && !args.includes('--rate-limit-auth-failures')) {
        argv.push('--rate-limit-auth-failures', '0');
    }
    argv.push(...args);
    const [command, commandArgs] = wrap ? wrap(BIN, argv) : [BIN, argv];
    const child = spawn(command, commandArgs, {
        cwd: tmpDir(),
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    const lines = [];
    const stdoutChunks = [];
    const logWaiters = [];
    child.stdout.on('data', (d) => stdoutChunks.push(d));
    const exited = new Promise((resolve) => {
        child.on('exit', (code, signal) => {
            children.delete(child);
            resolve({ code, signal });
        });
    });
    const rl = readline.createInterface({ input: child.stderr });
    let onListening;
    const listening = new Promise((resolve) => {
        onListening = resolve;
    });
    rl.on('line', (line) => {
        lines.push(line);
        let o = null;
        try {
            o = JSON.parse(line);
        } catch {
            o = null;
        }
        if (o && o.msg === 'listening') {
            onListening(o);
        }
        for (const w of logWaiters.slice()) {
            if (o && w.pred(o, line)) {
                logWaiters.splice(logWaiters.indexOf(w), 1);
                clearTimeout(w.timer);
                w.resolve(o);
            }
        }
    });
    let timer;
    const outcome = await Promise.race([
        listening.then((o) => ({ o })),
        exited.then((e) => ({ exit: e })),
        new Promise((r) => {
            timer = setTimeout(() => r({ timeout: true }), timeoutMs);
        }),
    ]);
    clearTimeout(timer);
    if (!outcome.o) {
        child.kill('SIGKILL');
        await exited;
        throw new Error(
            `blnkproxy serve did not log "listening" (${outcome.exit ? `exited ${JSON.stringify(outcome.exit)}` : 'timeout'}):\n` +
                lines.join('\n'),
        );
    }
    const port = outcome.o.port;
    assert.ok(Number.isInteger(port) && port > 0, `listening line has a port: ${JSON.stringify(outcome.o)}`);
    let stopped = null;
    const parsedLines = () =>
        lines
            .map((l) => {
                try {
                    return JSON.parse(l);
                } catch {
                    return null;
                }
            })
            .filter((o) => o !== null);
    const proxy = {
        port,
        url: `http://127.0.0.1:${port}`,
        db,
        child,
        listening: outcome.o,
        exited,
        logs: () => lines.slice(),
        logObjects: parsedLines,
        accessLogs: () => parsedLines().filter((o) => o.msg === 'access'),
        stdout: () => Buffer.concat(stdoutChunks).toString('utf8'),
        waitForLog(pred, ms = 5000) {
            const found = parsedLines().find((o) => pred(o));
            if (found) {
                return Promise.resolve(found);
            }
            return new Promise((resolve, reject) => {
                const w = { pred, resolve };
                w.timer = setTimeout(() => {
                    logWaiters.splice(logWaiters.indexOf(w), 1);
                    reject(new Error(`log line not seen within ${ms} ms`));
                }, ms);
                logWaiters.push(w);
            });
        },
        async stop({ signal = 'SIGTERM', timeoutMs: stopMs = 10000, expectCode = 0 } = {}) {
            if (stopped) {
                return stopped;
            }
            const t0 = Date.now();
            if (child.exitCode === null && child.signalCode === null) {
                child.kill(signal);
            }
            let t;
            const r = await Promise.race([
                exited,
                new Promise((res) => {
                    t = setTimeout(() => res(null), stopMs);
                }),
            ]);
            clearTimeout(t);
            if (r === null) {
                child.kill('SIGKILL');
                stopped = { ...(await exited), ms: Date.now() - t0, killed: true };
                assert.fail(`blnkproxy did not exit within ${stopMs} ms of ${signal}; log tail:\n${lines.slice(-20).join('\n')}`);
            }
            stopped = { ...r, ms: Date.now() - t0 };
            if (expectCode !== null) {
                assert.equal(
                    r.code,
                    expectCode,
                    `blnkproxy exit ${JSON.stringify(r)} after ${signal}; log:\n${crashReport(lines)}`,
                );
            }
            return stopped;
        },
    };
    return proxy;
}

export const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

export function req(port, method, p, { headers = {}, body, agent: ag = agent, timeoutMs = 10000 } = {}) {
    return new Promise((resolve, reject) => {
        const h = { ...headers };
        let b = body;
        if (b !== undefined && b !== null && !Buffer.isBuffer(b)) {
            b = Buffer.from(typeof b === 'string' ? b : JSON.stringify(b), 'utf8');
        }
        const hasLen = Object.keys(h).some((k) => k.toLowerCase() === 'content-length' || k.toLowerCase() === 'transfer-encoding');
        if (b && !hasLen) {
            h['Content-Length'] = String(b.length);
        }
        const t0 = Date.now();
        const r = http.request({ host: '127.0.0.1', port, method, path: p, headers: h, agent: ag }, (res) => {
            const chunks = [];
            res.on('data', (d) => chunks.push(d));
            res.on('end', () => {
                clearTimeout(timer);
                const data = Buffer.concat(chunks);
                let json = null;
                try {
                    json = JSON.parse(data.toString('utf8'));
                } catch {
                    json = null;
                }
                const rawHeaders = [];
                for (let i = 0; i < res.rawHeaders.length; i += 2) {
                    rawHeaders.push([res.rawHeaders[i], res.rawHeaders[i + 1]]);
                }
                resolve({
                    status: res.statusCode,
                    headers: res.headers,
                    rawHeaders,
                    body: data,
                    text: data.toString('utf8'),
                    json,
                    ms: Date.now() - t0,
                });
            });
            res.on('error', reject);
        });
        const timer = setTimeout(() => {
            r.destroy(new Error(`${method} ${p}: no complete response within ${timeoutMs} ms`));
        }, timeoutMs);
        r.on('error', (e) => {
            clearTimeout(timer);
            reject(e);
        });
        if (b) {
            r.end(b);
        } else {
            r.end();
        }
    });
}

export function rawRequest(port, bytes, { timeoutMs = 5000, until, chunkSize = 0, chunkDelayMs = 1 } = {}) {
    return new Promise((resolve) => {
        const chunks = [];
        const t0 = Date.now();
        let done = false;
        let error = null;
        const sock = net.connect({ host: '127.0.0.1', port });
        const finish = (reason) => {
            if (done) {
                return;
            }
            done = true;
            clearTimeout(timer);
            sock.destroy();
            const data = Buffer.concat(chunks);
            resolve({
                data,
                text: data.toString('latin1'),
                closed: reason !== 'timeout' && reason !== 'until',
                timedOut: reason === 'timeout',
                reason,
                error,
                ms: Date.now() - t0,
            });
        };
        const timer = setTimeout(() => finish('timeout'), timeoutMs);
        sock.on('connect', async () => {
            const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, 'latin1');
            if (!chunkSize) {
                sock.write(b);
                return;
            }
            for (let off = 0; off < b.length && !done; off += chunkSize) {
                sock.write(b.subarray(off, off + chunkSize));
                await sleep(chunkDelayMs);
            }
        });
        sock.on('data', (d) => {
            chunks.push(d);
            if (until && until(Buffer.concat(chunks))) {
                finish('until');
            }
        });
        sock.on('end', () => finish('end'));
        sock.on('error', (e) => {
            error = e;
            // 'close' follows; data already received is kept
        });
        sock.on('close', () => finish('close'));
    });
}

/** Parses a sequence of HTTP/1.x responses. headMethods[i] true: the i-th response has no body. */
export function parseResponses(buf, { headMethods = [] } = {}) {
    const out = [];
    let off = 0;
    while (off < buf.length) {
        const headEnd = buf.indexOf('\r\n\r\n', off, 'latin1');
        if (headEnd < 0) {
            out.push({ complete: false, partial: buf.subarray(off).toString('latin1') });
            break;
        }
        const head = buf.subarray(off, headEnd).toString('latin1').split('\r\n');
        const statusLine = head[0];
        const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
        const status = m ? Number(m[1]) : NaN;
        const rawHeaders = [];
        const headers = {};
        for (const line of head.slice(1)) {
            const i = line.indexOf(':');
            const k = line.slice(0, i);
            const v = line.slice(i + 1).trim();
            rawHeaders.push([k, v]);
            const lk = k.toLowerCase();
            headers[lk] = headers[lk] === undefined ? v : `${headers[lk]}, ${v}`;
        }
        off = headEnd + 4;
        let body = Buffer.alloc(0);
        let complete = true;
        const idx = out.filter((r) => r.status >= 200).length;
        if (status < 200 || status === 204 || status === 304 || headMethods[idx]) {
            // no body
        } else if ((headers['transfer-encoding'] || '').toLowerCase().includes('chunked')) {
            const parts = [];
            for (;;) {
                const le = buf.indexOf('\r\n', off, 'latin1');
                if (le < 0) {
                    complete = false;
                    break;
                }
                const size = parseInt(buf.subarray(off, le).toString('latin1').split(';')[0], 16);
                off = le + 2;
                if (size === 0) {
                    const te = buf.indexOf('\r\n\r\n', off - 2, 'latin1');
                    off = te < 0 ? buf.length : te + 4;
                    break;
                }
                if (off + size > buf.length) {
                    complete = false;
                    parts.push(buf.subarray(off));
                    off = buf.length;
                    break;
                }
                parts.push(buf.subarray(off, off + size));
                off += size + 2;
            }
            body = Buffer.concat(parts);
        } else if (headers['content-length'] !== undefined) {
            const n = Number(headers['content-length']);
            body = buf.subarray(off, off + n);
            complete = body.length === n;
            off += n;
        } else {
            body = buf.subarray(off);
            off = buf.length;
        }
        let json = null;
        try {
            json = JSON.parse(body.toString('utf8'));
        } catch {
            json = null;
        }
        out.push({ status, statusLine, rawHeaders, headers, body, text: body.toString('utf8'), json, complete });
    }
    return out;
}

export function assertError(res, status, code, { wwwAuthenticate, requestId = true } = {}) {
    const ctx = `${res.status} ${res.text}`;
    assert.equal(res.status, status, `status (${ctx})`);
    assert.match(String(res.headers['content-type'] || ''), /^application\/json\b/i, `content-type (${ctx})`);
    assert.ok(res.json && typeof res.json === 'object' && !Array.isArray(res.json), `JSON object body (${ctx})`);
    assert.deepEqual(Object.keys(res.json).sort(), ['error', 'error_detail'], `body keys (${ctx})`);
    const d = res.json.error_detail;
    assert.ok(d && typeof d === 'object', `error_detail object (${ctx})`);
    assert.deepEqual(Object.keys(d).sort(), ['code', 'message'], `error_detail keys (${ctx})`);
    assert.equal(typeof d.message, 'string');
    assert.ok(d.message.length > 0, 'message not empty');
    assert.equal(res.json.error, d.message, `error equals error_detail.message (${ctx})`);
    assert.equal(d.code, code, `error code (${ctx})`);
    if (wwwAuthenticate !== undefined) {
        assert.equal(res.headers['www-authenticate'], wwwAuthenticate, `WWW-Authenticate (${ctx})`);
    }
    if (requestId) {
        assert.ok(res.headers['x-request-id'], `X-Request-Id on an error response (${ctx})`);
    }
}

export const WWW_MISSING = 'Bearer realm="blnkproxy"';
export const WWW_INVALID = 'Bearer realm="blnkproxy", error="invalid_token"';
export const wwwScope = (s) => `Bearer error="insufficient_scope", scope="${s}"`;

export async function closedPort() {
    const s = net.createServer();
    await new Promise((r) => s.listen(0, '127.0.0.1', r));
    const port = s.address().port;
    await new Promise((r) => s.close(r));
    return port;
}

export async function waitFor(fn, { timeoutMs = 2000, intervalMs = 100, what = 'condition' } = {}) {
    const t0 = Date.now();
    let last;
    for (;;) {
        try {
            last = await fn();
        } catch (e) {
            last = undefined;
            if (Date.now() - t0 > timeoutMs) {
                throw e;
            }
        }
        if (last) {
            return { value: last, ms: Date.now() - t0 };
        }
        if (Date.now() - t0 > timeoutMs) {
            throw new Error(`${what}: not reached within ${timeoutMs} ms`);
        }
        await sleep(intervalMs);
    }
}

export async function setupWorld({ secret, proxyArgs = [], keys = { all: ['*'] }, env = {}, coreOpts = {} } = {}) {
    const core = await startFakeCore(coreOpts);
    const db = tmpDb();
    const sec = secret === undefined ? `core_secret_${randomHex(16)}` : secret;
    const instance = makeInstance(db, core.url, { secret: sec, name: 'main' });
    const made = {};
    for (const [name, scopes] of Object.entries(keys)) {
        made[name] = makeKey(db, { scopes, name });
    }
    let proxy;
    try {
        proxy = await startProxy({ db, args: proxyArgs, env });
    } catch (e) {
        await core.close();
        throw e;
    }
    return {
        core,
        db,
        instance,
        secret: sec,
        keys: made,
        proxy,
        port: proxy.port,
        p: (corePath, extra) => `/proxy${corePath}?instance_id=${instance.id}${extra ? `&${extra}` : ''}`,
        async close() {
            try {
                await proxy.stop();
            } finally {
                await core.close();
            }
        },
    };
}

// ---- PostgreSQL (issue 9) ----
// The whole suite runs a second time with BLNKPROXY_TEST_STORE=pg (tests/CMakeLists.txt): tmpDb()
// then creates a database on the throw-away server of the ctest fixture pg_server_start (its
// admin DSN is in $BP_TEST_PG_DIR/admin.dsn) and returns its DSN, so every test that takes its
// store from tmpDb() or setupWorld() proves its behaviour on PostgreSQL too. A test that is
// about SQLite itself (a file's mode, a locked file) says so and skips only that assertion when
// PG is true.

export const STORE = process.env.BLNKPROXY_TEST_STORE === 'pg' ? 'pg' : 'sqlite';
export const PG = STORE === 'pg';

const pgDbs = [];
let pgAdmin = null;

export function pgAdminDsn() {
    if (pgAdmin === null) {
        const dir = process.env.BP_TEST_PG_DIR;
        assert.ok(dir, 'BLNKPROXY_TEST_STORE=pg needs BP_TEST_PG_DIR (the pg_server_start fixture)');
        pgAdmin = fs.readFileSync(path.join(dir, 'admin.dsn'), 'utf8').trim();
    }
    return pgAdmin;
}

function psql(dsn, args, input) {
    const r = spawnSync('psql', [dsn, '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', ...args], {
        encoding: 'utf8',
        timeout: 30000,
        input,
    });
    if (r.error) {
        throw new Error(`psql: ${r.error.message}`);
    }
    return r;
}

function pgCreateDb() {
    const name = `bp_i_${randomHex(8)}`;
    const r = psql(pgAdminDsn(), ['-c', `CREATE DATABASE ${name}`]);
    assert.equal(r.status, 0, `CREATE DATABASE: ${r.stderr}`);
    pgDbs.push(name);
    return pgAdminDsn().replace(/\/postgres$/, `/${name}`);
}

export function maskDsn(db) {
    return db.replace(/^(postgres(?:ql)?:\/\/[^:@/]*:)[^@/]*@/, '$1***@');
}

export function sql(db, query) {
    // A server writing the same SQLite file (a checkpoint a second, the audit log) holds its lock
    // for moments: wait for it, as the server's own connections do, rather than fail at once.
    const r = PG ? psql(db, ['-c', query]) : spawnSync('sqlite3', ['-cmd', '.timeout 10000', db, query], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${PG ? 'psql' : 'sqlite3'}: ${r.stderr}`);
    return r.stdout.trim();
}

// After the exit handler above killed the servers: their connections are gone or forced out.
process.on('exit', () => {
    if (pgDbs.length > 0) {
        psql(pgAdminDsn(), pgDbs.flatMap((n) => ['-c', `DROP DATABASE IF EXISTS ${n} WITH (FORCE)`]));
    }
});

// A PostgreSQL server of the test's own (scripts/pg-test-server.sh), for the tests that take it
// down and bring it back: the fixture's server is shared by every test running at the same time.
// → { adminDsn, createDb() → a fresh database's DSN, down() (stop, keep the data), up() (start it
//     again on the same port), stop() (remove it; also done at exit) }
const PG_SCRIPT = path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..', '..', 'scripts', 'pg-test-server.sh');
const ownPgs = [];

function pgScript(cmd, dir) {
    const r = spawnSync(PG_SCRIPT, [cmd, dir], { encoding: 'utf8', timeout: 120000 });
    assert.equal(r.status, 0, `pg-test-server.sh ${cmd}: ${r.stderr}`);
    return r.stdout.trim();
}

export function startOwnPg() {
    // Not one of tmpDirs: the exit handler below needs its state file after those are gone.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bp-ownpg-'));
    ownPgs.push(dir);
    const adminDsn = pgScript('start', dir);
    return {
        adminDsn,
        createDb() {
            const name = `bp_o_${randomHex(8)}`;
            const r = psql(adminDsn, ['-c', `CREATE DATABASE ${name}`]);
            assert.equal(r.status, 0, `CREATE DATABASE: ${r.stderr}`);
            return adminDsn.replace(/\/postgres$/, `/${name}`);
        },
        down: () => pgScript('down', dir),
        up: () => pgScript('up', dir),
        stop: () => pgScript('stop', dir),
    };
}

// Every server a test started is stopped by PID at exit (stop is a no-op for one already gone).
process.on('exit', () => {
    for (const dir of ownPgs) {
        spawnSync(PG_SCRIPT, ['stop', dir], { timeout: 60000 });
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

export function storeBytes(db) {
    if (!PG) {
        const files = [db, `${db}-wal`, `${db}-shm`].filter((f) => fs.existsSync(f));
        return Buffer.concat(files.map((f) => fs.readFileSync(f)));
    }
    const r = spawnSync('pg_dump', ['--data-only', '--no-owner', db], { encoding: 'utf8', timeout: 30000, maxBuffer: 1 << 28 });
    assert.equal(r.status, 0, `pg_dump: ${r.stderr}`);
    // bytea comes out as \x + hex: add each value's bytes, so a secret stored as bytea is found too.
    const decoded = [...r.stdout.matchAll(/\\x([0-9a-f]+)/g)].map((m) => Buffer.from(m[1], 'hex'));
    return Buffer.concat([Buffer.from(r.stdout, 'utf8'), ...decoded]);
}

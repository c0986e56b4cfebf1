// SIGHUP re-reads the configuration file (issue 8, item 6): what can change live does, what
// needs a restart is named in a warning, a bad file is refused and the running configuration
// stays, flags and environment keep overriding the file, and the process never dies of the
// signal.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { startFakeCore } from './lib/fake_core.mjs';
import { bearer, cli, makeInstance, makeKey, rawRequest, req, startProxy, tmpDb, tmpDir } from './lib/harness.mjs';

let core;
let db;
let instance;
let key;

before(async () => {
    core = await startFakeCore();
    db = tmpDb();
    instance = makeInstance(db, core.url, { secret: 'reload_secret' });
    key = makeKey(db, { scopes: ['*'] }).key;
});

after(async () => {
    await core?.close();
});

const p = (corePath) => `/proxy${corePath}?instance_id=${instance.id}`;

function configFile(obj) {
    const file = path.join(tmpDir(), 'blnkproxy.json');
    fs.writeFileSync(file, JSON.stringify(obj));
    return file;
}

function auditRecords() {
    const out = cli(['audit', 'list', '--json', '--limit', '100000'], { db, json: false });
    assert.equal(out.code, 0, out.stderr);
    return out.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((r) => r.request_id);
}

/** Sends SIGHUP and waits for the n-th log line (counting from the start) that matches pred. */
async function hup(proxy, pred) {
    const before = proxy.logObjects().filter(pred).length;
    proxy.child.kill('SIGHUP');
    await proxy.waitForLog(() => proxy.logObjects().filter(pred).length > before, 5000);
    return proxy.logObjects().filter(pred).at(-1);
}

const get = (corePath, opts = {}) => req(opts.port, 'GET', p(corePath), { headers: bearer(key), agent: false, ...opts });
const post = (port, corePath, bytes) =>
    req(port, 'POST', p(corePath), {
        headers: { ...bearer(key), 'content-type': 'application/json' },
        body: `{"name":"${'x'.repeat(bytes - 11)}"}`,
        agent: false,
    });

test('SIGHUP does not kill the server (issue 8: it exited 129 without draining)', async () => {
    const file = configFile({ log_level: 'info' });
    const proxy = await startProxy({ db, args: ['--config', file] });
    try {
        proxy.child.kill('SIGHUP');
        await proxy.waitForLog((o) => o.msg === 'configuration reloaded', 5000);
        const res = await req(proxy.port, 'GET', p('/ledgers'), { headers: bearer(key), agent: false });
        assert.equal(res.status, 200);
        assert.equal(proxy.child.exitCode, null, 'still running');
    } finally {
        await proxy.stop();
    }
});

test('SIGHUP applies log level, limits, timeouts, routes and audit modes; restart-only settings are named; flags and environment still win', async () => {
    const file = configFile({
        log_level: 'info',
        max_body_bytes: '1KiB',
        upstream_timeout: '10s',
        audit: { writes: 'off', reads: 'off' },
        routes: { remove: ['GET /ledgers/:id'] },
    });
    const proxy = await startProxy({
        db,
        args: ['--config', file, '--max-upload-bytes', '5KiB'],
        env: { BLNKPROXY_AUDIT_WRITES: 'off' },
    });
    const port = proxy.port;
    try {
        // Before: 1 KiB body limit, GET /ledgers/:id removed, reads not audited, access lines at info.
        assert.equal((await post(port, '/ledgers', 2048)).status, 413);
        assert.equal((await get('/ledgers/ldg_1', { port })).status, 404);
        assert.equal((await get('/ledgers/ldg_1/export', { port })).status, 404);
        const r0 = await get('/ledgers', { port, headers: { ...bearer(key), 'x-request-id': 'before-reload' } });
        assert.equal(r0.status, 200, r0.text);
        await proxy.waitForLog((o) => o.msg === 'access' && o.request_id === 'before-reload', 3000);
        core.setHandler({ delayMs: 600 });
        assert.equal((await get('/balances/slow', { port })).status, 200);
        core.setHandler(null);

        fs.writeFileSync(
            file,
            JSON.stringify({
                log_level: 'warn',
                max_body_bytes: '4KiB',
                upstream_timeout: '200ms',
                header_timeout: '300ms',
                workers: 5, // overridden by the --workers flag: no change, no warning
                max_upload_bytes: '1KiB', // overridden by the flag: stays 5KiB
                oauth: { threads: 3 },
                audit: { writes: 'sync', reads: 'sync', queue_size: 1000 },
                routes: { add: [{ method: 'GET', path: '/ledgers/:id/export', category: 'ledgers' }] },
            }),
        );
        // log_level warn: the warning about restart-only settings is the line to wait for.
        const warn = await hup(proxy, (o) => o.level === 'warn' && /next start/.test(o.msg));
        assert.equal(warn.not_applied, 'oauth.threads,audit.queue_size');
        assert.equal(proxy.child.exitCode, null);

        // Limits: 2 KiB now passes, the upload route keeps the flag's 5 KiB.
        assert.equal((await post(port, '/ledgers', 2048)).status, 201);
        assert.equal((await post(port, '/ledgers', 5000)).status, 413);
        const upload = await req(port, 'POST', p('/reconciliation/upload'), {
            headers: { ...bearer(key), 'content-type': 'multipart/form-data; boundary=b' },
            body: 'y'.repeat(3000),
            agent: false,
        });
        assert.equal(upload.status, 201, 'max_upload_bytes from the flag (5KiB), not the file (1KiB)');
        // Routes: the removed one is back, the added one is forwarded.
        assert.equal((await get('/ledgers/ldg_1', { port })).status, 200);
        core.reset();
        assert.equal((await get('/ledgers/ldg_1/export', { port })).status, 200);
        assert.equal(core.requests[0].path, '/ledgers/ldg_1/export');
        // Audit: reads are now sync (the record is there with the answer); writes stay off
        // (BLNKPROXY_AUDIT_WRITES=off wins over the file).
        const read = await get('/ledgers', { port });
        assert.equal(read.status, 200);
        assert.ok(auditRecords().some((r) => r.request_id === read.headers['x-request-id']), 'read audited (sync)');
        // Timeouts: Core answering in 600 ms is now too slow (upstream_timeout 200ms)...
        core.setHandler({ delayMs: 600 });
        const slow = await get('/balances/slow', { port });
        core.setHandler(null);
        assert.equal(slow.status, 504);
        // ...and a client that sends half a head is cut off after header_timeout (was 10s).
        const partial = await rawRequest(port, 'GET /proxy/ledgers HTTP/1.1\r\nHost: x\r\n', { timeoutMs: 5000 });
        assert.equal(partial.timedOut, false, 'closed by the new header timeout');
        assert.match(partial.text, /^HTTP\/1\.1 408 /);
        // Log level warn: no access line for requests after the reload.
        const quiet = await get('/ledgers', { port, headers: { ...bearer(key), 'x-request-id': 'after-reload' } });
        assert.equal(quiet.status, 200);
        assert.ok(!proxy.logObjects().some((o) => o.request_id === 'after-reload'), 'no access line at warn');

        // Back to info: the reload reports itself, with the names of what changed and no values.
        fs.writeFileSync(
            file,
            JSON.stringify({
                log_level: 'info',
                max_body_bytes: '4KiB',
                upstream_timeout: '200ms',
                header_timeout: '300ms',
                audit: { writes: 'sync', reads: 'sync' },
                routes: { add: [{ method: 'GET', path: '/ledgers/:id/export', category: 'ledgers' }] },
            }),
        );
        const info = await hup(proxy, (o) => o.msg === 'configuration reloaded');
        assert.equal(info.level, 'info');
        assert.equal(info.changed, 'log_level');
        assert.equal(info.file, file);
        assert.equal(info.audit_writes, 'off');
        assert.equal(info.audit_reads, 'sync');
        const again = await get('/ledgers', { port, headers: { ...bearer(key), 'x-request-id': 'info-again' } });
        assert.equal(again.status, 200);
        await proxy.waitForLog((o) => o.msg === 'access' && o.request_id === 'info-again', 3000);
    } finally {
        await proxy.stop();
    }
});

test('a bad file is refused with the reason in the log, and the server keeps serving with the running configuration', async () => {
    const good = { max_body_bytes: '4KiB', routes: { add: [{ method: 'GET', path: '/ledgers/:id/export' }] } };
    const file = configFile(good);
    const proxy = await startProxy({ db, args: ['--config', file] });
    const port = proxy.port;
    try {
        const bad = [
            ['{ "max_body_bytes": "1KiB",\n  oops }', new RegExp(`^${file}:2: `)],
            [JSON.stringify({ max_body_bytes: 'lots' }), /key "max_body_bytes": must be a size/],
            [JSON.stringify({ max_body_bytes: '1KiB', routes: { remove: ['GET /no/such/route'] } }), /^config "routes": /],
            [JSON.stringify({ max_body_bytes: '1KiB', max_bodyy_bytes: '1KiB' }), /unknown key "max_bodyy_bytes"/],
        ];
        for (const [text, reason] of bad) {
            fs.writeFileSync(file, text);
            const line = await hup(proxy, (o) => o.level === 'error' && /reload refused/.test(o.msg));
            assert.match(line.reason, reason);
            assert.equal(proxy.child.exitCode, null);
            // The running configuration: 4 KiB bodies, the added route.
            assert.equal((await post(port, '/ledgers', 3000)).status, 201);
            assert.equal((await get('/ledgers/ldg_1/export', { port })).status, 200);
        }
        fs.rmSync(file);
        const gone = await hup(proxy, (o) => o.level === 'error' && /reload refused/.test(o.msg));
        assert.match(gone.reason, /--config: cannot read .*No such file/);
        assert.equal((await post(port, '/ledgers', 3000)).status, 201);
        // A good file again is applied.
        fs.writeFileSync(file, JSON.stringify({ max_body_bytes: '1KiB' }));
        const ok = await hup(proxy, (o) => o.msg === 'configuration reloaded');
        assert.equal(ok.changed, 'max_body_bytes,routes');
        assert.equal((await post(port, '/ledgers', 3000)).status, 413);
        assert.equal((await get('/ledgers/ldg_1/export', { port })).status, 404);
    } finally {
        await proxy.stop();
    }
});

test('a reload during a slow request: the request finishes under the configuration it started with', async () => {
    const file = configFile({ upstream_timeout: '10s', routes: { add: [{ method: 'GET', path: '/reports/:id' }] } });
    const proxy = await startProxy({ db, args: ['--config', file] });
    try {
        core.reset();
        core.setHandler({ delayMs: 800 });
        const pending = get('/reports/r1', { port: proxy.port });
        await core.waitForRequests(1, 3000);
        fs.writeFileSync(file, JSON.stringify({ upstream_timeout: '100ms' }));
        await hup(proxy, (o) => o.msg === 'configuration reloaded');
        const res = await pending;
        core.setHandler(null);
        assert.equal(res.status, 200, `its route and its 10 s timeout held ${res.text}`);
        const a = await proxy.waitForLog((o) => o.msg === 'access' && o.request_id === res.headers['x-request-id'], 3000);
        assert.equal(a.route, '/reports/:id');
        assert.equal((await get('/reports/r1', { port: proxy.port })).status, 404);
    } finally {
        core.setHandler(null);
        await proxy.stop();
    }
});

test('max_connections applies live: clients waiting at the limit are taken in when a reload raises it', async () => {
    const file = configFile({ max_connections: 1 });
    const proxy = await startProxy({ db, args: ['--config', file, '--workers', '1'] });
    const net = await import('node:net');
    const holder = net.connect({ host: '127.0.0.1', port: proxy.port });
    try {
        await new Promise((resolve, reject) => {
            holder.once('connect', resolve);
            holder.once('error', reject);
        });
        // Make sure the holder was accepted (it answers) before the second client comes.
        holder.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
        await new Promise((resolve) => holder.once('data', resolve));
        // At the limit: this one waits in the kernel's backlog...
        const waiting = req(proxy.port, 'GET', p('/ledgers'), { headers: bearer(key), agent: false, timeoutMs: 8000 });
        fs.writeFileSync(file, JSON.stringify({ max_connections: 100 }));
        const line = await hup(proxy, (o) => o.msg === 'configuration reloaded');
        assert.equal(line.changed, 'max_connections');
        // ...until the reload raises the limit; the holder is still open.
        const res = await waiting;
        assert.equal(res.status, 200);
        assert.equal(holder.destroyed, false);
    } finally {
        holder.destroy();
        await proxy.stop();
    }
});

test('without --config: a ./blnkproxy.json that appears is read on SIGHUP; one that disappears is refused, not taken for defaults', async () => {
    const proxy = await startProxy({ db });
    try {
        const cwd = fs.readlinkSync(`/proc/${proxy.child.pid}/cwd`);
        const file = path.join(cwd, 'blnkproxy.json');
        assert.equal((await post(proxy.port, '/ledgers', 2048)).status, 201);
        fs.writeFileSync(file, JSON.stringify({ max_body_bytes: '1KiB' }));
        const ok = await hup(proxy, (o) => o.msg === 'configuration reloaded');
        assert.equal(ok.file, 'blnkproxy.json');
        assert.equal(ok.changed, 'max_body_bytes');
        assert.equal((await post(proxy.port, '/ledgers', 2048)).status, 413);
        fs.rmSync(file);
        const refused = await hup(proxy, (o) => o.level === 'error' && /reload refused/.test(o.msg));
        assert.match(refused.reason, /blnkproxy\.json.*is gone/);
        assert.equal((await post(proxy.port, '/ledgers', 2048)).status, 413, 'still 1KiB, not the 1MiB default');
    } finally {
        await proxy.stop();
    }
});

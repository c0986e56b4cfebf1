// The audit modes (audit.reads / audit.writes), what an operator sees when the audit store fails,
// and the log settings every production gateway has.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';

import { BIN, PG, setupWorld, req, bearer, cli, sleep, sql, waitFor, tmpDb, makeInstance, makeKey, closedPort } from './lib/harness.mjs';
import { startFakeCore } from './lib/fake_core.mjs';

function records(db) {
    const out = cli(['audit', 'list', '--json', '--limit', '100000'], { db, json: false });
    assert.equal(out.code, 0, out.stderr);
    return out.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((r) => r.request_id);
}

function metric(text, name) {
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

test('audit.reads=off records writes only; audit.reads=sync has the read record before the answer', async (t) => {
    const off = await setupWorld({ proxyArgs: ['--audit-reads', 'off'] });
    t.after(() => off.close());
    const get = await req(off.port, 'GET', off.p('/ledgers'), { headers: bearer(off.keys.all.key), agent: false });
    const post = await req(off.port, 'POST', off.p('/ledgers'), {
        headers: { ...bearer(off.keys.all.key), 'content-type': 'application/json' },
        body: '{}',
        agent: false,
    });
    assert.equal(get.status, 200);
    assert.equal(post.status, 201);
    // sync writes: the POST's record is there as soon as its answer is
    const ids = records(off.db).map((r) => r.request_id);
    assert.ok(ids.includes(post.headers['x-request-id']));
    await sleep(500);
    assert.ok(!records(off.db).some((r) => r.request_id === get.headers['x-request-id']), 'no record for the read');

    const sync = await setupWorld({ proxyArgs: ['--audit-reads', 'sync', '--audit-writes', 'off'] });
    t.after(() => sync.close());
    const reads = [];
    for (let i = 0; i < 5; i++) {
        const r = await req(sync.port, 'GET', sync.p('/ledgers'), { headers: bearer(sync.keys.all.key), agent: false });
        assert.equal(r.status, 200);
        // read straight after the answer: with sync reads the record is already committed
        assert.ok(records(sync.db).some((x) => x.request_id === r.headers['x-request-id']), `read ${i} recorded`);
        reads.push(r);
    }
    const w2 = await req(sync.port, 'POST', sync.p('/ledgers'), {
        headers: { ...bearer(sync.keys.all.key), 'content-type': 'application/json' },
        body: '{}',
        agent: false,
    });
    assert.equal(w2.status, 201);
    await sleep(500);
    assert.ok(!records(sync.db).some((r) => r.request_id === w2.headers['x-request-id']), 'audit.writes=off');
});

test('when the audit store fails, requests are served, the failure is logged and counted, and records arrive later', async (t) => {
    const w = await setupWorld();
    t.after(() => w.close());
    // The failure: SQLite, another process holding the file's write lock; PostgreSQL, a trigger
    // that refuses every audit insert (a lock there would only make the writer wait).
    let release;
    if (PG) {
        sql(w.db, "CREATE FUNCTION t_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'down'; END $$;"
            + ' CREATE TRIGGER t_fail BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION t_fail()');
        release = () => sql(w.db, 'DROP TRIGGER t_fail ON audit_log');
    } else {
        const locker = spawn('sqlite3', [w.db], { stdio: ['pipe', 'ignore', 'ignore'] });
        t.after(() => locker.kill('SIGKILL'));
        locker.stdin.write('BEGIN EXCLUSIVE;\nSELECT 1;\n');
        await sleep(300);
        release = () => locker.stdin.end('COMMIT;\n');
    }
    const res = await req(w.port, 'POST', w.p('/ledgers'), {
        headers: { ...bearer(w.keys.all.key), 'content-type': 'application/json' },
        body: '{}',
        agent: false,
        timeoutMs: 30000,
    });
    assert.equal(res.status, 201, 'served although the store is locked');
    await w.proxy.waitForLog((o) => o.level === 'warn' && /^audit: store failed/.test(o.msg), 15000);
    const m = await req(w.port, 'GET', '/metrics', { agent: false });
    assert.ok(metric(m.text, 'blnkproxy_audit_store_errors_total') >= 1, 'store errors counted');
    assert.ok(metric(m.text, 'blnkproxy_audit_records_total{outcome="spooled"}') >= 1, 'records spooled');
    release();
    await waitFor(() => records(w.db).some((r) => r.request_id === res.headers['x-request-id']), {
        timeoutMs: 15000,
        intervalMs: 300,
        what: 'the spooled record imported',
    });
});

test('the startup line names version, address, workers, store and routes', async (t) => {
    const w = await setupWorld();
    t.after(() => w.close());
    const start = w.proxy.listening;
    assert.equal(start.msg, 'listening');
    assert.equal(start.level, 'info');
    assert.ok(!Number.isNaN(Date.parse(start.time)));
    assert.match(start.version, /^\d+\.\d+\.\d+$/);
    assert.equal(start.host, '127.0.0.1');
    assert.equal(start.port, w.port);
    assert.equal(start.workers, 2);
    assert.equal(start.store, PG ? 'postgresql' : 'sqlite');
    assert.equal(start.routes, 42);
    const r = await req(w.port, 'GET', w.p('/ledgers'), { headers: bearer(w.keys.all.key), agent: false });
    const access = await w.proxy.waitForLog((o) => o.msg === 'access' && o.request_id === r.headers['x-request-id']);
    assert.equal(access.level, 'info');
    assert.equal(access.status, 200);
});

test('log_level warn writes no info lines (no access lines) while serving', async (t) => {
    const core = await startFakeCore();
    t.after(() => core.close());
    const db = tmpDb();
    const inst = makeInstance(db, core.url);
    const key = makeKey(db);
    const port = await closedPort();
    const child = spawn(BIN, ['serve', '--db', db, '--listen', `127.0.0.1:${port}`, '--log-level', 'warn'], {
        stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => {
        stderr += d;
    });
    const exited = new Promise((r) => child.on('exit', r));
    t.after(async () => {
        if (child.exitCode === null) {
            child.kill('SIGTERM');
            await exited;
        }
    });
    await waitFor(
        async () => {
            try {
                return (await req(port, 'GET', '/healthz', { agent: false, timeoutMs: 500 })).status === 200;
            } catch {
                return false;
            }
        },
        { timeoutMs: 10000, what: 'server up' },
    );
    for (let i = 0; i < 3; i++) {
        const r = await req(port, 'GET', `/proxy/ledgers?instance_id=${inst.id}`, { headers: bearer(key.key), agent: false });
        assert.equal(r.status, 200);
    }
    child.kill('SIGTERM');
    await exited;
    const lines = stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    assert.equal(lines.filter((o) => o.level === 'info' || o.level === 'debug').length, 0, stderr);
});

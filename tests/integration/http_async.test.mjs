// Work that leaves the loop threads and comes back: OAuth requests answered on the OAuth threads,
// and responses held until their audit record is durable. The server must survive clients that
// vanish meanwhile, and must refuse (not forward unrecorded) when the audit queue is full.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawn } from 'node:child_process';

import { PG, setupWorld, req, bearer, cli, sql, waitFor, sleep, assertError } from './lib/harness.mjs';

function metricValue(text, line) {
    const found = text.split('\n').find((l) => l.startsWith(`${line} `));
    return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

test('clients that vanish while an OAuth thread works leave the server healthy', async (t) => {
    const w = await setupWorld();
    t.after(() => w.close());
    const body = 'grant_type=client_credentials&client_id=client_nope&client_secret=x';
    const raw =
        `POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n` +
        `Content-Length: ${body.length}\r\n\r\n${body}`;
    // Each socket sends a whole request and is destroyed at once: the OAuth thread is still
    // working on it when the connection goes away.
    await Promise.all(
        Array.from({ length: 100 }, () =>
            new Promise((resolve) => {
                const s = net.connect(w.port, '127.0.0.1', () => {
                    s.write(raw, () => {
                        s.destroy();
                        resolve();
                    });
                });
                s.on('error', resolve);
            }),
        ),
    );
    const ok = await req(w.port, 'POST', '/oauth/token', {
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body,
        agent: false,
    });
    assert.equal(ok.status, 401);
    assert.equal(JSON.parse(ok.body).error, 'invalid_client');
    const led = await req(w.port, 'GET', w.p('/ledgers'), { headers: bearer(w.keys.all.key), agent: false });
    assert.equal(led.status, 200);
    // Every vanished connection was accounted for: only the scraping one stays open.
    await waitFor(
        async () => {
            const m = await req(w.port, 'GET', '/metrics', { agent: false });
            return metricValue(m.text, 'blnkproxy_client_connections') === 1;
        },
        { timeoutMs: 5000, what: 'client connection gauge back to 1' },
    );
});

test('a full audit queue refuses with 503 before forwarding, and every forwarded write is recorded', async (t) => {
    const w = await setupWorld({ proxyArgs: ['--audit-queue-size', '16'] });
    t.after(() => w.close());
    // Another connection holds the write lock: the audit writer cannot commit, so records pile up
    // in the queue (and are spooled once the busy timeout expires). On PostgreSQL a psql session
    // locks the audit table, and the writer waits for it.
    const locker = PG
        ? spawn('psql', [w.db, '-X', '-q'], { stdio: ['pipe', 'ignore', 'ignore'] })
        : spawn('sqlite3', [w.db], { stdio: ['pipe', 'ignore', 'ignore'] });
    t.after(() => locker.kill('SIGKILL'));
    if (PG) {
        locker.stdin.write('BEGIN;\nLOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE;\n');
        await waitFor(() => sql(w.db, "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
            + " WHERE c.relname = 'audit_log' AND l.mode = 'AccessExclusiveLock' AND l.granted") === '1',
        { timeoutMs: 10000, what: 'the audit table locked' });
    } else {
        locker.stdin.write('BEGIN EXCLUSIVE;\nSELECT 1;\n');
        await sleep(300);
    }
    const n = 60;
    const results = await Promise.all(
        Array.from({ length: n }, (_, i) =>
            req(w.port, 'POST', w.p('/ledgers'), {
                headers: { ...bearer(w.keys.all.key), 'content-type': 'application/json' },
                body: JSON.stringify({ name: `l${i}` }),
                agent: false,
                timeoutMs: 30000,
            }),
        ),
    );
    locker.stdin.end('COMMIT;\n');
    const refused = results.filter((r) => r.status === 503);
    const created = results.filter((r) => r.status === 201);
    assert.equal(refused.length + created.length, n, `statuses: ${results.map((r) => r.status)}`);
    assert.ok(refused.length > 0, 'some requests were refused while the queue was full');
    assert.ok(created.length >= 16, `at least a queue's worth was served (${created.length})`);
    for (const r of refused) {
        assertError(r, 503, 'PROXY_AUDIT_UNAVAILABLE');
        assert.equal(r.headers['retry-after'], '1');
    }
    // Core saw exactly the served ones.
    assert.equal(w.core.requests.filter((r) => r.method === 'POST').length, created.length);
    // Every served write has its record once the store answers again.
    const ids = new Set(created.map((r) => r.headers['x-request-id']));
    await waitFor(
        () => {
            const out = cli(['audit', 'list', '--json', '--category', 'ledgers', '--limit', '1000'], { db: w.db, json: false });
            const recs = out.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
            const got = new Set(recs.filter((r) => r.status === 201).map((r) => r.request_id));
            return [...ids].every((id) => got.has(id));
        },
        { timeoutMs: 15000, intervalMs: 500, what: 'records of all served writes' },
    );
});

test('a burst beyond the OAuth queue gets 503 temporarily_unavailable, and the server stays healthy', async (t) => {
    const w = await setupWorld({ proxyArgs: ['--oauth-threads', '1'] });
    t.after(() => w.close());
    const client = cli(['client', 'create', '--name', 'burst', '--scopes', 'proxy:read'], { db: w.db }).json;
    assert.ok(client && client.client_id, 'client created');
    const basic = 'Basic ' + Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64');
    // One thread, each token issue waits for a table reload: 400 requests at once cannot all fit
    // in the 64-job queue.
    const results = await Promise.all(
        Array.from({ length: 400 }, () =>
            req(w.port, 'POST', '/oauth/token', {
                headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
                body: 'grant_type=client_credentials',
                agent: false,
                timeoutMs: 60000,
            }),
        ),
    );
    const busy = results.filter((r) => r.status === 503);
    const ok = results.filter((r) => r.status === 200);
    assert.equal(busy.length + ok.length, results.length, `statuses: ${[...new Set(results.map((r) => r.status))]}`);
    assert.ok(busy.length > 0, 'some requests found the queue full');
    assert.ok(ok.length >= 64, `at least a queue's worth was served (${ok.length})`);
    for (const r of busy) {
        assert.deepEqual(JSON.parse(r.text).error, 'temporarily_unavailable');
        assert.equal(r.headers['retry-after'], '1');
        assert.equal(r.headers['cache-control'], 'no-store');
    }
    const after = await req(w.port, 'POST', '/oauth/token', {
        headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=client_credentials',
        agent: false,
    });
    assert.equal(after.status, 200);
});

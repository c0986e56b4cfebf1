// Operational endpoints, graceful shutdown, the listening line and the access log.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, test } from 'node:test';

import { startFakeCore } from './lib/fake_core.mjs';
import { bearer, cli, makeInstance, makeKey, randomHex, req, setupWorld, sleep, startProxy, tmpDb } from './lib/harness.mjs';

const worlds = [];
after(async () => {
    for (const w of worlds) {
        await w.close();
    }
});

async function world(opts) {
    const w = await setupWorld(opts);
    worlds.push(w);
    return w;
}

test('the listening line, /healthz and /readyz', async () => {
    const w = await world({ keys: { all: ['*'] } });
    const l = w.proxy.listening;
    assert.equal(l.level, 'info');
    assert.equal(l.host, '127.0.0.1');
    assert.equal(l.workers, 2);
    assert.ok(l.time, 'time field');
    w.core.reset();
    let res = await req(w.port, 'GET', '/healthz');
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'], /^application\/json/);
    assert.deepEqual(res.json, { status: 'ok' });
    res = await req(w.port, 'GET', '/readyz');
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { status: 'ready' });
    // no credential needed, and Core is not involved
    assert.equal(w.core.requests.length, 0);
    // every stderr line is JSON with time, level and msg
    for (const line of w.proxy.logs()) {
        const o = JSON.parse(line);
        assert.ok(o.time && o.level && o.msg, line);
    }
});

test('access log lines carry the documented fields and no secret', async () => {
    const w = await world({ keys: { all: ['*'] } });
    const ok = await req(w.port, 'GET', w.p('/ledgers/ldg_1'), { headers: { ...bearer(w.keys.all.key), 'X-Request-Id': 'acc-ok-1' } });
    assert.equal(ok.status, 200);
    const post = await req(w.port, 'POST', w.p('/ledgers'), { headers: { ...bearer(w.keys.all.key), 'content-type': 'application/json' }, body: '{"name":"logme"}' });
    assert.equal(post.status, 201);
    const denied = await req(w.port, 'GET', w.p('/ledgers'), { headers: { 'X-Request-Id': 'acc-401' } });
    assert.equal(denied.status, 401);
    const admin = await req(w.port, 'GET', w.p('/api-keys'), { headers: { ...bearer(w.keys.all.key), 'X-Request-Id': 'acc-404' } });
    assert.equal(admin.status, 404);

    const find = (id) => w.proxy.waitForLog((o) => o.msg === 'access' && o.request_id === id, 3000);
    const fields = ['request_id', 'method', 'route', 'instance', 'credential', 'status', 'upstream_status', 'bytes_in', 'bytes_out', 'total_ms', 'upstream_ms'];
    const a = await find('acc-ok-1');
    for (const f of fields) {
        assert.ok(f in a, `access line has ${f}: ${JSON.stringify(a)}`);
    }
    assert.equal(a.method, 'GET');
    assert.equal(a.route, '/ledgers/:id');
    assert.equal(a.instance, w.instance.id);
    assert.equal(a.credential, w.keys.all.id);
    assert.equal(a.status, 200);
    assert.equal(a.upstream_status, 200);
    assert.equal(typeof a.bytes_out, 'number');
    assert.ok(a.bytes_out >= ok.body.length, `bytes_out ${a.bytes_out} covers the ${ok.body.length}-byte body`);
    assert.equal(typeof a.total_ms, 'number');
    assert.equal(typeof a.upstream_ms, 'number');

    const p = await find(post.headers['x-request-id']);
    assert.equal(p.method, 'POST');
    assert.equal(p.route, '/ledgers');
    assert.equal(p.status, 201);
    assert.equal(typeof p.bytes_in, 'number');
    assert.ok(p.bytes_in >= '{"name":"logme"}'.length, `bytes_in ${p.bytes_in}`);

    const d = await find('acc-401');
    assert.equal(d.status, 401);
    assert.equal(d.credential, null);
    assert.ok([null, 0].includes(d.upstream_status), `no upstream status for a refused request: ${d.upstream_status}`);

    const n = await find('acc-404');
    assert.equal(n.status, 404);
    assert.equal(n.route, null);
    assert.equal(n.credential, w.keys.all.id);

    const all = w.proxy.logs().join('\n');
    assert.ok(!all.includes(w.keys.all.key), 'no API key in the log');
    assert.ok(!all.includes(w.keys.all.key.slice(5)), 'no API key hex in the log');
    assert.ok(!all.includes(w.secret), 'no Core secret in the log');
});

test('SIGTERM drains an in-flight request, then exits 0', async () => {
    const w = await world({ keys: { all: ['*'] } });
    w.core.setHandler({ delayMs: 1000 });
    const t0 = Date.now();
    const pending = req(w.port, 'GET', w.p('/ledgers/slow'), { headers: bearer(w.keys.all.key), agent: false });
    await w.core.waitForRequests(1, 3000);
    const stopping = w.proxy.stop({ timeoutMs: 10000 });
    const res = await pending;
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.fake_core.path, '/ledgers/slow');
    assert.ok(Date.now() - t0 >= 900);
    const r = await stopping;
    assert.equal(r.code, 0);
    // and it no longer listens
    await assert.rejects(
        () => new Promise((resolve, reject) => {
            const s = net.connect({ host: '127.0.0.1', port: w.port }, () => {
                s.destroy();
                resolve();
            });
            s.on('error', reject);
        }),
    );
});

test('SIGTERM with idle keep-alive connections exits promptly', async () => {
    const w = await world({ keys: { all: ['*'] } });
    const agent = new http.Agent({ keepAlive: true });
    for (let i = 0; i < 3; i++) {
        assert.equal((await req(w.port, 'GET', w.p('/ledgers'), { headers: bearer(w.keys.all.key), agent })).status, 200);
    }
    const r = await w.proxy.stop({ timeoutMs: 10000 });
    agent.destroy();
    assert.equal(r.code, 0);
    assert.ok(r.ms < 5000, `exit took ${r.ms} ms with idle connections open`);
});

test('SIGINT also exits 0', async () => {
    const w = await world({ keys: { all: ['*'] } });
    const r = await w.proxy.stop({ signal: 'SIGINT' });
    assert.equal(r.code, 0);
});

test('serve migrates a fresh database and the CLI sees the same store', async () => {
    const core = await startFakeCore();
    try {
        const db = tmpDb();
        const proxy = await startProxy({ db });
        try {
            const inst = makeInstance(db, core.url, { secret: `s_${randomHex(4)}` });
            const k = makeKey(db, { scopes: ['*'] });
            let status = 0;
            for (let i = 0; i < 20 && status !== 200; i++) {
                status = (await req(proxy.port, 'GET', `/proxy/ledgers?instance_id=${inst.id}`, { headers: bearer(k.key) })).status;
                if (status !== 200) {
                    await sleep(100);
                }
            }
            assert.equal(status, 200, 'instance and key added while serving work within 2 s');
        } finally {
            await proxy.stop();
        }
    } finally {
        await core.close();
    }
});

test('serve refuses an unknown flag with exit code 2', () => {
    const r = cli(['serve', '--no-such-flag', 'x'], { db: tmpDb(), json: false, timeoutMs: 5000 });
    assert.equal(r.code, 2, `${r.code} ${r.stderr}`);
    assert.match(r.stderr, /^blnkproxy: /m);
});

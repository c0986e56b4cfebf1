// Issue 14 item 4: the health of each Core instance. A fake Core that fails (5xx answers,
// timeouts, connection refused) makes its instance down after health.failures consecutive
// failures; its requests are then answered at once with 503 PROXY_INSTANCE_UNAVAILABLE and
// Retry-After, without contacting Core (the fake Core counts what reaches it). When Core works
// again the instance comes back by itself: through the one trial request let through after
// health.cooldown, or through the active probe (GET <url>/health with the instance's secret).
// The blnkproxy_instance_up and blnkproxy_instance_info gauges follow. No assertion is about
// time: every wait is a poll with a timeout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { startFakeCore } from './lib/fake_core.mjs';
import {
    assertError,
    bearer,
    closedPort,
    makeInstance,
    makeKey,
    rawRequest,
    req,
    setupWorld,
    startProxy,
    tmpDb,
    tmpDir,
    waitFor,
} from './lib/harness.mjs';

const isUnavailable = (res) => res.status === 503 && res.json?.error_detail?.code === 'PROXY_INSTANCE_UNAVAILABLE';

function assertUnavailable(res) {
    assertError(res, 503, 'PROXY_INSTANCE_UNAVAILABLE');
    assert.equal(res.headers['retry-after'], '5', 'Retry-After on the 503');
}

async function metrics(port) {
    const res = await req(port, 'GET', '/metrics', { agent: false });
    assert.equal(res.status, 200);
    return res.text;
}

function gauge(text, name, labels) {
    const want = `${name}{${Object.entries(labels)
        .map(([k, v]) => `${k}="${v}"`)
        .join(',')}} `;
    const line = text.split('\n').find((l) => l.startsWith(want));
    return line === undefined ? undefined : Number(line.slice(want.length));
}

test('5xx answers and timeouts make the instance down: 503 at once without Core; one trial brings it back', async () => {
    const w = await setupWorld({
        proxyArgs: ['--health-failures', '3', '--health-cooldown', '2s', '--upstream-timeout', '500ms'],
    });
    try {
        const auth = bearer(w.keys.all.key);
        const get = () => req(w.port, 'GET', w.p('/ledgers'), { headers: auth });
        const m0 = await metrics(w.port);
        assert.equal(gauge(m0, 'blnkproxy_instance_up', { instance: w.instance.id }), 1, m0);
        assert.equal(gauge(m0, 'blnkproxy_instance_info', { instance: w.instance.id, name: 'main' }), 1, m0);

        // Two 5xx from Core are relayed as they are; a timeout is the third failure in a row.
        w.core.setHandler({ status: 503, body: { error: 'core down' } });
        for (let i = 0; i < 2; i++) {
            const r = await get();
            assert.equal(r.status, 503);
            assert.deepEqual(r.json, { error: 'core down' }, 'Core\'s own 503 relayed while the instance is up');
        }
        w.core.setHandler({ delayMs: 3000 });
        assertError(await get(), 504, 'PROXY_GATEWAY_TIMEOUT');
        w.core.setHandler({ status: 502, body: { error: 'still down' } });

        // Down: refused at once. Any request that still reached Core (a trial, if the cool-down
        // already passed on a slow machine) got Core's answer, never ours, so the count of
        // refusals plus what Core saw is exact.
        const before = w.core.requests.length;
        const answers = [];
        for (let i = 0; i < 5; i++) {
            answers.push(await get());
        }
        const refused = answers.filter(isUnavailable);
        assert.ok(refused.length >= 1, `at least the first request after the third failure is refused: ${answers.map((a) => a.status)}`);
        assertUnavailable(refused[0]);
        assertUnavailable(answers[0]);
        assert.equal(w.core.requests.length - before, answers.length - refused.length, 'refused requests never reached Core');

        // A POST whose body is never sent is answered from its head alone.
        const head =
            `POST ${w.p('/ledgers')} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${w.keys.all.key}\r\n` +
            'Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n';
        const raw = await rawRequest(w.port, head, { timeoutMs: 5000, until: (b) => b.includes('\r\n\r\n') && b.includes('}') });
        assert.match(raw.text, /^HTTP\/1\.1 503 /, raw.text);
        assert.match(raw.text, /PROXY_INSTANCE_UNAVAILABLE/, raw.text);
        assert.match(raw.text, /\r\nRetry-After: 5\r\n/i, raw.text);

        const m1 = await metrics(w.port);
        assert.equal(gauge(m1, 'blnkproxy_instance_up', { instance: w.instance.id }), 0, m1);
        assert.equal(gauge(m1, 'blnkproxy_instance_info', { instance: w.instance.id, name: 'main' }), 1, m1);

        // Core works again; nothing but requests (no probe configured) can tell: after the
        // cool-down one trial goes through, succeeds, and the instance is up.
        w.core.setHandler(null);
        const seen = w.core.requests.length;
        await waitFor(async () => (await get()).status === 200, { timeoutMs: 15000, intervalMs: 200, what: 'the trial request' });
        assert.ok(w.core.requests.length > seen, 'the trial reached Core');
        for (let i = 0; i < 3; i++) {
            assert.equal((await get()).status, 200, 'up again: every request goes to Core');
        }
        const m2 = await metrics(w.port);
        assert.equal(gauge(m2, 'blnkproxy_instance_up', { instance: w.instance.id }), 1, m2);
        await w.proxy.waitForLog((o) => o.msg === 'Core instance is down: its requests get 503 until it answers again' && o.instance === w.instance.id);
        await w.proxy.waitForLog((o) => o.msg === 'Core instance is up again' && o.instance === w.instance.id);
    } finally {
        await w.close();
    }
});

test('a 500 from Core is an answer about the request: no number of them takes the instance down', async () => {
    // A client that can make Core fail its own requests (a payload Core chokes on) must not be
    // able to cut every other client of the instance off: only 502, 503 and 504, a connect error
    // and a timeout say that Core cannot serve.
    const w = await setupWorld({ proxyArgs: ['--health-failures', '2', '--health-cooldown', '1h'] });
    try {
        const auth = bearer(w.keys.all.key);
        w.core.setHandler({ status: 500, body: { error: 'internal error for this request' } });
        const before = w.core.requests.length;
        for (let i = 0; i < 6; i++) {
            const r = await req(w.port, 'GET', w.p('/ledgers'), { headers: auth });
            assert.equal(r.status, 500, r.text);
            assert.deepEqual(r.json, { error: 'internal error for this request' }, 'Core\'s 500 relayed unchanged');
        }
        assert.equal(w.core.requests.length - before, 6, 'every request reached Core');
        const m = await metrics(w.port);
        assert.equal(gauge(m, 'blnkproxy_instance_up', { instance: w.instance.id }), 1, m);
    } finally {
        await w.close();
    }
});

test('connection refused makes the instance down; the active probe brings it back with the instance secret', async () => {
    const port = await closedPort();
    const db = tmpDb();
    const secret = 'probe_secret_0123456789';
    const inst = makeInstance(db, `http://127.0.0.1:${port}`, { secret, name: 'probed' });
    const { key } = makeKey(db, { scopes: ['*'] });
    const proxy = await startProxy({
        db,
        args: ['--health-failures', '2', '--health-cooldown', '1h', '--health-probe-interval', '200ms'],
    });
    let core;
    try {
        const get = () => req(proxy.port, 'GET', `/proxy/ledgers?instance_id=${inst.id}`, { headers: bearer(key) });
        // Requests and probes both meet a refused connection; after two the instance is down.
        await waitFor(async () => isUnavailable(await get()), { timeoutMs: 10000, intervalMs: 100, what: 'instance down' });
        assertUnavailable(await get());
        const m1 = await metrics(proxy.port);
        assert.equal(gauge(m1, 'blnkproxy_instance_up', { instance: inst.id }), 0, m1);

        // Core comes up on that port. The cool-down is an hour, so no request is let through as
        // a trial: only the probe can find it up.
        core = await startFakeCore({ port });
        assert.equal(core.port, port, 'the fake Core took the instance\'s port');
        await waitFor(async () => gauge(await metrics(proxy.port), 'blnkproxy_instance_up', { instance: inst.id }) === 1, {
            timeoutMs: 10000,
            intervalMs: 100,
            what: 'the probe finds Core up',
        });
        const probes = core.requests.filter((r) => r.path === '/health');
        assert.ok(probes.length >= 1, 'Core saw the probe');
        assert.equal(probes[0].method, 'GET');
        assert.equal(probes[0].headers['x-blnk-key'], secret, 'the probe sends the instance secret');
        const r = await get();
        assert.equal(r.status, 200, r.text);
        assert.ok(core.requests.some((q) => q.path === '/ledgers'), 'the request reached Core');
        assert.ok(!proxy.logs().join('\n').includes(secret), 'the secret is never logged');
    } finally {
        await proxy.stop();
        await core?.close();
    }
});

test('the health settings come from the config file and apply on SIGHUP: the probe starts', async () => {
    const core = await startFakeCore();
    const db = tmpDb();
    makeInstance(db, core.url, { secret: 'reload_probe_secret', name: 'reloaded' });
    const file = path.join(tmpDir(), 'blnkproxy.json');
    fs.writeFileSync(file, JSON.stringify({ health: { failures: 2, cooldown: '1s', probe_interval: '0' } }));
    let proxy;
    try {
        proxy = await startProxy({ db, args: ['--config', file] });
        assert.equal(core.requests.filter((r) => r.path === '/health').length, 0, 'no probe configured');
        fs.writeFileSync(file, JSON.stringify({ health: { failures: 2, cooldown: '1s', probe_interval: '200ms' } }));
        proxy.child.kill('SIGHUP');
        const line = await proxy.waitForLog((o) => o.msg === 'configuration reloaded', 5000);
        assert.match(String(line.changed), /health\.probe_interval/, JSON.stringify(line));
        await waitFor(() => core.requests.some((r) => r.path === '/health'), { timeoutMs: 10000, what: 'a probe after the reload' });
        const probe = core.requests.find((r) => r.path === '/health');
        assert.equal(probe.headers['x-blnk-key'], 'reload_probe_secret');
    } finally {
        await proxy?.stop();
        await core.close();
    }
});

test('health.probe_instances probes each instance at its own interval: one listed, one left out, one never', async () => {
    // No global probe: only the listed instance with a non-zero interval is probed. Then the
    // global interval turns on (SIGHUP): the unlisted one is probed too, the one listed with 0
    // still never.
    const listed = await startFakeCore();
    const unlisted = await startFakeCore();
    const never = await startFakeCore();
    const db = tmpDb();
    const a = makeInstance(db, listed.url, { secret: 'listed_secret_0123', name: 'listed' });
    makeInstance(db, unlisted.url, { secret: 'unlisted_secret_0123', name: 'unlisted' });
    const c = makeInstance(db, never.url, { secret: 'never_secret_0123', name: 'never' });
    const file = path.join(tmpDir(), 'blnkproxy.json');
    const probes = (core) => core.requests.filter((r) => r.path === '/health').length;
    const conf = (global) => JSON.stringify({ health: { probe_interval: global, probe_instances: `${a.id}=200ms,${c.id}=0` } });
    fs.writeFileSync(file, conf('0'));
    let proxy;
    try {
        proxy = await startProxy({ db, args: ['--config', file] });
        await waitFor(() => probes(listed) >= 3, { timeoutMs: 10000, what: 'three probes of the listed instance' });
        assert.equal(probes(unlisted), 0, 'not listed and no global interval: never probed');
        assert.equal(probes(never), 0, 'listed with 0: never probed');
        assert.equal(listed.requests.find((r) => r.path === '/health').headers['x-blnk-key'], 'listed_secret_0123');

        fs.writeFileSync(file, conf('200ms'));
        proxy.child.kill('SIGHUP');
        await proxy.waitForLog((o) => o.msg === 'configuration reloaded', 5000);
        await waitFor(() => probes(unlisted) >= 2, { timeoutMs: 10000, what: 'the global interval probes the unlisted instance' });
        const seen = probes(listed);
        await waitFor(() => probes(listed) >= seen + 2, { timeoutMs: 10000, what: 'the listed instance still probed' });
        assert.equal(probes(never), 0, 'listed with 0: never probed, whatever the global interval');
    } finally {
        await proxy?.stop();
        await listed.close();
        await unlisted.close();
        await never.close();
    }
});

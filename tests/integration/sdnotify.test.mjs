// Issue 14, item 2: serve speaks systemd's notify protocol (Type=notify). The test plays the
// service manager: it binds its own NOTIFY_SOCKET (tests/tools/notify_listen.c prints each
// datagram), starts serve with it, and checks READY=1 comes once serve answers and has its
// tables, RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a SIGHUP reload, and STOPPING=1
// at SIGTERM. Issue 9: a PostgreSQL store that is down at start does not hold READY=1 back (the
// node listens and waits for it; STATUS says so, and says again once the tables are loaded).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { after, before, test } from 'node:test';

import { startFakeCore } from './lib/fake_core.mjs';
import {
    BIN, PG, bearer, makeInstance, makeKey, randomHex, req, startOwnPg, startProxy, tmpDb, tmpDir, waitFor,
} from './lib/harness.mjs';

const LISTEN = process.env.BP_NOTIFY_LISTEN;

/** A datagram listener: next(ms) resolves with the next state received, in order. */
async function notifySocket(file) {
    const child = spawn(LISTEN, [file, '60'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const queue = [];
    const waiters = [];
    const rl = readline.createInterface({ input: child.stdout });
    let bound;
    const listening = new Promise((r) => {
        bound = r;
    });
    rl.on('line', (line) => {
        const o = JSON.parse(line);
        if (o.listening) {
            bound();
            return;
        }
        const w = waiters.shift();
        if (w) {
            clearTimeout(w.timer);
            w.resolve(o.state);
        } else {
            queue.push(o.state);
        }
    });
    await listening;
    return {
        child,
        next(ms = 10000, what = 'a notification') {
            if (queue.length > 0) {
                return Promise.resolve(queue.shift());
            }
            return new Promise((resolve, reject) => {
                const w = { resolve };
                w.timer = setTimeout(() => {
                    waiters.splice(waiters.indexOf(w), 1);
                    reject(new Error(`no ${what} within ${ms} ms`));
                }, ms);
                waiters.push(w);
            });
        },
        pending: () => queue.slice(),
        stop() {
            child.kill('SIGTERM');
        },
    };
}

/** "A=1\nB=2" → {A: '1', B: '2'} */
function fields(state) {
    return Object.fromEntries(state.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

let core;
let sock;
let server;
const serverLog = [];

before(async () => {
    assert.ok(LISTEN && fs.existsSync(LISTEN), 'BP_NOTIFY_LISTEN names tests/tools/notify_listen (ctest sets it)');
    core = await startFakeCore();
});

after(async () => {
    if (server && server.exitCode === null) {
        server.kill('SIGKILL');
    }
    sock?.stop();
    await core?.close();
});

test('READY=1 once serve answers with its tables loaded; RELOADING/READY around SIGHUP; STOPPING at SIGTERM', async () => {
    const db = tmpDb();
    const inst = makeInstance(db, core.url, { secret: `sec_${randomHex(8)}` });
    const key = makeKey(db, { scopes: ['*'] });
    const dir = tmpDir();
    const file = path.join(dir, 'notify.sock');
    const config = path.join(dir, 'blnkproxy.json');
    fs.writeFileSync(config, JSON.stringify({ log_level: 'info' }));
    sock = await notifySocket(file);

    server = spawn(BIN, ['serve', '--db', db, '--config', config, '--listen', '127.0.0.1:0', '--workers', '2'], {
        cwd: dir,
        env: { ...process.env, NOTIFY_SOCKET: file },
        stdio: ['ignore', 'ignore', 'pipe'],
    });
    readline.createInterface({ input: server.stderr }).on('line', (l) => serverLog.push(l));
    const exited = new Promise((r) => server.once('exit', (code, signal) => r({ code, signal })));

    // The first message is READY=1, and it names where serve listens.
    const ready = fields(await sock.next(15000, 'READY=1'));
    assert.equal(ready.READY, '1', JSON.stringify(ready));
    const m = /^serving on 127\.0\.0\.1:(\d+) with 2 workers$/.exec(ready.STATUS);
    assert.ok(m, `STATUS: ${ready.STATUS}`);
    const port = Number(m[1]);

    // At that moment, with no retry: the listener answers, the store is reachable, and the
    // credential and instance tables are loaded (the key created before start works).
    const health = await req(port, 'GET', '/healthz', { agent: false });
    assert.equal(health.status, 200);
    const readyz = await req(port, 'GET', '/readyz', { agent: false });
    assert.equal(readyz.status, 200, readyz.text);
    const proxied = await req(port, 'GET', `/proxy/ledgers?instance_id=${inst.id}`, { agent: false, headers: bearer(key.key) });
    assert.equal(proxied.status, 200, proxied.text);
    assert.deepEqual(sock.pending(), [], 'nothing else was sent before READY=1');

    // SIGHUP: RELOADING=1 with the monotonic time of the reload, then READY=1 again.
    fs.writeFileSync(config, JSON.stringify({ log_level: 'info', max_body_bytes: '2MiB' }));
    const before = process.hrtime.bigint() / 1000n;
    process.kill(server.pid, 'SIGHUP');
    const reloading = fields(await sock.next(10000, 'RELOADING=1'));
    const afterHup = process.hrtime.bigint() / 1000n;
    assert.equal(reloading.RELOADING, '1', JSON.stringify(reloading));
    // CLOCK_MONOTONIC, in microseconds, taken between the kill and its notification.
    const usec = BigInt(reloading.MONOTONIC_USEC);
    assert.ok(usec >= before && usec <= afterHup, `MONOTONIC_USEC ${usec} within [${before}, ${afterHup}]`);
    const again = fields(await sock.next(10000, 'READY=1 after the reload'));
    assert.equal(again.READY, '1', JSON.stringify(again));
    assert.match(again.STATUS, /^serving on 127\.0\.0\.1:\d+ with 2 workers$/);
    assert.equal((await req(port, 'GET', '/healthz', { agent: false })).status, 200);
    const reloaded = serverLog.map((l) => JSON.parse(l)).find((o) => o.msg === 'configuration reloaded');
    assert.ok(reloaded, `the reload happened:\n${serverLog.join('\n')}`);
    assert.equal(reloaded.changed, 'max_body_bytes');

    // SIGTERM: STOPPING=1, then a clean exit.
    process.kill(server.pid, 'SIGTERM');
    const stopping = fields(await sock.next(10000, 'STOPPING=1'));
    assert.equal(stopping.STOPPING, '1', JSON.stringify(stopping));
    const r = await exited;
    assert.equal(r.code, 0, serverLog.join('\n'));
    assert.deepEqual(sock.pending(), [], 'nothing after STOPPING=1');
});

test('without NOTIFY_SOCKET, or with one nobody listens on, serve runs as before', async () => {
    const dir = tmpDir();
    for (const env of [{}, { NOTIFY_SOCKET: path.join(dir, 'nobody.sock') }]) {
        const proxy = await startProxy({ env });
        assert.equal((await req(proxy.port, 'GET', '/healthz', { agent: false })).status, 200);
        process.kill(proxy.child.pid, 'SIGHUP');
        await proxy.waitForLog((o) => o.msg === 'configuration reloaded');
        assert.equal((await req(proxy.port, 'GET', '/healthz', { agent: false })).status, 200, 'still serving');
        await proxy.stop();
    }
});

test('PostgreSQL down at start: READY=1 once listening, STATUS says it waits, and says when it has loaded', {
    skip: !PG && 'PostgreSQL only: a SQLite store is never down (the _pg run covers it)',
}, async () => {
    const pg = startOwnPg(); // its own server: this test stops it
    const db = pg.createDb();
    const dir = tmpDir();
    const file = path.join(dir, 'notify-pg.sock');
    const listener = await notifySocket(file);
    let proxy;
    pg.down();
    try {
        proxy = await startProxy({ db, env: { NOTIFY_SOCKET: file } });
        // Not held back until the database answers (systemd would kill the node after
        // TimeoutStartSec); /readyz tells a load balancer.
        const ready = fields(await listener.next(15000, 'READY=1'));
        assert.equal(ready.READY, '1', JSON.stringify(ready));
        assert.match(ready.STATUS, /^serving on 127\.0\.0\.1:\d+ with \d+ workers; waiting for the store \(\/readyz answers 503\)$/);
        assert.equal((await req(proxy.port, 'GET', '/readyz', { agent: false })).status, 503);

        pg.up();
        const loaded = fields(await listener.next(20000, 'STATUS after the first load'));
        assert.deepEqual(loaded, { STATUS: 'serving; the store answered and the credentials are loaded' });
        await waitFor(async () => (await req(proxy.port, 'GET', '/readyz', { agent: false })).status === 200,
            { timeoutMs: 10000, intervalMs: 50, what: '/readyz 200 after the first load' });
        assert.deepEqual(listener.pending(), [], 'nothing else was sent');
    } finally {
        await proxy?.stop();
        listener.stop();
        pg.stop();
    }
});

// Connection limits and descriptor exhaustion: the server keeps its promises (JSON logs, no
// spinning, service resumes) when clients hold more connections than it may have.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import readline from 'node:readline';

import { BIN, makeKey, rawRequest, sleep, startProxy, tmpDb, tmpDir, waitFor } from './lib/harness.mjs';

const sockets = [];
after(() => {
    for (const s of sockets) {
        s.destroy();
    }
});

function openIdle(port, n) {
    return Promise.all(
        Array.from({ length: n }, () =>
            new Promise((resolve, reject) => {
                const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
                s.on('error', reject);
                sockets.push(s);
            }),
        ),
    );
}

const HEALTH = 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';

test('at max_connections a new client waits in the backlog and is served once a slot frees', async () => {
    const proxy = await startProxy({ workers: 1, args: ['--max-connections', '3'] });
    try {
        const idle = await openIdle(proxy.port, 3);
        await sleep(200);
        const waiting = await rawRequest(proxy.port, HEALTH, { timeoutMs: 700 });
        assert.ok(waiting.timedOut, `no answer while 3 of 3 connections are taken: ${JSON.stringify(waiting.text)}`);
        idle[0].destroy();
        const served = await rawRequest(proxy.port, HEALTH, { timeoutMs: 5000 });
        assert.match(served.text, /^HTTP\/1\.1 200 /);
    } finally {
        await proxy.stop();
    }
});

test('running out of descriptors pauses accepting instead of spinning, and service resumes', async () => {
    const db = tmpDb();
    makeKey(db, { scopes: ['*'] });
    // A hard limit of 64 descriptors: serve cannot raise it, so accept() hits EMFILE.
    const child = spawn('prlimit', ['--nofile=64:64', BIN, 'serve', '--db', db, '--listen', '127.0.0.1:0', '--workers', '1'], {
        cwd: tmpDir(),
        stdio: ['ignore', 'ignore', 'pipe'],
    });
    const lines = [];
    let port = null;
    readline.createInterface({ input: child.stderr }).on('line', (l) => {
        lines.push(l);
        try {
            const o = JSON.parse(l);
            if (o.msg === 'listening') {
                port = o.port;
            }
        } catch {
            // every line is checked below
        }
    });
    const exited = new Promise((r) => child.on('exit', (code) => r(code)));
    try {
        await waitFor(() => port !== null, { timeoutMs: 10000, what: 'listening' });
        const idle = await openIdle(port, 80);
        await sleep(1500);
        const failures = lines.filter((l) => l.includes('accept failed')).length;
        assert.ok(failures > 0, 'the exhaustion is logged');
        assert.ok(failures < 100, `logged ${failures} accept failures in 1.5 s: the listener must pause, not spin`);
        for (const l of lines) {
            assert.doesNotThrow(() => JSON.parse(l), `every stderr line is JSON: ${l}`);
        }
        for (const s of idle) {
            s.destroy();
        }
        const { value } = await waitFor(
            async () => {
                const r = await rawRequest(port, HEALTH, { timeoutMs: 1000 });
                return /^HTTP\/1\.1 200 /.test(r.text) ? r : null;
            },
            { timeoutMs: 5000, what: 'served again after the clients left' },
        );
        assert.ok(value);
    } finally {
        child.kill('SIGTERM');
        const code = await Promise.race([exited, sleep(10000).then(() => 'timeout')]);
        if (code === 'timeout') {
            child.kill('SIGKILL');
        }
        assert.equal(code, 0);
    }
});

test('a client that stops reading a large response is disconnected after idle_timeout', async () => {
    const { setupWorld } = await import('./lib/harness.mjs');
    const w = await setupWorld({ proxyArgs: ['--idle-timeout', '1s'] });
    try {
        w.core.setHandler({ status: 200, hugeBytes: 16 * 1024 * 1024 });
        const s = net.connect({ host: '127.0.0.1', port: w.port });
        sockets.push(s);
        await new Promise((r) => s.on('connect', r));
        let received = 0;
        const closed = new Promise((r) => s.on('close', r));
        s.on('data', (d) => {
            received += d.length;
        });
        s.write(`GET ${w.p('/ledgers')} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${w.keys.all.key}\r\n\r\n`);
        s.pause();
        // The access line is written when the request finishes: for this streamed answer, when
        // the proxy gives up on the stalled reader (or, had it been queued whole, once it was), so
        // waiting for it never races a slow machine.
        await w.proxy.waitForLog((o) => o.msg === 'access' && o.route === '/ledgers', 20000);
        await sleep(3500);
        s.resume();
        await Promise.race([closed, sleep(5000)]);
        assert.ok(s.destroyed || s.readableEnded, 'the proxy closed the connection');
        assert.ok(received < 16 * 1024 * 1024, `only part of the response was delivered (${received} bytes)`);
        assert.ok(w.proxy.logs().some((l) => l.includes('client stopped reading')));
    } finally {
        await w.close();
    }
});

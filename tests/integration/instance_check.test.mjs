// Issue 14 item 4: `blnkproxy instance check ID` calls Core's GET /health with the instance's
// secret key and says clearly what is wrong: Core answering (2xx), Core refusing the secret key
// (401), Core failing (5xx), nothing listening (connection refused), a host name that does not
// resolve, no answer in time, and TLS verification failing (a certificate for another name).
// Exit 0 only when Core answered 2xx; the secret is never printed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';

import { makeCertificates } from './lib/certs.mjs';
import { startFakeCore } from './lib/fake_core.mjs';
import { BIN, cli, closedPort, makeInstance, tmpDb, tmpDir } from './lib/harness.mjs';

const SECRET = 'check_secret_0123456789';
let core;
let db;

before(async () => {
    core = await startFakeCore();
    db = tmpDb();
});
after(async () => {
    await core.close();
});

// Asynchronous: the fake Cores run in this process, and a synchronous spawn would stop them from
// answering the command it waits for.
function run(args) {
    return new Promise((resolve) => {
        execFile(BIN, [...args, '--db', db], { encoding: 'utf8', timeout: 30000 }, (err, stdout, stderr) => {
            let json = null;
            try {
                json = JSON.parse(stdout);
            } catch {
                json = null;
            }
            resolve({ code: err ? err.code : 0, stdout, stderr, json });
        });
    });
}

async function check(id, extra = [], { json = true } = {}) {
    const r = await run(['instance', 'check', id, ...extra, ...(json ? ['--json'] : [])]);
    assert.ok(!r.stdout.includes(SECRET) && !r.stderr.includes(SECRET), 'the secret is never printed');
    return r;
}

test('Core answers 2xx: healthy, exit 0, the probe carried the instance secret', async () => {
    const inst = makeInstance(db, core.url, { secret: SECRET, name: 'ok' });
    core.setHandler({ status: 200, body: { status: 'UP' } });
    try {
        const r = await check(inst.id);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.json.healthy, true);
        assert.equal(r.json.status, 200);
        assert.equal(r.json.problem, null);
        const probe = core.requests.filter((q) => q.path === '/health').at(-1);
        assert.equal(probe.method, 'GET');
        assert.equal(probe.headers['x-blnk-key'], SECRET);
        // The text form says the same.
        const t = await check(inst.id, [], { json: false });
        assert.equal(t.code, 0, t.stderr);
        assert.match(t.stdout, /healthy:\s+yes/);
    } finally {
        core.setHandler(null);
    }
});

test('Core answers 401: the secret key is wrong, and the hint says how to set it', async () => {
    const inst = makeInstance(db, core.url, { secret: SECRET, name: 'wrong-key' });
    core.setHandler({ status: 401, body: { error: 'unauthorized' } });
    try {
        const r = await check(inst.id);
        assert.equal(r.code, 1);
        assert.equal(r.json.healthy, false);
        assert.equal(r.json.status, 401);
        assert.match(r.json.problem, /refused the instance's secret key/);
        assert.match(r.json.hint, new RegExp(`instance update ${inst.id} --secret-key-file`));
    } finally {
        core.setHandler(null);
    }
});

test('Core answers 503: Core is failing', async () => {
    const inst = makeInstance(db, core.url, { secret: SECRET, name: 'failing' });
    core.setHandler({ status: 503, body: { error: 'down' } });
    try {
        const r = await check(inst.id);
        assert.equal(r.code, 1);
        assert.equal(r.json.status, 503);
        assert.match(r.json.problem, /HTTP 503/);
        assert.match(r.json.hint, /Core's own logs/);
    } finally {
        core.setHandler(null);
    }
});

test('nothing listens: connection refused', async () => {
    const inst = makeInstance(db, `http://127.0.0.1:${await closedPort()}`, { secret: SECRET, name: 'refused' });
    const r = await check(inst.id);
    assert.equal(r.code, 1);
    assert.equal(r.json.status, undefined);
    assert.match(r.json.problem, /connection was refused/);
});

test('a host name that does not resolve', async () => {
    const inst = makeInstance(db, 'http://no-such-core.invalid:8080', { secret: SECRET, name: 'dns' });
    const r = await check(inst.id);
    assert.equal(r.code, 1);
    assert.match(r.json.problem, /host name does not resolve/);
});

test('no answer in time: --timeout', async () => {
    const inst = makeInstance(db, core.url, { secret: SECRET, name: 'slow' });
    core.setHandler({ delayMs: 5000 });
    try {
        const r = await check(inst.id, ['--timeout', '1s']);
        assert.equal(r.code, 1);
        assert.match(r.json.problem, /no answer in time/);
    } finally {
        core.setHandler(null);
    }
    const bad = cli(['instance', 'check', inst.id, '--timeout', 'never'], { db });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--timeout must be a duration/);
});

test('TLS: a certificate for another name is refused, with the reason', async () => {
    const dir = tmpDir();
    makeCertificates(dir, { cn: 'elsewhere.example', san: 'DNS:elsewhere.example', ca: 'check test CA' });
    const server = https.createServer(
        { key: fs.readFileSync(path.join(dir, 'core.key')), cert: fs.readFileSync(path.join(dir, 'core.pem')) },
        (rq, rs) => rs.end('{}'),
    );
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    try {
        const port = server.address().port;
        const add = cli(['instance', 'add', '--name', 'tls', '--url', `https://127.0.0.1:${port}`, '--ca-file', path.join(dir, 'ca.pem')], { db });
        assert.equal(add.code, 0, add.stderr);
        const r = await check(add.json.id);
        assert.equal(r.code, 1);
        assert.match(r.json.problem, /^TLS failed: /);
        assert.match(r.json.hint, /valid for the URL's host name/);
    } finally {
        server.closeAllConnections?.();
        await new Promise((r) => server.close(r));
    }
});

test('an unknown instance: exit 3', () => {
    const r = cli(['instance', 'check', 'instance_00000000000000000000000000'], { db });
    assert.equal(r.code, 3);
    assert.match(r.stderr, /unknown instance/);
});

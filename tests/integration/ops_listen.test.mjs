// The operations listener (issue 11, item 9): with ops_listen set, /metrics (instance ids, traffic)
// is served there and no longer to every API client on listen; /healthz and /readyz answer on both
// (a load balancer checks the address it sends traffic to); nothing else is served on the ops
// listener. Unset, everything stays on listen as before.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { after, before, test } from 'node:test';

import { startFakeCore } from './lib/fake_core.mjs';
import { assertError, BIN, bearer, makeInstance, makeKey, req, startProxy, tmpDb, tmpDir } from './lib/harness.mjs';

let core;
let db;
let instance;
let key;

before(async () => {
    core = await startFakeCore();
    db = tmpDb();
    instance = makeInstance(db, core.url, { secret: 'ops_secret' });
    key = makeKey(db, { scopes: ['*'] }).key;
});

after(async () => {
    await core?.close();
});

test('without ops_listen, /metrics is on listen as before', async () => {
    const proxy = await startProxy({ db });
    try {
        assert.equal(proxy.listening.ops_port, 0);
        const m = await req(proxy.port, 'GET', '/metrics');
        assert.equal(m.status, 200);
        assert.match(m.text, /^# HELP blnkproxy_/m);
    } finally {
        await proxy.stop();
    }
});

test('with ops_listen, /metrics moves there; health answers on both; nothing else is served on it', async () => {
    const proxy = await startProxy({ db, args: ['--ops-listen', '127.0.0.1:0'] });
    try {
        const ops = proxy.listening.ops_port;
        assert.ok(ops > 0 && ops !== proxy.port, `an ops port of its own: ${ops}`);
        assert.equal(proxy.listening.ops_host, '127.0.0.1');

        const hidden = await req(proxy.port, 'GET', '/metrics');
        assert.equal(hidden.status, 404, 'no metrics for API clients');
        assertError(hidden, 404, 'GEN_NOT_FOUND');
        const m = await req(ops, 'GET', '/metrics');
        assert.equal(m.status, 200);
        assert.match(m.text, /^blnkproxy_client_connections \d+/m);

        for (const port of [proxy.port, ops]) {
            assert.equal((await req(port, 'GET', '/healthz')).status, 200);
            assert.equal((await req(port, 'GET', '/readyz')).status, 200);
        }

        core.reset();
        const viaOps = await req(ops, 'GET', `/proxy/ledgers?instance_id=${instance.id}`, { headers: bearer(key) });
        assert.equal(viaOps.status, 404, 'the ops listener proxies nothing');
        assert.equal((await req(ops, 'POST', '/oauth/token', { body: 'grant_type=client_credentials' })).status, 404);
        assert.equal(core.requests.length, 0, 'Core saw nothing from the ops listener');
        const viaMain = await req(proxy.port, 'GET', `/proxy/ledgers?instance_id=${instance.id}`, { headers: bearer(key) });
        assert.equal(viaMain.status, 200);
    } finally {
        await proxy.stop();
    }
});

function freePort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.on('error', reject);
        srv.listen(0, '127.0.0.1', () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

test('ops_listen on the listen address itself is refused at start with what to do', async () => {
    const port = await freePort();
    const r = spawnSync(BIN, ['serve', '--db', db, '--listen', `127.0.0.1:${port}`, '--ops-listen', `127.0.0.1:${port}`], {
        cwd: tmpDir(),
        encoding: 'utf8',
        timeout: 15000,
    });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /ops_listen is the same address as listen/);
});

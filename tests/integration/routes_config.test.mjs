// Operator route overrides (DESIGN §3: "An operator can add or remove routes in the config file;
// the built-in table is the default"), through the real binary and a fake Core.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { startFakeCore } from './lib/fake_core.mjs';
import { BIN, assertError, bearer, makeInstance, makeKey, req, startProxy, tmpDb, tmpDir, wwwScope } from './lib/harness.mjs';

let core;
let proxy;
let instance;
let writer;
let reader;

function writeConfig(obj) {
    const file = path.join(tmpDir(), 'blnkproxy.json');
    fs.writeFileSync(file, JSON.stringify(obj));
    return file;
}

before(async () => {
    core = await startFakeCore();
    const db = tmpDb();
    instance = makeInstance(db, core.url, { secret: 'routes_config_secret' });
    writer = makeKey(db, { scopes: ['proxy:read', 'proxy:write'] });
    reader = makeKey(db, { scopes: ['proxy:read'] });
    const config = writeConfig({
        routes: {
            remove: ['DELETE /reconciliation/matching-rules/:id'],
            add: [
                { method: 'GET', path: '/ledgers/:id/export', category: 'ledgers' },
                { method: 'POST', path: '/reports/run', action: 'Report run' },
            ],
        },
    });
    proxy = await startProxy({ db, args: ['--config', config] });
});

after(async () => {
    await proxy?.stop();
    await core?.close();
});

const p = (corePath) => `/proxy${corePath}?instance_id=${instance.id}`;

test('a removed built-in route is refused with 404 and never reaches Core', async () => {
    core.reset();
    const res = await req(proxy.port, 'DELETE', p('/reconciliation/matching-rules/rule_1'), { headers: bearer(writer.key) });
    assertError(res, 404, 'GEN_NOT_FOUND');
    assert.equal(core.requests.length, 0);
    // Its siblings stay.
    const put = await req(proxy.port, 'PUT', p('/reconciliation/matching-rules/rule_1'), {
        headers: { ...bearer(writer.key), 'content-type': 'application/json' },
        body: '{"name":"r"}',
    });
    assert.equal(put.status, 200);
    assert.equal(core.requests.length, 1);
});

test('an added read route is forwarded for a read key, GET and HEAD', async () => {
    core.reset();
    const res = await req(proxy.port, 'GET', `${p('/ledgers/ldg_1/export')}&format=csv`, { headers: bearer(reader.key) });
    assert.equal(res.status, 200);
    assert.equal(core.requests.length, 1);
    assert.equal(core.requests[0].method, 'GET');
    assert.equal(core.requests[0].rawPath, '/ledgers/ldg_1/export?format=csv');
    assert.equal(core.requests[0].headers['x-blnk-key'], 'routes_config_secret');
    const head = await req(proxy.port, 'HEAD', p('/ledgers/ldg_1/export'), { headers: bearer(reader.key) });
    assert.equal(head.status, 200);
    assert.equal(core.requests.length, 2);
});

test('an added POST route needs proxy:write by default', async () => {
    core.reset();
    const denied = await req(proxy.port, 'POST', p('/reports/run'), { headers: bearer(reader.key), body: '{}' });
    assertError(denied, 403, 'AUTH_INSUFFICIENT_PERMISSIONS', { wwwAuthenticate: wwwScope('proxy:write') });
    assert.equal(core.requests.length, 0);
    const ok = await req(proxy.port, 'POST', p('/reports/run'), {
        headers: { ...bearer(writer.key), 'content-type': 'application/json' },
        body: '{"x":1}',
    });
    assert.equal(ok.status, 201);
    assert.equal(core.requests.length, 1);
    assert.equal(core.requests[0].body.toString(), '{"x":1}');
});

test('a config that names an unknown route or a bad pattern stops serve with exit 2 and says where', () => {
    const cases = [
        [{ routes: { remove: ['DELETE /nothing/here'] } }, 'routes.remove[0]'],
        [{ routes: { add: [{ method: 'GET', path: '/a//b' }] } }, 'routes.add[0]'],
        [{ routes: { add: [{ method: 'GET', path: '/x', scope: 'admin' }] } }, 'routes.add[0]: scope'],
        [{ routes: { add: [{ path: '/x' }] } }, '"method" is required'],
    ];
    for (const [obj, expected] of cases) {
        const r = spawnSync(BIN, ['serve', '--db', tmpDb(), '--listen', '127.0.0.1:0', '--config', writeConfig(obj)], {
            encoding: 'utf8',
            timeout: 10000,
        });
        assert.equal(r.status, 2, `exit code for ${JSON.stringify(obj)}: ${r.stderr}`);
        assert.ok(r.stderr.includes(expected), `stderr ${JSON.stringify(r.stderr)} should mention ${expected}`);
    }
});

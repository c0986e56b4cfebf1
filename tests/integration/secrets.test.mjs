// DESIGN §5: no API key and no Core secret in logs, CLI output (except `key create`), error
// bodies, or the database (keys are stored as digests).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';

import { startFakeCore } from './lib/fake_core.mjs';
import {
    PG,
    bearer,
    cli,
    cliHistory,
    closedPort,
    makeInstance,
    makeKey,
    randomHex,
    req,
    startProxy,
    storeBytes,
    tmpDb,
} from './lib/harness.mjs';

let core;
let db;
let proxy;
const secrets = [];
const responses = [];

before(async () => {
    core = await startFakeCore();
});
after(async () => {
    await proxy?.stop();
    await core?.close();
});

function forbidden(text, where) {
    for (const s of secrets) {
        assert.ok(!text.includes(s.value), `${where} contains ${s.what}`);
    }
}

test('a mixed workload leaks no key or Core secret', async () => {
    db = tmpDb();
    const coreSecret = `core_master_${randomHex(20)}`;
    const deadSecret = `dead_master_${randomHex(20)}`;
    const envSecret = `env_master_${randomHex(20)}`;
    const inst = makeInstance(db, core.url, { secret: coreSecret, name: 'live' });
    const dead = makeInstance(db, `http://127.0.0.1:${await closedPort()}`, { secret: deadSecret, name: 'dead' });
    const viaEnv = cli(['instance', 'add', '--name', 'env', '--url', core.url, '--secret-key-env', 'BP_ITEST_SECRET'], {
        db,
        env: { BP_ITEST_SECRET: envSecret },
    });
    assert.equal(viaEnv.code, 0, viaEnv.stderr);
    const all = makeKey(db, { scopes: ['*'], name: 'all' });
    const read = makeKey(db, { scopes: ['proxy:read'], name: 'read' });
    const revoked = makeKey(db, { scopes: ['*'], name: 'revoked' });
    const restricted = makeKey(db, { scopes: ['*'], instances: [dead.id], name: 'restricted' });
    assert.equal(cli(['key', 'revoke', revoked.id], { db }).code, 0);
    const unknown = `blnk_${randomHex(32)}`;
    const malformed = `blnk_${randomHex(30)}ZZZZ`;
    const token = `blnk_at_${randomHex(32)}`;
    for (const [what, value] of [
        ['the Core secret', coreSecret],
        ['the dead instance secret', deadSecret],
        ['the env-supplied secret', envSecret],
        ['the * key', all.key],
        ['the read key', read.key],
        ['the revoked key', revoked.key],
        ['the restricted key', restricted.key],
        ['an unknown presented key', unknown],
        ['a malformed presented key', malformed],
        ['a presented OAuth token', token],
        // On PostgreSQL the DSN carries the test server's password: never printed either.
        ...(PG ? [['the DSN password', new URL(db).password]] : []),
    ]) {
        secrets.push({ what, value });
        if (/^blnk_[0-9a-f]{64}$/.test(value)) {
            // the key's hex without the prefix, and its digest-free tail, must not appear either
            secrets.push({ what: `${what} (hex part)`, value: value.slice(5) });
            secrets.push({ what: `${what} (tail)`, value: value.slice(-40) });
        }
    }

    proxy = await startProxy({ db, args: ['--log-level', 'debug', '--upstream-timeout', '2'] });
    const P = (p, id = inst.id) => `/proxy${p}?instance_id=${id}`;
    const J = { 'content-type': 'application/json' };
    const calls = [
        ['POST', P('/ledgers'), bearer(all.key), '{"name":"ok"}'],
        ['POST', P('/transactions'), bearer(all.key), '{"amount":1,"currency":"USD"}'],
        ['GET', P('/ledgers'), bearer(read.key)],
        ['GET', P('/ledgers'), bearer(unknown)],
        ['GET', P('/ledgers'), bearer(malformed)],
        ['GET', P('/ledgers'), bearer(token)],
        ['GET', P('/ledgers'), bearer(revoked.key)],
        ['GET', P('/ledgers'), { authorization: `Basic ${Buffer.from(`user:${all.key}`).toString('base64')}` }],
        ['GET', P('/ledgers'), { authorization: all.key }],
        ['POST', P('/ledgers'), bearer(read.key), '{}'],
        ['GET', P('/ledgers'), bearer(restricted.key)],
        ['GET', P('/ledgers', dead.id), bearer(all.key)],
        ['GET', P('/ledgers', dead.id), bearer(restricted.key)],
        ['GET', P('/api-keys'), bearer(all.key)],
        ['GET', '/proxy/ledgers/../api-keys', bearer(all.key)],
        ['GET', '/proxy/ledgers', bearer(all.key)],
        ['GET', P('/ledgers', 'bogus'), bearer(all.key)],
        ['GET', P('/ledgers'), { ...bearer(all.key), 'X-Blnk-Key': coreSecret, Cookie: `k=${read.key}` }],
    ];
    const statuses = [];
    for (const [m, p, h, body] of calls) {
        const res = await req(proxy.port, m, p, { headers: { ...h, ...(body ? J : {}) }, body });
        statuses.push(res.status);
        responses.push({ what: `${m} ${p} → ${res.status}`, text: `${JSON.stringify(res.rawHeaders)}\n${res.text}` });
    }
    // make sure the workload covered what it meant to
    for (const s of [200, 201, 401, 403, 404, 400, 502]) {
        assert.ok(statuses.includes(s), `workload produced a ${s}: ${statuses.join(',')}`);
    }
    const metrics = await req(proxy.port, 'GET', '/metrics');
    responses.push({ what: 'GET /metrics', text: metrics.text });
    // Core did get its secret (so the test can fail if the proxy were to log it)
    assert.ok(core.requests.some((r) => r.headers['x-blnk-key'] === coreSecret));

    // CLI commands that show things (none of them may print a secret)
    for (const args of [
        ['instance', 'list'],
        ['instance', 'show', inst.id],
        ['instance', 'show', dead.id],
        ['key', 'list'],
        ['key', 'show', all.id],
        ['key', 'show', revoked.id],
        ['instance', 'update', inst.id, '--name', 'renamed'],
        ['key', 'expire', read.id, '--expires-in', '7d'],
        ['instance', 'show', 'instance_00000000000000000000000000'],
        ['key', 'show', 'key_00000000000000000000000000'],
    ]) {
        cli(args, { db });
        cli(args, { db, json: false });
    }
    if (PG) {
        // A store that cannot be reached: the message names it, masked.
        const u = new URL(db);
        u.port = String(await closedPort());
        const down = cli(['key', 'list'], { db: u.href });
        assert.equal(down.code, 1);
        assert.match(down.stderr, /:\*\*\*@127\.0\.0\.1:/);
    }
    await proxy.stop();

    const logs = proxy.logs();
    assert.ok(logs.length > 0, 'the proxy wrote logs');
    assert.ok(proxy.accessLogs().length >= calls.length, `access lines: ${proxy.accessLogs().length}`);
    forbidden(logs.join('\n'), 'proxy stderr');
    forbidden(proxy.stdout(), 'proxy stdout');
    for (const c of cliHistory) {
        const isCreate = c.args[0] === 'key' && c.args[1] === 'create';
        forbidden(c.stderr, `stderr of \`${c.args.slice(0, 3).join(' ')}\``);
        if (!isCreate) {
            forbidden(c.stdout, `stdout of \`${c.args.slice(0, 3).join(' ')}\``);
        }
    }
    for (const r of responses) {
        forbidden(r.text, `response to ${r.what}`);
    }
    // API keys are stored as digests only (the Core secret must be stored to be injected)
    const stores = PG ? [[db, storeBytes(db)]] : [db, `${db}-wal`, `${db}-journal`].filter((f) => fs.existsSync(f)).map((f) => [f, fs.readFileSync(f)]);
    for (const [f, raw] of stores) {
        const bytes = raw.toString('latin1');
        for (const k of [all, read, revoked, restricted]) {
            assert.ok(!bytes.includes(k.key), `${f} holds a plaintext key`);
            assert.ok(!bytes.includes(k.key.slice(5)), `${f} holds a key's hex`);
        }
    }
});

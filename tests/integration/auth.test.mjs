// DESIGN §2/§5: scopes, instance restriction, expiry, and live changes made with the CLI
// reaching a running server within 2 seconds.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { startFakeCore } from './lib/fake_core.mjs';
import {
    assertError,
    bearer,
    cli,
    makeInstance,
    makeKey,
    randomHex,
    req,
    sleep,
    startProxy,
    tmpDb,
    waitFor,
    wwwScope,
} from './lib/harness.mjs';

let core;
let core2;
let db;
let proxy;
let A;
let B;

before(async () => {
    core = await startFakeCore();
    core2 = await startFakeCore();
    db = tmpDb();
    A = makeInstance(db, core.url, { secret: `secret_a_${randomHex(8)}`, name: 'a' });
    B = makeInstance(db, core.url, { secret: `secret_b_${randomHex(8)}`, name: 'b' });
    proxy = await startProxy({ db });
});

after(async () => {
    await proxy?.stop();
    await core?.close();
    await core2?.close();
});

const P = (corePath, id = A.id) => `/proxy${corePath}?instance_id=${id}`;
const JSONH = { 'content-type': 'application/json' };

// Keys made after the server started must become usable within 2 s (DESIGN §5).
async function freshKey(opts) {
    const k = makeKey(db, opts);
    await waitFor(
        async () => {
            const r = await req(proxy.port, 'GET', '/proxy/health', { headers: bearer(k.key) });
            return r.status !== 401;
        },
        { timeoutMs: 2000, what: 'new key accepted' },
    );
    return k;
}

test('a key created after start becomes usable within 2 s', async () => {
    const t0 = Date.now();
    const k = makeKey(db, { scopes: ['*'] });
    const { ms } = await waitFor(
        async () => (await req(proxy.port, 'GET', P('/ledgers'), { headers: bearer(k.key) })).status === 200,
        { timeoutMs: 2000, intervalMs: 100, what: 'new key accepted' },
    );
    assert.ok(Date.now() - t0 < 2500 && ms <= 2000);
});

test('proxy:read can GET, HEAD and use the read-only POST queries, but not write', async () => {
    const k = await freshKey({ scopes: ['proxy:read'] });
    const h = bearer(k.key);
    for (const p of ['/ledgers', '/ledgers/ldg_1', '/balances/bln_1/lineage', '/health']) {
        const r = await req(proxy.port, 'GET', P(p), { headers: h });
        assert.equal(r.status, 200, `GET ${p}: ${r.text}`);
    }
    assert.equal((await req(proxy.port, 'HEAD', P('/ledgers'), { headers: h })).status, 200);
    for (const p of ['/ledgers/filter', '/balances/filter', '/transactions/filter', '/identities/filter', '/search/balances', '/multi-search']) {
        const r = await req(proxy.port, 'POST', P(p), { headers: { ...h, ...JSONH }, body: '{"q":"*"}' });
        assert.equal(r.status, 200, `POST ${p}: ${r.text}`);
    }
    core.reset();
    for (const [m, p] of [
        ['POST', '/ledgers'],
        ['POST', '/transactions'],
        ['PUT', '/identities/idt_1'],
        ['DELETE', '/reconciliation/matching-rules/r1'],
        ['POST', '/identities/idt_1/tokenize'],
        ['POST', '/reconciliation/upload'],
    ]) {
        const r = await req(proxy.port, m, P(p), { headers: { ...h, ...JSONH }, body: m === 'DELETE' ? undefined : '{}' });
        assertError(r, 403, 'AUTH_INSUFFICIENT_PERMISSIONS', { wwwAuthenticate: wwwScope('proxy:write') });
    }
    assert.equal(core.requests.length, 0);
});

test('proxy:write can write but not read (including the read-only POST queries)', async () => {
    const k = await freshKey({ scopes: ['proxy:write'] });
    const h = { ...bearer(k.key), ...JSONH };
    let r = await req(proxy.port, 'POST', P('/ledgers'), { headers: h, body: '{"name":"w"}' });
    assert.equal(r.status, 201, r.text);
    r = await req(proxy.port, 'PUT', P('/identities/idt_1'), { headers: h, body: '{}' });
    assert.equal(r.status, 200, r.text);
    r = await req(proxy.port, 'DELETE', P('/reconciliation/matching-rules/r1'), { headers: h });
    assert.equal(r.status, 200, r.text);
    core.reset();
    for (const [m, p] of [
        ['GET', '/ledgers'],
        ['HEAD', '/ledgers'],
        ['GET', '/identities/idt_1/detokenize/first_name'],
        ['POST', '/ledgers/filter'],
        ['POST', '/search/ledgers'],
        ['POST', '/multi-search'],
    ]) {
        r = await req(proxy.port, m, P(p), { headers: h, body: m === 'POST' ? '{}' : undefined });
        assert.equal(r.status, 403, `${m} ${p}`);
        assert.equal(r.headers['www-authenticate'], wwwScope('proxy:read'), `${m} ${p}`);
        if (m !== 'HEAD') {
            assertError(r, 403, 'AUTH_INSUFFICIENT_PERMISSIONS', { wwwAuthenticate: wwwScope('proxy:read') });
        }
    }
    assert.equal(core.requests.length, 0);
});

test('"*" and "proxy:read,proxy:write" can do both', async () => {
    for (const scopes of [['*'], ['proxy:read', 'proxy:write']]) {
        const k = await freshKey({ scopes });
        const h = { ...bearer(k.key), ...JSONH };
        assert.equal((await req(proxy.port, 'GET', P('/ledgers'), { headers: h })).status, 200, scopes.join());
        assert.equal((await req(proxy.port, 'POST', P('/ledgers'), { headers: h, body: '{}' })).status, 201, scopes.join());
        assert.equal((await req(proxy.port, 'POST', P('/ledgers/filter'), { headers: h, body: '{}' })).status, 200, scopes.join());
    }
});

test('instance restriction', async () => {
    const onlyA = await freshKey({ scopes: ['*'], instances: [A.id] });
    const both = await freshKey({ scopes: ['*'], instances: [A.id, B.id] });
    assert.equal((await req(proxy.port, 'GET', P('/ledgers', A.id), { headers: bearer(onlyA.key) })).status, 200);
    core.reset();
    const r = await req(proxy.port, 'GET', P('/ledgers', B.id), { headers: bearer(onlyA.key) });
    assertError(r, 403, 'AUTH_INSUFFICIENT_PERMISSIONS');
    assert.equal(core.requests.length, 0);
    assert.equal((await req(proxy.port, 'GET', P('/ledgers', A.id), { headers: bearer(both.key) })).status, 200);
    assert.equal((await req(proxy.port, 'GET', P('/ledgers', B.id), { headers: bearer(both.key) })).status, 200);
    // Core sees each instance's own secret
    core.reset();
    await req(proxy.port, 'GET', P('/ledgers', B.id), { headers: bearer(both.key) });
    assert.match(core.requests[0].headers['x-blnk-key'], /^secret_b_/);
});

test('live revocation: a revoked key is refused within 2 s', async () => {
    const k = await freshKey({ scopes: ['*'] });
    assert.equal((await req(proxy.port, 'GET', P('/ledgers'), { headers: bearer(k.key) })).status, 200);
    const r = cli(['key', 'revoke', k.id], { db });
    assert.equal(r.code, 0, r.stderr);
    const { value } = await waitFor(
        async () => {
            const res = await req(proxy.port, 'GET', P('/ledgers'), { headers: bearer(k.key) });
            return res.status === 401 ? res : null;
        },
        { timeoutMs: 2000, intervalMs: 100, what: 'revoked key refused' },
    );
    assertError(value, 401, 'AUTH_INVALID_API_KEY');
});

test('live instance disable → 404 within 2 s, enable → usable again within 2 s', async () => {
    const C = makeInstance(db, core.url, { secret: 's', name: 'c' });
    const k = await freshKey({ scopes: ['*'] });
    await waitFor(async () => (await req(proxy.port, 'GET', P('/ledgers', C.id), { headers: bearer(k.key) })).status === 200, {
        timeoutMs: 2000,
        what: 'new instance usable',
    });
    assert.equal(cli(['instance', 'disable', C.id], { db }).code, 0);
    const { value } = await waitFor(
        async () => {
            const res = await req(proxy.port, 'GET', P('/ledgers', C.id), { headers: bearer(k.key) });
            return res.status === 404 ? res : null;
        },
        { timeoutMs: 2000, what: 'disabled instance refused' },
    );
    assertError(value, 404, 'PROXY_UNKNOWN_INSTANCE');
    assert.equal(cli(['instance', 'enable', C.id], { db }).code, 0);
    await waitFor(async () => (await req(proxy.port, 'GET', P('/ledgers', C.id), { headers: bearer(k.key) })).status === 200, {
        timeoutMs: 2000,
        what: 're-enabled instance usable',
    });
});

test('live instance update: new URL and new secret are used within 2 s', async () => {
    const D = makeInstance(db, core.url, { secret: 'old_secret_value', name: 'd' });
    const k = await freshKey({ scopes: ['*'] });
    await waitFor(async () => (await req(proxy.port, 'GET', P('/ledgers', D.id), { headers: bearer(k.key) })).status === 200, {
        timeoutMs: 2000,
        what: 'new instance usable',
    });
    const r = cli(['instance', 'update', D.id, '--url', core2.url, '--secret-key-env', 'BP_ITEST_NEW_SECRET'], {
        db,
        env: { BP_ITEST_NEW_SECRET: 'new_secret_value' },
    });
    assert.equal(r.code, 0, r.stderr);
    core2.reset();
    await waitFor(
        async () => {
            await req(proxy.port, 'GET', P('/ledgers', D.id), { headers: bearer(k.key) });
            return core2.requests.length > 0;
        },
        { timeoutMs: 2000, what: 'requests go to the new URL' },
    );
    assert.equal(core2.requests.at(-1).headers['x-blnk-key'], 'new_secret_value');
});

test('expiry, and `key expire` making an expired key active again within 2 s', async () => {
    const k = makeKey(db, { scopes: ['*'], expiresIn: '1s' });
    // usable at first (within the reload interval), then expired
    const { value } = await waitFor(
        async () => {
            const res = await req(proxy.port, 'GET', P('/ledgers'), { headers: bearer(k.key) });
            return res.status === 401 && res.json?.error_detail?.code === 'AUTH_EXPIRED_API_KEY' ? res : null;
        },
        { timeoutMs: 4000, what: 'key expired' },
    );
    assertError(value, 401, 'AUTH_EXPIRED_API_KEY');
    const r = cli(['key', 'expire', k.id, '--expires-in', '1d'], { db });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.status, 'active');
    assert.ok(Date.parse(r.json.expires_at) > Date.now() + 23 * 3600 * 1000, `expires_at ${r.json.expires_at}`);
    await waitFor(async () => (await req(proxy.port, 'GET', P('/ledgers'), { headers: bearer(k.key) })).status === 200, {
        timeoutMs: 2000,
        what: 'key active again',
    });
    // and shortening it again makes it expire
    assert.equal(cli(['key', 'expire', k.id, '--expires-in', '1s'], { db }).code, 0);
    await sleep(1200);
    await waitFor(
        async () => (await req(proxy.port, 'GET', P('/ledgers'), { headers: bearer(k.key) })).json?.error_detail?.code === 'AUTH_EXPIRED_API_KEY',
        { timeoutMs: 2500, what: 'key expired again' },
    );
});

test('never-expiring keys: expires_at null', async () => {
    const k = makeKey(db, { scopes: ['*'], expiresIn: 'never' });
    assert.equal(k.json.expires_at, null);
});

test('last_used_at is recorded after use', async () => {
    const k = await freshKey({ scopes: ['proxy:read'] });
    const before0 = cli(['key', 'show', k.id], { db });
    assert.equal(before0.code, 0, before0.stderr);
    const t0 = Date.now() - 2000;
    assert.equal((await req(proxy.port, 'GET', P('/ledgers'), { headers: bearer(k.key) })).status, 200);
    const { value } = await waitFor(
        () => {
            const r = cli(['key', 'show', k.id], { db });
            return r.code === 0 && r.json?.last_used_at ? r.json : null;
        },
        { timeoutMs: 5000, intervalMs: 250, what: 'last_used_at set' },
    );
    const t = Date.parse(value.last_used_at);
    assert.ok(Number.isFinite(t), `RFC 3339 last_used_at: ${value.last_used_at}`);
    assert.ok(t >= t0 - 1000 && t <= Date.now() + 2000, `last_used_at ${value.last_used_at} is now-ish`);
    assert.equal(value.key, undefined, 'key show never shows the key');
});

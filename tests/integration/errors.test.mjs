// DESIGN §2 error table (all rows but 429 and OAuth) and the order in which checks answer.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';

import { startFakeCore } from './lib/fake_core.mjs';
import {
    UNKNOWN_INSTANCE,
    WWW_INVALID,
    WWW_MISSING,
    assertError,
    bearer,
    cli,
    closedPort,
    makeInstance,
    makeKey,
    randomHex,
    req,
    sleep,
    startProxy,
    tmpDb,
    wwwScope,
} from './lib/harness.mjs';

let core;
let db;
let proxy;
let inst; // enabled, points at core
let other; // a second enabled instance
let otherSecret;
let disabled;
let dead; // URL on a closed port
let K; // keys
let expiredAt;

before(async () => {
    core = await startFakeCore();
    db = tmpDb();
    inst = makeInstance(db, core.url, { secret: `core_secret_${randomHex(8)}` });
    otherSecret = `core_secret_${randomHex(8)}`;
    other = makeInstance(db, core.url, { secret: otherSecret });
    disabled = makeInstance(db, core.url, { secret: `core_secret_${randomHex(8)}` });
    assert.equal(cli(['instance', 'disable', disabled.id], { db }).code, 0);
    dead = makeInstance(db, `http://127.0.0.1:${await closedPort()}`, { secret: 'x' });
    K = {
        all: makeKey(db, { scopes: ['*'] }),
        read: makeKey(db, { scopes: ['proxy:read'] }),
        write: makeKey(db, { scopes: ['proxy:write'] }),
        onlyOther: makeKey(db, { scopes: ['*'], instances: [other.id] }),
        two: makeKey(db, { scopes: ['*'], instances: [inst.id, other.id] }),
        revoked: makeKey(db, { scopes: ['*'] }),
        expiring: makeKey(db, { scopes: ['*'], expiresIn: '1s' }),
    };
    expiredAt = Date.now() + 1000;
    assert.equal(cli(['key', 'revoke', K.revoked.id], { db }).code, 0);
    proxy = await startProxy({ db, args: ['--max-body-bytes', '1024', '--upstream-timeout', '1'] });
});

after(async () => {
    await proxy?.stop();
    await core?.close();
});

const P = (corePath, id = inst.id, extra = '') => `/proxy${corePath}?instance_id=${id}${extra}`;

async function noCore(fn) {
    core.reset();
    await fn();
    assert.equal(core.requests.length, 0, `Core saw: ${core.requests.map((r) => `${r.method} ${r.rawPath}`).join(', ')}`);
}

test('401 AUTH_MISSING_API_KEY without a credential', async () => {
    await noCore(async () => {
        for (const [m, p] of [
            ['GET', P('/ledgers')],
            ['POST', P('/ledgers')],
            ['GET', '/proxy/ledgers'],
        ]) {
            const res = await req(proxy.port, m, p, m === 'POST' ? { body: '{}' } : {});
            assertError(res, 401, 'AUTH_MISSING_API_KEY', { wwwAuthenticate: WWW_MISSING });
        }
    });
});

test('401 AUTH_INVALID_API_KEY for malformed, unknown and revoked keys', async () => {
    const bad = [
        'nonsense',
        'blnk_',
        `blnk_${randomHex(31)}`, // too short
        `blnk_${randomHex(33)}`, // too long
        `blnk_${randomHex(32).toUpperCase()}`, // uppercase hex
        `blnk_${randomHex(31)}zz`, // not hex
        `blnk_${randomHex(32)}`, // well-formed, unknown
        `${K.all.key} `.slice(0, -2), // a real key missing its last digit
        K.revoked.key,
    ];
    await noCore(async () => {
        for (const k of bad) {
            const res = await req(proxy.port, 'GET', P('/ledgers'), { headers: bearer(k) });
            assertError(res, 401, 'AUTH_INVALID_API_KEY', { wwwAuthenticate: WWW_INVALID });
            assert.ok(!res.text.includes(k), 'the error body does not echo the credential');
        }
    });
});

test('401 for a non-Bearer scheme', async () => {
    await noCore(async () => {
        const res = await req(proxy.port, 'GET', P('/ledgers'), { headers: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } });
        assert.equal(res.status, 401, res.text);
        assert.ok(['AUTH_INVALID_API_KEY', 'AUTH_MISSING_API_KEY'].includes(res.json?.error_detail?.code), res.text);
    });
});

test('401 AUTH_EXPIRED_API_KEY after expiry', async () => {
    // the key was created with --expires-in 1s in before(); give the clock second granularity room
    const wait = expiredAt + 1500 - Date.now();
    if (wait > 0) {
        await sleep(wait);
    }
    await noCore(async () => {
        const res = await req(proxy.port, 'GET', P('/ledgers'), { headers: bearer(K.expiring.key) });
        assertError(res, 401, 'AUTH_EXPIRED_API_KEY', { wwwAuthenticate: WWW_INVALID });
    });
});

test('403 AUTH_INSUFFICIENT_PERMISSIONS for a missing scope', async () => {
    await noCore(async () => {
        let res = await req(proxy.port, 'POST', P('/ledgers'), { headers: bearer(K.read.key), body: '{"name":"x"}' });
        assertError(res, 403, 'AUTH_INSUFFICIENT_PERMISSIONS', { wwwAuthenticate: wwwScope('proxy:write') });
        res = await req(proxy.port, 'GET', P('/ledgers'), { headers: bearer(K.write.key) });
        assertError(res, 403, 'AUTH_INSUFFICIENT_PERMISSIONS', { wwwAuthenticate: wwwScope('proxy:read') });
    });
});

test('403 AUTH_INSUFFICIENT_PERMISSIONS for an instance outside the key\'s restriction', async () => {
    await noCore(async () => {
        const res = await req(proxy.port, 'GET', P('/ledgers', inst.id), { headers: bearer(K.onlyOther.key) });
        assertError(res, 403, 'AUTH_INSUFFICIENT_PERMISSIONS');
    });
    core.reset();
    const ok = await req(proxy.port, 'GET', P('/ledgers', other.id), { headers: bearer(K.onlyOther.key) });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(core.requests.length, 1);
});

test('no instance_id with a key restricted to one instance: that instance (DESIGN §2)', async () => {
    core.reset();
    const res = await req(proxy.port, 'GET', '/proxy/ledgers?a=1', { headers: bearer(K.onlyOther.key) });
    assert.equal(res.status, 200, res.text);
    assert.equal(core.requests.length, 1);
    assert.equal(core.requests[0].rawPath, '/ledgers?a=1', 'the query reaches Core whole');
    assert.equal(core.requests[0].headers['x-blnk-key'], otherSecret, "the implied instance's secret");
});

test('400 GEN_MISSING_PARAMETER without instance_id', async () => {
    await noCore(async () => {
        for (const p of ['/proxy/ledgers', '/proxy/ledgers?', '/proxy/ledgers?a=1', '/proxy/ledgers?instance_id=', '/proxy/ledgers?a=1&instance_id=']) {
            const res = await req(proxy.port, 'GET', p, { headers: bearer(K.all.key) });
            assertError(res, 400, 'GEN_MISSING_PARAMETER');
        }
    });
});

test('400 GEN_MALFORMED_REQUEST for a malformed instance_id', async () => {
    await noCore(async () => {
        for (const id of ['bogus', 'instance_', 'instance_123', `${inst.id}x`, inst.id.toLowerCase(), `${inst.id.slice(0, -1)}U`, 'instance_%41AAAAAAAAAAAAAAAAAAAAAAAAA']) {
            const res = await req(proxy.port, 'GET', P('/ledgers', id), { headers: bearer(K.all.key) });
            assertError(res, 400, 'GEN_MALFORMED_REQUEST');
        }
    });
});

test('404 PROXY_UNKNOWN_INSTANCE for unknown and disabled instances', async () => {
    await noCore(async () => {
        for (const id of [UNKNOWN_INSTANCE, disabled.id]) {
            const res = await req(proxy.port, 'GET', P('/ledgers', id), { headers: bearer(K.all.key) });
            assertError(res, 404, 'PROXY_UNKNOWN_INSTANCE');
        }
    });
});

test('404 GEN_NOT_FOUND for a route outside the table', async () => {
    await noCore(async () => {
        for (const [m, p] of [
            ['GET', '/api-keys'],
            ['GET', '/definitely-not-a-route'],
        ]) {
            const res = await req(proxy.port, m, P(p), { headers: bearer(K.all.key) });
            assertError(res, 404, 'GEN_NOT_FOUND');
        }
    });
});

test('413 GEN_PAYLOAD_TOO_LARGE over --max-body-bytes (Content-Length and chunked)', async () => {
    await noCore(async () => {
        const big = `{"name":"${'x'.repeat(2048)}"}`;
        const res = await req(proxy.port, 'POST', P('/ledgers'), {
            headers: { ...bearer(K.all.key), 'content-type': 'application/json' },
            body: big,
            agent: false,
        });
        assertError(res, 413, 'GEN_PAYLOAD_TOO_LARGE');
    });
    await noCore(async () => {
        // chunked: the size is only known while reading
        const res = await new Promise((resolve, reject) => {
            const r = http.request(
                { host: '127.0.0.1', port: proxy.port, method: 'POST', path: P('/ledgers'), agent: false, headers: { ...bearer(K.all.key), 'content-type': 'application/json' } },
                (resp) => {
                    const chunks = [];
                    resp.on('data', (d) => chunks.push(d));
                    resp.on('end', () => {
                        const text = Buffer.concat(chunks).toString();
                        let json = null;
                        try {
                            json = JSON.parse(text);
                        } catch {
                            json = null;
                        }
                        resolve({ status: resp.statusCode, headers: resp.headers, text, json });
                    });
                },
            );
            r.on('error', reject);
            r.setTimeout(5000, () => r.destroy(new Error('timeout')));
            r.write('{"name":"');
            r.write('y'.repeat(1500));
            r.end('"}');
        });
        assertError(res, 413, 'GEN_PAYLOAD_TOO_LARGE');
    });
    // exactly at the limit is fine
    core.reset();
    const body = `{"name":"${'z'.repeat(1024 - 11)}"}`;
    assert.equal(body.length, 1024);
    const res = await req(proxy.port, 'POST', P('/ledgers'), { headers: { ...bearer(K.all.key), 'content-type': 'application/json' }, body });
    assert.equal(res.status, 201, res.text);
    assert.equal(core.requests[0].body.toString(), body);
});

test('502 PROXY_BAD_GATEWAY when Core is unreachable', async () => {
    const t0 = Date.now();
    const res = await req(proxy.port, 'GET', P('/ledgers', dead.id), { headers: bearer(K.all.key) });
    assertError(res, 502, 'PROXY_BAD_GATEWAY');
    assert.ok(Date.now() - t0 < 3000, 'answered promptly');
});

test('502 PROXY_BAD_GATEWAY when Core resets the connection before answering', async () => {
    core.reset();
    core.setHandler({ destroy: true });
    try {
        const res = await req(proxy.port, 'GET', P('/ledgers/ldg_1'), { headers: bearer(K.all.key) });
        assertError(res, 502, 'PROXY_BAD_GATEWAY');
        assert.ok(core.requests.length >= 1, 'Core did get the request');
        const res2 = await req(proxy.port, 'POST', P('/ledgers'), { headers: bearer(K.all.key), body: '{"name":"x"}' });
        assertError(res2, 502, 'PROXY_BAD_GATEWAY');
        // a request whose body was sent is never retried
        assert.equal(core.requests.filter((r) => r.method === 'POST').length, 1, 'POST sent to Core once');
    } finally {
        core.setHandler(null);
    }
});

test('504 PROXY_GATEWAY_TIMEOUT when Core is slower than --upstream-timeout', async () => {
    core.reset();
    core.setHandler({ delayMs: 3000 });
    try {
        const t0 = Date.now();
        const res = await req(proxy.port, 'GET', P('/ledgers'), { headers: bearer(K.all.key) });
        const ms = Date.now() - t0;
        assertError(res, 504, 'PROXY_GATEWAY_TIMEOUT');
        assert.ok(ms >= 900 && ms < 2900, `answered after the 1 s timeout, before Core (${ms} ms)`);
    } finally {
        core.setHandler(null);
    }
});

test('check order: credential before path syntax and route', async () => {
    await noCore(async () => {
        let res = await req(proxy.port, 'GET', '/proxy/ledgers/../api-keys', {});
        assertError(res, 401, 'AUTH_MISSING_API_KEY', { wwwAuthenticate: WWW_MISSING });
        res = await req(proxy.port, 'GET', '/proxy//ledgers', { headers: bearer(`blnk_${randomHex(32)}`) });
        assertError(res, 401, 'AUTH_INVALID_API_KEY', { wwwAuthenticate: WWW_INVALID });
        res = await req(proxy.port, 'GET', P('/api-keys'), {});
        assertError(res, 401, 'AUTH_MISSING_API_KEY');
        res = await req(proxy.port, 'POST', P('/api-keys'), { headers: bearer(K.revoked.key), body: '{}' });
        assertError(res, 401, 'AUTH_INVALID_API_KEY');
    });
});

test('check order: path syntax before route, route before scope and instance', async () => {
    await noCore(async () => {
        // bad path with no instance_id: 400 malformed, not 400 missing parameter
        let res = await req(proxy.port, 'GET', '/proxy/ledgers/./x', { headers: bearer(K.read.key) });
        assertError(res, 400, 'GEN_MALFORMED_REQUEST');
        // valid key + admin route → 404, not 403 (read key, POST admin route)
        res = await req(proxy.port, 'POST', P('/api-keys'), { headers: bearer(K.read.key), body: '{}' });
        assertError(res, 404, 'GEN_NOT_FOUND');
        // read-only key + unknown route → 404
        res = await req(proxy.port, 'DELETE', P('/ledgers/ldg_1'), { headers: bearer(K.read.key) });
        assertError(res, 404, 'GEN_NOT_FOUND');
        // admin route without instance_id → 404, not 400
        res = await req(proxy.port, 'GET', '/proxy/hooks', { headers: bearer(K.all.key) });
        assertError(res, 404, 'GEN_NOT_FOUND');
        // admin route with an unknown instance → 404 GEN_NOT_FOUND, not PROXY_UNKNOWN_INSTANCE
        res = await req(proxy.port, 'GET', P('/hooks', UNKNOWN_INSTANCE), { headers: bearer(K.all.key) });
        assertError(res, 404, 'GEN_NOT_FOUND');
    });
});

test('check order: scope before instance checks', async () => {
    await noCore(async () => {
        // write route, read key, unknown instance → 403
        let res = await req(proxy.port, 'POST', P('/ledgers', UNKNOWN_INSTANCE), { headers: bearer(K.read.key), body: '{}' });
        assertError(res, 403, 'AUTH_INSUFFICIENT_PERMISSIONS', { wwwAuthenticate: wwwScope('proxy:write') });
        // missing instance_id with a read key on a write route → 403
        res = await req(proxy.port, 'POST', '/proxy/ledgers', { headers: bearer(K.read.key), body: '{}' });
        assertError(res, 403, 'AUTH_INSUFFICIENT_PERMISSIONS', { wwwAuthenticate: wwwScope('proxy:write') });
        // malformed instance_id with a write key on a read route → 403
        res = await req(proxy.port, 'GET', P('/ledgers', 'bogus'), { headers: bearer(K.write.key) });
        assertError(res, 403, 'AUTH_INSUFFICIENT_PERMISSIONS', { wwwAuthenticate: wwwScope('proxy:read') });
    });
});

test('check order: instance_id syntax, then instance known, then instance allowed', async () => {
    await noCore(async () => {
        // restricted key + malformed id → 400
        let res = await req(proxy.port, 'GET', P('/ledgers', 'bogus'), { headers: bearer(K.onlyOther.key) });
        assertError(res, 400, 'GEN_MALFORMED_REQUEST');
        // key restricted to two instances + missing id → 400 missing (one instance would be implied)
        res = await req(proxy.port, 'GET', '/proxy/ledgers', { headers: bearer(K.two.key) });
        assertError(res, 400, 'GEN_MISSING_PARAMETER');
        // restricted key + instance_id present but empty → 400 missing, not implied
        res = await req(proxy.port, 'GET', '/proxy/ledgers?instance_id=', { headers: bearer(K.onlyOther.key) });
        assertError(res, 400, 'GEN_MISSING_PARAMETER');
        // restricted key + unknown instance → 404 (known before allowed)
        res = await req(proxy.port, 'GET', P('/ledgers', UNKNOWN_INSTANCE), { headers: bearer(K.onlyOther.key) });
        assertError(res, 404, 'PROXY_UNKNOWN_INSTANCE');
        // restricted key + disabled instance → 404
        res = await req(proxy.port, 'GET', P('/ledgers', disabled.id), { headers: bearer(K.onlyOther.key) });
        assertError(res, 404, 'PROXY_UNKNOWN_INSTANCE');
    });
});

test('the server still works after all of the above', async () => {
    core.reset();
    const res = await req(proxy.port, 'GET', P('/ledgers'), { headers: bearer(K.all.key) });
    assert.equal(res.status, 200, res.text);
    assert.equal(core.requests.length, 1);
});

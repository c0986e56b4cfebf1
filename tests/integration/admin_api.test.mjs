// The admin API (issue 13, item 2; docs/ADMIN_API.md), end to end with serve running, on SQLite
// and (the _pg run) PostgreSQL: operators with roles, admin tokens made with the CLI, console
// sessions (cookie + CSRF token), roles enforced by the server, every change audited with the
// operator as its actor, and the changes in force on /proxy/ as soon as the answer arrives.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { adminApi, assertAdminError as assertError, cliOk, makeAdminToken, makeOperator, signIn as signInAs } from './lib/admin.mjs';
import { makeCertificates } from './lib/certs.mjs';
import { startFakeCore } from './lib/fake_core.mjs';
import { FORM, authorizeCode, createClient, pkcePair, token } from './lib/oauth_flow.mjs';
import { bearer, cli, makeInstance, req, sql, startProxy, tmpDb, tmpDir, waitFor } from './lib/harness.mjs';

const w = {};
const PASSWORD = 'correct horse battery';

const ok = (args) => cliOk(w.db, args);
const operator = (name, role) => makeOperator(w.db, name, { password: PASSWORD, role });
const adminToken = (op, name) => makeAdminToken(w.db, op, name);

// Sign-ins and new passwords run Argon2id on the sign-in thread at nice 19: on a machine busy
// with other tests they wait for the CPU the longest, by design.
const ARGON2_MS = 60000;
const argon2 = (method, p) => method === 'POST' && (p === '/session' || /^\/operators(\/[^/]+\/password)?$/.test(p));

// One admin API call: token is an admin token, or a session {cookie, csrf}.
const api = (method, p, opts = {}) =>
    adminApi(w.proxy.port, method, p, { ...opts, timeoutMs: argon2(method, p) ? ARGON2_MS : 10000 });
const signIn = (name, password = PASSWORD) => signInAs(w.proxy.port, name, password, { timeoutMs: ARGON2_MS });

const proxyGet = (key, inst = w.inst) =>
    req(w.proxy.port, 'GET', `/proxy/ledgers?instance_id=${inst.id}`, { headers: bearer(key), agent: false });

function adminRecords() {
    const r = cli(['audit', 'list', '--category', 'admin', '--limit', '1000'], { db: w.db });
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

before(async () => {
    w.core = await startFakeCore();
    w.db = tmpDb();
    w.inst = makeInstance(w.db, w.core.url, { secret: 'admin_api_core_secret', name: 'main' });
    w.admin = operator('alice', 'admin');
    w.auditor = operator('bob', 'auditor');
    w.approver = operator('carol');
    w.adminToken = adminToken(w.admin);
    w.auditorToken = adminToken(w.auditor);
    w.proxy = await startProxy({ db: w.db });
});

after(async () => {
    await w.proxy?.stop();
    await w.core?.close();
});

test('the CLI makes operators with roles and admin tokens, shown once', () => {
    assert.equal(w.admin.role, 'admin');
    assert.equal(w.auditor.role, 'auditor');
    assert.equal(w.approver.role, 'approver', 'the default role is the one operators had before');
    assert.match(w.adminToken, /^blnk_ad_[0-9a-f]{64}$/);
    const list = ok(['operator', 'tokens', w.admin.id]).tokens;
    assert.equal(list.length, 1);
    assert.equal(list[0].token, undefined, 'a listing never shows the token');
    assert.equal(list[0].prefix, w.adminToken.slice(0, 16));
    assert.equal(list[0].status, 'active');
    const bad = cli(['operator', 'create', '--name', 'dave', '--password-env', 'PW', '--role', 'root'], {
        db: w.db, env: { PW: PASSWORD },
    });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--role: use admin, auditor or approver/);
    const forever = cli(['operator', 'token-create', w.admin.id, '--name', 'x', '--expires-in', 'never'], { db: w.db });
    assert.equal(forever.code, 2);
    assert.match(forever.stderr, /must expire/);
    assert.equal(cli(['operator', 'tokens'], { db: w.db }).json.tokens.length, 2, 'no token was made by the refusals');
});

test('a request carrying a query and every header the endpoint copies is read whole (its copy is sized for all of them)', async () => {
    const r = await req(w.proxy.port, 'POST', `/admin/api/keys?${'q'.repeat(37)}`, {
        headers: { authorization: `Bearer ${w.auditorToken}`, 'content-type': 'application/json', cookie: 'a=b',
            'x-csrf-token': 'c'.repeat(13) },
        body: '{}', agent: false,
    });
    assertError(r, 403, 'AUTH_INSUFFICIENT_PERMISSIONS');
});

test('no credential, a malformed one, or an unknown one: 401 in Core\'s error shape, with the admin headers', async () => {
    for (const headers of [{}, { authorization: 'Bearer nope' }, { authorization: `Bearer blnk_ad_${'0'.repeat(64)}` },
        { authorization: `Basic ${Buffer.from('alice:x').toString('base64')}` }, { cookie: `blnkproxy_admin=${'a'.repeat(64)}` }]) {
        const r = await api('GET', '/keys', { headers });
        assertError(r, 401, 'AUTH_INVALID_BEARER_TOKEN');
        assert.equal(r.headers['www-authenticate'], 'Bearer realm="blnkproxy-admin"');
        assert.equal(r.headers['cache-control'], 'no-store');
        assert.equal(r.headers['x-content-type-options'], 'nosniff');
        assert.equal(r.headers['x-frame-options'], 'DENY');
        assert.match(r.headers['content-security-policy'], /frame-ancestors 'none'/);
    }
    assertError(await api('GET', '/nothing', { token: w.adminToken }), 404, 'GEN_NOT_FOUND');
    assertError(await api('GET', '/keys/', { token: w.adminToken }), 404, 'GEN_NOT_FOUND');
    const put = await api('PUT', '/keys', { token: w.adminToken, body: {} });
    assertError(put, 405, 'GEN_METHOD_NOT_ALLOWED');
    assert.equal(put.headers.allow, 'GET, POST');
    // HEAD is GET without the body, on every readable resource.
    for (const p of ['/keys', '/instances', '/traffic', '/session']) {
        const head = await api('HEAD', p, { token: w.adminToken });
        assert.equal(head.status, 200, `HEAD ${p}`);
        assert.equal(head.text, '');
        assert.equal(head.headers['content-type'], 'application/json');
        assert.ok(Number(head.headers['content-length']) > 2, `HEAD ${p} names the GET's length`);
    }
    const anonHead = await api('HEAD', '/keys', {});
    assert.equal(anonHead.status, 401);
    assert.equal(anonHead.text, '');
});

test('an admin creates a key: it works on /proxy/ at once; revoked, it is refused at once; both audited as the operator', async () => {
    const created = await api('POST', '/keys', {
        token: w.adminToken,
        body: { name: 'payments', scopes: ['proxy:read'], instances: [w.inst.id], expires_in: '30d' },
    });
    assert.equal(created.status, 201, created.text);
    const key = created.json;
    assert.match(key.key, /^blnk_[0-9a-f]{64}$/);
    assert.deepEqual(key.scopes, ['proxy:read']);
    assert.deepEqual(key.instances, [w.inst.id]);
    assert.equal(key.status, 'active');
    assert.equal((await proxyGet(key.key)).status, 200, 'the new key works as soon as the answer arrived');

    const shown = await api('GET', `/keys/${key.id}`, { token: w.adminToken });
    assert.equal(shown.status, 200);
    assert.equal(shown.json.key, undefined, 'the key is shown once, when created');
    assert.equal(shown.json.prefix, key.key.slice(0, 13));
    const listed = await api('GET', '/keys', { token: w.auditorToken });
    assert.ok(listed.json.keys.some((k) => k.id === key.id && k.key === undefined));

    const revoked = await api('POST', `/keys/${key.id}/revoke`, { token: w.adminToken });
    assert.equal(revoked.status, 200, revoked.text);
    assert.equal(revoked.json.status, 'revoked');
    assert.equal((await proxyGet(key.key)).status, 401, 'refused as soon as the revocation answered');
    const again = await api('POST', `/keys/${key.id}/revoke`, { token: w.adminToken });
    assert.equal(again.status, 200, 'revoking twice is harmless');

    const recs = adminRecords().filter((r) => r.resource_id === key.id);
    assert.deepEqual(recs.map((r) => r.action).sort(), ['Key created', 'Key revoked'], 'one record per change');
    for (const r of recs) {
        assert.equal(r.actor_type, 'operator');
        assert.equal(r.actor_id, w.admin.id);
        assert.equal(r.actor_name, 'alice');
        assert.equal(r.client_addr, '127.0.0.1');
        assert.equal(r.category, 'admin');
    }
    const verify = cli(['audit', 'verify'], { db: w.db });
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
});

test('rotate a key (both work during the grace) and change an expiry, through the API', async () => {
    const made = (await api('POST', '/keys', { token: w.adminToken, body: { name: 'rotating', scopes: ['proxy:read'] } })).json;
    const r = await api('POST', `/keys/${made.id}/rotate`, { token: w.adminToken, body: { grace: '1h' } });
    assert.equal(r.status, 201, r.text);
    assert.match(r.json.key, /^blnk_[0-9a-f]{64}$/);
    assert.equal(r.json.replaces, made.id);
    assert.equal(r.json.name, 'rotating');
    assert.match(r.json.replaced_key_expires_at, /^\d{4}-/);
    assert.equal((await proxyGet(made.key)).status, 200, 'the old key works during the grace');
    assert.equal((await proxyGet(r.json.key)).status, 200, 'the new key works at once');
    assertError(await api('POST', `/keys/${made.id}/rotate`, { token: w.adminToken }), 409, 'GEN_CONFLICT');
    assertError(await api('POST', `/keys/${r.json.id}/rotate`, { token: w.adminToken, body: { grace: 'a while' } }), 400,
        'GEN_MALFORMED_REQUEST');
    const recs = adminRecords().filter((x) => x.resource_id === made.id || x.resource_id === r.json.id);
    const rotated = recs.find((x) => x.action === 'Key rotated');
    const created = recs.find((x) => x.action === 'Key created' && x.resource_id === r.json.id);
    assert.ok(rotated.request_id && rotated.request_id === created.request_id, 'one operation id for both records');
    assert.equal(rotated.actor_id, w.admin.id);

    // Rotations of one key at once (two admin threads, each with its own store connection): one
    // wins, the others are told to rotate its successor, and nothing of theirs is left behind.
    const racing = (await api('POST', '/keys', { token: w.adminToken, body: { name: 'racing', scopes: ['proxy:read'] } })).json;
    const keysBefore = (await api('GET', '/keys', { token: w.adminToken })).json.keys.length;
    const rotations = await Promise.all(Array.from({ length: 6 },
        () => api('POST', `/keys/${racing.id}/rotate`, { token: w.adminToken, body: { grace: '1h' } })));
    assert.deepEqual(rotations.map((x) => x.status).sort(), [201, 409, 409, 409, 409, 409], rotations.map((x) => x.text).join('\n'));
    for (const x of rotations.filter((y) => y.status === 409)) {
        assertError(x, 409, 'GEN_CONFLICT');
    }
    assert.equal((await api('GET', '/keys', { token: w.adminToken })).json.keys.length, keysBefore + 1, 'one new key only');
    const winner = rotations.find((x) => x.status === 201).json;
    assert.equal((await api('GET', `/keys/${racing.id}`, { token: w.adminToken })).json.replaced_by, winner.id);
    assert.equal(adminRecords().filter((x) => x.resource_id === racing.id && x.action === 'Key rotated').length, 1);

    const exp = await api('POST', `/keys/${r.json.id}/expire`, { token: w.adminToken, body: { expires_in: '1s' } });
    assert.equal(exp.status, 200, exp.text);
    assert.ok(Date.parse(exp.json.expires_at) - Date.now() <= 2000, exp.json.expires_at);
    await waitFor(async () => (await proxyGet(r.json.key)).status === 401, { timeoutMs: 5000, what: 'the key expired' });
    assertError(await api('POST', `/keys/${r.json.id}/expire`, { token: w.adminToken, body: {} }), 400, 'GEN_MALFORMED_REQUEST');
});

test('where a key or client may be used from, and how fast, as `update` sets them: in force on /proxy/ at once', async () => {
    const made = await api('POST', '/keys', {
        token: w.adminToken,
        body: { name: 'limited', scopes: ['proxy:read'], allow_from: ['10.0.0.0/8', '2001:db8:0::/32'], rate_limit: '1/m', burst: 3 },
    });
    assert.equal(made.status, 201, made.text);
    assert.deepEqual(made.json.allow_from, ['10.0.0.0/8', '2001:db8::/32'], 'stored canonical');
    assert.equal(made.json.rate_limit, '1/m');
    assert.equal(made.json.burst, 3);
    const refused = await proxyGet(made.json.key);
    assert.equal(refused.status, 403);
    assert.equal(refused.json.error_detail.code, 'AUTH_IP_NOT_ALLOWED');

    // Both in one call: two records of one operation, as `key update --allow-from --rate` writes.
    const both = await api('PATCH', `/keys/${made.json.id}`, {
        token: w.adminToken, body: { allow_from: '127.0.0.1, 10.0.0.0/8', rate_limit: '1/m', burst: 2 },
    });
    assert.equal(both.status, 200, both.text);
    assert.deepEqual(both.json.allow_from, ['127.0.0.1/32', '10.0.0.0/8']);
    assert.equal(both.json.burst, 2);
    assert.equal((await proxyGet(made.json.key)).status, 200, 'allowed from 127.0.0.1 now');
    assert.equal((await proxyGet(made.json.key)).status, 200);
    const limited = await proxyGet(made.json.key);
    assert.equal(limited.status, 429, 'a burst of 2');
    assert.equal(limited.json.error_detail.code, 'GEN_RATE_LIMITED');
    const recs = adminRecords().filter((x) => x.resource_id === made.json.id);
    const allowRec = recs.find((x) => x.action === 'Key allow-list changed');
    const rateRec = recs.find((x) => x.action === 'Key rate limit changed');
    assert.ok(allowRec && rateRec && allowRec.request_id === rateRec.request_id, 'one operation id for both records');
    assert.equal(rateRec.actor_id, w.admin.id);

    const lifted = await api('PATCH', `/keys/${made.json.id}`, { token: w.adminToken, body: { rate_limit: '0' } });
    assert.equal(lifted.status, 200, lifted.text);
    assert.equal(lifted.json.rate_limit, '0');
    assert.equal(lifted.json.burst, null);
    assert.equal((await proxyGet(made.json.key)).status, 200, 'no limit now');
    const anyAddr = await api('PATCH', `/keys/${made.json.id}`, { token: w.adminToken, body: { allow_from: 'any', rate_limit: 'default' } });
    assert.equal(anyAddr.status, 200, anyAddr.text);
    assert.equal(anyAddr.json.allow_from, null);
    assert.equal(anyAddr.json.rate_limit, null, 'the server\'s rate_limit.default applies');

    const before = (await api('GET', `/keys/${made.json.id}`, { token: w.adminToken })).json;
    for (const [body, why] of [
        [{}, /send what changes/],
        [{ allow_from: ['10.0.0.1/8'] }, /allow_from/],
        [{ allow_from: ['10.0.0.0/8,192.0.2.0/24'] }, /allow_from/],
        [{ allow_from: [] }, /allow_from/],
        [{ allow_from: Array.from({ length: 65 }, (_, i) => `10.0.${i}.0/24`) }, /allow_from/],
        [{ rate_limit: '5/fortnight' }, /rate_limit/],
        [{ rate_limit: 100 }, /rate_limit/],
        [{ burst: 5 }, /burst goes with rate_limit/],
        [{ rate_limit: '0', burst: 5 }, /burst/],
        [{ rate_limit: '5/s', burst: 0 }, /burst/],
        [{ allow_from: ['127.0.0.1'], rate_limit: 'fast' }, /rate_limit/],
    ]) {
        const bad = await api('PATCH', `/keys/${made.json.id}`, { token: w.adminToken, body });
        assertError(bad, 400, 'GEN_MALFORMED_REQUEST');
        assert.match(bad.json.error, why, JSON.stringify(body));
    }
    // last_used_at is the watcher's, written within a second of the proxied GETs above: it may
    // land between the two reads, and says nothing about what the refused PATCHes did.
    const after = (await api('GET', `/keys/${made.json.id}`, { token: w.adminToken })).json;
    assert.deepEqual({ ...after, last_used_at: null }, { ...before, last_used_at: null }, 'nothing changed');
    assertError(await api('PATCH', '/keys/key_unknown', { token: w.adminToken, body: { rate_limit: '1/s' } }), 404, 'GEN_NOT_FOUND');
    assertError(await api('PUT', `/keys/${made.json.id}`, { token: w.adminToken, body: {} }), 405, 'GEN_METHOD_NOT_ALLOWED');

    // An OAuth client's limits hold for its access tokens.
    const cl = await api('POST', '/clients', {
        token: w.adminToken, body: { name: 'limited-app', scopes: ['proxy:read'], allow_from: ['192.0.2.0/24'] },
    });
    assert.equal(cl.status, 201, cl.text);
    assert.deepEqual(cl.json.allow_from, ['192.0.2.0/24']);
    const getToken = () => token(w.proxy.port, { id: cl.json.id, secret: cl.json.client_secret }, { grant_type: 'client_credentials' });
    assert.equal((await getToken()).status, 401, 'the client is held to its list at the token endpoint too');
    const upd = await api('PATCH', `/clients/${cl.json.id}`, { token: w.adminToken, body: { allow_from: ['127.0.0.0/8'], rate_limit: '1/m', burst: 1 } });
    assert.equal(upd.status, 200, upd.text);
    assert.equal(upd.json.rate_limit, '1/m');
    const tok = await getToken();
    assert.equal(tok.status, 200, tok.text);
    assert.equal((await proxyGet(tok.json.access_token)).status, 200);
    assert.equal((await proxyGet(tok.json.access_token)).status, 429);
    const cacts = adminRecords().filter((x) => x.resource_id === cl.json.id).map((x) => x.action).sort();
    assert.deepEqual(cacts, ['Client allow-list changed', 'Client created', 'Client rate limit changed']);
    assertError(await api('PATCH', `/clients/${cl.json.id}`, { token: w.auditorToken, body: { rate_limit: '0' } }), 403,
        'AUTH_INSUFFICIENT_PERMISSIONS');
});

test('OAuth clients through the API: create (secret once), token works on /proxy/, rotate the secret, expire, revoke', async () => {
    const r = await api('POST', '/clients', {
        token: w.adminToken,
        body: { name: 'machine', scopes: ['proxy:read'], instances: [w.inst.id] },
    });
    assert.equal(r.status, 201, r.text);
    const cl = r.json;
    assert.match(cl.client_secret, /^blnk_cs_[0-9a-f]{64}$/);
    assert.deepEqual(cl.grant_types, ['client_credentials']);
    const tok = await token(w.proxy.port, { id: cl.id, secret: cl.client_secret }, { grant_type: 'client_credentials' });
    assert.equal(tok.status, 200, tok.text);
    assert.equal((await proxyGet(tok.json.access_token)).status, 200);
    const shown = await api('GET', `/clients/${cl.id}`, { token: w.auditorToken });
    assert.equal(shown.json.client_secret, undefined);

    const rot = await api('POST', `/clients/${cl.id}/rotate-secret`, { token: w.adminToken, body: { grace: '1h' } });
    assert.equal(rot.status, 200, rot.text);
    assert.notEqual(rot.json.client_secret, cl.client_secret);
    for (const secret of [cl.client_secret, rot.json.client_secret]) {
        const t = await token(w.proxy.port, { id: cl.id, secret }, { grant_type: 'client_credentials' });
        assert.equal(t.status, 200, 'both secrets work during the grace');
    }

    const web = await api('POST', '/clients', {
        token: w.adminToken,
        body: { name: 'web', scopes: ['proxy:read'], redirect_uris: ['https://app.example/cb', 'https://app.example/cb'] },
    });
    assert.equal(web.status, 201, web.text);
    assert.deepEqual(web.json.redirect_uris, ['https://app.example/cb']);
    assert.deepEqual(web.json.grant_types, ['client_credentials', 'authorization_code', 'refresh_token']);
    for (const [body, why] of [
        [{ name: 'x', scopes: ['proxy:read'], redirect_uris: ['http://app.example/cb'] }, /https/],
        [{ name: 'x', scopes: ['proxy:read'], redirect_uris: ['https://app.example/cb#f'] }, /fragment/],
        [{ name: 'x', scopes: ['proxy:read'], grant_types: ['authorization_code'] }, /redirect URI/],
        [{ name: 'x', scopes: ['proxy:read'], grant_types: ['password'] }, /unknown grant type/],
        [{ name: 'x' }, /scopes/],
    ]) {
        const bad = await api('POST', '/clients', { token: w.adminToken, body });
        assertError(bad, 400, 'GEN_MALFORMED_REQUEST');
        assert.match(bad.json.error, why);
    }

    const exp = await api('POST', `/clients/${web.json.id}/expire`, { token: w.adminToken, body: { expires_in: '30d' } });
    assert.equal(exp.status, 200, exp.text);
    assert.match(exp.json.expires_at, /^\d{4}-/);
    const rev = await api('POST', `/clients/${cl.id}/revoke`, { token: w.adminToken });
    assert.equal(rev.json.status, 'revoked');
    assert.equal((await proxyGet(tok.json.access_token)).status, 401, 'its tokens go with it, at once');
    const acts = adminRecords().filter((x) => x.resource_id === cl.id).map((x) => x.action).sort();
    assert.deepEqual(acts, ['Client created', 'Client revoked', 'Client secret rotated']);
});

test('bad key fields are refused with a reason, and nothing is stored', async () => {
    const before = (await api('GET', '/keys', { token: w.adminToken })).json.keys.length;
    const cases = [
        [{ scopes: ['proxy:read'] }, /name/],
        [{ name: 'x' }, /scopes is required/],
        [{ name: 'x', scopes: ['proxy:admin'] }, /unknown scope/],
        [{ name: 'x', scopes: [] }, /non-empty/],
        [{ name: 'x', scopes: ['*'], instances: ['instance_nope'] }, /no such instance/],
        [{ name: 'x', scopes: ['*'], expires_in: 'soon' }, /expires_in/],
        // A member of the wrong type is named, not blamed on another.
        [{ name: 'x', scopes: ['*'], expires_in: 30 }, /^expires_in must be a JSON string/],
        [{ name: 'x\n', scopes: ['*'] }, /name/],
        // A NUL inside a string: the parser refuses the body (and the fields would be refused too).
        [{ name: 'a\u0000b', scopes: ['*'] }, /JSON object|name/],
        [{ name: 'x', scopes: ['*'], instances: [`${w.inst.id}\u0000`] }, /JSON object|instance ids/],
        [{ name: 'x', scopes: ['*'], instances: [`${w.inst.id},${w.inst.id}`] }, /instance ids/],
    ];
    for (const [body, why] of cases) {
        const r = await api('POST', '/keys', { token: w.adminToken, body });
        assertError(r, 400, 'GEN_MALFORMED_REQUEST');
        assert.match(r.json.error, why);
    }
    assertError(await api('POST', '/keys', { token: w.adminToken, body: '{"name":' }), 400, 'GEN_MALFORMED_REQUEST');
    assertError(await api('POST', '/keys', { token: w.adminToken, body: '[1]' }), 400, 'GEN_MALFORMED_REQUEST');
    assertError(await api('POST', '/keys', { token: w.adminToken, body: '{"name":"a","name":"b","scopes":["*"]}' }), 400,
        'GEN_MALFORMED_REQUEST');
    const form = await api('POST', '/keys', {
        token: w.adminToken, body: 'name=x&scopes=*', headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    assertError(form, 415, 'GEN_MALFORMED_REQUEST');
    assert.equal((await api('GET', '/keys', { token: w.adminToken })).json.keys.length, before);
});

test('instances: listed without their secret; disabled and enabled through the API, in force on /proxy/ at once', async () => {
    const key = ok(['key', 'create', '--name', 'inst-test', '--scopes', '*']).key;
    const list = await api('GET', '/instances', { token: w.auditorToken });
    assert.equal(list.status, 200);
    const inst = list.json.instances.find((i) => i.id === w.inst.id);
    assert.equal(inst.has_secret_key, true);
    assert.ok(!list.text.includes('admin_api_core_secret'), 'the Core secret is never in an answer');
    const off = await api('POST', `/instances/${w.inst.id}/disable`, { token: w.adminToken });
    assert.equal(off.status, 200, off.text);
    assert.equal(off.json.enabled, false);
    assert.notEqual((await proxyGet(key)).status, 200, 'a disabled instance is refused at once');
    const on = await api('POST', `/instances/${w.inst.id}/enable`, { token: w.adminToken });
    assert.equal(on.json.enabled, true);
    assert.equal((await proxyGet(key)).status, 200);
    const acts = adminRecords().filter((r) => r.resource_id === w.inst.id && r.actor_type === 'operator').map((r) => r.action);
    assert.deepEqual(acts.sort(), ['Instance disabled', 'Instance enabled']);
    assertError(await api('GET', '/instances/instance_00000000000000000000000000', { token: w.adminToken }), 404, 'GEN_NOT_FOUND');
});

test('an admin adds an instance with its Core secret: entered once, never shown, sent to Core; bad fields refused', async () => {
    const secret = `added_secret_${Date.now()}`;
    const r = await api('POST', '/instances', { token: w.adminToken, body: { name: 'second', url: `${w.core.url}/`, secret_key: secret } });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.has_secret_key, true);
    assert.equal(r.json.url, w.core.url, 'normalised: no trailing /');
    assert.ok(!r.text.includes(secret));
    const shown = await api('GET', `/instances/${r.json.id}`, { token: w.adminToken });
    assert.ok(!shown.text.includes(secret));
    const key = await api('POST', '/keys', { token: w.adminToken, body: { name: 'second-key', scopes: ['*'], instances: [r.json.id] } });
    w.core.reset();
    assert.equal((await proxyGet(key.json.key, r.json)).status, 200);
    assert.equal(w.core.requests.at(-1).headers['x-blnk-key'], secret, 'Core gets the secret entered in the API');
    assert.equal((await proxyGet(key.json.key)).status, 403, 'the key is limited to the new instance');
    assertError(await api('POST', '/instances', { token: w.adminToken, body: { name: 'second', url: w.core.url } }), 409, 'GEN_CONFLICT');
    for (const [body, why] of [
        [{ name: 'x', url: 'ftp://core' }, /http/],
        [{ name: 'x', url: 'http://user@core' }, /user info/],
        [{ name: 'x', url: 'http://core?x=1' }, /query/],
        [{ name: 'x' }, /url is required/],
        [{ name: 'x', url: 'http://core', secret_key: 'has space' }, /visible ASCII/],
        [{ url: 'http://core' }, /name/],
    ]) {
        const bad = await api('POST', '/instances', { token: w.adminToken, body });
        assertError(bad, 400, 'GEN_MALFORMED_REQUEST');
        assert.match(bad.json.error, why);
    }
    const rec = adminRecords().find((x) => x.resource_id === r.json.id && x.action === 'Instance added');
    assert.equal(rec.actor_id, w.admin.id);
    assert.equal(rec.instance_id, r.json.id);
});

test('instances: update (name, URL, secret), check the connection to Core, remove', async () => {
    const made = (await api('POST', '/instances', { token: w.adminToken, body: { name: 'third', url: 'http://127.0.0.1:9' } })).json;
    const down = await api('POST', `/instances/${made.id}/check`, { token: w.adminToken });
    assert.equal(down.status, 200, down.text);
    assert.equal(down.json.healthy, false);
    assert.match(down.json.problem, /refused|reached/);
    const up = await api('PATCH', `/instances/${made.id}`, {
        token: w.adminToken, body: { name: 'third-renamed', url: w.core.url, secret_key: 'third_secret' },
    });
    assert.equal(up.status, 200, up.text);
    assert.equal(up.json.name, 'third-renamed');
    assert.equal(up.json.has_secret_key, true);
    w.core.reset();
    const ok = await api('POST', `/instances/${made.id}/check`, { token: w.adminToken });
    assert.equal(ok.json.healthy, true, ok.text);
    assert.equal(ok.json.status, 200);
    assert.equal(w.core.requests.at(-1).headers['x-blnk-key'], 'third_secret', 'the check sends the instance\'s secret');
    assert.ok(!ok.text.includes('third_secret'));
    const cleared = await api('PATCH', `/instances/${made.id}`, { token: w.adminToken, body: { secret_key: null } });
    assert.equal(cleared.json.has_secret_key, false);
    assertError(await api('PATCH', `/instances/${made.id}`, { token: w.adminToken, body: {} }), 400, 'GEN_MALFORMED_REQUEST');
    // The stored secret never follows the instance to another host.
    const moved = await api('PATCH', `/instances/${made.id}`, { token: w.adminToken, body: { url: 'http://127.0.0.1:9' } });
    assertError(moved, 400, 'GEN_MALFORMED_REQUEST');
    assert.match(moved.json.error, /secret_key/);
    assertError(await api('PATCH', `/instances/${made.id}`, { token: w.adminToken, body: { url: 'gopher://x' } }), 400,
        'GEN_MALFORMED_REQUEST');
    const del = await api('DELETE', `/instances/${made.id}`, { token: w.adminToken });
    assert.equal(del.status, 204);
    assertError(await api('GET', `/instances/${made.id}`, { token: w.adminToken }), 404, 'GEN_NOT_FOUND');
    const acts = adminRecords().filter((x) => x.resource_id === made.id).map((x) => x.action).sort();
    assert.deepEqual(acts, ['Instance added', 'Instance removed', 'Instance updated', 'Instance updated']);
});

test('instances: a CA file to verify Core with, set and cleared through the API as `instance update --ca-file` does', async () => {
    const dir = tmpDir();
    makeCertificates(dir, { ca: 'admin api test CA' });
    const core = https.createServer(
        { key: fs.readFileSync(path.join(dir, 'core.key')), cert: fs.readFileSync(path.join(dir, 'core.pem')) },
        (rq, rs) => {
            rs.writeHead(200, { 'content-type': 'application/json' });
            rs.end('{"status":"UP"}');
        });
    await new Promise((r) => core.listen(0, '127.0.0.1', r));
    try {
        const url = `https://127.0.0.1:${core.address().port}`;
        const caFile = path.join(dir, 'ca.pem');
        const made = await api('POST', '/instances', { token: w.adminToken, body: { name: 'tls-core', url, secret_key: 's' } });
        assert.equal(made.status, 201, made.text);
        assert.equal(made.json.ca_file, null);
        const untrusted = await api('POST', `/instances/${made.json.id}/check`, { token: w.adminToken });
        assert.equal(untrusted.json.healthy, false, 'a certificate from an unknown CA is refused');
        const set = await api('PATCH', `/instances/${made.json.id}`, { token: w.adminToken, body: { ca_file: caFile } });
        assert.equal(set.status, 200, set.text);
        assert.equal(set.json.ca_file, fs.realpathSync(caFile));
        const trusted = await api('POST', `/instances/${made.json.id}/check`, { token: w.adminToken });
        assert.equal(trusted.json.healthy, true, trusted.text);
        const clearedCa = await api('PATCH', `/instances/${made.json.id}`, { token: w.adminToken, body: { ca_file: null } });
        assert.equal(clearedCa.json.ca_file, null);
        assert.equal((await api('POST', `/instances/${made.json.id}/check`, { token: w.adminToken })).json.healthy, false,
            'the system CAs again');
        const withCa = await api('POST', '/instances', { token: w.adminToken, body: { name: 'tls-core-2', url, ca_file: caFile } });
        assert.equal(withCa.status, 201, withCa.text);
        assert.equal(withCa.json.ca_file, fs.realpathSync(caFile));
        fs.writeFileSync(path.join(dir, 'words.pem'), 'not a certificate');
        for (const ca of ['ca.pem', path.join(dir, 'missing.pem'), dir, '', path.join(dir, 'words.pem'), path.join(dir, 'core.key'), 5, true]) {
            const bad = await api('PATCH', `/instances/${made.json.id}`, { token: w.adminToken, body: { ca_file: ca } });
            assertError(bad, 400, 'GEN_MALFORMED_REQUEST');
            assert.match(bad.json.error, /ca_file/);
        }
        assert.equal((await api('GET', `/instances/${made.json.id}`, { token: w.adminToken })).json.ca_file, null, 'unchanged');
        const acts = adminRecords().filter((x) => x.resource_id === made.json.id).map((x) => x.action);
        assert.deepEqual(acts.sort(), ['Instance added', 'Instance updated', 'Instance updated']);
        for (const id of [made.json.id, withCa.json.id]) {
            assert.equal((await api('DELETE', `/instances/${id}`, { token: w.adminToken })).status, 204);
        }
    } finally {
        core.closeAllConnections();
        await new Promise((r) => core.close(r));
    }
});

test('the admin API has threads of its own: slow calls never hold /oauth/token, and a full queue answers 429 in Core\'s shape', async () => {
    // A "Core" that accepts connections and never answers: each check holds an admin thread.
    const held = new Set();
    const silent = net.createServer((sock) => {
        held.add(sock);
        sock.on('error', () => {});
    });
    await new Promise((r) => silent.listen(0, '127.0.0.1', r));
    const inst = (await api('POST', '/instances', {
        token: w.adminToken, body: { name: 'silent', url: `http://127.0.0.1:${silent.address().port}`, secret_key: 's' },
    })).json;
    const cl = await api('POST', '/clients', { token: w.adminToken, body: { name: 'while-busy', scopes: ['proxy:read'] } });
    let settled = 0;
    const checks = [];
    try {
        for (let i = 0; i < 40; i++) {
            checks.push(api('POST', `/instances/${inst.id}/check`, { token: w.adminToken }).then((r) => {
                settled++;
                return r;
            }));
        }
        await waitFor(() => held.size >= 2, { timeoutMs: 10000, what: 'both admin threads checking the silent Core' });
        // 2 running + 32 waiting (fewer running when the calls arrive before a thread takes one):
        // the rest are refused at once, in Core's error shape.
        const { value: refused } = await waitFor(async () => {
            const done = (await Promise.all(checks.map((p) => Promise.race([p, Promise.resolve(null)])))).filter(Boolean);
            return done.length >= 6 ? done : null;
        }, { timeoutMs: 10000, what: 'the calls beyond the queue answered' });
        for (const r of refused) {
            assertError(r, 429, 'GEN_RATE_LIMITED');
            assert.equal(r.headers['retry-after'], '1');
        }
        const t = await token(w.proxy.port, { id: cl.json.id, secret: cl.json.client_secret }, { grant_type: 'client_credentials' });
        assert.equal(t.status, 200, t.text);
        // A call with no credential, or a malformed one, is answered on the loop: it takes no
        // place in the full queue (else anyone could keep the operators out by filling it).
        for (const headers of [{}, { authorization: 'Bearer nope' }, { cookie: 'blnkproxy_admin=short' }]) {
            for (const [method, p] of [['GET', '/instances'], ['GET', '/session'], ['DELETE', '/session']]) {
                const anon = await api(method, p, { headers });
                assertError(anon, 401, 'AUTH_INVALID_BEARER_TOKEN');
            }
        }
        assert.equal(held.size, 2, 'the checks still hold both admin threads');
        assert.equal(settled, refused.length, 'no check had finished when the token was issued');
    } finally {
        for (const sock of held) {
            sock.destroy();
        }
        silent.close();
    }
    const results = await Promise.all(checks);
    const busy = results.filter((r) => r.status === 429).length;
    assert.ok(busy >= 6 && busy <= 8, `${busy} refused: 40 calls, 2 running, 32 waiting`);
    assert.equal(results.filter((r) => r.status === 200 && r.json.healthy === false).length, 40 - busy,
        'every call taken ends, as a failed check');
    assert.equal((await api('DELETE', `/instances/${inst.id}`, { token: w.adminToken })).status, 204);
});

test('operators through the API (admins only): create, role, password, disable, tokens; nobody can lock themselves out', async () => {
    const r = await api('POST', '/operators', { token: w.adminToken, body: { name: 'erin', password: 'erin password 1', role: 'auditor' } });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.role, 'auditor');
    assert.ok(!r.text.includes('argon2') && !r.text.includes('erin password'));
    const s = await signIn('erin', 'erin password 1');
    assert.equal(s.r.status, 200);
    assertError(await api('POST', '/operators', { token: w.adminToken, body: { name: 'erin', password: 'x'.repeat(10) } }), 409, 'GEN_CONFLICT');
    assertError(await api('POST', '/operators', { token: w.adminToken, body: { name: 'frank', password: 'short' } }), 400, 'GEN_MALFORMED_REQUEST');
    assertError(await api('POST', '/operators', { token: w.adminToken, body: { name: 'frank', password: 'long enough', role: 'root' } }), 400,
        'GEN_MALFORMED_REQUEST');

    const pw = await api('POST', `/operators/${r.json.id}/password`, { token: w.adminToken, body: { password: 'erin password 2' } });
    assert.equal(pw.status, 200, pw.text);
    assertError(await api('GET', '/keys', { session: s }), 401, 'AUTH_INVALID_BEARER_TOKEN');
    const role = await api('POST', `/operators/${r.json.id}/role`, { token: w.adminToken, body: { role: 'admin' } });
    assert.equal(role.json.role, 'admin');

    // A token acts as its operator: only they make one (records made with it name them).
    const forErin = await api('POST', `/operators/${r.json.id}/tokens`, { token: w.adminToken, body: { name: 'erin-ci', expires_in: '7d' } });
    assertError(forErin, 403, 'AUTH_INSUFFICIENT_PERMISSIONS');
    assert.match(forErin.json.error, /only they can make one/);
    const erin = await signIn('erin', 'erin password 2');
    assert.equal(erin.r.status, 200);
    const t = await api('POST', `/operators/${r.json.id}/tokens`, { session: erin, body: { name: 'erin-ci', expires_in: '7d' } });
    assert.equal(t.status, 201, t.text);
    assert.match(t.json.token, /^blnk_ad_[0-9a-f]{64}$/);
    assert.equal((await api('GET', '/operators', { token: t.json.token })).status, 200, 'the token acts as erin (admin)');
    const listed = await api('GET', `/operators/${r.json.id}/tokens`, { token: w.adminToken });
    assert.deepEqual(listed.json.tokens.map((x) => [x.id, x.status, x.token]), [[t.json.id, 'active', undefined]]);
    const everyone = (await api('GET', '/operators/tokens', { token: w.adminToken })).json.tokens;
    assert.deepEqual(everyone.map((x) => x.id).sort(), ok(['operator', 'tokens']).tokens.map((x) => x.id).sort(),
        'everyone\'s, as `operator tokens` lists them');
    assert.ok(everyone.some((x) => x.operator_id === r.json.id) && everyone.some((x) => x.operator_id === w.admin.id));
    assertError(await api('GET', '/operators/tokens', { token: w.auditorToken }), 403, 'AUTH_INSUFFICIENT_PERMISSIONS');
    assertError(await api('POST', `/operators/${r.json.id}/tokens`, { session: erin, body: { name: 'x', expires_in: '400d' } }), 400,
        'GEN_MALFORMED_REQUEST');

    assertError(await api('POST', `/operators/${r.json.id}/disable`, { token: t.json.token }), 409, 'GEN_CONFLICT');
    assertError(await api('POST', `/operators/${r.json.id}/role`, { token: t.json.token, body: { role: 'auditor' } }), 409, 'GEN_CONFLICT');
    const off = await api('POST', `/operators/${r.json.id}/disable`, { token: w.adminToken });
    assert.equal(off.json.status, 'disabled');
    assertError(await api('GET', '/keys', { token: t.json.token }), 401, 'AUTH_INVALID_BEARER_TOKEN');
    await api('POST', `/operators/${r.json.id}/enable`, { token: w.adminToken });
    const rev = await api('POST', `/operators/${r.json.id}/tokens/${t.json.id}/revoke`, { token: w.adminToken });
    assert.equal(rev.json.status, 'revoked');
    assertError(await api('GET', '/keys', { token: t.json.token }), 401, 'AUTH_INVALID_BEARER_TOKEN');
    assertError(await api('POST', `/operators/${w.admin.id}/tokens/${t.json.id}/revoke`, { token: w.adminToken }), 404, 'GEN_NOT_FOUND');
    const acts = adminRecords().filter((x) => x.resource_id === r.json.id && x.actor_type === 'operator').map((x) => x.action).sort();
    assert.deepEqual(acts, ['Operator created', 'Operator disabled', 'Operator enabled', 'Operator password changed', 'Operator role changed',
        'Operator signed in', 'Operator signed in']);
    for (const m of ['POST', 'GET']) {
        assertError(await api(m, '/operators', { token: w.auditorToken, body: m === 'POST' ? { name: 'z', password: 'zzzzzzzzzz' } : undefined }), 403,
            'AUTH_INSUFFICIENT_PERMISSIONS');
    }
});

test('audit verify through the API: intact, then a row edited in the database is found', async () => {
    const ok = await api('GET', '/audit/verify', { token: w.auditorToken });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.intact, true, ok.text);
    assert.ok(ok.json.records > 10);
    assert.equal(ok.json.first_break, null);
    const seq = Number(sql(w.db, "SELECT max(seq) FROM audit_log WHERE category = 'admin'"));
    const action = sql(w.db, `SELECT action FROM audit_log WHERE seq = ${seq}`).trim();
    sql(w.db, `UPDATE audit_log SET action = 'Key deleted' WHERE seq = ${seq}`);
    const broken = await api('GET', '/audit/verify', { token: w.auditorToken });
    assert.equal(broken.json.intact, false);
    assert.match(broken.json.first_break, /hash/);
    sql(w.db, `UPDATE audit_log SET action = '${action}' WHERE seq = ${seq}`);
    assert.equal((await api('GET', '/audit/verify', { token: w.auditorToken })).json.intact, true, 'intact again');
});

test('an auditor reads the lists and the audit log; the server refuses every change and the operators list', async () => {
    for (const p of ['/instances', '/keys', '/clients', '/audit?category=admin&limit=5']) {
        const r = await api('GET', p, { token: w.auditorToken });
        assert.equal(r.status, 200, `${p}: ${r.text}`);
    }
    const keysBefore = (await api('GET', '/keys', { token: w.auditorToken })).json.keys;
    const someKey = keysBefore.find((k) => k.status === 'active');
    const attempts = [
        ['POST', '/keys', { name: 'sneaky', scopes: ['*'] }],
        ['POST', `/keys/${someKey.id}/revoke`, undefined],
        ['POST', `/instances/${w.inst.id}/disable`, undefined],
        ['POST', '/clients/client_x/revoke', undefined],
        ['POST', '/instances', { name: 'sneaky', url: 'http://127.0.0.1:1' }],
        ['POST', '/clients', { name: 'sneaky', scopes: ['*'] }],
        ['POST', `/keys/${someKey.id}/rotate`, undefined],
        ['POST', `/keys/${someKey.id}/expire`, { expires_in: '1s' }],
        ['PATCH', `/keys/${someKey.id}`, { rate_limit: '0' }],
        ['PATCH', `/instances/${w.inst.id}`, { ca_file: null }],
    ];
    for (const [method, p, body] of attempts) {
        const r = await api(method, p, { token: w.auditorToken, body });
        assertError(r, 403, 'AUTH_INSUFFICIENT_PERMISSIONS');
        assert.match(r.json.error, /auditor/);
    }
    assertError(await api('GET', '/operators', { token: w.auditorToken }), 403, 'AUTH_INSUFFICIENT_PERMISSIONS');
    const keysAfter = (await api('GET', '/keys', { token: w.auditorToken })).json.keys;
    assert.deepEqual(keysAfter, keysBefore, 'nothing changed');
    assert.equal((await api('GET', `/instances/${w.inst.id}`, { token: w.auditorToken })).json.enabled, true);

    const ops = await api('GET', '/operators', { token: w.adminToken });
    assert.deepEqual(ops.json.operators.slice(0, 3).map((o) => [o.name, o.role]), [['alice', 'admin'], ['bob', 'auditor'], ['carol', 'approver']]);
    assert.ok(!ops.text.includes('argon2'), 'never a password hash');
});

test('the audit log through the API: filters by category, action, credential and status', async () => {
    const all = await api('GET', '/audit?category=admin&limit=1000', { token: w.auditorToken });
    assert.equal(all.status, 200);
    assert.ok(all.json.records.every((r) => r.category === 'admin'));
    const created = await api('GET', `/audit?category=admin&action=${encodeURIComponent('Key created')}`, { token: w.auditorToken });
    assert.ok(created.json.records.length >= 2);
    assert.ok(created.json.records.every((r) => r.action === 'Key created'));
    const byAlice = await api('GET', `/audit?credential=${w.admin.id}&limit=2`, { token: w.auditorToken });
    assert.equal(byAlice.json.records.length, 2);
    assert.ok(byAlice.json.records.every((r) => r.actor_id === w.admin.id));
    assert.ok(byAlice.json.records[0].seq > byAlice.json.records[1].seq, 'newest first');
    const newer = await api('GET', `/audit?after_seq=${byAlice.json.records[0].seq}&credential=${w.admin.id}`, { token: w.auditorToken });
    assert.equal(newer.json.records.length, 0, 'after_seq: nothing newer yet');
    assert.match(byAlice.json.records[0].hash, /^[0-9a-f]{64}$/, 'records carry their place in the trail');
    for (const q of ['limit=0', 'limit=5000', 'status=77', 'since=yesterday', 'action=%0a']) {
        assertError(await api('GET', `/audit?${q}`, { token: w.auditorToken }), 400, 'GEN_MALFORMED_REQUEST');
    }
});

test('console sessions: sign in, HttpOnly SameSite=Strict cookie, CSRF token on writes, sign out', async () => {
    const bad = await signIn('alice', 'wrong password');
    assertError(bad.r, 401, 'AUTH_INVALID_CREDENTIALS');
    assertError((await signIn('nobody')).r, 401, 'AUTH_INVALID_CREDENTIALS');
    const s = await signIn('alice');
    assert.equal(s.r.status, 200, s.r.text);
    const set = s.r.headers['set-cookie'][0];
    assert.match(set, /^blnkproxy_admin=[0-9a-f]{64}; Path=\/admin; Max-Age=\d+; HttpOnly; SameSite=Strict$/);
    assert.deepEqual(s.r.json.operator, { id: w.admin.id, name: 'alice', role: 'admin' });
    assert.match(s.csrf, /^[0-9a-f]{64}$/);

    const me = await api('GET', '/session', { session: { cookie: s.cookie } });
    assert.equal(me.json.via, 'session');
    assert.equal(me.json.csrf_token, s.csrf, 'a reloaded console gets its CSRF token again');

    const noCsrf = await api('POST', '/keys', { session: { cookie: s.cookie }, body: { name: 'c', scopes: ['*'] } });
    assertError(noCsrf, 403, 'AUTH_CSRF_FAILED');
    const wrongCsrf = await api('POST', '/keys', { session: { cookie: s.cookie, csrf: 'f'.repeat(64) }, body: { name: 'c', scopes: ['*'] } });
    assertError(wrongCsrf, 403, 'AUTH_CSRF_FAILED');
    const other = await signIn('bob');
    const crossCsrf = await api('POST', '/keys', { session: { cookie: s.cookie, csrf: other.csrf }, body: { name: 'c', scopes: ['*'] } });
    assertError(crossCsrf, 403, 'AUTH_CSRF_FAILED');
    const made = await api('POST', '/keys', { session: s, body: { name: 'from-console', scopes: ['proxy:read'] } });
    assert.equal(made.status, 201, made.text);
    assert.equal((await proxyGet(made.json.key)).status, 200);

    const signedIn = adminRecords().filter((r) => r.action === 'Operator signed in' && r.actor_id === w.admin.id);
    assert.ok(signedIn.length >= 1, 'sign-ins are in the audit log');

    const out = await api('DELETE', '/session', { session: s });
    assert.equal(out.status, 204);
    assert.match(out.headers['set-cookie'][0], /^blnkproxy_admin=; Path=\/admin; Max-Age=0/);
    assertError(await api('GET', '/keys', { session: { cookie: s.cookie } }), 401, 'AUTH_INVALID_BEARER_TOKEN');
    const stale = await api('POST', '/keys', { session: s, body: { name: 'c', scopes: ['*'] } });
    assertError(stale, 401, 'AUTH_INVALID_BEARER_TOKEN');
});

test('an operator holds at most 10 console sessions: signing in again ends the oldest', async () => {
    const sessions = [];
    for (let i = 0; i < 12; i++) {
        const s = await signIn('alice');
        assert.equal(s.r.status, 200, s.r.text);
        sessions.push(s);
    }
    const rows = Number(sql(w.db, `SELECT count(*) FROM admin_tokens WHERE kind = 'session' AND operator_id = '${w.admin.id}'`));
    assert.equal(rows, 10);
    assertError(await api('GET', '/keys', { session: sessions[0] }), 401, 'AUTH_INVALID_BEARER_TOKEN');
    assertError(await api('GET', '/keys', { session: sessions[1] }), 401, 'AUTH_INVALID_BEARER_TOKEN');
    assert.equal((await api('GET', '/keys', { session: sessions[2] })).status, 200);
    assert.equal((await api('GET', '/keys', { session: sessions[11] })).status, 200);
});

test('an approver is refused by the admin API; disabling, a new role or a new password ends sessions; revoked tokens fail', async () => {
    assertError((await signIn('carol')).r, 403, 'AUTH_INSUFFICIENT_PERMISSIONS');
    const carolToken = adminToken(w.approver, 'carol');
    assertError(await api('GET', '/keys', { token: carolToken }), 403, 'AUTH_INSUFFICIENT_PERMISSIONS');
    ok(['operator', 'role', w.approver.id, 'auditor']);
    assert.equal((await api('GET', '/keys', { token: carolToken })).status, 200, 'a token acts with the role of the moment');

    const s = await signIn('carol');
    assert.equal(s.r.status, 200);
    ok(['operator', 'role', w.approver.id, 'admin']);
    assertError(await api('GET', '/keys', { session: s }), 401, 'AUTH_INVALID_BEARER_TOKEN');

    const s2 = await signIn('carol');
    assert.equal(s2.r.json.operator.role, 'admin');
    ok(['operator', 'disable', w.approver.id]);
    assertError(await api('GET', '/keys', { session: s2 }), 401, 'AUTH_INVALID_BEARER_TOKEN');
    assertError(await api('GET', '/keys', { token: carolToken }), 401, 'AUTH_INVALID_BEARER_TOKEN');
    ok(['operator', 'enable', w.approver.id]);
    assert.equal((await api('GET', '/keys', { token: carolToken })).status, 200);

    const id = ok(['operator', 'tokens', w.approver.id]).tokens[0].id;
    const r = ok(['operator', 'token-revoke', id]);
    assert.equal(r.status, 'revoked');
    assertError(await api('GET', '/keys', { token: carolToken }), 401, 'AUTH_INVALID_BEARER_TOKEN');
    const acts = adminRecords().filter((x) => x.resource_id === id).map((x) => x.action);
    assert.deepEqual(acts.sort(), ['Admin token created', 'Admin token revoked']);
});

test('the authorize page: an admin may approve an app, an auditor may not sign in there (approving is a change)', async () => {
    const redirect = 'https://app.example/cb';
    const web = createClient(w.db, ['--name', 'web', '--scopes', 'proxy:read', '--redirect-uri', redirect]);
    const code = await authorizeCode(w.proxy.port, { client: web, operator: { name: 'alice', password: PASSWORD }, redirect });
    assert.ok(code.code, 'an admin approved the app');
    const q = {
        response_type: 'code', client_id: web.id, redirect_uri: redirect, state: 's', scope: 'proxy:read',
        code_challenge: pkcePair().challenge, code_challenge_method: 'S256',
    };
    const page = await req(w.proxy.port, 'GET', `/oauth/authorize?${new URLSearchParams(q)}`, { agent: false });
    assert.equal(page.status, 200, page.text);
    const cookie = page.headers['set-cookie'][0].split(';')[0];
    const csrf = page.text.match(/name="csrf" value="([0-9a-f]{64})"/)[1];
    const login = await req(w.proxy.port, 'POST', '/oauth/authorize', {
        headers: { ...FORM, cookie },
        body: new URLSearchParams({ ...q, csrf, action: 'login', name: 'bob', password: PASSWORD }).toString(),
        agent: false,
    });
    assert.equal(login.status, 401, 'an auditor cannot approve apps');

    // An operator signed in on the authorize page and then demoted cannot approve with that session.
    const dana = operator('dana', 'admin');
    const page2 = await req(w.proxy.port, 'GET', `/oauth/authorize?${new URLSearchParams(q)}`, { agent: false });
    const login2 = await req(w.proxy.port, 'POST', '/oauth/authorize', {
        headers: { ...FORM, cookie: page2.headers['set-cookie'][0].split(';')[0] },
        body: new URLSearchParams({ ...q, csrf: page2.text.match(/name="csrf" value="([0-9a-f]{64})"/)[1], action: 'login',
            name: 'dana', password: PASSWORD }).toString(),
        agent: false,
    });
    assert.equal(login2.status, 200, login2.text);
    const cookie2 = login2.headers['set-cookie'][0].split(';')[0];
    const csrf2 = login2.text.match(/name="csrf" value="([0-9a-f]{64})"/)[1];
    assert.equal((await api('POST', `/operators/${dana.id}/role`, { token: w.adminToken, body: { role: 'auditor' } })).status, 200);
    const approve = await req(w.proxy.port, 'POST', '/oauth/authorize', {
        headers: { ...FORM, cookie: cookie2 },
        body: new URLSearchParams({ ...q, csrf: csrf2, action: 'approve' }).toString(),
        agent: false,
    });
    assert.notEqual(approve.status, 302, 'no code for a demoted operator');
    assert.ok(!String(approve.headers.location || '').includes('code='));
    // The admin API answers the client list with it.
    const clients = await api('GET', '/clients', { token: w.auditorToken });
    assert.ok(clients.json.clients.some((c) => c.id === web.id && c.redirect_uris[0] === redirect));
    assert.ok(!clients.text.includes(web.secret), 'never a client secret');
});

// Last: it uses up the sign-in attempts of 127.0.0.1 for this server.
test('sign-in is throttled like the authorize page: after 5 failures, 429 with Retry-After, even with the right password', async () => {
    // The peer's count already holds the failures of the tests above (three): at most 5 in all.
    let r;
    let failures = 0;
    for (;;) {
        r = (await signIn('bob', `wrong ${failures}`)).r;
        if (r.status === 429) {
            break;
        }
        assertError(r, 401, 'AUTH_INVALID_CREDENTIALS');
        failures++;
        assert.ok(failures <= 5, 'throttled after at most 5 failures');
    }
    assert.ok(failures >= 1, 'a failure is answered 401 before the limit');
    r = (await signIn('bob')).r;
    assertError(r, 429, 'GEN_RATE_LIMITED');
    assert.equal(r.headers['retry-after'], '900');
    assert.equal(r.headers['set-cookie'], undefined);
});

test('admin.enabled false: the admin API and the console answer 404 in Core\'s shape; the proxy and OAuth are unchanged', async () => {
    const off = await startProxy({ db: w.db, args: ['--admin-enabled', 'false'] });
    try {
        for (const p of ['/admin/api/keys', '/admin/api/session', '/admin/', '/admin', '/admin/console.js']) {
            const r = await req(off.port, 'GET', p, { headers: bearer(w.adminToken), agent: false });
            assertError(r, 404, 'GEN_NOT_FOUND');
        }
        const signin = await req(off.port, 'POST', '/admin/api/session',
            { headers: { 'content-type': 'application/json' }, body: { name: 'alice', password: PASSWORD }, agent: false });
        assert.equal(signin.status, 404);
        assert.equal(signin.headers['set-cookie'], undefined);
        const key = (await api('POST', '/keys', { token: w.adminToken, body: { name: 'off-node', scopes: ['proxy:read'] } })).json;
        await waitFor(async () => (await req(off.port, 'GET', `/proxy/ledgers?instance_id=${w.inst.id}`,
            { headers: bearer(key.key), agent: false })).status === 200, { timeoutMs: 10000, what: 'the key on the other node' });
        assert.equal((await req(off.port, 'GET', '/.well-known/oauth-authorization-server', { agent: false })).status, 200);
    } finally {
        await off.stop();
    }
});

// Issue 3 item 6: OAuth access tokens on /proxy/* behave like API keys (scopes, the client's
// instance restriction), are usable the moment /oauth/token returns them, are honoured by every
// server process sharing the store, and are refused with 401 AUTH_INVALID_BEARER_TOKEN within
// 2 s of expiry, revocation (RFC 7009) or revocation of their client. Refresh tokens and
// malformed tokens never authorise a proxied request, and no token or secret reaches a log.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, test } from 'node:test';

import { startFakeCore } from './lib/fake_core.mjs';
import {
    assertError,
    bearer,
    cli,
    makeInstance,
    randomHex,
    req,
    startProxy,
    tmpDb,
    waitFor,
    WWW_INVALID,
    wwwScope,
} from './lib/harness.mjs';

const INVALID_TOKEN = 'AUTH_INVALID_BEARER_TOKEN';
const FORM = 'application/x-www-form-urlencoded';
const REDIRECT = 'http://127.0.0.1:9/callback';

let core;
let db;
let A;
let B;
let proxy;
let proxy2;
let shortTtl;
const servers = [];
// Every secret the tests saw (client secrets, access and refresh tokens, codes, passwords),
// checked against the server logs at the end.
const secrets = [];

before(async () => {
    core = await startFakeCore();
    db = tmpDb();
    A = makeInstance(db, core.url, { secret: `secret_a_${randomHex(8)}`, name: 'a' });
    B = makeInstance(db, core.url, { secret: `secret_b_${randomHex(8)}`, name: 'b' });
    proxy = await startProxy({ db });
    servers.push(proxy);
});

after(async () => {
    for (const s of servers) {
        await s.stop();
    }
    await core?.close();
});

const P = (corePath, id = A.id) => `/proxy${corePath}?instance_id=${id}`;
const JSONH = { 'content-type': 'application/json' };

function createClient({ scopes = ['*'], instances, expiresIn, redirectUris = [], name } = {}) {
    const args = ['client', 'create', '--name', name ?? `app-${randomHex(3)}`, '--scopes', scopes.join(',')];
    for (const u of redirectUris) {
        args.push('--redirect-uri', u);
    }
    if (instances !== undefined) {
        args.push('--instances', instances.join(','));
    }
    if (expiresIn !== undefined) {
        args.push('--expires-in', expiresIn);
    }
    const r = cli(args, { db });
    assert.equal(r.code, 0, `client create failed (${r.code}): ${r.stderr}`);
    assert.ok(r.json, `client create: stdout is not JSON: ${r.stdout}`);
    assert.match(r.json.client_id, /^client_[0-9A-HJKMNP-TV-Z]{26}$/);
    assert.match(r.json.client_secret, /^blnk_cs_[0-9a-f]{64}$/);
    secrets.push(r.json.client_secret);
    return { id: r.json.client_id, secret: r.json.client_secret, json: r.json };
}

// RFC 6749 §2.3.1: id and secret are form-urlencoded before they go into Basic.
function basic(client) {
    const enc = (s) => encodeURIComponent(s).replace(/%20/g, '+');
    return `Basic ${Buffer.from(`${enc(client.id)}:${enc(client.secret)}`).toString('base64')}`;
}

async function oauthPost(port, path, client, params) {
    return req(port, 'POST', path, {
        headers: { authorization: basic(client), 'content-type': FORM },
        body: new URLSearchParams(params).toString(),
    });
}

async function clientCredentials(client, { port = proxy.port, scope } = {}) {
    const params = { grant_type: 'client_credentials' };
    if (scope !== undefined) {
        params.scope = scope;
    }
    const r = await oauthPost(port, '/oauth/token', client, params);
    assert.equal(r.status, 200, `/oauth/token: ${r.status} ${r.text}`);
    assert.match(r.json.access_token, /^blnk_at_[0-9a-f]{64}$/);
    assert.equal(r.json.token_type, 'Bearer');
    assert.equal(r.json.refresh_token, undefined, 'client_credentials never returns a refresh token');
    secrets.push(r.json.access_token);
    return r.json;
}

async function get(token, { port = proxy.port, path = P('/ledgers'), agent } = {}) {
    return req(port, 'GET', path, { headers: bearer(token), agent });
}

async function refusedWithin(token, ms, { port = proxy.port, what } = {}) {
    const t0 = Date.now();
    await waitFor(async () => (await get(token, { port })).status === 401, { timeoutMs: ms, intervalMs: 50, what });
    const r = await get(token, { port });
    assertError(r, 401, INVALID_TOKEN, { wwwAuthenticate: WWW_INVALID });
    return Date.now() - t0;
}

test('a client_credentials token works on /proxy/* right away, within its scopes', async () => {
    const reader = createClient({ scopes: ['proxy:read'] });
    const t = await clientCredentials(reader);
    assert.equal(t.scope, 'proxy:read');
    let r = await get(t.access_token);
    assert.equal(r.status, 200, r.text);
    assert.equal(core.requests.at(-1).headers.authorization, undefined, 'the token never reaches Core');
    r = await req(proxy.port, 'HEAD', P('/ledgers'), { headers: bearer(t.access_token) });
    assert.equal(r.status, 200);
    const before = core.requests.length;
    r = await req(proxy.port, 'POST', P('/ledgers'), { headers: { ...bearer(t.access_token), ...JSONH }, body: '{"name":"x"}' });
    assertError(r, 403, 'AUTH_INSUFFICIENT_PERMISSIONS', { wwwAuthenticate: wwwScope('proxy:write') });
    assert.equal(core.requests.length, before, 'a refused write never reaches Core');

    // A token asked with a narrower scope than its client's gets only that scope.
    const rw = createClient({ scopes: ['proxy:read', 'proxy:write'] });
    const narrow = await clientCredentials(rw, { scope: 'proxy:read' });
    r = await req(proxy.port, 'POST', P('/ledgers'), { headers: { ...bearer(narrow.access_token), ...JSONH }, body: '{}' });
    assertError(r, 403, 'AUTH_INSUFFICIENT_PERMISSIONS', { wwwAuthenticate: wwwScope('proxy:write') });
    const wide = await clientCredentials(rw);
    r = await req(proxy.port, 'POST', P('/ledgers'), { headers: { ...bearer(wide.access_token), ...JSONH }, body: '{"name":"y"}' });
    assert.equal(r.status, 201, r.text);

    const star = createClient({ scopes: ['*'] });
    const all = await clientCredentials(star);
    r = await req(proxy.port, 'POST', P('/transactions'), { headers: { ...bearer(all.access_token), ...JSONH }, body: '{"amount":1}' });
    assert.equal(r.status, 201, r.text);
});

test('the client\'s instance restriction binds its tokens', async () => {
    const c = createClient({ scopes: ['*'], instances: [A.id] });
    const t = await clientCredentials(c);
    assert.equal((await get(t.access_token, { path: P('/ledgers', A.id) })).status, 200);
    const r = await get(t.access_token, { path: P('/ledgers', B.id) });
    assertError(r, 403, 'AUTH_INSUFFICIENT_PERMISSIONS');
    const free = createClient({ scopes: ['*'] });
    const u = await clientCredentials(free);
    assert.equal((await get(u.access_token, { path: P('/ledgers', B.id) })).status, 200);
});

test('a token is usable the moment /oauth/token returns it (no reload race)', async () => {
    const c = createClient({ scopes: ['proxy:read'] });
    const failures = [];
    for (let i = 0; i < 40; i++) {
        const t = await clientCredentials(c);
        // A fresh connection half the time: another loop thread must see it too.
        const r = await get(t.access_token, { agent: i % 2 ? false : undefined });
        if (r.status !== 200) {
            failures.push(`${i}: ${r.status} ${r.text}`);
        }
    }
    assert.deepEqual(failures, []);
    // The same under concurrency: several clients asking and using at once.
    const results = await Promise.all(
        Array.from({ length: 8 }, async () => {
            const out = [];
            for (let i = 0; i < 5; i++) {
                const t = await clientCredentials(c);
                out.push((await get(t.access_token, { agent: false })).status);
            }
            return out;
        }),
    );
    assert.deepEqual(results.flat().filter((s) => s !== 200), []);
});

test('a token issued by one server process is honoured by another sharing the store within 2 s', async () => {
    proxy2 = await startProxy({ db });
    servers.push(proxy2);
    const c = createClient({ scopes: ['proxy:read'] });
    const t = await clientCredentials(c, { port: proxy.port });
    const { ms } = await waitFor(async () => (await get(t.access_token, { port: proxy2.port })).status === 200, {
        timeoutMs: 2000,
        intervalMs: 50,
        what: 'token from server 1 accepted by server 2',
    });
    assert.ok(ms <= 2000);
    // And the other way round.
    const u = await clientCredentials(c, { port: proxy2.port });
    assert.equal((await get(u.access_token, { port: proxy2.port })).status, 200, 'usable at once where issued');
    await waitFor(async () => (await get(u.access_token, { port: proxy.port })).status === 200, {
        timeoutMs: 2000,
        intervalMs: 50,
        what: 'token from server 2 accepted by server 1',
    });
});

test('a token revoked with /oauth/revoke is refused within 2 s, on every server', async () => {
    const c = createClient({ scopes: ['proxy:read'] });
    const t = await clientCredentials(c);
    const other = await clientCredentials(c);
    assert.equal((await get(t.access_token)).status, 200);
    if (proxy2) {
        await waitFor(async () => (await get(t.access_token, { port: proxy2.port })).status === 200, { timeoutMs: 2000 });
    }
    const r = await oauthPost(proxy.port, '/oauth/revoke', c, { token: t.access_token });
    assert.equal(r.status, 200, r.text);
    assert.ok((await refusedWithin(t.access_token, 2000, { what: 'revoked token refused' })) <= 2500);
    if (proxy2) {
        await refusedWithin(t.access_token, 2000, { port: proxy2.port, what: 'revoked token refused by server 2' });
    }
    // Only that token: the client's other token still works.
    assert.equal((await get(other.access_token)).status, 200);
});

test('an expired token is refused (--oauth-access-token-ttl 2s)', async () => {
    shortTtl = await startProxy({ db, args: ['--oauth-access-token-ttl', '2s'] });
    servers.push(shortTtl);
    const c = createClient({ scopes: ['proxy:read'] });
    const t = await clientCredentials(c, { port: shortTtl.port });
    assert.ok(t.expires_in > 0 && t.expires_in <= 2, `expires_in ${t.expires_in}`);
    const issued = Date.now();
    assert.equal((await get(t.access_token, { port: shortTtl.port })).status, 200);
    // Expiry is decided on the clock at request time: refused at most ~1 s (second rounding)
    // after the lifetime, with no store change needed.
    await waitFor(async () => (await get(t.access_token, { port: shortTtl.port })).status === 401, {
        timeoutMs: 4000,
        intervalMs: 50,
        what: 'expired token refused',
    });
    assert.ok(Date.now() - issued >= 1000, 'not refused before its lifetime');
    assertError(await get(t.access_token, { port: shortTtl.port }), 401, INVALID_TOKEN, { wwwAuthenticate: WWW_INVALID });
    // The first server, sharing the store, refuses it too.
    assertError(await get(t.access_token), 401, INVALID_TOKEN, { wwwAuthenticate: WWW_INVALID });
});

test('`client revoke` refuses every token of the client within 2 s', async () => {
    const c = createClient({ scopes: ['*'] });
    const tokens = [];
    for (let i = 0; i < 3; i++) {
        tokens.push((await clientCredentials(c)).access_token);
    }
    const bystander = createClient({ scopes: ['*'] });
    const kept = (await clientCredentials(bystander)).access_token;
    for (const t of tokens) {
        assert.equal((await get(t)).status, 200);
    }
    const r = cli(['client', 'revoke', c.id], { db });
    assert.equal(r.code, 0, r.stderr);
    const t0 = Date.now();
    for (const t of tokens) {
        await refusedWithin(t, Math.max(0, 2000 - (Date.now() - t0)), { what: 'token of a revoked client refused' });
    }
    assert.ok(Date.now() - t0 <= 2500);
    assert.equal((await get(kept)).status, 200, 'other clients are untouched');
    // And no new token for it.
    const again = await oauthPost(proxy.port, '/oauth/token', c, { grant_type: 'client_credentials' });
    assert.equal(again.status, 401);
    assert.equal(again.json?.error, 'invalid_client');
});

test('`client expire` bounds the lifetime of the tokens it already holds', async () => {
    const c = createClient({ scopes: ['proxy:read'] });
    const t = await clientCredentials(c);
    assert.equal((await get(t.access_token)).status, 200);
    const r = cli(['client', 'expire', c.id, '--expires-in', '1s'], { db });
    assert.equal(r.code, 0, r.stderr);
    // The new expiry reaches the table within the reload interval, then the clock does the rest.
    await refusedWithin(t.access_token, 3000, { what: 'token of an expired client refused' });
});

test('refresh tokens, malformed and unknown blnk_at_ tokens get 401 AUTH_INVALID_BEARER_TOKEN', async () => {
    const refresh = await realRefreshToken();
    const candidates = [
        refresh,
        `blnk_rt_${randomHex(32)}`,
        `blnk_at_${randomHex(32)}`, // well formed, unknown
        'blnk_at_',
        'blnk_at_xyz',
        `blnk_at_${randomHex(32)}0`,
        `blnk_at_${randomHex(32).toUpperCase()}`,
        `blnk_at_${randomHex(31)}`,
    ];
    for (const tok of candidates) {
        const r = await get(tok);
        assertError(r, 401, INVALID_TOKEN, { wwwAuthenticate: WWW_INVALID });
    }
    // A client secret is not a bearer credential either.
    const c = createClient({ scopes: ['*'] });
    assertError(await get(c.secret), 401, 'AUTH_INVALID_API_KEY', { wwwAuthenticate: WWW_INVALID });
});

test('no token, secret, code or password appears in any server log', async () => {
    assert.ok(secrets.length > 20);
    for (const s of servers) {
        const text = s.logs().join('\n');
        for (const secret of secrets) {
            assert.ok(!text.includes(secret), `a secret (${secret.slice(0, 8)}…) is in the log`);
            // Nor its hex part alone.
            const hex = secret.replace(/^blnk_(at|rt|cs)_/, '');
            if (hex.length >= 32) {
                assert.ok(!text.includes(hex), `a secret's hex (${secret.slice(0, 8)}…) is in the log`);
            }
        }
    }
});

// ---- The authorization_code flow, just far enough to hold a real refresh token ----

function inputsOf(html) {
    const out = {};
    const unescape = (s) =>
        s
            .replace(/&quot;/g, '"')
            .replace(/&#39;|&#x27;/g, "'")
            .replace(/&lt;/g, '<')
            .replace(/&gt;/g, '>')
            .replace(/&amp;/g, '&');
    for (const m of html.matchAll(/<input\b[^>]*>/gi)) {
        const tag = m[0];
        const name = /\bname="([^"]*)"/i.exec(tag);
        const value = /\bvalue="([^"]*)"/i.exec(tag);
        const type = /\btype="([^"]*)"/i.exec(tag);
        if (name && (!type || type[1].toLowerCase() === 'hidden')) {
            out[unescape(name[1])] = value ? unescape(value[1]) : '';
        }
    }
    return out;
}

function sessionCookie(res, prev) {
    const sc = res.headers['set-cookie'] || [];
    for (const c of sc) {
        const m = /^blnkproxy_session=([^;]*)/.exec(c);
        if (m) {
            secrets.push(m[1]);
            return `blnkproxy_session=${m[1]}`;
        }
    }
    return prev;
}

async function authorizeForm(port, cookie, fields) {
    return req(port, 'POST', '/oauth/authorize', {
        headers: { 'content-type': FORM, cookie },
        body: new URLSearchParams(fields).toString(),
    });
}

// Signs an operator in, approves, exchanges the code: returns the refresh token.
async function realRefreshToken() {
    const password = `pw-${randomHex(12)}`;
    secrets.push(password);
    const opName = `op-${randomHex(3)}`;
    const op = cli(['operator', 'create', '--name', opName, '--password-env', 'BP_TEST_OP_PW'], {
        db,
        env: { BP_TEST_OP_PW: password },
    });
    assert.equal(op.code, 0, `operator create: ${op.stderr}`);
    const c = createClient({ scopes: ['proxy:read'], redirectUris: [REDIRECT] });
    const verifier = randomHex(32);
    const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
    const state = randomHex(8);
    const q = new URLSearchParams({
        response_type: 'code',
        client_id: c.id,
        redirect_uri: REDIRECT,
        state,
        code_challenge: challenge,
        code_challenge_method: 'S256',
    });
    let r = await req(proxy.port, 'GET', `/oauth/authorize?${q}`);
    assert.equal(r.status, 200, `authorize page: ${r.status} ${r.text.slice(0, 200)}`);
    let cookie = sessionCookie(r, undefined);
    assert.ok(cookie, 'session cookie');
    r = await authorizeForm(proxy.port, cookie, { ...inputsOf(r.text), action: 'login', name: opName, password });
    assert.equal(r.status, 200, `login: ${r.status} ${r.text.slice(0, 200)}`);
    cookie = sessionCookie(r, cookie);
    r = await authorizeForm(proxy.port, cookie, { ...inputsOf(r.text), action: 'approve' });
    assert.equal(r.status, 302, `approve: ${r.status} ${r.text.slice(0, 200)}`);
    const loc = new URL(r.headers.location);
    assert.equal(loc.searchParams.get('state'), state);
    const code = loc.searchParams.get('code');
    assert.ok(code, `code in ${r.headers.location}`);
    secrets.push(code);
    r = await oauthPost(proxy.port, '/oauth/token', c, {
        grant_type: 'authorization_code',
        code,
        redirect_uri: REDIRECT,
        code_verifier: verifier,
    });
    assert.equal(r.status, 200, `code exchange: ${r.text}`);
    assert.match(r.json.refresh_token, /^blnk_rt_[0-9a-f]{64}$/);
    assert.match(r.json.access_token, /^blnk_at_[0-9a-f]{64}$/);
    secrets.push(r.json.access_token, r.json.refresh_token);
    // The access token from this grant works on the proxy like any other.
    assert.equal((await get(r.json.access_token)).status, 200);
    return r.json.refresh_token;
}

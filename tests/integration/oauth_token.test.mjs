// OAuth 2.0 token endpoints (issue 3; DESIGN §6; RFC 6749, 7636, 7009, 7662) driven by a real
// OAuth client library (oauth4webapi) against the real binary and a fake Core.
//
// The authorization code is obtained by driving /oauth/authorize with plain HTTP requests
// (cookie + CSRF token), as a browser would; oauth_authorize.test.mjs does the same in Chromium.
// Every response and the server log are collected, and at the end no secret may appear anywhere
// except in the one response that issued it.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import * as oauth from 'oauth4webapi';

import {
    WWW_INVALID,
    assertError,
    bearer,
    cli,
    cliHistory,
    randomHex,
    req,
    setupWorld,
    startProxy,
    tmpDir,
    waitFor,
    wwwScope,
} from './lib/harness.mjs';

const REDIRECT = 'http://127.0.0.1:9/callback';
const PASSWORD = `pw-${randomHex(12)}`;
const insecure = { [oauth.allowInsecureRequests]: true };

// ---- bookkeeping of secrets and of every response seen ----

const responses = []; // {what, text} — headers and body of every HTTP response
const secrets = new Map(); // secret text → {kind, issuedIn: index into responses | null}

function record(what, status, headerPairs, body) {
    const head = headerPairs.map(([k, v]) => `${k}: ${v}`).join('\n');
    responses.push({ what, text: `${status}\n${head}\n\n${body}` });
    return responses.length - 1;
}

function remember(secret, kind, issuedIn = null) {
    assert.ok(typeof secret === 'string' && secret.length > 0, `${kind} present`);
    secrets.set(secret, { kind, issuedIn });
}

// oauth4webapi's fetch, recording every response.
async function recordingFetch(url, init) {
    const res = await fetch(url, init);
    const body = await res.clone().text();
    const idx = record(`${init?.method ?? 'GET'} ${url}`, res.status, [...res.headers], body);
    res.recordIndex = idx;
    return res;
}

const lib = { ...insecure, [oauth.customFetch]: recordingFetch };

// harness req(), recording the response (rawHeaders is [[name, value], ...]).
async function r(port, method, p, opts = {}) {
    const res = await req(port, method, p, opts);
    res.recordIndex = record(`${method} ${p}`, res.status, res.rawHeaders, res.text);
    return res;
}

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const basicAuth = (id, secret) => ({
    authorization: `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`,
});
const form = (o) => new URLSearchParams(o).toString();

function assertOAuthError(res, status, error) {
    assert.equal(res.status, status, `status for ${error}: ${res.text}`);
    assert.match(res.headers['content-type'] ?? '', /^application\/json/);
    assert.equal(res.json?.error, error, `error: ${res.text}`);
    assert.equal(typeof res.json.error_description, 'string');
    assert.equal(res.headers['cache-control'], 'no-store');
    if (status === 401) {
        assert.equal(res.headers['www-authenticate'], 'Basic realm="blnkproxy"');
    }
}

// ---- the world ----

let w; // setupWorld: fake Core, db, instance, proxy
let as; // oauth4webapi AuthorizationServer from discovery
let machine; // client_credentials only, proxy:read
let web; // all three grants, proxy:read + proxy:write, REDIRECT registered
let operatorId;

function clientCreate(args) {
    const res = cli(['client', 'create', ...args], { db: w.db });
    assert.equal(res.code, 0, `client create: ${res.stderr}`);
    assert.match(res.json.client_id, /^client_[0-9A-HJKMNP-TV-Z]{26}$/);
    assert.match(res.json.client_secret, /^blnk_cs_[0-9a-f]{64}$/);
    remember(res.json.client_secret, 'client secret');
    return { client: { client_id: res.json.client_id }, secret: res.json.client_secret, json: res.json };
}

before(async () => {
    w = await setupWorld({ keys: {} });
    machine = clientCreate(['--name', 'machine', '--scopes', 'proxy:read']);
    web = clientCreate(['--name', 'web app', '--scopes', 'proxy:read,proxy:write', '--redirect-uri', REDIRECT]);
    const pwFile = path.join(tmpDir(), 'pw');
    fs.writeFileSync(pwFile, `${PASSWORD}\n`, { mode: 0o600 });
    const op = cli(['operator', 'create', '--name', 'alice', '--password-file', pwFile], { db: w.db });
    assert.equal(op.code, 0, `operator create: ${op.stderr}`);
    operatorId = op.json.id;
    remember(PASSWORD, 'password');

    const issuer = new URL(`http://127.0.0.1:${w.port}`);
    const res = await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...lib });
    as = await oauth.processDiscoveryResponse(issuer, res);
});

after(async () => {
    await w?.close();
});

// Drives /oauth/authorize like a browser and returns the redirect's URL.
async function authorize({ client = web.client, scope = 'proxy:read', state = oauth.generateRandomState(), verifier }) {
    const challenge = await oauth.calculatePKCECodeChallenge(verifier);
    const q = {
        response_type: 'code',
        client_id: client.client_id,
        redirect_uri: REDIRECT,
        state,
        scope,
        code_challenge: challenge,
        code_challenge_method: 'S256',
    };
    const page = await r(w.port, 'GET', `/oauth/authorize?${form(q)}`);
    assert.equal(page.status, 200, page.text);
    let cookie = page.headers['set-cookie'][0].split(';')[0];
    let csrf = page.text.match(/name="csrf" value="([0-9a-f]{64})"/)[1];
    const login = await r(w.port, 'POST', '/oauth/authorize', {
        headers: { ...FORM, cookie },
        body: form({ ...q, csrf, action: 'login', name: 'alice', password: PASSWORD }),
    });
    assert.equal(login.status, 200, login.text);
    assert.match(login.text, /value="approve"/);
    cookie = login.headers['set-cookie'][0].split(';')[0];
    csrf = login.text.match(/name="csrf" value="([0-9a-f]{64})"/)[1];
    const approve = await r(w.port, 'POST', '/oauth/authorize', {
        headers: { ...FORM, cookie },
        body: form({ ...q, csrf, action: 'approve' }),
    });
    assert.equal(approve.status, 302, approve.text);
    const location = new URL(approve.headers.location);
    remember(location.searchParams.get('code'), 'authorization code', approve.recordIndex);
    return { location, state };
}

async function codeGrant({ scope = 'proxy:read', clientAuth = oauth.ClientSecretBasic(web.secret) } = {}) {
    const verifier = oauth.generateRandomCodeVerifier();
    const { location, state } = await authorize({ scope, verifier });
    const params = oauth.validateAuthResponse(as, web.client, location, state);
    const res = await oauth.authorizationCodeGrantRequest(as, web.client, clientAuth, params, REDIRECT, verifier, lib);
    const idx = res.recordIndex;
    const tokens = await oauth.processAuthorizationCodeResponse(as, web.client, res);
    remember(tokens.access_token, 'access token', idx);
    remember(tokens.refresh_token, 'refresh token', idx);
    return { tokens, code: params.get('code'), verifier };
}

async function refresh(refreshToken, clientAuth = oauth.ClientSecretBasic(web.secret)) {
    const res = await oauth.refreshTokenGrantRequest(as, web.client, clientAuth, refreshToken, lib);
    const idx = res.recordIndex;
    const tokens = await oauth.processRefreshTokenResponse(as, web.client, res);
    remember(tokens.access_token, 'access token', idx);
    remember(tokens.refresh_token, 'refresh token', idx);
    return tokens;
}

async function clientCredentials(c = machine, params = {}, port = w.port) {
    const res = await req(port, 'POST', '/oauth/token', {
        headers: { ...FORM, ...basicAuth(c.client.client_id, c.secret) },
        body: form({ grant_type: 'client_credentials', ...params }),
    });
    const idx = record('POST /oauth/token (cc)', res.status, Object.entries(res.headers), res.text);
    assert.equal(res.status, 200, res.text);
    remember(res.json.access_token, 'access token', idx);
    return res.json;
}

async function introspect(token, c = web) {
    const res = await oauth.introspectionRequest(as, c.client, oauth.ClientSecretBasic(c.secret), token, lib);
    return oauth.processIntrospectionResponse(as, c.client, res);
}

async function proxyGet(token) {
    return r(w.port, 'GET', w.p('/ledgers'), { headers: bearer(token) });
}

async function waitRefused(token, what) {
    await waitFor(
        async () => {
            const res = await proxyGet(token);
            return res.status === 401 ? res : null;
        },
        { timeoutMs: 2000, intervalMs: 100, what },
    );
    const res = await proxyGet(token);
    assertError(res, 401, 'AUTH_INVALID_BEARER_TOKEN', { wwwAuthenticate: WWW_INVALID });
}

// ---- tests ----

describe('metadata', () => {
    test('RFC 8414 document names every endpoint and method', () => {
        assert.equal(as.issuer, `http://127.0.0.1:${w.port}`);
        assert.equal(as.token_endpoint, `http://127.0.0.1:${w.port}/oauth/token`);
        assert.equal(as.authorization_endpoint, `http://127.0.0.1:${w.port}/oauth/authorize`);
        assert.equal(as.revocation_endpoint, `http://127.0.0.1:${w.port}/oauth/revoke`);
        assert.equal(as.introspection_endpoint, `http://127.0.0.1:${w.port}/oauth/introspect`);
        assert.deepEqual(as.code_challenge_methods_supported, ['S256']);
        assert.deepEqual(as.response_types_supported, ['code']);
        assert.deepEqual([...as.grant_types_supported].sort(), ['authorization_code', 'client_credentials', 'refresh_token']);
        assert.deepEqual([...as.token_endpoint_auth_methods_supported].sort(), ['client_secret_basic', 'client_secret_post']);
    });
});

describe('client_credentials', () => {
    test('Basic and form authentication; token works on /proxy within its scopes', async () => {
        for (const clientAuth of [oauth.ClientSecretBasic(machine.secret), oauth.ClientSecretPost(machine.secret)]) {
            const res = await oauth.clientCredentialsGrantRequest(as, machine.client, clientAuth, {}, lib);
            assert.equal(res.headers.get('cache-control'), 'no-store');
            assert.equal(res.headers.get('pragma'), 'no-cache');
            const idx = res.recordIndex;
            const t = await oauth.processClientCredentialsResponse(as, machine.client, res);
            remember(t.access_token, 'access token', idx);
            assert.match(t.access_token, /^blnk_at_[0-9a-f]{64}$/);
            assert.equal(t.token_type, 'bearer'); // oauth4webapi lowercases it
            assert.equal(t.expires_in, 3600);
            assert.equal(t.scope, 'proxy:read');
            assert.equal(t.refresh_token, undefined, 'no refresh token for client_credentials (RFC 6749 §4.4.3)');

            // Usable at once, within its scope only.
            const ok = await proxyGet(t.access_token);
            assert.equal(ok.status, 200, ok.text);
            assert.equal(w.core.requests.at(-1).headers.authorization, undefined, 'token never reaches Core');
            const denied = await r(w.port, 'POST', w.p('/ledgers'), {
                headers: { ...bearer(t.access_token), 'content-type': 'application/json' },
                body: '{"name":"x"}',
            });
            assertError(denied, 403, 'AUTH_INSUFFICIENT_PERMISSIONS', { wwwAuthenticate: wwwScope('proxy:write') });
        }
    });

    test('a narrower scope is granted as asked; a write token can write', async () => {
        const t = await clientCredentials(web, { scope: 'proxy:write' });
        assert.equal(t.scope, 'proxy:write');
        const wr = await r(w.port, 'POST', w.p('/ledgers'), {
            headers: { ...bearer(t.access_token), 'content-type': 'application/json' },
            body: '{"name":"x"}',
        });
        assert.equal(wr.status, 201, wr.text);
        const rd = await proxyGet(t.access_token);
        assertError(rd, 403, 'AUTH_INSUFFICIENT_PERMISSIONS', { wwwAuthenticate: wwwScope('proxy:read') });
    });
});

describe('authorization_code + PKCE S256', () => {
    test('code exchange through oauth4webapi; the token works on /proxy; introspection names the operator', async () => {
        const { tokens } = await codeGrant({ scope: 'proxy:read proxy:write' });
        assert.match(tokens.access_token, /^blnk_at_[0-9a-f]{64}$/);
        assert.match(tokens.refresh_token, /^blnk_rt_[0-9a-f]{64}$/);
        assert.equal(tokens.scope, 'proxy:read proxy:write');
        assert.equal(tokens.expires_in, 3600);
        const ok = await proxyGet(tokens.access_token);
        assert.equal(ok.status, 200, ok.text);

        const info = await introspect(tokens.access_token);
        assert.equal(info.active, true);
        assert.equal(info.client_id, web.client.client_id);
        assert.equal(info.sub, operatorId);
        assert.equal(info.scope, 'proxy:read proxy:write');
        assert.equal(info.token_type?.toLowerCase(), 'bearer');
        // iat is the issuing second rounded down, exp the end of the lifetime rounded up.
        assert.ok(info.exp - info.iat === 3600 || info.exp - info.iat === 3601, `exp ${info.exp} iat ${info.iat}`);
        const rinfo = await introspect(tokens.refresh_token);
        assert.equal(rinfo.active, true);
        assert.equal(rinfo.token_type, undefined, 'token_type only for access tokens');
    });

    test('client_secret_post works for the code grant too', async () => {
        const { tokens } = await codeGrant({ clientAuth: oauth.ClientSecretPost(web.secret) });
        assert.equal(tokens.scope, 'proxy:read');
    });

    test('a second use of a code fails and revokes the tokens issued with it', async () => {
        const { tokens, code, verifier } = await codeGrant();
        assert.equal((await proxyGet(tokens.access_token)).status, 200);
        const again = await r(w.port, 'POST', '/oauth/token', {
            headers: { ...FORM, ...basicAuth(web.client.client_id, web.secret) },
            body: form({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier }),
        });
        assertOAuthError(again, 400, 'invalid_grant');
        await waitRefused(tokens.access_token, 'access token from a reused code refused');
        assert.equal((await introspect(tokens.refresh_token)).active, false);
        // The refresh token of that family is dead too.
        await assert.rejects(refresh(tokens.refresh_token), (e) => e instanceof oauth.ResponseBodyError && e.error === 'invalid_grant');
    });

    test('PKCE and redirect_uri mismatches are invalid_grant (and burn the code)', async () => {
        const verifier = oauth.generateRandomCodeVerifier();
        const { location } = await authorize({ verifier });
        const code = location.searchParams.get('code');
        const wrong = await r(w.port, 'POST', '/oauth/token', {
            headers: { ...FORM, ...basicAuth(web.client.client_id, web.secret) },
            body: form({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: oauth.generateRandomCodeVerifier() }),
        });
        assertOAuthError(wrong, 400, 'invalid_grant');
        const right = await r(w.port, 'POST', '/oauth/token', {
            headers: { ...FORM, ...basicAuth(web.client.client_id, web.secret) },
            body: form({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier }),
        });
        assertOAuthError(right, 400, 'invalid_grant');

        const v2 = oauth.generateRandomCodeVerifier();
        const { location: l2 } = await authorize({ verifier: v2 });
        const mism = await r(w.port, 'POST', '/oauth/token', {
            headers: { ...FORM, ...basicAuth(web.client.client_id, web.secret) },
            body: form({ grant_type: 'authorization_code', code: l2.searchParams.get('code'), redirect_uri: `${REDIRECT}/x`, code_verifier: v2 }),
        });
        assertOAuthError(mism, 400, 'invalid_grant');
    });
});

describe('refresh_token', () => {
    test('rotation: new access + refresh; the old refresh token stops working', async () => {
        const { tokens: t1 } = await codeGrant({ scope: 'proxy:read proxy:write' });
        const t2 = await refresh(t1.refresh_token);
        assert.notEqual(t2.refresh_token, t1.refresh_token);
        assert.notEqual(t2.access_token, t1.access_token);
        assert.equal(t2.scope, 'proxy:read proxy:write');
        assert.equal((await proxyGet(t2.access_token)).status, 200);
        assert.equal((await introspect(t1.refresh_token)).active, false);
        assert.equal((await introspect(t2.refresh_token)).active, true);

        // Narrowing on refresh is allowed; widening is not.
        const t3 = await (async () => {
            const res = await oauth.refreshTokenGrantRequest(as, web.client, oauth.ClientSecretBasic(web.secret), t2.refresh_token, {
                ...lib,
                additionalParameters: { scope: 'proxy:read' },
            });
            const idx = res.recordIndex;
            const t = await oauth.processRefreshTokenResponse(as, web.client, res);
            remember(t.access_token, 'access token', idx);
            remember(t.refresh_token, 'refresh token', idx);
            return t;
        })();
        assert.equal(t3.scope, 'proxy:read');
        const wide = await r(w.port, 'POST', '/oauth/token', {
            headers: { ...FORM, ...basicAuth(web.client.client_id, web.secret) },
            body: form({ grant_type: 'refresh_token', refresh_token: t3.refresh_token, scope: 'proxy:read proxy:write' }),
        });
        assertOAuthError(wide, 400, 'invalid_scope');
    });

    test('reuse of a rotated refresh token revokes the whole family', async () => {
        const { tokens: t1 } = await codeGrant();
        const t2 = await refresh(t1.refresh_token);
        assert.equal((await proxyGet(t2.access_token)).status, 200);

        await assert.rejects(refresh(t1.refresh_token), (e) => {
            assert.ok(e instanceof oauth.ResponseBodyError, String(e));
            assert.equal(e.error, 'invalid_grant');
            assert.equal(e.status, 400);
            return true;
        });
        // The newest access token of the family is refused on /proxy, its refresh token too.
        await waitRefused(t2.access_token, 'family access token refused after reuse');
        await assert.rejects(refresh(t2.refresh_token), (e) => e.error === 'invalid_grant');
        assert.equal((await introspect(t2.access_token)).active, false);
    });

    test("another client's refresh token is invalid_grant", async () => {
        const { tokens } = await codeGrant();
        const other = clientCreate(['--name', 'other', '--scopes', 'proxy:read', '--redirect-uri', REDIRECT]);
        const res = await r(w.port, 'POST', '/oauth/token', {
            headers: { ...FORM, ...basicAuth(other.client.client_id, other.secret) },
            body: form({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token }),
        });
        assertOAuthError(res, 400, 'invalid_grant');
        // Not treated as reuse: the family still works.
        assert.equal((await proxyGet(tokens.access_token)).status, 200);
        const t2 = await refresh(tokens.refresh_token);
        assert.ok(t2.access_token);
    });
});

describe('RFC 6749 §5.2 errors: exact error and status', () => {
    const tok = (headers, body) => r(w.port, 'POST', '/oauth/token', { headers: { ...FORM, ...headers }, body });
    const mb = () => basicAuth(machine.client.client_id, machine.secret);
    const wb = () => basicAuth(web.client.client_id, web.secret);

    test('invalid_request', async () => {
        assertOAuthError(await tok(mb(), ''), 400, 'invalid_request'); // no grant_type
        assertOAuthError(await tok(mb(), 'grant_type=client_credentials&grant_type=client_credentials'), 400, 'invalid_request');
        assertOAuthError(await tok(mb(), 'grant_type=client_credentials&scope=a&scope=b'), 400, 'invalid_request');
        assertOAuthError(
            await tok(mb(), form({ grant_type: 'client_credentials', client_id: machine.client.client_id, client_secret: machine.secret })),
            400,
            'invalid_request',
        ); // two authentication methods
        assertOAuthError(await tok(wb(), form({ grant_type: 'authorization_code', redirect_uri: REDIRECT, code_verifier: 'a'.repeat(43) })), 400, 'invalid_request');
        assertOAuthError(await tok(wb(), form({ grant_type: 'authorization_code', code: 'x', code_verifier: 'a'.repeat(43) })), 400, 'invalid_request');
        assertOAuthError(await tok(wb(), form({ grant_type: 'authorization_code', code: 'x', redirect_uri: REDIRECT })), 400, 'invalid_request');
        assertOAuthError(await tok(wb(), form({ grant_type: 'refresh_token' })), 400, 'invalid_request');
        const json = await r(w.port, 'POST', '/oauth/token', {
            headers: { 'content-type': 'application/json', ...mb() },
            body: '{"grant_type":"client_credentials"}',
        });
        assertOAuthError(json, 400, 'invalid_request');
        const get = await r(w.port, 'GET', '/oauth/token', { headers: mb() });
        assert.equal(get.status, 405);
        assert.equal(get.headers.allow, 'POST');
    });

    test('invalid_client: 401 with WWW-Authenticate: Basic, for both methods', async () => {
        const cc = 'grant_type=client_credentials';
        assertOAuthError(await tok({}, cc), 401, 'invalid_client');
        assertOAuthError(await tok(basicAuth(machine.client.client_id, web.secret), cc), 401, 'invalid_client');
        assertOAuthError(await tok(basicAuth('client_01ARZ3NDEKTSV4RRFFQ69G5FAV', machine.secret), cc), 401, 'invalid_client');
        assertOAuthError(await tok({ authorization: 'Basic !!!' }, cc), 401, 'invalid_client');
        assertOAuthError(await tok({ authorization: `Bearer ${machine.secret}` }, cc), 401, 'invalid_client');
        assertOAuthError(await tok({}, form({ grant_type: 'client_credentials', client_id: machine.client.client_id })), 401, 'invalid_client');
        assertOAuthError(
            await tok({}, form({ grant_type: 'client_credentials', client_id: machine.client.client_id, client_secret: web.secret })),
            401,
            'invalid_client',
        );
        // The library sees the same thing.
        const res = await oauth.clientCredentialsGrantRequest(as, machine.client, oauth.ClientSecretBasic(web.secret), {}, lib);
        assert.equal(res.status, 401);
        await assert.rejects(oauth.processClientCredentialsResponse(as, machine.client, res));
    });

    test('invalid_grant', async () => {
        assertOAuthError(
            await tok(wb(), form({ grant_type: 'authorization_code', code: randomHex(32), redirect_uri: REDIRECT, code_verifier: 'a'.repeat(43) })),
            400,
            'invalid_grant',
        );
        assertOAuthError(await tok(wb(), form({ grant_type: 'refresh_token', refresh_token: `blnk_rt_${randomHex(32)}` })), 400, 'invalid_grant');
        assertOAuthError(await tok(wb(), form({ grant_type: 'refresh_token', refresh_token: 'not-a-token' })), 400, 'invalid_grant');
    });

    test('unauthorized_client', async () => {
        assertOAuthError(await tok(mb(), form({ grant_type: 'authorization_code', code: 'x', redirect_uri: REDIRECT, code_verifier: 'a'.repeat(43) })), 400, 'unauthorized_client');
        assertOAuthError(await tok(mb(), form({ grant_type: 'refresh_token', refresh_token: `blnk_rt_${randomHex(32)}` })), 400, 'unauthorized_client');
    });

    test('unsupported_grant_type', async () => {
        assertOAuthError(await tok(mb(), form({ grant_type: 'password', username: 'alice', password: 'x' })), 400, 'unsupported_grant_type');
        assertOAuthError(await tok(mb(), form({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code' })), 400, 'unsupported_grant_type');
    });

    test('invalid_scope', async () => {
        assertOAuthError(await tok(mb(), form({ grant_type: 'client_credentials', scope: 'proxy:write' })), 400, 'invalid_scope');
        assertOAuthError(await tok(mb(), form({ grant_type: 'client_credentials', scope: '*' })), 400, 'invalid_scope');
        assertOAuthError(await tok(mb(), form({ grant_type: 'client_credentials', scope: 'admin' })), 400, 'invalid_scope');
    });
});

describe('revocation and introspection', () => {
    test('revoking an access token: 200, then refused on /proxy within 2 s', async () => {
        const t = await clientCredentials();
        assert.equal((await proxyGet(t.access_token)).status, 200);
        // Another client cannot revoke or see it.
        const foreign = await oauth.revocationRequest(as, web.client, oauth.ClientSecretBasic(web.secret), t.access_token, lib);
        await oauth.processRevocationResponse(foreign);
        assert.equal((await introspect(t.access_token, web)).active, false);
        assert.equal((await introspect(t.access_token, machine)).active, true);
        assert.equal((await proxyGet(t.access_token)).status, 200);

        const res = await oauth.revocationRequest(as, machine.client, oauth.ClientSecretBasic(machine.secret), t.access_token, lib);
        assert.equal(res.status, 200);
        await oauth.processRevocationResponse(res);
        await waitRefused(t.access_token, 'revoked token refused');
        assert.equal((await introspect(t.access_token, machine)).active, false);
    });

    test('revoking a refresh token revokes its family', async () => {
        const { tokens } = await codeGrant();
        const res = await oauth.revocationRequest(as, web.client, oauth.ClientSecretPost(web.secret), tokens.refresh_token, lib);
        await oauth.processRevocationResponse(res);
        await waitRefused(tokens.access_token, 'family refused after refresh token revocation');
        await assert.rejects(refresh(tokens.refresh_token), (e) => e.error === 'invalid_grant');
    });

    test('unknown tokens: revoke 200, introspect inactive; missing token is invalid_request; auth required', async () => {
        const rv = await r(w.port, 'POST', '/oauth/revoke', {
            headers: { ...FORM, ...basicAuth(web.client.client_id, web.secret) },
            body: form({ token: `blnk_at_${randomHex(32)}`, token_type_hint: 'access_token' }),
        });
        assert.equal(rv.status, 200);
        assert.equal(rv.body.length, 0);
        const info = await introspect(`blnk_at_${randomHex(32)}`);
        assert.deepEqual(info.active, false);
        for (const ep of ['/oauth/revoke', '/oauth/introspect']) {
            assertOAuthError(
                await r(w.port, 'POST', ep, { headers: { ...FORM, ...basicAuth(web.client.client_id, web.secret) }, body: '' }),
                400,
                'invalid_request',
            );
            assertOAuthError(await r(w.port, 'POST', ep, { headers: FORM, body: form({ token: 'x' }) }), 401, 'invalid_client');
        }
    });

    test('revoking the client refuses all its tokens within 2 s', async () => {
        const c = clientCreate(['--name', 'doomed', '--scopes', 'proxy:read']);
        const t1 = await clientCredentials(c);
        const t2 = await clientCredentials(c);
        assert.equal((await proxyGet(t1.access_token)).status, 200);
        const rv = cli(['client', 'revoke', c.client.client_id], { db: w.db });
        assert.equal(rv.code, 0, rv.stderr);
        await waitRefused(t1.access_token, 'token of a revoked client refused');
        await waitRefused(t2.access_token, 'token of a revoked client refused');
        const again = await r(w.port, 'POST', '/oauth/token', {
            headers: { ...FORM, ...basicAuth(c.client.client_id, c.secret) },
            body: 'grant_type=client_credentials',
        });
        assertOAuthError(again, 401, 'invalid_client');
    });

    test('a refresh token is not a bearer credential on /proxy', async () => {
        const { tokens } = await codeGrant();
        assertError(await proxyGet(tokens.refresh_token), 401, 'AUTH_INVALID_BEARER_TOKEN', { wwwAuthenticate: WWW_INVALID });
    });
});

describe('expiry', () => {
    test('a short access token lifetime (--oauth-access-token-ttl 2s) expires on /proxy and in introspection', async () => {
        // A second server on the same store, with a 2 s lifetime: its tokens are also honoured by
        // the first server.
        const p2 = await startProxy({ db: w.db, args: ['--oauth-access-token-ttl', '2s'] });
        try {
            const asked = Date.now();
            const t = await clientCredentials(machine, {}, p2.port);
            assert.equal(t.expires_in, 2);
            const issuedAt = Date.now();
            // Expiry is stored in whole seconds: it must be rounded up, never down, or a token
            // promised for 2 s may die after just over 1 s.
            const { exp } = await introspect(t.access_token, machine);
            assert.ok(exp * 1000 >= asked + t.expires_in * 1000,
                `exp ${exp} is before the promised lifetime (asked at ${asked} ms, expires_in ${t.expires_in})`);
            assert.equal((await req(p2.port, 'GET', w.p('/ledgers'), { headers: bearer(t.access_token) })).status, 200);
            await waitFor(async () => (await proxyGet(t.access_token)).status === 200, { timeoutMs: 2000, what: 'token seen by the other server' });
            const { ms } = await waitFor(
                async () => (await req(p2.port, 'GET', w.p('/ledgers'), { headers: bearer(t.access_token) })).status === 401,
                { timeoutMs: 6000, intervalMs: 100, what: 'expired token refused' },
            );
            assert.ok(Date.now() - issuedAt >= 1000, `expired too early (${ms} ms)`);
            const res = await req(p2.port, 'GET', w.p('/ledgers'), { headers: bearer(t.access_token) });
            assertError(res, 401, 'AUTH_INVALID_BEARER_TOKEN', { wwwAuthenticate: WWW_INVALID });
            await waitRefused(t.access_token, 'expired token refused by the first server');
            assert.equal((await introspect(t.access_token, machine)).active, false);
            checkLogs(p2.logs(), 'second server');
        } finally {
            await p2.stop();
        }
    });
});

function checkLogs(lines, where) {
    const text = lines.join('\n');
    for (const [secret, { kind }] of secrets) {
        assert.ok(!text.includes(secret), `${kind} appears in the ${where} log`);
    }
}

describe('per-client limit on live access tokens', () => {
    test('--oauth-max-tokens-per-client 3: the 4th token revokes the 1st, at once on /proxy and in introspection', async () => {
        const capped = clientCreate(['--name', 'capped', '--scopes', 'proxy:read']);
        const p2 = await startProxy({ db: w.db, args: ['--oauth-max-tokens-per-client', '3'] });
        try {
            const t = [];
            for (let i = 0; i < 4; i++) {
                t.push(await clientCredentials(capped, {}, p2.port));
            }
            // The issuing server knows before the client does.
            const first = await req(p2.port, 'GET', w.p('/ledgers'), { headers: bearer(t[0].access_token) });
            assertError(first, 401, 'AUTH_INVALID_BEARER_TOKEN', { wwwAuthenticate: WWW_INVALID });
            for (const tok of t.slice(1)) {
                assert.equal((await req(p2.port, 'GET', w.p('/ledgers'), { headers: bearer(tok.access_token) })).status, 200);
            }
            assert.equal((await introspect(t[0].access_token, capped)).active, false);
            for (const tok of t.slice(1)) {
                assert.equal((await introspect(tok.access_token, capped)).active, true);
            }
            // The other server follows through the store.
            await waitRefused(t[0].access_token, 'capped token refused by the first server');
            checkLogs(p2.logs(), 'second server');
        } finally {
            await p2.stop();
        }
    });

    test('authorization_code without the refresh_token grant issues no refresh token', async () => {
        const noRefresh = clientCreate(['--name', 'no refresh', '--scopes', 'proxy:read', '--redirect-uri', REDIRECT,
            '--grant-types', 'authorization_code']);
        const verifier = oauth.generateRandomCodeVerifier();
        const { location, state } = await authorize({ client: noRefresh.client, verifier });
        const params = oauth.validateAuthResponse(as, noRefresh.client, location, state);
        const res = await oauth.authorizationCodeGrantRequest(as, noRefresh.client, oauth.ClientSecretBasic(noRefresh.secret),
            params, REDIRECT, verifier, lib);
        const idx = res.recordIndex;
        const tokens = await oauth.processAuthorizationCodeResponse(as, noRefresh.client, res);
        remember(tokens.access_token, 'access token', idx);
        assert.equal(tokens.refresh_token, undefined);
        assert.equal((await introspect(tokens.access_token, noRefresh)).active, true);
    });
});

describe('no secret leaks', () => {
    test('no secret in the server log or in any response but the issuing one', async () => {
        assert.ok(secrets.size > 10, 'the other tests collected secrets');
        checkLogs(w.proxy.logs(), 'server');
        for (const [secret, { kind, issuedIn }] of secrets) {
            responses.forEach((resp, i) => {
                if (i !== issuedIn) {
                    assert.ok(!resp.text.includes(secret), `${kind} appears in a response that did not issue it: ${resp.what}`);
                }
            });
            if (issuedIn !== null) {
                assert.ok(responses[issuedIn].text.includes(secret), `${kind} is in its issuing response`);
            }
        }
        // The CLI never prints a client secret except at creation.
        for (const h of cliHistory) {
            if (h.args[0] === 'client' && h.args[1] === 'create') {
                continue;
            }
            for (const [secret, { kind }] of secrets) {
                assert.ok(!h.stdout.includes(secret) && !h.stderr.includes(secret), `${kind} printed by ${h.args.join(' ')}`);
            }
        }
    });
});

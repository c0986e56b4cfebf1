// The authorize page (issue 3 item 4; RFC 6749 §4.1, RFC 7636) in headless Chromium, driven by
// playwright-core: an operator signs in, approves or denies, and the browser lands on the app's
// redirect URI (a small local server) with code and state. The code is then exchanged with
// oauth4webapi and the token used on /proxy.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';

import * as oauth from 'oauth4webapi';
import { chromium } from 'playwright-core';

import { bearer, cli, randomHex, req, setupWorld, tmpDir } from './lib/harness.mjs';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
];
const WAIT_MS = 15000;
const PASSWORD = `pw-${randomHex(12)}`;
const insecure = { [oauth.allowInsecureRequests]: true };

let w; // fake Core + proxy
let app; // the app's redirect_uri server
let appUrl;
let client;
let secret;
let as;
let userDataDir;
let context; // persistent Chromium context (fresh --user-data-dir)
let page;

// The app: answers its callback and remembers what arrived.
function startApp() {
    const hits = [];
    const server = http.createServer((rq, rs) => {
        // Only callbacks count (Chromium also asks for /favicon.ico).
        if (rq.url.startsWith('/cb')) {
            hits.push(rq.url);
        }
        rs.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        rs.end('<!doctype html><title>app</title><p id="done">app received the callback</p>');
    });
    return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => {
            resolve({
                hits,
                port: server.address().port,
                close: () =>
                    new Promise((res) => {
                        server.closeAllConnections?.();
                        server.close(() => res());
                    }),
            });
        });
    });
}

before(async () => {
    w = await setupWorld({ keys: {} });
    app = await startApp();
    appUrl = `http://127.0.0.1:${app.port}/cb`;
    const c = cli(['client', 'create', '--name', 'Ledger <Dashboard>', '--scopes', 'proxy:read,proxy:write', '--redirect-uri', appUrl], {
        db: w.db,
    });
    assert.equal(c.code, 0, c.stderr);
    client = { client_id: c.json.client_id };
    secret = c.json.client_secret;
    const pw = path.join(tmpDir(), 'pw');
    fs.writeFileSync(pw, `${PASSWORD}\n`, { mode: 0o600 });
    const op = cli(['operator', 'create', '--name', 'alice', '--password-file', pw], { db: w.db });
    assert.equal(op.code, 0, op.stderr);

    const issuer = new URL(`http://127.0.0.1:${w.port}`);
    as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));

    userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bp-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_ARGS,
        timeout: WAIT_MS,
    });
    context.setDefaultTimeout(WAIT_MS);
    context.setDefaultNavigationTimeout(WAIT_MS);
    page = context.pages()[0] ?? (await context.newPage());
});

after(async () => {
    try {
        await context?.close();
    } finally {
        if (userDataDir) {
            fs.rmSync(userDataDir, { recursive: true, force: true });
        }
        await app?.close();
        await w?.close();
    }
});

beforeEach(async () => {
    // Each case starts signed out.
    await context?.clearCookies();
});

async function authorizeUrl({ scope = 'proxy:read', state = oauth.generateRandomState(), verifier = oauth.generateRandomCodeVerifier() } = {}) {
    const u = new URL(as.authorization_endpoint);
    u.searchParams.set('response_type', 'code');
    u.searchParams.set('client_id', client.client_id);
    u.searchParams.set('redirect_uri', appUrl);
    u.searchParams.set('state', state);
    u.searchParams.set('scope', scope);
    u.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(verifier));
    u.searchParams.set('code_challenge_method', 'S256');
    return { url: u.href, state, verifier };
}

async function openLogin(url) {
    const resp = await page.goto(url, { waitUntil: 'load' });
    assert.equal(resp.status(), 200);
    await page.locator('form[action="/oauth/authorize"] input[name="password"]').waitFor({ state: 'visible' });
    return resp;
}

async function signIn(name = 'alice', password = PASSWORD) {
    await page.fill('input[name="name"]', name);
    await page.fill('input[name="password"]', password);
    const [resp] = await Promise.all([
        page.waitForResponse((r) => r.url().endsWith('/oauth/authorize') && r.request().method() === 'POST'),
        page.click('button[name="action"][value="login"]'),
    ]);
    await page.waitForLoadState('load');
    return resp;
}

async function decide(action) {
    await Promise.all([page.waitForURL((u) => u.href.startsWith(appUrl), { waitUntil: 'load' }), page.click(`button[name="action"][value="${action}"]`)]);
    return new URL(page.url());
}

describe('authorize page in headless Chromium', () => {
    test('sign in, approve, land on the redirect with code and state; exchange; call /proxy', async () => {
        const { url, state, verifier } = await authorizeUrl({ scope: 'proxy:read' });
        const first = await openLogin(url);
        assert.equal(first.headers()['x-frame-options'], 'DENY');
        assert.equal(first.headers()['cache-control'], 'no-store');
        assert.match(first.headers()['content-security-policy'], /default-src 'none'/);
        assert.match(await first.headerValue('set-cookie'), /^blnkproxy_session=[0-9a-f]{64}; Path=\/oauth; HttpOnly; SameSite=Lax$/);

        const login = await signIn();
        assert.equal(login.status(), 200);
        // Consent: the app's name (escaped, shown as text) and the requested scopes.
        assert.equal(await page.locator('#client-name').textContent(), 'Ledger <Dashboard>');
        assert.deepEqual(await page.locator('#scopes li').allTextContents(), ['proxy:read']);
        assert.equal(await page.locator('#operator-name').textContent(), 'alice');

        // Cookie flags as the browser stored them (the session id rotated at sign-in).
        const cookies = (await context.cookies()).filter((c) => c.name === 'blnkproxy_session');
        assert.equal(cookies.length, 1);
        assert.equal(cookies[0].httpOnly, true);
        assert.equal(cookies[0].sameSite, 'Lax');
        assert.equal(cookies[0].secure, false, 'plain HTTP: no Secure flag');
        assert.equal(cookies[0].path, '/oauth');
        assert.match(await login.headerValue('set-cookie'), /HttpOnly; SameSite=Lax/);
        assert.equal(await page.evaluate(() => document.cookie), '', 'HttpOnly: invisible to scripts');

        const landed = await decide('approve');
        assert.equal(landed.origin + landed.pathname, appUrl);
        assert.equal(landed.searchParams.get('state'), state);
        const code = landed.searchParams.get('code');
        assert.match(code, /^[0-9a-f]{64}$/);
        assert.ok(app.hits.some((h) => h.includes(`code=${code}`)), 'the app server received the callback');
        assert.equal(await page.locator('#done').textContent(), 'app received the callback');

        const params = oauth.validateAuthResponse(as, client, landed, state);
        const res = await oauth.authorizationCodeGrantRequest(as, client, oauth.ClientSecretBasic(secret), params, appUrl, verifier, insecure);
        const tokens = await oauth.processAuthorizationCodeResponse(as, client, res);
        assert.match(tokens.access_token, /^blnk_at_[0-9a-f]{64}$/);
        assert.equal(tokens.scope, 'proxy:read');
        const px = await req(w.port, 'GET', w.p('/ledgers'), { headers: bearer(tokens.access_token) });
        assert.equal(px.status, 200, px.text);

        // Still signed in: a second authorization goes straight to the consent page.
        const again = await authorizeUrl();
        await page.goto(again.url, { waitUntil: 'load' });
        await page.locator('button[name="action"][value="approve"]').waitFor({ state: 'visible' });
        assert.equal(await page.locator('input[name="password"]').count(), 0);

        const log = w.proxy.logs().join('\n');
        for (const s of [PASSWORD, code, tokens.access_token, tokens.refresh_token, secret]) {
            assert.ok(!log.includes(s), 'no secret in the server log');
        }
    });

    test('deny redirects with error=access_denied and the state', async () => {
        const { url, state } = await authorizeUrl();
        await openLogin(url);
        await signIn();
        const landed = await decide('deny');
        assert.equal(landed.searchParams.get('error'), 'access_denied');
        assert.equal(landed.searchParams.get('state'), state);
        assert.equal(landed.searchParams.get('code'), null);
    });

    test('a wrong password is refused and the browser stays on the sign-in page', async () => {
        const hitsBefore = app.hits.length;
        const { url } = await authorizeUrl();
        await openLogin(url);
        const resp = await signIn('alice', 'not-the-password');
        assert.equal(resp.status(), 401);
        assert.match(await page.locator('[role="alert"]').textContent(), /Invalid name or password/);
        assert.equal(await page.locator('button[value="approve"]').count(), 0);
        const unknown = await signIn('nobody', PASSWORD);
        assert.equal(unknown.status(), 401);
        assert.equal(app.hits.length, hitsBefore, 'no redirect to the app');
        // The right password still works afterwards (under the throttle limit).
        const ok = await signIn();
        assert.equal(ok.status(), 200);
        await page.locator('button[value="approve"]').waitFor({ state: 'visible' });
    });

    test('POST without a CSRF token, or with a wrong one, is refused', async () => {
        const { url } = await authorizeUrl();
        await openLogin(url);
        await page.locator('input[name="csrf"]').evaluate((el) => el.remove());
        const missing = await signIn();
        assert.equal(missing.status(), 403);
        assert.equal(await page.locator('button[value="approve"]').count(), 0);

        await openLogin(url);
        await page.locator('input[name="csrf"]').evaluate((el) => {
            el.value = '0'.repeat(64);
        });
        const wrong = await signIn();
        assert.equal(wrong.status(), 403);

        // After signing in, approving with a wrong token is refused too, and no code is issued.
        await openLogin(url);
        await signIn();
        const hitsBefore = app.hits.length;
        await page.locator('input[name="csrf"]').evaluate((el) => {
            el.value = 'f'.repeat(64);
        });
        const [resp] = await Promise.all([
            page.waitForResponse((r) => r.url().endsWith('/oauth/authorize') && r.request().method() === 'POST'),
            page.click('button[name="action"][value="approve"]'),
        ]);
        assert.equal(resp.status(), 403);
        assert.equal(app.hits.length, hitsBefore);
    });

    test('an unregistered redirect_uri is an error page, never a redirect', async () => {
        const { url } = await authorizeUrl();
        const bad = new URL(url);
        bad.searchParams.set('redirect_uri', `http://127.0.0.1:${app.port}/evil`);
        const resp = await page.goto(bad.href, { waitUntil: 'load' });
        assert.equal(resp.status(), 400);
        assert.ok(page.url().startsWith(as.authorization_endpoint));
        assert.match(await page.locator('#error').textContent(), /redirect_uri/);
    });
});

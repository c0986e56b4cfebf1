// OAuth meets the rest of the proxy: code lifetime, the Secure cookie behind TLS, and what the
// audit log says about calls made with OAuth tokens (and that it never holds one).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { setupWorld, req, cli, sleep, waitFor } from './lib/harness.mjs';
import { createClient, createOperator, authorizeCode, token } from './lib/oauth_flow.mjs';

const REDIRECT = 'http://127.0.0.1:9/callback';

test('an authorization code older than oauth.code_ttl is refused with invalid_grant', async (t) => {
    const w = await setupWorld({ keys: {}, proxyArgs: ['--oauth-code-ttl', '3s'] });
    t.after(() => w.close());
    const client = createClient(w.db, ['--name', 'app', '--scopes', 'proxy:read', '--redirect-uri', REDIRECT]);
    const operator = createOperator(w.db, 'alice');
    const fresh = await authorizeCode(w.port, { client, operator, redirect: REDIRECT });
    const stale = await authorizeCode(w.port, { client, operator, redirect: REDIRECT });
    const ok = await token(w.port, client, {
        grant_type: 'authorization_code', code: fresh.code, redirect_uri: REDIRECT, code_verifier: fresh.verifier,
    });
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    await sleep(4100); // expiry is kept in whole seconds: past 3 s for certain
    const late = await token(w.port, client, {
        grant_type: 'authorization_code', code: stale.code, redirect_uri: REDIRECT, code_verifier: stale.verifier,
    });
    assert.equal(late.status, 400);
    assert.equal(late.json.error, 'invalid_grant');
    assert.equal(late.json.access_token, undefined);
});

test('behind a TLS terminator (https issuer) the sign-in cookie is Secure; over plain http it is not', async (t) => {
    const w = await setupWorld({ keys: {}, proxyArgs: ['--oauth-issuer', 'https://ledger-proxy.example.com'] });
    t.after(() => w.close());
    const client = createClient(w.db, ['--name', 'app', '--scopes', 'proxy:read', '--redirect-uri', REDIRECT]);
    const q = new URLSearchParams({
        response_type: 'code', client_id: client.id, redirect_uri: REDIRECT, state: 's',
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
    });
    const page = await req(w.port, 'GET', `/oauth/authorize?${q}`, { agent: false });
    assert.equal(page.status, 200);
    const cookie = page.headers['set-cookie'][0];
    assert.match(cookie, /; Secure/);
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Lax/);
    const meta = await req(w.port, 'GET', '/.well-known/oauth-authorization-server', { agent: false });
    assert.equal(JSON.parse(meta.text).issuer, 'https://ledger-proxy.example.com');

    const plain = await setupWorld({ keys: {} });
    t.after(() => plain.close());
    const c2 = createClient(plain.db, ['--name', 'app', '--scopes', 'proxy:read', '--redirect-uri', REDIRECT]);
    q.set('client_id', c2.id);
    const p2 = await req(plain.port, 'GET', `/oauth/authorize?${q}`, { agent: false });
    assert.equal(p2.status, 200);
    assert.doesNotMatch(p2.headers['set-cookie'][0], /Secure/);
});

test('calls made with OAuth tokens are audited as the client, and no OAuth secret reaches the audit log', async (t) => {
    const w = await setupWorld({ keys: {}, proxyArgs: ['--audit-refusal-window', '1s'] });
    t.after(() => w.close());
    const machine = createClient(w.db, ['--name', 'nightly reports', '--scopes', 'proxy:read,proxy:write']);
    const web = createClient(w.db, ['--name', 'web app', '--scopes', 'proxy:read', '--redirect-uri', REDIRECT]);
    const operator = createOperator(w.db, 'alice');
    const secrets = [machine.secret, web.secret, operator.password];

    const cc = await token(w.port, machine, { grant_type: 'client_credentials' });
    assert.equal(cc.status, 200);
    secrets.push(cc.json.access_token);
    const flow = await authorizeCode(w.port, { client: web, operator, redirect: REDIRECT });
    secrets.push(flow.code, flow.verifier);
    const ac = await token(w.port, web, {
        grant_type: 'authorization_code', code: flow.code, redirect_uri: REDIRECT, code_verifier: flow.verifier,
    });
    assert.equal(ac.status, 200);
    secrets.push(ac.json.access_token, ac.json.refresh_token);

    const created = await req(w.port, 'POST', w.p('/ledgers'), {
        headers: { authorization: `Bearer ${cc.json.access_token}`, 'content-type': 'application/json' },
        body: '{"name":"from a machine"}',
        agent: false,
    });
    assert.equal(created.status, 201);
    const read = await req(w.port, 'GET', w.p('/ledgers'), {
        headers: { authorization: `Bearer ${ac.json.access_token}` },
        agent: false,
    });
    assert.equal(read.status, 200);
    const refused = await req(w.port, 'POST', w.p('/ledgers'), {
        headers: { authorization: `Bearer ${ac.json.access_token}`, 'content-type': 'application/json' },
        body: '{}',
        agent: false,
    });
    assert.equal(refused.status, 403);
    const bogus = await req(w.port, 'GET', w.p('/ledgers'), {
        headers: { authorization: `Bearer ${ac.json.refresh_token}` },
        agent: false,
    });
    assert.equal(bogus.status, 401);

    const byId = new Map();
    await waitFor(
        () => {
            const out = cli(['audit', 'list', '--json', '--limit', '1000'], { db: w.db, json: false });
            for (const line of out.stdout.split('\n').filter(Boolean)) {
                const rec = JSON.parse(line);
                if (rec.request_id) {
                    byId.set(rec.request_id, rec);
                }
            }
            return [created, read, refused, bogus].every((r) => byId.has(r.headers['x-request-id']));
        },
        { timeoutMs: 10000, what: 'the four records' },
    );
    const rec = (r) => byId.get(r.headers['x-request-id']);
    assert.equal(rec(created).actor_type, 'oauth_client');
    assert.equal(rec(created).actor_id, machine.id);
    assert.equal(rec(created).actor_name, 'nightly reports');
    assert.equal(rec(created).action, 'Ledger created');
    assert.match(rec(created).resource_id, /^ldg_/);
    assert.equal(rec(read).actor_type, 'oauth_client');
    assert.equal(rec(read).actor_id, web.id);
    assert.equal(rec(read).actor_name, 'web app');
    assert.equal(rec(refused).actor_id, web.id);
    assert.equal(rec(refused).status, 403);
    assert.equal(rec(refused).error, 'AUTH_INSUFFICIENT_PERMISSIONS');
    assert.equal(rec(refused).core_status, 0);
    assert.equal(rec(bogus).actor_type, 'anonymous');
    assert.equal(rec(bogus).error, 'AUTH_INVALID_BEARER_TOKEN');

    const all = cli(['audit', 'list', '--json', '--limit', '100000'], { db: w.db, json: false }).stdout;
    for (const s of secrets) {
        assert.ok(!all.includes(s), 'no OAuth secret, token, code or verifier in the audit log');
        assert.ok(!w.proxy.logs().join('\n').includes(s), 'nor in the server log');
    }
    for (const prefix of ['blnk_at_', 'blnk_rt_', 'blnk_cs_']) {
        assert.ok(!all.includes(prefix), `no ${prefix} text in the audit log`);
    }
});

// Plain-HTTP helpers for OAuth flows in tests: create a client and an operator with the CLI, and
// walk /oauth/authorize like a browser (cookie + CSRF token) to get an authorization code.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { cli, req, tmpDir, randomHex } from './harness.mjs';

export const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const form = (o) => new URLSearchParams(o).toString();

export function createClient(db, args) {
    const res = cli(['client', 'create', ...args], { db });
    assert.equal(res.code, 0, `client create: ${res.stderr}`);
    return { id: res.json.client_id, secret: res.json.client_secret, json: res.json };
}

export function createOperator(db, name) {
    const password = `pw-${randomHex(12)}`;
    const file = path.join(tmpDir(), `pw-${name}`);
    fs.writeFileSync(file, `${password}\n`, { mode: 0o600 });
    const res = cli(['operator', 'create', '--name', name, '--password-file', file], { db });
    assert.equal(res.code, 0, `operator create: ${res.stderr}`);
    return { id: res.json.id, name, password };
}

export const basic = (c) => ({ authorization: 'Basic ' + Buffer.from(`${c.id}:${c.secret}`).toString('base64') });

export function pkcePair() {
    const verifier = crypto.randomBytes(32).toString('base64url');
    const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
    return { verifier, challenge };
}

// Returns { code, state, verifier, pages: [responses] }.
export async function authorizeCode(port, { client, operator, redirect, scope = 'proxy:read' }) {
    const { verifier, challenge } = pkcePair();
    const state = randomHex(8);
    const q = {
        response_type: 'code',
        client_id: client.id,
        redirect_uri: redirect,
        state,
        scope,
        code_challenge: challenge,
        code_challenge_method: 'S256',
    };
    const page = await req(port, 'GET', `/oauth/authorize?${form(q)}`, { agent: false });
    assert.equal(page.status, 200, page.text);
    let cookie = page.headers['set-cookie'][0].split(';')[0];
    let csrf = page.text.match(/name="csrf" value="([0-9a-f]{64})"/)[1];
    const login = await req(port, 'POST', '/oauth/authorize', {
        headers: { ...FORM, cookie },
        body: form({ ...q, csrf, action: 'login', name: operator.name, password: operator.password }),
        agent: false,
    });
    assert.equal(login.status, 200, login.text);
    cookie = login.headers['set-cookie'][0].split(';')[0];
    csrf = login.text.match(/name="csrf" value="([0-9a-f]{64})"/)[1];
    const approve = await req(port, 'POST', '/oauth/authorize', {
        headers: { ...FORM, cookie },
        body: form({ ...q, csrf, action: 'approve' }),
        agent: false,
    });
    assert.equal(approve.status, 302, approve.text);
    const location = new URL(approve.headers.location);
    assert.equal(location.searchParams.get('state'), state);
    return { code: location.searchParams.get('code'), state, verifier, pages: [page, login, approve] };
}

export async function token(port, client, params) {
    const res = await req(port, 'POST', '/oauth/token', {
        headers: { ...FORM, ...basic(client) },
        body: form(params),
        agent: false,
    });
    return { status: res.status, json: JSON.parse(res.text), res };
}

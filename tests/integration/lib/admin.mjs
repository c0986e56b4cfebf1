// admin.mjs — helpers for the tests of the admin API (docs/ADMIN_API.md) and its console:
// operators and admin tokens made with the CLI, calls to /admin/api with an admin token or a
// console session (cookie + CSRF token), and the API's answers.
//
//   cliOk(db, args)          cli(args, {db}), asserted to exit 0 → its JSON
//   makeOperator(db, name, {password, role})
//       `operator create` with the password in a fresh temp file; no role: the CLI's default
//       (approver). Asserts success. → the operator's JSON ({id, name, role, ...})
//   makeAdminToken(db, op, name = 'test')
//       `operator token-create` for op (an operator's JSON); asserts success. → the token
//   adminApi(port, method, p, {token, session, body, headers = {}, timeoutMs = 10000})
//       one call to /admin/api<p> on a fresh connection. token: an admin token (Bearer); session:
//       {cookie, csrf} of a console sign-in, the CSRF token sent (X-CSRF-Token) with all but GET
//       and only when there is one; body: an object (sent as JSON) or raw text, with
//       Content-Type application/json unless headers name one. → req()'s answer
//   signIn(port, name, password, {timeoutMs = 60000})
//       POST /admin/api/session (Argon2id on a nice-19 thread: slow on a busy machine) → {r} (the answer), and when it is 200 also {cookie, csrf}: the
//       session's cookie ('blnkproxy_admin=…') and CSRF token, as adminApi's session takes them
//   assertAdminError(r, status, code, {message, exactKeys = false})
//       Core's error shape: the status, error_detail.code, error equal to error_detail.message;
//       exactKeys: the body's keys are exactly error and error_detail; message: a RegExp the
//       message matches. (harness.mjs's assertError checks more: content type, X-Request-Id.)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { bearer, cli, req, tmpDir } from './harness.mjs';

export function cliOk(db, args) {
    const r = cli(args, { db });
    assert.equal(r.code, 0, `blnkproxy ${args.join(' ')}: ${r.stderr}`);
    return r.json;
}

export function makeOperator(db, name, { password, role } = {}) {
    const pw = path.join(tmpDir(), 'pw');
    fs.writeFileSync(pw, password, { mode: 0o600 });
    const args = ['operator', 'create', '--name', name, '--password-file', pw];
    if (role) {
        args.push('--role', role);
    }
    return cliOk(db, args);
}

export const makeAdminToken = (db, op, name = 'test') => cliOk(db, ['operator', 'token-create', op.id, '--name', name]).token;

export function adminApi(port, method, p, { token, session, body, headers = {}, timeoutMs = 10000 } = {}) {
    const h = { ...headers };
    if (token) {
        Object.assign(h, bearer(token));
    }
    if (session) {
        h.cookie = session.cookie;
        if (session.csrf && method !== 'GET') {
            h['x-csrf-token'] = session.csrf;
        }
    }
    if (body !== undefined && !Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) {
        h['content-type'] = 'application/json';
    }
    return req(port, method, `/admin/api${p}`, { headers: h, body, agent: false, timeoutMs });
}

export async function signIn(port, name, password, { timeoutMs = 60000 } = {}) {
    const r = await adminApi(port, 'POST', '/session', { body: { name, password }, timeoutMs });
    if (r.status !== 200) {
        return { r };
    }
    return { r, cookie: r.headers['set-cookie'][0].split(';')[0], csrf: r.json.csrf_token };
}

export function assertAdminError(r, status, code, { message, exactKeys = false } = {}) {
    assert.equal(r.status, status, r.text);
    assert.equal(r.json?.error_detail?.code, code, r.text);
    assert.equal(r.json.error, r.json.error_detail.message);
    if (exactKeys) {
        assert.deepEqual(Object.keys(r.json).sort(), ['error', 'error_detail']);
    }
    if (message) {
        assert.match(r.json.error, message);
    }
}

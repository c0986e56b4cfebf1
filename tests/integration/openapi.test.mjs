// Issue 14, item 6: `blnkproxy openapi` prints an OpenAPI 3.1 document generated from the route
// table and the error catalog. It is validated with a real OpenAPI 3.1 validator from npm, and
// compared with the lists the README gives by hand (route table, error table).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Validator } from '@seriousme/openapi-schema-validator';

import { assertError, BIN, req, startProxy, waitFor } from './lib/harness.mjs';

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'bp-openapi-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

function openapi(args = [], { cwd = root } = {}) {
    const env = { ...process.env };
    delete env.BLNKPROXY_CONFIG;
    const r = spawnSync(BIN, ['openapi', ...args], { encoding: 'utf8', cwd, env, timeout: 30000 });
    assert.equal(r.error, undefined);
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function validate(doc) {
    const v = new Validator();
    const res = await v.validate(structuredClone(doc));
    return { ...res, version: v.version };
}

/** README's route table: [{method, pattern, action, scope}]. */
function readmeRoutes() {
    const text = fs.readFileSync(path.join(SRC, 'README.md'), 'utf8');
    const table = text.split('## Route table')[1].split('\nNever forwarded')[0];
    const routes = [];
    for (const line of table.split('\n')) {
        const cells = line.split('|').map((c) => c.trim());
        if (cells.length < 5 || !/^(GET|POST|PUT|PATCH|DELETE)/.test(cells[1])) {
            continue;
        }
        const method = cells[1].split(' ')[0];
        const scope = method === 'GET' || cells[1].includes('read scope') ? 'proxy:read' : 'proxy:write';
        const action = cells[3] === '—' ? null : cells[3].replace(' (+ defaults)', '');
        for (const m of cells[2].matchAll(/`(\/[^`]*)`/g)) {
            routes.push({ method, pattern: m[1], action, scope });
        }
    }
    return routes;
}

/** README's error table: [{status, code}] (the 401/403 cells carry more than the number). */
function readmeErrors() {
    const text = fs.readFileSync(path.join(SRC, 'README.md'), 'utf8');
    const table = text.split('### Errors')[1].split('\n\n')[2];
    const rows = [];
    for (const line of table.split('\n')) {
        const m = /\| (\d{3})[^|]*\| `([A-Z_]+)` \|$/.exec(line);
        if (m) {
            rows.push({ status: m[1], code: m[2] });
        }
    }
    return rows;
}

const templ = (pattern) => `/proxy${pattern.replace(/:([a-z_]+)/g, '{$1}')}`;
const shape = (p) => p.replace(/\{[^}]+\}/g, '{}');

/** The operation for a route, found by its shape (paths of one shape share the first row's names). */
function findOp(doc, method, pattern) {
    const key = Object.keys(doc.paths).find((p) => shape(p) === shape(templ(pattern)));
    return key ? doc.paths[key][method.toLowerCase()] : undefined;
}

describe('blnkproxy openapi', () => {
    const r = openapi();
    const doc = JSON.parse(r.stdout);

    test('prints a document that a real OpenAPI 3.1 validator accepts', async () => {
        assert.equal(r.code, 0, r.stderr);
        assert.equal(doc.openapi, '3.1.0');
        const res = await validate(doc);
        assert.equal(res.version, '3.1');
        assert.equal(res.valid, true, JSON.stringify(res.errors, null, 2));
    });

    test('the validator is not a rubber stamp: a broken document is refused', async () => {
        const broken = structuredClone(doc);
        delete broken.info.title;
        broken.paths['/proxy/ledgers'].post.responses = 'none';
        const res = await validate(broken);
        assert.equal(res.valid, false);
    });

    test("every route of the README's table is an operation with its scope and audit action", () => {
        const routes = readmeRoutes();
        assert.ok(routes.length >= 42, `${routes.length} routes in the README`);
        let ops = 0;
        for (const p of Object.values(doc.paths)) {
            ops += Object.keys(p).filter((k) => k !== 'parameters').length;
        }
        assert.equal(ops, routes.length, 'one operation per route, no more');
        for (const rt of routes) {
            const op = findOp(doc, rt.method, rt.pattern);
            assert.ok(op, `${rt.method} ${rt.pattern} in the document`);
            assert.equal(op['x-blnkproxy-route'], rt.pattern);
            assert.equal(op['x-blnkproxy-scope'], rt.scope, `${rt.method} ${rt.pattern} scope`);
            assert.deepEqual(op.security, [{ bearer: [rt.scope] }, { sdkKey: [rt.scope] }]);
            assert.equal(op['x-blnkproxy-audit-action'], rt.action ?? undefined, `${rt.method} ${rt.pattern} action`);
            // Writes take an Idempotency-Key (DESIGN §4b); reads do not.
            const params = [{ $ref: '#/components/parameters/instance_id' }];
            if (rt.method !== 'GET') {
                params.push({ $ref: '#/components/parameters/Idempotency-Key' });
            }
            assert.deepEqual(op.parameters, params, `${rt.method} ${rt.pattern} parameters`);
            assert.ok(op.responses.default, 'Core answers pass through');
        }
        // OpenAPI allows one template per shape: /identities/{identity_id} (PUT) and /identities/:id
        // (GET) are one path.
        const shapes = Object.keys(doc.paths).map(shape);
        assert.equal(new Set(shapes).size, shapes.length, 'no two paths of the same shape');
        assert.ok(doc.paths['/proxy/identities/{identity_id}'].get);
        assert.ok(doc.paths['/proxy/identities/{identity_id}'].put);
    });

    test("every refusal of the README's error table is a response with its code", () => {
        const errors = readmeErrors();
        assert.ok(errors.length >= 14, `${errors.length} error rows in the README`);
        for (const e of errors) {
            const resp = doc.components.responses[`Proxy${e.status}`];
            assert.ok(resp, `a ${e.status} response`);
            const examples = Object.values(resp.content['application/json'].examples);
            assert.ok(examples.some((x) => x.value.error_detail.code === e.code), `${e.status} ${e.code}`);
            assert.ok(findOp(doc, 'POST', '/ledgers').responses[e.status], `POST /ledgers documents ${e.status}`);
        }
        assert.equal(doc.components.responses.Proxy401.headers['WWW-Authenticate'].example, 'Bearer realm="blnkproxy"');
        assert.equal(doc.components.responses.Proxy503.headers['Retry-After'].example, 1);
        assert.equal(findOp(doc, 'GET', '/ledgers').responses['413'], undefined, 'no body, no 413');
        assert.ok(findOp(doc, 'POST', '/ledgers').responses['413']);
        // Idempotency-Key's answers are for writes only.
        assert.equal(findOp(doc, 'GET', '/ledgers').responses['422'], undefined);
        assert.equal(findOp(doc, 'GET', '/ledgers').responses['409'], undefined);
        assert.ok(findOp(doc, 'POST', '/transactions').responses['409']);
        assert.ok(findOp(doc, 'POST', '/transactions').responses['422']);
    });

    test('request bodies: JSON with the transaction defaults described, multipart for the upload', () => {
        assert.match(findOp(doc, 'POST', '/transactions').requestBody.description, /precision/);
        assert.ok(findOp(doc, 'POST', '/reconciliation/upload').requestBody.content['multipart/form-data']);
        assert.equal(findOp(doc, 'GET', '/ledgers').requestBody, undefined);
    });
});

describe('blnkproxy openapi with the configuration\'s routes', () => {
    test('routes added and removed in the config file are in the document, which stays valid', async () => {
        const cfg = path.join(root, 'routes.json');
        fs.writeFileSync(cfg, JSON.stringify({
            listen: '127.0.0.1:9099',
            routes: {
                remove: ['DELETE /reconciliation/matching-rules/:id'],
                add: [{ method: 'GET', path: '/ledgers/:id/export', scope: 'proxy:read', action: 'Ledger exported', category: 'exports' }],
            },
        }));
        const r = openapi(['--config', cfg]);
        assert.equal(r.code, 0, r.stderr);
        const doc = JSON.parse(r.stdout);
        assert.equal(findOp(doc, 'DELETE', '/reconciliation/matching-rules/:id'), undefined);
        const added = findOp(doc, 'GET', '/ledgers/:id/export');
        assert.equal(added['x-blnkproxy-audit-action'], 'Ledger exported');
        assert.deepEqual(added.tags, ['exports']);
        assert.ok(doc.tags.some((t) => t.name === 'exports'));
        assert.equal(doc.servers[0].url, 'http://127.0.0.1:9099');
        const res = await validate(doc);
        assert.equal(res.valid, true, JSON.stringify(res.errors));
    });

    test('a bad routes entry is refused with the reason, and nothing is printed', () => {
        const cfg = path.join(root, 'bad.json');
        fs.writeFileSync(cfg, JSON.stringify({ routes: { remove: ['GET /nope'] } }));
        const r = openapi(['--config', cfg]);
        assert.equal(r.code, 2);
        assert.equal(r.stdout, '');
        assert.match(r.stderr, /routes\.remove\[0\]/);
    });
});

describe('GET /proxy/openapi.json', () => {
    test('serves the document without a credential: what `blnkproxy openapi` prints, with "/" as its server; valid; follows a reload', async () => {
        const cfg = path.join(root, 'served.json');
        const routes = (action) => ({
            routes: { add: [{ method: 'GET', path: '/ledgers/:id/export', scope: 'proxy:read', action, category: 'exports' }] },
        });
        fs.writeFileSync(cfg, JSON.stringify(routes('Ledger exported')));
        const proxy = await startProxy({ args: ['--config', cfg] });
        try {
            const res = await req(proxy.port, 'GET', '/proxy/openapi.json', { agent: false });
            assert.equal(res.status, 200, res.text);
            assert.match(res.headers['content-type'], /^application\/json/);
            assert.match(res.headers['cache-control'], /max-age=/);
            const served = JSON.parse(res.text);
            assert.deepEqual(served.servers.map((s) => s.url), ['/']);
            const printed = openapi(['--config', cfg]);
            assert.equal(printed.code, 0, printed.stderr);
            const doc = JSON.parse(printed.stdout);
            assert.deepEqual({ ...served, servers: null }, { ...doc, servers: null }, 'the same document as the CLI prints');
            assert.equal(findOp(served, 'GET', '/ledgers/:id/export')['x-blnkproxy-audit-action'], 'Ledger exported');
            const v = await validate(served);
            assert.equal(v.valid, true, JSON.stringify(v.errors));

            // HEAD has the headers; other methods are not served.
            const head = await req(proxy.port, 'HEAD', '/proxy/openapi.json', { agent: false });
            assert.equal(head.status, 200);
            assert.equal(head.headers['content-length'], res.headers['content-length']);
            const post = await req(proxy.port, 'POST', '/proxy/openapi.json', { agent: false, body: '{}' });
            assertError(post, 404, 'GEN_NOT_FOUND');

            // The routes are live: after SIGHUP the served document has the new action.
            fs.writeFileSync(cfg, JSON.stringify(routes('Ledger exported again')));
            proxy.child.kill('SIGHUP');
            await proxy.waitForLog((o) => o.msg === 'configuration reloaded', 5000);
            await waitFor(
                async () => {
                    const r = await req(proxy.port, 'GET', '/proxy/openapi.json', { agent: false });
                    return findOp(JSON.parse(r.text), 'GET', '/ledgers/:id/export')['x-blnkproxy-audit-action'] === 'Ledger exported again';
                },
                { timeoutMs: 10000, what: 'the document after the reload' },
            );
        } finally {
            await proxy.stop();
        }
    });

    test('a Core path next to it still needs a credential', async () => {
        const proxy = await startProxy();
        try {
            assertError(await req(proxy.port, 'GET', '/proxy/openapi.jsonx', { agent: false }), 401, 'AUTH_MISSING_API_KEY');
            assertError(await req(proxy.port, 'GET', '/proxy/openapi.json/x', { agent: false }), 401, 'AUTH_MISSING_API_KEY');
        } finally {
            await proxy.stop();
        }
    });
});

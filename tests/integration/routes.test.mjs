// DESIGN §3: every documented route is forwarded exactly (method, path, query without
// instance_id, body bytes, response); Core admin routes and path tricks never reach Core.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { assertError, bearer, parseResponses, rawRequest, req, setupWorld } from './lib/harness.mjs';

let w;
before(async () => {
    w = await setupWorld({ keys: { all: ['*'] } });
});
after(async () => {
    await w?.close();
});

const auth = () => bearer(w.keys.all.key);

// [method, core path, body or null]; bodies on /transactions carry precision and reference so
// the transaction defaults (§4) leave them unchanged.
const TX = '{"amount":100.50,"precision":100,"reference":"ref-client-1","currency":"USD","source":"@a","destination":"@b"}';
const ROUTES = [
    // documented Cloud routes: write
    ['POST', '/ledgers', '{"name":"General Ledger","meta_data":{"k":"v"}}'],
    ['POST', '/balances', '{"ledger_id":"ldg_1","currency":"USD"}'],
    ['POST', '/transactions', TX],
    ['POST', '/transactions/bulk', `{"atomic":true,"transactions":[${TX}]}`],
    ['PUT', '/transactions/inflight/txn_0a1b', '{"status":"commit"}'],
    ['POST', '/refund-transaction/txn_0a1b', null],
    ['POST', '/identities', '{"identity_type":"individual","first_name":"Ada"}'],
    ['PUT', '/identities/idt_42', '{"first_name":"Grace"}'],
    ['PUT', '/balances/bln_7/identity', '{"identity_id":"idt_42"}'],
    ['POST', '/ldg_1/metadata', '{"meta_data":{"x":1}}'],
    // documented Cloud routes: read
    ['GET', '/balances/bln_7/at', null, 'timestamp=2024-01-01T00%3A00%3A00Z'],
    ['GET', '/balances/bln_7/lineage', null],
    ['GET', '/transactions/txn_0a1b/lineage', null],
    ['GET', '/identities/idt_42/tokenized-fields', null],
    ['GET', '/identities/idt_42/detokenize/first_name', null],
    // tokenization
    ['POST', '/identities/idt_42/tokenize/first_name', null],
    ['POST', '/identities/idt_42/tokenize', '{"fields":["first_name","last_name"]}'],
    ['POST', '/identities/idt_42/detokenize', '{"fields":["first_name"]}'],
    // reconciliation (upload has its own multipart test)
    ['POST', '/reconciliation/start', '{"upload_id":"upl_1","strategy":"one_to_one"}'],
    ['POST', '/reconciliation/matching-rules', '{"name":"r","criteria":[]}'],
    ['PUT', '/reconciliation/matching-rules/rule_1', '{"name":"r2"}'],
    ['DELETE', '/reconciliation/matching-rules/rule_1', null],
    ['GET', '/reconciliation/rec_1', null],
    ['POST', '/reconciliation/start-instant', '{"external_transactions":[]}'],
    // Core reads
    ['GET', '/ledgers', null],
    ['GET', '/ledgers/ldg_1', null],
    ['GET', '/balances', null],
    ['GET', '/balances/bln_7', null],
    ['GET', '/balances/indicator/@world/currency/USD', null],
    ['GET', '/transactions', null],
    ['GET', '/transactions/txn_0a1b', null],
    ['GET', '/transactions/reference/ref-client-1', null],
    ['GET', '/identities', null],
    ['GET', '/identities/idt_42', null],
    ['GET', '/health', null],
    // read-only POST queries
    ['POST', '/ledgers/filter', '{"filters":[{"field":"name","operator":"eq","value":"x"}]}'],
    ['POST', '/balances/filter', '{"filters":[]}'],
    ['POST', '/transactions/filter', '{"filters":[]}'],
    ['POST', '/identities/filter', '{"filters":[]}'],
    ['POST', '/search/ledgers', '{"q":"*"}'],
    ['POST', '/multi-search', '{"searches":[{"collection":"ledgers","q":"*"}]}'],
];

for (const [method, corePath, body, coreQuery] of ROUTES) {
    test(`${method} ${corePath} is forwarded exactly`, async () => {
        w.core.reset();
        w.core.setHandler(null);
        const extra = coreQuery ? `${coreQuery}&` : '';
        // instance_id in the middle of the query; everything else must reach Core byte-for-byte, in order.
        const path = `/proxy${corePath}?${extra}a=1&instance_id=${w.instance.id}&b=%20c&z=%2F%2e`;
        const headers = { ...auth(), 'x-test-marker': `m-${method}-${corePath}` };
        if (body !== null) {
            headers['content-type'] = 'application/json';
        }
        const res = await req(w.port, method, path, { headers, body: body ?? undefined });
        assert.equal(w.core.requests.length, 1, `Core got exactly one request (status ${res.status} ${res.text})`);
        const rec = w.core.requests[0];
        assert.equal(rec.method, method);
        assert.equal(rec.rawPath, `${corePath}?${extra}a=1&b=%20c&z=%2F%2e`);
        assert.equal(rec.body.toString('latin1'), body ?? '');
        assert.equal(res.status, rec.response.status);
        assert.deepEqual(res.body, rec.response.body, 'response body bytes are Core\'s');
        assert.equal(res.headers['content-type'], 'application/json');
        assert.equal(res.headers['x-fake-core-seq'], String(rec.seq));
        assert.equal(res.headers['x-test-marker-echo'], headers['x-test-marker']);
        assert.ok(res.headers['x-request-id'], 'X-Request-Id on proxied response');
    });
}

test('query variants: instance_id first, last, alone, next to look-alike names', async () => {
    const id = w.instance.id;
    const cases = [
        [`/proxy/ledgers?instance_id=${id}&a=1`, '/ledgers?a=1'],
        [`/proxy/ledgers?a=1&instance_id=${id}`, '/ledgers?a=1'],
        [`/proxy/ledgers?a=1&instance_id=${id}&b=%20c`, '/ledgers?a=1&b=%20c'],
        [`/proxy/ledgers?my_instance_id=x&instance_id=${id}&instance_idx=y`, '/ledgers?my_instance_id=x&instance_idx=y'],
        [`/proxy/ledgers?page=2&per_page=10&instance_id=${id}&sort=%2Bname&q=a+b&e=`, '/ledgers?page=2&per_page=10&sort=%2Bname&q=a+b&e='],
        // assumption: with nothing left, Core sees the path without a '?'
        [`/proxy/ledgers?instance_id=${id}`, '/ledgers'],
    ];
    for (const [path, want] of cases) {
        w.core.reset();
        const res = await req(w.port, 'GET', path, { headers: auth() });
        assert.equal(res.status, 200, `${path}: ${res.text}`);
        assert.equal(w.core.requests.length, 1, path);
        assert.equal(w.core.requests[0].rawPath, want, path);
    }
});

test('percent-encoding outside the forbidden set passes to Core as sent', async () => {
    w.core.reset();
    // %20 (space), %3A (':'), %40 ('@'), %C3%A9 ('é'): reserved or non-ASCII, so not aliases of a plain byte
    const res = await req(w.port, 'GET', w.p('/transactions/reference/ref%20with%20space%3A%40%C3%A9'), { headers: auth() });
    assert.equal(res.status, 200, res.text);
    assert.equal(w.core.requests[0].path, '/transactions/reference/ref%20with%20space%3A%40%C3%A9');
});

test('percent-encoded aliases of admin routes never reach Core', async () => {
    w.core.reset();
    for (const [m, p] of [
        ['POST', '/search/%72eindex'],
        ['POST', '/search/REINDEX'],
        ['GET', '/%61pi-keys'],
        ['POST', '/%61pi-keys/metadata'],
        ['POST', '/API-KEYS/metadata'],
        ['POST', '/transactions/%72ecover'],
    ]) {
        const res = await req(w.port, m, w.p(p), { headers: { ...auth(), 'content-type': 'application/json' }, body: m === 'POST' ? '{}' : undefined });
        assert.ok([400, 404].includes(res.status), `${m} ${p}: ${res.status} ${res.text}`);
    }
    assert.equal(w.core.requests.length, 0, `Core saw: ${w.core.requests.map((r) => `${r.method} ${r.rawPath}`).join(', ')}`);
});

test('HEAD of a GET route is forwarded as HEAD', async () => {
    w.core.reset();
    const res = await req(w.port, 'HEAD', w.p('/ledgers/ldg_1'), { headers: auth() });
    assert.equal(res.status, 200);
    assert.equal(res.body.length, 0);
    assert.equal(w.core.requests.length, 1);
    assert.equal(w.core.requests[0].method, 'HEAD');
    assert.equal(w.core.requests[0].rawPath, '/ledgers/ldg_1');
});

test('Core admin routes and unknown routes are 404 GEN_NOT_FOUND and never reach Core', async () => {
    const cases = [
        ['GET', '/api-keys'],
        ['POST', '/api-keys'],
        ['GET', '/api-keys/x'],
        ['DELETE', '/api-keys/x'],
        ['POST', '/api-keys/metadata'],
        ['POST', '/backup'],
        ['GET', '/backup'],
        ['POST', '/backup/drive'],
        ['GET', '/hooks'],
        ['POST', '/hooks'],
        ['GET', '/hooks/x'],
        ['PUT', '/hooks/x'],
        ['DELETE', '/hooks/x'],
        ['POST', '/search/reindex'],
        ['POST', '/transactions/recover'],
        ['GET', '/balances-snapshots'],
        ['POST', '/balances-snapshots'],
        ['POST', '/mocked-account'],
        ['GET', '/accounts'],
        ['POST', '/accounts'],
        ['GET', '/accounts/x'],
        ['GET', '/balance-monitors'],
        ['POST', '/balance-monitors'],
        ['GET', '/balance-monitors/x'],
        ['PUT', '/balance-monitors/x'],
        // not in the table at all, or wrong method for a known path
        ['GET', '/nope'],
        ['DELETE', '/ledgers'],
        ['PATCH', '/ledgers/ldg_1'],
        ['GET', '/ledgers/ldg_1/extra'],
        ['POST', '/reconciliation/upload/extra'],
    ];
    w.core.reset();
    for (const [method, corePath] of cases) {
        const res = await req(w.port, method, w.p(corePath), {
            headers: { ...auth(), 'content-type': 'application/json' },
            body: method === 'GET' || method === 'DELETE' ? undefined : '{}',
        });
        assertError(res, 404, 'GEN_NOT_FOUND');
    }
    assert.equal(w.core.requests.length, 0, `Core saw: ${w.core.requests.map((r) => `${r.method} ${r.rawPath}`).join(', ')}`);
});

test('path tricks are 400 GEN_MALFORMED_REQUEST and never reach Core', async () => {
    const id = w.instance.id;
    const tricks = [
        '/proxy/ledgers/../api-keys',
        '/proxy/ledgers/..',
        '/proxy/./ledgers',
        '/proxy/ledgers/.',
        '/proxy//ledgers',
        '/proxy/ledgers//ldg_1',
        '/proxy/ledgers/',
        '/proxy/ledgers%2F..%2Fapi-keys',
        '/proxy/ledgers%2fldg_1',
        '/proxy/ledgers%5Cldg_1',
        '/proxy/ledgers%5cldg_1',
        '/proxy/%2e%2e/api-keys',
        '/proxy/ledgers/%2E%2E/api-keys',
        '/proxy/ledgers/%2e',
        '/proxy/ledgers%00',
        '/proxy/ledgers/ldg%001',
        '/proxy/ledgers/a%01',
        '/proxy/ledgers/a%0a',
        '/proxy/ledgers/a%0D%0Ab',
        '/proxy/ledgers/a%7f',
        '/proxy/ledgers/%zz',
        '/proxy/ledgers/ldg_1%',
    ];
    w.core.reset();
    for (const t of tricks) {
        const res = await req(w.port, 'GET', `${t}?instance_id=${id}`, { headers: auth() });
        assertError(res, 400, 'GEN_MALFORMED_REQUEST');
    }
    assert.equal(w.core.requests.length, 0, `Core saw: ${w.core.requests.map((r) => r.rawPath).join(', ')}`);
});

test('raw path tricks (backslash, control bytes, raw dot segments) are 400 and never reach Core', async () => {
    const id = w.instance.id;
    const targets = [
        '/proxy/ledgers\\..\\api-keys',
        '/proxy/ledgers\\ldg_1',
        '/proxy/ledgers/../api-keys',
        '/proxy/./ledgers',
        '/proxy//ledgers',
        '/proxy/ledgers/ldg\x01',
        '/proxy/ledgers/ldg\x7f',
    ];
    w.core.reset();
    for (const t of targets) {
        const bytes = `GET ${t}?instance_id=${id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${w.keys.all.key}\r\nConnection: close\r\n\r\n`;
        const r = await rawRequest(w.port, bytes, { timeoutMs: 3000 });
        const [res] = parseResponses(r.data);
        assert.ok(res, `${JSON.stringify(t)}: got a response`);
        assert.equal(res.status, 400, `${JSON.stringify(t)}: ${r.text.slice(0, 200)}`);
        if (res.json) {
            // a JSON answer (path check) must carry the right code; a plain 400 is the parser's
            assert.equal(res.json.error_detail?.code, 'GEN_MALFORMED_REQUEST', JSON.stringify(t));
        }
    }
    assert.equal(w.core.requests.length, 0, `Core saw: ${w.core.requests.map((r) => r.rawPath).join(', ')}`);
});

test('multipart upload to /reconciliation/upload is byte-identical at Core', async () => {
    w.core.reset();
    const boundary = '----blnkproxyBoundary7MA4YWxkTrZu0gW';
    const binary = Buffer.alloc(4096);
    for (let i = 0; i < binary.length; i++) {
        binary[i] = (i * 131 + 7) & 0xff;
    }
    const body = Buffer.concat([
        Buffer.from(
            `--${boundary}\r\nContent-Disposition: form-data; name="source"\r\n\r\nbank_statement\r\n` +
                `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="stmt.bin"\r\n` +
                'Content-Type: application/octet-stream\r\n\r\n',
            'latin1',
        ),
        binary,
        Buffer.from([0, 13, 10, 0xff, 0xfe, 13, 10, 45, 45]),
        Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1'),
    ]);
    const ctype = `multipart/form-data; boundary=${boundary}`;
    const res = await req(w.port, 'POST', w.p('/reconciliation/upload'), {
        headers: { ...auth(), 'content-type': ctype },
        body,
    });
    assert.equal(res.status, 201, res.text);
    assert.equal(w.core.requests.length, 1);
    const rec = w.core.requests[0];
    assert.equal(rec.method, 'POST');
    assert.equal(rec.rawPath, '/reconciliation/upload');
    assert.equal(rec.headers['content-type'], ctype);
    assert.equal(rec.body.length, body.length);
    assert.ok(rec.body.equals(body), 'multipart body bytes identical');
});

test('a repeated instance_id is refused (assumption: 400 GEN_MALFORMED_REQUEST)', async () => {
    w.core.reset();
    const id = w.instance.id;
    const res = await req(w.port, 'GET', `/proxy/ledgers?instance_id=${id}&instance_id=${id}`, { headers: auth() });
    assertError(res, 400, 'GEN_MALFORMED_REQUEST');
    assert.equal(w.core.requests.length, 0);
});

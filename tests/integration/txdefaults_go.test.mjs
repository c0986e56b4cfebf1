// Issue 11 items 3 and 4: a transaction body that Core would accept is never forwarded without the
// DESIGN §4 defaults, and the rewritten body respects the body limit.
//
// Core binds with gin's ShouldBindJSON, that is Go's json.NewDecoder(body).Decode: it reads the
// first JSON value, ignores whatever follows it, and accepts nesting up to 10000 levels. For each
// such body the proxy either inserts the defaults or refuses with 400 and a reason; it never
// forwards it undefaulted (Core would record precision 1: amounts 100× off).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { assertError, bearer, req, setupWorld } from './lib/harness.mjs';

const MAX_BODY = 64 * 1024;

let w;
before(async () => {
    w = await setupWorld({ keys: { all: ['*'] }, proxyArgs: ['--max-body-bytes', `${MAX_BODY}`] });
    // The default answer echoes the body, which JSON.stringify cannot do 10000 levels deep.
    w.core.setHandler({ status: 201, body: { ok: true } });
});
after(async () => {
    await w?.close();
});

async function post(path, body) {
    w.core.reset();
    const b = Buffer.isBuffer(body) ? body : Buffer.from(body, 'latin1');
    const res = await req(w.port, 'POST', w.p(path), {
        headers: { ...bearer(w.keys.all.key), 'content-type': 'application/json' },
        body: b,
    });
    return { res, core: w.core.requests };
}

// Forwarded, and Core's copy has the defaults in its first (and only) JSON value.
async function assertDefaulted(path, body) {
    const { res, core } = await post(path, body);
    assert.ok(res.status >= 200 && res.status < 300, `forwarded: ${res.status} ${res.text}`);
    assert.equal(core.length, 1, 'Core got the request');
    const got = core[0].body;
    const j = JSON.parse(got.toString('utf8'));
    return { j, got };
}

// Refused by the proxy: Core saw nothing, the answer names the reason.
async function assertRefused(path, body, status, code, reason) {
    const { res, core } = await post(path, body);
    assertError(res, status, code);
    assert.match(res.json.error_detail.message, reason);
    assert.equal(core.length, 0, 'Core never saw the body');
    return res;
}

// {"amount":1,"meta_data":[[…]]}: the top-level object plus `arrays` levels, `arrays + 1` deep.
function deepBody(arrays) {
    return `{"amount":1,"meta_data":${'['.repeat(arrays)}${']'.repeat(arrays)}}`;
}

describe('trailing bytes after the first JSON value (Go reads only the first)', () => {
    for (const [name, tail] of [
        ['a NUL byte', '\x00'],
        ['a word', ' x'],
        ['a second object', '{}'],
        ['a second object that sets precision', '{"precision":1}'],
        ['a stray closing brace', '}'],
        ['whitespace then garbage', '\n\n#'],
    ]) {
        test(`single: ${name} → 400 with a reason, never forwarded undefaulted`, async () => {
            await assertRefused('/transactions', `{"amount":1}${tail}`, 400, 'GEN_MALFORMED_REQUEST', /after its JSON object/);
        });
    }

    test('bulk: a second value after the object → 400', async () => {
        await assertRefused('/transactions/bulk', '{"transactions":[{"amount":1}]}\x00', 400, 'GEN_MALFORMED_REQUEST', /after its JSON object/);
        await assertRefused('/transactions/bulk', '{"transactions":[{}]}{"transactions":[{}]}', 400, 'GEN_MALFORMED_REQUEST', /after its JSON object/);
    });

    test('trailing JSON whitespace only is one valid value: defaults inserted', async () => {
        const { j, got } = await assertDefaulted('/transactions', '{"amount":1} \r\n\t');
        assert.equal(j.precision, 100);
        assert.match(j.reference, /^ref_/);
        assert.ok(got.toString('latin1').endsWith('} \r\n\t'), 'trailing whitespace kept');
    });

    test('a body whose first value is not an object is still Core\'s to answer (forwarded as sent)', async () => {
        for (const body of ['[{"amount":1}] x', '"s"\x00', '{"amount":1,} x', '{"amount":']) {
            const { res, core } = await post('/transactions', body);
            assert.ok(res.status >= 200 && res.status < 300, `${JSON.stringify(body)}: ${res.status} ${res.text}`);
            assert.equal(core.length, 1);
            assert.ok(core[0].body.equals(Buffer.from(body, 'latin1')), `${JSON.stringify(body)} forwarded byte-identical`);
        }
    });
});

describe('nesting depth: Go allows 10000 levels', () => {
    test('depth 65 (past the old limit of 64) gets the defaults', async () => {
        const { j } = await assertDefaulted('/transactions', deepBody(64));
        assert.equal(j.precision, 100);
        assert.match(j.reference, /^ref_/);
    });

    test('depth 10000 (Go\'s maximum) gets the defaults; a bulk element that deep too', async () => {
        const { j } = await assertDefaulted('/transactions', deepBody(9999));
        assert.equal(j.precision, 100);
        // top object, transactions array, element object, then 9997 arrays: 10000 levels.
        const inner = `${'['.repeat(9997)}${']'.repeat(9997)}`;
        const bulk = await assertDefaulted('/transactions/bulk', `{"transactions":[{"amount":1,"m":${inner}}]}`);
        assert.equal(bulk.j.transactions[0].precision, 100);
    });

    test('depth 10001 (Core refuses it too) → 400 with a reason', async () => {
        await assertRefused('/transactions', deepBody(10000), 400, 'GEN_MALFORMED_REQUEST', /deeper than 10000/);
    });
});

describe('bulk: duplicate "transactions" keys', () => {
    test('two "transactions" members (Go merges them element by element) → 400', async () => {
        await assertRefused('/transactions/bulk', '{"transactions":[{"precision":5,"reference":"a"}],"Transactions":[{}]}', 400,
            'GEN_MALFORMED_REQUEST', /"transactions" more than once/);
    });
});

describe('the rewritten body respects max_body_bytes (item 4)', () => {
    const head = '{"transactions":[';
    const tail = ']}';
    const bulkOf = (n) => head + Array(n).fill('{}').join(',') + tail;
    let growth;

    before(async () => {
        const { got } = await assertDefaulted('/transactions/bulk', bulkOf(1));
        growth = got.length - bulkOf(1).length;
        assert.ok(growth > 40 && growth < 100, `one empty object grows by ${growth} bytes`);
    });

    test('just under the bound: forwarded with every element defaulted, and no larger than the bound', async () => {
        // 3n + 18 bytes in, (3 + growth)·n + 18 out.
        const n = Math.floor((MAX_BODY - head.length - tail.length + 1) / (3 + growth));
        const body = bulkOf(n);
        const { j, got } = await assertDefaulted('/transactions/bulk', body);
        assert.ok(got.length <= MAX_BODY, `${got.length} <= ${MAX_BODY}`);
        assert.equal(got.length, body.length + n * growth);
        assert.equal(j.transactions.length, n);
        assert.ok(j.transactions.every((t) => t.precision === 100 && /^ref_/.test(t.reference)));
        assert.equal(new Set(j.transactions.map((t) => t.reference)).size, n, 'references are unique');
    });

    test('one element more would pass the bound → 413 with a reason, Core sees nothing', async () => {
        const n = Math.floor((MAX_BODY - head.length - tail.length + 1) / (3 + growth)) + 1;
        const body = bulkOf(n);
        assert.ok(body.length < MAX_BODY, 'the body itself is within the limit');
        await assertRefused('/transactions/bulk', body, 413, 'GEN_PAYLOAD_TOO_LARGE', /defaults.*max_body_bytes/);
    });

    test('a body that fills the limit with empty objects → 413 (the 24× amplification)', async () => {
        const n = Math.floor((MAX_BODY - head.length - tail.length + 1) / 3);
        await assertRefused('/transactions/bulk', bulkOf(n), 413, 'GEN_PAYLOAD_TOO_LARGE', /defaults.*max_body_bytes/);
    });

    test('a single transaction at the limit that needs the defaults → 413; with them set → forwarded', async () => {
        const pad = (len) => `{"amount":1,"description":"${'x'.repeat(len)}"}`;
        const base = pad(0).length;
        await assertRefused('/transactions', pad(MAX_BODY - base), 413, 'GEN_PAYLOAD_TOO_LARGE', /defaults.*max_body_bytes/);
        const full = `{"precision":1,"reference":"r","description":"${'x'.repeat(MAX_BODY - 50)}"}`;
        const { res, core } = await post('/transactions', full);
        assert.ok(res.status >= 200 && res.status < 300, res.text);
        assert.ok(core[0].body.equals(Buffer.from(full)), 'forwarded unchanged');
    });
});

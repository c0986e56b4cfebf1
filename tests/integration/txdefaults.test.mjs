// DESIGN §4: transaction defaults are inserted as bytes; every other byte stays as sent.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { bearer, req, setupWorld } from './lib/harness.mjs';

let w;
before(async () => {
    w = await setupWorld({ keys: { all: ['*'] } });
});
after(async () => {
    await w?.close();
});

const REF_VALUE = /^ref_[0-9A-Za-z_-]{16,64}$/;
const WS = new Set([' ', '\t', '\n', '\r']);

// Positions reachable from pos moving in dir over whitespace, at most one comma, whitespace.
function extents(s, pos, dir) {
    const out = [pos];
    let p = pos;
    const at = () => (dir < 0 ? s[p - 1] : s[p]);
    const ok = () => (dir < 0 ? p > 0 : p < s.length);
    while (ok() && WS.has(at())) {
        p += dir;
        out.push(p);
    }
    if (ok() && at() === ',') {
        p += dir;
        out.push(p);
        while (ok() && WS.has(at())) {
            p += dir;
            out.push(p);
        }
    }
    return out;
}

// True when `got` is `orig` with exactly the listed members ("precision":100 or
// "reference":"ref_…") inserted, each with at most one adjoining comma and any whitespace,
// and not a single other byte changed. Strings are latin1 views of the bytes.
function isInsertion(orig, got, keys) {
    if (keys.length === 0) {
        return orig === got;
    }
    const [key, ...rest] = keys;
    const val = key === 'precision' ? '100(?![0-9.eE])' : '"ref_[^"\\\\]+"';
    const re = new RegExp(`"${key}"[ \\t\\r\\n]*:[ \\t\\r\\n]*${val}`, 'g');
    for (const m of got.matchAll(re)) {
        const s = m.index;
        const e = s + m[0].length;
        for (const l of extents(got, s, -1)) {
            for (const r of extents(got, e, 1)) {
                const frag = got.slice(l, s) + got.slice(e, r);
                if ((frag.match(/,/g) || []).length > 1) {
                    continue;
                }
                if (isInsertion(orig, got.slice(0, l) + got.slice(r), rest)) {
                    return true;
                }
            }
        }
    }
    return false;
}

async function send(path, body, ctype = 'application/json') {
    w.core.reset();
    const b = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
    const res = await req(w.port, 'POST', w.p(path), { headers: { ...bearer(w.keys.all.key), 'content-type': ctype }, body: b });
    assert.ok(res.status >= 200 && res.status < 300, `${res.status} ${res.text}`);
    assert.equal(w.core.requests.length, 1);
    const rec = w.core.requests[0];
    assert.equal(rec.headers['content-length'], String(rec.body.length), 'Content-Length matches the forwarded body');
    return { orig: b, got: rec.body, rec };
}

function assertInserted(orig, got, keys) {
    const o = orig.toString('latin1');
    const g = got.toString('latin1');
    assert.doesNotThrow(() => JSON.parse(got.toString('utf8')), `valid JSON at Core: ${g}`);
    assert.ok(isInsertion(o, g, keys), `Core body is the client body plus ${JSON.stringify(keys)} only:\n  sent: ${o}\n  core: ${g}`);
}

function assertSame(orig, got) {
    assert.ok(got.equals(orig), `byte-identical:\n  sent: ${orig.toString('latin1')}\n  core: ${got.toString('latin1')}`);
}

const BIG = '1234567890123456789012345678901234567890';

test('adds precision 100 and a generated reference when both are missing; all else byte-exact', async () => {
    const body = `{"amount":100.50,"precise_amount":${BIG},"currency":"USD","source":"@world","destination":"@alice",` +
        '"description":"caf\u00e9 \u2713 \\u00e9 \\"q\\"","allow_overdraft":true,"rate":1e-7,"meta_data":{"k":[1,2.50,{"z":null}]}}';
    const { orig, got } = await send('/transactions', body);
    assertInserted(orig, got, ['precision', 'reference']);
    const j = JSON.parse(got.toString('utf8'));
    assert.equal(j.precision, 100);
    assert.match(j.reference, REF_VALUE);
    assert.ok(got.toString('utf8').includes(`"precise_amount":${BIG}`));
    assert.ok(got.toString('utf8').includes('"amount":100.50'));
});

test('whitespace and key order are kept', async () => {
    const body = '\n  {\n    "amount" : 100.50 ,\n\t"currency":"USD"   ,"source":"@a",\r\n "destination":"@b"\n}\n  ';
    const { orig, got } = await send('/transactions', body);
    assertInserted(orig, got, ['precision', 'reference']);
});

test('empty object gets both members', async () => {
    const { orig, got } = await send('/transactions', '{}');
    assertInserted(orig, got, ['precision', 'reference']);
    const { orig: o2, got: g2 } = await send('/transactions', '{ }');
    assertInserted(o2, g2, ['precision', 'reference']);
});

test('generated references are unique', async () => {
    const refs = new Set();
    for (let i = 0; i < 5; i++) {
        const { got } = await send('/transactions', '{"amount":1}');
        refs.add(JSON.parse(got.toString()).reference);
    }
    assert.equal(refs.size, 5);
});

test('both present → byte-identical', async () => {
    for (const body of [
        '{"reference":"my-ref","precision":1,"amount":5}',
        '{ "amount": 100.50, "precision" : 100, "reference" : "r-1", "precise_amount": ' + BIG + ' }',
    ]) {
        const { orig, got } = await send('/transactions', body);
        assertSame(orig, got);
    }
});

test('only one present → only the other is added', async () => {
    let r = await send('/transactions', '{"amount":5,"precision":1000}');
    assertInserted(r.orig, r.got, ['reference']);
    assert.equal(JSON.parse(r.got.toString()).precision, 1000);
    r = await send('/transactions', '{"amount":5,"reference":"mine"}');
    assertInserted(r.orig, r.got, ['precision']);
    assert.equal(JSON.parse(r.got.toString()).reference, 'mine');
});

test('present with 0, "" or null counts as present', async () => {
    for (const body of ['{"precision":0,"reference":""}', '{"precision":null,"reference":null,"amount":1}', '{"precision":"","reference":0}']) {
        const { orig, got } = await send('/transactions', body);
        assertSame(orig, got);
    }
});

test('keys match like Go\'s encoding/json: case-insensitive, escapes decoded, ſ folds to s', async () => {
    const sameCases = [
        '{"Reference":"x","Precision":2,"amount":1}',
        '{"REFERENCE":"x","PRECISION":2}',
        '{"\\u0072eference":"x","pr\\u0065cision":2}',
        '{"reFerence":"x","preci\u017fion":2}',
        '{"\\u0052EFERENCE":"x","PRECI\\u017FION":2}',
    ];
    for (const body of sameCases) {
        const { orig, got } = await send('/transactions', body);
        assertSame(orig, got);
    }
    // "Reference" present → only precision added
    const r = await send('/transactions', '{"amount":1,"Reference":"x"}');
    assertInserted(r.orig, r.got, ['precision']);
});

test('nested reference/precision keys do not count', async () => {
    const body = '{"amount":1,"meta_data":{"reference":"inner","precision":2},"list":[{"reference":"in-array"}]}';
    const { orig, got } = await send('/transactions', body);
    assertInserted(orig, got, ['precision', 'reference']);
    const j = JSON.parse(got.toString());
    assert.equal(j.meta_data.reference, 'inner');
    assert.match(j.reference, REF_VALUE);
    assert.equal(j.precision, 100);
});

test('a key only inside a string value does not count', async () => {
    const body = '{"description":"\\"reference\\":\\"x\\", \\"precision\\":1","amount":1}';
    const { orig, got } = await send('/transactions', body);
    assertInserted(orig, got, ['precision', 'reference']);
});

test('bulk: each object in the top-level transactions array gets its own defaults', async () => {
    const body =
        '{"atomic":true,"inflight":false,"transactions":[' +
        `{"amount":1.10,"currency":"USD","source":"@a","destination":"@b","precise_amount":${BIG}},` +
        ' {"amount":2,"precision":1,"reference":"client-ref-2"},\n' +
        '{"amount":3,"precision":10}' +
        '],"meta":{"transactions":[{"amount":9}]}}';
    const { orig, got } = await send('/transactions/bulk', body);
    assertInserted(orig, got, ['precision', 'reference', 'reference']);
    const j = JSON.parse(got.toString());
    const [a, b, c] = j.transactions;
    assert.equal(a.precision, 100);
    assert.match(a.reference, REF_VALUE);
    assert.equal(b.precision, 1);
    assert.equal(b.reference, 'client-ref-2');
    assert.equal(c.precision, 10);
    assert.match(c.reference, REF_VALUE);
    assert.notEqual(a.reference, c.reference);
    assert.deepEqual(j.meta, { transactions: [{ amount: 9 }] }, 'nested transactions untouched');
});

test('bulk: non-object elements and a non-array transactions are left alone', async () => {
    let r = await send('/transactions/bulk', '{"transactions":[1,"x",null,{"amount":1}]}');
    assertInserted(r.orig, r.got, ['precision', 'reference']);
    assert.deepEqual(JSON.parse(r.got.toString()).transactions.slice(0, 3), [1, 'x', null]);
    for (const body of ['{"transactions":{"amount":1}}', '{"transactions":null}', '{"amount":1}', '[{"amount":1}]']) {
        r = await send('/transactions/bulk', body);
        assertSame(r.orig, r.got);
    }
});

// An object followed by more bytes is one Core accepts (it reads only the first JSON value): it
// is refused, not forwarded; txdefaults_go.test.mjs covers those (issue 11).
test('non-object and invalid JSON bodies are forwarded unchanged', async () => {
    for (const body of [
        '[{"amount":1}]',
        '"just a string"',
        '123',
        'null',
        'true',
        '{"amount":1,',
        '{"amount":1,}',
        "{'amount':1}",
        '{"amount":01}',
        '{"amount":1.}',
        '{"s":"unterminated}',
        '{"s":"bad \\x escape"}',
        'not json at all',
        '',
    ]) {
        const { orig, got } = await send('/transactions', body);
        assertSame(orig, got);
    }
});

test('other routes are never modified', async () => {
    for (const [path, body] of [
        ['/ledgers', '{"name":"x"}'],
        ['/balances', '{"ledger_id":"l","currency":"USD"}'],
        ['/transactions/filter', '{"filters":[]}'],
        ['/refund-transaction/txn_1', '{}'],
        ['/identities', '{"first_name":"a"}'],
    ]) {
        const { orig, got } = await send(path, body);
        assertSame(orig, got);
    }
    w.core.reset();
    const b = '{"status":"commit","amount":1}';
    await req(w.port, 'PUT', w.p('/transactions/inflight/txn_1'), { headers: { ...bearer(w.keys.all.key), 'content-type': 'application/json' }, body: b });
    assert.equal(w.core.requests[0].body.toString(), b);
});

test('the insertion checker itself rejects wrong rewrites (self-test)', () => {
    assert.ok(isInsertion('{"a":1}', '{"a":1,"precision":100,"reference":"ref_0123456789abcdef"}', ['precision', 'reference']));
    assert.ok(isInsertion('{"a":1}', '{"precision":100,"reference":"ref_0123456789abcdef","a":1}', ['precision', 'reference']));
    assert.ok(isInsertion('{ "a":1}', '{"precision":100, "reference":"ref_0123456789abcdef", "a":1}', ['precision', 'reference']));
    assert.ok(isInsertion('{}', '{"precision":100,"reference":"ref_0123456789abcdef"}', ['precision', 'reference']));
    assert.ok(!isInsertion('{"a":1.50}', '{"a":1.5,"precision":100,"reference":"ref_0123456789abcdef"}', ['precision', 'reference']));
    assert.ok(!isInsertion('{"a": 1}', '{"a":1,"precision":100,"reference":"ref_0123456789abcdef"}', ['precision', 'reference']));
    assert.ok(!isInsertion('{"a":1}', '{"a":1,"precision":100}', ['precision', 'reference']));
    assert.ok(!isInsertion('{"b":2,"a":1}', '{"a":1,"b":2,"precision":100,"reference":"ref_x"}', ['precision', 'reference']));
});

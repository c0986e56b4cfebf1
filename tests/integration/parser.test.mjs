// DESIGN §8: the strict request parser refuses framing tricks with 400 and a closed connection,
// nothing reaches Core, and the server keeps serving. Plus pipelining and chunked bodies.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { parseResponses, rawRequest, req, setupWorld } from './lib/harness.mjs';

let w;
before(async () => {
    w = await setupWorld({ keys: { all: ['*'] } });
});
after(async () => {
    await w?.close();
});

// A head that would be forwarded if the parser accepted it: valid key, route and instance.
const head = (extra, { method = 'POST', target } = {}) =>
    `${method} ${target ?? w.p('/ledgers')} HTTP/1.1\r\nHost: proxy.test\r\nAuthorization: Bearer ${w.keys.all.key}\r\n` +
    `Content-Type: application/json\r\n${extra}`;

async function expectRefused(bytes, { statuses = [400] } = {}) {
    w.core.reset();
    const r = await rawRequest(w.port, bytes, { timeoutMs: 4000 });
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(r.text);
    assert.ok(m, `a status line, got ${JSON.stringify(r.text.slice(0, 120))} (${r.reason}${r.error ? ` ${r.error.code}` : ''})`);
    assert.ok(statuses.includes(Number(m[1])), `status ${m[1]} in ${statuses}: ${JSON.stringify(r.text.slice(0, 200))}`);
    assert.ok(r.closed, `connection closed by the proxy (got ${r.reason} after ${r.ms} ms)`);
    assert.equal(parseResponses(r.data).length, 1, 'exactly one response');
    assert.equal(w.core.requests.length, 0, `Core saw: ${w.core.requests.map((x) => `${x.method} ${x.rawPath}`).join(', ')}`);
    // the server keeps working on a new connection
    const ok = await req(w.port, 'GET', w.p('/ledgers/ldg_after'), { headers: { authorization: `Bearer ${w.keys.all.key}` }, agent: false });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(w.core.requests.length, 1);
    assert.equal(w.core.requests[0].rawPath, '/ledgers/ldg_after');
}

const BODY = '{"name":"x"}';
const CL = `Content-Length: ${BODY.length}\r\n`;

// Built lazily (they need the world's key and instance id): [name, () => bytes, statuses?]
const A = () => `Authorization: Bearer ${w.keys.all.key}\r\n`;
const T = () => w.p('/ledgers');
const CASES = [
    ['duplicate Content-Length (same value)', () => head(`${CL}${CL}\r\n${BODY}`)],
    ['duplicate Content-Length (different values)', () => head(`${CL}Content-Length: 3\r\n\r\n${BODY}`)],
    ['Content-Length list in one field', () => head(`Content-Length: ${BODY.length}, ${BODY.length}\r\n\r\n${BODY}`)],
    ['non-numeric Content-Length', () => head(`Content-Length: 12x\r\n\r\n${BODY}`)],
    ['signed Content-Length', () => head(`Content-Length: +12\r\n\r\n${BODY}`)],
    ['negative Content-Length', () => head('Content-Length: -1\r\n\r\n')],
    ['hex Content-Length', () => head(`Content-Length: 0xc\r\n\r\n${BODY}`)],
    ['overflowing Content-Length', () => head('Content-Length: 99999999999999999999999999\r\n\r\n'), [400, 413]],
    ['Content-Length with Transfer-Encoding', () => head(`${CL}Transfer-Encoding: chunked\r\n\r\nc\r\n${BODY}\r\n0\r\n\r\n`)],
    ['Transfer-Encoding gzip', () => head(`Transfer-Encoding: gzip\r\n\r\n${BODY}`)],
    ['Transfer-Encoding gzip, chunked', () => head(`Transfer-Encoding: gzip, chunked\r\n\r\nc\r\n${BODY}\r\n0\r\n\r\n`)],
    ['Transfer-Encoding chunked, chunked', () => head(`Transfer-Encoding: chunked, chunked\r\n\r\nc\r\n${BODY}\r\n0\r\n\r\n`)],
    ['Transfer-Encoding twice', () => head(`Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\nc\r\n${BODY}\r\n0\r\n\r\n`)],
    ['Transfer-Encoding identity', () => head(`Transfer-Encoding: identity\r\n\r\n${BODY}`)],
    ['obs-fold', () => head(`X-Foo: a\r\n  folded\r\n${CL}\r\n${BODY}`)],
    ['obs-fold with tab', () => head(`X-Foo: a\r\n\tfolded\r\n${CL}\r\n${BODY}`)],
    ['space before colon', () => head(`Content-Length : ${BODY.length}\r\n\r\n${BODY}`)],
    ['space before colon (custom header)', () => head(`X-Foo : bar\r\n${CL}\r\n${BODY}`)],
    ['tab before colon', () => head(`X-Foo\t: bar\r\n${CL}\r\n${BODY}`)],
    ['NUL in header value', () => head(`X-Foo: a\x00b\r\n${CL}\r\n${BODY}`)],
    ['control char in header value', () => head(`X-Foo: a\x01b\r\n${CL}\r\n${BODY}`)],
    ['DEL in header name', () => head(`X-F\x7fo: a\r\n${CL}\r\n${BODY}`)],
    ['empty header name', () => head(`: a\r\n${CL}\r\n${BODY}`)],
    ['header line without colon', () => head(`X-Foo bar\r\n${CL}\r\n${BODY}`)],
    ['bare CR in header', () => head(`X-Foo: a\rb\r\n${CL}\r\n${BODY}`)],
    ['control char in request line', () => `GET ${T()}\x01 HTTP/1.1\r\nHost: x\r\n${A()}\r\n`],
    ['NUL in request line', () => `GET /proxy/ledgers\x00?instance_id=${w.instance.id} HTTP/1.1\r\nHost: x\r\n${A()}\r\n`],
    ['bare LF line endings', () => `GET ${T()} HTTP/1.1\nHost: x\n${A().replace('\r\n', '\n')}\n`],
    ['one bare LF header line', () => `GET ${T()} HTTP/1.1\r\nHost: x\n${A()}\r\n`],
    ['absolute-form target', () => `GET http://proxy.test${T()} HTTP/1.1\r\nHost: proxy.test\r\n${A()}\r\n`],
    ['authority-form target', () => `CONNECT core.example:443 HTTP/1.1\r\nHost: core.example:443\r\n${A()}\r\n`],
    ['asterisk-form target', () => `OPTIONS * HTTP/1.1\r\nHost: x\r\n${A()}\r\n`],
    ['HTTP/2.0 version', () => `GET ${T()} HTTP/2.0\r\nHost: x\r\n${A()}\r\n`],
    ['HTTP/1.2 version', () => `GET ${T()} HTTP/1.2\r\nHost: x\r\n${A()}\r\n`],
    ['lowercase http version', () => `GET ${T()} http/1.1\r\nHost: x\r\n${A()}\r\n`],
    ['two spaces in request line', () => `GET  ${T()} HTTP/1.1\r\nHost: x\r\n${A()}\r\n`],
    ['missing version', () => `GET ${T()}\r\nHost: x\r\n${A()}\r\n`],
    ['bad chunk size', () => head('Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n')],
    ['bare LF in chunked body', () => head(`Transfer-Encoding: chunked\r\n\r\nc\n${BODY}\n0\n\n`)],
    ['chunk data longer than its size', () => head(`Transfer-Encoding: chunked\r\n\r\n2\r\n${BODY}\r\n0\r\n\r\n`)],
];

for (const [name, bytes, statuses] of CASES) {
    test(`parser refuses: ${name}`, async () => {
        await expectRefused(bytes(), statuses ? { statuses } : {});
    });
}

test('parser refuses: too many headers (200)', async () => {
    let extra = '';
    for (let i = 0; i < 200; i++) {
        extra += `X-H${i}: v\r\n`;
    }
    await expectRefused(head(`${extra}${CL}\r\n${BODY}`), { statuses: [400, 431] });
});

test('parser refuses: oversized header block (64 KiB over 40 lines)', async () => {
    let extra = '';
    for (let i = 0; i < 40; i++) {
        extra += `X-Big${i}: ${'a'.repeat(1640)}\r\n`;
    }
    assert.ok(extra.length > 65536);
    await expectRefused(head(`${extra}${CL}\r\n${BODY}`), { statuses: [400, 431] });
});

test('parser refuses: one 16 KiB header line', async () => {
    await expectRefused(head(`X-Big: ${'b'.repeat(16384)}\r\n${CL}\r\n${BODY}`), { statuses: [400, 431] });
});

test('parser refuses: 16 KiB request target', async () => {
    const t = `${w.p('/ledgers')}&pad=${'p'.repeat(16384)}`;
    await expectRefused(`GET ${t} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${w.keys.all.key}\r\n\r\n`, { statuses: [400, 414, 431] });
});

function splitResponses(r, n) {
    const resps = parseResponses(r.data).filter((x) => x.status >= 200);
    assert.equal(resps.length, n, `expected ${n} responses, got: ${JSON.stringify(r.text.slice(0, 600))}`);
    for (const x of resps) {
        assert.ok(x.complete, 'complete response');
    }
    return resps;
}

test('pipelining: requests in one write get responses in order', async () => {
    w.core.reset();
    const a = `Authorization: Bearer ${w.keys.all.key}\r\n`;
    const bytes =
        `GET ${w.p('/ledgers/ldg_p1')} HTTP/1.1\r\nHost: x\r\n${a}X-Request-Id: pipe-1\r\nX-Test-Marker: one\r\n\r\n` +
        `POST ${w.p('/ledgers')} HTTP/1.1\r\nHost: x\r\n${a}X-Request-Id: pipe-2\r\nX-Test-Marker: two\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{"name":"two"}` +
        `GET ${w.p('/ledgers/ldg_p3')} HTTP/1.1\r\nHost: x\r\n${a}X-Request-Id: pipe-3\r\nX-Test-Marker: three\r\nConnection: close\r\n\r\n`;
    const r = await rawRequest(w.port, bytes, { timeoutMs: 5000 });
    assert.ok(r.closed, `closed after Connection: close (${r.reason})`);
    const [r1, r2, r3] = splitResponses(r, 3);
    assert.equal(r1.status, 200);
    assert.equal(r1.headers['x-request-id'], 'pipe-1');
    assert.equal(r1.headers['x-test-marker-echo'], 'one');
    assert.equal(r1.json.fake_core.path, '/ledgers/ldg_p1');
    assert.equal(r2.status, 201);
    assert.equal(r2.headers['x-request-id'], 'pipe-2');
    assert.equal(r2.json.name, 'two');
    assert.equal(r3.status, 200);
    assert.equal(r3.headers['x-request-id'], 'pipe-3');
    assert.equal(r3.json.fake_core.path, '/ledgers/ldg_p3');
    assert.equal(w.core.requests.length, 3);
});

test('pipelining: the order holds when the first request is the slowest', async () => {
    w.core.reset();
    w.core.setHandler((rec) => (rec.path === '/ledgers/slow' ? { delayMs: 400 } : null));
    try {
        const a = `Authorization: Bearer ${w.keys.all.key}\r\n`;
        const bytes =
            `GET ${w.p('/ledgers/slow')} HTTP/1.1\r\nHost: x\r\n${a}X-Request-Id: slow-1\r\n\r\n` +
            `GET ${w.p('/ledgers/fast')} HTTP/1.1\r\nHost: x\r\n${a}X-Request-Id: fast-2\r\nConnection: close\r\n\r\n`;
        const r = await rawRequest(w.port, bytes, { timeoutMs: 5000 });
        const [r1, r2] = splitResponses(r, 2);
        assert.equal(r1.headers['x-request-id'], 'slow-1');
        assert.equal(r1.json.fake_core.path, '/ledgers/slow');
        assert.equal(r2.headers['x-request-id'], 'fast-2');
        assert.equal(r2.json.fake_core.path, '/ledgers/fast');
    } finally {
        w.core.setHandler(null);
    }
});

test('pipelining: a refused request between two good ones', async () => {
    w.core.reset();
    const a = `Authorization: Bearer ${w.keys.all.key}\r\n`;
    const bytes =
        `GET ${w.p('/ledgers/ldg_a')} HTTP/1.1\r\nHost: x\r\n${a}\r\n` +
        `GET ${w.p('/api-keys')} HTTP/1.1\r\nHost: x\r\n${a}\r\n` +
        `GET ${w.p('/ledgers/ldg_c')} HTTP/1.1\r\nHost: x\r\n${a}Connection: close\r\n\r\n`;
    const r = await rawRequest(w.port, bytes, { timeoutMs: 5000 });
    const [r1, r2, r3] = splitResponses(r, 3);
    assert.equal(r1.status, 200);
    assert.equal(r2.status, 404);
    assert.equal(r2.json.error_detail.code, 'GEN_NOT_FOUND');
    assert.equal(r3.status, 200);
    assert.deepEqual(
        w.core.requests.map((x) => x.rawPath),
        ['/ledgers/ldg_a', '/ledgers/ldg_c'],
    );
});

test('a chunked request body is de-chunked and forwarded with a Content-Length', async () => {
    w.core.reset();
    const parts = ['{"name":', '"chunk', 'ed \u00e9\u2713",', '"meta_data":{"n":12345678901234567890123}}'].map((s) => Buffer.from(s, 'utf8'));
    const whole = Buffer.concat(parts);
    const chunks = [];
    for (const [i, p] of parts.entries()) {
        chunks.push(Buffer.from(`${p.length.toString(16)}${i === 1 ? ';ext=1' : ''}\r\n`, 'latin1'), p, Buffer.from('\r\n'));
    }
    const bytes = Buffer.concat([
        Buffer.from(head('Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n'), 'latin1'),
        ...chunks,
        Buffer.from('0\r\nX-Trailer: t\r\n\r\n', 'latin1'),
    ]);
    const r = await rawRequest(w.port, bytes, { timeoutMs: 5000 });
    const [res] = splitResponses(r, 1);
    assert.equal(res.status, 201, r.text.slice(0, 300));
    assert.equal(w.core.requests.length, 1);
    const rec = w.core.requests[0];
    assert.ok(rec.body.equals(whole), `Core body: ${rec.body.toString()}`);
    assert.equal(rec.headers['content-length'], String(whole.length));
    assert.equal(rec.headers['transfer-encoding'], undefined);
    assert.equal(rec.headers['x-trailer'], undefined);
});

test('HTTP/1.0 requests are served and the connection closes', async () => {
    w.core.reset();
    const r = await rawRequest(
        w.port,
        `GET ${w.p('/ledgers/ldg_10')} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer ${w.keys.all.key}\r\n\r\n`,
        { timeoutMs: 5000 },
    );
    assert.ok(r.closed, `closed (${r.reason})`);
    const [res] = splitResponses(r, 1);
    assert.equal(res.status, 200);
    assert.equal(w.core.requests[0].rawPath, '/ledgers/ldg_10');
});

test('leading empty lines before a request line are skipped', async () => {
    w.core.reset();
    const r = await rawRequest(
        w.port,
        `\r\n\r\nGET ${w.p('/ledgers/ldg_lead')} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${w.keys.all.key}\r\nConnection: close\r\n\r\n`,
        { timeoutMs: 5000 },
    );
    const [res] = splitResponses(r, 1);
    assert.equal(res.status, 200);
});

test('a request arriving a few bytes at a time is parsed like one write', async () => {
    w.core.reset();
    const body = '{"name":"slowly sent","meta_data":{"n":1}}';
    const bytes =
        `POST ${w.p('/ledgers')} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${w.keys.all.key}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;
    const r = await rawRequest(w.port, bytes, { timeoutMs: 8000, chunkSize: 3, chunkDelayMs: 1 });
    const [res] = splitResponses(r, 1);
    assert.equal(res.status, 201, r.text.slice(0, 300));
    assert.equal(w.core.requests.length, 1);
    assert.equal(w.core.requests[0].body.toString(), body);
});

test('a chunked body arriving a byte at a time', async () => {
    w.core.reset();
    const bytes =
        `POST ${w.p('/ledgers')} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${w.keys.all.key}\r\n` +
        'Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
        '5\r\n{"a":\r\n3\r\n123\r\n1\r\n}\r\n0\r\n\r\n';
    const r = await rawRequest(w.port, bytes, { timeoutMs: 8000, chunkSize: 1, chunkDelayMs: 0 });
    const [res] = splitResponses(r, 1);
    assert.equal(res.status, 201, r.text.slice(0, 300));
    assert.equal(w.core.requests[0].body.toString(), '{"a":123}');
});

test('two Authorization headers are refused (assumption: 401 AUTH_INVALID_API_KEY)', async () => {
    w.core.reset();
    const a = `Authorization: Bearer ${w.keys.all.key}\r\n`;
    const r = await rawRequest(w.port, `GET ${w.p('/ledgers')} HTTP/1.1\r\nHost: x\r\n${a}${a}Connection: close\r\n\r\n`, { timeoutMs: 4000 });
    const [res] = parseResponses(r.data);
    assert.ok(res && [400, 401].includes(res.status), r.text.slice(0, 200));
    assert.equal(w.core.requests.length, 0);
});

// The audit trail's CLI verbs through the admin API (issue 13; docs/ADMIN_API.md), end to end
// with serve running, on SQLite and (the _pg run) PostgreSQL: the stored checkpoints and a new
// one signed with the server's audit.signing_key; the export, byte for byte what `audit export`
// writes (JSON lines and CSV, formula guard included), paged with limit and X-Next-After-Seq;
// verify with a checkpoint and a public key sent in a POST's body, which an auditor may make
// (with a session's CSRF token) and which finds a chain rewritten whole after the checkpoint;
// and bad parameters refused in Core's error shape.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { adminApi, assertAdminError, makeAdminToken, makeOperator, signIn } from './lib/admin.mjs';
import { startFakeCore } from './lib/fake_core.mjs';
import { PG, bearer, cli, makeInstance, makeKey, req, sleep, sql, startProxy, tmpDb, tmpDir, waitFor } from './lib/harness.mjs';
import { chainRows, digest } from './lib/trail.mjs';

const NODE = 'audit-api-node';
const PASSWORD = 'correct horse battery';
// A key name a spreadsheet would run as a formula: its requests' records carry it as actor_name.
const FORMULA_NAME = '=HYPERLINK("http://evil.example","x"),y';
const w = {};

const operator = (name, role) => makeOperator(w.db, name, { password: PASSWORD, role });
// One admin API call: token is an admin token, or a session {cookie, csrf}; body an object or raw text.
const api = (method, p, opts) => adminApi(w.proxy.port, method, p, opts);
// The error shape, the body's keys exactly error and error_detail, the message matching message.
const assertError = (r, status, code, message) => assertAdminError(r, status, code, { message, exactKeys: true });

function count(query) {
    return Number(sql(w.db, query).split('\n').find((l) => /^\s*\d+\s*$/.test(l)).trim());
}

// RFC 3339 of unix seconds, for the CLI's --since/--until.
const iso = (s) => new Date(s * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
const range = () => `since=${w.since}&until=${w.until}`;
const cliExport = (format) => {
    const r = cli(['audit', 'export', '--format', format, '--since', iso(w.since), '--until', iso(w.until)],
        { db: w.db, json: false });
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
};
const jsonLines = (text) => text.split('\n').filter((l) => l !== '');
const csvLines = (text) => text.split('\r\n').filter((l) => l !== '');

const sqlText = (v) => (v === null ? 'NULL' : `'${v.replace(/'/g, "''")}'`);

before(async () => {
    w.dir = tmpDir();
    w.keyFile = path.join(w.dir, 'signing.pem');
    w.pubFile = path.join(w.dir, 'public.pem');
    w.otherPub = path.join(w.dir, 'other-public.pem');
    const other = path.join(w.dir, 'other.pem');
    for (const args of [['genpkey', '-algorithm', 'ed25519', '-out', w.keyFile], ['pkey', '-in', w.keyFile, '-pubout', '-out', w.pubFile],
        ['genpkey', '-algorithm', 'ed25519', '-out', other], ['pkey', '-in', other, '-pubout', '-out', w.otherPub]]) {
        const r = spawnSync('openssl', args, { encoding: 'utf8' });
        assert.equal(r.status, 0, `openssl ${args.join(' ')}: ${r.stderr}`);
    }
    w.pubPem = fs.readFileSync(w.pubFile, 'utf8');

    w.core = await startFakeCore();
    w.db = tmpDb();
    w.since = Math.floor(Date.now() / 1000) - 1;
    w.inst = makeInstance(w.db, w.core.url, { secret: 'admin_audit_core_secret', name: 'main' });
    w.key = makeKey(w.db, { name: FORMULA_NAME, instances: [w.inst.id] });
    w.admin = operator('alice', 'admin');
    w.auditor = operator('bob', 'auditor');
    w.adminToken = makeAdminToken(w.db, w.admin, 'admin');
    w.auditorToken = makeAdminToken(w.db, w.auditor, 'auditor');
    w.proxy = await startProxy({
        db: w.db,
        args: ['--node-name', NODE, '--audit-signing-key', w.keyFile, '--audit-checkpoint-interval', '1s'],
    });

    // Requests whose records carry the formula-like key name, and paths with commas and quotes.
    const p = (c) => `/proxy${c}?instance_id=${w.inst.id}`;
    for (let i = 0; i < 30; i++) {
        const r = i % 2 === 0
            ? await req(w.proxy.port, 'POST', p('/ledgers'), {
                headers: { ...bearer(w.key.key), 'content-type': 'application/json' }, body: { name: `l${i}` },
            })
            : await req(w.proxy.port, 'GET', p(`/ledgers/ldg_${i},"q"`), { headers: bearer(w.key.key) });
        assert.ok(r.status < 500, `proxied request ${i}: ${r.status} ${r.text}`);
    }
    await waitFor(() => count(`SELECT count(*) FROM audit_log WHERE chain = '${NODE}'`) >= 30, { timeoutMs: 10000 });
    // A range no later record falls in: the export tests compare the API with the CLI over it.
    w.until = Math.floor(Date.now() / 1000) + 1;
    await sleep(w.until * 1000 - Date.now() + 50);
    w.total = count(`SELECT count(*) FROM audit_log WHERE time_us >= ${w.since * 1e6} AND time_us < ${w.until * 1e6}`);
});

after(async () => {
    await w.proxy?.stop();
    await w.core?.close();
});

test('export as JSON lines: the bytes `audit export` writes, with hashes and the admin headers', async () => {
    assert.ok(w.total >= 34, `records in the range: ${w.total}`);
    const r = await api('GET', `/audit/export?${range()}&format=jsonl&limit=10000`, { token: w.auditorToken });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers['content-type'], 'application/x-ndjson');
    assert.equal(r.headers['content-disposition'], 'attachment; filename="blnkproxy-audit.jsonl"');
    assert.equal(r.headers['x-next-after-seq'], undefined, 'nothing left after the last record');
    assert.equal(r.headers['cache-control'], 'no-store');
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.equal(r.headers['x-frame-options'], 'DENY');
    assert.match(r.headers['content-security-policy'], /default-src 'none'/);
    const expected = cliExport('jsonl');
    assert.equal(r.text, expected, 'the same bytes as the CLI');
    const lines = jsonLines(r.text).map((l) => JSON.parse(l));
    assert.equal(lines.length, w.total);
    for (let i = 1; i < lines.length; i++) {
        assert.ok(lines[i].seq > lines[i - 1].seq, 'oldest first');
    }
    assert.ok(lines.every((l) => /^[0-9a-f]{64}$/.test(l.hash) && /^[0-9a-f]{64}$/.test(l.prev_hash)));
    assert.ok(lines.some((l) => l.actor_name === FORMULA_NAME && l.chain === NODE));
    // The default format is jsonl, and the default limit (1000) holds them all.
    const plain = await api('GET', `/audit/export?${range()}`, { token: w.adminToken });
    assert.equal(plain.text, expected);
});

test('export as CSV: the bytes `audit export --format csv` writes, formula guard included', async () => {
    const r = await api('GET', `/audit/export?${range()}&format=csv`, { token: w.auditorToken });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers['content-type'], 'text/csv; charset=utf-8');
    assert.equal(r.headers['content-disposition'], 'attachment; filename="blnkproxy-audit.csv"');
    assert.equal(r.text, cliExport('csv'), 'the same bytes as the CLI');
    const rows = csvLines(r.text);
    assert.equal(rows.length, w.total + 1);
    assert.ok(rows[0].startsWith('seq,id,time,node,') && rows[0].endsWith(',chain,chain_n,prev_hash,hash'));
    // Quoted (comma and quotes), quotes doubled, and a ' before the = so no spreadsheet runs it.
    assert.ok(r.text.includes('"\'=HYPERLINK(""http://evil.example"",""x""),y"'), 'the guarded cell');
    assert.doesNotMatch(r.text, /(^|,)"?=HYPERLINK/m, 'never a bare formula');
    assert.ok(r.text.includes('/ledgers/ldg_1,""q""'), 'a path with a comma and quotes, quoted');
});

test('paging with limit and X-Next-After-Seq covers every record exactly once', async () => {
    const all = jsonLines(cliExport('jsonl'));
    const allCsv = csvLines(cliExport('csv'));
    for (const format of ['jsonl', 'csv']) {
        const got = [];
        let after = null;
        let pages = 0;
        for (;;) {
            const r = await api('GET', `/audit/export?${range()}&format=${format}&limit=7${after === null ? '' : `&after_seq=${after}`}`,
                { token: w.auditorToken });
            assert.equal(r.status, 200, r.text);
            pages++;
            let lines = format === 'csv' ? csvLines(r.text) : jsonLines(r.text);
            if (format === 'csv') {
                assert.equal(lines[0], allCsv[0], 'every CSV page starts with the header');
                lines = lines.slice(1);
            }
            got.push(...lines);
            const next = r.headers['x-next-after-seq'];
            if (next === undefined) {
                break;
            }
            assert.equal(lines.length, 7, 'a page with more after it is full');
            const lastSeq = format === 'csv' ? Number(lines.at(-1).split(',')[0]) : JSON.parse(lines.at(-1)).seq;
            assert.equal(Number(next), lastSeq, 'the header names the last record sent');
            after = next;
            assert.ok(pages < 100, 'paging ends');
        }
        assert.equal(pages, Math.ceil(w.total / 7), format);
        assert.deepEqual(got, format === 'csv' ? allCsv.slice(1) : all, `${format}: all records, once each, in order`);
    }
    // Exactly as many as asked for: nothing after them, so no header; one fewer: the header.
    const exact = await api('GET', `/audit/export?${range()}&limit=${w.total}`, { token: w.auditorToken });
    assert.equal(exact.headers['x-next-after-seq'], undefined);
    assert.equal(jsonLines(exact.text).length, w.total);
    const short = await api('GET', `/audit/export?${range()}&limit=${w.total - 1}`, { token: w.auditorToken });
    assert.equal(Number(short.headers['x-next-after-seq']), JSON.parse(all.at(-2)).seq);
    // after_seq past the last record: an empty answer.
    const none = await api('GET', `/audit/export?${range()}&after_seq=${JSON.parse(all.at(-1)).seq}`, { token: w.auditorToken });
    assert.equal(none.status, 200);
    assert.equal(none.text, '');
});

test('an admin makes a signed checkpoint; it is listed as `audit checkpoints` prints it; an auditor may list, not make', async () => {
    const records = count('SELECT count(*) FROM audit_log');
    const made = await api('POST', '/audit/checkpoints', { token: w.adminToken });
    assert.equal(made.status, 201, made.text);
    const cp = made.json.checkpoint;
    assert.deepEqual(Object.keys(made.json), ['checkpoint']);
    assert.equal(cp.type, 'blnkproxy.audit.checkpoint');
    assert.equal(cp.kind, 'manual');
    assert.equal(cp.node, NODE, 'the node is its host');
    assert.match(cp.id, /^ckpt_/);
    assert.match(cp.key_id, /^[0-9a-f]{16}$/);
    assert.match(cp.signature, /^[0-9a-f]{128}$/, 'signed with audit.signing_key');
    const mine = cp.chains.find((c) => c.chain === NODE);
    assert.equal(mine.n, count(`SELECT count(*) FROM audit_log WHERE chain = '${NODE}'`));
    assert.equal(count('SELECT count(*) FROM audit_log'), records, 'like the CLI\'s, no audit record');
    w.checkpoint = cp;

    const byAuditor = await api('POST', '/audit/checkpoints', { token: w.auditorToken });
    assertError(byAuditor, 403, 'AUTH_INSUFFICIENT_PERMISSIONS');

    const listed = await api('GET', '/audit/checkpoints?kind=manual', { token: w.auditorToken });
    assert.equal(listed.status, 200, listed.text);
    const fromCli = cli(['audit', 'checkpoints', '--kind', 'manual'], { db: w.db, json: false });
    assert.equal(fromCli.code, 0, fromCli.stderr);
    assert.deepEqual(listed.json.checkpoints, jsonLines(fromCli.stdout).map((l) => JSON.parse(l)));
    assert.equal(listed.json.checkpoints.length, 1, 'the auditor\'s attempt made none');
    assert.deepEqual(listed.json.checkpoints[0], cp);

    // The node's periodic ones (every second here, while the heads move), oldest first.
    const periodic = (await waitFor(async () => {
        const r = await api('GET', '/audit/checkpoints?kind=periodic', { token: w.auditorToken });
        return r.json.checkpoints.length > 0 ? r : null;
    }, { timeoutMs: 10000 })).value;
    assert.ok(periodic.json.checkpoints.every((c) => c.kind === 'periodic' && c.node === NODE && /^[0-9a-f]{128}$/.test(c.signature)));
    const every = (await api('GET', '/audit/checkpoints', { token: w.auditorToken })).json.checkpoints;
    assert.ok(every.length >= 2 && every.some((c) => c.kind === 'periodic') && every.some((c) => c.kind === 'manual'));
    for (let i = 1; i < every.length; i++) {
        assert.ok(every[i].time_us >= every[i - 1].time_us, 'oldest first');
    }
    const later = await api('GET', `/audit/checkpoints?since=${Math.floor(cp.time_us / 1e6) + 3600}`, { token: w.auditorToken });
    assert.deepEqual(later.json.checkpoints, []);
    assert.equal(later.json.next_since_us, null);
    // Pages: `limit` of them, oldest first, and where the next page starts.
    const first = (await api('GET', '/audit/checkpoints?limit=1', { token: w.auditorToken })).json;
    assert.equal(first.checkpoints.length, 1);
    assert.deepEqual(first.checkpoints[0], every[0]);
    assert.equal(first.next_since_us, every[0].time_us);
    const seen = new Map();
    let pages = 0;
    for (let since = 0; since !== null; pages++) {
        assert.ok(pages < 100, 'the pages end');
        const page = (await api('GET', `/audit/checkpoints?since_us=${since}&limit=2`, { token: w.auditorToken })).json;
        assert.ok(page.checkpoints.length <= 2);
        for (const c of page.checkpoints) {
            seen.set(c.id, c);
        }
        since = page.next_since_us;
    }
    const sinceEvery = (await api('GET', '/audit/checkpoints?limit=1000', { token: w.auditorToken })).json.checkpoints;
    for (const c of sinceEvery.filter((x) => x.time_us <= every.at(-1).time_us)) {
        assert.ok(seen.has(c.id), `paged: ${c.id}`);
    }
});

test('POST verify: with the checkpoint and the public key, an auditor proves a chain rewritten whole was changed', async () => {
    const body = { checkpoint: JSON.stringify(w.checkpoint), public_key: w.pubPem };
    let r = await api('POST', '/audit/verify', { token: w.auditorToken, body });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(Object.keys(r.json).sort(), ['chains', 'checkpoint_chains_matched', 'checkpoint_chains_purged', 'first_break',
        'intact', 'legacy', 'purged', 'records', 'signatures_checked', 'signatures_unchecked']);
    assert.equal(r.json.intact, true, r.text);
    assert.equal(r.json.first_break, null);
    assert.equal(r.json.checkpoint_chains_matched, w.checkpoint.chains.length);
    assert.ok(r.json.signatures_checked >= 1, r.text);
    assert.equal(r.json.signatures_unchecked, 0);
    // Without the key, its signature is not checked; with another key, it does not match.
    r = await api('POST', '/audit/verify', { token: w.auditorToken, body: { checkpoint: body.checkpoint } });
    assert.equal(r.json.intact, true);
    assert.equal(r.json.signatures_checked, 0);
    assert.ok(r.json.signatures_unchecked >= 1);
    r = await api('POST', '/audit/verify', { token: w.auditorToken, body: { ...body, public_key: fs.readFileSync(w.otherPub, 'utf8') } });
    assert.equal(r.json.intact, false);
    assert.match(r.json.first_break, /does not carry a valid signature/);

    // One field edited in the database: the plain walk finds it.
    const rows = chainRows(w.db, NODE);
    const mid = rows[Math.floor(rows.length / 2)];
    sql(w.db, `UPDATE audit_log SET status = 599 WHERE id = '${mid.id}'`);
    try {
        r = await api('GET', '/audit/verify', { token: w.auditorToken });
        assert.equal(r.json.intact, false);
        assert.ok(r.json.first_break.includes(`chain ${NODE}: record ${mid.chain_n} (${mid.id}`), r.json.first_break);
    } finally {
        sql(w.db, `UPDATE audit_log SET status = ${mid.status} WHERE id = '${mid.id}'`);
    }
    assert.equal((await api('GET', '/audit/verify', { token: w.auditorToken })).json.intact, true);

    // The 3rd record edited and every hash after it recomputed, head too: the chain alone verifies,
    // the checkpoint made before does not.
    const saved = rows.map((x) => ({ ...x }));
    rows[2].action = 'Ledger deleted';
    try {
        for (let i = 2; i < rows.length; i++) {
            rows[i].prev_hash = rows[i - 1].hash;
            rows[i].hash = digest(rows[i]);
            const action = i === 2 ? `action = ${sqlText(rows[i].action)}, ` : '';
            sql(w.db, `UPDATE audit_log SET ${action}prev_hash = '${rows[i].prev_hash}', hash = '${rows[i].hash}' WHERE id = '${rows[i].id}'`);
        }
        sql(w.db, `UPDATE audit_chains SET head = '${rows.at(-1).hash}' WHERE chain = '${NODE}'`);
        r = await api('GET', '/audit/verify', { token: w.auditorToken });
        assert.equal(r.json.intact, true, `the rewrite hides from the walk alone: ${r.text}`);
        r = await api('POST', '/audit/verify', { token: w.auditorToken, body });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.intact, false, r.text);
        assert.ok(r.json.first_break.includes(`chain ${NODE}: record`) && r.json.first_break.includes('differs from the one the checkpoint names'),
            r.json.first_break);
    } finally {
        for (const x of saved.slice(2)) {
            const action = x === saved[2] ? `action = ${sqlText(x.action)}, ` : '';
            sql(w.db, `UPDATE audit_log SET ${action}prev_hash = '${x.prev_hash}', hash = '${x.hash}' WHERE id = '${x.id}'`);
        }
        sql(w.db, `UPDATE audit_chains SET head = '${saved.at(-1).hash}' WHERE chain = '${NODE}'`);
    }
    r = await api('POST', '/audit/verify', { token: w.auditorToken, body });
    assert.equal(r.json.intact, true, r.text);
    assert.equal(r.json.checkpoint_chains_matched, w.checkpoint.chains.length);
});

test('POST verify from a console session needs its CSRF token; the reads do not', async () => {
    const { r: signedIn, cookie, csrf } = await signIn(w.proxy.port, 'bob', PASSWORD);
    assert.equal(signedIn.status, 200, signedIn.text);
    const session = { cookie, csrf };
    const body = { checkpoint: JSON.stringify(w.checkpoint), public_key: w.pubPem };
    assertError(await api('POST', '/audit/verify', { session: { cookie: session.cookie }, body }), 403, 'AUTH_CSRF_FAILED');
    const r = await api('POST', '/audit/verify', { session, body });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.intact, true);
    assert.equal((await api('GET', '/audit/export?limit=1', { session: { cookie: session.cookie } })).status, 200);
    assert.equal((await api('GET', '/audit/checkpoints', { session: { cookie: session.cookie } })).status, 200);
    assertError(await api('POST', '/audit/checkpoints', { session }), 403, 'AUTH_INSUFFICIENT_PERMISSIONS');
});

test('bad parameters, bodies, checkpoints and keys: 400 with the reason, in Core\'s error shape', async () => {
    const t = w.auditorToken;
    for (const q of ['kind=weekly', 'since=yesterday', 'since=-5', 'kind=manual&since=1e9', 'limit=0', 'limit=1001']) {
        assertError(await api('GET', `/audit/checkpoints?${q}`, { token: t }), 400, 'GEN_MALFORMED_REQUEST', /since must be unix seconds .*kind periodic/);
    }
    for (const q of ['format=xml', 'limit=0', 'limit=10001', 'limit=ten', 'after_seq=-1', 'since=abc', 'until=2026-01-01']) {
        assertError(await api('GET', `/audit/export?${q}`, { token: t }), 400, 'GEN_MALFORMED_REQUEST', /bad parameter/);
    }
    assert.equal((await api('GET', '/audit/export?limit=10000&after_seq=0', { token: t })).status, 200, 'the bounds themselves are fine');

    const verify = (body, headers) => api('POST', '/audit/verify', { token: t, body, headers });
    assertError(await verify({ checkpoint: '{"hello":1}' }), 400, 'GEN_MALFORMED_REQUEST', /not a blnkproxy checkpoint/);
    assertError(await verify({ checkpoint: 'not json' }), 400, 'GEN_MALFORMED_REQUEST', /not a blnkproxy checkpoint/);
    assertError(await verify({ checkpoint: { chains: [] } }), 400, 'GEN_MALFORMED_REQUEST', /are strings/);
    assertError(await verify({ public_key: 'nope' }), 400, 'GEN_MALFORMED_REQUEST', /^public_key: not a PEM key/);
    assertError(await verify({ since: 'yesterday' }), 400, 'GEN_MALFORMED_REQUEST', /since must be unix seconds/);
    assertError(await verify({ since: -1 }), 400, 'GEN_MALFORMED_REQUEST', /since must be unix seconds/);
    assertError(await verify({ publickey: w.pubPem }), 400, 'GEN_MALFORMED_REQUEST', /since, checkpoint and public_key only/);
    assertError(await verify('{"checkpoint":'), 400, 'GEN_MALFORMED_REQUEST', /one JSON object/);
    assert.equal((await verify('{}', { 'content-type': 'text/plain' })).status, 415);
    // A private key is refused and never echoed.
    const priv = fs.readFileSync(w.keyFile, 'utf8');
    const leaked = await verify({ public_key: priv });
    assertError(leaked, 400, 'GEN_MALFORMED_REQUEST', /holds a private key/);
    assert.ok(!leaked.text.includes(priv.split('\n')[1]), 'the key is not in the answer');
    // since alone is a read like GET's; a body bigger than the endpoint reads is refused unread.
    const since = await verify({ since: w.until });
    assert.equal(since.status, 200, since.text);
    assert.equal(since.json.intact, true);
    assert.equal((await verify({ checkpoint: 'x'.repeat(70 * 1024) })).status, 413);

    const put = await api('PUT', '/audit/export', { token: w.adminToken, body: {} });
    assertError(put, 405, 'GEN_METHOD_NOT_ALLOWED');
    assert.equal(put.headers.allow, 'GET');
    const del = await api('DELETE', '/audit/checkpoints', { token: w.adminToken });
    assertError(del, 405, 'GEN_METHOD_NOT_ALLOWED');
    assert.equal(del.headers.allow, 'GET, POST');
    assertError(await api('GET', '/audit/export/all', { token: t }), 404, 'GEN_NOT_FOUND');
    const anon = await api('GET', '/audit/export');
    assertError(anon, 401, 'AUTH_INVALID_BEARER_TOKEN');
});

test('large answers held by clients that do not read them are bounded: beyond 64 MiB in all, 503 until they are read', async () => {
    // A store of its own, with 20,000 records of 4 KiB: each export answer stops at 16 MiB.
    const db = tmpDb();
    makeInstance(db, w.core.url, { name: 'big' });
    const op = makeOperator(db, 'carol', { password: PASSWORD, role: 'auditor' });
    const token = cli(['operator', 'token-create', op.id, '--name', 'siem'], { db }).json.token;
    // An hour ago (well inside the retention that serve's start purges by).
    const base = Math.floor(Date.now() / 1000) - 3600;
    sql(db, PG
        ? `INSERT INTO audit_log (time_us, actor_type, category, path) SELECT ${base}000000 + i, 'key', 'ledgers', repeat('a', 4096) FROM generate_series(1, 20000) AS i`
        : `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) INSERT INTO audit_log (time_us, actor_type, category, path) SELECT ${base}000000 + i, 'key', 'ledgers', replace(hex(zeroblob(2048)), '0', 'a') FROM n`);
    const p = await startProxy({ db });
    const exportPath = `/admin/api/audit/export?since=${base}&until=${base + 60}&limit=10000`;
    // Each socket asks for an export and reads nothing: its answer waits in the server's output.
    const held = [];
    const firstBytes = (sock) => new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no answer within 30 s')), 30000);
        sock.once('data', (d) => {
            clearTimeout(t);
            sock.pause();
            resolve(d.toString('latin1'));
        });
        sock.once('error', reject);
    });
    try {
        const statuses = [];
        for (let i = 0; i < 5; i++) {
            const sock = net.connect(p.port, '127.0.0.1');
            held.push(sock);
            sock.write(`GET ${exportPath} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`);
            const head = await firstBytes(sock);
            statuses.push(Number(head.split(' ')[1]));
            if (i === 4) {
                assert.match(head, /PROXY_OVERLOADED/);
                assert.match(head, /\r\nRetry-After: 1\r\n/i);
            }
        }
        assert.deepEqual(statuses, [200, 200, 200, 200, 503], 'four answers of ~16 MiB fit in 64 MiB, the fifth does not');
    } finally {
        for (const sock of held) {
            sock.destroy();
        }
    }
    // The connections are gone: their bytes are free again.
    await waitFor(async () => (await req(p.port, 'GET', exportPath, { headers: bearer(token), agent: false, timeoutMs: 30000 })).status === 200,
        { timeoutMs: 15000, intervalMs: 200, what: 'an export answered again' });
    await p.stop();
});

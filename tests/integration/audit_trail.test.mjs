// The tamper-evident audit trail (issue 13), end to end on the real binary: three `serve` nodes
// writing to one store at once (and the CLI making changes meanwhile) each append to their own
// chain; `audit verify` passes, then finds each single edit, deletion, reordering or insertion
// made directly in the database (undone after each); a signed checkpoint file proves that a
// chain rewritten whole (records cut, head rewritten with the public algorithm, in JS in
// lib/trail.mjs) was changed; `audit export` streams every record with its hashes as JSON lines
// and CSV; `audit checkpoints` prints the stored ones, including the periodic one each node writes.
// Runs on SQLite and, in the _pg run, PostgreSQL.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startFakeCore } from './lib/fake_core.mjs';
import { PG, bearer, cli, makeInstance, makeKey, randomHex, req, sql, startProxy, tmpDb, tmpDir } from './lib/harness.mjs';
import { chainRows, digest } from './lib/trail.mjs';

const NODES = ['node-a', 'node-b', 'node-c'];
const JSONH = { 'content-type': 'application/json' };

function verify(db, extra = []) {
    const r = cli(['audit', 'verify', ...extra], { db });
    return { code: r.code, report: r.json, stderr: r.stderr };
}

function expectIntact(db, extra = []) {
    const v = verify(db, extra);
    assert.equal(v.code, 0, `verify: ${JSON.stringify(v.report)} ${v.stderr}`);
    assert.equal(v.report.intact, true);
    return v.report;
}

function expectBreak(db, what, extra = []) {
    const v = verify(db, extra);
    assert.equal(v.code, 1, `verify should fail (${what}): ${JSON.stringify(v.report)} ${v.stderr}`);
    assert.equal(v.report.intact, false);
    assert.ok(v.report.first_break.includes(what), `"${v.report.first_break}" should say "${what}"`);
}

describe('the audit trail', () => {
    let core;
    let db;
    let inst;
    let key;
    let keyFile;
    let pubFile;
    let total;
    const dir = tmpDir();

    before(async () => {
        core = await startFakeCore();
        db = tmpDb();
        inst = makeInstance(db, core.url, { secret: `s_${randomHex(8)}` });
        key = makeKey(db, { instances: [inst.id] });
        keyFile = path.join(dir, 'signing.pem');
        pubFile = path.join(dir, 'public.pem');
        assert.equal(spawnSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', keyFile]).status, 0);
        assert.equal(spawnSync('openssl', ['pkey', '-in', keyFile, '-pubout', '-out', pubFile]).status, 0);

        // Three nodes at once, each with a periodic checkpoint, and the CLI changing keys meanwhile.
        const nodes = [];
        for (const name of NODES) {
            nodes.push(await startProxy({
                db,
                args: ['--node-name', name, '--audit-checkpoint-interval', '1s', '--audit-signing-key', keyFile],
            }));
        }
        try {
            const p = (c) => `/proxy${c}?instance_id=${inst.id}`;
            const sends = [];
            for (let i = 0; i < 90; i++) {
                const n = nodes[i % 3];
                sends.push(i % 2 === 0
                    ? req(n.port, 'POST', p('/ledgers'), { headers: { ...bearer(key.key), ...JSONH }, body: JSON.stringify({ name: `l${i}` }) })
                    : req(n.port, 'GET', p(`/ledgers/ldg_${i}`), { headers: bearer(key.key) }));
                if (i % 30 === 0) {
                    makeKey(db, { name: `during-${i}` });
                }
            }
            for (const r of await Promise.all(sends)) {
                assert.ok(r.status === 200 || r.status === 201, `status ${r.status}`);
            }
            // Each node's keeper writes its checkpoint when the heads move (every second here).
            await new Promise((r) => setTimeout(r, 1500));
        } finally {
            for (const n of nodes) {
                await n.stop();
            }
        }
        total = Number(sql(db, 'SELECT count(*) FROM audit_log').split('\n').find((l) => /^\s*\d+\s*$/.test(l)).trim());
    });

    after(async () => {
        await core.close();
    });

    test('several nodes writing at once: one chain each, and the whole log verifies', () => {
        const report = expectIntact(db);
        assert.equal(report.records, total, 'every record is in a chain');
        // The three nodes and the CLI's host.
        assert.ok(report.chains >= 4, `chains: ${report.chains}`);
        for (const name of NODES) {
            const rows = chainRows(db, name);
            assert.ok(rows.length >= 25, `${name}: ${rows.length} records`);
            let prev = '0'.repeat(64);
            rows.forEach((r, i) => {
                assert.equal(r.chain_n, i + 1);
                assert.equal(r.prev_hash, prev);
                assert.equal(digest(r), r.hash, `${name} record ${r.chain_n}: the documented digest`);
                prev = r.hash;
            });
        }
    });

    test('each single edit, deletion, reordering or insertion in the database is found', () => {
        const rows = chainRows(db, 'node-b');
        const mid = rows[Math.floor(rows.length / 2)];
        const last = rows[rows.length - 1];
        const insertBack = PG ? 'INSERT INTO audit_log OVERRIDING SYSTEM VALUE' : 'INSERT INTO audit_log';

        // An edit of one field.
        sql(db, `UPDATE audit_log SET status = 500 WHERE id = '${mid.id}'`);
        expectBreak(db, `chain node-b: record ${mid.chain_n} (${mid.id}`);
        sql(db, `UPDATE audit_log SET status = ${mid.status} WHERE id = '${mid.id}'`);
        expectIntact(db);
        // One record deleted from the middle, then the last one.
        sql(db, `CREATE TABLE saved AS SELECT * FROM audit_log WHERE id IN ('${mid.id}', '${last.id}')`);
        sql(db, `DELETE FROM audit_log WHERE id = '${mid.id}'`);
        expectBreak(db, `chain node-b: record ${mid.chain_n} is missing`);
        sql(db, `${insertBack} SELECT * FROM saved WHERE id = '${mid.id}'`);
        sql(db, `DELETE FROM audit_log WHERE id = '${last.id}'`);
        expectBreak(db, `records after ${last.chain_n - 1} were removed`);
        sql(db, `${insertBack} SELECT * FROM saved WHERE id = '${last.id}'`);
        sql(db, 'DROP TABLE saved');
        expectIntact(db);
        // Two records' places swapped.
        const [a, b] = [rows[1], rows[2]];
        const swap = () => {
            sql(db, `UPDATE audit_log SET chain_n = -chain_n WHERE id IN ('${a.id}', '${b.id}')`);
            sql(db, `UPDATE audit_log SET chain_n = ${a.chain_n + b.chain_n} + chain_n WHERE id IN ('${a.id}', '${b.id}')`);
        };
        swap();
        expectBreak(db, `chain node-b: record ${a.chain_n}`);
        swap();
        expectIntact(db);
        // A row added by hand.
        sql(db, "INSERT INTO audit_log (time_us, actor_type, action, category, id) VALUES (1, 'cli', 'Key created', 'admin', 'audit_forged')");
        expectBreak(db, 'belong to no chain');
        sql(db, "DELETE FROM audit_log WHERE id = 'audit_forged'");
        expectIntact(db);
    });

    test('a signed checkpoint kept elsewhere proves a chain rewritten whole was changed', () => {
        const file = path.join(dir, 'checkpoint.json');
        const made = cli(['audit', 'checkpoint', '--signing-key', keyFile, '--out', file], { db });
        assert.equal(made.code, 0, made.stderr);
        const cp = JSON.parse(fs.readFileSync(file, 'utf8'));
        assert.equal(cp.type, 'blnkproxy.audit.checkpoint');
        assert.equal(cp.kind, 'manual');
        assert.match(cp.signature, /^[0-9a-f]{128}$/);
        assert.ok(cp.chains.some((c) => c.chain === 'node-c'));
        // Reformatted (as a person or a tool may keep it), it still checks.
        fs.writeFileSync(file, JSON.stringify(cp, null, 2));
        let report = expectIntact(db, ['--checkpoint', file, '--public-key', pubFile]);
        assert.equal(report.checkpoint_chains_matched, cp.chains.length);
        assert.ok(report.signatures_checked >= 1);

        // The attacker edits node-c's 3rd record and recomputes every hash after it and the head,
        // with the public algorithm: the chain alone verifies again.
        const rows = chainRows(db, 'node-c');
        const saved = rows.map((r) => ({ ...r }));
        rows[2].action = 'Ledger viewed';
        for (let i = 2; i < rows.length; i++) {
            rows[i].prev_hash = rows[i - 1].hash;
            rows[i].hash = digest(rows[i]);
            const action = i === 2 ? "action = 'Ledger viewed', " : '';
            sql(db, `UPDATE audit_log SET ${action}prev_hash = '${rows[i].prev_hash}', hash = '${rows[i].hash}' WHERE id = '${rows[i].id}'`);
        }
        sql(db, `UPDATE audit_chains SET head = '${rows[rows.length - 1].hash}' WHERE chain = 'node-c'`);
        expectIntact(db);
        expectBreak(db, 'chain node-c: record', ['--checkpoint', file, '--public-key', pubFile]);
        // Editing the checkpoint to match breaks its signature.
        const forged = { ...cp, chains: cp.chains.map((c) => (c.chain === 'node-c' ? { ...c, head: rows[rows.length - 1].hash } : c)) };
        const forgedFile = path.join(dir, 'forged.json');
        fs.writeFileSync(forgedFile, JSON.stringify(forged));
        expectBreak(db, 'does not carry a valid signature', ['--checkpoint', forgedFile, '--public-key', pubFile]);
        // Put back.
        for (const r of saved.slice(2)) {
            // A read's action is NULL.
            const action = r === saved[2] ? `action = ${r.action === null ? 'NULL' : `'${r.action}'`}, ` : '';
            sql(db, `UPDATE audit_log SET ${action}prev_hash = '${r.prev_hash}', hash = '${r.hash}' WHERE id = '${r.id}'`);
        }
        sql(db, `UPDATE audit_chains SET head = '${saved[saved.length - 1].hash}' WHERE chain = 'node-c'`);
        report = expectIntact(db, ['--checkpoint', file, '--public-key', pubFile]);
        assert.equal(report.checkpoint_chains_matched, cp.chains.length);
    });

    test('the nodes wrote periodic checkpoints, signed, which `audit checkpoints` prints', () => {
        const r = cli(['audit', 'checkpoints', '--kind', 'periodic'], { db, json: false });
        assert.equal(r.code, 0, r.stderr);
        const cps = r.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
        assert.ok(cps.length >= 1, 'at least one periodic checkpoint');
        for (const cp of cps) {
            assert.equal(cp.kind, 'periodic');
            assert.ok(NODES.includes(cp.node), `node ${cp.node}`);
            assert.match(cp.signature, /^[0-9a-f]{128}$/);
        }
        // The last one, kept as a file, verifies.
        const file = path.join(dir, 'periodic.json');
        fs.writeFileSync(file, JSON.stringify(cps[cps.length - 1]));
        expectIntact(db, ['--checkpoint', file, '--public-key', pubFile]);
        // Another key does not.
        const other = path.join(dir, 'other.pem');
        assert.equal(spawnSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', other]).status, 0);
        expectBreak(db, 'does not carry a valid signature', ['--checkpoint', file, '--public-key', other]);
    });

    test('export streams every record with its hashes, as JSON lines and as CSV', () => {
        const j = cli(['audit', 'export'], { db, json: false });
        assert.equal(j.code, 0, j.stderr);
        const lines = j.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
        assert.equal(lines.length, total);
        for (let i = 1; i < lines.length; i++) {
            assert.ok(lines[i].seq > lines[i - 1].seq, 'oldest first');
        }
        for (const l of lines) {
            assert.match(l.hash, /^[0-9a-f]{64}$/);
            assert.match(l.prev_hash, /^[0-9a-f]{64}$/);
            assert.ok(l.chain_n >= 1);
        }
        const c = cli(['audit', 'export', '--format', 'csv'], { db, json: false });
        assert.equal(c.code, 0, c.stderr);
        const rows = c.stdout.split('\r\n').filter((l) => l !== '');
        assert.equal(rows.length, total + 1);
        const head = rows[0].split(',');
        assert.deepEqual(head.slice(-4), ['chain', 'chain_n', 'prev_hash', 'hash']);
        // Same records, same hashes.
        assert.deepEqual(rows.slice(1).map((r) => r.split(',').at(-1)), lines.map((l) => l.hash));
        // To a file: readable by its owner only (client addresses are personal data).
        const out = path.join(dir, 'export.jsonl');
        fs.writeFileSync(out, 'old content', { mode: 0o644 });
        assert.equal(cli(['audit', 'export', '--out', out], { db, json: false }).code, 0);
        assert.equal(fs.statSync(out).mode & 0o777, 0o600);
        assert.equal(fs.readFileSync(out, 'utf8'), j.stdout);
        const since = cli(['audit', 'export', '--since', '1h'], { db, json: false });
        assert.equal(since.stdout.split('\n').filter((l) => l !== '').length, total);
        assert.equal(cli(['audit', 'export', '--format', 'xml'], { db }).code, 2);
    });

    test('bad arguments are refused with a reason', () => {
        let r = cli(['audit', 'verify', '--checkpoint', path.join(dir, 'missing.json')], { db });
        assert.equal(r.code, 2);
        assert.match(r.stderr, /cannot read/);
        const notCp = path.join(dir, 'not.json');
        fs.writeFileSync(notCp, '{"hello":1}');
        r = cli(['audit', 'verify', '--checkpoint', notCp], { db });
        assert.equal(r.code, 2);
        assert.match(r.stderr, /not a blnkproxy checkpoint/);
        r = cli(['audit', 'verify', '--public-key', notCp], { db });
        assert.equal(r.code, 2);
        assert.match(r.stderr, /no PEM key/);
        r = cli(['audit', 'checkpoints', '--kind', 'weekly'], { db });
        assert.equal(r.code, 2);
    });
});

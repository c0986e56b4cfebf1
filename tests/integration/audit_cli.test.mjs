// The audit log from the CLI's side (issue 4): one record per administrative change made with
// `instance …` and `key …` (actor = the OS user), and `audit list` with every filter, JSON lines,
// time formats, --follow and bad arguments.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

import { BIN, cli, cliHistory, makeInstance, makeKey, randomHex, sleep, sql, storeBytes, tmpDb } from './lib/harness.mjs';

const OS_USER = os.userInfo().username;
const TIME_US = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
const FIELDS = [
    'seq', 'id', 'time', 'request_id', 'actor_type', 'actor_id', 'actor_name', 'instance_id', 'method', 'route', 'path',
    'action', 'category', 'core_status', 'status', 'latency_us', 'client_addr', 'resource_id', 'error', 'node',
    'count', 'last_time', 'replayed', 'chain', 'chain_n', 'prev_hash', 'hash',
];
// Issue 9: every record has a unique id.
const AUDIT_ID = /^audit_[0-9A-HJKMNP-TV-Z]{26}$/;

// `audit list` as JSON lines → array of objects (each line checked to be one whole object).
function auditList(db, args = []) {
    const r = cli(['audit', 'list', ...args], { db });
    assert.equal(r.code, 0, `audit list ${args.join(' ')}: ${r.stderr}`);
    const lines = r.stdout.split('\n').filter((l) => l !== '');
    return lines.map((l) => {
        const o = JSON.parse(l);
        assert.deepEqual(Object.keys(o), FIELDS, 'every field, in order');
        assert.match(o.time, TIME_US);
        // Seeded rows (inserted with sql()) have neither id nor node.
        assert.ok(o.id === null || AUDIT_ID.test(o.id), `id: ${o.id}`);
        return o;
    });
}

const adminRecords = (db) => auditList(db, ['--category', 'admin', '--limit', '1000']).reverse();

describe('administrative changes are audited', () => {
    test('every instance and key change has exactly one record, by the OS user', () => {
        const db = tmpDb();
        const secret = `coresecret_${randomHex(16)}`;
        const inst = makeInstance(db, 'http://127.0.0.1:9', { secret });
        assert.equal(cli(['instance', 'disable', inst.id], { db }).code, 0);
        assert.equal(cli(['instance', 'disable', inst.id], { db }).code, 0); // no change: no record
        assert.equal(cli(['instance', 'enable', inst.id], { db }).code, 0);
        assert.equal(cli(['instance', 'update', inst.id, '--name', 'renamed'], { db }).code, 0);
        assert.equal(cli(['instance', 'update', 'instance_00000000000000000000000000', '--name', 'x'], { db }).code, 3);
        const key = makeKey(db, { instances: [inst.id] });
        assert.equal(cli(['key', 'expire', key.id, '--expires-in', '7d'], { db }).code, 0);
        assert.equal(cli(['key', 'revoke', key.id], { db }).code, 0);
        assert.equal(cli(['key', 'revoke', key.id], { db }).code, 0); // already revoked: no record
        assert.equal(cli(['instance', 'remove', inst.id], { db }).code, 0);
        assert.equal(cli(['instance', 'remove', inst.id], { db }).code, 3);

        const recs = adminRecords(db);
        assert.equal(new Set(recs.map((r) => r.id)).size, recs.length, 'ids are unique');
        const want = [
            ['Instance added', inst.id, inst.id],
            ['Instance disabled', inst.id, inst.id],
            ['Instance enabled', inst.id, inst.id],
            ['Instance updated', inst.id, inst.id],
            ['Key created', key.id, null],
            ['Key expiry changed', key.id, null],
            ['Key revoked', key.id, null],
            ['Instance removed', inst.id, inst.id],
        ];
        assert.deepEqual(
            recs.map((r) => [r.action, r.resource_id, r.instance_id]),
            want,
        );
        let prev = 0;
        for (const r of recs) {
            assert.equal(r.actor_type, 'cli');
            assert.equal(r.actor_id, OS_USER);
            assert.equal(r.category, 'admin');
            assert.equal(r.status, 0);
            assert.equal(r.core_status, 0);
            assert.equal(r.method, null);
            assert.equal(r.path, null);
            assert.equal(r.request_id, null);
            assert.equal(r.error, null);
            assert.match(r.id, AUDIT_ID);
            // The CLI's records name the host the command ran on.
            assert.equal(r.node, os.hostname());
            assert.ok(r.seq > prev, 'seq ascends');
            prev = r.seq;
            assert.ok(Math.abs(Date.parse(r.time) - Date.now()) < 60000, `time is now: ${r.time}`);
        }
        // Neither the Core secret nor the API key is in any record, nor in the table output.
        const table = cli(['audit', 'list'], { db, json: false }).stdout;
        const all = JSON.stringify(recs) + table + storeBytes(db).toString('latin1');
        for (const s of [secret, key.key]) {
            assert.ok(!(JSON.stringify(recs) + table).includes(s), 'no secret in audit output');
        }
        assert.ok(!all.includes(key.key), 'the API key text is nowhere in the database');
    });
});

describe('audit list', () => {
    // Seeded records: (seconds ago, category, instance, actor, action, status).
    const db = tmpDb();
    const nowS = Math.floor(Date.now() / 1000);
    const seeds = [
        [7200, 'ledgers', 'instance_A', 'key_1', 'Ledger created', 201],
        [3000, 'balances', 'instance_A', 'key_2', 'Balance created', 201],
        [1800, 'transactions', 'instance_B', 'key_1', 'Transaction created', 201],
        [600, 'transactions', 'instance_B', 'client_9', 'Transactions listed', 200],
        [120, 'identities', 'instance_A', 'key_2', 'Identity created', 403],
        [60, 'ledgers', null, null, null, 401],
        [30, 'transactions', 'instance_B', 'key_1', 'Transaction viewed', 404],
        [5, 'transactions', 'instance_A', 'key_1', 'Transaction created', 502],
    ];
    // Fixed instants for the RFC 3339 cases: 2025-01-01T00:00:00Z ± 1 s, in microseconds.
    const T0 = 1735689600n * 1000000n;
    const q = (s) => (s === null ? 'NULL' : `'${s}'`);
    assert.equal(cli(['db', 'migrate'], { db, json: false }).code, 0);
    sql(
        db,
        seeds
            .map(
                ([ago, cat, inst, actor, action, status], i) =>
                    `INSERT INTO audit_log (time_us, request_id, actor_type, actor_id, instance_id, method, path,` +
                    ` action, category, status, core_status, client_addr) VALUES (${(nowS - ago) * 1000000 + 123456},` +
                    ` 'req-${i}', '${actor ? 'api_key' : 'anonymous'}', ${q(actor)}, ${q(inst)}, 'GET', '/x',` +
                    ` ${q(action)}, '${cat}', ${status}, ${status === 401 || status === 403 ? 0 : status}, '127.0.0.1');`,
            )
            .join('\n') +
            `\nINSERT INTO audit_log (time_us, actor_type, category, action, status) VALUES (${T0 - 1000000n}, 'cli', 'admin', 'old-1', 0);` +
            `\nINSERT INTO audit_log (time_us, actor_type, category, action, status) VALUES (${T0}, 'cli', 'admin', 'old-0', 0);` +
            `\nINSERT INTO audit_log (time_us, actor_type, category, action, status) VALUES (${T0 + 500000n}, 'cli', 'admin', 'old+0.5', 0);` +
            `\nINSERT INTO audit_log (time_us, actor_type, category, action, status) VALUES (${T0 + 1000000n}, 'cli', 'admin', 'old+1', 0);`,
    );
    const ids = (recs) => recs.map((r) => r.request_id ?? r.action);

    test('newest first; --limit', () => {
        const all = auditList(db, ['--limit', '1000']);
        assert.equal(all.length, 12);
        assert.deepEqual(ids(all).slice(0, 8), ['req-7', 'req-6', 'req-5', 'req-4', 'req-3', 'req-2', 'req-1', 'req-0']);
        assert.deepEqual(ids(auditList(db, ['--limit', '2'])), ['req-7', 'req-6']);
        // Default limit 100: all 12 here.
        assert.equal(auditList(db).length, 12);
        const first = all[0];
        assert.equal(first.time, new Date((nowS - 5) * 1000).toISOString().replace(/\.\d{3}Z$/, '.123456Z'));
        assert.equal(first.status, 502);
        assert.equal(first.core_status, 502);
        assert.equal(first.client_addr, '127.0.0.1');
    });

    test('each filter, and all at once', () => {
        assert.deepEqual(ids(auditList(db, ['--category', 'transactions'])), ['req-7', 'req-6', 'req-3', 'req-2']);
        assert.deepEqual(ids(auditList(db, ['--instance', 'instance_A'])), ['req-7', 'req-4', 'req-1', 'req-0']);
        assert.deepEqual(ids(auditList(db, ['--credential', 'key_1'])), ['req-7', 'req-6', 'req-2', 'req-0']);
        assert.deepEqual(ids(auditList(db, ['--action', 'Transaction created'])), ['req-7', 'req-2']);
        assert.deepEqual(ids(auditList(db, ['--status', '201'])), ['req-2', 'req-1', 'req-0']);
        assert.deepEqual(ids(auditList(db, ['--status', '4xx'])), ['req-6', 'req-5', 'req-4']);
        assert.deepEqual(ids(auditList(db, ['--status', '5XX'])), ['req-7']);
        assert.deepEqual(ids(auditList(db, ['--category', 'identities', '--status', '2xx'])), []);
        assert.deepEqual(
            ids(auditList(db, ['--category', 'transactions', '--instance', 'instance_B', '--credential', 'key_1',
                '--since', '1h', '--status', '2xx', '--action', 'Transaction created'])),
            ['req-2'],
        );
    });

    test('relative times', () => {
        assert.deepEqual(ids(auditList(db, ['--since', '90s'])), ['req-7', 'req-6', 'req-5']);
        assert.deepEqual(ids(auditList(db, ['--since', '15m', '--until', '90s'])), ['req-4', 'req-3']);
        assert.deepEqual(ids(auditList(db, ['--since', '1h', '--until', '15m'])), ['req-2', 'req-1']);
        assert.equal(auditList(db, ['--since', '7d']).length, 8);
        assert.deepEqual(ids(auditList(db, ['--until', '1h', '--since', '7d'])), ['req-0']);
    });

    test('RFC 3339 times: Z, offsets, fractions; since inclusive, until exclusive', () => {
        const old = (args) => ids(auditList(db, ['--category', 'admin', ...args])).filter((a) => a.startsWith('old'));
        assert.deepEqual(old(['--since', '2025-01-01T00:00:00Z', '--until', '2025-01-01T00:00:01Z']), ['old+0.5', 'old-0']);
        assert.deepEqual(old(['--since', '2025-01-01T01:00:00+01:00', '--until', '2024-12-31T19:00:01-05:00']),
            ['old+0.5', 'old-0']);
        assert.deepEqual(old(['--since', '2025-01-01T00:00:00.25Z', '--until', '2025-01-01T00:00:00.500001Z']), ['old+0.5']);
        assert.deepEqual(old(['--until', '2025-01-01T00:00:00Z']), ['old-1']);
        assert.deepEqual(old(['--since', '2025-01-01t00:00:01z']), ['old+1']);
    });

    test('table output for people', () => {
        const r = cli(['audit', 'list', '--limit', '3'], { db, json: false });
        assert.equal(r.code, 0, r.stderr);
        const lines = r.stdout.trimEnd().split('\n');
        assert.equal(lines.length, 4);
        assert.match(lines[0], /^TIME\s+ACTOR\s+ACTION\s+CATEGORY\s+INSTANCE\s+STATUS\s+RESOURCE$/);
        assert.match(lines[1], /^\d{4}-\d\d-\d\dT\S+Z\s+key_1\s+Transaction created\s+transactions\s+instance_A\s+502\s+-$/);
        assert.match(lines[3], /anonymous\s+-\s+ledgers\s+-\s+401/);
    });

    test('bad arguments exit 2 and say why', () => {
        const bad = [
            ['--since', 'yesterday'], ['--since', '5'], ['--since', '10y'], ['--until', '2025-13-01T00:00:00Z'],
            ['--until', '2025-02-30T00:00:00Z'], ['--since', '2025-01-01T00:00:00'], ['--since', '2025-01-01 00:00:00Z'],
            ['--since', '2025-01-01T00:00:00+0100'], ['--status', '600'], ['--status', '4x'], ['--status', '6xx'],
            ['--status', 'abc'], ['--status', '99'], ['--limit', '0'], ['--limit', '-1'], ['--limit', 'ten'],
            ['--category', ''], ['--bogus'], ['--since'],
        ];
        for (const args of bad) {
            const r = cli(['audit', 'list', ...args], { db });
            assert.equal(r.code, 2, `audit list ${args.join(' ')} → ${r.code}: ${r.stderr}`);
            assert.ok(r.stderr.length > 0, 'a reason on stderr');
            assert.equal(r.stdout, '');
        }
        assert.equal(cli(['audit', 'frobnicate'], { db }).code, 2);
    });

    test('--follow prints matching records oldest first, then new ones, until SIGTERM (exit 0)', async () => {
        const fdb = tmpDb();
        makeInstance(fdb, 'http://127.0.0.1:9', { name: 'first' });
        makeInstance(fdb, 'http://127.0.0.1:9', { name: 'second' });
        const child = spawn(BIN, ['audit', 'list', '--follow', '--json', '--category', 'admin', '--db', fdb], {
            stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        let err = '';
        child.stdout.on('data', (d) => {
            out += d;
        });
        child.stderr.on('data', (d) => {
            err += d;
        });
        const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
        const lines = () => out.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
        const waitLines = async (n) => {
            for (let i = 0; i < 100 && lines().length < n; i++) {
                await sleep(50);
            }
            assert.ok(lines().length >= n, `expected ${n} lines, got: ${out} ${err}`);
        };
        await waitLines(2);
        assert.deepEqual(lines().map((r) => r.action), ['Instance added', 'Instance added']);
        assert.ok(lines()[0].seq < lines()[1].seq, 'oldest first');
        const key = makeKey(fdb);
        await waitLines(3);
        assert.equal(lines()[2].action, 'Key created');
        assert.equal(lines()[2].resource_id, key.id);
        await sleep(600); // a poll with nothing new prints nothing
        assert.equal(lines().length, 3);
        child.kill('SIGTERM');
        const ex = await exited;
        assert.deepEqual(ex, { code: 0, signal: null });
        assert.equal(err, '');
    });

    test('--follow stops on SIGINT too', async () => {
        const fdb = tmpDb();
        const child = spawn(BIN, ['audit', 'list', '--follow', '--db', fdb], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (d) => {
            out += d;
        });
        const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
        for (let i = 0; i < 100 && !out.includes('TIME'); i++) {
            await sleep(50);
        }
        assert.match(out, /^TIME\s+ACTOR/);
        makeInstance(fdb, 'http://127.0.0.1:9', { name: 'later' });
        for (let i = 0; i < 100 && !out.includes('Instance added'); i++) {
            await sleep(50);
        }
        assert.match(out, /Instance added/);
        child.kill('SIGINT');
        assert.deepEqual(await exited, { code: 0, signal: null });
    });
});

test('nothing any CLI run printed holds a secret', () => {
    for (const h of cliHistory) {
        if (h.args[0] === 'key' && h.args[1] === 'create') {
            continue; // the one-time display of the created key
        }
        assert.doesNotMatch(h.stdout + h.stderr, /coresecret_|blnk_[0-9a-f]{64}/, `blnkproxy ${h.args.join(' ')}`);
    }
});


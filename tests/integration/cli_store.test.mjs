// Where the store comes from and how it is copied (issue 8, items 4 and 10):
// - only `db migrate`, `serve` and `instance add` may create a store, and they say where;
//   every other command refuses a missing store (exit 1) and creates nothing;
// - a file that is not a blnkproxy store, or a store newer than this binary, is refused by every
//   command and by serve, and left as it was;
// - `db backup FILE` makes a consistent, private copy of a live store.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

import { BIN, PG, bearer, cli, makeInstance, makeKey, req, setupWorld, startProxy, tmpDb, tmpDir } from './lib/harness.mjs';

const execFileP = promisify(execFile);

// The environment of a run that must not find a store by accident.
function envWithout() {
    const env = { ...process.env };
    delete env.BLNKPROXY_DB;
    return env;
}

// Runs the binary with exactly these args in cwd (no implicit --db or --json).
function run(args, { cwd, env = {} } = {}) {
    const r = spawnSync(BIN, args, { cwd, encoding: 'utf8', env: { ...envWithout(), ...env }, timeout: 20000 });
    assert.equal(r.error, undefined, `spawn: ${r.error}`);
    return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

function sql(db, query) {
    const r = spawnSync('sqlite3', [db, query], { encoding: 'utf8' });
    assert.equal(r.status, 0, `sqlite3 ${query}: ${r.stderr}`);
    return r.stdout.trim();
}

function migrated() {
    const db = path.join(tmpDir(), 'blnkproxy.db');
    const r = cli(['db', 'migrate'], { db });
    assert.equal(r.code, 0, r.stderr);
    return db;
}

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// Commands that read or change records: none of them may create a store.
const GHOST = 'instance_01ARZ3NDEKTSV4RRFFQ69G5FAV';
const NON_CREATING = [
    ['instance', 'list'],
    ['instance', 'show', GHOST],
    ['instance', 'update', GHOST, '--name', 'x'],
    ['instance', 'disable', GHOST],
    ['instance', 'remove', GHOST],
    ['key', 'create', '--name', 'k', '--scopes', 'proxy:read'],
    ['key', 'list'],
    ['key', 'revoke', 'key_01ARZ3NDEKTSV4RRFFQ69G5FAV'],
    ['client', 'create', '--name', 'c', '--scopes', 'proxy:read'],
    ['client', 'list'],
    ['operator', 'list'],
    ['operator', 'create', '--name', 'op', '--password-env', 'BP_TEST_PW'],
    ['audit', 'list'],
    ['db', 'backup', 'copy.db'],
];

describe('a missing store', () => {
    test('every command that is not meant to create one exits 1, names the path and creates nothing', () => {
        const dir = fs.realpathSync(tmpDir());
        const want = `blnkproxy: no blnkproxy store at ${path.join(dir, 'blnkproxy.db')} (use --db or BLNKPROXY_DB)\n`;
        for (const args of NON_CREATING) {
            for (const json of [[], ['--json']]) {
                const r = run([...args, ...json], { cwd: dir, env: { BP_TEST_PW: 'a-long-password' } });
                assert.equal(r.code, 1, `${args.join(' ')}: exit ${r.code}, stderr ${r.stderr}`);
                assert.equal(r.stderr, want, args.join(' '));
                assert.equal(r.stdout, '', args.join(' '));
                assert.deepEqual(fs.readdirSync(dir), [], `${args.join(' ')} left files behind`);
            }
        }
    });

    test('--db and $BLNKPROXY_DB name the store the message reports', () => {
        const dir = fs.realpathSync(tmpDir());
        const viaFlag = path.join(dir, 'flag.db');
        let r = run(['key', 'list', '--db', viaFlag]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, new RegExp(`no blnkproxy store at ${escapeRe(viaFlag)} `));
        const viaEnv = path.join(dir, 'env.db');
        r = run(['key', 'list'], { env: { BLNKPROXY_DB: viaEnv } });
        assert.equal(r.code, 1);
        assert.match(r.stderr, new RegExp(`no blnkproxy store at ${escapeRe(viaEnv)} `));
        // A relative --db is reported as the absolute path it resolves to.
        r = run(['client', 'list', '--db', 'sub/../rel.db'], { cwd: dir });
        assert.equal(r.code, 1);
        assert.match(r.stderr, new RegExp(`no blnkproxy store at ${escapeRe(dir)}/sub/\\.\\./rel\\.db `));
        assert.deepEqual(fs.readdirSync(dir), []);
    });

    test('instance add creates the store once, privately, and says where on stderr', () => {
        const dir = fs.realpathSync(tmpDir());
        const db = path.join(dir, 'blnkproxy.db');
        const key = path.join(tmpDir(), 'core.key');
        fs.writeFileSync(key, 'core-secret-store-create\n', { mode: 0o600 });
        const add = (name) => run(['instance', 'add', '--name', name, '--url', 'http://127.0.0.1:5001',
            '--secret-key-file', key, '--json'], { cwd: dir });
        let r = add('first');
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stderr, `blnkproxy: created a new store at ${db}\n`);
        assert.match(JSON.parse(r.stdout).id, /^instance_/);
        assert.equal(fs.statSync(db).mode & 0o777, 0o600);
        r = add('second');
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stderr, '', 'the store exists now: nothing to say');
        r = run(['instance', 'list', '--json'], { cwd: dir });
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(JSON.parse(r.stdout).instances.map((i) => i.name), ['first', 'second']);
    });

    test('instance add with invalid flags creates nothing', () => {
        const dir = tmpDir();
        const r = run(['instance', 'add', '--name', 'x', '--url', 'ftp://nope'], { cwd: dir });
        assert.equal(r.code, 2);
        assert.deepEqual(fs.readdirSync(dir), []);
    });

    test('db migrate creates the store and says where', () => {
        const dir = fs.realpathSync(tmpDir());
        const db = path.join(dir, 'blnkproxy.db');
        let r = run(['db', 'migrate', '--json'], { cwd: dir });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stderr, `blnkproxy: created a new store at ${db}\n`);
        const first = JSON.parse(r.stdout);
        assert.ok(first.applied >= 3);
        assert.equal(fs.statSync(db).mode & 0o777, 0o600);
        r = run(['db', 'migrate', '--json'], { cwd: dir });
        assert.equal(r.stderr, '');
        assert.deepEqual(JSON.parse(r.stdout), { applied: 0, version: first.version });
    });

    test('serve creates a missing store and logs its path; not again once it exists', async () => {
        const dir = fs.realpathSync(tmpDir());
        const db = path.join(dir, 'new.db');
        let proxy = await startProxy({ db });
        try {
            const line = proxy.logObjects().find((o) => o.msg === 'created a new store');
            assert.ok(line, `no "created a new store" line in:\n${proxy.logs().join('\n')}`);
            assert.equal(line.path, db);
        } finally {
            await proxy.stop();
        }
        assert.equal(fs.statSync(db).mode & 0o777, 0o600);
        proxy = await startProxy({ db });
        try {
            assert.equal(proxy.logObjects().filter((o) => o.msg === 'created a new store').length, 0);
        } finally {
            await proxy.stop();
        }
    });
});

describe('a file that is not a blnkproxy store', () => {
    test('an SQLite database of something else is refused by every command and left untouched', () => {
        const dir = tmpDir();
        const db = path.join(dir, 'other.db');
        sql(db, 'CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES (\'hi\');');
        const before = fs.readFileSync(db);
        for (const args of [...NON_CREATING, ['db', 'migrate'],
            ['instance', 'add', '--name', 'x', '--url', 'http://127.0.0.1:5001']]) {
            const r = run([...args, '--db', db], { cwd: dir, env: { BP_TEST_PW: 'a-long-password' } });
            assert.equal(r.code, 1, `${args.join(' ')}: exit ${r.code}, ${r.stderr}`);
            assert.match(r.stderr, new RegExp(`^blnkproxy: ${escapeRe(db)} is not a blnkproxy store \\(it has no schema_migrations table\\)`),
                args.join(' '));
        }
        assert.deepEqual(fs.readFileSync(db), before, 'the file was not changed');
        assert.deepEqual(fs.readdirSync(dir), ['other.db'], 'nothing was written beside it (db backup included)');
        assert.equal(sql(db, "SELECT group_concat(name) FROM sqlite_master WHERE type = 'table'"), 'notes');
    });

    test('an empty file is not a store for reading commands, but db migrate makes it one', () => {
        const dir = tmpDir();
        const db = path.join(dir, 'empty.db');
        fs.writeFileSync(db, '', { mode: 0o600 });
        let r = run(['key', 'list', '--db', db]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /is not a blnkproxy store/);
        assert.equal(fs.statSync(db).size, 0);
        r = run(['db', 'migrate', '--db', db, '--json']);
        assert.equal(r.code, 0, r.stderr);
        assert.ok(JSON.parse(r.stdout).applied >= 3);
        assert.equal(run(['key', 'list', '--db', db]).code, 0);
    });

    test('a file that is not SQLite at all is refused', () => {
        const db = path.join(tmpDir(), 'notes.txt');
        fs.writeFileSync(db, 'these are not the pages you are looking for\n'.repeat(20));
        for (const args of [['key', 'list'], ['db', 'migrate'], ['instance', 'add', '--name', 'x', '--url', 'http://h']]) {
            const r = run([...args, '--db', db]);
            assert.equal(r.code, 1, args.join(' '));
            assert.match(r.stderr, new RegExp(`^blnkproxy: ${escapeRe(db)} is not a blnkproxy store \\(not an SQLite database\\)`));
        }
    });
});

describe('a store newer than this binary', () => {
    const TOO_NEW = /the store at .* has schema version 99; this blnkproxy \(\d+\.\d+\.\d+[^)]*\) knows up to \d+: upgrade blnkproxy/;

    test('is refused by every command, including the creating ones', () => {
        const db = migrated();
        sql(db, 'INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)');
        for (const args of [...NON_CREATING, ['db', 'migrate'], ['instance', 'add', '--name', 'x', '--url', 'http://h']]) {
            const r = run([...args, '--db', db], { cwd: path.dirname(db), env: { BP_TEST_PW: 'a-long-password' } });
            assert.equal(r.code, 1, `${args.join(' ')}: exit ${r.code}, ${r.stderr}`);
            assert.match(r.stderr, TOO_NEW, args.join(' '));
            assert.equal(r.stdout, '');
        }
        assert.equal(sql(db, 'SELECT max(version) FROM schema_migrations'), '99');
        assert.equal(sql(db, 'SELECT count(*) FROM instances'), '0');
    });

    test('is refused by serve, which exits at once with the reason', () => {
        const db = migrated();
        sql(db, 'INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)');
        const r = spawnSync(BIN, ['serve', '--db', db, '--listen', '127.0.0.1:0', '--workers', '1'], {
            cwd: tmpDir(), encoding: 'utf8', env: envWithout(), timeout: 10000, killSignal: 'SIGKILL',
        });
        assert.equal(r.signal, null, `serve did not exit by itself; stderr:\n${r.stderr}`);
        assert.notEqual(r.status, 0);
        assert.match(r.stderr, TOO_NEW);
        assert.ok(!r.stderr.includes('"msg":"listening"'));
    });
});

describe('db backup', () => {
    test('copies a store privately, reports what it copied, and never overwrites by accident', () => {
        const db = migrated();
        const inst = makeInstance(db, 'http://127.0.0.1:5001', { secret: 'core-secret-backup-1' });
        const key = makeKey(db, { scopes: ['proxy:read'] });
        const dir = fs.realpathSync(tmpDir());
        const dest = path.join(dir, 'copy.db');

        const r = cli(['db', 'backup', dest], { db });
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(Object.keys(r.json), ['path', 'bytes', 'schema_version']);
        assert.equal(r.json.path, dest);
        assert.equal(r.json.bytes, fs.statSync(dest).size);
        assert.ok(r.json.bytes > 0);
        assert.equal(r.json.schema_version, Number(sql(db, 'SELECT max(version) FROM schema_migrations')));
        assert.equal(fs.statSync(dest).mode & 0o777, 0o600, 'the copy holds Core secrets: private');
        assert.deepEqual(fs.readdirSync(dir), ['copy.db'], 'one file, no temporary or -wal file left behind');
        assert.equal(sql(dest, 'PRAGMA integrity_check'), 'ok');

        // The copy is a store the CLI opens like the original.
        assert.deepEqual(cli(['instance', 'show', inst.id], { db: dest }).json, cli(['instance', 'show', inst.id], { db }).json);
        assert.deepEqual(cli(['key', 'list'], { db: dest }).json, cli(['key', 'list'], { db }).json);
        assert.equal(cli(['key', 'show', key.id], { db: dest }).code, 0);

        // An existing file is kept unless --force.
        makeKey(db, { scopes: ['proxy:write'] });
        let again = cli(['db', 'backup', dest], { db });
        assert.equal(again.code, 2);
        assert.match(again.stderr, new RegExp(`^blnkproxy: ${escapeRe(dest)} already exists; pass --force to replace it`));
        assert.equal(again.stdout, '');
        assert.equal(cli(['key', 'list'], { db: dest }).json.keys.length, 1);
        again = cli(['db', 'backup', dest, '--force'], { db });
        assert.equal(again.code, 0, again.stderr);
        assert.equal(cli(['key', 'list'], { db: dest }).json.keys.length, 2);
        assert.equal(fs.statSync(dest).mode & 0o777, 0o600);

        // For people: one line per field.
        const human = cli(['db', 'backup', path.join(dir, 'human.db')], { db, json: false });
        assert.equal(human.code, 0, human.stderr);
        assert.match(human.stdout, new RegExp(`^path:\\s+${escapeRe(path.join(dir, 'human.db'))}$`, 'm'));
        assert.match(human.stdout, /^schema_version:\s+\d+$/m);
        assert.ok(!(human.stdout + human.stderr + r.stdout).includes('core-secret-backup-1'));
    });

    test('refuses to write over the store itself, into a missing directory, or without a FILE', () => {
        const db = migrated();
        for (const dest of [db, `${db}-wal`, `${db}-shm`, `${path.dirname(db)}/./blnkproxy.db`]) {
            const r = cli(['db', 'backup', dest, '--force'], { db });
            assert.equal(r.code, 2, `${dest}: ${r.stderr}`);
            assert.match(r.stderr, /is the store itself or one of its files/);
        }
        assert.equal(sql(db, 'PRAGMA integrity_check'), 'ok');
        const missing = path.join(tmpDir(), 'no', 'such', 'dir', 'copy.db');
        let r = cli(['db', 'backup', missing], { db });
        assert.equal(r.code, 1);
        assert.match(r.stderr, /^blnkproxy: cannot write .*copy\.db/);
        r = cli(['db', 'backup'], { db });
        assert.equal(r.code, 2);
        assert.match(r.stderr, /db backup needs a FILE/);
    });

    test('a PostgreSQL store is backed up with pg_dump: db backup says so and writes nothing', () => {
        // Decided from the DSN alone: the answer is the same whether the server is up or not.
        const db = PG ? tmpDb() : 'postgres://blnk:pw-backup-XYZ@127.0.0.1:1/proxy';
        const dir = tmpDir();
        const dest = path.join(dir, 'copy.db');
        for (const json of [true, false]) {
            const r = cli(['db', 'backup', dest], { db, json });
            assert.equal(r.code, 2, r.stderr);
            assert.equal(r.stdout, '');
            assert.match(r.stderr, /^blnkproxy: db backup copies SQLite stores; back up a PostgreSQL store with pg_dump/);
            assert.ok(r.stderr.includes('pg_dump --format=custom'), r.stderr);
            assert.ok(!r.stderr.includes('choose another FILE'), r.stderr);
            const password = /^postgres(?:ql)?:\/\/[^:@/]*:([^@/]+)@/.exec(db)[1];
            assert.ok(!r.stderr.includes(password), `no DSN password: ${r.stderr.replace(password, '<password>')}`);
        }
        assert.deepEqual(fs.readdirSync(dir), [], 'nothing was written');
    });

    test('a backup taken while serve writes audit records is a consistent store',
        { skip: PG && 'SQLite only: a PostgreSQL store is backed up with pg_dump (test above)' }, async () => {
        const w = await setupWorld({ keys: { all: ['*'] } });
        let stop = false;
        let sent = 0;
        const load = async () => {
            while (!stop) {
                const res = await req(w.port, 'POST', w.p('/ledgers'), {
                    headers: { ...bearer(w.keys.all.key), 'content-type': 'application/json' },
                    body: { name: `l${sent}` },
                });
                assert.equal(res.status, 201, res.text);
                sent++;
            }
        };
        const count = (db) => Number(sql(db, 'SELECT count(*) FROM audit_log'));
        const loaders = [load(), load(), load(), load()];
        try {
            // Enough rows that a copy of the main file alone would miss some of them (they sit in
            // the WAL until a checkpoint), and writes still running while the backup is taken.
            const t0 = Date.now();
            while (count(w.db) < 300) {
                assert.ok(Date.now() - t0 < 60000, 'the load did not reach 300 audit rows within 60 s');
                await new Promise((r) => setTimeout(r, 50));
            }
            const before = count(w.db);
            const dest = path.join(tmpDir(), 'live-copy.db');
            const sentBefore = sent;
            const { stdout } = await execFileP(BIN, ['db', 'backup', dest, '--db', w.db, '--json'], { env: envWithout() });
            const sentDuring = sent - sentBefore;
            stop = true;
            await Promise.all(loaders);
            const after = count(w.db);
            const info = JSON.parse(stdout);
            assert.equal(info.path, dest);

            assert.equal(sql(dest, 'PRAGMA integrity_check'), 'ok');
            const copied = count(dest);
            assert.ok(copied >= before, `the copy has ${copied} audit rows, the store had ${before} before the backup`);
            assert.ok(copied <= after, `the copy has ${copied} rows, more than the store's ${after}`);
            // Consistent: a prefix of the log with no hole (a torn copy would lose rows in the middle).
            assert.equal(sql(dest, 'SELECT max(seq) FROM audit_log'), String(copied));
            assert.ok(sentDuring > 0, 'requests were answered while the backup ran');

            // The CLI reads the copy like a store.
            const listed = cli(['audit', 'list', '--limit', '5'], { db: dest });
            assert.equal(listed.code, 0, listed.stderr);
            assert.equal(listed.stdout.trim().split('\n').length, 5);
            assert.deepEqual(cli(['key', 'list'], { db: dest }).json.keys.map((k) => k.id), [w.keys.all.id]);
            assert.deepEqual(cli(['instance', 'list'], { db: dest }).json.instances.map((i) => i.id), [w.instance.id]);
        } finally {
            stop = true;
            await Promise.allSettled(loaders);
            await w.close();
        }
    });
});

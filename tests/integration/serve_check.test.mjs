// `blnkproxy serve --check` (issue 8, item 6), like `nginx -t`: loads and validates the
// configuration (file, environment, flags), the route table and the store, starts nothing,
// creates nothing, and exits 0 with a summary or 2 with the reason.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { PG, cli, emptyDb, makeInstance, maskDsn, sql, startProxy, tmpDb, tmpDir } from './lib/harness.mjs';

function configFile(text) {
    const file = path.join(tmpDir(), 'blnkproxy.json');
    fs.writeFileSync(file, typeof text === 'string' ? text : JSON.stringify(text));
    return file;
}

const check = (args, opts = {}) => cli(['serve', '--check', ...args], { json: false, timeoutMs: 10000, ...opts });

test('a valid configuration and store: exit 0 and a summary', () => {
    const db = tmpDb();
    makeInstance(db, 'http://127.0.0.1:9', { secret: 's' });
    const file = configFile({
        workers: 3,
        audit: { reads: 'off' },
        routes: { remove: ['DELETE /reconciliation/matching-rules/:id'], add: [{ method: 'GET', path: '/reports/:id' }] },
    });
    const r = check(['--config', file, '--db', db, '--listen', ':8081']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^configuration ok$/m);
    assert.ok(r.stdout.includes(file), r.stdout);
    assert.match(r.stdout, /listen +0\.0\.0\.0:8081, 3 workers/);
    assert.match(r.stdout, /routes +42 \(42 built in, 1 removed, 1 added\)/);
    assert.match(r.stdout, /audit +writes sync, reads off/);
    // A DSN is shown with its password masked (the PostgreSQL run's DSN has one).
    assert.ok(r.stdout.includes(`${maskDsn(db)}, 1 instance`), r.stdout);
    assert.equal(r.stderr, '');

    const j = check(['--config', file, '--db', db, '--json']);
    assert.equal(j.code, 0, j.stderr);
    assert.deepEqual(JSON.parse(j.stdout), {
        ok: true,
        config_file: file,
        listen: '127.0.0.1:8080',
        workers: 3,
        routes: 42,
        audit_writes: 'sync',
        audit_reads: 'off',
        store: maskDsn(db),
        store_exists: true,
        instances: 1,
    });
});

test('no store yet: reported, not created', () => {
    const db = path.join(tmpDir(), 'new.db');
    const r = check(['--db', db]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.includes(`no store at ${db}; serve would create it`), r.stdout);
    assert.equal(fs.existsSync(db), false, 'the store was not created');
    assert.deepEqual(fs.readdirSync(path.dirname(db)), []);

    const bad = check(['--db', '/nonexistent-dir-for-check/x.db']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^blnkproxy: no store at \/nonexistent-dir-for-check\/x\.db, and serve could not create it: directory \/nonexistent-dir-for-check: No such file or directory$/m);
    assert.equal(bad.stdout, '');
});

test('a PostgreSQL database without a store: reported, nothing created in it', { skip: !PG && 'PostgreSQL only' }, () => {
    const db = emptyDb();
    for (const json of [false, true]) {
        const r = check(['--db', db, ...(json ? ['--json'] : [])]);
        assert.equal(r.code, 0, r.stderr);
        if (json) {
            const o = JSON.parse(r.stdout);
            assert.equal(o.store, maskDsn(db));
            assert.equal(o.store_exists, false);
            assert.equal(o.instances, 0);
        } else {
            assert.ok(r.stdout.includes(`no store in ${maskDsn(db)}; serve would create it`), r.stdout);
        }
        assert.ok(!`${r.stdout}${r.stderr}`.includes(db), 'the DSN is shown masked');
    }
    assert.equal(sql(db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"), '0', 'nothing was created');
});

test('an unreachable PostgreSQL server: exit 2, the DSN masked', () => {
    const db = 'postgresql://blnk:hunter3-unreachable@127.0.0.1:1/proxy';
    const r = check(['--db', db]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^blnkproxy: store postgresql:\/\/blnk:\*\*\*@127\.0\.0\.1:1\/proxy: cannot connect/);
    assert.ok(!`${r.stdout}${r.stderr}`.includes('hunter3'), r.stderr);
});

test('a bad configuration: exit 2 with the reason on stderr', () => {
    const db = tmpDb();
    const cases = [
        [['--config', configFile('{"workers": 4,\n "listen": 8080}')], /blnkproxy\.json: key "listen": expected HOST:PORT/],
        [['--config', configFile('{"workers": 4,\n oops}')], /blnkproxy\.json:2: /],
        [['--config', configFile({ routes: { remove: ['GET /nope'] } })], /config "routes": /],
        [['--workres', '4'], /unknown option --workres \(did you mean --workers\?\)/],
        [['--listen', '8081'], /for every interface write :PORT/],
        [['--config', '/nonexistent-dir-for-check/c.json'], /--config: cannot read/],
    ];
    for (const [args, reason] of cases) {
        const r = check([...args, '--db', db]);
        assert.equal(r.code, 2, `${args}: ${r.stdout} ${r.stderr}`);
        assert.match(r.stderr, reason);
        assert.equal(r.stdout, '');
        const j = check([...args, '--db', db, '--json']);
        assert.equal(j.code, 2);
        const o = JSON.parse(j.stdout);
        assert.equal(o.ok, false);
        assert.match(o.error, reason);
    }
    const env = check(['--db', db], { env: { BLNKPROXY_MAX_BODY_BYTES: '2TB' } });
    assert.equal(env.code, 2);
    assert.match(env.stderr, /BLNKPROXY_MAX_BODY_BYTES: must be a size/);
});

test('a DSN password is never printed', () => {
    const r = check(['--db', 'postgres://blnk:hunter2-dsn-secret@db.example:5432/proxy']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /postgres:\/\/blnk:\*\*\*@db\.example:5432\/proxy/);
    assert.ok(!`${r.stdout}${r.stderr}`.includes('hunter2'), r.stderr);
    const kv = check(['--db', 'host=db.example password=hunter2-kv user=blnk', '--json']);
    assert.ok(!`${kv.stdout}${kv.stderr}`.includes('hunter2'), `${kv.stdout} ${kv.stderr}`);
});

test('--check beside a running serve: the address in use is not an error, and nothing is bound', async () => {
    const db = tmpDb();
    const proxy = await startProxy({ db });
    try {
        const r = check(['--db', db, '--listen', `127.0.0.1:${proxy.port}`]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /^configuration ok$/m);
    } finally {
        await proxy.stop();
    }
});

test('audit.signing_key is checked as serve would load it (issue 13)', () => {
    const db = tmpDb();
    const dir = tmpDir();
    const good = path.join(dir, 'signing.pem');
    const pub = path.join(dir, 'public.pem');
    assert.equal(spawnSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', good]).status, 0);
    assert.equal(spawnSync('openssl', ['pkey', '-in', good, '-pubout', '-out', pub]).status, 0);
    assert.equal(check(['--db', db, '--audit-signing-key', good]).code, 0);
    for (const [file, why] of [[pub, /no PEM private key/], [path.join(dir, 'missing.pem'), /cannot read the key file/]]) {
        const r = check(['--db', db, '--audit-signing-key', file]);
        assert.equal(r.code, 2, r.stdout);
        assert.match(r.stderr, /audit\.signing_key: /);
        assert.match(r.stderr, why);
    }
});

// Issue 9 item 8: `blnkproxy db copy --from <sqlite> --to <postgres DSN>` moves a deployment.
// A SQLite store gets everything a real one holds (an instance with its Core secret, keys active
// and revoked, OAuth clients with tokens and token families from both grants, an operator with a
// sign-in session, an unused code, audit records of requests and of CLI changes); the copy holds
// the same, row for row, the audit log with the same seqs and ids; a server started on the copy
// serves a key created on SQLite (Core gets the instance's secret), rotates a refresh token issued
// on SQLite, and refuses the revoked key. A non-empty target is refused without --force.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import { startFakeCore } from './lib/fake_core.mjs';
import {
    PG,
    bearer,
    cli,
    emptyDb,
    makeInstance,
    makeKey,
    maskDsn,
    req,
    sql,
    startProxy,
    tmpDir,
    waitFor,
} from './lib/harness.mjs';
import { authorizeCode, createClient, createOperator, token } from './lib/oauth_flow.mjs';

const SKIP = !PG && 'PostgreSQL only: the copy goes into PostgreSQL (the _pg run)';
const REDIRECT = 'https://app.example/cb';
const TABLES = ['instances', 'api_keys', 'oauth_clients', 'oauth_operators', 'oauth_tokens', 'oauth_codes',
    'oauth_sessions', 'admin_tokens', 'audit_log'];

function counts(db) {
    return Object.fromEntries(TABLES.map((t) => [t, Number(sql(db, `SELECT count(*) FROM ${t}`))]));
}

// SQLite's own sqlite3, whatever the run's store: the source is always a file.
function sqlite(file, query) {
    const r = spawnSync('sqlite3', [file, query], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim();
}
const sqliteCount = (file, table) => Number(sqlite(file, `SELECT count(*) FROM ${table}`));

describe('db copy from SQLite to PostgreSQL', { skip: SKIP }, () => {
    let core;
    const stops = [];
    after(async () => {
        for (const s of stops) {
            await s();
        }
        await core?.close();
    });

    test('copies everything, refuses a non-empty target, and the copy serves what SQLite held', async () => {
        core = await startFakeCore();
        const src = path.join(tmpDir(), 'old.db');
        assert.equal(cli(['db', 'migrate'], { db: src }).code, 0);
        const secret = 'core-secret-copied-1';
        const inst = makeInstance(src, core.url, { secret, name: 'main' });
        const key = makeKey(src, { scopes: ['proxy:read'] });
        const revoked = makeKey(src, { scopes: ['*'] });
        assert.equal(cli(['key', 'revoke', revoked.id], { db: src }).code, 0);
        const machine = createClient(src, ['--name', 'machine', '--scopes', 'proxy:read']);
        const web = createClient(src, ['--name', 'web', '--scopes', 'proxy:read', '--redirect-uri', REDIRECT]);
        const op = createOperator(src, 'alice');
        // An admin API token (issue 13): its digest and its operator's role come along.
        assert.equal(cli(['operator', 'role', op.id, 'admin'], { db: src }).code, 0);
        const adminToken = cli(['operator', 'token-create', op.id, '--name', 'ci'], { db: src }).json.token;
        assert.match(adminToken, /^blnk_ad_/);

        // Tokens, families, a session and an unused code, made by a server on the SQLite store.
        let p = await startProxy({ db: src });
        stops.push(() => p.stop());
        const cc = await token(p.port, machine, { grant_type: 'client_credentials' });
        assert.equal(cc.status, 200);
        const auth = await authorizeCode(p.port, { client: web, operator: op, redirect: REDIRECT });
        const ac = await token(p.port, web, {
            grant_type: 'authorization_code', code: auth.code, redirect_uri: REDIRECT, code_verifier: auth.verifier,
        });
        assert.equal(ac.status, 200, JSON.stringify(ac.json));
        await authorizeCode(p.port, { client: web, operator: op, redirect: REDIRECT }); // left unused
        for (let i = 0; i < 5; i++) {
            const r = await req(p.port, 'GET', `/proxy/ledgers?instance_id=${inst.id}`, { headers: bearer(key.key) });
            assert.equal(r.status, 200);
        }
        await p.stop();
        const before = Object.fromEntries(TABLES.map((t) => [t, sqliteCount(src, t)]));
        for (const t of TABLES.filter((x) => x !== 'oauth_operators')) {
            assert.ok(before[t] > 0, `the source has ${t}`);
        }

        const dst = emptyDb();
        const r = cli(['db', 'copy', '--from', src, '--to', dst]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.json.from, src);
        assert.equal(r.json.to, maskDsn(dst));
        assert.deepEqual(Object.fromEntries(r.json.tables.map((x) => [x.table, x.rows])), before);
        assert.deepEqual(counts(dst), before);
        const human = cli(['db', 'copy', '--from', src, '--to', dst], { json: false });
        assert.equal(human.code, 2);
        assert.match(human.stderr, /^blnkproxy: --to: the database holds records already \(1 instances, 2 api_keys, .*\): pass --force to replace them\n$/);
        assert.equal(human.stdout, '');
        const password = /:\/\/[^:]*:([^@]+)@/.exec(dst)[1];
        assert.ok(!human.stderr.includes(password) && !r.stdout.includes(password), 'no DSN password');
        assert.deepEqual(counts(dst), before, 'a refused copy changes nothing');

        // The same records, as the CLI shows them (the audit log with its seqs and ids).
        for (const args of [['key', 'list'], ['client', 'list'], ['operator', 'list'], ['instance', 'list']]) {
            assert.deepEqual(cli(args, { db: dst }).json, cli(args, { db: src }).json, args.join(' '));
        }
        const audit = (db) => cli(['audit', 'list', '--limit', '1000'], { db }).stdout;
        assert.equal(audit(dst), audit(src));
        // The trail came along whole (issue 13): the same hashes verify on PostgreSQL, and a
        // checkpoint taken on SQLite holds on the copy.
        const cpFile = path.join(tmpDir(), 'checkpoint.json');
        assert.equal(cli(['audit', 'checkpoint', '--out', cpFile], { db: src }).code, 0);
        const verified = cli(['audit', 'verify', '--checkpoint', cpFile], { db: dst });
        assert.equal(verified.code, 0, verified.stdout + verified.stderr);
        assert.equal(verified.json.records, Number(sqlite(src, 'SELECT count(*) FROM audit_log')));

        // --force replaces: the same again, nothing twice.
        const again = cli(['db', 'copy', '--from', src, '--to', dst, '--force']);
        assert.equal(again.code, 0, again.stderr);
        assert.deepEqual(counts(dst), before);
        assert.equal(audit(dst), audit(src));

        // Served from the copy.
        p = await startProxy({ db: dst });
        stops.push(() => p.stop());
        core.reset();
        const ok = await req(p.port, 'GET', `/proxy/ledgers?instance_id=${inst.id}`, { headers: bearer(key.key) });
        assert.equal(ok.status, 200, ok.text);
        assert.equal(core.requests.at(-1).headers['x-blnk-key'], secret, 'the Core secret came along');
        const no = await req(p.port, 'GET', `/proxy/ledgers?instance_id=${inst.id}`, { headers: bearer(revoked.key) });
        assert.equal(no.status, 401);
        const viaToken = await req(p.port, 'GET', `/proxy/ledgers?instance_id=${inst.id}`, { headers: bearer(cc.json.access_token) });
        assert.equal(viaToken.status, 200, 'an access token issued on SQLite works on the copy');
        const rotated = await token(p.port, web, { grant_type: 'refresh_token', refresh_token: ac.json.refresh_token });
        assert.equal(rotated.status, 200, JSON.stringify(rotated.json));
        const reuse = await token(p.port, web, { grant_type: 'refresh_token', refresh_token: ac.json.refresh_token });
        assert.equal(reuse.status, 400, 'the old refresh token is a reuse: its family goes');
        const admin = await req(p.port, 'GET', '/admin/api/session', { headers: bearer(adminToken) });
        assert.equal(admin.status, 200, admin.text);
        assert.equal(admin.json.operator.role, 'admin', 'the admin token and its operator\'s role came along');
        // New audit records continue after the copied seqs. The requests above are reads, audited
        // asynchronously: their records are committed a little later, so the newest is waited for.
        const copiedMax = Number(sqlite(src, 'SELECT max(seq) FROM audit_log'));
        const { value: newest } = await waitFor(
            () => {
                const line = cli(['audit', 'list', '--limit', '1'], { db: dst }).stdout.trim().split('\n')[0];
                const rec = line ? JSON.parse(line) : null;
                return rec && rec.seq > copiedMax ? rec : null;
            },
            { timeoutMs: 10000, what: 'a new audit record after the copied ones' },
        );
        assert.ok(newest.seq > copiedMax);
    });

    test('only from SQLite into PostgreSQL, and both flags are needed', () => {
        const src = path.join(tmpDir(), 'x.db');
        for (const args of [['db', 'copy', '--from', src], ['db', 'copy', '--to', emptyDb()],
            ['db', 'copy', '--from', emptyDb(), '--to', emptyDb()], ['db', 'copy', '--from', src, '--to', src]]) {
            const r = cli(args);
            assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
            assert.match(r.stderr, /^blnkproxy: db copy (needs --from|moves a SQLite store)/);
        }
    });
});

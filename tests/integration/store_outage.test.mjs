// Issue 9 item 6: what a node does when its PostgreSQL server goes away and comes back. Each test
// starts a PostgreSQL server of its own (lib/harness.mjs startOwnPg), since it stops it; the
// fixture's server is shared by every test running at once.
// - down at serve start: serve listens, /readyz answers 503 "starting" with the reason (no
//   password), /proxy/ 503 PROXY_NOT_READY, and once the database is up serve migrates it, loads
//   and becomes ready by itself;
// - lost while serving, under write load with audit.writes=sync: /proxy/ keeps answering from the
//   last tables, every answered write's audit record is spooled; /readyz says degraded (503, and
//   why), OAuth answers 503 temporarily_unavailable, /metrics counts the outage; back up, the node
//   reconnects, takes changes again, imports the spool: one record per answered write, none lost,
//   none twice, each naming the node.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import { startFakeCore } from './lib/fake_core.mjs';
import {
    PG,
    assertError,
    bearer,
    cli,
    cliHistory,
    makeInstance,
    makeKey,
    req,
    sql,
    startOwnPg,
    startProxy,
    waitFor,
} from './lib/harness.mjs';
import { createClient, token } from './lib/oauth_flow.mjs';

const SKIP = !PG && 'PostgreSQL only: a SQLite store has no server to lose (the _pg run covers it)';
const JSONH = { 'content-type': 'application/json' };

function passwordOf(dsn) {
    return /^postgres(?:ql)?:\/\/[^:@/]*:([^@/]+)@/.exec(dsn)[1];
}

async function readyz(port) {
    const r = await req(port, 'GET', '/readyz');
    return { status: r.status, json: r.json };
}

async function metric(port, name) {
    const r = await req(port, 'GET', '/metrics');
    const line = r.text.split('\n').find((l) => l.startsWith(`${name} `));
    return line === undefined ? undefined : Number(line.split(' ')[1]);
}

describe('the database is down when serve starts', { skip: SKIP }, () => {
    let pg;
    let core;
    let proxy;
    after(async () => {
        await proxy?.stop();
        await core?.close();
    });

    test('serve listens, says why it is not ready, and starts by itself once the database is up', async () => {
        pg = startOwnPg();
        core = await startFakeCore();
        const db = pg.createDb(); // empty: serve migrates it once it can
        pg.down();
        proxy = await startProxy({ db, args: ['--node-name', 'node-early'] });
        assert.equal(proxy.listening.node, 'node-early');
        const warn = proxy.logObjects().find((o) => o.msg.startsWith('the store does not answer'));
        assert.ok(warn, `a warning says why: ${proxy.logs().join('\n')}`);
        assert.match(warn.error, /cannot connect to the store at postgresql:\/\/bp_admin:\*\*\*@127\.0\.0\.1/);

        assert.equal((await req(proxy.port, 'GET', '/healthz')).status, 200);
        const rz = await readyz(proxy.port);
        assert.equal(rz.status, 503);
        assert.equal(rz.json.status, 'starting');
        assert.match(rz.json.reason, /^waiting for the store: /);
        const refused = await req(proxy.port, 'GET', '/proxy/ledgers?instance_id=instance_01ARZ3NDEKTSV4RRFFQ69G5FAV',
            { headers: bearer(`blnk_${'0'.repeat(64)}`) });
        assertError(refused, 503, 'PROXY_NOT_READY');
        assert.equal(refused.headers['retry-after'], '1');
        assert.equal(await metric(proxy.port, 'blnkproxy_store_up'), 0);

        pg.up();
        const { ms } = await waitFor(async () => (await readyz(proxy.port)).status === 200,
            { timeoutMs: 15000, intervalMs: 50, what: 'ready once the database is up' });
        console.log(`ready ${ms} ms after the database came up`);
        // Log lines are written in batches per thread: the line may follow the readiness by a
        // moment.
        await waitFor(() => proxy.logObjects().some((o) => o.msg === 'store answers; credentials loaded'),
            { timeoutMs: 3000, what: 'the "credentials loaded" line' });
        // It migrated the empty database, and serves what is added now.
        assert.ok(Number(sql(db, 'SELECT max(version) FROM schema_migrations')) >= 5);
        const inst = makeInstance(db, core.url, { name: 'main' });
        const key = makeKey(db, { scopes: ['proxy:read'] });
        const r = await req(proxy.port, 'GET', `/proxy/ledgers?instance_id=${inst.id}`, { headers: bearer(key.key) });
        assert.equal(r.status, 200, r.text);
        assert.equal(await metric(proxy.port, 'blnkproxy_store_up'), 1);
        for (const line of proxy.logs()) {
            assert.ok(!line.includes(passwordOf(pg.adminDsn)), 'no DSN password in the log');
        }
        assert.ok(!JSON.stringify(rz.json).includes(passwordOf(pg.adminDsn)));
    });
});

describe('the database goes away while serving, under write load', { skip: SKIP }, () => {
    let pg;
    let core;
    let proxy;
    after(async () => {
        await proxy?.stop();
        await core?.close();
    });

    test('writes are answered from the last tables and every answered write has one audit record', async () => {
        pg = startOwnPg();
        core = await startFakeCore();
        const db = pg.createDb();
        assert.equal(cli(['db', 'migrate'], { db }).code, 0);
        const inst = makeInstance(db, core.url, { name: 'main' });
        const key = makeKey(db, { scopes: ['*'] });
        const client = createClient(db, ['--name', 'app', '--scopes', 'proxy:read']);
        proxy = await startProxy({ db, args: ['--audit-writes', 'sync', '--node-name', 'node-x'] });

        // Writers: every answer is kept with its request id.
        const answered = [];
        let stop = false;
        let other = 0;
        const writer = async (n) => {
            for (let i = 0; !stop; i++) {
                const rid = `w${n}-${i}`;
                const r = await req(proxy.port, 'POST', `/proxy/ledgers?instance_id=${inst.id}`,
                    { headers: { ...bearer(key.key), ...JSONH, 'x-request-id': rid }, body: { name: rid } });
                if (r.status === 201) {
                    answered.push(rid);
                } else {
                    other++;
                }
            }
        };
        const writers = [writer(1), writer(2), writer(3)];
        try {
            await waitFor(() => answered.length >= 30, { timeoutMs: 10000, intervalMs: 20, what: 'writes before the outage' });
            pg.down();
            const down = await waitFor(async () => (await readyz(proxy.port)).status === 503,
                { timeoutMs: 15000, intervalMs: 50, what: '/readyz degraded' });
            const rz = await readyz(proxy.port);
            assert.equal(rz.json.status, 'degraded');
            assert.match(rz.json.reason, /^store unreachable: /);
            assert.ok(!rz.json.reason.includes(passwordOf(pg.adminDsn)));
            console.log(`degraded after ${down.ms} ms`);
            // Writes go on being answered while the database is down.
            const atDown = answered.length;
            await waitFor(() => answered.length >= atDown + 30, { timeoutMs: 15000, intervalMs: 20, what: 'writes during the outage' });
            // OAuth needs the database: 503 temporarily_unavailable, not a wrong answer.
            const tok = await token(proxy.port, client, { grant_type: 'client_credentials' });
            assert.equal(tok.status, 503, JSON.stringify(tok.json));
            assert.equal(tok.json.error, 'temporarily_unavailable');
            assert.equal(await metric(proxy.port, 'blnkproxy_store_up'), 0);
            assert.equal(await metric(proxy.port, 'blnkproxy_store_outages_total'), 1);
            // The CLI says it cannot reach the database, its password masked.
            const cr = cli(['key', 'list'], { db });
            assert.equal(cr.code, 1);
            assert.match(cr.stderr, /cannot connect to the store at postgresql:\/\/bp_admin:\*\*\*@/);

            pg.up();
            const back = await waitFor(async () => (await readyz(proxy.port)).status === 200,
                { timeoutMs: 15000, intervalMs: 50, what: 'ready again' });
            console.log(`ready again ${back.ms} ms after the database came back`);
            const atUp = answered.length;
            await waitFor(() => answered.length >= atUp + 30, { timeoutMs: 15000, intervalMs: 20, what: 'writes after the outage' });
        } finally {
            stop = true;
            await Promise.all(writers);
        }
        assert.equal(other, 0, 'no write got anything but 201');
        // Changes reach the node again: a revocation is refused at once.
        assert.equal(cli(['key', 'revoke', key.id], { db }).code, 0);
        const rv = await req(proxy.port, 'GET', `/proxy/ledgers?instance_id=${inst.id}`, { headers: bearer(key.key) });
        assert.equal(rv.status, 401);
        const tok = await token(proxy.port, client, { grant_type: 'client_credentials' });
        assert.equal(tok.status, 200, JSON.stringify(tok.json));

        // The spool is imported: exactly one record per answered write.
        const counts = async () => {
            const rows = sql(db, "SELECT request_id, count(*) FROM audit_log WHERE request_id LIKE 'w%' GROUP BY request_id")
                .split('\n').filter(Boolean).map((l) => l.split('|'));
            return new Map(rows.map(([id, n]) => [id, Number(n)]));
        };
        await waitFor(async () => (await counts()).size >= answered.length,
            { timeoutMs: 15000, intervalMs: 100, what: 'every answered write recorded' });
        const got = await counts();
        const missing = answered.filter((id) => !got.has(id));
        const twice = [...got].filter(([, n]) => n !== 1);
        assert.deepEqual(missing, [], 'no answered write lost its record');
        assert.deepEqual(twice, [], 'no record stored twice');
        assert.equal(sql(db, "SELECT count(*) FROM audit_log WHERE request_id LIKE 'w%' AND node <> 'node-x'"), '0');
        console.log(`${answered.length} writes answered, ${got.size} recorded once each`);
        for (const h of cliHistory) {
            assert.ok(!h.stderr.includes(passwordOf(pg.adminDsn)));
        }
        for (const line of proxy.logs()) {
            assert.ok(!line.includes(passwordOf(pg.adminDsn)), 'no DSN password in the log');
        }
    });
});

describe('an operator signs in to the admin API while the database is down', { skip: SKIP }, () => {
    let proxy;
    after(async () => {
        await proxy?.stop();
    });

    test('503 to say so, not a failed sign-in: the attempts do not count towards the lockout', async () => {
        const pg = startOwnPg();
        const db = pg.createDb();
        assert.equal(cli(['db', 'migrate'], { db }).code, 0);
        const op = cli(['operator', 'create', '--name', 'olga', '--password-env', 'PW', '--role', 'admin'],
            { db, env: { PW: 'olga password 1' } });
        assert.equal(op.code, 0, op.stderr);
        proxy = await startProxy({ db });
        const signIn = () => req(proxy.port, 'POST', '/admin/api/session',
            { headers: JSONH, body: { name: 'olga', password: 'olga password 1' }, agent: false });
        assert.equal((await signIn()).status, 200);

        pg.down();
        // More attempts than the 5 failures that lock a name out.
        for (let i = 0; i < 7; i++) {
            const r = await signIn();
            assertError(r, 503, 'GEN_UNAVAILABLE');
            assert.equal(r.headers['retry-after'], '1');
        }
        pg.up();
        const statuses = [];
        await waitFor(async () => {
            const r = await signIn();
            statuses.push(r.status);
            return r.status === 200;
        }, { timeoutMs: 15000, intervalMs: 200, what: 'signed in once the database is back' });
        assert.ok(!statuses.includes(429), `never locked out: ${statuses.join(' ')}`);
        assert.ok(!statuses.includes(401), `never a wrong password: ${statuses.join(' ')}`);
    });
});

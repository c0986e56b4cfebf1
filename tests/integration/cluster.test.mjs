// Issue 9, "How to test it": three `serve` processes on one PostgreSQL behind a real HAProxy
// (Debian's haproxy; its configuration is README "Running a cluster"'s, on 127.0.0.1 and free
// ports), round-robin, health-checked on /readyz, with /healthz as the fallback when no node is
// ready. The PostgreSQL server is the test's own (it is stopped and started again below).
// - three nodes started at the same time on an empty database all come up, and migrate it once;
// - a key revoked with the CLI is refused by every node on the first request after the CLI
//   returns; the propagation time (from the CLI's start until B and C refuse) is printed for 20
//   revocations, median and max, and asserted only through the CLI's own 2 s contract (it warns
//   when a node did not apply a change in time);
// - a code issued on A is exchanged on B; a second exchange on C fails and revokes the family;
// - a refresh token used at the same time on two nodes: one success, one reuse that revokes the
//   family;
// - the audit log holds one record per request, from all three nodes;
// - SIGKILL of a node under write load: every answered write has its audit record, HAProxy sends
//   the rest to the others (only requests in flight on the killed node fail);
// - PostgreSQL stopped and started again under load: every request answered correctly, no audit
//   record lost or stored twice, every node ready again by itself.
// Everything is stopped by PID; every wait has a timeout.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';

import { startFakeCore } from './lib/fake_core.mjs';
import {
    BIN,
    PG,
    bearer,
    cli,
    closedPort,
    makeInstance,
    makeKey,
    req,
    sleep,
    sql,
    startOwnPg,
    startProxy,
    tmpDir,
    waitFor,
} from './lib/harness.mjs';
import { authorizeCode, createClient, createOperator, token } from './lib/oauth_flow.mjs';

const execFileP = promisify(execFile);
const SKIP = !PG && 'PostgreSQL only: a cluster shares one PostgreSQL (the _pg run)';
const REDIRECT = 'https://app.example/cb';
const JSONH = { 'content-type': 'application/json' };
const NAMES = ['node-a', 'node-b', 'node-c'];

// README "Running a cluster": the same configuration, with this test's addresses.
function haproxyConfig(port, nodes) {
    const servers = (check) => nodes.map((n) => `    server ${n.name} 127.0.0.1:${n.port} ${check}`).join('\n');
    return `global
    maxconn 2000

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    # A connection refused (a node that is gone) is tried on another node: the request was not
    # sent, so this never repeats a write.
    retries 2
    retry-on conn-failure
    option redispatch
    # Each node believes this only from the addresses in its trusted_proxies (below).
    option forwardfor

frontend blnkproxy
    bind 127.0.0.1:${port}
    use_backend ready if { nbsrv(ready) gt 0 }
    default_backend alive

# Nodes whose /readyz answers 200: they have their tables and reach the database.
backend ready
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server check inter 200ms fall 2 rise 2
${servers('')}

# When no node is ready (the database is down for all), /proxy/ is still served from the tables
# the nodes hold: fall back to every node that is alive.
backend alive
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server check inter 200ms fall 2 rise 2
${servers('')}
`;
}

async function startHaproxy(nodes) {
    const port = await closedPort();
    const dir = tmpDir();
    const cfg = path.join(dir, 'haproxy.cfg');
    fs.writeFileSync(cfg, haproxyConfig(port, nodes));
    const check = await execFileP('haproxy', ['-c', '-f', cfg]).catch((e) => e);
    assert.equal(check.code ?? 0, 0, `haproxy -c: ${check.stderr}`);
    const child = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => {
        stderr += d;
    });
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    await waitFor(async () => (await req(port, 'GET', '/healthz', { agent: false }).catch(() => ({}))).status === 200,
        { timeoutMs: 10000, intervalMs: 50, what: 'haproxy answers' });
    return {
        port,
        stderr: () => stderr,
        async stop() {
            if (child.exitCode === null && child.signalCode === null) {
                child.kill('SIGTERM');
            }
            const t = setTimeout(() => child.kill('SIGKILL'), 5000);
            await exited;
            clearTimeout(t);
        },
    };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

describe('three nodes on one PostgreSQL behind HAProxy', { skip: SKIP }, () => {
    let pg;
    let db;
    let core;
    let nodes = [];
    let lb;
    let inst;

    before(async () => {
        pg = startOwnPg();
        db = pg.createDb();
        core = await startFakeCore();
    });

    after(async () => {
        await lb?.stop();
        for (const n of nodes) {
            await n.proxy.stop({ expectCode: null });
        }
        await core?.close();
    });

    const proxied = (port, key, opts = {}) =>
        req(port, 'GET', `/proxy/ledgers?instance_id=${inst.id}`, { headers: bearer(key), ...opts });

    test('three nodes started together on an empty database all come up; it is migrated once', async () => {
        const started = await Promise.all(NAMES.map((name) => startProxy({
            db,
            args: ['--node-name', name, '--audit-writes', 'sync', '--trusted-proxies', '127.0.0.1'],
            reloadInterval: null,
            timeoutMs: 20000,
        })));
        nodes = started.map((proxy, i) => ({ name: NAMES[i], port: proxy.port, proxy }));
        for (const n of nodes) {
            assert.equal(n.proxy.listening.node, n.name);
            assert.equal((await req(n.port, 'GET', '/readyz')).status, 200);
        }
        const versions = sql(db, 'SELECT version FROM schema_migrations ORDER BY version').split('\n').map(Number);
        assert.deepEqual(versions, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 'each migration once');
        inst = makeInstance(db, core.url, { secret: 'core-secret-cluster', name: 'main' });
        lb = await startHaproxy(nodes);
        const status = cli(['db', 'status'], { db }).json;
        assert.equal(status.nodes_live, 3);
        assert.deepEqual(status.nodes.map((n) => n.node).sort(), NAMES);
    });

    test('a revocation reaches every node before the CLI returns (20 revocations timed)', async () => {
        const [, b, c] = nodes;
        const times = [];
        const cliTimes = [];
        for (let i = 0; i < 20; i++) {
            const k = makeKey(db, { scopes: ['proxy:read'], name: `rev-${i}` });
            for (const n of nodes) {
                assert.equal((await proxied(n.port, k.key)).status, 200, `key ${i} works on ${n.name}`);
            }
            const t0 = Date.now();
            let refusedAt = null;
            let done = false;
            // B and C are asked every 2 ms while the CLI runs: when did both refuse?
            const watch = (async () => {
                while (!done && refusedAt === null) {
                    const [rb, rc] = await Promise.all([proxied(b.port, k.key), proxied(c.port, k.key)]);
                    if (rb.status === 401 && rc.status === 401) {
                        refusedAt = Date.now();
                    }
                    await sleep(2);
                }
            })();
            const r = await execFileP(BIN, ['key', 'revoke', k.id, '--db', db, '--json']);
            const cliMs = Date.now() - t0;
            // The contract: the CLI returns once every running node has applied the change, and
            // says so when one did not within 2 s.
            assert.equal(r.stderr, '', 'no node missed the 2 s');
            for (const n of nodes) {
                assert.equal((await proxied(n.port, k.key)).status, 401, `refused by ${n.name} once the CLI returned`);
            }
            await waitFor(() => refusedAt !== null, { timeoutMs: 3000, intervalMs: 5, what: 'B and C refuse' });
            done = true;
            await watch;
            times.push(refusedAt - t0);
            cliTimes.push(cliMs);
        }
        console.log(`revocation reached B and C: median ${median(times)} ms, max ${Math.max(...times)} ms ` +
            `(from the start of \`key revoke\`; the CLI itself took median ${median(cliTimes)} ms, max ${Math.max(...cliTimes)} ms)`);
    });

    test('a code issued on A is exchanged on B; a second exchange on C fails and revokes the family', async () => {
        const [a, b, c] = nodes;
        const web = createClient(db, ['--name', 'web', '--scopes', 'proxy:read', '--redirect-uri', REDIRECT]);
        const op = createOperator(db, 'alice');
        const auth = await authorizeCode(a.port, { client: web, operator: op, redirect: REDIRECT });
        const params = { grant_type: 'authorization_code', code: auth.code, redirect_uri: REDIRECT, code_verifier: auth.verifier };
        const first = await token(b.port, web, params);
        assert.equal(first.status, 200, JSON.stringify(first.json));
        assert.equal((await proxied(c.port, first.json.access_token)).status, 200);
        const second = await token(c.port, web, params);
        assert.equal(second.status, 400);
        assert.equal(second.json.error, 'invalid_grant');
        // The reuse revoked what the first exchange issued, on every node.
        for (const n of nodes) {
            await waitFor(async () => (await proxied(n.port, first.json.access_token)).status === 401,
                { timeoutMs: 2000, intervalMs: 10, what: `the family's access token refused on ${n.name}` });
        }
        const refresh = await token(a.port, web, { grant_type: 'refresh_token', refresh_token: first.json.refresh_token });
        assert.equal(refresh.status, 400);
    });

    test('a refresh token used at once on two nodes: one success, one reuse that revokes the family', async () => {
        const [a, b, c] = nodes;
        const web = createClient(db, ['--name', 'web2', '--scopes', 'proxy:read', '--redirect-uri', REDIRECT]);
        const op = createOperator(db, 'bob');
        for (let round = 0; round < 5; round++) {
            const auth = await authorizeCode(a.port, { client: web, operator: op, redirect: REDIRECT });
            const issued = await token(a.port, web, {
                grant_type: 'authorization_code', code: auth.code, redirect_uri: REDIRECT, code_verifier: auth.verifier,
            });
            assert.equal(issued.status, 200);
            const form = { grant_type: 'refresh_token', refresh_token: issued.json.refresh_token };
            const [rb, rc] = await Promise.all([token(b.port, web, form), token(c.port, web, form)]);
            const statuses = [rb.status, rc.status].sort();
            assert.deepEqual(statuses, [200, 400], `round ${round}: one rotation, one reuse`);
            const win = rb.status === 200 ? rb : rc;
            const lose = rb.status === 200 ? rc : rb;
            assert.equal(lose.json.error, 'invalid_grant');
            // The family is revoked: the winner's new refresh token is refused too.
            const next = await token(a.port, web, { grant_type: 'refresh_token', refresh_token: win.json.refresh_token });
            assert.equal(next.status, 400, `round ${round}: the family was revoked`);
        }
    });

    test('through HAProxy, the audit log holds one record per request, from all three nodes', async () => {
        const k = makeKey(db, { scopes: ['*'] });
        const ids = [];
        for (let i = 0; i < 60; i++) {
            const rid = `lb-${i}`;
            const r = await req(lb.port, 'POST', `/proxy/ledgers?instance_id=${inst.id}`,
                { headers: { ...bearer(k.key), ...JSONH, 'x-request-id': rid }, body: { name: rid }, agent: false });
            assert.equal(r.status, 201, r.text);
            ids.push(rid);
        }
        const rows = sql(db, "SELECT request_id, node FROM audit_log WHERE request_id LIKE 'lb-%'")
            .split('\n').map((l) => l.split('|'));
        assert.equal(rows.length, 60);
        assert.deepEqual(rows.map((r) => r[0]).sort(), [...ids].sort());
        const perNode = {};
        for (const [, node] of rows) {
            perNode[node] = (perNode[node] ?? 0) + 1;
        }
        assert.deepEqual(Object.keys(perNode).sort(), NAMES, `records from every node: ${JSON.stringify(perNode)}`);
        console.log(`audit records per node through HAProxy: ${JSON.stringify(perNode)}`);
    });

    // Writers through HAProxy; every 201 is kept with its request id.
    function load(key, prefix, n = 4) {
        const st = { answered: [], failed: [], stop: false };
        const one = async (w) => {
            for (let i = 0; !st.stop; i++) {
                const rid = `${prefix}-${w}-${i}`;
                try {
                    const r = await req(lb.port, 'POST', `/proxy/ledgers?instance_id=${inst.id}`,
                        { headers: { ...bearer(key), ...JSONH, 'x-request-id': rid }, body: { name: rid } });
                    (r.status === 201 ? st.answered : st.failed).push(r.status === 201 ? rid : `${rid}:${r.status}`);
                } catch (e) {
                    st.failed.push(`${rid}:${e.code ?? e.message}`);
                }
            }
        };
        st.done = Promise.all([...Array(n).keys()].map(one));
        return st;
    }

    function assertOneRecordEach(prefix, answered) {
        const rows = sql(db, `SELECT request_id, count(*) FROM audit_log WHERE request_id LIKE '${prefix}-%' GROUP BY request_id`)
            .split('\n').filter(Boolean).map((l) => l.split('|'));
        const got = new Map(rows.map(([id, n]) => [id, Number(n)]));
        assert.deepEqual(answered.filter((id) => !got.has(id)), [], 'no answered write without its record');
        assert.deepEqual([...got].filter(([, n]) => n !== 1), [], 'no record stored twice');
        return got;
    }

    // `audit list --follow`, running through the two tests below (three nodes committing at once,
    // then a database restart): it must print every record once, none skipped when nodes commit
    // out of seq order.
    let follower;
    test('audit list --follow starts', async () => {
        const child = spawn(BIN, ['audit', 'list', '--follow', '--json', '--limit', '1', '--db', db],
            { stdio: ['ignore', 'pipe', 'pipe'] });
        follower = { child, out: '', err: '', exited: new Promise((r) => child.on('exit', (code) => r(code))) };
        child.stdout.on('data', (d) => {
            follower.out += d;
        });
        child.stderr.on('data', (d) => {
            follower.err += d;
        });
        // Its first line (the newest record so far) says it is following.
        await waitFor(() => follower.out.includes('\n'), { timeoutMs: 5000, intervalMs: 20, what: '--follow prints' });
    });

    test('SIGKILL of a node under write load: no answered write loses its record; the others take over', async () => {
        const k = makeKey(db, { scopes: ['*'] });
        const c = nodes[2];
        const st = load(k.key, 'kill');
        let failedBeforeOut = [];
        try {
            await waitFor(() => st.answered.length >= 60, { timeoutMs: 15000, intervalMs: 20, what: 'load before the kill' });
            c.proxy.child.kill('SIGKILL');
            await c.proxy.exited;
            nodes = nodes.filter((n) => n !== c); // the dead one is not stopped again, nor used
            // HAProxy says on stderr when its checks took the node out of both backends.
            const out = (backend) => new RegExp(`Server ${backend}/${c.name} is DOWN`).test(lb.stderr());
            await waitFor(() => out('ready') && out('alive'), { timeoutMs: 15000, intervalMs: 20, what: 'HAProxy takes the killed node out' });
            failedBeforeOut = [...st.failed];
            const atOut = st.answered.length;
            await waitFor(() => st.answered.length >= atOut + 100, { timeoutMs: 15000, intervalMs: 20, what: 'load after the kill' });
        } finally {
            st.stop = true;
            await st.done;
        }
        // Until HAProxy's checks take the node out, a write it sends there may fail: in flight at
        // the kill, or sent on a kept-alive connection to the dead node (HAProxy does not retry a
        // request it sent, as the README's configuration says, and closes the client's connection
        // instead). Only ever as a broken connection or a gateway error, never another answer; and
        // once the node is out, nothing fails: the others take over.
        for (const f of failedBeforeOut) {
            assert.match(f, /:(ECONNRESET|EPIPE|ECONNABORTED|502|503|504)$/, `a write failed otherwise: ${f}`);
        }
        assert.deepEqual(st.failed.slice(failedBeforeOut.length), [], 'no write fails once HAProxy took the node out');
        const got = assertOneRecordEach('kill', st.answered);
        console.log(`SIGKILL: ${st.answered.length} writes answered (each recorded once), ${st.failed.length} failed in flight, ${got.size - st.answered.length} recorded but not answered`);
    });

    test('PostgreSQL stopped and started under load: right answers, every record once, nodes recover', async () => {
        const k = makeKey(db, { scopes: ['*'] });
        const st = load(k.key, 'pgdown');
        let outageMs = 0;
        try {
            await waitFor(() => st.answered.length >= 40, { timeoutMs: 15000, intervalMs: 20, what: 'load before the outage' });
            const t0 = Date.now();
            pg.down();
            for (const n of nodes) {
                await waitFor(async () => (await req(n.port, 'GET', '/readyz')).json?.status === 'degraded',
                    { timeoutMs: 10000, intervalMs: 50, what: `${n.name} degraded` });
            }
            // Long enough for HAProxy to find no node ready and fall back to the alive ones.
            const atDown = st.answered.length;
            const tDown = Date.now();
            await waitFor(() => st.answered.length >= atDown + 60 && Date.now() - tDown >= 1500,
                { timeoutMs: 15000, intervalMs: 20, what: 'load during the outage' });
            pg.up();
            outageMs = Date.now() - t0;
            for (const n of nodes) {
                await waitFor(async () => (await req(n.port, 'GET', '/readyz')).status === 200,
                    { timeoutMs: 15000, intervalMs: 50, what: `${n.name} ready again` });
            }
            const atUp = st.answered.length;
            await waitFor(() => st.answered.length >= atUp + 40, { timeoutMs: 15000, intervalMs: 20, what: 'load after the outage' });
        } finally {
            st.stop = true;
            await st.done;
        }
        assert.deepEqual(st.failed, [], 'every write answered 201 through the outage');
        await waitFor(() => {
            const n = Number(sql(db, "SELECT count(DISTINCT request_id) FROM audit_log WHERE request_id LIKE 'pgdown-%'"));
            return n >= st.answered.length;
        }, { timeoutMs: 15000, intervalMs: 100, what: 'the spools imported' });
        assertOneRecordEach('pgdown', st.answered);
        console.log(`PostgreSQL down ${outageMs} ms under load: ${st.answered.length} writes answered, each recorded once`);
        // A change made after the outage reaches every node.
        assert.equal(cli(['key', 'revoke', k.id], { db }).stderr, '');
        for (const n of nodes) {
            assert.equal((await proxied(n.port, k.key)).status, 401, `${n.name} applies changes again`);
        }
        for (const n of nodes) {
            for (const line of n.proxy.logs()) {
                assert.ok(!line.includes(/:\/\/[^:]*:([^@]+)@/.exec(db)[1]), 'no DSN password in a node log');
            }
        }
    });

    test('audit list --follow printed every record of the two tests above exactly once', async () => {
        const want = sql(db, "SELECT id FROM audit_log WHERE request_id LIKE 'kill-%' OR request_id LIKE 'pgdown-%'")
            .split('\n').filter(Boolean);
        const seen = () => follower.out.split('\n').filter(Boolean).map((l) => JSON.parse(l))
            .filter((o) => /^(kill|pgdown)-/.test(o.request_id ?? '')).map((o) => o.id);
        await waitFor(() => seen().length >= want.length, { timeoutMs: 10000, intervalMs: 100, what: '--follow caught up' });
        follower.child.kill('SIGTERM');
        assert.equal(await follower.exited, 0);
        const got = seen();
        assert.equal(new Set(got).size, got.length, 'no record printed twice');
        assert.deepEqual([...got].sort(), [...want].sort(), 'every record printed');
        // It lived through the restart, and said so.
        assert.match(follower.err, /warning: .*still following, retrying/);
        assert.ok(!follower.err.includes(/:\/\/[^:]*:([^@]+)@/.exec(db)[1]), 'no DSN password');
        console.log(`--follow printed ${got.length} records once each through a node kill and a database restart`);
    });
});

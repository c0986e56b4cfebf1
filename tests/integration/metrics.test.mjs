// Issue 4: GET /metrics. After a known set of requests, the exposition passes
// `promtool check metrics` (parser and linter) and its counters equal exactly what the test made.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { after, before, test } from 'node:test';

import { startFakeCore } from './lib/fake_core.mjs';
import { bearer, closedPort, makeInstance, makeKey, randomHex, req, startProxy, tmpDb, waitFor } from './lib/harness.mjs';

const PROMTOOL = '/usr/bin/promtool';
const JSONH = { 'content-type': 'application/json' };

let core;
let db;
let A; // instance on the fake Core
let D; // instance whose Core is down
let all;
let reader;
let proxy;

before(async () => {
    core = await startFakeCore();
    db = tmpDb();
    A = makeInstance(db, core.url, { secret: `sec_${randomHex(8)}`, name: 'live' });
    D = makeInstance(db, `http://127.0.0.1:${await closedPort()}`, { secret: `sec_${randomHex(8)}`, name: 'dead' });
    all = makeKey(db, { scopes: ['*'], name: 'all' });
    reader = makeKey(db, { scopes: ['proxy:read'], name: 'reader' });
    proxy = await startProxy({ db, args: ['--audit-refusal-window', '1s'] });
});

after(async () => {
    await proxy?.stop();
    await core?.close();
});

const P = (corePath, inst = A) => `/proxy${corePath}?instance_id=${inst.id}`;

// Every GET /metrics goes through here, so the test knows how many scrapes it made.
let scrapes = 0;
function scrape(opts = {}) {
    scrapes++;
    return req(proxy.port, 'GET', '/metrics', { agent: false, ...opts });
}

/** Parses exposition text: {samples: Map(series → number), help: Map(name → count), type: Map(name → [types])}. */
function parse(text) {
    const samples = new Map();
    const help = new Map();
    const type = new Map();
    for (const line of text.split('\n')) {
        if (line === '') {
            continue;
        }
        let m = /^# HELP (\S+) /.exec(line);
        if (m) {
            help.set(m[1], (help.get(m[1]) ?? 0) + 1);
            continue;
        }
        m = /^# TYPE (\S+) (\S+)$/.exec(line);
        if (m) {
            type.set(m[1], [...(type.get(m[1]) ?? []), m[2]]);
            continue;
        }
        m = /^(.*) (\S+)$/.exec(line);
        assert.ok(m, `sample line: ${line}`);
        assert.ok(!samples.has(m[1]), `series appears once: ${m[1]}`);
        samples.set(m[1], Number(m[2]));
    }
    return { samples, help, type };
}

function promtoolCheck(body) {
    const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: body, encoding: 'utf8', timeout: 30000 });
    assert.equal(r.error, undefined, `promtool ran: ${r.error}`);
    // Exit 1: parse error; 3: lint problems. Both fail, and any complaint printed fails too.
    assert.equal(r.status, 0, `promtool check metrics exit ${r.status}:\n${r.stdout}${r.stderr}`);
    assert.equal(`${r.stdout}${r.stderr}`.trim(), '', `promtool printed problems:\n${r.stdout}${r.stderr}`);
}

const rq = (group, method, cls, instance) =>
    `blnkproxy_requests_total{group="${group}",method="${method}",status_class="${cls}",instance="${instance}"}`;

// promtool comes from Debian's prometheus package (scripts/deps.sh --test): without it this
// acceptance check must fail, not pass silently.
test('/metrics after a known mix of requests: promtool-valid and exact counters', async () => {
    assert.ok(fs.existsSync(PROMTOOL), `${PROMTOOL} is missing: install the prometheus package`);
    const port = proxy.port;
    const tx = { amount: 100, precision: 100, currency: 'USD', source: '@a', destination: '@b', reference: `ref_${randomHex(6)}` };

    for (let i = 0; i < 3; i++) {
        assert.equal((await req(port, 'GET', P('/ledgers'), { headers: bearer(all.key) })).status, 200);
    }
    for (let i = 0; i < 2; i++) {
        const body = { ...tx, reference: `ref_${randomHex(6)}` };
        const r = await req(port, 'POST', P('/transactions'), { headers: { ...bearer(all.key), ...JSONH }, body });
        assert.equal(r.status, 201, r.text);
    }
    for (let i = 0; i < 2; i++) {
        assert.equal((await req(port, 'GET', P('/ledgers'))).status, 401);
    }
    const denied = await req(port, 'POST', P('/ledgers'), { headers: { ...bearer(reader.key), ...JSONH }, body: { name: 'x' } });
    assert.equal(denied.status, 403, denied.text);
    assert.equal((await req(port, 'GET', P('/no-such-route'), { headers: bearer(all.key) })).status, 404);
    const bad = await req(port, 'GET', P('/ledgers', D), { headers: bearer(all.key) });
    assert.equal(bad.status, 502, bad.text);
    assert.equal(core.requests.length, 5, 'Core saw the 3 reads and 2 writes, nothing else');

    const res = await scrape();
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    promtoolCheck(res.body);
    const { samples, help, type } = parse(res.text);

    // One HELP and one TYPE per family, for every family of the contract.
    const families = {
        blnkproxy_requests_total: 'counter',
        blnkproxy_request_duration_seconds: 'histogram',
        blnkproxy_upstream_duration_seconds: 'histogram',
        blnkproxy_upstream_errors_total: 'counter',
        blnkproxy_auth_failures_total: 'counter',
        blnkproxy_audit_queue_depth: 'gauge',
        blnkproxy_audit_commit_duration_seconds: 'histogram',
        blnkproxy_audit_records_total: 'counter',
        blnkproxy_audit_store_errors_total: 'counter',
        blnkproxy_client_connections: 'gauge',
        blnkproxy_client_connections_refused_total: 'counter',
        blnkproxy_rate_limited_total: 'counter',
        blnkproxy_idempotency_total: 'counter',
        blnkproxy_rate_limit_nodes: 'gauge',
        blnkproxy_tls_handshakes_total: 'counter',
        blnkproxy_upstream_connections: 'gauge',
        blnkproxy_credentials: 'gauge',
        blnkproxy_instances: 'gauge',
        blnkproxy_instance_up: 'gauge',
        blnkproxy_instance_info: 'gauge',
        blnkproxy_table_reloads_total: 'counter',
        blnkproxy_build_info: 'gauge',
        process_start_time_seconds: 'gauge',
        // The Prometheus clients' process metrics (issue 14; values checked in prometheus.test.mjs).
        process_cpu_seconds_total: 'counter',
        process_resident_memory_bytes: 'gauge',
        process_virtual_memory_bytes: 'gauge',
        process_open_fds: 'gauge',
        process_max_fds: 'gauge',
        // Issue 9: the node's name (the only node label), and whether the store answers.
        blnkproxy_node_info: 'gauge',
        blnkproxy_store_up: 'gauge',
        blnkproxy_store_outages_total: 'counter',
    };
    for (const [name, t] of Object.entries(families)) {
        assert.equal(help.get(name), 1, `# HELP ${name} once`);
        assert.deepEqual(type.get(name), [t], `# TYPE ${name} ${t} once`);
    }
    for (const name of help.keys()) {
        assert.ok(name in families, `unexpected family ${name}`);
    }

    // Requests: each label set exactly as made, and nothing else (this scrape is not counted
    // in its own answer).
    const want = new Map([
        [rq('ledgers', 'GET', '2xx', A.id), 3],
        [rq('transactions', 'POST', '2xx', A.id), 2],
        [rq('none', 'GET', '4xx', 'none'), 2 + 1], // 2 × 401 (no credential, no route yet) + the 404
        [rq('ledgers', 'POST', '4xx', 'none'), 1], // 403: scope is checked before the instance
        [rq('ledgers', 'GET', '5xx', D.id), 1],
    ]);
    const got = new Map([...samples].filter(([k]) => k.startsWith('blnkproxy_requests_total{')));
    assert.deepEqual(Object.fromEntries(got), Object.fromEntries(want));

    // Latency histograms: _count equals the requests of the group; +Inf equals _count.
    const hist = (name, group) => ({
        count: samples.get(`${name}_count{group="${group}"}`),
        inf: samples.get(`${name}_bucket{group="${group}",le="+Inf"}`),
        sum: samples.get(`${name}_sum{group="${group}"}`),
    });
    for (const [group, n] of [['ledgers', 3 + 1 + 1], ['transactions', 2], ['none', 3]]) {
        const h = hist('blnkproxy_request_duration_seconds', group);
        assert.equal(h.count, n, `request_duration count ${group}`);
        assert.equal(h.inf, n, `request_duration +Inf ${group}`);
        assert.ok(h.sum > 0 && h.sum < 30, `request_duration sum ${group}: ${h.sum}`);
    }
    // Upstream time only for requests Core answered.
    assert.equal(hist('blnkproxy_upstream_duration_seconds', 'ledgers').count, 3);
    assert.equal(hist('blnkproxy_upstream_duration_seconds', 'transactions').count, 2);
    assert.equal(hist('blnkproxy_upstream_duration_seconds', 'none').count, undefined);
    // Buckets are cumulative.
    let prev = 0;
    for (const le of ['0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '+Inf']) {
        const v = samples.get(`blnkproxy_request_duration_seconds_bucket{group="ledgers",le="${le}"}`);
        assert.ok(v >= prev, `bucket le=${le} is cumulative`);
        prev = v;
    }

    // The node: its name is the listening line's, and no other series carries a node label.
    const nodes = [...samples.keys()].filter((k) => k.startsWith('blnkproxy_node_info{'));
    assert.deepEqual(nodes, [`blnkproxy_node_info{node="${proxy.listening.node}"}`]);
    assert.match(proxy.listening.node, /^.+:\d+$/, 'the default name is <hostname>:<port>');
    assert.ok(proxy.listening.node.endsWith(`:${port}`));
    assert.equal([...samples.keys()].filter((k) => k.includes('node=')).length, 1);
    assert.equal(samples.get('blnkproxy_store_up'), 1);
    assert.equal(samples.get('blnkproxy_store_outages_total'), 0);

    // Fixed-label families: every label value present, with exactly what happened.
    const auth = { missing: 2, unknown: 0, expired: 0, revoked: 0, scope: 1, instance: 0 };
    for (const [reason, n] of Object.entries(auth)) {
        assert.equal(samples.get(`blnkproxy_auth_failures_total{reason="${reason}"}`), n, `auth ${reason}`);
    }
    const up = { connect: 1, timeout: 0, reset: 0, tls: 0, other: 0 };
    for (const [kind, n] of Object.entries(up)) {
        assert.equal(samples.get(`blnkproxy_upstream_errors_total{kind="${kind}"}`), n, `upstream ${kind}`);
    }
    for (const outcome of ['committed', 'spooled', 'shed']) {
        assert.ok(samples.has(`blnkproxy_audit_records_total{outcome="${outcome}"}`), `audit outcome ${outcome}`);
    }
    assert.equal(samples.get('blnkproxy_audit_store_errors_total'), 0);
    assert.equal(samples.get('blnkproxy_audit_records_total{outcome="shed"}'), 0);
    assert.equal(samples.get('blnkproxy_audit_records_total{outcome="spooled"}'), 0);

    // Gauges: this scrape's own connection is open; the kept-alive connections to the live Core
    // are counted (at most one per loop thread here), the refused one to the dead Core is not.
    assert.ok(samples.get('blnkproxy_client_connections') >= 1, 'client connections');
    const upc = samples.get('blnkproxy_upstream_connections');
    assert.ok(upc >= 1 && upc <= Math.min(2, core.connections), `upstream connections ${upc} (Core saw ${core.connections})`);
    assert.equal(samples.get('blnkproxy_credentials'), 2);
    assert.equal(samples.get('blnkproxy_instances'), 2);
    assert.ok(samples.get('blnkproxy_table_reloads_total') >= 1);
    assert.ok(samples.get('blnkproxy_audit_queue_depth') >= 0);

    // One series, value 1; version.test.mjs checks the revision label's value.
    const buildInfo = [...samples].filter(([k]) => k.startsWith('blnkproxy_build_info'));
    assert.equal(buildInfo.length, 1);
    assert.match(buildInfo[0][0], /^blnkproxy_build_info\{version="0\.1\.0",revision="[^"]+"\}$/);
    assert.equal(buildInfo[0][1], 1);
    const start = samples.get('process_start_time_seconds');
    assert.ok(Math.abs(start - Date.now() / 1000) < 600, `process start time ${start}`);

    // One audit record per /proxy/ request reaches the store (reads are committed asynchronously,
    // so wait for them), except the two 401s: refused before authentication, from one peer with
    // one error, they are one aggregated record (count 2) once their window (1 s here) closes.
    // Each commit is timed once per batch.
    const { value: audited } = await waitFor(
        async () => {
            const s = parse((await scrape()).text).samples;
            return s.get('blnkproxy_audit_records_total{outcome="committed"}') >= 9 ? s : null;
        },
        { timeoutMs: 10000, what: 'audit records committed' },
    );
    assert.equal(audited.get('blnkproxy_audit_records_total{outcome="committed"}'), 9);
    const batches = audited.get('blnkproxy_audit_commit_duration_seconds_count');
    assert.ok(batches >= 1 && batches <= 10, `audit commit batches: ${batches}`);
    assert.equal(audited.get('blnkproxy_audit_commit_duration_seconds_bucket{le="+Inf"}'), batches);

    // No credential id or key ever becomes a label.
    for (const k of [all, reader]) {
        assert.ok(!res.text.includes(k.id), 'no key id in /metrics');
        assert.ok(!res.text.includes(k.key), 'no key in /metrics');
    }
});

test('/metrics needs no credential, ignores one, and is itself valid when scraped twice', async () => {
    const a = await scrape({ headers: bearer('blnk_' + '0'.repeat(64)) });
    assert.equal(a.status, 200);
    const before = scrapes;
    const b = await scrape();
    assert.equal(b.status, 200);
    if (fs.existsSync(PROMTOOL)) {
        promtoolCheck(b.body);
    }
    // A scrape is not an authentication failure, and not /proxy/ traffic: the proxy groups keep
    // the counts of the first test. Scrapes may be counted under group="ops" (the lead's wiring
    // counts operational endpoints there); if so, exactly the scrapes made before this one.
    const s = parse(b.text).samples;
    assert.equal(s.get('blnkproxy_auth_failures_total{reason="unknown"}'), 0);
    assert.equal(s.get(rq('ledgers', 'GET', '2xx', A.id)), 3);
    assert.equal(s.get(rq('none', 'GET', '4xx', 'none')), 3);
    const ops = [...s].filter(([k]) => k.startsWith('blnkproxy_requests_total{group="ops"'));
    if (ops.length > 0) {
        assert.deepEqual(Object.fromEntries(ops), { [rq('ops', 'GET', '2xx', 'none')]: before });
    }
});

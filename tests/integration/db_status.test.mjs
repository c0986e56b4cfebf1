// Issue 9 item 7: `blnkproxy db status` says what the store is (kind, DSN masked or path, schema
// version, change seq) and which servers use it: each running server's node name, host, pid,
// version, last report and how far it has applied the change log. Both stores.
import assert from 'node:assert/strict';
import os from 'node:os';
import { after, test } from 'node:test';

import { PG, cli, makeKey, maskDsn, startProxy, tmpDb, waitFor } from './lib/harness.mjs';

const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
const NODE_FIELDS = ['node', 'host', 'pid', 'version', 'started_at', 'last_report', 'last_report_age_s', 'applied_seq',
    'behind', 'state'];

const proxies = [];
after(async () => {
    for (const p of proxies) {
        await p.stop({ expectCode: null });
    }
});

test('db status: the store, and the nodes that report on it', async () => {
    const db = tmpDb();
    let s = cli(['db', 'status'], { db });
    assert.equal(s.code, 0, s.stderr);
    assert.deepEqual(Object.keys(s.json), ['kind', 'store', 'schema_version', 'change_seq', 'nodes_live', 'nodes']);
    assert.equal(s.json.kind, PG ? 'postgresql' : 'sqlite');
    assert.equal(s.json.store, maskDsn(db));
    assert.ok(s.json.schema_version >= 5);
    assert.equal(s.json.change_seq, 0);
    assert.deepEqual(s.json.nodes, []);

    const a = await startProxy({ db, args: ['--node-name', 'node-a'] });
    proxies.push(a);
    const b = await startProxy({ db });
    proxies.push(b);
    makeKey(db); // a change, which both servers apply before the CLI returns
    s = cli(['db', 'status'], { db });
    assert.equal(s.code, 0, s.stderr);
    assert.ok(s.json.change_seq > 0);
    assert.equal(s.json.nodes_live, 2);
    const byNode = Object.fromEntries(s.json.nodes.map((n) => [n.node, n]));
    assert.deepEqual(Object.keys(byNode).sort(), ['node-a', b.listening.node].sort());
    assert.equal(b.listening.node, `${os.hostname()}:${b.port}`, 'the default name is <hostname>:<port>');
    for (const n of s.json.nodes) {
        assert.deepEqual(Object.keys(n), NODE_FIELDS);
        assert.equal(n.host, os.hostname());
        assert.match(n.version, /^\d+\.\d+\.\d+/);
        assert.match(n.started_at, RFC3339);
        assert.match(n.last_report, RFC3339);
        assert.ok(n.last_report_age_s >= 0 && n.last_report_age_s < 15);
        assert.equal(n.applied_seq, s.json.change_seq);
        assert.equal(n.behind, 0);
        assert.equal(n.state, 'live');
    }
    assert.equal(byNode['node-a'].pid, a.child.pid);

    // For people: the fields, then a table of the nodes.
    const human = cli(['db', 'status'], { db, json: false });
    assert.equal(human.code, 0);
    assert.match(human.stdout, /^kind: +(sqlite|postgresql)$/m);
    assert.match(human.stdout, /^NODE +HOST +PID +VERSION +STARTED AT +LAST REPORT +LAST REPORT AGE S +APPLIED SEQ +BEHIND +STATE$/m);
    assert.match(human.stdout, /^node-a +\S+ +\d+ /m);
    if (PG) {
        const password = /:\/\/[^:]*:([^@]+)@/.exec(db)[1];
        assert.ok(!human.stdout.includes(password) && !s.stdout.includes(password), 'no DSN password');
    }

    // A node killed without cleaning up: on this host its process is gone, and status says so.
    a.child.kill('SIGKILL');
    await a.exited;
    await waitFor(() => {
        const now = cli(['db', 'status'], { db }).json;
        return now.nodes.find((n) => n.node === 'node-a')?.state === 'gone' && now.nodes_live === 1;
    }, { timeoutMs: 5000, intervalMs: 100, what: 'the killed node shown as gone' });
    // A node that stops cleanly removes its row.
    await b.stop();
    assert.deepEqual(cli(['db', 'status'], { db }).json.nodes.map((n) => n.node), ['node-a']);
});

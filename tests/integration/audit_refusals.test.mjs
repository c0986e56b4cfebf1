// Issue 8 item 7: a refusal does not read like a success in the audit log. The action label of
// the route is recorded only when the request was forwarded to Core; a request the proxy refused
// records "refused: <label>" instead, keeps its category, and records the instance_id it asked
// for when that id is well formed (even unknown or not allowed). Item 9 (part): the log line of a
// Core failure names the request and the instance.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startFakeCore } from './lib/fake_core.mjs';
import {
    UNKNOWN_INSTANCE,
    bearer,
    cli,
    closedPort,
    makeInstance,
    makeKey,
    randomHex,
    req,
    startProxy,
    tmpDb,
} from './lib/harness.mjs';

function auditList(db, args = []) {
    const r = cli(['audit', 'list', '--limit', '100000', ...args], { db });
    assert.equal(r.code, 0, `audit list ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l)).reverse();
}

describe('refused requests in the audit log', () => {
    let core;
    let db;
    let inst;
    let other;
    let dead;
    let K;
    let proxy;
    const sent = []; // [res, expected record fields]

    before(async () => {
        core = await startFakeCore();
        db = tmpDb();
        inst = makeInstance(db, core.url, { secret: `core_secret_${randomHex(8)}`, name: 'main' });
        other = makeInstance(db, core.url, { secret: `core_secret_${randomHex(8)}`, name: 'other' });
        dead = makeInstance(db, `http://127.0.0.1:${await closedPort()}`, { name: 'dead' });
        K = {
            all: makeKey(db, { name: 'all' }),
            read: makeKey(db, { name: 'reader', scopes: ['proxy:read'] }),
            otherOnly: makeKey(db, { name: 'other-only', instances: [other.id] }),
        };
        proxy = await startProxy({ db, args: ['--max-body-bytes', '64'] });
    });

    after(async () => {
        await proxy?.stop();
        await core?.close();
    });

    const P = (corePath, id = inst.id) => `/proxy${corePath}?instance_id=${id}`;
    const TX = '{"amount":1,"precision":100,"reference":"r1"}';
    const JSONH = { 'content-type': 'application/json' };

    async function send(method, path, headers, body, expect) {
        const res = await req(proxy.port, method, path, { headers: { ...headers, ...(body ? JSONH : {}) }, body });
        sent.push([res, expect]);
        return res;
    }

    test('forwarded requests carry the action; refusals carry "refused: <action>" and the asked instance', async () => {
        const all = bearer(K.all.key);
        // Forwarded: Core created it, or Core refused it itself, or Core could not be reached.
        await send('POST', P('/transactions'), all, TX, { status: 201, action: 'Transaction created', instance_id: inst.id, error: null });
        core.setHandler({ status: 400, body: { error: 'bad', error_detail: { code: 'TXN_INVALID', message: 'bad' } } });
        await send('POST', P('/transactions'), all, TX, { status: 400, core_status: 400, action: 'Transaction created', instance_id: inst.id });
        core.setHandler(null);
        const r502 = await send('POST', P('/transactions', dead.id), all, TX, {
            status: 502, action: 'Transaction created', instance_id: dead.id, error: 'PROXY_BAD_GATEWAY',
        });
        // Issue 8 item 9: the log line that reports the Core failure says which request and instance.
        const rid = r502.headers['x-request-id'];
        const failure = await proxy.waitForLog((o) => o.msg === 'upstream request failed' && o.request_id === rid);
        assert.equal(failure.instance, dead.id, JSON.stringify(failure));
        // Refused by the proxy, in every phase: 401, 403 (scope, instance), 404 (instance), 400, 413.
        // A 401 comes before the route is looked up (DESIGN §2 order): method and path say what
        // was attempted, and the instance it named is kept.
        await send('POST', P('/transactions'), {}, TX, {
            status: 401, action: null, category: null, route: null, path: '/transactions', instance_id: inst.id,
            error: 'AUTH_MISSING_API_KEY',
        });
        await send('POST', P('/transactions'), bearer(`blnk_${'0'.repeat(64)}`), TX, {
            status: 401, action: null, instance_id: inst.id, error: 'AUTH_INVALID_API_KEY',
        });
        await send('POST', P('/ledgers'), bearer(K.read.key), '{"name":"x"}', {
            status: 403, action: 'refused: Ledger created', category: 'ledgers', route: '/ledgers', instance_id: inst.id,
            error: 'AUTH_INSUFFICIENT_PERMISSIONS',
        });
        await send('POST', P('/transactions'), bearer(K.otherOnly.key), TX, {
            status: 403, action: 'refused: Transaction created', instance_id: inst.id, error: 'AUTH_INSUFFICIENT_PERMISSIONS',
        });
        await send('POST', P('/transactions', UNKNOWN_INSTANCE), all, TX, {
            status: 404, action: 'refused: Transaction created', instance_id: UNKNOWN_INSTANCE, error: 'PROXY_UNKNOWN_INSTANCE',
        });
        await send('POST', P('/transactions', 'instance_bogus'), all, TX, {
            status: 400, action: 'refused: Transaction created', instance_id: null, error: 'GEN_MALFORMED_REQUEST',
        });
        await send('POST', P('/transactions'), all, 'x'.repeat(65), {
            status: 413, action: 'refused: Transaction created', instance_id: inst.id, error: 'GEN_PAYLOAD_TOO_LARGE',
        });
        // A path refused before any route matched: no action, no category, but the instance.
        await send('POST', P('/transactions/'), all, TX, {
            status: 400, action: null, category: null, route: null, instance_id: inst.id, error: 'GEN_MALFORMED_REQUEST',
        });
        await send('GET', P('/no-such-route'), all, undefined, { status: 404, action: null, instance_id: inst.id, error: 'GEN_NOT_FOUND' });
        // A read has no action either way.
        await send('GET', P('/ledgers'), bearer(K.otherOnly.key), undefined, { status: 403, action: null, category: 'ledgers', instance_id: inst.id });

        await proxy.stop();
        const recs = auditList(db).filter((r) => r.category !== 'admin');
        assert.equal(recs.length, sent.length);
        for (const [res, expect] of sent) {
            const r = recs.find((x) => x.request_id === res.headers['x-request-id']);
            assert.ok(r, `a record for ${JSON.stringify(expect)}`);
            for (const [k, v] of Object.entries(expect)) {
                assert.deepEqual(r[k], v, `${k} of ${JSON.stringify(r)}`);
            }
            assert.equal(r.status, res.status);
        }
    });

    test('audit list --action "Transaction created" lists only what was forwarded', () => {
        const created = auditList(db, ['--action', 'Transaction created']);
        assert.deepEqual(created.map((r) => r.status), [201, 400, 502]);
        const refused = auditList(db, ['--action', 'refused: Transaction created']);
        assert.deepEqual(refused.map((r) => r.status), [403, 404, 400, 413]);
        // The category keeps both, for a console's per-category view.
        assert.equal(auditList(db, ['--category', 'transactions']).length, 7);
    });
});

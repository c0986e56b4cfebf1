// Key and client-secret rotation with overlap (issue 12, item 3), end to end with serve running:
// `key rotate ID --grace D` issues a new key with the old one's name, scopes and instances (shown
// once) and makes the old one expire after the grace; both work meanwhile, only the new one after.
// `key show` names which replaced which, and the audit log has "Key rotated" (the old key) and
// "Key created" (the new one) with one request_id. `client rotate-secret ID --grace D` does the
// same for an OAuth client's secret.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { startFakeCore } from './lib/fake_core.mjs';
import { createClient, token } from './lib/oauth_flow.mjs';
import { bearer, cli, makeInstance, makeKey, req, sleep, startProxy, tmpDb, waitFor } from './lib/harness.mjs';

const w = {};

before(async () => {
    w.core = await startFakeCore();
    w.db = tmpDb();
    w.a = makeInstance(w.db, w.core.url, { secret: 'rotation_secret_a', name: 'a' });
    w.b = makeInstance(w.db, w.core.url, { secret: 'rotation_secret_b', name: 'b' });
    w.proxy = await startProxy({ db: w.db });
});

after(async () => {
    await w.proxy?.stop();
    await w.core?.close();
});

const get = (key, inst = w.a) =>
    req(w.proxy.port, 'GET', `/proxy/ledgers?instance_id=${inst.id}`, { headers: bearer(key), agent: false });

function audit() {
    const r = cli(['audit', 'list', '--category', 'admin', '--limit', '1000'], { db: w.db });
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

test('key rotate: the new key works at once with the same scopes and instances, the old one until the grace ends', async () => {
    const old = makeKey(w.db, { name: 'payments-app', scopes: ['proxy:read'], instances: [w.a.id] });
    assert.equal((await get(old.key)).status, 200);

    const r = cli(['key', 'rotate', old.id, '--grace', '3s'], { db: w.db });
    assert.equal(r.code, 0, r.stderr);
    const fresh = r.json;
    assert.match(fresh.key, /^blnk_[0-9a-f]{64}$/);
    assert.notEqual(fresh.id, old.id);
    assert.equal(fresh.name, 'payments-app');
    assert.deepEqual(fresh.scopes, ['proxy:read']);
    assert.deepEqual(fresh.instances, [w.a.id]);
    assert.equal(fresh.replaces, old.id);
    assert.match(fresh.replaced_key_expires_at, /^\d{4}-/);

    // Both work during the overlap (the CLI returned after the server applied it).
    assert.equal((await get(old.key)).status, 200);
    assert.equal((await get(fresh.key)).status, 200);
    // Same restriction and scopes: another instance, or a write, is refused for the new key too.
    assert.equal((await get(fresh.key, w.b)).status, 403);
    const write = await req(w.proxy.port, 'POST', `/proxy/ledgers?instance_id=${w.a.id}`, {
        headers: { ...bearer(fresh.key), 'content-type': 'application/json' }, body: '{"name":"x"}', agent: false,
    });
    assert.equal(write.status, 403);

    // After the grace: the old key has expired, the new one works.
    await waitFor(async () => (await get(old.key)).status === 401, { timeoutMs: 8000, intervalMs: 250, what: 'the old key expired' });
    const refused = await get(old.key);
    assert.equal(refused.json.error_detail.code, 'AUTH_EXPIRED_API_KEY');
    assert.equal((await get(fresh.key)).status, 200);

    // key show links them; the old key reads expired.
    const showOld = cli(['key', 'show', old.id], { db: w.db });
    assert.equal(showOld.json.replaced_by, fresh.id);
    assert.equal(showOld.json.status, 'expired');
    const showNew = cli(['key', 'show', fresh.id], { db: w.db });
    assert.equal(showNew.json.replaces, old.id);
    assert.equal(showNew.json.key, undefined, 'the key is shown once, at rotation');
    assert.equal(showNew.json.replaced_by, undefined);

    // The audit log: two records of one change, with one request_id.
    const recs = audit();
    const rotated = recs.find((x) => x.action === 'Key rotated' && x.resource_id === old.id);
    const created = recs.find((x) => x.action === 'Key created' && x.resource_id === fresh.id);
    assert.ok(rotated && created, JSON.stringify(recs.slice(0, 4)));
    assert.match(rotated.request_id, /^[0-9a-f-]{36}$/);
    assert.equal(created.request_id, rotated.request_id);
    // A request with the new key is audited as the new key.
    await waitFor(() => {
        const all = cli(['audit', 'list', '--credential', fresh.id, '--limit', '10'], { db: w.db });
        return all.stdout.trim().length > 0;
    }, { timeoutMs: 5000, what: 'a record of the new key' });

    // Rotating it again is refused (rotate the new one); so is a revoked key.
    const again = cli(['key', 'rotate', old.id], { db: w.db, json: false });
    assert.equal(again.code, 1);
    assert.match(again.stderr, /was rotated already \(replaced by key_\w+\): rotate that one|is expired: there is nothing to rotate/);
    const gone = makeKey(w.db, { name: 'gone' });
    assert.equal(cli(['key', 'revoke', gone.id], { db: w.db }).code, 0);
    const revoked = cli(['key', 'rotate', gone.id], { db: w.db, json: false });
    assert.equal(revoked.code, 1);
    assert.match(revoked.stderr, /is revoked: there is nothing to rotate/);
    const bad = cli(['key', 'rotate', fresh.id, '--grace', 'never'], { db: w.db, json: false });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /invalid --grace/);
    // No key text in any log line.
    assert.ok(!w.proxy.logs().join('\n').includes(fresh.key));
});

test('key rotate --grace 0s: the old key stops at once, the new one works', async () => {
    const old = makeKey(w.db, { name: 'leaked' });
    assert.equal((await get(old.key)).status, 200);
    const r = cli(['key', 'rotate', old.id, '--grace', '0s'], { db: w.db });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await get(old.key)).status, 401);
    assert.equal((await get(r.json.key)).status, 200);
});

test('client rotate-secret: both secrets get tokens during the grace, only the new one after', async () => {
    const c = createClient(w.db, ['--name', 'nightly', '--scopes', 'proxy:read']);
    assert.equal((await token(w.proxy.port, c, { grant_type: 'client_credentials' })).status, 200);
    const r = cli(['client', 'rotate-secret', c.id, '--grace', '3s'], { db: w.db });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.json.client_secret, /^blnk_cs_[0-9a-f]{64}$/);
    assert.notEqual(r.json.client_secret, c.secret);
    assert.match(r.json.previous_secret_expires_at, /^\d{4}-/);
    const next = { id: c.id, secret: r.json.client_secret };

    const both = [await token(w.proxy.port, c, { grant_type: 'client_credentials' }), await token(w.proxy.port, next, { grant_type: 'client_credentials' })];
    assert.deepEqual(both.map((x) => x.status), [200, 200]);
    // The tokens work through the proxy.
    assert.equal((await get(both[1].json.access_token)).status, 200);

    await sleep(3200);
    const late = await token(w.proxy.port, c, { grant_type: 'client_credentials' });
    assert.equal(late.status, 401);
    assert.equal(late.json.error, 'invalid_client');
    assert.equal((await token(w.proxy.port, next, { grant_type: 'client_credentials' })).status, 200);

    assert.ok(audit().some((x) => x.action === 'Client secret rotated' && x.resource_id === c.id));
    const logs = w.proxy.logs().join('\n');
    assert.ok(!logs.includes(c.secret) && !logs.includes(next.secret));
    // A second rotation replaces the previous secret: the first one never comes back.
    const r2 = cli(['client', 'rotate-secret', c.id, '--grace', '1h'], { db: w.db });
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal((await token(w.proxy.port, c, { grant_type: 'client_credentials' })).status, 401);
    assert.equal((await token(w.proxy.port, next, { grant_type: 'client_credentials' })).status, 200);
    assert.equal((await token(w.proxy.port, { id: c.id, secret: r2.json.client_secret }, { grant_type: 'client_credentials' })).status, 200);
});

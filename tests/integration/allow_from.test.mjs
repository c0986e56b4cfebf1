// IP allow-lists per credential (issue 12, item 4), end to end with serve running: `key create
// --allow-from CIDR,…` and `client create --allow-from …` hold a key, or an OAuth client's access
// tokens, to networks; a request from elsewhere gets 403 AUTH_IP_NOT_ALLOWED before anything else
// is checked, is audited under the credential and counted in metrics; `key update` / `client
// update --allow-from` change it on running servers (any lifts it); `key rotate` carries it over;
// /oauth/token refuses a client used from outside its list.
// The address checked is the real client's: the connection's peer, or when that peer is a trusted
// proxy, the client its X-Forwarded-For names. Tests use 127.0.0.1 only, so "elsewhere" is a
// network without it, and other client addresses come through a trusted proxy's X-Forwarded-For.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { startFakeCore } from './lib/fake_core.mjs';
import { FORM, basic, createClient, token } from './lib/oauth_flow.mjs';
import { bearer, cli, makeInstance, makeKey, req, startProxy, tmpDb, waitFor } from './lib/harness.mjs';

const w = {};

before(async () => {
    w.core = await startFakeCore();
    w.db = tmpDb();
    w.inst = makeInstance(w.db, w.core.url, { secret: 'allow_from_secret', name: 'a' });
    w.proxy = await startProxy({ db: w.db });
    // A second server that believes X-Forwarded-For from 127.0.0.1 (a load balancer in front).
    w.behind = await startProxy({ db: w.db, args: ['--trusted-proxies', '127.0.0.1/32'] });
});

after(async () => {
    await w.behind?.stop();
    await w.proxy?.stop();
    await w.core?.close();
});

const get = (port, key, extra = {}) =>
    req(port, 'GET', `/proxy/ledgers?instance_id=${w.inst.id}`, { headers: { ...bearer(key), ...extra }, agent: false });

function keyWith(allowFrom, name) {
    const r = cli(['key', 'create', '--name', name, '--scopes', 'proxy:read', '--allow-from', allowFrom], { db: w.db });
    assert.equal(r.code, 0, r.stderr);
    return { id: r.json.id, key: r.json.key, json: r.json };
}

function audit(credential) {
    const r = cli(['audit', 'list', '--credential', credential, '--limit', '100'], { db: w.db });
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

async function metric(port, line) {
    const m = await req(port, 'GET', '/metrics', { agent: false });
    const found = m.text.split('\n').find((l) => l.startsWith(line));
    return found ? Number(found.split(' ').pop()) : 0;
}

test('a key is refused 403 AUTH_IP_NOT_ALLOWED from outside its list, served from inside it', async () => {
    const inside = keyWith('127.0.0.1', 'inside');
    assert.deepEqual(inside.json.allow_from, ['127.0.0.1/32'], 'stored canonical');
    const outside = keyWith('10.0.0.0/8, 2001:db8::/32', 'outside');
    assert.deepEqual(outside.json.allow_from, ['10.0.0.0/8', '2001:db8::/32']);
    const before = await metric(w.proxy.port, 'blnkproxy_auth_failures_total{reason="ip_not_allowed"}');
    const seen = w.core.requests.length;

    assert.equal((await get(w.proxy.port, inside.key)).status, 200);
    const r = await get(w.proxy.port, outside.key);
    assert.equal(r.status, 403);
    assert.equal(r.json.error_detail.code, 'AUTH_IP_NOT_ALLOWED');
    assert.match(r.json.error, /allow-list/);
    assert.equal(w.core.requests.length, seen + 1, 'the refused request never reached Core');
    // Checked right after authentication: a route that does not exist is refused the same way.
    const nowhere = await req(w.proxy.port, 'GET', '/proxy/no-such-route', { headers: bearer(outside.key), agent: false });
    assert.equal(nowhere.status, 403);
    assert.equal(nowhere.json.error_detail.code, 'AUTH_IP_NOT_ALLOWED');

    assert.equal(await metric(w.proxy.port, 'blnkproxy_auth_failures_total{reason="ip_not_allowed"}'), before + 2);
    await waitFor(() => audit(outside.id).length >= 2, { timeoutMs: 5000, what: 'the refusals audited' });
    const recs = audit(outside.id);
    assert.ok(recs.every((x) => x.status === 403 && x.error === 'AUTH_IP_NOT_ALLOWED' && x.client_addr === '127.0.0.1'),
        JSON.stringify(recs));
    // No key in the log.
    assert.ok(!w.proxy.logs().join('\n').includes(outside.key));
});

test('behind a trusted proxy the real client address is checked (X-Forwarded-For)', async () => {
    const k = keyWith('203.0.113.0/24,2001:db8:1::/48', 'lb-clients');
    const from = (ip) => get(w.behind.port, k.key, { 'x-forwarded-for': ip });
    assert.equal((await from('203.0.113.9')).status, 200);
    assert.equal((await from('2001:db8:1:2::7')).status, 200);
    const r = await from('198.51.100.1');
    assert.equal(r.status, 403);
    assert.equal(r.json.error_detail.code, 'AUTH_IP_NOT_ALLOWED');
    // The rightmost untrusted address is the client: a forged leftmost entry does not help.
    assert.equal((await from('203.0.113.9, 198.51.100.1')).status, 403);
    // Without the header the client is the proxy itself (127.0.0.1): not in the list.
    assert.equal((await get(w.behind.port, k.key)).status, 403);
    // A server that trusts no proxy ignores the header: the client is 127.0.0.1.
    assert.equal((await get(w.proxy.port, k.key, { 'x-forwarded-for': '203.0.113.9' })).status, 403);
    await waitFor(() => audit(k.id).some((x) => x.status === 403 && x.client_addr === '198.51.100.1'),
        { timeoutMs: 5000, what: 'the refusal audited with the real client address' });
});

test('key update --allow-from changes it on the running server; any lifts it; rotate carries it', async () => {
    const k = keyWith('10.0.0.0/8', 'movable');
    assert.equal((await get(w.proxy.port, k.key)).status, 403);

    const up = cli(['key', 'update', k.id, '--allow-from', '127.0.0.0/8'], { db: w.db });
    assert.equal(up.code, 0, up.stderr);
    assert.deepEqual(up.json.allow_from, ['127.0.0.0/8']);
    // The CLI returned after the server applied it.
    assert.equal((await get(w.proxy.port, k.key)).status, 200);

    const rot = cli(['key', 'rotate', k.id, '--grace', '1h'], { db: w.db });
    assert.equal(rot.code, 0, rot.stderr);
    assert.deepEqual(rot.json.allow_from, ['127.0.0.0/8']);
    assert.equal((await get(w.proxy.port, rot.json.key)).status, 200);

    assert.equal(cli(['key', 'update', k.id, '--allow-from', '192.0.2.0/24'], { db: w.db }).code, 0);
    assert.equal((await get(w.proxy.port, k.key)).status, 403);
    const any = cli(['key', 'update', k.id, '--allow-from', 'any'], { db: w.db });
    assert.equal(any.code, 0, any.stderr);
    assert.equal(any.json.allow_from, null);
    assert.equal((await get(w.proxy.port, k.key)).status, 200);

    const changes = cli(['audit', 'list', '--category', 'admin', '--limit', '100'], { db: w.db }).stdout
        .split('\n').filter(Boolean).map((l) => JSON.parse(l))
        .filter((x) => x.action === 'Key allow-list changed' && x.resource_id === k.id);
    assert.equal(changes.length, 3, 'each change audited');
});

test('bad --allow-from values are refused with what to write', () => {
    for (const bad of ['', '10.0.0.1/8', '300.1.1.1', 'example.com', '10.0.0.0/33', '::1/129', 'any,10.0.0.0/8',
        Array.from({ length: 65 }, (_, i) => `10.0.${i}.0/24`).join(',')]) {
        const r = cli(['key', 'create', '--name', 'bad', '--scopes', '*', '--allow-from', bad], { db: w.db, json: false });
        assert.equal(r.code, 2, `${bad}: ${r.stderr}`);
        assert.match(r.stderr, /invalid --allow-from: .*expected comma-separated addresses or networks/);
    }
    const plain = makeKey(w.db, { name: 'plain' });
    const upd = cli(['key', 'update', plain.id], { db: w.db, json: false });
    assert.equal(upd.code, 2);
    assert.match(upd.stderr, /--allow-from/);
    assert.equal(cli(['key', 'show', plain.id], { db: w.db }).json.allow_from, null);
});

test("an OAuth client's allow-list binds its access tokens, and follows client update", async () => {
    const c = createClient(w.db, ['--name', 'office-app', '--scopes', 'proxy:read', '--allow-from', '10.9.0.0/16']);
    assert.deepEqual(c.json.allow_from, ['10.9.0.0/16']);
    // The token endpoint holds the client to its list too: a leaked secret mints nothing elsewhere.
    const refused = await token(w.proxy.port, c, { grant_type: 'client_credentials' });
    assert.equal(refused.status, 401);
    assert.equal(refused.json.error, 'invalid_client');
    assert.match(refused.json.error_description, /allow-list/);
    const t = await req(w.behind.port, 'POST', '/oauth/token', {
        headers: { ...FORM, ...basic(c), 'x-forwarded-for': '10.9.3.4' },
        body: 'grant_type=client_credentials', agent: false,
    });
    assert.equal(t.status, 200, t.text);
    const at = t.json.access_token;
    const r = await get(w.proxy.port, at);
    assert.equal(r.status, 403);
    assert.equal(r.json.error_detail.code, 'AUTH_IP_NOT_ALLOWED');
    assert.equal((await get(w.behind.port, at, { 'x-forwarded-for': '10.9.3.4' })).status, 200);

    // The change reaches the tokens already issued.
    const up = cli(['client', 'update', c.id, '--allow-from', '127.0.0.1/32'], { db: w.db });
    assert.equal(up.code, 0, up.stderr);
    assert.deepEqual(up.json.allow_from, ['127.0.0.1/32']);
    assert.equal((await get(w.proxy.port, at)).status, 200);
    assert.equal((await get(w.behind.port, at, { 'x-forwarded-for': '10.9.3.4' })).status, 403);
    assert.equal(cli(['client', 'update', c.id, '--allow-from', 'any'], { db: w.db }).code, 0);
    assert.equal((await get(w.behind.port, at, { 'x-forwarded-for': '10.9.3.4' })).status, 200);
    const show = cli(['client', 'show', c.id], { db: w.db });
    assert.equal(show.json.allow_from, null);
});

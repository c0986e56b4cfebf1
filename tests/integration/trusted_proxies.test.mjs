// Who the client is (issue 11, items 6 and 8). From a peer that is not in trusted_proxies, nothing a
// client says about addresses is believed or forwarded: Core's gin takes the leftmost
// X-Forwarded-For entry (or X-Real-IP) as the client, so a forwarded client value would let anyone
// choose the address Core sees. From a trusted proxy, X-Forwarded-For is read from the right: the
// first address that is not a trusted proxy is the client, for the audit log, the access log and
// Core; X-Forwarded-Proto is believed. Changed live by SIGHUP.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { startFakeCore } from './lib/fake_core.mjs';
import { bearer, cli, makeInstance, makeKey, req, startProxy, tmpDb, tmpDir } from './lib/harness.mjs';

let core;
let db;
let instance;
let key;

before(async () => {
    core = await startFakeCore();
    db = tmpDb();
    instance = makeInstance(db, core.url, { secret: 'xff_secret' });
    key = makeKey(db, { scopes: ['*'] }).key;
});

after(async () => {
    await core?.close();
});

const p = (corePath) => `/proxy${corePath}?instance_id=${instance.id}`;

function configFile(obj) {
    const file = path.join(tmpDir(), 'blnkproxy.json');
    fs.writeFileSync(file, JSON.stringify(obj));
    return file;
}

/** One proxied GET with these extra headers: what Core saw, the audit record, the access line. */
async function seen(proxy, headers) {
    core.reset();
    const requestId = `xff-${Math.random().toString(16).slice(2)}`;
    const res = await req(proxy.port, 'GET', p('/ledgers'), {
        headers: { ...bearer(key), 'X-Request-Id': requestId, ...headers },
        agent: false,
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(core.requests.length, 1);
    const access = await proxy.waitForLog(
        () => proxy.logObjects().find((l) => l.msg === 'access' && l.request_id === requestId),
        5000,
    );
    let record;
    for (let i = 0; i < 50 && !record; i++) {
        const out = cli(['audit', 'list', '--json', '--limit', '1000'], { db, json: false });
        assert.equal(out.code, 0, out.stderr);
        record = out.stdout
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l))
            .find((r) => r.request_id === requestId);
        if (!record) {
            await new Promise((r) => setTimeout(r, 100));
        }
    }
    assert.ok(record, 'the audit record of the request');
    return { core: core.requests[0], access, record };
}

function clientIs(s, client, { via = null, xff, proto = 'http' }) {
    assert.equal(s.core.headers['x-forwarded-for'], xff, 'X-Forwarded-For to Core');
    assert.equal(s.core.headerCount('x-forwarded-for'), 1);
    assert.equal(s.core.headers['x-forwarded-proto'], proto, 'X-Forwarded-Proto to Core');
    assert.equal(s.core.headerCount('x-real-ip'), 0, 'X-Real-IP never reaches Core');
    assert.equal(s.core.headerCount('forwarded'), 0, 'Forwarded never reaches Core');
    assert.equal(s.record.client_addr, client, 'the audit record\'s client address');
    assert.equal(s.access.peer, client, 'the access line\'s peer');
    assert.equal(s.access.via, via, 'the access line\'s via');
}

const spoof = {
    'X-Forwarded-For': '203.0.113.7',
    'X-Forwarded-Proto': 'https',
    'X-Real-IP': '203.0.113.8',
    Forwarded: 'for=203.0.113.9;proto=https',
};

test('without trusted_proxies a client names no address: Core, the audit log and the access log see the peer', async () => {
    const proxy = await startProxy({ db });
    try {
        clientIs(await seen(proxy, spoof), '127.0.0.1', { xff: '127.0.0.1' });
        clientIs(await seen(proxy, {}), '127.0.0.1', { xff: '127.0.0.1' });
    } finally {
        await proxy.stop();
    }
});

test('trusted_proxies names addresses, never anything else: a bad list is refused at start', async () => {
    for (const bad of ['10.0.0.1/8', '10.0.0.0/33', 'example.com', '10.0.0.0/8,,::1', '::1/129']) {
        const out = cli(['serve', '--check', '--trusted-proxies', bad], { db, json: false });
        assert.notEqual(out.code, 0, `refused: ${bad}`);
        assert.match(out.stderr, /trusted_proxies|trusted-proxies/, out.stderr);
    }
    const ok = cli(['serve', '--check', '--trusted-proxies', '10.0.0.0/8, 192.0.2.7,::1,2001:db8::/32'], { db, json: false });
    assert.equal(ok.code, 0, ok.stderr);
});

test('from a trusted proxy the rightmost address that is not a trusted proxy is the client; SIGHUP changes the list', async () => {
    const file = configFile({ trusted_proxies: '127.0.0.1/32, 10.0.0.0/8' });
    const proxy = await startProxy({ db, args: ['--config', file] });
    try {
        // What the client wrote (198.51.100.9) is left out; the chain from the client on is kept.
        clientIs(
            await seen(proxy, { ...spoof, 'X-Forwarded-For': '198.51.100.9, 203.0.113.7, 10.1.2.3' }),
            '203.0.113.7',
            { via: '127.0.0.1', xff: '203.0.113.7, 10.1.2.3, 127.0.0.1', proto: 'https' },
        );
        // Several header lines are one list.
        clientIs(
            await seen(proxy, { 'X-Forwarded-For': ['198.51.100.9', '203.0.113.7'] }),
            '203.0.113.7',
            { via: '127.0.0.1', xff: '203.0.113.7, 127.0.0.1' },
        );
        // Something that is not an address ends the walk: the last good one is the client.
        clientIs(await seen(proxy, { 'X-Forwarded-For': '203.0.113.7, unknown, 10.1.2.3' }), '10.1.2.3', {
            via: '127.0.0.1',
            xff: '10.1.2.3, 127.0.0.1',
        });
        // Only trusted proxies: the leftmost is as far as anyone vouches.
        clientIs(await seen(proxy, { 'X-Forwarded-For': '10.9.9.9, 10.1.2.3' }), '10.9.9.9', {
            via: '127.0.0.1',
            xff: '10.9.9.9, 10.1.2.3, 127.0.0.1',
        });
        // IPv6, in its canonical form.
        clientIs(await seen(proxy, { 'X-Forwarded-For': '2001:DB8:0::7' }), '2001:db8::7', {
            via: '127.0.0.1',
            xff: '2001:db8::7, 127.0.0.1',
        });
        // No X-Forwarded-For: the peer; an X-Forwarded-Proto that is not one plain value: http.
        clientIs(await seen(proxy, { 'X-Forwarded-Proto': 'https, http' }), '127.0.0.1', { xff: '127.0.0.1' });

        // The list changes live: 127.0.0.1 is no longer trusted.
        fs.writeFileSync(file, JSON.stringify({ trusted_proxies: '10.0.0.0/8' }));
        const before = proxy.logObjects().filter((l) => l.msg === 'configuration reloaded').length;
        proxy.child.kill('SIGHUP');
        await proxy.waitForLog(() => proxy.logObjects().filter((l) => l.msg === 'configuration reloaded').length > before, 5000);
        clientIs(await seen(proxy, spoof), '127.0.0.1', { xff: '127.0.0.1' });
    } finally {
        await proxy.stop();
    }
});

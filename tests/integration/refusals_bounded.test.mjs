// What an anonymous client can make the proxy keep (issue 11, item 1, in part): a request refused
// for its credential keeps at most 256 bytes of its raw path in the audit record (it kept 2 KiB);
// a connection whose requests fail authentication 3 times is closed after the third refusal, so
// guessing keys or flooding refusals cannot go on over one kept-alive connection; and refusals
// get at most 20 access lines a second per worker, the rest counted in one line.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { startFakeCore } from './lib/fake_core.mjs';
import { cli, makeInstance, makeKey, parseResponses, rawRequest, startProxy, tmpDb } from './lib/harness.mjs';

let core;
let db;
let instance;
let proxy;

before(async () => {
    core = await startFakeCore();
    db = tmpDb();
    instance = makeInstance(db, core.url, { secret: 'refusal_secret' });
    makeKey(db, { scopes: ['*'] });
    proxy = await startProxy({ db });
});

after(async () => {
    await proxy?.stop();
    await core?.close();
});

const get = (path, auth) =>
    `GET ${path} HTTP/1.1\r\nHost: x\r\n${auth ? `Authorization: Bearer ${auth}\r\n` : ''}\r\n`;

test('three failed authentications close the connection after the third answer', async () => {
    const wrongKey = `blnk_${'0'.repeat(64)}`;
    const p = `/proxy/ledgers?instance_id=${instance.id}`;
    // Five pipelined requests: no credential, a wrong key, none again, then two more.
    const r = await rawRequest(proxy.port, get(p) + get(p, wrongKey) + get(p) + get(p) + get(p), { timeoutMs: 5000 });
    const responses = parseResponses(r.data);
    assert.equal(responses.length, 3, `answers before the close: ${r.text.slice(0, 400)}`);
    assert.deepEqual(responses.map((x) => x.status), [401, 401, 401]);
    assert.notEqual(responses[0].headers.connection, 'close');
    assert.equal(responses[2].headers.connection, 'close');
    assert.equal(r.closed, true, 'the proxy closed the connection');
});

test('a refused request keeps at most 256 bytes of its raw path in the audit log', async () => {
    const long = `/proxy/${'a'.repeat(3000)}?instance_id=${instance.id}`;
    const r = await rawRequest(proxy.port, `GET ${long} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, { timeoutMs: 5000 });
    assert.equal(parseResponses(r.data)[0].status, 401);
    let rec;
    for (let i = 0; i < 50 && !rec; i++) {
        const out = cli(['audit', 'list', '--json', '--limit', '100'], { db, json: false });
        rec = out.stdout
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l))
            .find((x) => (x.path ?? '').startsWith('/aaaa'));
        if (!rec) {
            await new Promise((res) => setTimeout(res, 100));
        }
    }
    assert.ok(rec, 'the refusal is recorded');
    assert.equal(rec.path.length, 256, `kept ${rec.path.length} bytes`);
});

test('access lines of refused anonymous requests are rate-limited; the rest are counted, not lost', async () => {
    const one = await startProxy({ db, workers: 1 });
    try {
        const p = `/proxy/ledgers?instance_id=${instance.id}`;
        // 100 refusals at once: 50 connections, 2 pipelined requests each (under the 3 strikes).
        await Promise.all(
            Array.from({ length: 50 }, () => rawRequest(one.port, get(p) + get(p), { timeoutMs: 5000, until: (b) => parseResponses(b).length === 2 })),
        );
        // A second later, any request logs the count of what was left out.
        await new Promise((res) => setTimeout(res, 1100));
        await rawRequest(one.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { timeoutMs: 5000 });
        await one.waitForLog((x) => x.msg === 'access lines of refused requests suppressed', 5000);
        await one.waitForLog((x) => x.msg === 'access' && x.status === 200, 5000);
        const lines = one.logObjects();
        const logged = lines.filter((x) => x.msg === 'access' && x.status === 401).length;
        const suppressed = lines
            .filter((x) => x.msg === 'access lines of refused requests suppressed')
            .reduce((a, x) => a + x.count, 0);
        assert.ok(logged <= 40, `at most 20 lines a second (the burst may span two seconds): ${logged}`);
        assert.equal(logged + suppressed, 100, `every refusal is a line or counted: ${logged} + ${suppressed}`);
    } finally {
        await one.stop();
    }
});

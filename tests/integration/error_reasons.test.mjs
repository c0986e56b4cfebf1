// Issue 8 item 8: a 400 from the proxy says why in error_detail.message (and error), with fixed
// text that never echoes the request. One case per check that answers GEN_MALFORMED_REQUEST or
// GEN_MISSING_PARAMETER and that an HTTP request can reach (the raw-byte refusals of the path
// check sit behind the HTTP parser, which answers them with a plain 400; the unit tests in
// tests/unit/router cover their reasons). Also item 2's reasons: a missing instance_id says why
// none is implied, and an X-Blnk-Key that is not a credential says so.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { startFakeCore } from './lib/fake_core.mjs';
import {
    assertError,
    bearer,
    makeInstance,
    makeKey,
    parseResponses,
    randomHex,
    rawRequest,
    req,
    startProxy,
    tmpDb,
} from './lib/harness.mjs';

let core;
let proxy;
let inst;
let K;

// A marker placed in the bad part of each request: it must not come back in the message.
const MARK = `zq${randomHex(4)}`;

before(async () => {
    core = await startFakeCore();
    const db = tmpDb();
    inst = makeInstance(db, core.url, { secret: `core_secret_${randomHex(8)}` });
    const second = makeInstance(db, core.url, { secret: `core_secret_${randomHex(8)}` });
    K = {
        all: makeKey(db, { scopes: ['*'] }),
        two: makeKey(db, { scopes: ['*'], instances: [inst.id, second.id] }),
        one: makeKey(db, { scopes: ['*'], instances: [inst.id] }),
    };
    proxy = await startProxy({ db });
});

after(async () => {
    await proxy?.stop();
    await core?.close();
});

const ID_SHAPE = 'instance_id must be instance_ followed by 26 Crockford base32 characters';

/** Sends, checks the DESIGN §2 shape, the code and the exact message, and that Core saw nothing. */
async function expectReason(target, code, message, { key = K.all.key, headers = {} } = {}) {
    core.reset();
    const res = await req(proxy.port, 'GET', target, { headers: { ...bearer(key), ...headers } });
    assertError(res, 400, code);
    assert.equal(res.json.error_detail.message, message, `message for ${target}`);
    assert.ok(!res.text.includes(MARK), `the message does not echo the request (${target})`);
    assert.equal(core.requests.length, 0, `Core never sees ${target}`);
}

const Q = () => `?instance_id=${inst.id}`;

test('path: each refusal names its reason', async () => {
    const cases = [
        [`/proxy/ledgers/${Q()}`, 'trailing slash in path: remove it'],
        [`/proxy/ledgers/ldg_${MARK}/${Q()}`, 'trailing slash in path: remove it'],
        [`/proxy/${Q()}`, 'no Core path after /proxy: call /proxy/<core path>, e.g. /proxy/ledgers'],
        [`/proxy${Q()}`, 'no Core path after /proxy: call /proxy/<core path>, e.g. /proxy/ledgers'],
        [`/proxy//ledgers${Q()}`, 'empty segment (//) in path'],
        [`/proxy/ledgers//${MARK}${Q()}`, 'empty segment (//) in path'],
        [`/proxy/ledgers/./${MARK}${Q()}`, 'dot segment (. or ..) in path'],
        [`/proxy/ledgers/../api-keys${Q()}`, 'dot segment (. or ..) in path'],
        [`/proxy/ledgers\\${MARK}${Q()}`, 'backslash in path'],
        [`/proxy/ledgers/${MARK}%2F..${Q()}`, 'percent-encoded slash or backslash in path'],
        [`/proxy/ledgers%5c${MARK}${Q()}`, 'percent-encoded slash or backslash in path'],
        [`/proxy/ledgers/${MARK}%00${Q()}`, 'percent-encoded control character in path'],
        [`/proxy/ledgers/a%0D%0A${MARK}${Q()}`, 'percent-encoded control character in path'],
        [`/proxy/ledgers/a%7f${Q()}`, 'percent-encoded control character in path'],
        [`/proxy/search/%72eindex${Q()}`,
            'percent-encoded letter, digit or one of - . _ ~ in path: write the character itself'],
        [`/proxy/ledgers/%2e%2e${Q()}`,
            'percent-encoded letter, digit or one of - . _ ~ in path: write the character itself'],
        [`/proxy/ledgers/${MARK}%zz${Q()}`, 'malformed percent-encoding in path: % must be followed by two hex digits'],
        [`/proxy/ledgers/${MARK}%4${Q()}`, 'malformed percent-encoding in path: % must be followed by two hex digits'],
    ];
    for (const [target, message] of cases) {
        await expectReason(target, 'GEN_MALFORMED_REQUEST', message);
    }
});

test("a raw '#' anywhere in the target", async () => {
    for (const target of [`/proxy/ledgers#${MARK}${Q()}`, `/proxy/ledgers${Q()}#${MARK}`, `/proxy/ledgers${Q()}&a=#`]) {
        core.reset();
        const bytes = `GET ${target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${K.all.key}\r\nConnection: close\r\n\r\n`;
        const r = await rawRequest(proxy.port, bytes, { timeoutMs: 3000 });
        const [res] = parseResponses(r.data);
        assert.ok(res, `${target}: a response`);
        assert.equal(res.status, 400, r.text);
        assert.deepEqual(res.json, {
            error: "'#' in the request target: percent-encode it as %23",
            error_detail: { code: 'GEN_MALFORMED_REQUEST', message: "'#' in the request target: percent-encode it as %23" },
        });
        assert.ok(!r.text.includes(MARK));
        assert.equal(core.requests.length, 0);
    }
});

test('instance_id: repeated, empty, or of the wrong shape', async () => {
    await expectReason(`/proxy/ledgers?instance_id=${inst.id}&instance_id=${inst.id}`, 'GEN_MALFORMED_REQUEST',
        'instance_id given more than once');
    await expectReason(`/proxy/ledgers?a=1&instance_id=${MARK}&instance_id=${inst.id}`, 'GEN_MALFORMED_REQUEST',
        'instance_id given more than once');
    for (const bad of [MARK, 'instance_', `instance_${MARK}`, inst.id.toLowerCase(), `${inst.id}X`, `${inst.id.slice(0, -1)}U`,
        'instance_%41AAAAAAAAAAAAAAAAAAAAAAAAA']) {
        await expectReason(`/proxy/ledgers?instance_id=${bad}`, 'GEN_MALFORMED_REQUEST', ID_SHAPE);
    }
    for (const q of ['instance_id=', 'instance_id', `a=${MARK}&instance_id=`, 'instance_id=&b=2']) {
        await expectReason(`/proxy/ledgers?${q}`, 'GEN_MISSING_PARAMETER', 'instance_id is empty: give the id of an instance');
        // Even for a key restricted to one instance: an empty value is not an absent one.
        await expectReason(`/proxy/ledgers?${q}`, 'GEN_MISSING_PARAMETER', 'instance_id is empty: give the id of an instance',
            { key: K.one.key });
    }
});

test('instance_id absent: the message says why no instance is implied', async () => {
    for (const q of ['', '?', `?a=${MARK}`, '?instance%5Fid=x']) {
        await expectReason(`/proxy/ledgers${q}`, 'GEN_MISSING_PARAMETER',
            'instance_id query parameter is required: this credential may use every instance');
        await expectReason(`/proxy/ledgers${q}`, 'GEN_MISSING_PARAMETER',
            'instance_id query parameter is required: this credential may use more than one instance', { key: K.two.key });
    }
});

test('an X-Blnk-Key that is not a credential: the 401 says the header was not used', async () => {
    for (const value of [`core-secret-${MARK}`, `blnk_rt_${randomHex(32)}`, `blnk_${randomHex(31)}`]) {
        core.reset();
        const res = await req(proxy.port, 'GET', `/proxy/ledgers${Q()}`, { headers: { 'x-blnk-key': value } });
        assertError(res, 401, 'AUTH_MISSING_API_KEY', { wwwAuthenticate: 'Bearer realm="blnkproxy"' });
        assert.equal(res.json.error_detail.message,
            'API key is required: X-Blnk-Key does not hold a blnkproxy API key or access token; send Authorization: Bearer <key>');
        assert.ok(!res.text.includes(value));
        assert.equal(core.requests.length, 0);
    }
    // Without any credential header the message stays the plain one.
    const res = await req(proxy.port, 'GET', `/proxy/ledgers${Q()}`);
    assertError(res, 401, 'AUTH_MISSING_API_KEY');
    assert.equal(res.json.error_detail.message, 'API key is required');
});

test('the access log names the reason; no request bytes in it', async () => {
    const res = await req(proxy.port, 'GET', `/proxy/ledgers/${MARK}/${Q()}`, { headers: bearer(K.all.key) });
    assertError(res, 400, 'GEN_MALFORMED_REQUEST');
    const line = await proxy.waitForLog((o) => o.msg === 'access' && o.request_id === res.headers['x-request-id']);
    assert.equal(line.reason, 'trailing slash in path: remove it');
    assert.equal(line.error, 'malformed');
    assert.ok(!JSON.stringify(line).includes(MARK), 'no request bytes in the access line');
});

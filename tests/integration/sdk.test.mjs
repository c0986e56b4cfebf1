// The official Blnk TypeScript SDK (@blnkfinance/blnk-typescript 1.3.0, from npm) works through
// blnkproxy unchanged: the SDK only gets a base URL ending in /proxy/ and a fetch function that adds
// `instance_id` and the proxy credential. The fake Core must see what Core would see from the SDK
// directly (DESIGN §2) plus the transaction defaults (§4), and the SDK must get Core's answers back.
//
// The SDK is a dev dependency of tests/integration (package.json / package-lock.json); CI installs
// it with `npm ci --prefix tests/integration`. Without it this file fails, on purpose.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, test } from 'node:test';

import { req, setupWorld } from './lib/harness.mjs';

const SDK = '@blnkfinance/blnk-typescript';
const SDK_VERSION = '1.3.0';
const require = createRequire(import.meta.url);

function loadSdk() {
    try {
        const pkg = require(`${SDK}/package.json`);
        const dist = `${SDK}/dist/src`;
        return {
            version: pkg.version,
            BlnkInit: require(SDK).BlnkInit,
            // BlnkInit hard-wires globalThis.fetch; the Blnk class it wraps takes the fetch function
            // as its fifth argument ("thirdPartyRequest"), which is how an app would inject one.
            Blnk: require(`${dist}/blnk/endpoints/baseBlnkClient.js`).Blnk,
            FormatResponse: require(`${dist}/blnk/utils/httpClient.js`).FormatResponse,
            services: {
                Ledgers: require(`${dist}/blnk/endpoints/ledgers.js`).Ledgers,
                LedgerBalances: require(`${dist}/blnk/endpoints/ledgerBalances.js`).LedgerBalances,
                Transactions: require(`${dist}/blnk/endpoints/transactions.js`).Transactions,
                Metadata: require(`${dist}/blnk/endpoints/metadata.js`).Metadata,
                Identity: require(`${dist}/blnk/endpoints/identity.js`).Identity,
            },
        };
    } catch (e) {
        return { error: e };
    }
}

const sdk = loadSdk();

if (sdk.error) {
    test(`${SDK}@${SDK_VERSION} is installed`, () => {
        assert.fail(
            `${SDK}@${SDK_VERSION} is not installed in tests/integration/node_modules ` +
                `(${sdk.error.code ?? sdk.error.message}). Install it with ` +
                '`npm ci --prefix tests/integration` (from the repository root) and re-run.',
        );
    });
} else {
    defineTests();
}

/** A logger for the SDK that keeps its lines for failure messages instead of printing them. */
function collectingLogger() {
    const lines = [];
    const keep = (level) => (message, ...meta) => lines.push(`${level}: ${message} ${meta.length ? JSON.stringify(meta) : ''}`);
    return { lines, logger: { info: keep('info'), error: keep('error'), debug: keep('debug') } };
}

/**
 * Removes one member matched by `re` (the bytes the proxy inserted) and the comma that joined it,
 * so what is left can be compared byte for byte with what the SDK sent.
 */
function removeInsertedMember(text, re, what) {
    const all = [...text.matchAll(new RegExp(re.source, 'g'))];
    assert.equal(all.length, 1, `exactly one inserted ${what} in ${text}`);
    const m = all[0];
    let start = m.index;
    let end = m.index + m[0].length;
    const following = /^\s*,\s*/.exec(text.slice(end));
    if (following) {
        end += following[0].length;
    } else {
        const preceding = /\s*,\s*$/.exec(text.slice(0, start));
        assert.ok(preceding, `inserted ${what} is joined by a comma in ${text}`);
        start -= preceding[0].length;
    }
    return { rest: text.slice(0, start) + text.slice(end), match: m };
}

function defineTests() {
    const { Blnk, FormatResponse, services } = sdk;
    // What the SDK itself sends as X-Blnk-Key; the proxy must drop it and send the instance's secret.
    const SDK_API_KEY = 'sdk-side-x-blnk-key-must-not-reach-core';
    let w;
    const state = { sdkKeyCalls: 0 };

    before(async () => {
        w = await setupWorld({
            secret: 'core_master_secret_for_sdk_test',
            keys: { sdk: ['proxy:read', 'proxy:write'], reader: ['proxy:read'] },
        });
    });

    after(async () => {
        await w?.close();
    });

    /**
     * An SDK client pointed at the proxy. `calls` records what the SDK handed to fetch (before the
     * wrapper touched it), to compare with what the fake Core received.
     */
    function client(key) {
        const calls = [];
        const log = collectingLogger();
        const fetchViaProxy = (url, init) => {
            calls.push({ url, method: init.method, headers: { ...init.headers }, body: init.body });
            if (key === w.keys.sdk.key) {
                state.sdkKeyCalls++;
            }
            const sep = url.includes('?') ? '&' : '?';
            const proxied = `${url}${sep}instance_id=${encodeURIComponent(w.instance.id)}`;
            return fetch(proxied, { ...init, headers: { ...init.headers, Authorization: `Bearer ${key}` } });
        };
        const blnk = new Blnk(
            SDK_API_KEY,
            { baseUrl: `${w.proxy.url}/proxy/`, logger: log.logger, timeout: 10000 },
            services,
            FormatResponse,
            fetchViaProxy,
        );
        return { blnk, calls, log };
    }

    /** One SDK call → exactly one Core request; checks what the proxy did to it on the way. */
    function forwarded(c, { method, path, query = null }) {
        assert.equal(w.core.requests.length, 1, `Core got exactly one request; SDK log: ${c.log.lines.join('\n')}`);
        assert.equal(c.calls.length, 1, 'the SDK made exactly one fetch call');
        const rec = w.core.requests[0];
        const sent = c.calls[0];
        assert.equal(sent.method, method, 'SDK method');
        assert.equal(sent.url, `${w.proxy.url}/proxy${path}${query === null ? '' : `?${query}`}`, 'SDK URL');
        assert.equal(rec.method, method, 'method at Core');
        assert.equal(rec.path, path, 'path at Core');
        assert.equal(rec.query, query, 'query at Core (instance_id removed, the rest as sent)');
        assert.equal(rec.headerCount('x-blnk-key'), 1, 'one X-Blnk-Key at Core');
        assert.equal(rec.headers['x-blnk-key'], w.secret, "X-Blnk-Key at Core is the instance's secret");
        assert.equal(rec.headerCount('authorization'), 0, 'Authorization never reaches Core');
        for (const [k, v] of rec.rawHeaders) {
            assert.ok(!v.includes(w.keys.sdk.key), `the proxy credential leaked to Core in ${k}`);
            assert.ok(!v.includes(SDK_API_KEY), `the SDK's own X-Blnk-Key leaked to Core in ${k}`);
        }
        assert.equal(rec.headers['content-type'], 'application/json', 'Content-Type as the SDK sent it');
        return { rec, sent };
    }

    /** The SDK's result is Core's answer, formatted the SDK's way. */
    function gotCoreAnswer(res, rec) {
        assert.ok(rec.response, 'the fake Core answered');
        assert.deepEqual(res, {
            status: rec.response.status,
            message: 'Success',
            data: JSON.parse(rec.response.body.toString('utf8')),
        });
    }

    function fresh() {
        w.core.reset();
        w.core.setHandler(null);
        return client(w.keys.sdk.key);
    }

    test('the installed SDK is the pinned version', () => {
        assert.equal(sdk.version, SDK_VERSION);
        assert.equal(typeof sdk.BlnkInit, 'function', 'the package entry point loads');
    });

    test('Ledgers.create', async () => {
        const c = fresh();
        const res = await c.blnk.Ledgers.create({ name: 'SDK Ledger', meta_data: { project: 'blnkproxy', n: 1.5 } });
        const { rec, sent } = forwarded(c, { method: 'POST', path: '/ledgers' });
        assert.equal(rec.body.toString('utf8'), sent.body, 'body bytes as the SDK sent them');
        gotCoreAnswer(res, rec);
        assert.equal(res.status, 201);
        assert.match(res.data.ledger_id, /^ldg_/);
        state.ledgerId = res.data.ledger_id;
    });

    test('LedgerBalances.create, twice', async () => {
        state.balances = [];
        for (const currency of ['USD', 'EUR']) {
            const c = fresh();
            const res = await c.blnk.LedgerBalances.create({
                ledger_id: state.ledgerId,
                currency,
                meta_data: { owner: `customer-${currency}` },
            });
            const { rec, sent } = forwarded(c, { method: 'POST', path: '/balances' });
            assert.equal(rec.body.toString('utf8'), sent.body);
            assert.equal(JSON.parse(sent.body).ledger_id, state.ledgerId, 'the SDK used the id Core gave it');
            gotCoreAnswer(res, rec);
            assert.match(res.data.balance_id, /^bln_/);
            state.balances.push(res.data.balance_id);
        }
        assert.notEqual(state.balances[0], state.balances[1]);
    });

    test('LedgerBalances.get keeps the SDK query and drops instance_id', async () => {
        const c = fresh();
        const res = await c.blnk.LedgerBalances.get(state.balances[0], { from_source: true });
        const { rec } = forwarded(c, { method: 'GET', path: `/balances/${state.balances[0]}`, query: 'from_source=true' });
        assert.equal(rec.body.length, 0);
        gotCoreAnswer(res, rec);
        assert.equal(res.status, 200);
    });

    test('a transaction without precision/reference gets both inserted, every other byte kept', async () => {
        // Transactions.create() itself insists on precision and reference (its validator), so an app
        // that relies on the proxy's defaults sends the body with the SDK's generic request().
        const payload = {
            amount: 750.5,
            currency: 'USD',
            source: state.balances[0],
            destination: state.balances[1],
            description: 'SDK transfer: "quoted" \u00e9\u20ac',
            allow_overdraft: true,
            // nested keys named like the defaults do not count as present (DESIGN §4)
            // and numbers whose text a parse-and-print rewrite would change (0.1 → 0.10000000000000001
            // with %.17g; 1.2345678901234567e19 does not fit an int64)
            meta_data: { reference: 'nested-value', precision: 2, ratio: 0.1, huge: 12345678901234567000 },
        };
        const refs = [];
        for (let i = 0; i < 2; i++) {
            const c = fresh();
            const res = await c.blnk.request('transactions', payload, 'POST');
            const { rec, sent } = forwarded(c, { method: 'POST', path: '/transactions' });
            const atCore = rec.body.toString('utf8');
            const p = removeInsertedMember(atCore, /"precision"\s*:\s*100(?![0-9.eE])/, '"precision":100');
            const r = removeInsertedMember(p.rest, /"reference"\s*:\s*"(ref_[^"\\]+)"/, '"reference":"ref_…"');
            assert.equal(r.rest, sent.body, 'all other bytes exactly as the SDK sent them');
            const ref = r.match[1];
            assert.match(ref, /^ref_[0-9A-Za-z_-]{16,}$/);
            assert.deepEqual(JSON.parse(atCore), { ...JSON.parse(sent.body), precision: 100, reference: ref });
            gotCoreAnswer(res, rec);
            assert.equal(res.status, 201);
            assert.equal(res.data.reference, ref, 'the app learns the generated reference from Core\'s answer');
            assert.equal(res.data.precision, 100);
            assert.match(res.data.transaction_id, /^txn_/);
            refs.push(ref);
            state.transactionId = res.data.transaction_id;
        }
        assert.notEqual(refs[0], refs[1], 'each transaction gets its own reference');
    });

    test('Transactions.create with precision and reference: body forwarded byte for byte', async () => {
        const c = fresh();
        const res = await c.blnk.Transactions.create({
            amount: 12.34,
            precision: 1000,
            reference: 'order-42-payment',
            currency: 'USD',
            source: state.balances[0],
            destination: state.balances[1],
            description: 'SDK create',
            effective_date: new Date('2024-05-06T07:08:09Z'),
        });
        const { rec, sent } = forwarded(c, { method: 'POST', path: '/transactions' });
        assert.match(sent.body, /"effective_date":"2024-05-06T07:08:09Z"/, 'the SDK serialised the date itself');
        assert.equal(rec.body.toString('utf8'), sent.body);
        gotCoreAnswer(res, rec);
        assert.equal(res.data.reference, 'order-42-payment');
        assert.equal(res.data.precision, 1000);
    });

    test('Metadata.update posts to /:id/metadata', async () => {
        const c = fresh();
        const id = state.transactionId ?? state.ledgerId;
        const res = await c.blnk.Metadata.update(id, { meta_data: { reviewed: true, by: 'ops' } });
        const { rec, sent } = forwarded(c, { method: 'POST', path: `/${id}/metadata` });
        assert.equal(rec.body.toString('utf8'), sent.body);
        assert.equal(sent.body, '{"meta_data":{"reviewed":true,"by":"ops"}}');
        gotCoreAnswer(res, rec);
    });

    test('Identity.create', async () => {
        const c = fresh();
        const res = await c.blnk.Identity.create({
            identity_type: 'individual',
            first_name: 'Ada',
            last_name: 'Lovelace',
            email_address: 'ada@example.com',
            phone_number: '+441234567890',
            gender: 'female',
            dob: new Date('1815-12-10T00:00:00Z'),
            nationality: 'GB',
            street: '12 St James Sq',
            country: 'GB',
            meta_data: { tier: 'gold' },
        });
        const { rec, sent } = forwarded(c, { method: 'POST', path: '/identities' });
        assert.equal(rec.body.toString('utf8'), sent.body);
        gotCoreAnswer(res, rec);
        assert.equal(res.status, 201);
        assert.match(res.data.identity_id, /^idt_/);
    });

    test("Core's error answers reach the SDK as Core sent them", async () => {
        const c = fresh();
        const coreError = {
            error: 'balance not found',
            error_detail: { code: 'BAL_NOT_FOUND', message: 'balance not found' },
        };
        w.core.setHandler({ status: 404, headers: { 'Content-Type': 'application/json' }, body: coreError });
        const res = await c.blnk.LedgerBalances.get('bln_does-not-exist');
        forwarded(c, { method: 'GET', path: '/balances/bln_does-not-exist' });
        assert.deepEqual(res, {
            status: 404,
            message: 'balance not found',
            data: coreError,
            error: { code: 'BAL_NOT_FOUND', message: 'balance not found', details: undefined },
        });
    });

    test("the proxy's own errors parse as SDK errors, and Core sees nothing", async () => {
        w.core.reset();
        w.core.setHandler(null);
        const bad = client(`blnk_${'0'.repeat(64)}`);
        const r401 = await bad.blnk.Ledgers.create({ name: 'nope' });
        assert.equal(r401.status, 401, JSON.stringify(r401));
        assert.equal(r401.error?.code, 'AUTH_INVALID_API_KEY', JSON.stringify(r401));

        const reader = client(w.keys.reader.key);
        const r403 = await reader.blnk.Ledgers.create({ name: 'nope' });
        assert.equal(r403.status, 403, JSON.stringify(r403));
        assert.equal(r403.error?.code, 'AUTH_INSUFFICIENT_PERMISSIONS', JSON.stringify(r403));
        assert.equal(typeof r403.message, 'string');
        assert.ok(r403.message.length > 0);

        assert.equal(w.core.requests.length, 0, 'refused requests never reach Core');
    });

    test('the access log attributes the SDK calls to the key and the instance', async () => {
        // One more call, then find its access line by the request id the proxy answered with.
        w.core.reset();
        w.core.setHandler(null);
        const res = await req(w.port, 'GET', w.p('/ledgers'), { headers: { authorization: `Bearer ${w.keys.sdk.key}` } });
        assert.equal(res.status, 200, res.text);
        const rid = res.headers['x-request-id'];
        assert.ok(rid, 'X-Request-Id on the response');
        const line = await w.proxy.waitForLog((o) => o.msg === 'access' && o.request_id === rid);
        assert.equal(line.credential, w.keys.sdk.id);
        assert.equal(line.instance, w.instance.id);
        const sdkLines = w.proxy.accessLogs().filter((o) => o.credential === w.keys.sdk.id);
        assert.ok(state.sdkKeyCalls > 0, `the SDK tests above ran (${state.sdkKeyCalls} calls)`);
        assert.equal(sdkLines.length, state.sdkKeyCalls + 1, 'one access line per SDK call, plus this one');
        for (const l of w.proxy.logs()) {
            assert.ok(!l.includes(w.keys.sdk.key), 'the API key is never logged');
            assert.ok(!l.includes(w.secret), 'the Core secret is never logged');
        }
    });
}

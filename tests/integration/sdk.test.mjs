// The official Blnk TypeScript SDK (@blnkfinance/blnk-typescript 1.3.0, from npm) works through
// blnkproxy exactly as its users set it up (issue 8 item 2, DESIGN §2):
//
//     const blnk = BlnkInit(process.env.BLNKPROXY_KEY, { baseUrl: 'http://host:8080/proxy/' });
//
// The SDK sends that key in X-Blnk-Key and cannot add instance_id to its URLs. The proxy takes a
// value of X-Blnk-Key that has the exact format of one of its credentials as the credential
// (when there is no Authorization header), never forwards it, and uses the credential's only
// instance when instance_id is absent. Only BlnkInit and the SDK's public calls are used here:
// no deep imports, no fetch of our own. Each case states what the SDK sent, what the fake Core
// received (DESIGN §2: the instance's Core secret as X-Blnk-Key, never the proxy credential) and
// what the SDK got back.
//
// The SDK is a dev dependency of tests/integration (package.json / package-lock.json); CI installs
// it with `npm ci --prefix tests/integration`. Without it this file fails, on purpose.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';

import { startFakeCore } from './lib/fake_core.mjs';
import { token } from './lib/oauth_flow.mjs';
import { cli, makeInstance, makeKey, randomHex, startProxy, tmpDb } from './lib/harness.mjs';

const SDK = '@blnkfinance/blnk-typescript';
const SDK_VERSION = '1.3.0';
const require = createRequire(import.meta.url);

function loadSdk() {
    try {
        return { version: require(`${SDK}/package.json`).version, BlnkInit: require(SDK).BlnkInit };
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

/** The SDK's logger option, keeping its lines for failure messages instead of printing them. */
function collectingLogger() {
    const lines = [];
    const keep = (level) => (message, ...meta) => lines.push(`${level}: ${message} ${meta.length ? JSON.stringify(meta) : ''}`);
    return { lines, logger: { info: keep('info'), error: keep('error'), debug: keep('debug'), warn: keep('warn') } };
}

function defineTests() {
    const { BlnkInit } = sdk;
    const w = {};
    // Every credential and secret the tests used, for the log check at the end.
    const secrets = [];

    before(async () => {
        w.core = await startFakeCore();
        // Core's own health answer (the SDK documents data.status === 'UP').
        w.core.setHandler((rec) => (rec.path === '/health' ? { status: 200, body: { status: 'UP' } } : undefined));
        w.db = tmpDb();
        w.secretA = `core_master_a_${randomHex(12)}`;
        w.secretB = `core_master_b_${randomHex(12)}`;
        w.A = makeInstance(w.db, w.core.url, { secret: w.secretA, name: 'a' });
        w.B = makeInstance(w.db, w.core.url, { secret: w.secretB, name: 'b' });
        w.keys = {
            single: makeKey(w.db, { scopes: ['proxy:read', 'proxy:write'], instances: [w.A.id], name: 'sdk-app' }),
            other: makeKey(w.db, { scopes: ['proxy:read', 'proxy:write'], instances: [w.A.id], name: 'other-app' }),
            onlyB: makeKey(w.db, { scopes: ['*'], instances: [w.B.id], name: 'only-b' }),
            reader: makeKey(w.db, { scopes: ['proxy:read'], instances: [w.A.id], name: 'reader' }),
            two: makeKey(w.db, { scopes: ['*'], instances: [w.A.id, w.B.id], name: 'two-instances' }),
            every: makeKey(w.db, { scopes: ['*'], name: 'every-instance' }),
        };
        const c = cli(['client', 'create', '--name', 'sdk-oauth-app', '--scopes', 'proxy:read,proxy:write', '--instances', w.A.id], { db: w.db });
        assert.equal(c.code, 0, c.stderr);
        w.client = { id: c.json.client_id, secret: c.json.client_secret };
        secrets.push(w.secretA, w.secretB, w.client.secret, ...Object.values(w.keys).map((k) => k.key));
        w.proxy = await startProxy({ db: w.db });
    });

    after(async () => {
        await w.proxy?.stop();
        await w.core?.close();
    });

    /** An SDK client set up the way its README says, pointed at the proxy. */
    function client(key) {
        const log = collectingLogger();
        const blnk = BlnkInit(key, { baseUrl: `${w.proxy.url}/proxy/`, logger: log.logger });
        return { blnk, log };
    }

    /**
     * One SDK call reached Core exactly once, as DESIGN §2 says: method, path and query as the SDK
     * built them (no instance_id was ever there), the instance's Core secret as the only
     * X-Blnk-Key, no Authorization, and no proxy credential in any header.
     */
    function atCore(c, { method, path, query = null, secret = w.secretA }) {
        assert.equal(w.core.requests.length, 1, `Core got exactly one request; SDK log:\n${c.log.lines.join('\n')}`);
        const rec = w.core.requests[0];
        assert.equal(rec.method, method, 'method at Core');
        assert.equal(rec.path, path, 'path at Core');
        assert.equal(rec.query, query, 'query at Core, as the SDK sent it');
        assert.equal(rec.headerCount('x-blnk-key'), 1, 'one X-Blnk-Key at Core');
        assert.equal(rec.headers['x-blnk-key'], secret, "X-Blnk-Key at Core is the instance's Core secret");
        assert.equal(rec.headerCount('authorization'), 0, 'Authorization never reaches Core');
        assert.equal(rec.headers['content-type'], 'application/json', 'Content-Type as the SDK sent it');
        for (const [k, v] of rec.rawHeaders) {
            for (const s of secrets.filter((x) => x !== secret)) {
                assert.ok(!v.includes(s), `a credential or another instance's secret reached Core in ${k}`);
            }
        }
        return rec;
    }

    /** The body at Core is, byte for byte, the JSON the SDK serialised from `sent`. */
    function sameBody(rec, sent) {
        assert.equal(rec.body.toString('utf8'), JSON.stringify(sent), 'body bytes as the SDK sent them');
    }

    /** The SDK's result is Core's answer, in the SDK's shape. */
    function gotCoreAnswer(res, rec) {
        assert.ok(rec.response, 'the fake Core answered');
        assert.deepEqual(res, {
            status: rec.response.status,
            message: 'Success',
            data: JSON.parse(rec.response.body.toString('utf8')),
        });
    }

    /** The SDK's result is the proxy's own DESIGN §2 error, and Core saw nothing. */
    function gotProxyError(c, res, status, code) {
        assert.equal(w.core.requests.length, 0, `Core never sees a refused request; SDK log:\n${c.log.lines.join('\n')}`);
        assert.equal(res.status, status, JSON.stringify(res));
        assert.equal(res.error?.code, code, JSON.stringify(res));
        assert.equal(typeof res.message, 'string');
        assert.equal(res.message, res.error.message, 'the SDK surfaces error_detail.message');
        assert.deepEqual(res.data, { error: res.message, error_detail: { code, message: res.message } });
    }

    function fresh() {
        w.core.reset();
    }

    test('the installed SDK is the pinned version', () => {
        assert.equal(sdk.version, SDK_VERSION);
        assert.equal(typeof BlnkInit, 'function', 'the package entry point loads');
    });

    describe('an API key restricted to one instance, in X-Blnk-Key, no instance_id', () => {
        const state = {};

        test('System.health', async () => {
            fresh();
            const c = client(w.keys.single.key);
            const res = await c.blnk.System.health();
            const rec = atCore(c, { method: 'GET', path: '/health' });
            assert.equal(rec.body.length, 0);
            assert.deepEqual(res, { status: 200, message: 'Success', data: { status: 'UP' } });
        });

        test('Ledgers.create and Ledgers.get', async () => {
            fresh();
            const c = client(w.keys.single.key);
            const sent = { name: 'SDK Ledger', meta_data: { project: 'blnkproxy', n: 1.5 } };
            const res = await c.blnk.Ledgers.create(sent);
            const rec = atCore(c, { method: 'POST', path: '/ledgers' });
            sameBody(rec, sent);
            gotCoreAnswer(res, rec);
            assert.equal(res.status, 201);
            assert.match(res.data.ledger_id, /^ldg_/);
            state.ledgerId = res.data.ledger_id;

            fresh();
            const got = await c.blnk.Ledgers.get(state.ledgerId);
            gotCoreAnswer(got, atCore(c, { method: 'GET', path: `/ledgers/${state.ledgerId}` }));
        });

        test('LedgerBalances.create, twice, and LedgerBalances.get with its own query', async () => {
            const c = client(w.keys.single.key);
            state.balances = [];
            for (const currency of ['USD', 'EUR']) {
                fresh();
                const sent = { ledger_id: state.ledgerId, currency, meta_data: { owner: `customer-${currency}` } };
                const res = await c.blnk.LedgerBalances.create(sent);
                const rec = atCore(c, { method: 'POST', path: '/balances' });
                sameBody(rec, sent);
                gotCoreAnswer(res, rec);
                assert.match(res.data.balance_id, /^bln_/);
                state.balances.push(res.data.balance_id);
            }
            fresh();
            const res = await c.blnk.LedgerBalances.get(state.balances[0], { from_source: true });
            const rec = atCore(c, { method: 'GET', path: `/balances/${state.balances[0]}`, query: 'from_source=true' });
            gotCoreAnswer(res, rec);
        });

        test('Transactions.create (the SDK insists on precision and reference) and Transactions.get', async () => {
            fresh();
            const c = client(w.keys.single.key);
            const sent = {
                amount: 12.34,
                precision: 1000,
                reference: `order-${randomHex(4)}`,
                currency: 'USD',
                source: state.balances[0],
                destination: state.balances[1],
                description: 'SDK transfer: "quoted" \u00e9\u20ac',
                effective_date: '2024-05-06T07:08:09Z',
                meta_data: { ratio: 0.1 },
            };
            const res = await c.blnk.Transactions.create(sent);
            const rec = atCore(c, { method: 'POST', path: '/transactions' });
            sameBody(rec, sent); // nothing inserted: both defaults were present
            gotCoreAnswer(res, rec);
            assert.equal(res.status, 201);
            assert.equal(res.data.reference, sent.reference);
            assert.equal(res.data.precision, 1000);
            state.transactionId = res.data.transaction_id;

            fresh();
            const got = await c.blnk.Transactions.get(state.transactionId);
            gotCoreAnswer(got, atCore(c, { method: 'GET', path: `/transactions/${state.transactionId}` }));
        });

        test('Identity.create, Identity.get, Identity.list', async () => {
            fresh();
            const c = client(w.keys.single.key);
            const sent = {
                identity_type: 'individual',
                first_name: 'Ada',
                last_name: 'Lovelace',
                email_address: 'ada@example.com',
                phone_number: '+441234567890',
                gender: 'female',
                dob: '1815-12-10T00:00:00Z',
                nationality: 'GB',
                street: '12 St James Sq',
                country: 'GB',
                meta_data: { tier: 'gold' },
            };
            const res = await c.blnk.Identity.create(sent);
            const rec = atCore(c, { method: 'POST', path: '/identities' });
            sameBody(rec, sent);
            gotCoreAnswer(res, rec);
            assert.match(res.data.identity_id, /^idt_/);

            fresh();
            gotCoreAnswer(await c.blnk.Identity.get(res.data.identity_id),
                atCore(c, { method: 'GET', path: `/identities/${res.data.identity_id}` }));
            fresh();
            gotCoreAnswer(await c.blnk.Identity.list(), atCore(c, { method: 'GET', path: '/identities' }));
        });

        test('Metadata.update posts to /:id/metadata', async () => {
            fresh();
            const c = client(w.keys.single.key);
            const sent = { meta_data: { reviewed: true, by: 'ops' } };
            const res = await c.blnk.Metadata.update(state.transactionId, sent);
            const rec = atCore(c, { method: 'POST', path: `/${state.transactionId}/metadata` });
            sameBody(rec, sent);
            gotCoreAnswer(res, rec);
        });

        test("Core's error answers reach the SDK as Core sent them", async () => {
            fresh();
            const c = client(w.keys.single.key);
            const coreError = { error: 'balance not found', error_detail: { code: 'BAL_NOT_FOUND', message: 'balance not found' } };
            w.core.setHandler({ status: 404, headers: { 'Content-Type': 'application/json' }, body: coreError });
            try {
                const res = await c.blnk.LedgerBalances.get('bln_does-not-exist');
                atCore(c, { method: 'GET', path: '/balances/bln_does-not-exist' });
                assert.deepEqual(res, {
                    status: 404,
                    message: 'balance not found',
                    data: coreError,
                    error: { code: 'BAL_NOT_FOUND', message: 'balance not found', details: undefined },
                });
            } finally {
                w.core.setHandler((rec) => (rec.path === '/health' ? { status: 200, body: { status: 'UP' } } : undefined));
            }
        });

        test('the implied instance is the one the key is restricted to (another key, instance B)', async () => {
            fresh();
            const c = client(w.keys.onlyB.key);
            const res = await c.blnk.Ledgers.get('ldg_1');
            gotCoreAnswer(res, atCore(c, { method: 'GET', path: '/ledgers/ldg_1', secret: w.secretB }));
        });

        test('a key without proxy:write is refused with 403, and Core sees nothing', async () => {
            fresh();
            const c = client(w.keys.reader.key);
            const res = await c.blnk.Ledgers.create({ name: 'nope' });
            gotProxyError(c, res, 403, 'AUTH_INSUFFICIENT_PERMISSIONS');
        });
    });

    test('an OAuth access token in X-Blnk-Key is a credential too', async () => {
        const t = await token(w.proxy.port, w.client, { grant_type: 'client_credentials', scope: 'proxy:read proxy:write' });
        assert.equal(t.status, 200, JSON.stringify(t.json));
        assert.match(t.json.access_token, /^blnk_at_[0-9a-f]{64}$/);
        secrets.push(t.json.access_token);
        fresh();
        const c = client(t.json.access_token);
        const sent = { name: 'Ledger made with an OAuth token' };
        const res = await c.blnk.Ledgers.create(sent);
        const rec = atCore(c, { method: 'POST', path: '/ledgers' });
        sameBody(rec, sent);
        gotCoreAnswer(res, rec);
        const line = await w.proxy.waitForLog((o) => o.msg === 'access' && o.request_id === rec.headers['x-request-id']);
        assert.match(line.credential, /^token_/, 'the token authorised the request');
        assert.equal(line.instance, w.A.id, "the client's only instance was used");
    });

    describe('both headers: Authorization wins, and the X-Blnk-Key value never reaches Core', () => {
        // The SDK's public request() takes extra headers; a gateway in front of an app could add
        // one too. Either way the SDK's own X-Blnk-Key travels with it.
        test('a valid Authorization: the request is that credential\'s', async () => {
            fresh();
            const c = client(w.keys.single.key);
            const res = await c.blnk.request('ledgers', { name: 'two headers' }, 'POST', {
                Authorization: `Bearer ${w.keys.other.key}`,
            });
            const rec = atCore(c, { method: 'POST', path: '/ledgers' });
            gotCoreAnswer(res, rec);
            const line = await w.proxy.waitForLog((o) => o.msg === 'access' && o.request_id === rec.headers['x-request-id']);
            assert.equal(line.credential, w.keys.other.id, 'attributed to the Authorization credential');
        });

        test('an invalid Authorization is refused even though X-Blnk-Key holds a valid key', async () => {
            fresh();
            const c = client(w.keys.single.key);
            const res = await c.blnk.request('ledgers/ldg_1', undefined, 'GET', { Authorization: `Bearer blnk_${'0'.repeat(64)}` });
            gotProxyError(c, res, 401, 'AUTH_INVALID_API_KEY');
        });
    });

    describe('no instance is implied', () => {
        for (const [name, why] of [
            ['two', /instance_id query parameter is required.*more than one instance/],
            ['every', /instance_id query parameter is required.*every instance/],
        ]) {
            test(`a key for ${name === 'two' ? 'two instances' : 'every instance'}: 400 GEN_MISSING_PARAMETER says why`, async () => {
                fresh();
                const c = client(w.keys[name].key);
                const res = await c.blnk.Ledgers.get('ldg_1');
                gotProxyError(c, res, 400, 'GEN_MISSING_PARAMETER');
                assert.match(res.message, why);
            });
        }
    });

    describe('an X-Blnk-Key that is not a blnkproxy credential is stripped, not used', () => {
        for (const [what, value] of [
            ["a Core secret (the SDK's usual key)", () => w.secretA],
            ['a refresh token', () => `blnk_rt_${randomHex(32)}`],
            ['an API key with upper-case hex', () => w.keys.single.key.toUpperCase().replace('BLNK_', 'blnk_')],
            ['an API key one digit short', () => w.keys.single.key.slice(0, -1)],
        ]) {
            test(`${what}: 401 AUTH_MISSING_API_KEY`, async () => {
                fresh();
                const c = client(value());
                const res = await c.blnk.Ledgers.get('ldg_1');
                gotProxyError(c, res, 401, 'AUTH_MISSING_API_KEY');
                assert.match(res.message, /X-Blnk-Key/, 'the message says the header was not taken as a credential');
            });
        }
    });

    test('the access log attributes every SDK call; no key, token or secret is logged', async () => {
        const lines = w.proxy.accessLogs();
        const mine = lines.filter((o) => o.credential === w.keys.single.id);
        assert.ok(mine.length >= 10, `the SDK calls above were logged (${mine.length})`);
        for (const l of mine) {
            assert.equal(l.instance, w.A.id);
        }
        const all = w.proxy.logs().join('\n');
        for (const s of secrets) {
            assert.ok(!all.includes(s), `"${s.slice(0, 10)}…" was logged`);
        }
    });
}

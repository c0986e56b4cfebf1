// Issue 8 item 7: `audit list --category` takes only real categories (those of the route table,
// "custom", "admin", or one an operator's config route already gave records) and says which they
// are; its help lists them from the route table, with how refusals are recorded.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import { cli, makeInstance, sql, tmpDb } from './lib/harness.mjs';

function auditList(db, args = []) {
    const r = cli(['audit', 'list', '--limit', '100000', ...args], { db });
    assert.equal(r.code, 0, `audit list ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l)).reverse();
}

describe('audit list --category', () => {
    const db = tmpDb();
    // The categories of the built-in route table, in table order, then the two the proxy and the
    // CLI add themselves.
    const REAL = ['ledgers', 'balances', 'transactions', 'identities', 'metadata', 'reconciliation', 'health', 'search', 'custom', 'admin'];

    before(() => {
        makeInstance(db, 'http://127.0.0.1:9', { name: 'x' });
    });

    test('every real category is accepted', () => {
        for (const c of REAL) {
            const r = cli(['audit', 'list', '--category', c], { db });
            assert.equal(r.code, 0, `${c}: ${r.stderr}`);
        }
        assert.equal(auditList(db, ['--category', 'admin']).length, 1);
    });

    test('an unknown category exits 2, names the real ones and suggests the nearest', () => {
        let r = cli(['audit', 'list', '--category', 'ledgrs'], { db, json: false });
        assert.equal(r.code, 2);
        assert.equal(r.stdout, '');
        assert.match(r.stderr, /unknown category "ledgrs" \(did you mean "ledgers"\?\)/);
        for (const c of REAL) {
            assert.ok(r.stderr.includes(c), `the error lists ${c}: ${r.stderr}`);
        }
        for (const bogus of ['hooks', 'api_keys', 'Ledgers', 'oauth']) {
            r = cli(['audit', 'list', '--category', bogus], { db });
            assert.equal(r.code, 2, `${bogus} is not a category: ${r.stderr}`);
            assert.match(r.stderr, /unknown category/);
        }
    });

    test('a category an operator gave a config route is accepted once it has records', () => {
        let r = cli(['audit', 'list', '--category', 'exports'], { db });
        assert.equal(r.code, 2, r.stderr);
        sql(db, "INSERT INTO audit_log (time_us, actor_type, category, action, status) VALUES (1, 'api_key', 'exports', 'Ledger exported', 200)");
        r = cli(['audit', 'list', '--category', 'exports'], { db });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.split('\n').filter(Boolean).length, 1);
    });

    test('help lists the real categories and none that do not exist', () => {
        for (const args of [['help', 'audit'], ['audit', '--help'], ['audit', 'list', '--help']]) {
            const r = cli(args, { db, json: false });
            assert.equal(r.code, 0, r.stderr);
            // "Categories: a, b,\n  c, d." — the list runs to the first full stop.
            const line = r.stdout.match(/Categories: ([^.]*)\./);
            assert.ok(line, `a Categories: list in ${args.join(' ')}:\n${r.stdout}`);
            const listed = line[1].split(/[,\s]+/).filter(Boolean);
            assert.deepEqual([...listed].sort(), [...REAL].sort(), `the listed categories: ${line[0]}`);
            assert.match(r.stdout, /refused: /, 'the help says how refusals are recorded');
        }
    });
});

// Store fault injection (issue 11, item 10): I/O errors. tests/tools/eio_preload.c, preloaded into
// serve, fails writes and syncs with EIO on the files a rule names while the rule's flag file
// exists. (A full disk: disk_full.test.mjs; a lock held by another process: audit_modes and
// http_async.) Checked, with a SQLite store:
//   - EIO on the database alone: records go to the spool, every request is answered as usual,
//     and once the disk behaves the spool is imported: every record is there;
//   - EIO on the database and the spool: the audit log stalls, reads are answered, writes get
//     503 PROXY_AUDIT_UNAVAILABLE before Core sees them; once the errors stop, writes are
//     served again and every record of what was answered is stored.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { startFakeCore } from './lib/fake_core.mjs';
import { bearer, cli, makeInstance, makeKey, req, startProxy, tmpDir, waitFor } from './lib/harness.mjs';

const PRELOAD = process.env.BP_EIO_PRELOAD;
const w = {};

function auditIds(db) {
    const r = cli(['audit', 'list', '--limit', '100000'], { db });
    assert.equal(r.code, 0, r.stderr);
    return new Set(r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l).request_id).filter(Boolean));
}

before(async () => {
    assert.ok(PRELOAD && fs.existsSync(PRELOAD), `BP_EIO_PRELOAD (tests/tools/eio_preload.c, built by ctest's build): ${PRELOAD}`);
    w.core = await startFakeCore();
});

after(async () => {
    await w.core?.close();
});

async function world() {
    const dir = tmpDir();
    const dbDir = path.join(dir, 'store');
    const spoolDir = path.join(dir, 'spool');
    fs.mkdirSync(dbDir);
    fs.mkdirSync(spoolDir);
    const db = path.join(dbDir, 'blnkproxy.db');
    const instance = makeInstance(db, w.core.url, { secret: 'eio_secret' });
    const key = makeKey(db, { scopes: ['*'] }).key;
    const flags = { db: path.join(dir, 'fail-db'), spool: path.join(dir, 'fail-spool') };
    const asan = process.env.ASAN_OPTIONS ? `${process.env.ASAN_OPTIONS}:` : '';
    const proxy = await startProxy({
        db,
        args: ['--audit-spool', path.join(spoolDir, 'audit.spool')],
        env: {
            LD_PRELOAD: PRELOAD,
            BP_EIO_RULES: `${flags.db}=${dbDir}/;${flags.spool}=${spoolDir}/`,
            // The preloaded library comes before the sanitizer runtime in an ASan build.
            ASAN_OPTIONS: `${asan}verify_asan_link_order=0`,
        },
    });
    const p = `/proxy/ledgers?instance_id=${instance.id}`;
    return {
        db,
        proxy,
        flags,
        on: (f) => fs.writeFileSync(f, ''),
        off: (f) => fs.rmSync(f, { force: true }),
        read: () => req(proxy.port, 'GET', p, { headers: bearer(key), agent: false }),
        write: () =>
            req(proxy.port, 'POST', p, { headers: { ...bearer(key), 'content-type': 'application/json' }, body: '{"name":"io"}', agent: false }),
    };
}

test('EIO on the database: records are spooled, every request answered, and imported when the disk behaves', async () => {
    const x = await world();
    try {
        const ids = [];
        assert.equal((await x.write()).status, 201);
        x.on(x.flags.db);
        for (let i = 0; i < 3; i++) {
            const wr = await x.write();
            assert.equal(wr.status, 201, wr.text);
            ids.push(wr.headers['x-request-id']);
            const rd = await x.read();
            assert.equal(rd.status, 200);
            ids.push(rd.headers['x-request-id']);
        }
        await x.proxy.waitForLog((o) => /store failed, records go to the spool/.test(o.msg), 5000);
        x.off(x.flags.db);
        await x.proxy.waitForLog((o) => o.msg === 'audit: spooled records imported', 10000);
        const stored = auditIds(x.db);
        assert.deepEqual(ids.filter((id) => !stored.has(id)), [], 'every record stored');
        assert.equal((await x.write()).status, 201);
    } finally {
        x.off(x.flags.db);
        await x.proxy.stop();
    }
});

test('EIO on the database and the spool: reads answered, writes 503 before Core, all recovers with nothing lost', async () => {
    const x = await world();
    try {
        const ids = [];
        x.on(x.flags.db);
        x.on(x.flags.spool);
        const first = await x.read();
        assert.equal(first.status, 200);
        ids.push(first.headers['x-request-id']);
        await x.proxy.waitForLog((o) => o.level === 'error' && /neither the store nor the spool/.test(o.msg), 10000);
        for (let i = 0; i < 3; i++) {
            const rd = await x.read();
            assert.equal(rd.status, 200);
            ids.push(rd.headers['x-request-id']);
        }
        const seen = w.core.requests.length;
        const refused = await x.write();
        assert.equal(refused.status, 503);
        assert.equal(refused.json.error_detail.code, 'PROXY_AUDIT_UNAVAILABLE');
        assert.equal(w.core.requests.length, seen, 'Core saw no write');
        ids.push(refused.headers['x-request-id']);

        x.off(x.flags.spool);
        x.off(x.flags.db);
        await x.proxy.waitForLog((o) => /takes records again/.test(o.msg), 10000);
        assert.equal((await x.write()).status, 201);
        await waitFor(() => ids.every((id) => auditIds(x.db).has(id)), { timeoutMs: 10000, what: 'every record stored' });
    } finally {
        x.off(x.flags.db);
        x.off(x.flags.spool);
        await x.proxy.stop();
    }
});

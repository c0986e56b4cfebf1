// A full disk (issue 11, item 1): the store (SQLite) and the audit spool live on a 32 MiB tmpfs,
// mounted in a mount namespace of the server's own (unshare; the CLI and the filler join it with
// nsenter), which a filler then fills. Defined behaviour, checked here:
//   - reads and refusals keep being answered (their records wait in memory);
//   - writes (audited sync) answer 503 PROXY_AUDIT_UNAVAILABLE and never reach Core;
//   - the CLI can still revoke a key: it uses the 8 MiB that serve keeps free in <db>.reserve,
//     and says so; the revocation applies (401) at once;
//   - when space returns, everything recovers and nothing is lost: the records of the requests
//     answered meanwhile are stored, writes are served again, and the reserve is made again.
// Real root is needed to mount (CI runs as root); elsewhere a user namespace gives it. In a chroot
// (the fresh-Debian check) "/" is no mount point, so the namespace cannot be made private: there
// the tmpfs is mounted with the propagation unchanged, so the host sees it too, and the test
// unmounts it itself when it ends.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { startFakeCore } from './lib/fake_core.mjs';
import { BIN, bearer, cli, makeInstance, makeKey, req, sleep, startProxy, tmpDir, waitFor } from './lib/harness.mjs';

const ROOT = process.getuid() === 0;
// Whether a mount namespace can be made private here (not in a chroot).
const PRIVATE = spawnSync('unshare', [...(ROOT ? ['-m'] : ['-Urm']), '--propagation', 'private', 'true']).status === 0;
const w = {};

/** Runs argv inside the server's mount namespace. */
function inside(argv, { timeoutMs = 20000 } = {}) {
    // -r: the server's root directory too (a chroot's, in the fresh-Debian check).
    const ns = ROOT ? ['-t', String(w.proxy.child.pid), '-m', '-r'] : ['-t', String(w.proxy.child.pid), '-U', '-m', '-r', '--preserve-credentials'];
    const r = spawnSync('nsenter', [...ns, '--', ...argv], { encoding: 'utf8', timeout: timeoutMs });
    if (r.error) {
        throw r.error;
    }
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const df = () => Number(inside(['df', '--output=avail', '-B1', w.mnt]).stdout.trim().split('\n')[1]);

function auditIds() {
    const r = inside([BIN, 'audit', 'list', '--db', w.db, '--json', '--limit', '100000']);
    assert.equal(r.code, 0, r.stderr);
    return new Set(r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l).request_id).filter(Boolean));
}

before(async () => {
    w.core = await startFakeCore();
    // Made outside, copied into the tmpfs by the wrapper before serve starts.
    const src = tmpDir();
    const seed = path.join(src, 'seed.db');
    w.instance = makeInstance(seed, w.core.url, { secret: 'disk_full_secret' });
    w.writer = makeKey(seed, { scopes: ['*'], name: 'writer' });
    w.victim = makeKey(seed, { scopes: ['*'], name: 'leaked' });
    w.mnt = path.join(tmpDir(), 'small');
    fs.mkdirSync(w.mnt);
    w.db = path.join(w.mnt, 'blnkproxy.db');
    const script = `mount -t tmpfs -o size=32m,mode=0700 tmpfs "$1" && cp "$2" "$3" && shift 3 && exec "$@"`;
    w.proxy = await startProxy({
        db: w.db,
        args: ['--audit-refusal-window', '1s'],
        wrap: (bin, argv) => [
            'unshare',
            [...(ROOT ? ['-m'] : ['-Urm']), '--propagation', PRIVATE ? 'private' : 'unchanged', '--', 'sh', '-c', script, 'sh',
                w.mnt, seed, w.db, bin, ...argv],
        ],
    });
    w.p = (corePath) => `/proxy${corePath}?instance_id=${w.instance.id}`;
});

after(async () => {
    await w.proxy?.stop();
    await w.core?.close();
    if (!PRIVATE && w.mnt) {
        // The mount reached this namespace (see above): it goes with the test.
        spawnSync('umount', ['-l', w.mnt]);
    }
});

const read = (k = w.writer.key) => req(w.proxy.port, 'GET', w.p('/ledgers'), { headers: bearer(k), agent: false });
const write = (k = w.writer.key) =>
    req(w.proxy.port, 'POST', w.p('/ledgers'), {
        headers: { ...bearer(k), 'content-type': 'application/json' },
        body: '{"name":"disk"}',
        agent: false,
    });

test('a full disk: reads and refusals answered, writes 503 before Core, the CLI revokes, and all recovers with nothing lost', async () => {
    // serve keeps 8 MiB free for the CLI.
    const reserve = `${w.db}.reserve`;
    assert.equal(inside(['stat', '-c', '%s', reserve]).stdout.trim(), String(8 * 1024 * 1024));
    assert.equal((await write()).status, 201);

    // Fill the disk.
    inside(['sh', '-c', `dd if=/dev/zero of="${w.mnt}/filler" bs=64k 2>/dev/null; true`]);
    assert.ok(df() < 64 * 1024, `free after filling: ${df()}`);

    // A read's record cannot be stored: the audit log stalls (said once, as an error).
    const during = [];
    const r1 = await read();
    assert.equal(r1.status, 200);
    during.push(r1.headers['x-request-id']);
    await w.proxy.waitForLog((o) => o.level === 'error' && /neither the store nor the spool/.test(o.msg), 10000);

    // Reads and refusals are still answered.
    for (let i = 0; i < 5; i++) {
        const r = await read();
        assert.equal(r.status, 200);
        during.push(r.headers['x-request-id']);
    }
    assert.equal((await req(w.proxy.port, 'GET', w.p('/ledgers'), { agent: false })).status, 401);
    // Writes are refused before Core sees them.
    const coreBefore = w.core.requests.length;
    const refused = await write();
    assert.equal(refused.status, 503);
    assert.equal(refused.json.error_detail.code, 'PROXY_AUDIT_UNAVAILABLE');
    assert.equal(refused.headers['retry-after'], '1');
    assert.equal(w.core.requests.length, coreBefore, 'Core saw no write');

    // The CLI revokes a leaked key: it takes the reserve and says so.
    const rv = inside([BIN, 'key', 'revoke', w.victim.id, '--db', w.db]);
    assert.equal(rv.code, 0, rv.stderr);
    assert.match(rv.stderr, /is full: using the 8388608 bytes kept free for this/);
    assert.equal(inside(['test', '-e', reserve]).code, 1, 'the reserve was used');
    await waitFor(async () => (await read(w.victim.key)).status === 401, { timeoutMs: 5000, what: 'the revocation applied' });
    // The reserve is the CLI's: the stalled writer does not take it.
    assert.equal((await write()).status, 503);

    // Space returns: the writer takes records again, writes are served, nothing is lost.
    inside(['rm', '-f', `${w.mnt}/filler`]);
    await w.proxy.waitForLog((o) => /takes records again/.test(o.msg), 10000);
    assert.equal((await write()).status, 201);
    await waitFor(() => during.every((id) => auditIds().has(id)), { timeoutMs: 10000, what: 'the records of the full disk stored' });
    const all = auditIds();
    assert.ok(all.has(refused.headers['x-request-id']), 'the 503 is recorded too');
    // And the reserve is made again (checked every 10 s after a commit).
    await waitFor(
        async () => {
            await read();
            return inside(['stat', '-c', '%s', reserve]).stdout.trim() === String(8 * 1024 * 1024);
        },
        { timeoutMs: 20000, intervalMs: 1000, what: 'the reserve made again' },
    );
    assert.equal(w.proxy.child.exitCode, null);
    await sleep(0);
    assert.ok(cli);
});

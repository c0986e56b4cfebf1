// libpq is loaded only for a PostgreSQL store (src/store/store_pg_libpq.c). Linked, it and the
// libraries it needs (GnuTLS, Kerberos, LDAP, SASL, p11-kit) took 3.6 MB of every server's
// resident memory, SQLite stores included (issue 10, the memory target). This test runs in both
// store runs: on SQLite, serve must map no libpq and none of what it brings; on PostgreSQL, serve
// must have loaded it and answer through the proxy as usual.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';

import { startFakeCore } from './lib/fake_core.mjs';
import { PG, bearer, makeInstance, makeKey, req, startProxy, tmpDb } from './lib/harness.mjs';

let core;

before(async () => {
    core = await startFakeCore();
});

after(async () => {
    await core?.close();
});

function mappedLibraries(pid) {
    const names = new Set();
    for (const line of fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
        const m = /\s(\/\S+\.so[.\d]*)$/.exec(line);
        if (m) {
            names.add(m[1].replace(/^.*\//, ''));
        }
    }
    return [...names];
}

test(`serve on ${PG ? 'PostgreSQL has loaded libpq' : 'SQLite maps no libpq nor what libpq needs'}, and proxies`, async () => {
    const db = tmpDb();
    const instance = makeInstance(db, core.url, { secret: 'libpq_secret' });
    const key = makeKey(db, { scopes: ['*'] }).key;
    const proxy = await startProxy({ db });
    try {
        const res = await req(proxy.port, 'GET', `/proxy/ledgers?instance_id=${instance.id}`, { headers: bearer(key) });
        assert.equal(res.status, 200);
        const libs = mappedLibraries(proxy.child.pid);
        assert.ok(libs.some((l) => l.startsWith('libsqlite3.so')), `libsqlite3 is mapped: ${libs.join(' ')}`);
        const pqFamily = libs.filter((l) => /^lib(pq|gnutls|krb5|gssapi_krb5|ldap|sasl2|p11-kit)\.so/.test(l));
        if (PG) {
            assert.ok(libs.some((l) => l.startsWith('libpq.so.5')), `libpq is mapped: ${libs.join(' ')}`);
        } else {
            assert.deepEqual(pqFamily, [], 'a server on SQLite maps none of libpq and its dependencies');
        }
    } finally {
        await proxy.stop();
    }
});

// trail.mjs — the audit trail's hash chain as the tests read and rewrite it (docs/AUDIT_TRAIL.md).
//
//   digest(r)             a record's digest: SHA-256 of its "bpaudit1" canonical form, hex. Written
//                         from the document, not from src/store/store_chain.c, so a drift between
//                         the two fails a test; with it a test rewrites a chain whole, hashes and
//                         head, the way someone with database access could.
//   chainRows(db, chain)  a chain's rows of audit_log as objects (the columns digest() reads, and
//                         seq and hash), in chain order, read with the database's own client
//                         (sqlite3, or psql in the PostgreSQL run): NULL is null, the integer
//                         columns numbers, replayed a boolean.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';

import { PG } from './harness.mjs';

export function digest(r) {
    const parts = [Buffer.from('bpaudit1')];
    const str = (s) => {
        if (s === null || s === undefined) {
            parts.push(Buffer.from([0]));
            return;
        }
        const b = Buffer.from(s, 'utf8');
        const len = Buffer.alloc(4);
        len.writeUInt32BE(b.length);
        parts.push(Buffer.from([1]), len, b);
    };
    const int = (v) => {
        const b = Buffer.alloc(8);
        b.writeBigInt64BE(BigInt(v));
        parts.push(b);
    };
    str(r.chain);
    int(r.chain_n);
    str(r.prev_hash);
    str(r.id);
    str(r.node);
    int(r.time_us);
    for (const f of ['request_id', 'actor_type', 'actor_id', 'actor_name', 'instance_id', 'method', 'route', 'path',
        'action', 'category']) {
        str(r[f]);
    }
    int(r.core_status);
    int(r.status);
    int(r.latency_us);
    str(r.client_addr);
    str(r.resource_id);
    str(r.error);
    int(r.repeat_count);
    int(r.last_time_us ?? 0);
    int(r.replayed ? 1 : 0);
    return crypto.createHash('sha256').update(Buffer.concat(parts)).digest('hex');
}

const COLS = 'seq, id, node, time_us, request_id, actor_type, actor_id, actor_name, instance_id, method, route, path,'
    + ' action, category, core_status, status, latency_us, client_addr, resource_id, error, repeat_count, last_time_us,'
    + ' replayed, chain, chain_n, prev_hash, hash';

export function chainRows(db, chain) {
    const q = `SELECT ${COLS} FROM audit_log WHERE chain = '${chain}' ORDER BY chain_n`;
    const out = PG
        ? spawnSync('psql', [db, '-X', '-q', '-A', '-t', '-F', '\x1f', '-c', q], { encoding: 'utf8' })
        : spawnSync('sqlite3', ['-separator', '\x1f', '-nullvalue', '\x01NULL', db, q], { encoding: 'utf8' });
    assert.equal(out.status, 0, out.stderr);
    const names = COLS.split(',').map((c) => c.trim());
    const ints = new Set(['seq', 'time_us', 'core_status', 'status', 'latency_us', 'repeat_count', 'last_time_us', 'chain_n']);
    return out.stdout.split('\n').filter((l) => l !== '').map((line) => {
        const vals = line.split('\x1f');
        const o = {};
        names.forEach((n, i) => {
            let v = vals[i];
            // psql prints NULL as empty; no text column read here holds an empty string.
            if (v === '\x01NULL' || (PG && v === '')) {
                v = null;
            }
            if (n === 'replayed') {
                v = v === '1' || v === 't';
            } else if (ints.has(n)) {
                v = v === null ? null : Number(v);
            }
            o[n] = v;
        });
        return o;
    });
}

// 50 keep-alive clients × 20 requests: every response belongs to its own request.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';

import { bearer, req, setupWorld } from './lib/harness.mjs';

let w;
before(async () => {
    w = await setupWorld({ keys: { all: ['*'] } });
});
after(async () => {
    await w?.close();
});

const CLIENTS = 50;
const PER_CLIENT = 20;

test(`${CLIENTS} concurrent keep-alive clients × ${PER_CLIENT} requests each get their own responses`, async () => {
    w.core.reset();
    // jitter Core's answers so completions interleave across connections and workers
    w.core.setHandler(async () => {
        await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 6)));
        return null;
    });
    const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
    // Count client connections: keep-alive means at most one per client, not one per request.
    let clientSockets = 0;
    const createConnection = agent.createConnection.bind(agent);
    agent.createConnection = (...args) => {
        clientSockets++;
        return createConnection(...args);
    };
    const failures = [];
    const requestIds = new Set();
    try {
        await Promise.all(
            Array.from({ length: CLIENTS }, async (_, c) => {
                for (let i = 0; i < PER_CLIENT; i++) {
                    const marker = `c${c}-r${i}-${Math.random().toString(36).slice(2, 8)}`;
                    const post = i % 3 === 1;
                    const path = post ? w.p('/ledgers', `marker=${marker}`) : w.p(`/ledgers/ldg_${marker}`, `marker=${marker}`);
                    const res = await req(w.port, post ? 'POST' : 'GET', path, {
                        headers: { ...bearer(w.keys.all.key), 'X-Test-Marker': marker, ...(post ? { 'content-type': 'application/json' } : {}) },
                        body: post ? `{"name":"${marker}"}` : undefined,
                        agent,
                        timeoutMs: 20000,
                    });
                    const fc = res.json?.fake_core;
                    const ok =
                        res.status === (post ? 201 : 200) &&
                        fc?.marker === marker &&
                        fc?.query_marker === marker &&
                        res.headers['x-test-marker-echo'] === marker &&
                        (post ? res.json.name === marker : fc.path === `/ledgers/ldg_${marker}?marker=${marker}`);
                    if (!ok) {
                        failures.push(`${marker}: ${res.status} ${res.text.slice(0, 200)}`);
                    }
                    requestIds.add(res.headers['x-request-id']);
                }
            }),
        );
    } finally {
        agent.destroy();
        w.core.setHandler(null);
    }
    assert.deepEqual(failures, [], `${failures.length} mismatched responses`);
    assert.equal(w.core.requests.length, CLIENTS * PER_CLIENT, 'Core got each request exactly once');
    const markers = new Set(w.core.requests.map((r) => r.headers['x-test-marker']));
    assert.equal(markers.size, CLIENTS * PER_CLIENT);
    assert.equal(requestIds.size, CLIENTS * PER_CLIENT, 'unique X-Request-Id per request');
    // Upstream keep-alive: the proxy pools connections to Core instead of one per request.
    assert.ok(w.core.connections < (CLIENTS * PER_CLIENT) / 2, `upstream connections: ${w.core.connections}`);
    assert.ok(clientSockets <= CLIENTS, `client connections: ${clientSockets} for ${CLIENTS * PER_CLIENT} requests`);
});

test('the proxy is healthy afterwards', async () => {
    const res = await req(w.port, 'GET', '/healthz', { agent: false });
    assert.equal(res.status, 200);
});

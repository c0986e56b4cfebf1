// The access log is batched per worker (issue 10): lines leave in few writes, but every request
// still gets exactly one JSON line, in the order its worker served them, and none is lost when
// the server stops.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, test } from 'node:test';

import { bearer, req, setupWorld } from './lib/harness.mjs';

const worlds = [];
after(async () => {
    for (const w of worlds) {
        await w.close();
    }
});

test('every request has one access line, in order, even when SIGTERM comes right after', async () => {
    const w = await setupWorld({ keys: { all: ['*'] } });
    worlds.push(w);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const ids = [];
    for (let i = 0; i < 60; i++) {
        const id = `batch-${i}`;
        ids.push(id);
        const res = await req(w.port, 'GET', w.p('/ledgers/ldg_1'), {
            headers: { ...bearer(w.keys.all.key), 'X-Request-Id': id },
            agent,
        });
        assert.equal(res.status, 200);
    }
    agent.destroy();
    // Straight after the last answer: the lines still buffered must reach stderr before exit.
    // The main thread logs "stopped" after the workers exited, so everything they logged is
    // in the pipe before it.
    await w.proxy.stop();
    await w.proxy.waitForLog((o) => o.msg === 'stopped', 5000);
    const lines = w.proxy.logs();
    const access = [];
    for (const line of lines) {
        const o = JSON.parse(line); // every line whole: no write cut one in two
        if (o.msg === 'access') {
            access.push(o);
        }
    }
    const seen = access.map((o) => o.request_id).filter((id) => id.startsWith('batch-'));
    assert.deepEqual(seen, ids);
});

// fake_core.mjs — a scriptable stand-in for a Blnk Core instance, for the integration tests.
//
// API (also used by other test files, e.g. the SDK tests; keep it stable):
//
//   const core = await startFakeCore({ handler?, keepAliveTimeoutMs?, port? });
//     Listens on 127.0.0.1, an ephemeral port (or port, for a Core that comes up where an
//     instance already points), node:http with keep-alive on.
//   core.url            'http://127.0.0.1:<port>'
//   core.port           the port
//   core.requests       array of recorded requests, in arrival order (complete bodies), each:
//       { seq,            1-based arrival number
//         method,         'POST'
//         rawPath,        request target exactly as received, with the query: '/ledgers?a=1'
//         path,           rawPath up to '?'
//         query,          raw text after '?', or null when there was no '?'
//         httpVersion,    '1.1'
//         rawHeaders,     [[name, value], ...] exactly as received (case and order kept)
//         headers,        { lowercase-name: value } (repeated names joined with ', ')
//         headerCount(n)  how many times the (case-insensitive) header n was received
//         body,           Buffer of the request body bytes
//         response }      what the fake answered: { status, headers: [[k, v]...], body: Buffer }
//                         (null for a destroyed socket / not yet answered)
//   core.connections    number of TCP connections accepted so far (getter)
//   core.setHandler(h)  replaces the behaviour (h = null restores the default), see below
//   core.reset()        clears core.requests (the connection count keeps running)
//   core.waitForRequests(n, timeoutMs=5000)  resolves when at least n requests were recorded
//   await core.close()  closes the server and every open connection
//
// Handlers: h(rec, req, res) is called once the request body is complete. It returns either
//   undefined / null  → the default Core-like answer,
//   a behaviour object (below), or a Promise of one,
//   the string 'handled' → the handler wrote `res` itself.
// A behaviour object may also be passed directly to setHandler (used for every request).
//
// Behaviour object fields (all optional):
//   status       HTTP status (default: as the default answer, 201 for creating POSTs, else 200)
//   headers      { name: value | [values] } or [[name, value], ...] sent as given
//   body         string | Buffer | object (JSON-encoded); default: the default echo body
//   delayMs      wait this long before answering (for upstream timeouts)
//   destroy      true → destroy the socket without answering (for 502)
//   hugeBytes    n → the body is hugeBody(n): n deterministic pseudo-random bytes
//   chunked      true → no Content-Length, body written in pieces (Transfer-Encoding: chunked)
//   chunkSize    piece size for chunked (default 7000)
//   hopByHop     true → add Connection: x-foo, X-Foo: bar, Keep-Alive: timeout=7, max=77,
//                Proxy-Connection: keep-alive (none of which may reach the client)
//
// The default answer mimics Core: status 201 for POST (except the read-only queries
// /…/filter, /search/…, /multi-search: 200), 200 otherwise; JSON body = the request's JSON
// object (if it was one) plus an id field (ledger_id "ldg_…", balance_id "bln_…",
// transaction_id "txn_…", identity_id "idt_…") plus
//   "fake_core": { seq, method, path (rawPath), marker, query_marker, request_id, body_sha256 }
// where marker is the X-Test-Marker request header and query_marker the `marker` query param.
// Response headers: Content-Type: application/json, X-Fake-Core-Seq, and X-Test-Marker-Echo
// when the request had X-Test-Marker.

import http from 'node:http';
import crypto from 'node:crypto';

const ID_FIELDS = {
    ledgers: ['ledger_id', 'ldg_'],
    balances: ['balance_id', 'bln_'],
    transactions: ['transaction_id', 'txn_'],
    identities: ['identity_id', 'idt_'],
};

/** n deterministic pseudo-random bytes (same n → same bytes), for big-body tests. */
export function hugeBody(n) {
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    let counter = 0;
    while (off < n) {
        const block = crypto.createHash('sha256').update(`blnkproxy-huge-${counter++}`).digest();
        off += block.copy(out, off, 0, Math.min(block.length, n - off));
    }
    return out;
}

export function sha256(buf) {
    return crypto.createHash('sha256').update(buf).digest('hex');
}

function isReadOnlyPost(path) {
    return /\/filter$/.test(path) || path.startsWith('/search/') || path === '/multi-search';
}

function defaultAnswer(rec) {
    const seg = rec.path.split('/')[1] || '';
    const status = rec.method === 'POST' && !isReadOnlyPost(rec.path) ? 201 : 200;
    const out = {};
    try {
        const parsed = JSON.parse(rec.body.toString('utf8'));
        if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
            Object.assign(out, parsed);
        }
    } catch {
        // not JSON: nothing to echo but the digest below
    }
    const idf = ID_FIELDS[seg];
    if (idf) {
        out[idf[0]] = `${idf[1]}${crypto.randomUUID()}`;
    }
    let queryMarker = null;
    if (rec.query !== null) {
        queryMarker = new URLSearchParams(rec.query).get('marker');
    }
    out.fake_core = {
        seq: rec.seq,
        method: rec.method,
        path: rec.rawPath,
        marker: rec.headers['x-test-marker'] ?? null,
        query_marker: queryMarker,
        request_id: rec.headers['x-request-id'] ?? null,
        body_sha256: sha256(rec.body),
    };
    const headers = [['Content-Type', 'application/json'], ['X-Fake-Core-Seq', String(rec.seq)]];
    if (rec.headers['x-test-marker'] !== undefined) {
        headers.push(['X-Test-Marker-Echo', rec.headers['x-test-marker']]);
    }
    return { status, headers, body: JSON.stringify(out) };
}

function headerPairs(h) {
    if (!h) {
        return [];
    }
    if (Array.isArray(h)) {
        return h.map(([k, v]) => [k, String(v)]);
    }
    const out = [];
    for (const [k, v] of Object.entries(h)) {
        if (Array.isArray(v)) {
            for (const x of v) {
                out.push([k, String(x)]);
            }
        } else {
            out.push([k, String(v)]);
        }
    }
    return out;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function perform(rec, req, res, b) {
    if (b.delayMs) {
        await sleep(b.delayMs);
    }
    if (b.destroy) {
        req.socket.destroy();
        return;
    }
    const def = b.status === undefined || b.body === undefined ? defaultAnswer(rec) : null;
    const status = b.status ?? def.status;
    let body;
    if (b.hugeBytes) {
        body = hugeBody(b.hugeBytes);
    } else if (b.body === undefined) {
        body = Buffer.from(def.body);
    } else if (Buffer.isBuffer(b.body)) {
        body = b.body;
    } else if (typeof b.body === 'string') {
        body = Buffer.from(b.body, 'utf8');
    } else {
        body = Buffer.from(JSON.stringify(b.body), 'utf8');
    }
    let headers = b.headers !== undefined ? headerPairs(b.headers) : headerPairs(def ? def.headers : []);
    if (b.hopByHop) {
        headers = headers.concat([
            ['Connection', 'x-foo'],
            ['X-Foo', 'bar'],
            ['Keep-Alive', 'timeout=7, max=77'],
            ['Proxy-Connection', 'keep-alive'],
        ]);
    }
    const hasLen = headers.some(([k]) => k.toLowerCase() === 'content-length');
    if (!b.chunked && !hasLen) {
        headers.push(['Content-Length', String(body.length)]);
    }
    rec.response = { status, headers, body };
    res.writeHead(status, headers.flat());
    if (req.method === 'HEAD') {
        res.end();
        return;
    }
    if (b.chunked) {
        const size = b.chunkSize || 7000;
        for (let off = 0; off < body.length; off += size) {
            const ok = res.write(body.subarray(off, Math.min(off + size, body.length)));
            if (!ok) {
                await new Promise((r) => res.once('drain', r));
            } else if ((off / size) % 8 === 0) {
                await new Promise((r) => setImmediate(r));
            }
        }
        res.end();
        return;
    }
    res.end(body);
}

export async function startFakeCore(opts = {}) {
    const requests = [];
    const sockets = new Set();
    let connections = 0;
    let seq = 0;
    let handler = opts.handler ?? null;
    const waiters = [];

    const server = http.createServer({ keepAlive: true }, (req, res) => {
        const chunks = [];
        req.on('data', (d) => chunks.push(d));
        req.on('end', async () => {
            const rawPairs = [];
            for (let i = 0; i < req.rawHeaders.length; i += 2) {
                rawPairs.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
            }
            const map = {};
            for (const [k, v] of rawPairs) {
                const lk = k.toLowerCase();
                map[lk] = map[lk] === undefined ? v : `${map[lk]}, ${v}`;
            }
            const q = req.url.indexOf('?');
            const rec = {
                seq: ++seq,
                method: req.method,
                rawPath: req.url,
                path: q < 0 ? req.url : req.url.slice(0, q),
                query: q < 0 ? null : req.url.slice(q + 1),
                httpVersion: req.httpVersion,
                rawHeaders: rawPairs,
                headers: map,
                headerCount: (n) => rawPairs.filter(([k]) => k.toLowerCase() === n.toLowerCase()).length,
                body: Buffer.concat(chunks),
                response: null,
                receivedAt: Date.now(),
            };
            requests.push(rec);
            for (const w of waiters.slice()) {
                if (requests.length >= w.n) {
                    waiters.splice(waiters.indexOf(w), 1);
                    clearTimeout(w.timer);
                    w.resolve(requests);
                }
            }
            try {
                let b = null;
                if (typeof handler === 'function') {
                    b = await handler(rec, req, res);
                    if (b === 'handled') {
                        return;
                    }
                } else if (handler && typeof handler === 'object') {
                    b = handler;
                }
                await perform(rec, req, res, b ?? {});
            } catch (e) {
                // A handler bug must be visible, not a hang.
                process.stderr.write(`fake_core: handler error: ${e && e.stack}\n`);
                try {
                    res.writeHead(599, { 'Content-Type': 'text/plain' });
                    res.end(String(e));
                } catch {
                    req.socket.destroy();
                }
            }
        });
    });
    server.keepAliveTimeout = opts.keepAliveTimeoutMs ?? 120000;
    server.headersTimeout = 130000;
    server.requestTimeout = 0;
    server.on('connection', (s) => {
        connections++;
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
    });
    server.on('clientError', (err, socket) => {
        socket.destroy();
    });

    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(opts.port ?? 0, '127.0.0.1', resolve);
    });
    const port = server.address().port;

    return {
        url: `http://127.0.0.1:${port}`,
        port,
        requests,
        get connections() {
            return connections;
        },
        setHandler(h) {
            handler = h ?? null;
        },
        reset() {
            requests.length = 0;
        },
        waitForRequests(n, timeoutMs = 5000) {
            if (requests.length >= n) {
                return Promise.resolve(requests);
            }
            return new Promise((resolve, reject) => {
                const w = { n, resolve };
                w.timer = setTimeout(() => {
                    waiters.splice(waiters.indexOf(w), 1);
                    reject(new Error(`fake core: only ${requests.length} of ${n} requests within ${timeoutMs} ms`));
                }, timeoutMs);
                waiters.push(w);
            });
        },
        close() {
            return new Promise((resolve) => {
                server.close(() => resolve());
                for (const s of sockets) {
                    s.destroy();
                }
                server.closeAllConnections?.();
            });
        },
    };
}

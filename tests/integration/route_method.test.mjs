// Issue 11 item 6: a config route's method has one length limit everywhere. A method the
// config accepts reaches Core whole (it was cut to 15 letters on the way), and a longer one is
// refused when the config is read, naming the limit.
//
// Core here is a raw TCP server: node's own HTTP server only parses the methods it knows.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { BIN, bearer, makeInstance, makeKey, req, startProxy, tmpDb, tmpDir } from './lib/harness.mjs';

const LONGEST = 'UPDATEREDIRECTREFX'.padEnd(20, 'Y'); // 20 letters: the limit
const SEVENTEEN = 'UPDATEREDIRECTREF'; // an IANA-registered method, 17 letters

let core;
let coreUrl;
const requestLines = [];
let proxy;
let instance;
let key;

function startRawCore() {
    return new Promise((resolve) => {
        const server = net.createServer((sock) => {
            let buf = Buffer.alloc(0);
            sock.on('data', (d) => {
                buf = Buffer.concat([buf, d]);
                const end = buf.indexOf('\r\n\r\n');
                if (end < 0) {
                    return;
                }
                requestLines.push(buf.subarray(0, buf.indexOf('\r\n')).toString('latin1'));
                buf = buf.subarray(end + 4);
                sock.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}');
            });
            sock.on('error', () => {});
        });
        server.listen(0, '127.0.0.1', () => resolve(server));
    });
}

function writeConfig(obj) {
    const file = path.join(tmpDir(), 'blnkproxy.json');
    fs.writeFileSync(file, JSON.stringify(obj));
    return file;
}

before(async () => {
    core = await startRawCore();
    coreUrl = `http://127.0.0.1:${core.address().port}`;
    const db = tmpDb();
    instance = makeInstance(db, coreUrl, { secret: 'route_method_secret' });
    key = makeKey(db, { scopes: ['*'] });
    const config = writeConfig({
        routes: {
            add: [
                { method: SEVENTEEN, path: '/custom/redirect' },
                { method: LONGEST, path: '/custom/longest' },
            ],
        },
    });
    proxy = await startProxy({ db, args: ['--config', config] });
});

after(async () => {
    await proxy?.stop();
    await new Promise((resolve) => (core ? core.close(resolve) : resolve()));
});

test('a configured method longer than 15 letters reaches Core whole', async () => {
    for (const [method, corePath] of [
        [SEVENTEEN, '/custom/redirect'],
        [LONGEST, '/custom/longest'],
    ]) {
        requestLines.length = 0;
        const res = await req(proxy.port, method, `/proxy${corePath}?instance_id=${instance.id}`, { headers: bearer(key.key) });
        assert.equal(res.status, 200, res.text);
        assert.equal(requestLines.length, 1);
        assert.equal(requestLines[0], `${method} ${corePath} HTTP/1.1`);
    }
});

test('a method over the limit (or not upper-case letters) stops serve with exit 2, naming the limit', () => {
    for (const method of [`${LONGEST}Z`, 'GET-X', 'get']) {
        const config = writeConfig({ routes: { add: [{ method, path: '/x' }] } });
        const r = spawnSync(BIN, ['serve', '--db', tmpDb(), '--listen', '127.0.0.1:0', '--config', config], {
            encoding: 'utf8',
            timeout: 10000,
        });
        assert.equal(r.status, 2, `${method}: ${r.stderr}`);
        assert.match(r.stderr, /routes\.add\[0\]: method must be 1 to 20 upper-case letters/);
    }
});

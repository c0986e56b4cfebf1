// The admin console (issue 13, items 3 and 4) in headless Chromium, driven by playwright-core:
// an admin signs in (with the keyboard), adds an instance with its Core secret, creates a key
// (shown once), the test uses the key through /proxy/, the admin revokes it and the test sees the
// 401; the audit log is read with category tabs and filters, and updates live; an auditor sees no
// way to change anything, and the API refuses the change even when the page sends it; the pages
// fit a phone's width. A screenshot of each page is written to $BP_CONSOLE_SHOTS (default: a
// directory under the system temp dir, named in the test output).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { chromium } from 'playwright-core';

import { startFakeCore } from './lib/fake_core.mjs';
import { bearer, cli, randomHex, req, startProxy, tmpDb, tmpDir } from './lib/harness.mjs';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const WAIT_MS = 15000;
const PASSWORD = `pw-${randomHex(12)}`;
const SHOTS = process.env.BP_CONSOLE_SHOTS || fs.mkdtempSync(path.join(os.tmpdir(), 'bp-console-shots-'));

const w = {};
let userDataDir;
let context;
let page;

function operator(name, role) {
    const pw = path.join(tmpDir(), 'pw');
    fs.writeFileSync(pw, PASSWORD, { mode: 0o600 });
    const r = cli(['operator', 'create', '--name', name, '--password-file', pw, '--role', role], { db: w.db });
    assert.equal(r.code, 0, r.stderr);
    return r.json;
}

const base = () => `http://127.0.0.1:${w.proxy.port}`;
const proxyGet = (key, inst) =>
    req(w.proxy.port, 'GET', `/proxy/ledgers?instance_id=${inst}`, { headers: bearer(key), agent: false });

async function shot(name) {
    fs.mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function signInWithKeyboard(name) {
    await page.goto(`${base()}/admin/`);
    await page.waitForSelector('#signin-form');
    await page.focus('#signin-name');
    await page.keyboard.type(name);
    await page.keyboard.press('Tab');
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#nav:not([hidden])');
}

async function signOut() {
    await page.click('#signout');
    await page.waitForSelector('#signin:not([hidden])');
}

async function rowTexts(selector = '#page tbody tr') {
    return page.$$eval(selector, (rows) => rows.map((r) => r.innerText));
}

before(async () => {
    w.core = await startFakeCore();
    w.db = tmpDb();
    w.admin = operator('alice', 'admin');
    w.auditor = operator('bob', 'auditor');
    w.proxy = await startProxy({ db: w.db });
    userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bp-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: WAIT_MS,
        viewport: { width: 1280, height: 900 },
    });
    context.setDefaultTimeout(WAIT_MS);
    context.setDefaultNavigationTimeout(WAIT_MS);
    page = context.pages()[0] ?? (await context.newPage());
    page.on('dialog', (d) => d.accept());
    console.log(`# console screenshots: ${SHOTS}`);
});

after(async () => {
    try {
        await context?.close();
    } finally {
        if (userDataDir) {
            fs.rmSync(userDataDir, { recursive: true, force: true });
        }
        await w.proxy?.stop();
        await w.core?.close();
    }
});

describe('the admin console in headless Chromium', () => {
    test('the pages come with a strict policy: own script and style only, no framing', async () => {
        const r = await req(w.proxy.port, 'GET', '/admin/', { agent: false });
        assert.equal(r.status, 200);
        assert.match(r.headers['content-type'], /^text\/html/);
        assert.match(r.headers['content-security-policy'], /default-src 'none'; script-src 'self'/);
        assert.match(r.headers['content-security-policy'], /frame-ancestors 'none'/);
        assert.equal(r.headers['x-frame-options'], 'DENY');
        const js = await req(w.proxy.port, 'GET', '/admin/console.js', { agent: false });
        assert.match(js.headers['content-type'], /^text\/javascript/);
        assert.doesNotMatch(js.text, /\.innerHTML|outerHTML|insertAdjacentHTML|document\.write/, 'the page never builds HTML from text');
        assert.equal((await req(w.proxy.port, 'GET', '/admin/nope.js', { agent: false })).status, 404);
        assert.equal((await req(w.proxy.port, 'POST', '/admin/', { agent: false })).status, 404);
    });

    test('sign in with the keyboard; a wrong password says so', async () => {
        await page.goto(`${base()}/admin/`);
        await page.waitForSelector('#signin:not([hidden])');
        await shot('1-sign-in');
        await page.fill('#signin-name', 'alice');
        await page.fill('#signin-password', 'wrong password');
        await page.click('#signin-form button[type=submit]');
        await page.waitForFunction(() => document.getElementById('signin-error').textContent.length > 0);
        assert.match(await page.textContent('#signin-error'), /invalid name or password/);
        await signInWithKeyboard('alice');
        assert.match(await page.textContent('#who'), /alice \(admin\)/);
        // Every input has a label.
        const unlabelled = await page.$$eval('input, select', (els) => els.filter((e) => !e.labels || e.labels.length === 0).length);
        assert.equal(unlabelled, 0);
    });

    test('add an instance with its Core secret: listed, the secret never shown again', async () => {
        await page.click('a[data-page=instances]');
        await page.waitForSelector('#instance-form');
        await page.fill('#instance-name', 'main');
        await page.fill('#instance-url', w.core.url);
        await page.fill('#instance-secret', 'console_core_secret');
        await page.click('#instance-form button[type=submit]');
        await page.waitForFunction(() => [...document.querySelectorAll('#page tbody tr')].some((r) => r.innerText.includes('main')));
        const rows = await rowTexts();
        assert.ok(rows.some((t) => t.includes('main') && t.includes('set')), rows.join('\n'));
        assert.ok(!(await page.content()).includes('console_core_secret'));
        w.inst = cli(['instance', 'list'], { db: w.db }).json.instances.find((i) => i.name === 'main');
        // Check connection: Core's /health with the secret just entered.
        w.core.reset();
        await page.click('button[aria-label="Check the connection to main"]');
        await page.waitForFunction(() => /healthy, Core answered 200/.test(document.getElementById('instance-check').textContent));
        assert.equal(w.core.requests.at(-1).path, '/health');
        assert.equal(w.core.requests.at(-1).headers['x-blnk-key'], 'console_core_secret');
        await shot('2-instances');
    });

    test('create a key: shown once with a copy button; it works through /proxy/; revoked, it is refused', async () => {
        await page.click('a[data-page=keys]');
        await page.waitForSelector('#key-form');
        await page.fill('#key-name', 'console-key');
        await page.check('#key-form input[value="proxy:write"]');
        await page.selectOption('#key-instances', w.inst.id);
        await page.selectOption('#key-expiry', '30d');
        await page.click('#key-form button[type=submit]');
        await page.waitForSelector('#secret-value');
        const key = (await page.textContent('#secret-value')).trim();
        assert.match(key, /^blnk_[0-9a-f]{64}$/);
        assert.ok(await page.isVisible('#copy-secret'));
        await shot('3-key-created');
        assert.equal((await proxyGet(key, w.inst.id)).status, 200, 'the key made in the console works');

        await page.click('a[data-page=instances]');
        await page.click('a[data-page=keys]');
        await page.waitForSelector('#page table');
        assert.ok(!(await page.content()).includes(key), 'never shown again');
        await page.click('button[aria-label="Revoke console-key"]');
        await page.waitForFunction(() => [...document.querySelectorAll('#page tbody tr')].some((r) => r.innerText.includes('console-key') && r.innerText.includes('revoked')));
        const r = await proxyGet(key, w.inst.id);
        assert.equal(r.status, 401);
        await shot('3-keys');
    });

    test('the audit log: category tabs, filters, "Performed by", live updates', async () => {
        await page.click('a[data-page=audit]');
        await page.waitForSelector('#audit-rows');
        const tabs = await page.$$eval('.tabs button', (b) => b.map((x) => x.textContent));
        for (const c of ['All', 'ledgers', 'transactions', 'balances', 'admin']) {
            assert.ok(tabs.includes(c), `tab ${c} in ${tabs}`);
        }
        await page.click('.tabs button[data-category="admin"]');
        await page.waitForSelector('.tabs button[data-category="admin"][aria-selected="true"]');
        await page.waitForFunction(() => document.querySelectorAll('#audit-rows tr').length > 0);
        let rows = await rowTexts('#audit-rows tr');
        assert.ok(rows.some((t) => t.includes('Key revoked') && t.includes('alice')), rows.join('\n'));
        assert.ok(rows.every((t) => t.includes('admin')));

        await page.fill('#audit-action', 'Key created');
        await page.click('#audit-filters button[type=submit]');
        await page.waitForFunction(() => {
            const r = [...document.querySelectorAll('#audit-rows tr')];
            return r.length > 0 && r.every((x) => x.innerText.includes('Key created'));
        });
        rows = await rowTexts('#audit-rows tr');
        assert.ok(rows.length >= 1);

        // Live: a request through /proxy/ appears without reloading.
        await page.fill('#audit-action', '');
        await page.click('#audit-filters button[type=submit]');
        await page.waitForSelector('#audit-action');
        await page.click('.tabs button[data-category=""]');
        await page.waitForSelector('.tabs button[data-category=""][aria-selected="true"]');
        const shown = await page.$$eval('#audit-rows tr', (r) => r.length);
        const key = cli(['key', 'create', '--name', 'live-updates-key', '--scopes', '*'], { db: w.db }).json.key;
        assert.equal((await proxyGet(key, w.inst.id)).status, 200);
        await page.waitForFunction(() => [...document.querySelectorAll('#audit-rows tr')]
            .some((r) => r.innerText.includes('live-updates-key') && r.innerText.includes('ledgers')), null, { timeout: 10000 });
        assert.ok(await page.$$eval('#audit-rows tr', (r) => r.length) > shown, 'rows were added, the page was not reloaded');
        await shot('4-audit');
    });

    test('OAuth clients: create one (secret shown once), its token works on /proxy/; operators: add one', async () => {
        await page.click('a[data-page=clients]');
        await page.waitForSelector('#client-form');
        await page.fill('#client-name', 'console-app');
        await page.fill('#client-uris', 'https://app.example/callback');
        await page.click('#client-form button[type=submit]');
        await page.waitForSelector('#secret-value');
        const secret = (await page.textContent('#secret-value')).trim();
        assert.match(secret, /^blnk_cs_[0-9a-f]{64}$/);
        const client = cli(['client', 'list'], { db: w.db }).json.clients.find((c) => c.name === 'console-app');
        assert.deepEqual(client.redirect_uris, ['https://app.example/callback']);
        const tok = await req(w.proxy.port, 'POST', '/oauth/token', {
            headers: { 'content-type': 'application/x-www-form-urlencoded',
                authorization: `Basic ${Buffer.from(`${client.id}:${secret}`).toString('base64')}` },
            body: 'grant_type=client_credentials', agent: false,
        });
        assert.equal(tok.status, 200, tok.text);
        assert.equal((await proxyGet(tok.json.access_token, w.inst.id)).status, 200);
        await shot('5-clients');

        await page.click('a[data-page=operators]');
        await page.waitForSelector('#operator-form');
        await page.fill('#operator-name', 'carol');
        await page.fill('#operator-password', 'carol password');
        await page.selectOption('#operator-role', 'auditor');
        await page.click('#operator-form button[type=submit]');
        await page.waitForFunction(() => [...document.querySelectorAll('#page tbody tr')].some((r) => r.innerText.includes('carol')));
        const ops = cli(['operator', 'list'], { db: w.db }).json.operators;
        assert.equal(ops.find((o) => o.name === 'carol').role, 'auditor');
        await shot('6-operators');

        await page.click('a[data-page=audit]');
        await page.waitForSelector('#audit-rows');
        await page.click('button[aria-label="Verify the tamper-evident trail"]');
        await page.waitForFunction(() => /^Intact: \d+ records/.test(document.getElementById('audit-verified').textContent));
    });

    test('traffic: requests and errors per instance over the last hour, from the node\'s counters', async () => {
        const key = cli(['key', 'create', '--name', 'traffic-key', '--scopes', '*'], { db: w.db }).json.key;
        const before = await page.evaluate(async () => (await (await fetch('/admin/api/traffic')).json()));
        const sumOf = (t, field) => t.instances.filter((i) => i.id === w.inst.id).reduce((n, i) => n + i[field].reduce((a, b) => a + b, 0), 0);
        for (let i = 0; i < 5; i++) {
            assert.equal((await proxyGet(key, w.inst.id)).status, 200);
        }
        w.core.setHandler((rec) => (rec.path.startsWith('/ledgers/') ? { status: 404, body: { error: 'ledger not found' } } : null));
        const missing = await req(w.proxy.port, 'GET', `/proxy/ledgers/ldg_missing?instance_id=${w.inst.id}`, { headers: bearer(key), agent: false });
        w.core.setHandler(null);
        assert.equal(missing.status, 404, 'Core\'s 404, relayed');
        await page.click('a[data-page=traffic]');
        await page.waitForSelector('#page table');
        const after = await page.evaluate(async () => (await (await fetch('/admin/api/traffic')).json()));
        assert.equal(after.minute_seconds, 60);
        assert.equal(after.instances.find((i) => i.id === w.inst.id).requests.length, 60);
        assert.equal(sumOf(after, 'requests') - sumOf(before, 'requests'), 6, 'six requests counted');
        assert.equal(sumOf(after, 'errors') - sumOf(before, 'errors'), 1, 'one of them an error (404)');
        const rows = await rowTexts();
        assert.ok(rows.some((t) => t.startsWith('main')), 'the instance is named');
        assert.ok(!rows.some((t) => /^(none|other)\b/.test(t)), `only instances: ${rows}`);
        assert.ok(await page.$('#page .bars .bar'), 'bars per minute');
        await shot('7-traffic');
    });

    test('an auditor: no way to change anything in the page, and the API refuses what the page could send', async () => {
        await signOut();
        await signInWithKeyboard('bob');
        assert.match(await page.textContent('#who'), /bob \(auditor\)/);
        assert.equal(await page.isVisible('a[data-page=operators]'), false);
        await page.click('a[data-page=keys]');
        await page.waitForSelector('#page table');
        assert.equal(await page.$('#key-form'), null);
        assert.equal(await page.$('#page button.danger'), null);
        await page.click('a[data-page=instances]');
        await page.waitForSelector('#page table');
        assert.equal(await page.$('#instance-form'), null);
        await shot('8-auditor-keys');
        // The session's own CSRF token, sent from the page: still refused, by the server.
        const status = await page.evaluate(async () => {
            const s = await (await fetch('/admin/api/session')).json();
            const r = await fetch('/admin/api/keys', {
                method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf_token },
                body: JSON.stringify({ name: 'sneaky', scopes: ['*'] }),
            });
            return r.status;
        });
        assert.equal(status, 403);
        assert.equal(cli(['key', 'list'], { db: w.db }).json.keys.filter((k) => k.name === 'sneaky').length, 0);
    });

    test('phone width: the pages fit 375 px without sideways scrolling', async () => {
        await page.setViewportSize({ width: 375, height: 800 });
        for (const p of ['instances', 'keys', 'clients', 'audit', 'traffic']) {
            await page.click(`a[data-page=${p}]`);
            await page.waitForSelector('#page h1');
            await page.waitForTimeout(100);
            const width = await page.evaluate(() => document.documentElement.scrollWidth);
            assert.ok(width <= 376, `${p}: ${width} px wide`);
        }
        await shot('9-phone-audit');
        await page.setViewportSize({ width: 1280, height: 900 });
    });
});

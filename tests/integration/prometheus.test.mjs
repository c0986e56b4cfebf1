// Issue 14, item 5: the standard process metrics, OpenMetrics when the scraper asks for it, and a
// real Prometheus (Debian's prometheus package) scraping the proxy. promtool checks both formats:
// `check metrics` parses the text format (promtool 2.42 has no OpenMetrics linter), and
// `tsdb create-blocks-from openmetrics` runs Prometheus's OpenMetrics parser over the other.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { bearer, closedPort, req, setupWorld, sleep, tmpDir, waitFor } from './lib/harness.mjs';

const PROMTOOL = '/usr/bin/promtool';
const PROMETHEUS = '/usr/bin/prometheus';
// What Prometheus 2.42 sends when it scrapes.
const PROMETHEUS_ACCEPT =
    'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,' +
    'text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
const TEXT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
const OM_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

let world;

before(async () => {
    assert.ok(fs.existsSync(PROMTOOL) && fs.existsSync(PROMETHEUS), 'install the prometheus package (scripts/deps.sh --test)');
    world = await setupWorld({ keys: { all: ['*'] } });
});

after(async () => {
    await world?.close();
});

const scrape = (accept) => req(world.port, 'GET', '/metrics', { agent: false, headers: accept ? { accept } : {} });

function promtool(args, input) {
    const r = spawnSync(PROMTOOL, args, { input, encoding: 'utf8', timeout: 60000 });
    assert.equal(r.error, undefined, `promtool ran: ${r.error}`);
    return r;
}

/** Sample lines as a Map(series → value). */
function samples(text) {
    const m = new Map();
    for (const line of text.split('\n')) {
        if (line && !line.startsWith('#')) {
            const i = line.lastIndexOf(' ');
            m.set(line.slice(0, i), Number(line.slice(i + 1)));
        }
    }
    return m;
}

/** Runs Prometheus's OpenMetrics parser over text (backfilling needs a timestamp per sample). */
function openMetricsParse(text) {
    const ts = Math.floor(Date.now() / 1000);
    const stamped = text.split('\n').map((l) => (l === '' || l.startsWith('#') ? l : `${l} ${ts}`)).join('\n');
    const dir = tmpDir();
    const file = path.join(dir, 'scrape.om');
    fs.writeFileSync(file, stamped);
    const r = spawnSync(PROMTOOL, ['tsdb', 'create-blocks-from', 'openmetrics', file, path.join(dir, 'blocks')],
        { encoding: 'utf8', timeout: 60000 });
    assert.equal(r.error, undefined, `promtool ran: ${r.error}`);
    return r;
}

describe('/metrics formats', () => {
    test('without Accept, or asking for text, the text format 0.0.4; promtool check metrics passes', async () => {
        for (const accept of [undefined, 'text/plain', '*/*']) {
            const res = await scrape(accept);
            assert.equal(res.status, 200);
            assert.equal(res.headers['content-type'], TEXT_TYPE, `Accept: ${accept}`);
            assert.equal(res.headers.vary, 'Accept');
            assert.doesNotMatch(res.text, /# EOF/);
            const r = promtool(['check', 'metrics'], res.body);
            assert.equal(r.status, 0, `promtool check metrics:\n${r.stdout}${r.stderr}`);
            assert.equal(`${r.stdout}${r.stderr}`.trim(), '');
        }
    });

    test('Prometheus\'s Accept gets OpenMetrics 1.0.0, which its OpenMetrics parser reads', async () => {
        const res = await scrape(PROMETHEUS_ACCEPT);
        assert.equal(res.status, 200);
        assert.equal(res.headers['content-type'], OM_TYPE);
        assert.equal(res.headers.vary, 'Accept');
        assert.ok(res.text.endsWith('\n# EOF\n'), 'ends with # EOF');
        assert.match(res.text, /^# TYPE blnkproxy_requests counter$/m, 'counter family named without _total');
        assert.doesNotMatch(res.text, /^# TYPE \S+_total /m);
        assert.match(res.text, /^# TYPE blnkproxy_build info$/m);
        const r = openMetricsParse(res.text);
        assert.equal(r.status, 0, `promtool tsdb create-blocks-from openmetrics:\n${r.stdout}${r.stderr}`);
        // The parser is strict: the same text without its # EOF is refused.
        const broken = openMetricsParse(res.text.replace('# EOF\n', ''));
        assert.notEqual(broken.status, 0, 'a document without # EOF is refused');
    });

    test('the process metrics agree with what /proc says about the proxy', async () => {
        const res = await scrape();
        const s = samples(res.text);
        const pid = world.proxy.child.pid;
        const fds = fs.readdirSync(`/proc/${pid}/fd`).length;
        const limits = fs.readFileSync(`/proc/${pid}/limits`, 'utf8');
        const softFiles = Number(/^Max open files\s+(\d+)/m.exec(limits)[1]);
        const rssKb = Number(/^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

        assert.equal(s.get('process_max_fds'), softFiles);
        // Descriptors come and go with connections (the scrape's own among them): close, not equal.
        assert.ok(Math.abs(s.get('process_open_fds') - fds) <= 4, `open fds ${s.get('process_open_fds')} vs /proc ${fds}`);
        const rss = s.get('process_resident_memory_bytes');
        assert.ok(rss > rssKb * 1024 * 0.5 && rss < rssKb * 1024 * 2, `rss ${rss} vs VmRSS ${rssKb} kB`);
        assert.ok(s.get('process_virtual_memory_bytes') >= rss);
        assert.ok(s.get('process_cpu_seconds_total') >= 0);
        const start = s.get('process_start_time_seconds');
        assert.ok(start <= Date.now() / 1000 && start > Date.now() / 1000 - 600, `start ${start}`);
        for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_open_fds',
            'process_max_fds', 'process_start_time_seconds']) {
            assert.match(res.text, new RegExp(`^# HELP ${name} `, 'm'));
        }
    });
});

describe('a real Prometheus scrapes the proxy', () => {
    let prom;
    let promPort;
    let promLog = '';

    before(async () => {
        const dir = tmpDir();
        promPort = await closedPort();
        const cfg = path.join(dir, 'prometheus.yml');
        fs.writeFileSync(cfg, [
            'global:',
            '  scrape_interval: 1s',
            '  scrape_timeout: 1s',
            'scrape_configs:',
            '  - job_name: blnkproxy',
            '    static_configs:',
            `      - targets: ['127.0.0.1:${world.port}']`,
            '',
        ].join('\n'));
        prom = spawn(PROMETHEUS, [
            `--config.file=${cfg}`,
            `--storage.tsdb.path=${path.join(dir, 'data')}`,
            `--web.listen-address=127.0.0.1:${promPort}`,
            '--web.console.templates=/etc/prometheus/consoles',
            '--web.console.libraries=/etc/prometheus/console_libraries',
        ], { stdio: ['ignore', 'ignore', 'pipe'] });
        prom.stderr.on('data', (d) => {
            promLog += d;
        });
        await waitFor(async () => (await fetch(`http://127.0.0.1:${promPort}/-/ready`)).ok,
            { timeoutMs: 30000, intervalMs: 200, what: `Prometheus ready (log:\n${promLog})` });
    });

    after(async () => {
        if (prom && prom.exitCode === null) {
            const exited = new Promise((r) => prom.once('exit', r));
            process.kill(prom.pid, 'SIGTERM');
            const t = setTimeout(() => process.kill(prom.pid, 'SIGKILL'), 10000);
            await exited;
            clearTimeout(t);
        }
    });

    async function query(q) {
        const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`);
        const body = await res.json();
        assert.equal(body.status, 'success', JSON.stringify(body));
        return body.data.result;
    }

    test('the request count Prometheus stored is the count of requests made', async () => {
        const N = 7;
        for (let i = 0; i < N; i++) {
            const r = await req(world.port, 'GET', world.p('/ledgers'), { headers: bearer(world.keys.all.key) });
            assert.equal(r.status, 200, r.text);
        }
        // Prometheus's own "instance" label names the scrape target, so it stores ours (the Core
        // instance) as exported_instance (README, Metrics).
        const q = `sum(blnkproxy_requests_total{job="blnkproxy",group="ledgers",method="GET",status_class="2xx",` +
            `exported_instance="${world.instance.id}"})`;
        let last = null;
        try {
            await waitFor(async () => {
                last = await query(q);
                return last.length === 1 && Number(last[0].value[1]) === N;
            }, { timeoutMs: 30000, intervalMs: 250, what: `Prometheus sees ${N} requests` });
        } catch (e) {
            const targets = await (await fetch(`http://127.0.0.1:${promPort}/api/v1/targets`)).text();
            assert.fail(`${e.message}; last result ${JSON.stringify(last)}; targets ${targets}; log:\n${promLog}`);
        }
        assert.equal(Number(last[0].value[1]), N);

        // The scrape is healthy, and Prometheus read it as OpenMetrics: the metadata it keeps
        // names the counter family without _total and build info as an info family.
        const targets = await (await fetch(`http://127.0.0.1:${promPort}/api/v1/targets`)).json();
        const t = targets.data.activeTargets.find((x) => x.labels.job === 'blnkproxy');
        assert.equal(t.health, 'up', JSON.stringify(t));
        assert.equal(t.lastError, '');
        const meta = await (await fetch(`http://127.0.0.1:${promPort}/api/v1/targets/metadata?match_target=${encodeURIComponent('{job="blnkproxy"}')}`)).json();
        const types = new Map(meta.data.map((m) => [m.metric, m.type]));
        assert.equal(types.get('blnkproxy_requests'), 'counter', JSON.stringify([...types]));
        assert.equal(types.get('blnkproxy_build'), 'info');
        assert.equal(types.get('process_cpu_seconds'), 'counter');

        const up = await query('up{job="blnkproxy"}');
        assert.equal(up[0].value[1], '1');
        const fds = await query('process_open_fds{job="blnkproxy"}');
        assert.ok(Number(fds[0].value[1]) > 0);
    });

    test('Prometheus stops by its pid', async () => {
        const exited = new Promise((r) => prom.once('exit', (code, signal) => r({ code, signal })));
        process.kill(prom.pid, 'SIGTERM');
        const r = await Promise.race([exited, sleep(15000).then(() => null)]);
        assert.ok(r, 'Prometheus exited within 15 s of SIGTERM');
        assert.equal(r.code, 0, promLog.slice(-2000));
    });
});

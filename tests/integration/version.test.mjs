// Issue 8: `blnkproxy --version`, `-V` and `version` print the version and the git revision the
// binary was built from; /metrics carries both on blnkproxy_build_info. The revision is computed
// at build time by cmake/revision.cmake, so a rebuild after a new commit shows the new one; the
// script is tested here on scratch git repositories.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { BIN, cli, req, startProxy, tmpDir } from './lib/harness.mjs';

const SOURCE_DIR = fs.realpathSync(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..'));
const REVISION_SCRIPT = path.join(SOURCE_DIR, 'cmake', 'revision.cmake');
const CMAKE = process.env.BP_CMAKE || 'cmake';

function run(cmd, args, opts = {}) {
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30000, ...opts });
    assert.equal(r.error, undefined, `${cmd} ${args.join(' ')}: ${r.error?.message}`);
    return r;
}

function git(dir, ...args) {
    const r = run('git', ['-C', dir, ...args], {
        env: {
            ...process.env,
            GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.com',
            GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.com',
        },
    });
    return r;
}

// The revision the build must have recorded: the source tree's HEAD when the tree is the top of
// a git checkout, else "unknown" (a tarball; or a tarball unpacked inside some other repository).
function expectedRevision(dir) {
    const top = git(dir, 'rev-parse', '--show-toplevel');
    if (top.status !== 0 || fs.realpathSync(top.stdout.trim()) !== dir) {
        return 'unknown';
    }
    const head = git(dir, 'rev-parse', '--short=12', 'HEAD');
    assert.equal(head.status, 0, head.stderr);
    return head.stdout.trim();
}

// The version CMake gives the project: project(blnkproxy VERSION x.y.z ...).
function projectVersion() {
    const text = fs.readFileSync(path.join(SOURCE_DIR, 'CMakeLists.txt'), 'utf8');
    const m = /project\(blnkproxy VERSION (\d+\.\d+\.\d+)/.exec(text);
    assert.ok(m, 'project(blnkproxy VERSION ...) in CMakeLists.txt');
    return m[1];
}

const VERSION = projectVersion();
// From a clone (CI, the fresh-Debian check, a worktree) a commit; from a tarball "unknown". The
// scratch-repository cases at the end cover both branches whatever this tree is.
const REVISION = expectedRevision(SOURCE_DIR);
assert.match(REVISION, /^([0-9a-f]{12,}|unknown)$/);

describe('version command', () => {
    for (const argv of [['--version'], ['-V'], ['version']]) {
        test(`blnkproxy ${argv.join(' ')} prints "blnkproxy <version> (<revision>)"`, () => {
            const r = run(BIN, argv);
            assert.equal(r.status, 0, r.stderr);
            assert.equal(r.stdout, `blnkproxy ${VERSION} (${REVISION})\n`);
            assert.equal(r.stderr, '');
        });
    }

    test('global options before the word are accepted, as for every command', () => {
        const r = run(BIN, ['--db', path.join(tmpDir(), 'unused.db'), 'version']);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout, `blnkproxy ${VERSION} (${REVISION})\n`);
    });

    test('--json prints one object with version and revision', () => {
        for (const argv of [['--json', 'version'], ['version', '--json']]) {
            const r = cli(argv, { json: false });
            assert.equal(r.code, 0, r.stderr);
            assert.deepEqual(JSON.parse(r.stdout), { version: VERSION, revision: REVISION });
            assert.equal(r.stdout.trim().split('\n').length, 1);
        }
    });

    test('version takes no arguments; a stray one is a usage error', () => {
        const r = run(BIN, ['version', 'extra']);
        assert.equal(r.status, 2);
        assert.equal(r.stdout, '');
        assert.match(r.stderr, /too many arguments \(see `blnkproxy help version`\)/);
        const o = run(BIN, ['version', '--bogus']);
        assert.equal(o.status, 2);
        assert.match(o.stderr, /unknown option --bogus/);
    });

    test('--help lists the command and its flags; `help version` and `version --help` work', () => {
        const top = run(BIN, ['--help']);
        assert.equal(top.status, 0);
        assert.match(top.stdout, /^ {2}version +print the version and the git revision/m);
        assert.match(top.stdout, /-V, --version/);
        for (const argv of [['help', 'version'], ['version', '--help']]) {
            const r = run(BIN, argv);
            assert.equal(r.status, 0, r.stderr);
            assert.match(r.stdout, /^usage:\n {2}blnkproxy version /);
        }
    });
});

describe('blnkproxy_build_info', () => {
    let proxy;
    before(async () => {
        proxy = await startProxy();
    });
    after(async () => {
        await proxy?.stop();
    });

    test('carries the version and the revision as labels, value 1', async () => {
        const res = await req(proxy.port, 'GET', '/metrics');
        assert.equal(res.status, 200);
        const lines = res.text.split('\n').filter((l) => l.startsWith('blnkproxy_build_info'));
        assert.deepEqual(lines, [`blnkproxy_build_info{version="${VERSION}",revision="${REVISION}"} 1`]);
    });
});

describe('cmake/revision.cmake (run by the build, every time)', () => {
    const runScript = (src, out) => {
        const r = run(CMAKE, [`-DSOURCE_DIR=${src}`, `-DOUTPUT=${out}`, '-P', REVISION_SCRIPT]);
        assert.equal(r.status, 0, r.stderr);
        return fs.readFileSync(out, 'utf8');
    };
    const defined = (text) => {
        const m = /^#define BP_REVISION "([^"]*)"$/m.exec(text);
        assert.ok(m, `BP_REVISION in:\n${text}`);
        return m[1];
    };

    test('a new commit changes the header; no new commit leaves it untouched', () => {
        const repo = tmpDir();
        const out = path.join(tmpDir(), 'bp_revision.h');
        assert.equal(git(repo, 'init', '-q').status, 0);
        fs.writeFileSync(path.join(repo, 'a'), '1');
        git(repo, 'add', 'a');
        assert.equal(git(repo, 'commit', '-q', '-m', 'one').status, 0);
        const first = git(repo, 'rev-parse', '--short=12', 'HEAD').stdout.trim();
        assert.equal(defined(runScript(repo, out)), first);

        // Unchanged revision: the file is not rewritten, so nothing that includes it recompiles.
        const old = new Date('2000-01-01T00:00:00Z');
        fs.utimesSync(out, old, old);
        runScript(repo, out);
        assert.equal(fs.statSync(out).mtimeMs, old.getTime());

        fs.writeFileSync(path.join(repo, 'a'), '2');
        git(repo, 'commit', '-q', '-am', 'two');
        const second = git(repo, 'rev-parse', '--short=12', 'HEAD').stdout.trim();
        assert.notEqual(second, first);
        assert.equal(defined(runScript(repo, out)), second);
    });

    test('"unknown" outside a git checkout, and for a tree unpacked inside another repository', () => {
        const plain = tmpDir();
        const out = path.join(tmpDir(), 'bp_revision.h');
        assert.equal(defined(runScript(plain, out)), 'unknown');

        const outer = tmpDir();
        git(outer, 'init', '-q');
        fs.writeFileSync(path.join(outer, 'f'), 'x');
        git(outer, 'add', 'f');
        assert.equal(git(outer, 'commit', '-q', '-m', 'outer').status, 0);
        const inner = path.join(outer, 'blnkproxy-0.1.0');
        fs.mkdirSync(inner);
        assert.equal(defined(runScript(inner, out)), 'unknown');
    });
});

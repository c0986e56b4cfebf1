// Issue 14, item 3: `--help`, the man pages blnkproxy(1) and blnkproxy.json(5) and the shell
// completions are generated from the tables the parser and the configuration loader use. These
// tests hold them to lists made elsewhere: the settings table of docs/CONFIG.md (written by hand),
// the option rows of the C sources, and the parser itself (every flag help names is accepted).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { BIN } from './lib/harness.mjs';

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'bp-docs-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

function run(args, { cwd = root, env = {} } = {}) {
    const e = { ...process.env, ...env };
    delete e.BLNKPROXY_DB;
    delete e.BLNKPROXY_CONFIG;
    const r = spawnSync(BIN, args, { encoding: 'utf8', cwd, env: e, timeout: 30000 });
    assert.equal(r.error, undefined, `spawn ${args.join(' ')}: ${r.error}`);
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ok(args) {
    const r = run(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
}

/** Renders roff with groff's warnings on (-ww) to plain ASCII; any warning fails. */
function render(roff, what) {
    const r = spawnSync('groff', ['-man', '-ww', '-Tascii', '-P-cbou'], { input: roff, encoding: 'utf8', timeout: 30000 });
    assert.equal(r.error, undefined, `groff ran: ${r.error}`);
    assert.equal(r.status, 0, `groff ${what}: ${r.stderr}`);
    assert.equal(r.stderr, '', `groff -ww warns about ${what}:\n${r.stderr}`);
    return r.stdout.replace(/ {2,}/g, (m, at, s) => (s[at - 1] === '\n' ? m : ' '));
}

/** The settings of docs/CONFIG.md's table: [{key, env, flag}]. */
function configMdSettings() {
    const text = fs.readFileSync(path.join(SRC, 'docs/CONFIG.md'), 'utf8');
    const table = text.split('## Settings')[1].split('\n## ')[0];
    const rows = [];
    for (const line of table.split('\n')) {
        const m = /^\| `([a-z_.]+)` \| `(BLNKPROXY_[A-Z_]+)` \| `(--[a-z-]+)` \|/.exec(line);
        if (m) {
            rows.push({ key: m[1], env: m[2], flag: m[3] });
        }
    }
    return rows;
}

/** Option rows of the C sources: {"--name", VALUE, .help = ...} in src/cli, and the flag column
 *  of src/config/settings.c. */
function sourceOptions() {
    const cli = new Set();
    for (const f of fs.readdirSync(path.join(SRC, 'src/cli'))) {
        if (!f.endsWith('.c')) {
            continue;
        }
        const text = fs.readFileSync(path.join(SRC, 'src/cli', f), 'utf8');
        for (const m of text.matchAll(/\{"(--[a-z][a-z-]*)",\s*(?:NULL|"[^"]*"),\s*\.help =/g)) {
            cli.add(m[1]);
        }
    }
    const settings = fs.readFileSync(path.join(SRC, 'src/config/settings.c'), 'utf8');
    const flags = [...settings.matchAll(/"(--[a-z][a-z-]*)",\s*BP_SETTING_/g)].map((m) => m[1]);
    return { cli: [...cli], settings: flags };
}

/** The command families of the top-level help and, for each, its verbs and their flags, read from
 *  the synopsis lines of `help <family>`. */
function helpTree() {
    const top = ok(['--help']);
    const cmds = top.split('\nCommands:\n')[1].split('\n\n')[0].split('\n')
        .map((l) => /^ {2}([a-z]+) /.exec(l)?.[1]).filter(Boolean);
    const tree = {};
    for (const c of cmds) {
        const text = ok(['help', c]);
        // Synopsis lines and their continuations, up to the first blank line.
        const synopsis = text.split('usage:\n')[1].split('\n\n')[0];
        const verbs = {};
        // A command without verbs (version, completion) has no "Commands:" list of its own.
        const hasVerbs = text.includes('\nCommands:\n');
        let current = null;
        for (const line of synopsis.split('\n')) {
            const m = new RegExp(`^ {2}blnkproxy ${c}${hasVerbs ? ' ([a-z][a-z-]*)' : '()'}(.*)$`).exec(line);
            if (m) {
                current = m[1];
                verbs[current] = [];
            }
            // "(also -V, --version)" names another spelling, not an option of the verb.
            for (const f of (m ? m[2] : line).replace(/\(also [^)]*\)/, '').matchAll(/--[a-z][a-z-]*/g)) {
                verbs[current].push(f[0]);
            }
        }
        tree[c] = { text, verbs };
    }
    return { top, tree };
}

const man1 = render(ok(['man', '1']), 'blnkproxy(1)');
const man5 = render(ok(['man', '5']), 'blnkproxy.json(5)');

describe('the settings', () => {
    const settings = configMdSettings();
    const serveHelp = ok(['serve', '--help']);

    test('docs/CONFIG.md and the settings table list the same flags', () => {
        assert.ok(settings.length >= 29, `CONFIG.md lists ${settings.length} settings`);
        assert.deepEqual(settings.map((s) => s.flag).sort(), sourceOptions().settings.sort());
    });

    test('each setting (JSON key, variable, flag) is in serve --help, blnkproxy(1) and blnkproxy.json(5)', () => {
        for (const s of settings) {
            assert.ok(serveHelp.includes(`  ${s.flag} `) || serveHelp.includes(`  ${s.flag}\n`), `serve --help: ${s.flag}`);
            assert.ok(serveHelp.includes(`"${s.key}"`), `serve --help: "${s.key}"`);
            assert.ok(serveHelp.includes(`$${s.env}`), `serve --help: $${s.env}`);
            for (const [name, page] of [['blnkproxy(1)', man1], ['blnkproxy.json(5)', man5]]) {
                assert.ok(page.includes(s.flag), `${name}: ${s.flag}`);
                assert.ok(page.includes(s.env), `${name}: ${s.env}`);
                assert.ok(page.includes(s.key), `${name}: ${s.key}`);
            }
            // blnkproxy.json(5) has one entry per key: "key (type)" at the start of a line.
            assert.match(man5, new RegExp(`^ {7}${s.key.replace('.', '\\.')} \\(`, 'm'), `blnkproxy.json(5) entry for ${s.key}`);
        }
    });

    test('serve --help names no flag that serve does not take', () => {
        const known = new Set([...settings.map((s) => s.flag), '--config', '--check', '--help', '--json', '--db']);
        const named = [...serveHelp.matchAll(/^ {2}(--[a-z][a-z-]*)/gm)].map((m) => m[1]);
        assert.ok(named.length >= settings.length);
        for (const f of named) {
            assert.ok(known.has(f), `serve --help names ${f}`);
        }
    });
});

describe('the commands', () => {
    const { top, tree } = helpTree();
    const missingParent = path.join(root, 'no-such-dir', 'blnkproxy.db');

    test('the top-level help lists the DESIGN §7 commands and the new ones; `man` stays hidden', () => {
        for (const c of ['serve', 'instance', 'key', 'client', 'operator', 'audit', 'db', 'version', 'completion', 'openapi', 'help']) {
            assert.ok(tree[c], `${c} in --help:\n${top}`);
        }
        assert.equal(tree.man, undefined);
        assert.match(man1, /^ {3}instance$/m, 'blnkproxy(1) has a section per command');
        assert.doesNotMatch(man1, /^ {3}man$/m);
    });

    test('every option row of the sources is in --help and in blnkproxy(1)', () => {
        const inHelp = new Set(Object.values(tree).flatMap((t) => Object.values(t.verbs).flat()));
        const { cli } = sourceOptions();
        assert.ok(cli.length >= 30, `${cli.length} option rows found`);
        for (const f of cli) {
            if (f === '--db' || f === '--json') {
                continue; // every command's: in the top-level help, below
            }
            assert.ok(inHelp.has(f), `${f} in some --help synopsis`);
            assert.ok(man1.includes(f), `${f} in blnkproxy(1)`);
        }
        for (const f of ['--db', '--json']) {
            assert.ok(top.includes(`  ${f}`) && man1.includes(f), `global ${f}`);
        }
    });

    test('the parser takes every flag help names, for the verb help names it under', () => {
        let checked = 0;
        for (const [c, { verbs }] of Object.entries(tree)) {
            if (c === 'serve') {
                continue; // its flags are the settings, checked above
            }
            for (const [verb, flags] of Object.entries(verbs)) {
                for (const f of flags) {
                    const args = [c, ...(verb ? [verb] : []), f, 'x', '--db', missingParent];
                    const r = run(args);
                    assert.doesNotMatch(r.stderr, /unknown option/, `${args.join(' ')}: ${r.stderr}`);
                    checked++;
                }
            }
        }
        assert.ok(checked >= 30, `${checked} flags tried`);
        // The check can fail: a flag of another verb is refused.
        assert.match(run(['key', 'list', '--scopes', 'x', '--db', missingParent]).stderr, /unknown option --scopes/);
        assert.equal(fs.existsSync(path.dirname(missingParent)), false, 'nothing was created');
    });

    test('every verb and its flags are in blnkproxy(1) and in the bash completion', () => {
        for (const [c, { verbs }] of Object.entries(tree)) {
            for (const [verb, flags] of Object.entries(verbs)) {
                const r = spawnSync('bash', ['-c', `source <("$0" completion bash); _blnkproxy_opts "$1" "$2"`, BIN, c, verb],
                    { encoding: 'utf8', timeout: 30000 });
                assert.equal(r.status, 0, r.stderr);
                const offered = r.stdout.trim().split(/\s+/);
                for (const f of flags) {
                    assert.ok(offered.includes(f), `completion of ${c} ${verb}: ${f} (offered ${offered.join(' ')})`);
                }
                if (verb) {
                    assert.ok(new RegExp(`^ {7}${verb}\\b`, 'm').test(man1), `blnkproxy(1): ${c} ${verb}`);
                }
                assert.ok(man1.includes(`blnkproxy ${c}${verb ? ` ${verb}` : ''}`), `blnkproxy(1) synopsis of ${c} ${verb}`);
            }
        }
    });
});

describe('the man pages', () => {
    test('man -l renders both without warnings', () => {
        for (const section of ['1', '5']) {
            const file = path.join(root, `blnkproxy.${section}`);
            fs.writeFileSync(file, ok(['man', section]));
            const r = spawnSync('man', ['--warnings', '-l', file], {
                encoding: 'utf8', timeout: 30000, env: { ...process.env, MANPAGER: 'cat', MANWIDTH: '80', LC_ALL: 'C.UTF-8' },
            });
            assert.equal(r.status, 0, r.stderr);
            assert.equal(r.stderr, '', `man --warnings -l blnkproxy.${section}:\n${r.stderr}`);
            assert.match(r.stdout, section === '1' ? /BLNKPROXY\(1\)/ : /BLNKPROXY\.JSON\(5\)/);
        }
    });

    test('man takes section 1 or 5 only', () => {
        const r = run(['man', '8']);
        assert.equal(r.code, 2);
        assert.match(r.stderr, /section must be 1 \(commands\) or 5/);
    });
});

describe('zsh completion', () => {
    // A real interactive zsh on a pseudo-terminal (tests/integration/lib/zsh_complete.zsh): the
    // script installed as _blnkproxy on $fpath, compinit, the words typed and TAB pressed; it
    // prints each set of candidates zsh's completion system was given.
    const zshDir = fs.mkdtempSync(path.join(root, 'zsh-'));
    function complete(words) {
        const driver = path.join(SRC, 'tests/integration/lib/zsh_complete.zsh');
        const r = spawnSync('zsh', ['-f', driver, BIN, zshDir, words], { encoding: 'utf8', cwd: root, timeout: 30000 });
        assert.equal(r.error?.code === 'ENOENT' ? 'zsh is not installed: apt-get install zsh (scripts/deps.sh --test)' : undefined, undefined);
        assert.equal(r.status, 0, `zsh_complete.zsh exited ${r.status}: ${r.stderr}`);
        return [...new Set(r.stdout.split('\n').filter(Boolean))].map((l) => l.split(' '));
    }

    test('commands, verbs, options and option values, as an interactive zsh offers them', () => {
        assert.deepEqual(complete(''), [['serve', 'instance', 'key', 'client', 'operator', 'audit', 'db', 'version', 'completion', 'openapi', 'help']]);
        assert.deepEqual(complete('in'), [['instance']]);
        assert.deepEqual(complete('key '), [['create', 'list', 'show', 'revoke', 'expire', 'update', 'rotate']]);
        assert.deepEqual(complete('--db x.db key cr'), [['create']]);
        assert.deepEqual(complete('key create --'), [['--db', '--json', '--name', '--scopes', '--expires-in', '--instances', '--allow-from', '--rate', '--burst']]);
        assert.deepEqual(complete('key create --scopes '), [['proxy:read', 'proxy:write', 'proxy:read,proxy:write']]);
        assert.deepEqual(complete('key create --scopes proxy:w'), [['proxy:write']]);
        assert.deepEqual(complete('instance update instance_1 --clear-'), [['--clear-secret-key', '--clear-ca-file']]);
        assert.deepEqual(complete('serve --log-level '), [['debug', 'info', 'warn', 'error']]);
        assert.deepEqual(complete('serve --audit-wr'), [['--audit-writes']]);
        assert.deepEqual(complete('completion '), [['bash', 'zsh']]);
        assert.deepEqual(complete('instance add --name '), [], 'a value without completions offers nothing');
    });
});

describe('bash completion', () => {
    // Calls the completion function as bash would for the words typed so far (the last one is
    // the word being completed) and returns what it offers.
    function complete(words, { cwd = root } = {}) {
        const script = 'source <("$0" completion bash); shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _blnkproxy; printf "%s\\n" "${COMPREPLY[@]}"';
        const r = spawnSync('bash', ['-c', script, BIN, 'x', ...words], { encoding: 'utf8', cwd, timeout: 30000 });
        assert.equal(r.status, 0, r.stderr);
        return r.stdout.split('\n').filter(Boolean);
    }

    test('the script registers a completion function for blnkproxy', () => {
        const r = spawnSync('bash', ['-c', 'source <("$0" completion bash); complete -p blnkproxy', BIN], { encoding: 'utf8', timeout: 30000 });
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout.trim(), 'complete -F _blnkproxy blnkproxy');
    });

    test('commands, verbs, options and option values', () => {
        assert.deepEqual(complete(['blnkproxy', '']),
            ['serve', 'instance', 'key', 'client', 'operator', 'audit', 'db', 'version', 'completion', 'openapi', 'help']);
        assert.deepEqual(complete(['blnkproxy', 'in']), ['instance']);
        assert.deepEqual(complete(['blnkproxy', 'instance', '']), ['add', 'list', 'show', 'update', 'enable', 'disable', 'remove', 'check']);
        // Global options before the command are skipped, with their values.
        assert.deepEqual(complete(['blnkproxy', '--db', 'x.db', 'key', 'cr']), ['create']);
        assert.deepEqual(complete(['blnkproxy', 'key', 'create', '--sc']), ['--scopes']);
        assert.deepEqual(complete(['blnkproxy', 'key', 'create', '--scopes', 'proxy:w']), ['proxy:write']);
        assert.deepEqual(complete(['blnkproxy', 'instance', 'update', 'instance_1', '--clear-']), ['--clear-secret-key', '--clear-ca-file']);
        assert.deepEqual(complete(['blnkproxy', 'serve', '--log-level', '']), ['debug', 'info', 'warn', 'error']);
        assert.deepEqual(complete(['blnkproxy', 'serve', '--audit-wr']), ['--audit-writes']);
        assert.deepEqual(complete(['blnkproxy', 'completion', '']), ['bash', 'zsh']);
        // A value without completions offers nothing (not the option list, not files).
        assert.deepEqual(complete(['blnkproxy', 'instance', 'add', '--name', '']), []);
    });

    test('options naming a file complete file names', () => {
        const dir = fs.mkdtempSync(path.join(root, 'files-'));
        fs.writeFileSync(path.join(dir, 'core.key'), 'x\n');
        fs.writeFileSync(path.join(dir, 'other.txt'), 'x\n');
        assert.deepEqual(complete(['blnkproxy', 'instance', 'add', '--secret-key-file', 'co'], { cwd: dir }), ['core.key']);
        assert.deepEqual(complete(['blnkproxy', 'db', 'backup', 'ot'], { cwd: dir }), ['other.txt']);
    });

    test('completion takes bash or zsh only', () => {
        const r = run(['completion', 'fish']);
        assert.equal(r.code, 2);
        assert.match(r.stderr, /bash or zsh/);
        assert.match(ok(['completion', 'zsh']), /^#compdef blnkproxy\n/);
    });
});

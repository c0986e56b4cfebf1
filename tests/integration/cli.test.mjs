// The administrative CLI (DESIGN §5, §7), driven through the real binary against a temp store.
// Every run's stdout+stderr is recorded so that the secret checks at the end can grep all of it.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { makeCertificates } from './lib/certs.mjs';
import { PG, emptyDb, sql, storeBytes } from './lib/harness.mjs';

const BIN = process.env.BLNKPROXY_BIN;
assert.ok(BIN, 'set BLNKPROXY_BIN to the blnkproxy binary');

const ULID = '[0-9A-HJKMNP-TV-Z]{26}';
const INSTANCE_ID = new RegExp(`^instance_${ULID}$`);
const KEY_ID = new RegExp(`^key_${ULID}$`);
const API_KEY = /^blnk_[0-9a-f]{64}$/;
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
const INSTANCE_FIELDS = ['id', 'name', 'url', 'has_secret_key', 'ca_file', 'enabled', 'created_at', 'updated_at'];
const KEY_FIELDS = ['id', 'name', 'prefix', 'scopes', 'instances', 'allow_from', 'rate_limit', 'rate_burst', 'status', 'created_at', 'expires_at', 'last_used_at'];
const CREATE_FIELDS = ['id', 'name', 'key', 'prefix', 'scopes', 'instances', 'allow_from', 'rate_limit', 'rate_burst', 'status', 'created_at', 'expires_at', 'last_used_at'];

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'bp-cli-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

// Every invocation: { args, out } where out is stdout + stderr.
const transcript = [];
// Core secrets used anywhere in this file; none may ever be printed.
const coreSecrets = [];

let dirSeq = 0;
function tmpdir() {
  const d = path.join(root, `t${dirSeq++}`);
  fs.mkdirSync(d);
  return d;
}

function baseEnv(extra = {}) {
  const env = { ...process.env, ...extra };
  if (!('BLNKPROXY_DB' in extra)) delete env.BLNKPROXY_DB;
  return env;
}

// Runs the binary with args as given (no implicit flags).
function runRaw(args, { env = {}, cwd } = {}) {
  const r = spawnSync(BIN, args, { encoding: 'utf8', env: baseEnv(env), cwd, timeout: 30000 });
  assert.equal(r.error, undefined, `spawn failed: ${r.error}`);
  transcript.push({ args, out: r.stdout + r.stderr });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

// A store in a fresh directory, with helpers bound to it. Only a few commands create a store
// (cli_store.test.mjs): the store is made with `db migrate` unless fresh is set.
function newStore({ fresh = false } = {}) {
  const dir = tmpdir();
  // The PostgreSQL run (BLNKPROXY_TEST_STORE=pg) gets a fresh, empty database instead of a file.
  const db = PG ? emptyDb() : path.join(dir, 'blnkproxy.db');
  const run = (args, opts) => runRaw([...args, '--db', db], opts);
  if (!fresh) {
    const r = run(['db', 'migrate']);
    assert.equal(r.code, 0, `db migrate: ${r.stderr}`);
  }
  const json = (args, opts) => {
    const r = run([...args, '--json'], opts);
    assert.equal(r.code, 0, `${args.join(' ')} failed: ${r.stderr}`);
    assert.equal(r.stdout.trim().split('\n').length, 1, 'one JSON object on one line');
    return JSON.parse(r.stdout);
  };
  const fail = (args, code, stderrRe, opts) => {
    const r = run(args, opts);
    assert.equal(r.code, code, `${args.join(' ')}: expected exit ${code}, got ${r.code}; stderr: ${r.stderr}`);
    assert.match(r.stderr, /^blnkproxy: /, 'errors go to stderr prefixed "blnkproxy: "');
    if (stderrRe) assert.match(r.stderr, stderrRe);
    assert.equal(r.stdout, '', 'nothing on stdout when failing');
    return r;
  };
  const file = (name, content, mode = 0o600) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, content, { mode });
    return p;
  };
  return { dir, db, run, json, fail, file };
}

function assertInstanceShape(o) {
  assert.deepEqual(Object.keys(o), INSTANCE_FIELDS);
  assert.match(o.id, INSTANCE_ID);
  assert.equal(typeof o.has_secret_key, 'boolean');
  assert.equal(typeof o.enabled, 'boolean');
  assert.ok(o.ca_file === null || typeof o.ca_file === 'string');
  assert.match(o.created_at, RFC3339);
  assert.match(o.updated_at, RFC3339);
}

function assertKeyShape(o, fields = KEY_FIELDS) {
  assert.deepEqual(Object.keys(o), fields);
  assert.match(o.id, KEY_ID);
  assert.match(o.prefix, /^blnk_[0-9a-f]{8}$/);
  assert.ok(Array.isArray(o.scopes));
  assert.ok(o.instances === null || Array.isArray(o.instances));
  assert.ok(['active', 'revoked', 'expired'].includes(o.status));
  assert.match(o.created_at, RFC3339);
  assert.ok(o.expires_at === null || RFC3339.test(o.expires_at));
  assert.ok(o.last_used_at === null || RFC3339.test(o.last_used_at));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function haveSqlite3() {
  const r = spawnSync('sqlite3', ['-version'], { encoding: 'utf8' });
  return r.status === 0;
}

// The stored secret, read straight from the database file.
function storedSecretHex(db, id) {
  return sql(db, `SELECT ${PG ? "upper(encode(secret_key, 'hex'))" : 'hex(secret_key)'} FROM instances WHERE id = '${id}'`);
}
const hex = (s) => Buffer.from(s, 'utf8').toString('hex').toUpperCase();

describe('help and global options', () => {
  test('help, --help, -h and per-family help print usage on stdout and exit 0', () => {
    for (const args of [['help'], ['--help'], ['-h'], ['help', 'instance'], ['help', 'key'], ['help', 'db'],
      ['instance', '--help'], ['key', '--help'], ['db', '--help'], ['instance', 'add', '--help'], ['key', 'create', '-h']]) {
      const r = runRaw(args);
      assert.equal(r.code, 0, args.join(' '));
      assert.match(r.stdout, /usage:/, args.join(' '));
    }
    assert.match(runRaw(['help', 'instance']).stdout, /instance add/);
    assert.match(runRaw(['help', 'key']).stdout, /key create/);
  });

  test('no command, unknown command, unknown subcommand and unknown flags exit 2', () => {
    let r = runRaw([]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /blnkproxy: missing command/);
    r = runRaw(['frobnicate']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^blnkproxy: unknown command/);
    r = runRaw(['help', 'frobnicate']);
    assert.equal(r.code, 2);
    const s = newStore();
    s.fail(['instance'], 2, /missing subcommand/);
    s.fail(['instance', 'frob'], 2, /unknown instance command/);
    s.fail(['key', 'frob'], 2, /unknown key command/);
    s.fail(['db', 'frob'], 2, /unknown db command/);
    s.fail(['instance', 'list', '--bogus'], 2, /unknown option --bogus/);
    s.fail(['key', 'list', '--bogus=1'], 2, /unknown option --bogus/);
    s.fail(['instance', 'list', 'extra'], 2, /too many arguments/);
    s.fail(['instance', 'show'], 2, /missing ID/);
    s.fail(['key', 'show'], 2, /missing ID/);
    s.fail(['instance', 'list', '--json=yes'], 2, /--json takes no value/);
    s.fail(['instance', 'add', '--name'], 2, /--name needs a value/);
    s.fail(['instance', 'add', '--name', 'a', '--name', 'b', '--url', 'http://h'], 2, /more than once/);
    r = runRaw(['--db']);
    assert.equal(r.code, 2);
  });

  test('unknown commands, verbs and options name the nearest one (issue 8)', () => {
    const s = newStore();
    let r = runRaw(['instnace', 'list']);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, 'blnkproxy: unknown command instnace (did you mean instance?)\n');
    r = runRaw(['help', 'operatr']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command operatr \(did you mean operator\?\)/);
    r = runRaw(['serv']);
    assert.match(r.stderr, /unknown command serv \(did you mean serve\?\)/);
    s.fail(['key', 'lst'], 2, /^blnkproxy: unknown key command lst \(did you mean list\?\)/);
    s.fail(['instance', 'shwo', 'x'], 2, /unknown instance command shwo \(did you mean show\?\)/);
    s.fail(['client', 'revok', 'x'], 2, /\(did you mean revoke\?\)/);
    s.fail(['operator', 'passw', 'x'], 2, /\(did you mean passwd\?\)/);
    s.fail(['db', 'migrat'], 2, /^blnkproxy: unknown db command migrat \(did you mean migrate\?\)/);
    s.fail(['db', 'backpu', 'x'], 2, /\(did you mean backup\?\)/);
    s.fail(['audit', 'lsit'], 2, /^blnkproxy: unknown audit command lsit \(did you mean list\?\)/);
    // Options: the verb's own flags, then the global ones.
    r = s.fail(['key', 'create', '--name', 'x', '--scope', 'proxy:read'], 2);
    assert.equal(r.stderr, 'blnkproxy: unknown option --scope (did you mean --scopes?)\n');
    s.fail(['instance', 'add', '--nam', 'x', '--url', 'http://x'], 2, /unknown option --nam \(did you mean --name\?\)/);
    s.fail(['instance', 'update', 'x', '--secret-key-fle', 'f'], 2, /\(did you mean --secret-key-file\?\)/);
    s.fail(['client', 'create', '--name', 'x', '--scopes', 'proxy:read', '--redirect-url', 'https://a/cb'], 2,
      /\(did you mean --redirect-uri\?\)/);
    s.fail(['key', 'list', '--jsn'], 2, /unknown option --jsn \(did you mean --json\?\)/);
    s.fail(['instance', 'list', '--dbb', 'x'], 2, /unknown option --dbb \(did you mean --db\?\)/);
    r = runRaw(['--jsonn', 'key', 'list']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown option --jsonn \(did you mean --json\?\)/);
    // A value after '=' may be a secret: never echoed, hint or not.
    r = s.fail(['key', 'create', '--name', 'x', '--scope=hint-secret-HHHH'], 2, /unknown option --scope \(did you mean --scopes\?\)/);
    assert.ok(!r.stderr.includes('hint-secret-HHHH'));
    r = s.fail(['instance', 'add', '--secret-key-fil=hint-secret-HHHH'], 2, /did you mean --secret-key-file\?/);
    assert.ok(!r.stderr.includes('hint-secret-HHHH'));
    coreSecrets.push('hint-secret-HHHH');
    // Nothing close: no guess.
    s.fail(['key', 'list', '--frobnicate'], 2, /^blnkproxy: unknown option --frobnicate\n$/);
    r = runRaw(['xyzzy']);
    assert.equal(r.stderr, 'blnkproxy: unknown command xyzzy (see `blnkproxy help`)\n');
  });

  test('--db and --json work before the command and after it, and --flag=value works', () => {
    const s = newStore();
    let r = runRaw(['--db', s.db, '--json', 'instance', 'add', '--name=a', '--url=http://a.example']);
    assert.equal(r.code, 0, r.stderr);
    assertInstanceShape(JSON.parse(r.stdout));
    r = runRaw(['--json', 'instance', 'list', `--db=${s.db}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).instances.length, 1);
  });

  test('the store defaults to $BLNKPROXY_DB, else ./blnkproxy.db', () => {
    const dir = tmpdir();
    const envDb = path.join(dir, 'from-env.db');
    let r = runRaw(['instance', 'add', '--name', 'e', '--url', 'http://e', '--json'], { env: { BLNKPROXY_DB: envDb } });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(fs.existsSync(envDb));
    r = runRaw(['instance', 'list', '--json'], { env: { BLNKPROXY_DB: envDb } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).instances.length, 1);
    // Without either, ./blnkproxy.db: `instance list` finds none there and creates none.
    r = runRaw(['instance', 'list', '--json'], { cwd: dir });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no blnkproxy store at .*\/blnkproxy\.db/);
    assert.ok(!fs.existsSync(path.join(dir, 'blnkproxy.db')));
    r = runRaw(['instance', 'add', '--name', 'd', '--url', 'http://d', '--json'], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(fs.existsSync(path.join(dir, 'blnkproxy.db')));
    r = runRaw(['instance', 'list', '--json'], { cwd: dir });
    assert.deepEqual(JSON.parse(r.stdout).instances.map((i) => i.name), ['d']);
  });

  test('a postgres:// DSN is refused without echoing it', () => {
    const r = runRaw(['instance', 'list', '--db', 'postgres://u:pgpass-XYZ@localhost/db']);
    assert.notEqual(r.code, 0);
    assert.ok(!(r.stdout + r.stderr).includes('pgpass-XYZ'));
  });
});

describe('db', () => {
  test('db migrate applies once, then reports 0', () => {
    const s = newStore({ fresh: true });
    const first = s.json(['db', 'migrate']);
    assert.deepEqual(Object.keys(first), ['applied', 'version']);
    assert.ok(first.applied >= 1);
    assert.equal(first.version, first.applied);
    const again = s.json(['db', 'migrate']);
    assert.deepEqual(again, { applied: 0, version: first.version });
    const human = s.run(['db', 'migrate']);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /applied:\s+0/);
    s.fail(['db', 'migrate', 'extra'], 2);
  });

  test('the database file is created with mode 0600 and its WAL files are private',
    { skip: PG && 'SQLite only: a PostgreSQL store has no file of its own' }, () => {
    const s = newStore({ fresh: true });
    s.json(['instance', 'add', '--name', 'p', '--url', 'http://p']);
    assert.equal(fs.statSync(s.db).mode & 0o777, 0o600);
    for (const suffix of ['-wal', '-shm']) {
      const p = s.db + suffix;
      if (fs.existsSync(p)) assert.equal(fs.statSync(p).mode & 0o077, 0, `${suffix} must not be group/world accessible`);
    }
  });

  test('an unwritable database path fails with exit 1', () => {
    const where = path.join(root, 'no', 'such', 'dir', 'x.db');
    for (const args of [['instance', 'list'], ['db', 'migrate'], ['instance', 'add', '--name', 'x', '--url', 'http://x']]) {
      const r = runRaw([...args, '--db', where]);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, /^blnkproxy: /);
    }
    assert.ok(!fs.existsSync(path.join(root, 'no')));
  });
});

describe('instance', () => {
  test('add prints the object; list and show agree', () => {
    const s = newStore();
    const a = s.json(['instance', 'add', '--name', 'prod', '--url', 'https://core.example:8443/api/']);
    assertInstanceShape(a);
    assert.equal(a.name, 'prod');
    assert.equal(a.url, 'https://core.example:8443/api', 'trailing slash stripped');
    assert.equal(a.has_secret_key, false);
    assert.equal(a.ca_file, null);
    assert.equal(a.enabled, true);
    assert.equal(a.created_at, a.updated_at);
    const b = s.json(['instance', 'add', '--name', 'staging', '--url', 'HTTP://127.0.0.1:5001']);
    assert.equal(b.url, 'http://127.0.0.1:5001', 'scheme lowercased');
    assert.notEqual(a.id, b.id);

    const list = s.json(['instance', 'list']);
    assert.deepEqual(Object.keys(list), ['instances']);
    assert.deepEqual(list.instances, [a, b]);
    assert.deepEqual(s.json(['instance', 'show', a.id]), a);

    const human = s.run(['instance', 'list']);
    assert.equal(human.code, 0);
    const lines = human.stdout.trimEnd().split('\n');
    assert.match(lines[0], /^ID\s+NAME\s+URL\s+/);
    assert.equal(lines.length, 3);
    assert.ok(lines[1].startsWith(a.id) && lines[1].includes('prod'));
    // Columns line up: every row's NAME starts where the header's does.
    const col = lines[0].indexOf('NAME');
    assert.equal(lines[1].indexOf('prod'), col);
    assert.equal(lines[2].indexOf('staging'), col);

    const show = s.run(['instance', 'show', a.id]);
    assert.match(show.stdout, new RegExp(`^id:\\s+${a.id}$`, 'm'));
    assert.match(show.stdout, /^url:\s+https:\/\/core\.example:8443\/api$/m);
    assert.match(show.stdout, /^created_at:\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/m);
  });

  test('add without a Core secret key warns that Core will answer 401, and says how to add one', () => {
    const s = newStore();
    const r = s.run(['instance', 'add', '--name', 'nokey', '--url', 'http://127.0.0.1:5001', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const a = JSON.parse(r.stdout);
    assert.equal(a.has_secret_key, false);
    assert.match(r.stderr, /^blnkproxy: warning: instance nokey has no Core secret key/);
    assert.match(r.stderr, /Core will answer 401 to every request unless it runs without authentication/);
    assert.ok(r.stderr.includes(`blnkproxy instance update ${a.id} --secret-key-file FILE`), r.stderr);
    // With a key: nothing on stderr.
    const sk = s.file('sk', 'core-secret-warn-1\n');
    coreSecrets.push('core-secret-warn-1');
    const withKey = s.run(['instance', 'add', '--name', 'withkey', '--url', 'http://127.0.0.1:5001', '--secret-key-file', sk]);
    assert.equal(withKey.code, 0, withKey.stderr);
    assert.equal(withKey.stderr, '');
  });

  test('an empty list', () => {
    const s = newStore();
    assert.deepEqual(s.json(['instance', 'list']), { instances: [] });
    assert.equal(s.run(['instance', 'list']).code, 0);
  });

  test('add validates name and url (exit 2)', () => {
    const s = newStore();
    s.fail(['instance', 'add', '--url', 'http://h'], 2, /--name/);
    s.fail(['instance', 'add', '--name', 'x'], 2, /--url/);
    s.fail(['instance', 'add', '--name', '', '--url', 'http://h'], 2, /invalid --name/);
    s.fail(['instance', 'add', '--name', 'x'.repeat(101), '--url', 'http://h'], 2, /invalid --name/);
    s.fail(['instance', 'add', '--name', 'tab\there', '--url', 'http://h'], 2, /invalid --name/);
    assert.equal(s.run(['instance', 'add', '--name', 'x'.repeat(100), '--url', 'http://h']).code, 0);
    const badUrls = [
      '', 'core.example', 'ftp://core.example', 'http://', 'http:///path', 'https://:80',
      'http://h:0', 'http://h:65536', 'http://h:', 'http://h:8x', 'http://h/a?b=c', 'http://h/#frag',
      'http://user:pw@h', 'http://h/a b', 'http://h\n', 'http://h/\u00e9', 'http://h\u0001',
      'http://[::1', 'http://h!/',
    ];
    for (const url of badUrls) {
      s.fail(['instance', 'add', '--name', 'bad', '--url', url], 2, /invalid --url/);
    }
    for (const [url, want] of [
      ['http://h', 'http://h'], ['https://h:65535/', 'https://h:65535'], ['http://[::1]:8080/x/', 'http://[::1]:8080/x'],
      ['http://core-1.internal_x.example/v1/blnk//', 'http://core-1.internal_x.example/v1/blnk'],
    ]) {
      const r = s.run(['instance', 'add', '--name', `ok ${url}`, '--url', url, '--json']);
      assert.equal(r.code, 0, `${url}: ${r.stderr}`);
      assert.equal(JSON.parse(r.stdout).url, want);
    }
    assert.equal(s.json(['instance', 'list']).instances.filter((i) => i.name === 'bad').length, 0);
  });

  test('duplicate names are refused with exit 2', () => {
    const s = newStore();
    const a = s.json(['instance', 'add', '--name', 'prod', '--url', 'http://a']);
    s.fail(['instance', 'add', '--name', 'prod', '--url', 'http://b'], 2, /already exists/);
    const b = s.json(['instance', 'add', '--name', 'other', '--url', 'http://b']);
    s.fail(['instance', 'update', b.id, '--name', 'prod'], 2, /already exists/);
    assert.equal(s.json(['instance', 'show', a.id]).url, 'http://a');
  });

  test('--ca-file must be a readable file of CA certificates and is stored as an absolute path', () => {
    const s = newStore();
    const { ca } = makeCertificates(s.dir);
    for (const [name, text] of [['half.pem', '-----BEGIN CERTIFICATE-----\n'], ['words.pem', 'not a certificate'], ['empty.pem', '']]) {
      s.fail(['instance', 'add', '--name', 'x', '--url', 'https://h', '--ca-file', s.file(name, text)], 2,
        /--ca-file .*(not a PEM file of CA certificates|empty)/);
    }
    const big = s.file('big.pem', fs.readFileSync(ca, 'utf8').repeat(Math.ceil((1024 * 1024 + 1) / fs.statSync(ca).size)));
    s.fail(['instance', 'add', '--name', 'x', '--url', 'https://h', '--ca-file', big], 2, /larger than a CA bundle/);
    s.fail(['instance', 'add', '--name', 'x', '--url', 'https://h', '--ca-file', path.join(s.dir, 'nope.pem')], 2, /--ca-file/);
    s.fail(['instance', 'add', '--name', 'x', '--url', 'https://h', '--ca-file', s.dir], 2, /--ca-file/);
    const rel = runRaw(['instance', 'add', '--name', 'x', '--url', 'https://h', '--ca-file', 'ca.pem', '--db', s.db, '--json'], { cwd: s.dir });
    assert.equal(rel.code, 0, rel.stderr);
    assert.equal(JSON.parse(rel.stdout).ca_file, fs.realpathSync(ca));
    if (process.getuid && process.getuid() !== 0) {
      const unreadable = s.file('locked.pem', 'x', 0o000);
      s.fail(['instance', 'add', '--name', 'y', '--url', 'https://h', '--ca-file', unreadable], 2, /--ca-file/);
    }
  });

  test('update changes only what it is told to; enable and disable', async () => {
    const s = newStore();
    const sk = s.file('sk', 'core-secret-update-1\n');
    coreSecrets.push('core-secret-update-1');
    const { ca } = makeCertificates(s.dir);
    const a = s.json(['instance', 'add', '--name', 'prod', '--url', 'http://a', '--secret-key-file', sk, '--ca-file', ca]);
    assert.equal(a.has_secret_key, true);
    await sleep(1100); // updated_at has one-second resolution
    const u = s.json(['instance', 'update', a.id, '--url', 'https://b/x/', '--name', 'prod2']);
    assertInstanceShape(u);
    assert.equal(u.id, a.id);
    assert.equal(u.url, 'https://b/x');
    assert.equal(u.name, 'prod2');
    assert.equal(u.has_secret_key, true);
    assert.equal(u.ca_file, a.ca_file);
    assert.equal(u.created_at, a.created_at);
    assert.ok(u.updated_at > a.updated_at);

    assert.equal(s.json(['instance', 'update', a.id, '--clear-secret-key']).has_secret_key, false);
    assert.equal(s.json(['instance', 'update', a.id, '--clear-ca-file']).ca_file, null);
    assert.equal(s.json(['instance', 'update', a.id, '--disable']).enabled, false);
    assert.equal(s.json(['instance', 'show', a.id]).enabled, false);
    assert.equal(s.json(['instance', 'update', a.id, '--enable']).enabled, true);
    assert.equal(s.json(['instance', 'disable', a.id]).enabled, false);
    assert.equal(s.json(['instance', 'disable', a.id]).enabled, false, 'idempotent');
    assert.equal(s.json(['instance', 'enable', a.id]).enabled, true);
    process.env.BP_TEST_UPDATE_SECRET = 'core-secret-update-2';
    coreSecrets.push('core-secret-update-2');
    assert.equal(s.json(['instance', 'update', a.id, '--secret-key-env', 'BP_TEST_UPDATE_SECRET']).has_secret_key, true);
    delete process.env.BP_TEST_UPDATE_SECRET;

    s.fail(['instance', 'update', a.id], 2, /nothing to change/);
    s.fail(['instance', 'update', a.id, '--enable', '--disable'], 2, /--enable and --disable/);
    s.fail(['instance', 'update', a.id, '--clear-secret-key', '--secret-key-file', sk], 2);
    s.fail(['instance', 'update', a.id, '--ca-file', ca, '--clear-ca-file'], 2);
    s.fail(['instance', 'update', a.id, '--url', 'gopher://x'], 2, /invalid --url/);
    s.fail(['instance', 'update', a.id, '--name', ''], 2, /invalid --name/);
    s.fail(['instance', 'update', a.id, '--bogus'], 2, /unknown option/);
  });

  test('unknown ids exit 3', () => {
    const s = newStore();
    const ghost = 'instance_01ARZ3NDEKTSV4RRFFQ69G5FAV';
    s.fail(['instance', 'show', ghost], 3, /unknown instance/);
    s.fail(['instance', 'update', ghost, '--name', 'n'], 3, /unknown instance/);
    s.fail(['instance', 'enable', ghost], 3, /unknown instance/);
    s.fail(['instance', 'disable', ghost], 3, /unknown instance/);
    s.fail(['instance', 'remove', ghost], 3, /unknown instance/);
    // Validation comes before the lookup.
    s.fail(['instance', 'update', ghost, '--url', 'nope'], 2, /invalid --url/);
  });

  test('remove deletes the row; keys restricted to it keep the id', () => {
    const s = newStore();
    const a = s.json(['instance', 'add', '--name', 'a', '--url', 'http://a']);
    const k = s.json(['key', 'create', '--name', 'k', '--scopes', 'proxy:read', '--instances', a.id]);
    const r = s.json(['instance', 'remove', a.id]);
    assert.deepEqual(r, { id: a.id, removed: true });
    s.fail(['instance', 'show', a.id], 3);
    s.fail(['instance', 'remove', a.id], 3);
    assert.deepEqual(s.json(['instance', 'list']), { instances: [] });
    assert.deepEqual(s.json(['key', 'show', k.id]).instances, [a.id]);
    const human = s.run(['instance', 'remove', s.json(['instance', 'add', '--name', 'b', '--url', 'http://b']).id]);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /removed:\s+yes/);
  });
});

describe('instance secret key', () => {
  test('from a file: one trailing \\n or \\r\\n is stripped, nothing else', { skip: !haveSqlite3() && 'sqlite3 CLI not installed' }, () => {
    const s = newStore();
    const cases = [
      ['lf', 'core-secret-lf-AAAA\n', 'core-secret-lf-AAAA'],
      ['crlf', 'core-secret-crlf-BBBB\r\n', 'core-secret-crlf-BBBB'],
      ['none', 'core-secret-none-CCCC', 'core-secret-none-CCCC'],
    ];
    for (const [name, content, want] of cases) {
      coreSecrets.push(want);
      const f = s.file(`sk-${name}`, content);
      const o = s.json(['instance', 'add', '--name', name, '--url', 'http://h', '--secret-key-file', f]);
      assert.equal(o.has_secret_key, true);
      assert.equal(storedSecretHex(s.db, o.id), hex(want), name);
    }
  });

  test('from an environment variable', { skip: !haveSqlite3() && 'sqlite3 CLI not installed' }, () => {
    const s = newStore();
    const secret = 'core-secret-env-DDDD';
    coreSecrets.push(secret);
    const o = s.json(['instance', 'add', '--name', 'e', '--url', 'http://h', '--secret-key-env', 'BP_CORE_SECRET'],
      { env: { BP_CORE_SECRET: secret } });
    assert.equal(o.has_secret_key, true);
    assert.equal(storedSecretHex(s.db, o.id), hex(secret));
  });

  test('bad secret sources exit 2', () => {
    const s = newStore();
    const add = ['instance', 'add', '--name', 'x', '--url', 'http://h'];
    s.fail([...add, '--secret-key-file', s.file('empty', '')], 2, /--secret-key-file/);
    s.fail([...add, '--secret-key-file', s.file('nl', '\n')], 2, /--secret-key-file/);
    s.fail([...add, '--secret-key-file', s.file('crlf', '\r\n')], 2, /--secret-key-file/);
    s.fail([...add, '--secret-key-file', s.file('two-nl', 'core-secret-twonl\n\n')], 2, /--secret-key-file/);
    s.fail([...add, '--secret-key-file', s.file('inner', 'core-sec ret')], 2, /--secret-key-file/);
    s.fail([...add, '--secret-key-file', s.file('big', 'a'.repeat(4097))], 2, /--secret-key-file/);
    s.fail([...add, '--secret-key-file', s.file('big-nl', 'a'.repeat(4097) + '\n')], 2, /--secret-key-file/);
    s.fail([...add, '--secret-key-file', path.join(s.dir, 'missing')], 2, /--secret-key-file/);
    s.fail([...add, '--secret-key-env', 'BP_DEFINITELY_UNSET_VAR'], 2, /--secret-key-env/);
    s.fail([...add, '--secret-key-env', 'BP_EMPTY'], 2, /--secret-key-env/, { env: { BP_EMPTY: '' } });
    s.fail([...add, '--secret-key-file', s.file('a', 'x'), '--secret-key-env', 'HOME'], 2, /only one/);
    assert.deepEqual(s.json(['instance', 'list']), { instances: [] });
    // The limit is inclusive.
    const max = s.json([...add, '--secret-key-file', s.file('max', 'b'.repeat(4096) + '\n')]);
    assert.equal(max.has_secret_key, true);
  });

  test('--secret-key is refused and its value never echoed', () => {
    const s = newStore();
    for (const args of [['--secret-key', 'argv-secret-EEEE'], ['--secret-key=argv-secret-EEEE']]) {
      const r = s.fail(['instance', 'add', '--name', 'x', '--url', 'http://h', ...args], 2, /--secret-key-file/);
      assert.match(r.stderr, /--secret-key-env/);
      assert.ok(!r.stderr.includes('argv-secret-EEEE'));
    }
    const a = s.json(['instance', 'add', '--name', 'y', '--url', 'http://h']);
    s.fail(['instance', 'update', a.id, '--secret-key=argv-secret-EEEE'], 2, /--secret-key-file/);
    s.fail(['instance', 'update', a.id, '--bogus=argv-secret-EEEE'], 2, /unknown option --bogus/);
    coreSecrets.push('argv-secret-EEEE');
  });

  test('no command ever prints the Core secret', () => {
    const s = newStore();
    const fileSecret = 'core-secret-file-FFFF';
    const envSecret = 'core-secret-env-GGGG';
    coreSecrets.push(fileSecret, envSecret);
    const f = s.file('sk', fileSecret + '\n');
    const env = { BP_SK: envSecret };
    const a = s.json(['instance', 'add', '--name', 'a', '--url', 'http://a', '--secret-key-file', f]);
    s.run(['instance', 'add', '--name', 'b', '--url', 'http://b', '--secret-key-env', 'BP_SK'], { env });
    s.run(['instance', 'add', '--name', 'a', '--url', 'http://a', '--secret-key-file', f]); // duplicate
    s.run(['instance', 'add', '--name', 'c', '--url', 'bad', '--secret-key-env', 'BP_SK'], { env });
    for (const json of [[], ['--json']]) {
      s.run(['instance', 'list', ...json]);
      s.run(['instance', 'show', a.id, ...json]);
      s.run(['instance', 'update', a.id, '--secret-key-env', 'BP_SK', ...json], { env });
      s.run(['instance', 'update', a.id, '--secret-key-file', f, ...json]);
      s.run(['instance', 'disable', a.id, ...json]);
      s.run(['instance', 'enable', a.id, ...json]);
    }
    // The transcript check at the end covers every run in this file.
  });
});

describe('key', () => {
  test('create prints the key once, with the documented shape', () => {
    const s = newStore();
    const i1 = s.json(['instance', 'add', '--name', 'a', '--url', 'http://a']);
    const i2 = s.json(['instance', 'add', '--name', 'b', '--url', 'http://b']);
    const k = s.json(['key', 'create', '--name', 'ci', '--scopes', 'proxy:write,proxy:read',
      '--expires-in', '30d', '--instances', `${i1.id},${i2.id},${i1.id}`]);
    assertKeyShape(k, CREATE_FIELDS);
    assert.match(k.key, API_KEY);
    assert.equal(k.prefix, k.key.slice(0, 13));
    assert.deepEqual(k.scopes, ['proxy:read', 'proxy:write']);
    assert.deepEqual(k.instances, [i1.id, i2.id], 'deduplicated, in order');
    assert.equal(k.status, 'active');
    assert.equal(k.last_used_at, null);
    const days = (Date.parse(k.expires_at) - Date.parse(k.created_at)) / 86400e3;
    assert.equal(days, 30);

    const shown = s.json(['key', 'show', k.id]);
    assertKeyShape(shown);
    const { key: _omit, ...rest } = k;
    assert.deepEqual(shown, rest);
    const list = s.json(['key', 'list']);
    assert.deepEqual(Object.keys(list), ['keys']);
    assert.deepEqual(list.keys, [rest]);

    const star = s.json(['key', 'create', '--name', 'admin', '--scopes', '*']);
    assert.deepEqual(star.scopes, ['*']);
    assert.equal(star.instances, null);
    assert.equal(star.expires_at, null);
    assert.notEqual(star.key, k.key);
    const never = s.json(['key', 'create', '--name', 'n', '--scopes', 'proxy:read', '--expires-in', 'never']);
    assert.equal(never.expires_at, null);
    for (const [d, secs] of [['90s', 90], ['15m', 900], ['2h', 7200]]) {
      const o = s.json(['key', 'create', '--name', d, '--scopes', 'proxy:read', '--expires-in', d]);
      assert.equal((Date.parse(o.expires_at) - Date.parse(o.created_at)) / 1000, secs);
    }
  });

  test('create in human mode labels the key and warns it is shown once', () => {
    const s = newStore();
    const r = s.run(['key', 'create', '--name', 'h', '--scopes', 'proxy:read']);
    assert.equal(r.code, 0, r.stderr);
    const m = r.stdout.match(/^API key: (blnk_[0-9a-f]{64})$/m);
    assert.ok(m, r.stdout);
    assert.match(r.stdout, /shown only once/);
    assert.match(r.stdout, /^id:\s+key_/m);
    assert.match(r.stdout, /^status:\s+active$/m);
    // The key is on its own line only.
    assert.equal(r.stdout.split(m[1]).length, 2);
  });

  test('create validates its input', () => {
    const s = newStore();
    s.fail(['key', 'create', '--scopes', 'proxy:read'], 2, /--name/);
    s.fail(['key', 'create', '--name', 'x'], 2, /--scopes/);
    s.fail(['key', 'create', '--name', '', '--scopes', 'proxy:read'], 2, /invalid --name/);
    s.fail(['key', 'create', '--name', 'x', '--scopes', 'proxy:read,proxy:admin'], 2, /unknown scope "proxy:admin"/);
    s.fail(['key', 'create', '--name', 'x', '--scopes', 'PROXY:READ'], 2, /unknown scope "PROXY:READ"/);
    s.fail(['key', 'create', '--name', 'x', '--scopes', ''], 2, /empty scope/);
    s.fail(['key', 'create', '--name', 'x', '--scopes', 'proxy:read,'], 2, /empty scope/);
    for (const d of ['0d', '-1d', '10', 'd', '5y', 'forever', '1.5h', '']) {
      s.fail(['key', 'create', '--name', 'x', '--scopes', 'proxy:read', '--expires-in', d], 2, /invalid --expires-in/);
    }
    s.fail(['key', 'create', '--name', 'x', '--scopes', 'proxy:read', '--instances', ''], 2, /--instances/);
    s.fail(['key', 'create', '--name', 'x', '--scopes', 'proxy:read', '--instances', 'a,,b'], 2, /--instances/);
    s.fail(['key', 'create', '--name', 'x', '--scopes', 'proxy:read', '--instances', 'instance_NOPE'], 3, /unknown instance instance_NOPE/);
    const i = s.json(['instance', 'add', '--name', 'a', '--url', 'http://a']);
    s.fail(['key', 'create', '--name', 'x', '--scopes', 'proxy:read', '--instances', `${i.id},instance_NOPE`], 3, /unknown instance/);
    s.fail(['key', 'create', '--name', 'x', '--scopes', 'proxy:read', '--bogus'], 2, /unknown option/);
    assert.deepEqual(s.json(['key', 'list']), { keys: [] }, 'nothing was created');
    // A disabled instance may still be named.
    s.json(['instance', 'disable', i.id]);
    assert.deepEqual(s.json(['key', 'create', '--name', 'x', '--scopes', 'proxy:read', '--instances', i.id]).instances, [i.id]);
  });

  test('revoke is idempotent and keeps the row', () => {
    const s = newStore();
    const k = s.json(['key', 'create', '--name', 'r', '--scopes', 'proxy:read']);
    const r1 = s.json(['key', 'revoke', k.id]);
    assertKeyShape(r1);
    assert.equal(r1.status, 'revoked');
    const again = s.run(['key', 'revoke', k.id]);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /already revoked/i);
    assert.match(again.stdout, /^status:\s+revoked$/m);
    assert.equal(s.json(['key', 'revoke', k.id]).status, 'revoked');
    assert.equal(s.json(['key', 'list']).keys.length, 1);
    // A revoked key stays revoked whatever its expiry.
    assert.equal(s.json(['key', 'expire', k.id, '--expires-in', 'never']).status, 'revoked');
  });

  test('expire sets, clears and lapses the expiry', async () => {
    const s = newStore();
    const k = s.json(['key', 'create', '--name', 'e', '--scopes', 'proxy:read']);
    const e7 = s.json(['key', 'expire', k.id, '--expires-in', '7d']);
    assertKeyShape(e7);
    const left = Date.parse(e7.expires_at) - Date.now();
    assert.ok(left > 7 * 86400e3 - 60e3 && left <= 7 * 86400e3 + 1e3, `7d from now, got ${e7.expires_at}`);
    assert.equal(e7.status, 'active');
    assert.equal(s.json(['key', 'expire', k.id, '--expires-in', 'never']).expires_at, null);
    s.json(['key', 'expire', k.id, '--expires-in', '1s']);
    await sleep(2100);
    assert.equal(s.json(['key', 'show', k.id]).status, 'expired');
    assert.equal(s.json(['key', 'list']).keys[0].status, 'expired');
    assert.match(s.run(['key', 'list']).stdout, /expired/);
    assert.equal(s.json(['key', 'expire', k.id, '--expires-in', '1h']).status, 'active');

    s.fail(['key', 'expire', k.id], 2, /--expires-in/);
    s.fail(['key', 'expire', k.id, '--expires-in', 'soon'], 2, /invalid --expires-in/);
    s.fail(['key', 'expire', '--expires-in', '1d'], 2, /missing ID/);
  });

  test('unknown key ids exit 3', () => {
    const s = newStore();
    const ghost = 'key_01ARZ3NDEKTSV4RRFFQ69G5FAV';
    s.fail(['key', 'show', ghost], 3, /unknown key/);
    s.fail(['key', 'revoke', ghost], 3, /unknown key/);
    s.fail(['key', 'expire', ghost, '--expires-in', '1d'], 3, /unknown key/);
    s.fail(['key', 'expire', ghost, '--expires-in', 'bad'], 2);
  });

  test('list in human mode is a table', () => {
    const s = newStore();
    const a = s.json(['key', 'create', '--name', 'first', '--scopes', 'proxy:read']);
    s.json(['key', 'create', '--name', 'second', '--scopes', '*', '--expires-in', '1d']);
    const r = s.run(['key', 'list']);
    assert.equal(r.code, 0);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 3);
    assert.match(lines[0], /^ID\s+NAME\s+PREFIX\s+SCOPES\s+INSTANCES\s+STATUS\s+EXPIRES AT\s+LAST USED AT$/);
    assert.ok(lines[1].startsWith(a.id));
    assert.ok(lines[1].includes(a.prefix));
    assert.equal(lines[1].indexOf('first'), lines[0].indexOf('NAME'));
    assert.equal(lines[2].indexOf('second'), lines[0].indexOf('NAME'));
    assert.deepEqual(s.json(['key', 'list']).keys.map((k) => k.name), ['first', 'second']);
  });

  test('the store holds only the digest and prefix', { skip: !haveSqlite3() && 'sqlite3 CLI not installed' }, async () => {
    const s = newStore();
    const k = s.json(['key', 'create', '--name', 'd', '--scopes', 'proxy:read']);
    const { createHash } = await import('node:crypto');
    assert.ok(!storeBytes(s.db).includes(k.key.slice(5)), 'key text not in the database');
    const hexDigest = PG ? "upper(encode(digest, 'hex'))" : 'hex(digest)';
    const row = sql(s.db, `SELECT ${hexDigest}, prefix FROM api_keys WHERE id = '${k.id}'`);
    const [digest, prefix] = row.split('|');
    assert.equal(digest, createHash('sha256').update(k.key).digest('hex').toUpperCase());
    assert.equal(prefix, k.prefix);
  });
});

describe('--json shapes (issue 8)', () => {
  test('instances, keys, clients and operators: every record has id; lists are {"<plural>": [records]}', () => {
    const s = newStore();
    const pw = s.file('pw', 'operator-password-1\n');
    const made = {
      instances: s.json(['instance', 'add', '--name', 'a', '--url', 'http://a']),
      keys: s.json(['key', 'create', '--name', 'k', '--scopes', 'proxy:read']),
      clients: s.json(['client', 'create', '--name', 'c', '--scopes', 'proxy:read,proxy:write']),
      operators: s.json(['operator', 'create', '--name', 'o', '--password-file', pw]),
    };
    const family = { instances: 'instance', keys: 'key', clients: 'client', operators: 'operator' };
    for (const [plural, created] of Object.entries(made)) {
      assert.equal(typeof created.id, 'string', `${plural}: create has id`);
      assert.equal(Object.keys(created)[0], 'id', `${plural}: id comes first`);
      const list = s.json([family[plural], 'list']);
      assert.deepEqual(Object.keys(list), [plural]);
      assert.ok(Array.isArray(list[plural]));
      assert.equal(list[plural].length, 1);
      assert.equal(list[plural][0].id, created.id);
      if (plural !== 'operators') {
        assert.deepEqual(s.json([family[plural], 'show', created.id]), list[plural][0], `${plural}: show = list row`);
      }
    }
    // Lists of names are arrays in every record.
    assert.deepEqual(made.keys.scopes, ['proxy:read']);
    assert.deepEqual(made.clients.scopes, ['proxy:read', 'proxy:write']);
    assert.deepEqual(made.clients.grant_types, ['client_credentials']);
    // The creation outputs carry the one-time secret beside the record (DESIGN §7).
    assert.match(made.keys.key, API_KEY);
    assert.equal(made.clients.client_id, made.clients.id);
    assert.match(made.clients.client_secret, /^blnk_cs_[0-9a-f]{64}$/);
  });
});

describe('secrets in output', () => {
  test('every key text appears only in its own create output', () => {
    const s = newStore();
    // Exercise every other command against a store holding keys.
    const i = s.json(['instance', 'add', '--name', 'a', '--url', 'http://a']);
    const k = s.json(['key', 'create', '--name', 'leak', '--scopes', 'proxy:read', '--instances', i.id]);
    s.run(['key', 'create', '--name', 'leak2', '--scopes', 'proxy:write']);
    for (const json of [[], ['--json']]) {
      s.run(['key', 'list', ...json]);
      s.run(['key', 'show', k.id, ...json]);
      s.run(['key', 'expire', k.id, '--expires-in', '5d', ...json]);
      s.run(['key', 'revoke', k.id, ...json]);
      s.run(['instance', 'list', ...json]);
      s.run(['instance', 'show', i.id, ...json]);
      s.run(['db', 'migrate', ...json]);
    }

    const keys = new Set();
    for (const { out } of transcript) {
      for (const m of out.matchAll(/blnk_[0-9a-f]{64}/g)) keys.add(m[0]);
    }
    assert.ok(keys.size >= 3, 'keys were created in this file');
    for (const key of keys) {
      const runs = transcript.filter(({ out }) => out.includes(key));
      assert.equal(runs.length, 1, `${key.slice(0, 13)}… printed by ${runs.length} runs`);
      assert.deepEqual(runs[0].args.slice(0, 2), ['key', 'create']);
      assert.equal(runs[0].out.split(key).length, 2, 'printed exactly once');
    }
    // No key's hex body leaks without its prefix either.
    for (const key of keys) {
      const body = key.slice(5);
      assert.equal(transcript.filter(({ out }) => out.includes(body)).length, 1);
    }
  });

  test('no Core secret appears in any output', () => {
    assert.ok(coreSecrets.length >= 5);
    for (const secret of coreSecrets) {
      for (const { args, out } of transcript) {
        assert.ok(!out.includes(secret), `Core secret printed by: ${args.join(' ')}`);
      }
    }
  });
});

// The OAuth administration CLI (issue 3 items 1 and 2, DESIGN §5–§7): `client …` and
// `operator …` driven through the real binary against a temp store. Every run is recorded by the
// harness (cliHistory) so the checks at the end can grep all output for passwords and secrets.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { PG, bearer, cli, cliHistory, req, setupWorld, sql, storeBytes, tmpDir, tmpDb, randomHex, waitFor } from './lib/harness.mjs';
import { authorizeCode, basic, createClient as createOAuthClient, createOperator, pkcePair, token } from './lib/oauth_flow.mjs';

assert.ok(process.env.BLNKPROXY_BIN, 'set BLNKPROXY_BIN to the blnkproxy binary');

const ULID = '[0-9A-HJKMNP-TV-Z]{26}';
const CLIENT_ID = new RegExp(`^client_${ULID}$`);
const OPERATOR_ID = new RegExp(`^operator_${ULID}$`);
const CLIENT_SECRET = /^blnk_cs_[0-9a-f]{64}$/;
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
// One record shape for every family (issue 8): `id` first, lists as arrays. The creation output
// adds the DESIGN §7 fields client_id (= id) and client_secret.
const CLIENT_FIELDS = ['id', 'name', 'scopes', 'redirect_uris', 'grant_types', 'instances', 'allow_from', 'rate_limit', 'rate_burst', 'status', 'created_at',
  'expires_at'];
const CREATE_FIELDS = ['id', 'name', 'client_id', 'client_secret', ...CLIENT_FIELDS.slice(2)];
const OPERATOR_FIELDS = ['id', 'name', 'role', 'status', 'created_at', 'updated_at'];

// Every client secret and operator password this file handles; checked against all output.
const clientSecrets = [];
const passwords = [];

// The bytes of the store (the file and any WAL left behind; on PostgreSQL a dump).
const dbBytes = storeBytes;

const sha256hex = (text) => crypto.createHash('sha256').update(text).digest('hex');

function ok(args, opts) {
  const r = cli(args, opts);
  assert.equal(r.code, 0, `blnkproxy ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  assert.ok(r.json, `stdout is not JSON: ${r.stdout}`);
  assert.equal(r.stdout.trim().split('\n').length, 1, 'one JSON object on one line');
  return r.json;
}

function fail(args, code, stderrRe, opts) {
  const r = cli(args, opts);
  assert.equal(r.code, code, `${args.join(' ')}: expected exit ${code}, got ${r.code}; stderr: ${r.stderr}`);
  assert.match(r.stderr, /^blnkproxy: /);
  if (stderrRe) assert.match(r.stderr, stderrRe);
  assert.equal(r.stdout, '', 'nothing on stdout when failing');
  return r;
}

function createClient(db, extra = [], name = `app-${randomHex(3)}`) {
  const j = ok(['client', 'create', '--name', name, '--scopes', 'proxy:read', ...extra], { db });
  clientSecrets.push(j.client_secret);
  return j;
}

function pwFile(content) {
  const f = path.join(tmpDir(), 'pw');
  fs.writeFileSync(f, content, { mode: 0o600 });
  return f;
}

function newPassword() {
  const pw = `pw-${randomHex(12)}`;
  passwords.push(pw);
  return pw;
}

function auditRows(db) {
  const out = sql(db, "SELECT action || '|' || coalesce(resource_id,'') || '|' || category || '|' || actor_type"
    + " || '|' || coalesce(instance_id,'') FROM audit_log ORDER BY seq");
  return out === '' ? [] : out.split('\n').map((l) => {
    const [action, resource_id, category, actor_type, instance_id] = l.split('|');
    return { action, resource_id, category, actor_type, instance_id };
  });
}

describe('client create', () => {
  test('prints the new client once, with its secret, in the contract shape', () => {
    const db = tmpDb();
    const before = Math.floor(Date.now() / 1000);
    const j = createClient(db, ['--redirect-uri', 'https://app.example/cb', '--expires-in', '30d'], 'My App');
    assert.deepEqual(Object.keys(j), CREATE_FIELDS);
    assert.match(j.client_id, CLIENT_ID);
    assert.equal(j.id, j.client_id);
    assert.match(j.client_secret, CLIENT_SECRET);
    assert.equal(j.name, 'My App');
    assert.deepEqual(j.scopes, ['proxy:read']);
    assert.deepEqual(j.redirect_uris, ['https://app.example/cb']);
    // A redirect URI brings the code and refresh grants by default.
    assert.deepEqual(j.grant_types, ['client_credentials', 'authorization_code', 'refresh_token']);
    assert.equal(j.instances, null);
    assert.match(j.created_at, RFC3339);
    const created = Date.parse(j.created_at) / 1000;
    assert.ok(created >= before - 1 && created <= before + 5);
    assert.equal(Date.parse(j.expires_at) / 1000, created + 30 * 86400);
    assert.equal(j.status, 'active');

    // Without a redirect URI: a machine client, client_credentials only, never expiring.
    const m = ok(['client', 'create', '--name', 'machine', '--scopes', 'proxy:write,proxy:read'], { db });
    clientSecrets.push(m.client_secret);
    assert.deepEqual(m.grant_types, ['client_credentials']);
    assert.deepEqual(m.redirect_uris, []);
    assert.deepEqual(m.scopes, ['proxy:read', 'proxy:write']);
    assert.equal(m.expires_at, null);
    assert.notEqual(m.client_secret, j.client_secret);
    assert.notEqual(m.client_id, j.client_id);
  });

  test('several redirect URIs (duplicates folded), explicit grant types, scopes "*", instances', () => {
    const db = tmpDb();
    const inst = ok(['instance', 'add', '--name', 'core', '--url', 'http://127.0.0.1:5001'], { db });
    const j = createClient(db, ['--redirect-uri', 'http://127.0.0.1:8765/cb', '--redirect-uri',
      'https://app.example/cb?x=1&y=%20', '--redirect-uri', 'http://127.0.0.1:8765/cb',
      '--redirect-uri=http://localhost/cb', '--redirect-uri', 'http://[::1]:9/cb',
      '--grant-types', 'authorization_code,client_credentials', '--instances', `${inst.id},${inst.id}`]);
    assert.deepEqual(j.redirect_uris, ['http://127.0.0.1:8765/cb', 'https://app.example/cb?x=1&y=%20',
      'http://localhost/cb', 'http://[::1]:9/cb']);
    assert.deepEqual(j.grant_types, ['client_credentials', 'authorization_code']);
    assert.deepEqual(j.instances, [inst.id]);
    const show = ok(['client', 'show', j.client_id], { db });
    assert.deepEqual(show.redirect_uris, j.redirect_uris);
    assert.deepEqual(show.instances, [inst.id]);

    const all = ok(['client', 'create', '--name', 'all', '--scopes', '*,proxy:read'], { db });
    clientSecrets.push(all.client_secret);
    assert.deepEqual(all.scopes, ['*']);
  });

  test('for people: the fields, then the secret once with a warning', () => {
    const db = tmpDb();
    const r = cli(['client', 'create', '--name', 'human', '--scopes', 'proxy:read'], { db, json: false });
    assert.equal(r.code, 0, r.stderr);
    const secrets = r.stdout.match(/blnk_cs_[0-9a-f]{64}/g);
    assert.equal(secrets.length, 1, 'the secret appears exactly once');
    clientSecrets.push(secrets[0]);
    assert.match(r.stdout, /client_id:\s+client_/);
    assert.match(r.stdout, /Client secret: blnk_cs_/);
    assert.match(r.stdout, /shown only once/);
  });

  test('validation errors exit 2 and store nothing', () => {
    const db = tmpDb();
    const create = (extra) => ['client', 'create', '--name', 'bad', '--scopes', 'proxy:read', ...extra];
    fail(['client', 'create', '--name', 'x'], 2, /needs --name and --scopes/, { db });
    fail(['client', 'create', '--scopes', 'proxy:read'], 2, /needs --name and --scopes/, { db });
    fail(['client', 'create', '--name', 'x', '--scopes', 'proxy:read,admin'], 2, /unknown scope "admin"/, { db });
    fail(['client', 'create', '--name', 'x', '--scopes', 'proxy:read,'], 2, /empty scope/, { db });
    fail(['client', 'create', '--name', ' x', '--scopes', 'proxy:read'], 2, /invalid --name/, { db });
    for (const [uri, why] of [
      ['http://app.example/cb', /must use https/],
      ['http://localhost.evil.example/cb', /must use https/],
      ['http://127.0.0.2/cb', /must use https/],
      ['ftp://app.example/cb', /absolute https/],
      ['/cb', /absolute https/],
      ['app.example/cb', /absolute https/],
      ['https://app.example/cb#frag', /fragment/],
      ['https://user:pw@app.example/cb', /user name or password/],
      ['https:///cb', /no valid host/],
      ['https://app.example:0/cb', /no valid host/],
      ['https://app.example:70000/cb', /no valid host/],
      ['https://app.example/c b', /not allowed/],
      ['https://app.example/a,b', /not allowed/],
      ['https://app.example/%zz', /percent/],
      ['https://app.exämple/cb', /not allowed/],
    ]) {
      fail(create(['--redirect-uri', uri]), 2, why, { db });
    }
    fail(create(['--grant-types', 'authorization_code']), 2, /authorization_code needs at least one --redirect-uri/,
      { db });
    fail(create(['--grant-types', 'client_credentials,authorization_code,refresh_token']), 2,
      /authorization_code needs/, { db });
    fail(create(['--grant-types', 'password']), 2, /unknown grant type "password"/, { db });
    fail(create(['--grant-types', 'client_credentials,']), 2, /unknown grant type/, { db });
    fail(create(['--expires-in', 'soon']), 2, /invalid --expires-in/, { db });
    fail(create(['--instances', 'instance_nope']), 3, /unknown instance instance_nope/, { db });
    fail(create(['--instances', 'bad id']), 2, /invalid --instances/, { db });
    fail(create(['--client-secret', 'x']), 2, /unknown option --client-secret/, { db });
    assert.deepEqual(ok(['client', 'list'], { db }), { clients: [] });
    assert.equal(sql(db, 'SELECT count(*) FROM audit_log'), '0');
  });
});

describe('client list, show, revoke, expire', () => {
  test('the secret is never shown again, and only its SHA-256 is stored', () => {
    const db = tmpDb();
    const a = createClient(db, ['--redirect-uri', 'https://a.example/cb']);
    const b = createClient(db);
    const list = ok(['client', 'list'], { db });
    assert.deepEqual(Object.keys(list), ['clients']);
    assert.deepEqual(list.clients.map((c) => c.id), [a.client_id, b.client_id]);
    for (const c of list.clients) {
      assert.deepEqual(Object.keys(c), CLIENT_FIELDS);
    }
    const show = ok(['client', 'show', a.client_id], { db });
    assert.deepEqual(Object.keys(show), CLIENT_FIELDS);
    const { client_id: _id, client_secret: _omit, ...rest } = a;
    assert.deepEqual(show, rest);

    const human = cli(['client', 'list'], { db, json: false });
    assert.equal(human.code, 0);
    assert.match(human.stdout, /^ID\s+NAME\s+SCOPES\s+GRANT TYPES\s+STATUS\s+EXPIRES AT\n/);
    const humanShow = cli(['client', 'show', b.client_id], { db, json: false });
    assert.equal(humanShow.code, 0);
    for (const r of [list, show]) {
      const text = JSON.stringify(r);
      assert.ok(!text.includes(a.client_secret) && !text.includes(b.client_secret));
    }
    for (const r of [human, humanShow]) {
      assert.ok(!r.stdout.includes('blnk_cs_'), 'no secret in human listings');
    }

    const bytes = dbBytes(db);
    for (const c of [a, b]) {
      assert.equal(bytes.indexOf(c.client_secret), -1, 'secret not in the database file');
      assert.equal(bytes.indexOf(c.client_secret.slice(8)), -1, 'secret hex not in the database file');
      const hex = PG ? "encode(secret_digest, 'hex')" : 'lower(hex(secret_digest))';
      const digest = sql(db, `SELECT ${hex} FROM oauth_clients WHERE id = '${c.client_id}'`);
      assert.equal(digest, sha256hex(c.client_secret));
    }
  });

  test('show, revoke and expire an unknown id exit 3; missing id exits 2', () => {
    const db = tmpDb();
    fail(['client', 'show', 'client_nope'], 3, /unknown client client_nope/, { db });
    fail(['client', 'revoke', 'client_nope'], 3, /unknown client/, { db });
    fail(['client', 'expire', 'client_nope', '--expires-in', '1d'], 3, /unknown client/, { db });
    fail(['client', 'show'], 2, /missing ID/, { db });
    fail(['client', 'frob'], 2, /unknown client command/, { db });
  });

  test('revoke marks the client and revokes every token it holds, once', () => {
    const db = tmpDb();
    const a = createClient(db);
    const b = createClient(db);
    // Tokens as the token endpoint would have stored them (digest only).
    const ins = (id, client, kind, family) => sql(db, 'INSERT INTO oauth_tokens (id, kind, digest, client_id, family_id,'
      + ` scopes, created_at) VALUES ('${id}', ${kind}, ${PG ? "decode(md5(random()::text) || md5(random()::text), 'hex')" : 'randomblob(32)'},`
      + ` '${client}', '${family}', 'proxy:read', 1)`);
    ins('token_a1', a.client_id, 1, 'family_1');
    ins('token_a2', a.client_id, 2, 'family_1');
    ins('token_b1', b.client_id, 1, 'family_2');

    const r = ok(['client', 'revoke', a.client_id], { db });
    assert.deepEqual(Object.keys(r), CLIENT_FIELDS);
    assert.equal(r.status, 'revoked');
    // CASE WHEN: SQLite's 1/0 and PostgreSQL's booleans print alike.
    assert.equal(sql(db, "SELECT id || ':' || CASE WHEN revoked THEN 1 ELSE 0 END FROM oauth_tokens ORDER BY id"),
      'token_a1:1\ntoken_a2:1\ntoken_b1:0');
    assert.equal(sql(db, `SELECT CASE WHEN revoked_at > 0 THEN 1 ELSE 0 END FROM oauth_clients WHERE id = '${a.client_id}'`), '1');
    assert.equal(ok(['client', 'show', b.client_id], { db }).status, 'active');

    // A second revoke changes nothing and writes no audit record.
    const auditBefore = auditRows(db).length;
    const again = cli(['client', 'revoke', a.client_id], { db, json: false });
    assert.equal(again.code, 0);
    assert.match(again.stdout, /already revoked/);
    assert.equal(ok(['client', 'revoke', a.client_id], { db }).status, 'revoked');
    assert.equal(auditRows(db).length, auditBefore);
  });

  test('expire sets, moves and clears the expiry; an expired client shows as expired', async () => {
    const db = tmpDb();
    const a = createClient(db);
    fail(['client', 'expire', a.client_id], 2, /needs --expires-in/, { db });
    fail(['client', 'expire', a.client_id, '--expires-in', '-1d'], 2, /invalid --expires-in/, { db });
    const now = Math.floor(Date.now() / 1000);
    let r = ok(['client', 'expire', a.client_id, '--expires-in', '7d'], { db });
    assert.deepEqual(Object.keys(r), CLIENT_FIELDS);
    const exp = Date.parse(r.expires_at) / 1000;
    assert.ok(exp >= now + 7 * 86400 - 1 && exp <= now + 7 * 86400 + 5);
    assert.equal(r.status, 'active');
    r = ok(['client', 'expire', a.client_id, '--expires-in', 'never'], { db });
    assert.equal(r.expires_at, null);
    r = ok(['client', 'expire', a.client_id, '--expires-in', '1s'], { db });
    assert.match(r.expires_at, RFC3339);
    await new Promise((res) => setTimeout(res, 2100));
    assert.equal(ok(['client', 'show', a.client_id], { db }).status, 'expired');
    assert.equal(ok(['client', 'list'], { db }).clients[0].status, 'expired');
  });
});

describe('operators', () => {
  test('create from a file or an env var; the password is never printed nor stored in clear', () => {
    const db = tmpDb();
    const pw1 = newPassword();
    const pw2 = newPassword();
    const before = Math.floor(Date.now() / 1000);
    const a = ok(['operator', 'create', '--name', 'alice', '--password-file', pwFile(`${pw1}\n`)], { db });
    assert.deepEqual(Object.keys(a), OPERATOR_FIELDS);
    assert.match(a.id, OPERATOR_ID);
    assert.equal(a.name, 'alice');
    assert.equal(a.status, 'active');
    assert.ok(Date.parse(a.created_at) / 1000 >= before - 1);
    assert.equal(a.updated_at, a.created_at);
    const b = ok(['operator', 'create', '--name', 'bob', '--password-env', 'BP_TEST_PW'], { db, env: { BP_TEST_PW: pw2 } });
    assert.match(b.id, OPERATOR_ID);

    const hashes = sql(db, 'SELECT password_hash FROM oauth_operators ORDER BY name').split('\n');
    assert.equal(hashes.length, 2);
    for (const h of hashes) {
      assert.match(h, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    }
    assert.notEqual(hashes[0], hashes[1]);
    const bytes = dbBytes(db);
    for (const pw of [pw1, pw2]) {
      assert.equal(bytes.indexOf(pw), -1, 'password not in the database file');
    }

    const list = ok(['operator', 'list'], { db });
    assert.deepEqual(Object.keys(list), ['operators']);
    assert.deepEqual(list.operators.map((o) => o.name), ['alice', 'bob']);
    for (const o of list.operators) {
      assert.deepEqual(Object.keys(o), OPERATOR_FIELDS);
    }
    assert.ok(!JSON.stringify(list).includes('argon2'), 'the hash is not shown either');
    const human = cli(['operator', 'list'], { db, json: false });
    assert.match(human.stdout, /^ID\s+NAME\s+ROLE\s+STATUS\s+CREATED AT\s+UPDATED AT\n/);
    assert.ok(!human.stdout.includes('argon2'));
  });

  test('a password on the command line, a missing, short or doubled one is refused (exit 2)', () => {
    const db = tmpDb();
    const pw = newPassword();
    let r = fail(['operator', 'create', '--name', 'carol', '--password', pw], 2, /never go on the command line/, { db });
    assert.ok(!r.stderr.includes(pw));
    r = fail(['operator', 'create', '--name', 'carol', `--password=${pw}`], 2, /--password-file/, { db });
    assert.ok(!r.stderr.includes(pw));
    fail(['operator', 'create', '--name', 'carol'], 2, /needs --password-file FILE or --password-env VAR/, { db });
    fail(['operator', 'create', '--password-env', 'X'], 2, /needs --name/, { db });
    fail(['operator', 'create', '--name', 'carol', '--password-file', pwFile('short\n')], 2, /8\.\.1024/, { db });
    fail(['operator', 'create', '--name', 'carol', '--password-file', pwFile('x'.repeat(1025))], 2, /8\.\.1024/, { db });
    fail(['operator', 'create', '--name', 'carol', '--password-env', 'BP_TEST_UNSET_VAR'], 2, /unset or empty/, { db });
    fail(['operator', 'create', '--name', 'carol', '--password-file', pwFile(pw), '--password-env', 'BP_TEST_PW'], 2,
      /only one of/, { db, env: { BP_TEST_PW: pw } });
    fail(['operator', 'create', '--name', 'carol', '--password-file', '/nonexistent/pw'], 2, /cannot read/, { db });
    assert.deepEqual(ok(['operator', 'list'], { db }), { operators: [] });

    // Names are unique.
    ok(['operator', 'create', '--name', 'carol', '--password-file', pwFile(pw)], { db });
    fail(['operator', 'create', '--name', 'carol', '--password-file', pwFile(pw)], 2, /already exists/, { db });
    assert.equal(ok(['operator', 'list'], { db }).operators.length, 1);
  });

  test('disable, enable and passwd', async () => {
    const db = tmpDb();
    const pw = newPassword();
    const a = ok(['operator', 'create', '--name', 'dave', '--password-file', pwFile(pw)], { db });
    const hash0 = sql(db, `SELECT password_hash FROM oauth_operators WHERE id = '${a.id}'`);
    await new Promise((res) => setTimeout(res, 1100)); // updated_at has second resolution

    let r = ok(['operator', 'disable', a.id], { db });
    assert.deepEqual(Object.keys(r), OPERATOR_FIELDS);
    assert.equal(r.status, 'disabled');
    assert.ok(Date.parse(r.updated_at) > Date.parse(a.updated_at));
    assert.equal(r.created_at, a.created_at);
    const again = cli(['operator', 'disable', a.id], { db, json: false });
    assert.equal(again.code, 0);
    assert.match(again.stdout, /already disabled/);
    r = ok(['operator', 'enable', a.id], { db });
    assert.equal(r.status, 'active');

    const pw2 = newPassword();
    r = ok(['operator', 'passwd', a.id, '--password-env', 'BP_TEST_PW'], { db, env: { BP_TEST_PW: pw2 } });
    assert.deepEqual(Object.keys(r), OPERATOR_FIELDS);
    const hash1 = sql(db, `SELECT password_hash FROM oauth_operators WHERE id = '${a.id}'`);
    assert.notEqual(hash1, hash0);
    assert.match(hash1, /^\$argon2id\$/);
    assert.equal(dbBytes(db).indexOf(pw2), -1);

    let f = fail(['operator', 'passwd', a.id, '--password', pw2], 2, /never go on the command line/, { db });
    assert.ok(!f.stderr.includes(pw2));
    fail(['operator', 'passwd', a.id], 2, /needs --password-file/, { db });
    fail(['operator', 'passwd', a.id, '--password-file', pwFile('1234567')], 2, /8\.\.1024/, { db });
    assert.equal(sql(db, `SELECT password_hash FROM oauth_operators WHERE id = '${a.id}'`), hash1);

    fail(['operator', 'disable', 'operator_nope'], 3, /unknown operator operator_nope/, { db });
    fail(['operator', 'enable', 'operator_nope'], 3, /unknown operator/, { db });
    f = fail(['operator', 'passwd', 'operator_nope', '--password-file', pwFile(pw2)], 3, /unknown operator/, { db });
    fail(['operator', 'disable'], 2, /missing ID/, { db });
    fail(['operator', 'disable', a.id, '--password-file', pwFile(pw2)], 2, /unknown option --password-file/, { db });
    fail(['operator', 'frob'], 2, /unknown operator command/, { db });
  });
});

describe('operator changes withdraw what the operator approved', () => {
  const REDIRECT = 'http://127.0.0.1:9/callback';
  let w;

  after(async () => {
    await w?.close();
  });

  test('disable revokes their token families and codes; passwd signs them out', async () => {
    w = await setupWorld({ keys: {} });
    const app = createOAuthClient(w.db, ['--name', 'web', '--scopes', 'proxy:read', '--redirect-uri', REDIRECT]);
    clientSecrets.push(app.secret);
    const alice = createOperator(w.db, 'alice');
    const bob = createOperator(w.db, 'bob');
    passwords.push(alice.password, bob.password);

    // alice approves twice: one code is exchanged, the other is still waiting.
    const a1 = await authorizeCode(w.port, { client: app, operator: alice, redirect: REDIRECT });
    const pending = await authorizeCode(w.port, { client: app, operator: alice, redirect: REDIRECT });
    const t = await token(w.port, app, { grant_type: 'authorization_code', code: a1.code, redirect_uri: REDIRECT,
      code_verifier: a1.verifier });
    assert.equal(t.status, 200, JSON.stringify(t.json));
    const rotated = await token(w.port, app, { grant_type: 'refresh_token', refresh_token: t.json.refresh_token });
    assert.equal(rotated.status, 200, JSON.stringify(rotated.json));
    // bob's grant must survive alice's disabling.
    const b1 = await authorizeCode(w.port, { client: app, operator: bob, redirect: REDIRECT });
    const tb = await token(w.port, app, { grant_type: 'authorization_code', code: b1.code, redirect_uri: REDIRECT,
      code_verifier: b1.verifier });
    assert.equal(tb.status, 200);
    const active = async (tok) => (await req(w.port, 'POST', '/oauth/introspect', {
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...basic(app) },
      body: new URLSearchParams({ token: tok }).toString(),
      agent: false,
    })).json.active;
    assert.equal(await active(rotated.json.access_token), true);
    assert.equal(await active(t.json.access_token), true);

    const sessionsBefore = Number(sql(w.db, `SELECT count(*) FROM oauth_sessions WHERE operator_id = '${alice.id}'`));
    assert.ok(sessionsBefore >= 1);
    ok(['operator', 'disable', alice.id], { db: w.db });
    assert.equal(sql(w.db, `SELECT count(*) FROM oauth_sessions WHERE operator_id = '${alice.id}'`), '0');

    // Every token of the family is dead: the rotated refresh token, both access tokens.
    const again = await token(w.port, app, { grant_type: 'refresh_token', refresh_token: rotated.json.refresh_token });
    assert.equal(again.status, 400);
    assert.equal(again.json.error, 'invalid_grant');
    assert.equal(await active(rotated.json.access_token), false);
    assert.equal(await active(t.json.access_token), false);
    assert.equal(await active(rotated.json.refresh_token), false);
    // On /proxy too, once the server has reloaded (the CLI is another process).
    await waitFor(async () => (await req(w.port, 'GET', w.p('/ledgers'),
      { headers: bearer(rotated.json.access_token), agent: false })).status === 401,
    { timeoutMs: 3000, what: 'revoked token refused on /proxy' });
    // The code she approved but nobody exchanged yet is gone.
    const late = await token(w.port, app, { grant_type: 'authorization_code', code: pending.code, redirect_uri: REDIRECT,
      code_verifier: pending.verifier });
    assert.equal(late.status, 400);
    assert.equal(late.json.error, 'invalid_grant');
    // bob's grant is untouched; enabling alice again brings nothing back.
    assert.equal(await active(tb.json.access_token), true);
    ok(['operator', 'enable', alice.id], { db: w.db });
    assert.equal(await active(t.json.access_token), false);

    // passwd: bob's signed-in session no longer shows the consent page.
    const b2 = await authorizeCode(w.port, { client: app, operator: bob, redirect: REDIRECT });
    const signedIn = b2.pages[1].headers['set-cookie'][0].split(';')[0];
    const q = `?${new URLSearchParams({ response_type: 'code', client_id: app.id, redirect_uri: REDIRECT,
      code_challenge: pkcePair().challenge, code_challenge_method: 'S256' })}`;
    const consent = await req(w.port, 'GET', `/oauth/authorize${q}`, { headers: { cookie: signedIn }, agent: false });
    assert.equal(consent.status, 200);
    assert.match(consent.text, /value="approve"/);
    const pw2 = newPassword();
    ok(['operator', 'passwd', bob.id, '--password-env', 'BP_TEST_PW'], { db: w.db, env: { BP_TEST_PW: pw2 } });
    assert.equal(sql(w.db, `SELECT count(*) FROM oauth_sessions WHERE operator_id = '${bob.id}'`), '0');
    const page = await req(w.port, 'GET', `/oauth/authorize${q}`, { headers: { cookie: signedIn }, agent: false });
    assert.equal(page.status, 200);
    assert.doesNotMatch(page.text, /value="approve"/);
    assert.match(page.text, /name="password"/);
    // Tokens bob already handed out are not affected by a password change.
    assert.equal(await active(tb.json.access_token), true);
  });
});

describe('admin audit records', () => {
  test('every change writes one record with its action and object; no-ops and failures write none', () => {
    const db = tmpDb();
    const c = createClient(db, ['--redirect-uri', 'https://app.example/cb']);
    ok(['client', 'expire', c.client_id, '--expires-in', '7d'], { db });
    ok(['client', 'revoke', c.client_id], { db });
    ok(['client', 'revoke', c.client_id], { db }); // already revoked: no change
    ok(['client', 'show', c.client_id], { db });
    ok(['client', 'list'], { db });
    fail(['client', 'create', '--name', 'x', '--scopes', 'nope'], 2, null, { db });
    const pw = newPassword();
    const o = ok(['operator', 'create', '--name', 'erin', '--password-file', pwFile(pw)], { db });
    fail(['operator', 'create', '--name', 'erin', '--password-file', pwFile(pw)], 2, null, { db });
    ok(['operator', 'disable', o.id], { db });
    ok(['operator', 'disable', o.id], { db }); // already disabled: no change
    ok(['operator', 'enable', o.id], { db });
    ok(['operator', 'passwd', o.id, '--password-file', pwFile(pw)], { db });
    ok(['operator', 'list'], { db });

    const rows = auditRows(db);
    assert.deepEqual(rows.map((r) => [r.action, r.resource_id]), [
      ['Client created', c.client_id],
      ['Client expiry changed', c.client_id],
      ['Client revoked', c.client_id],
      ['Operator created', o.id],
      ['Operator disabled', o.id],
      ['Operator enabled', o.id],
      ['Operator password changed', o.id],
    ]);
    for (const r of rows) {
      assert.equal(r.category, 'admin');
      assert.equal(r.actor_type, 'cli');
      assert.equal(r.instance_id, '');
    }
    // `audit list` shows the same records, newest first, one JSON object per line.
    const listed = cli(['audit', 'list', '--category', 'admin'], { db });
    assert.equal(listed.code, 0, listed.stderr);
    const recs = listed.stdout.trim().split('\n').map((l) => JSON.parse(l)).reverse();
    assert.deepEqual(recs.map((r) => [r.action, r.resource_id, r.category, r.actor_type]),
      rows.map((r) => [r.action, r.resource_id, 'admin', 'cli']));
    // The records hold no secret either (the whole file is checked, audit_log included).
    const bytes = dbBytes(db);
    assert.equal(bytes.indexOf(c.client_secret), -1);
    assert.equal(bytes.indexOf(pw), -1);
  });
});

after(() => {
  // No password ever appears in any output; a client secret only in the one create that made it.
  for (const h of cliHistory) {
    const out = h.stdout + h.stderr;
    for (const pw of passwords) {
      assert.ok(!out.includes(pw), `password printed by: ${h.args.join(' ')}`);
    }
    for (const s of clientSecrets) {
      if (out.includes(s)) {
        assert.equal(h.args[0], 'client');
        assert.equal(h.args[1], 'create', `client secret printed by: ${h.args.join(' ')}`);
      }
    }
  }
  const creates = cliHistory.filter((h) => clientSecrets.some((s) => (h.stdout + h.stderr).includes(s)));
  assert.equal(creates.length, clientSecrets.length, 'each secret printed by exactly one command');
});

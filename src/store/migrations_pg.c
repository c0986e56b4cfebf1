#include "store/pg-int.h"

#include "lib/bug.h"

/* Forward-only: a released entry is never edited. A schema change is a new entry at the end,
 * applied in its own transaction under the MIGRATE advisory lock and recorded in
 * schema_migrations (store_pg.c). Version n here holds what version n of the SQLite schema
 * (migrations_sqlite.c) holds, in PostgreSQL's types: BYTEA digests of exactly 32 bytes, BIGINT
 * times (Unix seconds, or microseconds for audit time_us), BOOLEAN flags, identity columns where
 * SQLite relies on rowid order. Id columns compare bytewise (COLLATE "C"), as on SQLite. Digests
 * are SHA-256; secrets themselves are never stored. */
const char *const bp_store__pg_migrations[] = {
    /* 1: instances and API keys. */
    "CREATE TABLE instances ("
    "  id          TEXT COLLATE \"C\" PRIMARY KEY NOT NULL,"
    "  name        TEXT NOT NULL UNIQUE,"
    "  url         TEXT NOT NULL,"
    "  secret_key  BYTEA,"
    "  ca_file     TEXT,"
    "  enabled     BOOLEAN NOT NULL DEFAULT TRUE,"
    "  created_at  BIGINT NOT NULL,"
    "  updated_at  BIGINT NOT NULL"
    ");"
    "CREATE TABLE api_keys ("
    "  id           TEXT COLLATE \"C\" PRIMARY KEY NOT NULL,"
    "  name         TEXT NOT NULL,"
    "  prefix       TEXT NOT NULL,"
    "  digest       BYTEA NOT NULL UNIQUE CHECK (octet_length(digest) = 32),"
    "  scopes       TEXT NOT NULL,"
    "  instances    TEXT,"
    "  created_at   BIGINT NOT NULL,"
    "  expires_at   BIGINT NOT NULL DEFAULT 0,"
    "  last_used_at BIGINT NOT NULL DEFAULT 0,"
    "  revoked      BOOLEAN NOT NULL DEFAULT FALSE,"
    "  revoked_at   BIGINT NOT NULL DEFAULT 0"
    ");",
    /* 2: OAuth clients, operators, tokens, authorization codes, sign-in sessions. ord numbers
     * tokens in insertion order (SQLite's rowid): "the oldest" access tokens of a client are
     * exact even for tokens issued in the same second. */
    "CREATE TABLE oauth_clients ("
    "  id             TEXT COLLATE \"C\" PRIMARY KEY NOT NULL,"
    "  name           TEXT NOT NULL,"
    "  secret_digest  BYTEA NOT NULL UNIQUE CHECK (octet_length(secret_digest) = 32),"
    "  scopes         TEXT NOT NULL,"
    "  redirect_uris  TEXT NOT NULL DEFAULT '',"
    "  grant_types    TEXT NOT NULL,"
    "  instances      TEXT,"
    "  created_at     BIGINT NOT NULL,"
    "  expires_at     BIGINT NOT NULL DEFAULT 0,"
    "  revoked        BOOLEAN NOT NULL DEFAULT FALSE,"
    "  revoked_at     BIGINT NOT NULL DEFAULT 0"
    ");"
    "CREATE TABLE oauth_operators ("
    "  id             TEXT COLLATE \"C\" PRIMARY KEY NOT NULL,"
    "  name           TEXT NOT NULL UNIQUE,"
    "  password_hash  TEXT NOT NULL,"
    "  disabled       BOOLEAN NOT NULL DEFAULT FALSE,"
    "  created_at     BIGINT NOT NULL,"
    "  updated_at     BIGINT NOT NULL"
    ");"
    "CREATE TABLE oauth_tokens ("
    "  id             TEXT COLLATE \"C\" PRIMARY KEY NOT NULL,"
    "  ord            BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,"
    "  kind           SMALLINT NOT NULL CHECK (kind IN (1, 2)),"
    "  digest         BYTEA NOT NULL UNIQUE CHECK (octet_length(digest) = 32),"
    "  client_id      TEXT COLLATE \"C\" NOT NULL REFERENCES oauth_clients(id),"
    "  family_id      TEXT COLLATE \"C\" NOT NULL,"
    "  operator_id    TEXT COLLATE \"C\","
    "  scopes         TEXT NOT NULL,"
    "  created_at     BIGINT NOT NULL,"
    "  expires_at     BIGINT NOT NULL DEFAULT 0,"
    "  used_at        BIGINT NOT NULL DEFAULT 0,"
    "  revoked        BOOLEAN NOT NULL DEFAULT FALSE,"
    "  revoked_at     BIGINT NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX oauth_tokens_family ON oauth_tokens(family_id);"
    "CREATE INDEX oauth_tokens_client ON oauth_tokens(client_id, ord);"
    "CREATE INDEX oauth_tokens_operator ON oauth_tokens(operator_id);"
    "CREATE INDEX oauth_tokens_live ON oauth_tokens(kind, revoked, expires_at);"
    "CREATE TABLE oauth_codes ("
    "  digest         BYTEA PRIMARY KEY NOT NULL CHECK (octet_length(digest) = 32),"
    "  client_id      TEXT COLLATE \"C\" NOT NULL REFERENCES oauth_clients(id),"
    "  operator_id    TEXT COLLATE \"C\" NOT NULL,"
    "  redirect_uri   TEXT NOT NULL,"
    "  scopes         TEXT NOT NULL,"
    "  code_challenge TEXT NOT NULL,"
    "  family_id      TEXT COLLATE \"C\" NOT NULL,"
    "  created_at     BIGINT NOT NULL,"
    "  expires_at     BIGINT NOT NULL,"
    "  used_at        BIGINT NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX oauth_codes_operator ON oauth_codes(operator_id);"
    "CREATE TABLE oauth_sessions ("
    "  digest         BYTEA PRIMARY KEY NOT NULL CHECK (octet_length(digest) = 32),"
    "  csrf_digest    BYTEA NOT NULL CHECK (octet_length(csrf_digest) = 32),"
    "  operator_id    TEXT COLLATE \"C\","
    "  created_at     BIGINT NOT NULL,"
    "  expires_at     BIGINT NOT NULL"
    ");"
    "CREATE INDEX oauth_sessions_operator ON oauth_sessions(operator_id);",
    /* 3: the audit log. seq orders records; each index ends in (time_us, seq), so `audit list`
     * with one equality filter, newest first, walks one index backwards without a sort. */
    "CREATE TABLE audit_log ("
    "  seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  time_us        BIGINT NOT NULL,"
    "  request_id     TEXT,"
    "  actor_type     TEXT NOT NULL,"
    "  actor_id       TEXT,"
    "  actor_name     TEXT,"
    "  instance_id    TEXT,"
    "  method         TEXT,"
    "  route          TEXT,"
    "  path           TEXT,"
    "  action         TEXT,"
    "  category       TEXT,"
    "  core_status    INTEGER NOT NULL DEFAULT 0,"
    "  status         INTEGER NOT NULL DEFAULT 0,"
    "  latency_us     BIGINT NOT NULL DEFAULT 0,"
    "  client_addr    TEXT,"
    "  resource_id    TEXT,"
    "  error          TEXT"
    ");"
    "CREATE INDEX audit_time ON audit_log(time_us, seq);"
    "CREATE INDEX audit_category_time ON audit_log(category, time_us, seq);"
    "CREATE INDEX audit_instance_time ON audit_log(instance_id, time_us, seq);"
    "CREATE INDEX audit_actor_time ON audit_log(actor_id, time_us, seq);"
    "CREATE INDEX audit_action_time ON audit_log(action, time_us, seq);",
    /* 4: the change log (SQLite's migration 4: the same rows, logged on the same events) and the
     * servers' reports on it. Triggers, not our C code, fill it, so every writer logs: this
     * binary, an older CLI, a psql session. A row is logged for what the request path's tables
     * are built from, and only when a value they use changed: a last-used stamp, a refresh
     * token's rotation, or deleting a token that had already expired logs nothing. kind names the
     * entity ('instance', 'api_key', 'oauth_client', 'access_token'); `at` is wall seconds.
     *
     * Ordering across connections: every statement that may log takes the CHANGES advisory lock
     * (class 1651273323, key 2: BP_PG_LOCK_* in pg-int.h) before it touches a row (the BEFORE
     * ... FOR EACH STATEMENT triggers) and holds it to commit, so seqs commit in order and a
     * reader that sees seq n has seen every change before it. Each logged row also sends
     * NOTIFY blnkproxy_changes with its seq as payload, for the servers that LISTEN. */
    "CREATE TABLE changes ("
    "  seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  kind       TEXT NOT NULL,"
    "  entity_id  TEXT NOT NULL,"
    "  at         BIGINT NOT NULL"
    ");"
    "CREATE FUNCTION blnkproxy_changes_lock() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN"
    "  PERFORM pg_advisory_xact_lock(1651273323, 2);"
    "  RETURN NULL;"
    " END $$;"
    "CREATE FUNCTION blnkproxy_changes_log() RETURNS trigger LANGUAGE plpgsql AS $$"
    " DECLARE"
    "  eid TEXT;"
    "  s BIGINT;"
    " BEGIN"
    "  IF TG_OP = 'DELETE' THEN eid := OLD.id; ELSE eid := NEW.id; END IF;"
    "  PERFORM pg_advisory_xact_lock(1651273323, 2);"
    "  INSERT INTO changes (kind, entity_id, at)"
    "    VALUES (TG_ARGV[0], eid, floor(extract(epoch FROM now()))::bigint) RETURNING seq INTO s;"
    "  PERFORM pg_notify('blnkproxy_changes', s::text);"
    "  RETURN NULL;"
    " END $$;"
    /* instances */
    "CREATE TRIGGER changes_instances_lock BEFORE INSERT OR DELETE"
    "  OR UPDATE OF id, url, secret_key, ca_file, enabled ON instances"
    "  FOR EACH STATEMENT EXECUTE FUNCTION blnkproxy_changes_lock();"
    "CREATE TRIGGER changes_instances_insert AFTER INSERT ON instances"
    "  FOR EACH ROW EXECUTE FUNCTION blnkproxy_changes_log('instance');"
    "CREATE TRIGGER changes_instances_update AFTER UPDATE ON instances FOR EACH ROW"
    "  WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.url IS DISTINCT FROM NEW.url"
    "    OR OLD.secret_key IS DISTINCT FROM NEW.secret_key OR OLD.ca_file IS DISTINCT FROM NEW.ca_file"
    "    OR OLD.enabled IS DISTINCT FROM NEW.enabled)"
    "  EXECUTE FUNCTION blnkproxy_changes_log('instance');"
    "CREATE TRIGGER changes_instances_delete AFTER DELETE ON instances"
    "  FOR EACH ROW EXECUTE FUNCTION blnkproxy_changes_log('instance');"
    /* api_keys */
    "CREATE TRIGGER changes_api_keys_lock BEFORE INSERT OR DELETE"
    "  OR UPDATE OF id, name, digest, scopes, instances, expires_at, revoked ON api_keys"
    "  FOR EACH STATEMENT EXECUTE FUNCTION blnkproxy_changes_lock();"
    "CREATE TRIGGER changes_api_keys_insert AFTER INSERT ON api_keys"
    "  FOR EACH ROW EXECUTE FUNCTION blnkproxy_changes_log('api_key');"
    "CREATE TRIGGER changes_api_keys_update AFTER UPDATE ON api_keys FOR EACH ROW"
    "  WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.name IS DISTINCT FROM NEW.name"
    "    OR OLD.digest IS DISTINCT FROM NEW.digest OR OLD.scopes IS DISTINCT FROM NEW.scopes"
    "    OR OLD.instances IS DISTINCT FROM NEW.instances OR OLD.expires_at IS DISTINCT FROM NEW.expires_at"
    "    OR OLD.revoked IS DISTINCT FROM NEW.revoked)"
    "  EXECUTE FUNCTION blnkproxy_changes_log('api_key');"
    "CREATE TRIGGER changes_api_keys_delete AFTER DELETE ON api_keys"
    "  FOR EACH ROW EXECUTE FUNCTION blnkproxy_changes_log('api_key');"
    /* oauth_clients */
    "CREATE TRIGGER changes_oauth_clients_lock BEFORE INSERT OR DELETE"
    "  OR UPDATE OF id, name, scopes, instances, expires_at, revoked ON oauth_clients"
    "  FOR EACH STATEMENT EXECUTE FUNCTION blnkproxy_changes_lock();"
    "CREATE TRIGGER changes_oauth_clients_insert AFTER INSERT ON oauth_clients"
    "  FOR EACH ROW EXECUTE FUNCTION blnkproxy_changes_log('oauth_client');"
    "CREATE TRIGGER changes_oauth_clients_update AFTER UPDATE ON oauth_clients FOR EACH ROW"
    "  WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.name IS DISTINCT FROM NEW.name"
    "    OR OLD.scopes IS DISTINCT FROM NEW.scopes OR OLD.instances IS DISTINCT FROM NEW.instances"
    "    OR OLD.expires_at IS DISTINCT FROM NEW.expires_at OR OLD.revoked IS DISTINCT FROM NEW.revoked)"
    "  EXECUTE FUNCTION blnkproxy_changes_log('oauth_client');"
    "CREATE TRIGGER changes_oauth_clients_delete AFTER DELETE ON oauth_clients"
    "  FOR EACH ROW EXECUTE FUNCTION blnkproxy_changes_log('oauth_client');"
    /* oauth_tokens: only access tokens (kind 1) reach the tables. */
    "CREATE TRIGGER changes_oauth_tokens_lock BEFORE INSERT OR DELETE"
    "  OR UPDATE OF id, kind, digest, client_id, scopes, expires_at, revoked ON oauth_tokens"
    "  FOR EACH STATEMENT EXECUTE FUNCTION blnkproxy_changes_lock();"
    "CREATE TRIGGER changes_oauth_tokens_insert AFTER INSERT ON oauth_tokens FOR EACH ROW"
    "  WHEN (NEW.kind = 1) EXECUTE FUNCTION blnkproxy_changes_log('access_token');"
    "CREATE TRIGGER changes_oauth_tokens_update AFTER UPDATE ON oauth_tokens FOR EACH ROW"
    "  WHEN ((OLD.kind = 1 OR NEW.kind = 1) AND (OLD.id IS DISTINCT FROM NEW.id"
    "    OR OLD.kind IS DISTINCT FROM NEW.kind OR OLD.digest IS DISTINCT FROM NEW.digest"
    "    OR OLD.client_id IS DISTINCT FROM NEW.client_id OR OLD.scopes IS DISTINCT FROM NEW.scopes"
    "    OR OLD.expires_at IS DISTINCT FROM NEW.expires_at OR OLD.revoked IS DISTINCT FROM NEW.revoked))"
    "  EXECUTE FUNCTION blnkproxy_changes_log('access_token');"
    /* The hourly purge deletes tokens that expired a day ago: no table holds those any more. */
    "CREATE TRIGGER changes_oauth_tokens_delete AFTER DELETE ON oauth_tokens FOR EACH ROW"
    "  WHEN (OLD.kind = 1 AND NOT OLD.revoked"
    "    AND (OLD.expires_at = 0 OR OLD.expires_at > floor(extract(epoch FROM now()))))"
    "  EXECUTE FUNCTION blnkproxy_changes_log('access_token');"
    /* One row per running server: the change seq its published tables include. */
    "CREATE TABLE watchers ("
    "  id         TEXT COLLATE \"C\" PRIMARY KEY NOT NULL,"
    "  host       TEXT NOT NULL,"
    "  pid        BIGINT NOT NULL,"
    "  seq        BIGINT NOT NULL,"
    "  seen_at    BIGINT NOT NULL"
    ");",
    /* 5 (issue 9), as SQLite's 5: a unique id and the writing node on every audit record (NULL
     * in rows from before, which never conflict), and a server's node, version and start time in
     * its report. Here also xid, the inserting transaction's id (its default, so every writer
     * sets it; NULL in older rows, which no follower needs): `audit list --follow` reads the
     * records of transactions at or above the oldest one still running, since identity values
     * (seq) are taken at insert and several nodes' batches commit in any order of them
     * (store_audit_pg.c). The default is set after the column is added, so the existing rows are
     * not rewritten. */
    "ALTER TABLE audit_log ADD COLUMN id TEXT COLLATE \"C\", ADD COLUMN node TEXT, ADD COLUMN xid BIGINT;"
    "ALTER TABLE audit_log ALTER COLUMN xid SET DEFAULT (pg_current_xact_id()::text::bigint);"
    "CREATE UNIQUE INDEX audit_id ON audit_log(id);"
    "CREATE INDEX audit_xid ON audit_log(xid);"
    "ALTER TABLE watchers ADD COLUMN node TEXT, ADD COLUMN version TEXT,"
    "  ADD COLUMN started_at BIGINT NOT NULL DEFAULT 0;",
    /* 6 (issue 11), as SQLite's 6: the count and last time of an aggregated record of refusals
     * before authentication. A constant default: adding the columns rewrites no row. */
    "ALTER TABLE audit_log ADD COLUMN repeat_count BIGINT NOT NULL DEFAULT 1, ADD COLUMN last_time_us BIGINT;",
    /* 7 (issue 12), as SQLite's 7: the links of a rotated key, and a client's previous secret. */
    "ALTER TABLE api_keys ADD COLUMN replaces TEXT, ADD COLUMN replaced_by TEXT;"
    "ALTER TABLE oauth_clients ADD COLUMN previous_secret_digest BYTEA"
    "  CHECK (previous_secret_digest IS NULL OR octet_length(previous_secret_digest) = 32),"
    "  ADD COLUMN previous_secret_expires_at BIGINT NOT NULL DEFAULT 0;",
    /* 8 (issue 12), as SQLite's 8: the networks a key or a client's tokens may be used from and
     * its own rate and burst; the change-log triggers (the lock and the log) are made again to
     * include the columns. */
    "ALTER TABLE api_keys ADD COLUMN allow_from TEXT, ADD COLUMN rate_limit TEXT,"
    "  ADD COLUMN rate_burst BIGINT NOT NULL DEFAULT 0;"
    "ALTER TABLE oauth_clients ADD COLUMN allow_from TEXT, ADD COLUMN rate_limit TEXT,"
    "  ADD COLUMN rate_burst BIGINT NOT NULL DEFAULT 0;"
    "DROP TRIGGER changes_api_keys_lock ON api_keys;"
    "DROP TRIGGER changes_api_keys_update ON api_keys;"
    "CREATE TRIGGER changes_api_keys_lock BEFORE INSERT OR DELETE"
    "  OR UPDATE OF id, name, digest, scopes, instances, expires_at, revoked, allow_from, rate_limit,"
    "  rate_burst ON api_keys"
    "  FOR EACH STATEMENT EXECUTE FUNCTION blnkproxy_changes_lock();"
    "CREATE TRIGGER changes_api_keys_update AFTER UPDATE ON api_keys FOR EACH ROW"
    "  WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.name IS DISTINCT FROM NEW.name"
    "    OR OLD.digest IS DISTINCT FROM NEW.digest OR OLD.scopes IS DISTINCT FROM NEW.scopes"
    "    OR OLD.instances IS DISTINCT FROM NEW.instances OR OLD.expires_at IS DISTINCT FROM NEW.expires_at"
    "    OR OLD.revoked IS DISTINCT FROM NEW.revoked OR OLD.allow_from IS DISTINCT FROM NEW.allow_from"
    "    OR OLD.rate_limit IS DISTINCT FROM NEW.rate_limit OR OLD.rate_burst IS DISTINCT FROM NEW.rate_burst)"
    "  EXECUTE FUNCTION blnkproxy_changes_log('api_key');"
    "DROP TRIGGER changes_oauth_clients_lock ON oauth_clients;"
    "DROP TRIGGER changes_oauth_clients_update ON oauth_clients;"
    "CREATE TRIGGER changes_oauth_clients_lock BEFORE INSERT OR DELETE"
    "  OR UPDATE OF id, name, scopes, instances, expires_at, revoked, allow_from, rate_limit, rate_burst"
    "  ON oauth_clients"
    "  FOR EACH STATEMENT EXECUTE FUNCTION blnkproxy_changes_lock();"
    "CREATE TRIGGER changes_oauth_clients_update AFTER UPDATE ON oauth_clients FOR EACH ROW"
    "  WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.name IS DISTINCT FROM NEW.name"
    "    OR OLD.scopes IS DISTINCT FROM NEW.scopes OR OLD.instances IS DISTINCT FROM NEW.instances"
    "    OR OLD.expires_at IS DISTINCT FROM NEW.expires_at OR OLD.revoked IS DISTINCT FROM NEW.revoked"
    "    OR OLD.allow_from IS DISTINCT FROM NEW.allow_from OR OLD.rate_limit IS DISTINCT FROM NEW.rate_limit"
    "    OR OLD.rate_burst IS DISTINCT FROM NEW.rate_burst)"
    "  EXECUTE FUNCTION blnkproxy_changes_log('oauth_client');",
    /* 9 (issue 12), as SQLite's 9: the answers kept for Idempotency-Key, and whether an audited
     * answer was a replay. */
    "CREATE TABLE idempotency ("
    "  scope BYTEA PRIMARY KEY CHECK (length(scope) = 32),"
    "  fingerprint BYTEA NOT NULL CHECK (length(fingerprint) = 32),"
    "  state INTEGER NOT NULL,"
    "  lease_until BIGINT NOT NULL,"
    "  status INTEGER NOT NULL DEFAULT 0,"
    "  kept BOOLEAN NOT NULL DEFAULT false,"
    "  headers BYTEA,"
    "  body BYTEA,"
    "  created_at BIGINT NOT NULL,"
    "  expires_at BIGINT NOT NULL"
    ");"
    "CREATE INDEX idempotency_expires ON idempotency (expires_at);"
    "ALTER TABLE audit_log ADD COLUMN replayed BOOLEAN NOT NULL DEFAULT false;",
    /* 10 (issue 13), as SQLite's 10: the tamper-evident trail; the rows from before are sealed
     * into the chain "legacy" by bp_store__seal_legacy in the same transaction. */
    "ALTER TABLE audit_log ADD COLUMN chain TEXT, ADD COLUMN chain_n BIGINT,"
    "  ADD COLUMN prev_hash TEXT, ADD COLUMN hash TEXT;"
    "CREATE UNIQUE INDEX audit_chain_pos ON audit_log (chain, chain_n);"
    "CREATE TABLE audit_chains ("
    "  chain TEXT PRIMARY KEY,"
    "  n BIGINT NOT NULL,"
    "  head TEXT NOT NULL,"
    "  updated_us BIGINT NOT NULL"
    ");"
    "CREATE TABLE audit_checkpoints ("
    "  id TEXT PRIMARY KEY,"
    "  time_us BIGINT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  body TEXT NOT NULL,"
    "  signature TEXT"
    ");"
    "CREATE INDEX audit_checkpoints_time ON audit_checkpoints (time_us);"
    "CREATE TABLE audit_unchained (max_seq BIGINT NOT NULL, n BIGINT NOT NULL);"
    "INSERT INTO audit_unchained VALUES (0, 0);",
    /* 11 (issue 13), as SQLite's 11: operator roles and the admin API's tokens and sessions. */
    "ALTER TABLE oauth_operators ADD COLUMN role TEXT NOT NULL DEFAULT 'approver'"
    "  CHECK (role IN ('admin', 'auditor', 'approver'));"
    "CREATE TABLE admin_tokens ("
    "  id TEXT COLLATE \"C\" PRIMARY KEY NOT NULL,"
    "  operator_id TEXT NOT NULL REFERENCES oauth_operators (id) ON DELETE CASCADE,"
    "  kind TEXT NOT NULL CHECK (kind IN ('token', 'session')),"
    "  digest BYTEA NOT NULL UNIQUE CHECK (length(digest) = 32),"
    "  prefix TEXT NOT NULL,"
    "  name TEXT,"
    "  created_at BIGINT NOT NULL,"
    "  expires_at BIGINT NOT NULL,"
    "  revoked_at BIGINT NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX admin_tokens_operator ON admin_tokens (operator_id);",
};

const size_t bp_store__pg_migrations_len = BP_ARRAY_LEN(bp_store__pg_migrations);

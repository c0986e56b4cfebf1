#include "store/store-int.h"

#include "lib/bug.h"

/* Forward-only: a released entry is never edited. A schema change is a new entry at the end,
 * applied in its own transaction and recorded in schema_migrations (store_sqlite.c).
 * Digests are SHA-256 (32 bytes); secrets themselves are never stored. */
const char *const bp_store__sqlite_migrations[] = {
    /* 1: instances and API keys. */
    "CREATE TABLE instances ("
    "  id          TEXT PRIMARY KEY NOT NULL,"
    "  name        TEXT NOT NULL UNIQUE,"
    "  url         TEXT NOT NULL,"
    "  secret_key  BLOB,"
    "  ca_file     TEXT,"
    "  enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),"
    "  created_at  INTEGER NOT NULL,"
    "  updated_at  INTEGER NOT NULL"
    ");"
    "CREATE TABLE api_keys ("
    "  id           TEXT PRIMARY KEY NOT NULL,"
    "  name         TEXT NOT NULL,"
    "  prefix       TEXT NOT NULL,"
    "  digest       BLOB NOT NULL UNIQUE CHECK (length(digest) = 32),"
    "  scopes       TEXT NOT NULL,"
    "  instances    TEXT,"
    "  created_at   INTEGER NOT NULL,"
    "  expires_at   INTEGER NOT NULL DEFAULT 0,"
    "  last_used_at INTEGER NOT NULL DEFAULT 0,"
    "  revoked      INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),"
    "  revoked_at   INTEGER NOT NULL DEFAULT 0"
    ");",
    /* 2: OAuth clients, operators, tokens, authorization codes, sign-in sessions. */
    "CREATE TABLE oauth_clients ("
    "  id             TEXT PRIMARY KEY NOT NULL,"
    "  name           TEXT NOT NULL,"
    "  secret_digest  BLOB NOT NULL UNIQUE CHECK (length(secret_digest) = 32),"
    "  scopes         TEXT NOT NULL,"
    "  redirect_uris  TEXT NOT NULL DEFAULT '',"   /* newline-separated */
    "  grant_types    TEXT NOT NULL,"
    "  instances      TEXT,"
    "  created_at     INTEGER NOT NULL,"
    "  expires_at     INTEGER NOT NULL DEFAULT 0,"
    "  revoked        INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),"
    "  revoked_at     INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE TABLE oauth_operators ("
    "  id             TEXT PRIMARY KEY NOT NULL,"
    "  name           TEXT NOT NULL UNIQUE,"
    "  password_hash  TEXT NOT NULL,"
    "  disabled       INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),"
    "  created_at     INTEGER NOT NULL,"
    "  updated_at     INTEGER NOT NULL"
    ");"
    "CREATE TABLE oauth_tokens ("
    "  id             TEXT PRIMARY KEY NOT NULL,"
    "  kind           INTEGER NOT NULL CHECK (kind IN (1, 2)),"
    "  digest         BLOB NOT NULL UNIQUE CHECK (length(digest) = 32),"
    "  client_id      TEXT NOT NULL REFERENCES oauth_clients(id),"
    "  family_id      TEXT NOT NULL,"
    "  operator_id    TEXT,"
    "  scopes         TEXT NOT NULL,"
    "  created_at     INTEGER NOT NULL,"
    "  expires_at     INTEGER NOT NULL DEFAULT 0,"
    "  used_at        INTEGER NOT NULL DEFAULT 0,"
    "  revoked        INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),"
    "  revoked_at     INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX oauth_tokens_family ON oauth_tokens(family_id);"
    "CREATE INDEX oauth_tokens_client ON oauth_tokens(client_id);"
    "CREATE INDEX oauth_tokens_live ON oauth_tokens(kind, revoked, expires_at);"
    "CREATE TABLE oauth_codes ("
    "  digest         BLOB PRIMARY KEY NOT NULL CHECK (length(digest) = 32),"
    "  client_id      TEXT NOT NULL REFERENCES oauth_clients(id),"
    "  operator_id    TEXT NOT NULL,"
    "  redirect_uri   TEXT NOT NULL,"
    "  scopes         TEXT NOT NULL,"
    "  code_challenge TEXT NOT NULL,"
    "  family_id      TEXT NOT NULL,"
    "  created_at     INTEGER NOT NULL,"
    "  expires_at     INTEGER NOT NULL,"
    "  used_at        INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE TABLE oauth_sessions ("
    "  digest         BLOB PRIMARY KEY NOT NULL CHECK (length(digest) = 32),"
    "  csrf_digest    BLOB NOT NULL CHECK (length(csrf_digest) = 32),"
    "  operator_id    TEXT,"
    "  created_at     INTEGER NOT NULL,"
    "  expires_at     INTEGER NOT NULL"
    ");",
    /* 3: the audit log. seq orders records; the indexes serve `audit list` filters, each
     * newest first. */
    "CREATE TABLE audit_log ("
    "  seq            INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  time_us        INTEGER NOT NULL,"
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
    "  latency_us     INTEGER NOT NULL DEFAULT 0,"
    "  client_addr    TEXT,"
    "  resource_id    TEXT,"
    "  error          TEXT"
    ");"
    "CREATE INDEX audit_time ON audit_log(time_us);"
    "CREATE INDEX audit_category_time ON audit_log(category, time_us);"
    "CREATE INDEX audit_instance_time ON audit_log(instance_id, time_us);"
    "CREATE INDEX audit_actor_time ON audit_log(actor_id, time_us);"
    "CREATE INDEX audit_action_time ON audit_log(action, time_us);",
    /* 4: the credential change log and the servers' reports on it (store.h "Noticing changes").
     * Triggers, not our C code, fill the log, so every writer logs: this binary, an older CLI, a
     * sqlite3 shell. A row is logged for what the request path's tables are built from, and only when a value they use changed: a
     * last-used stamp, a refresh token's rotation, or deleting a token that had already expired
     * logs nothing, so the server's own bookkeeping never reads as a change. kind names the
     * entity ('instance', 'api_key', 'oauth_client', 'access_token'); `at` is wall seconds.
     * AUTOINCREMENT: a seq is never reused, even after the newest rows were deleted. */
    "CREATE TABLE changes ("
    "  seq        INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  kind       TEXT NOT NULL,"
    "  entity_id  TEXT NOT NULL,"
    "  at         INTEGER NOT NULL"
    ");"
    "CREATE TRIGGER changes_instances_insert AFTER INSERT ON instances BEGIN"
    "  INSERT INTO changes (kind, entity_id, at)"
    "    VALUES ('instance', NEW.id, CAST(strftime('%s', 'now') AS INTEGER));"
    "END;"
    "CREATE TRIGGER changes_instances_update AFTER UPDATE ON instances"
    "  WHEN OLD.id IS NOT NEW.id OR OLD.url IS NOT NEW.url OR OLD.secret_key IS NOT NEW.secret_key"
    "    OR OLD.ca_file IS NOT NEW.ca_file OR OLD.enabled IS NOT NEW.enabled BEGIN"
    "  INSERT INTO changes (kind, entity_id, at)"
    "    VALUES ('instance', NEW.id, CAST(strftime('%s', 'now') AS INTEGER));"
    "END;"
    "CREATE TRIGGER changes_instances_delete AFTER DELETE ON instances BEGIN"
    "  INSERT INTO changes (kind, entity_id, at)"
    "    VALUES ('instance', OLD.id, CAST(strftime('%s', 'now') AS INTEGER));"
    "END;"
    "CREATE TRIGGER changes_api_keys_insert AFTER INSERT ON api_keys BEGIN"
    "  INSERT INTO changes (kind, entity_id, at)"
    "    VALUES ('api_key', NEW.id, CAST(strftime('%s', 'now') AS INTEGER));"
    "END;"
    "CREATE TRIGGER changes_api_keys_update AFTER UPDATE ON api_keys"
    "  WHEN OLD.id IS NOT NEW.id OR OLD.name IS NOT NEW.name OR OLD.digest IS NOT NEW.digest"
    "    OR OLD.scopes IS NOT NEW.scopes OR OLD.instances IS NOT NEW.instances"
    "    OR OLD.expires_at IS NOT NEW.expires_at OR OLD.revoked IS NOT NEW.revoked BEGIN"
    "  INSERT INTO changes (kind, entity_id, at)"
    "    VALUES ('api_key', NEW.id, CAST(strftime('%s', 'now') AS INTEGER));"
    "END;"
    "CREATE TRIGGER changes_api_keys_delete AFTER DELETE ON api_keys BEGIN"
    "  INSERT INTO changes (kind, entity_id, at)"
    "    VALUES ('api_key', OLD.id, CAST(strftime('%s', 'now') AS INTEGER));"
    "END;"
    "CREATE TRIGGER changes_oauth_clients_insert AFTER INSERT ON oauth_clients BEGIN"
    "  INSERT INTO changes (kind, entity_id, at)"
    "    VALUES ('oauth_client', NEW.id, CAST(strftime('%s', 'now') AS INTEGER));"
    "END;"
    "CREATE TRIGGER changes_oauth_clients_update AFTER UPDATE ON oauth_clients"
    "  WHEN OLD.id IS NOT NEW.id OR OLD.name IS NOT NEW.name OR OLD.scopes IS NOT NEW.scopes"
    "    OR OLD.instances IS NOT NEW.instances OR OLD.expires_at IS NOT NEW.expires_at"
    "    OR OLD.revoked IS NOT NEW.revoked BEGIN"
    "  INSERT INTO changes (kind, entity_id, at)"
    "    VALUES ('oauth_client', NEW.id, CAST(strftime('%s', 'now') AS INTEGER));"
    "END;"
    "CREATE TRIGGER changes_oauth_clients_delete AFTER DELETE ON oauth_clients BEGIN"
    "  INSERT INTO changes (kind, entity_id, at)"
    "    VALUES ('oauth_client', OLD.id, CAST(strftime('%s', 'now') AS INTEGER));"
    "END;"
    /* Only access tokens (kind 1) reach the tables. */
    "CREATE TRIGGER changes_oauth_tokens_insert AFTER INSERT ON oauth_tokens WHEN NEW.kind = 1 BEGIN"
    "  INSERT INTO changes (kind, entity_id, at)"
    "    VALUES ('access_token', NEW.id, CAST(strftime('%s', 'now') AS INTEGER));"
    "END;"
    "CREATE TRIGGER changes_oauth_tokens_update AFTER UPDATE ON oauth_tokens"
    "  WHEN (OLD.kind = 1 OR NEW.kind = 1) AND (OLD.id IS NOT NEW.id OR OLD.kind IS NOT NEW.kind"
    "    OR OLD.digest IS NOT NEW.digest OR OLD.client_id IS NOT NEW.client_id"
    "    OR OLD.scopes IS NOT NEW.scopes OR OLD.expires_at IS NOT NEW.expires_at"
    "    OR OLD.revoked IS NOT NEW.revoked) BEGIN"
    "  INSERT INTO changes (kind, entity_id, at)"
    "    VALUES ('access_token', NEW.id, CAST(strftime('%s', 'now') AS INTEGER));"
    "END;"
    /* The hourly purge deletes tokens that expired a day ago: no table holds those any more. */
    "CREATE TRIGGER changes_oauth_tokens_delete AFTER DELETE ON oauth_tokens"
    "  WHEN OLD.kind = 1 AND OLD.revoked = 0"
    "    AND (OLD.expires_at = 0 OR OLD.expires_at > CAST(strftime('%s', 'now') AS INTEGER)) BEGIN"
    "  INSERT INTO changes (kind, entity_id, at)"
    "    VALUES ('access_token', OLD.id, CAST(strftime('%s', 'now') AS INTEGER));"
    "END;"
    /* One row per running server: the change seq its published tables include, so that the CLI
     * can wait until every running server has applied its change (serve/watch.h). */
    "CREATE TABLE watchers ("
    "  id         TEXT PRIMARY KEY NOT NULL,"
    "  host       TEXT NOT NULL,"
    "  pid        INTEGER NOT NULL,"
    "  seq        INTEGER NOT NULL,"
    "  seen_at    INTEGER NOT NULL"
    ");",
    /* 5 (issue 9): every audit record carries a unique id, so that importing the same records
     * twice (a spool imported again after a crash, a batch whose commit went unanswered) stores
     * them once (INSERT … ON CONFLICT (id) DO NOTHING), and the node that wrote it. Rows from
     * before keep NULL in both (NULLs never conflict). A server's report names its node, its
     * version and when it started, for `db status`. */
    "ALTER TABLE audit_log ADD COLUMN id TEXT;"
    "ALTER TABLE audit_log ADD COLUMN node TEXT;"
    "CREATE UNIQUE INDEX audit_id ON audit_log(id);"
    "ALTER TABLE watchers ADD COLUMN node TEXT;"
    "ALTER TABLE watchers ADD COLUMN version TEXT;"
    "ALTER TABLE watchers ADD COLUMN started_at INTEGER NOT NULL DEFAULT 0;",
    /* 6 (issue 11): requests refused before authentication are recorded in aggregate, one record
     * per peer and reason a window (audit/refusals.c): how many (repeat_count) and the last one's
     * time (last_time_us; NULL when it is the only one). Every other record is one request:
     * count 1, the default, which the rows from before get too. */
    "ALTER TABLE audit_log ADD COLUMN repeat_count INTEGER NOT NULL DEFAULT 1;"
    "ALTER TABLE audit_log ADD COLUMN last_time_us INTEGER;",
    /* 7 (issue 12): rotation with overlap. A rotated key names the key that replaced it and the
     * new one the key it replaces (`key rotate`); a client whose secret was rotated keeps the
     * previous secret's digest, valid until previous_secret_expires_at (`client rotate-secret`). */
    "ALTER TABLE api_keys ADD COLUMN replaces TEXT;"
    "ALTER TABLE api_keys ADD COLUMN replaced_by TEXT;"
    "ALTER TABLE oauth_clients ADD COLUMN previous_secret_digest BLOB"
    "  CHECK (previous_secret_digest IS NULL OR length(previous_secret_digest) = 32);"
    "ALTER TABLE oauth_clients ADD COLUMN previous_secret_expires_at INTEGER NOT NULL DEFAULT 0;",
    /* 8 (issue 12): the networks a key, or a client's tokens, may be used from (NULL: anywhere),
     * and its own request rate ("100/s"; NULL: the configured default) and burst (0: the rate's
     * count). A change to them must reach running servers as any restriction does, so the
     * change-log triggers are made again with the columns in their conditions. */
    "ALTER TABLE api_keys ADD COLUMN allow_from TEXT;"
    "ALTER TABLE api_keys ADD COLUMN rate_limit TEXT;"
    "ALTER TABLE api_keys ADD COLUMN rate_burst INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE oauth_clients ADD COLUMN allow_from TEXT;"
    "ALTER TABLE oauth_clients ADD COLUMN rate_limit TEXT;"
    "ALTER TABLE oauth_clients ADD COLUMN rate_burst INTEGER NOT NULL DEFAULT 0;"
    "DROP TRIGGER changes_api_keys_update;"
    "CREATE TRIGGER changes_api_keys_update AFTER UPDATE ON api_keys"
    "  WHEN OLD.id IS NOT NEW.id OR OLD.name IS NOT NEW.name OR OLD.digest IS NOT NEW.digest"
    "    OR OLD.scopes IS NOT NEW.scopes OR OLD.instances IS NOT NEW.instances"
    "    OR OLD.expires_at IS NOT NEW.expires_at OR OLD.revoked IS NOT NEW.revoked"
    "    OR OLD.allow_from IS NOT NEW.allow_from OR OLD.rate_limit IS NOT NEW.rate_limit"
    "    OR OLD.rate_burst IS NOT NEW.rate_burst BEGIN"
    "  INSERT INTO changes (kind, entity_id, at)"
    "    VALUES ('api_key', NEW.id, CAST(strftime('%s', 'now') AS INTEGER));"
    "END;"
    "DROP TRIGGER changes_oauth_clients_update;"
    "CREATE TRIGGER changes_oauth_clients_update AFTER UPDATE ON oauth_clients"
    "  WHEN OLD.id IS NOT NEW.id OR OLD.name IS NOT NEW.name OR OLD.scopes IS NOT NEW.scopes"
    "    OR OLD.instances IS NOT NEW.instances OR OLD.expires_at IS NOT NEW.expires_at"
    "    OR OLD.revoked IS NOT NEW.revoked OR OLD.allow_from IS NOT NEW.allow_from"
    "    OR OLD.rate_limit IS NOT NEW.rate_limit OR OLD.rate_burst IS NOT NEW.rate_burst BEGIN"
    "  INSERT INTO changes (kind, entity_id, at)"
    "    VALUES ('oauth_client', NEW.id, CAST(strftime('%s', 'now') AS INTEGER));"
    "END;",
    /* 9 (issue 12, DESIGN §4b): the answers kept for Idempotency-Key, one row per scope (a
     * SHA-256 of credential, instance, method, route and key): the request's fingerprint, its
     * state (1 in flight, 2 answered, 3 outcome unknown) and lease, and Core's answer; and
     * whether an audited answer was such a replay. */
    "CREATE TABLE idempotency ("
    "  scope BLOB PRIMARY KEY CHECK (length(scope) = 32),"
    "  fingerprint BLOB NOT NULL CHECK (length(fingerprint) = 32),"
    "  state INTEGER NOT NULL,"
    "  lease_until INTEGER NOT NULL,"
    "  status INTEGER NOT NULL DEFAULT 0,"
    "  kept INTEGER NOT NULL DEFAULT 0,"
    "  headers BLOB,"
    "  body BLOB,"
    "  created_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX idempotency_expires ON idempotency (expires_at);"
    "ALTER TABLE audit_log ADD COLUMN replayed INTEGER NOT NULL DEFAULT 0;",
    /* 10 (issue 13): the tamper-evident trail (store_chain.c). Each record has its place in one
     * writer's chain (chain, chain_n) and the SHA-256 of its predecessor and of itself (hex);
     * audit_chains holds each chain's head, audit_checkpoints the checkpoints (periodic, and the
     * one each purge leaves) as their JSON text and signature. The rows written before this
     * migration are sealed, in the same transaction, into the chain "legacy", oldest first
     * (bp_store__seal_legacy, in C after this text). audit_unchained would name rows left outside
     * any chain on purpose: none are. */
    "ALTER TABLE audit_log ADD COLUMN chain TEXT;"
    "ALTER TABLE audit_log ADD COLUMN chain_n INTEGER;"
    "ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;"
    "ALTER TABLE audit_log ADD COLUMN hash TEXT;"
    "CREATE UNIQUE INDEX audit_chain_pos ON audit_log (chain, chain_n);"
    "CREATE TABLE audit_chains ("
    "  chain TEXT PRIMARY KEY NOT NULL,"
    "  n INTEGER NOT NULL,"
    "  head TEXT NOT NULL,"
    "  updated_us INTEGER NOT NULL"
    ");"
    "CREATE TABLE audit_checkpoints ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  time_us INTEGER NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  body TEXT NOT NULL,"
    "  signature TEXT"
    ");"
    "CREATE INDEX audit_checkpoints_time ON audit_checkpoints (time_us);"
    "CREATE TABLE audit_unchained (max_seq INTEGER NOT NULL, n INTEGER NOT NULL);"
    "INSERT INTO audit_unchained VALUES (0, 0);",
    /* 11 (issue 13): the admin API. An operator's role decides what they may do there (admin:
     * everything; auditor: read only; approver: only the authorize page, which is what every
     * operator from before could do, so that is what they stay). admin_tokens holds the
     * operators' admin API credentials: tokens made with the CLI and the console's sign-in
     * sessions, by SHA-256 digest only. */
    "ALTER TABLE oauth_operators ADD COLUMN role TEXT NOT NULL DEFAULT 'approver'"
    "  CHECK (role IN ('admin', 'auditor', 'approver'));"
    "CREATE TABLE admin_tokens ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  operator_id TEXT NOT NULL REFERENCES oauth_operators (id) ON DELETE CASCADE,"
    "  kind TEXT NOT NULL CHECK (kind IN ('token', 'session')),"
    "  digest BLOB NOT NULL UNIQUE CHECK (length(digest) = 32),"
    "  prefix TEXT NOT NULL,"
    "  name TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL,"
    "  revoked_at INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX admin_tokens_operator ON admin_tokens (operator_id);",
};

const size_t bp_store__sqlite_migrations_len = BP_ARRAY_LEN(bp_store__sqlite_migrations);

#include "store/store-int.h"

#include "lib/bug.h"

/* Forward-only: a released entry is never edited. A schema change is a new entry at the end,
 * applied in its own transaction and recorded in schema_migrations (store_sqlite.c).
 * Later entries will add OAuth clients/tokens and the audit log. */
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
};

const size_t bp_store__sqlite_migrations_len = BP_ARRAY_LEN(bp_store__sqlite_migrations);

/* Audit log on SQLite (filled in by the audit work). */
#include "store/sqlite-int.h"

const struct bp_store_audit_ops bp_sq__audit_ops = {NULL};

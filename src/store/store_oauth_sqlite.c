/* OAuth tables on SQLite (filled in by the OAuth store work). */
#include "store/sqlite-int.h"

const struct bp_store_oauth_ops bp_sq__oauth_ops = {NULL};

#ifndef BP_TABLES_TABLES_H
#define BP_TABLES_TABLES_H

/* The credential and instance tables moved into auth/ (issue 10: auth owns credential formats,
 * scopes and the credential table); their interface is auth/auth.h. This header only keeps the
 * old include working for serve/watch.c until its next change switches it to auth/auth.h;
 * then this folder goes. */

#include "auth/auth.h"
#include "store/store.h"

#endif

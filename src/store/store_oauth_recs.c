/* Cleanup of the OAuth store records (store.h "OAuth"), the same for every backend. Records hold
 * digests and hashes, never secrets; an operator's Argon2id hash is still overwritten before it
 * is freed, since it is what an offline guesser would want. */
#include <string.h>

#include "lib/alloc.h"
#include "lib/secret.h"
#include "store/store.h"

/* Frees a NUL-terminated string after overwriting it (password hashes). */
static void
free_wiped(char *text)
{
    if (text != NULL) {
        bp_wipe(text, strlen(text));
        bp_free(text);
    }
}

void
bp_client_rec_cleanup(struct bp_client_rec *rec)
{
    if (rec == NULL) {
        return;
    }
    bp_free(rec->id);
    bp_free(rec->name);
    bp_free(rec->scopes);
    for (size_t i = 0; i < rec->n_redirect_uris; i++) {
        bp_free(rec->redirect_uris[i]);
    }
    bp_free(rec->redirect_uris);
    bp_free(rec->grant_types);
    bp_free(rec->instances);
    bp_free(rec->allow_from);
    bp_free(rec->rate_limit);
    memset(rec, 0, sizeof(*rec));
}

void
bp_client_recs_free(struct bp_client_rec *recs, size_t n)
{
    if (recs == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        bp_client_rec_cleanup(&recs[i]);
    }
    bp_free(recs);
}

void
bp_operator_rec_cleanup(struct bp_operator_rec *rec)
{
    if (rec == NULL) {
        return;
    }
    bp_free(rec->id);
    bp_free(rec->name);
    bp_free(rec->role);
    free_wiped(rec->password_hash);
    memset(rec, 0, sizeof(*rec));
}

void
bp_operator_recs_free(struct bp_operator_rec *recs, size_t n)
{
    if (recs == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        bp_operator_rec_cleanup(&recs[i]);
    }
    bp_free(recs);
}

void
bp_token_rec_cleanup(struct bp_token_rec *rec)
{
    if (rec == NULL) {
        return;
    }
    bp_free(rec->id);
    bp_free(rec->client_id);
    bp_free(rec->family_id);
    bp_free(rec->operator_id);
    bp_free(rec->scopes);
    memset(rec, 0, sizeof(*rec));
}

void
bp_live_tokens_free(struct bp_live_token *recs, size_t n)
{
    if (recs == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        bp_free(recs[i].id);
        bp_free(recs[i].client_id);
        bp_free(recs[i].client_name);
        bp_free(recs[i].scopes);
        bp_free(recs[i].instances);
        bp_free(recs[i].allow_from);
        bp_free(recs[i].rate_limit);
        memset(&recs[i], 0, sizeof(recs[i]));
    }
    bp_free(recs);
}

void
bp_code_rec_cleanup(struct bp_code_rec *rec)
{
    if (rec == NULL) {
        return;
    }
    bp_free(rec->client_id);
    bp_free(rec->operator_id);
    bp_free(rec->redirect_uri);
    bp_free(rec->scopes);
    bp_free(rec->code_challenge);
    bp_free(rec->family_id);
    memset(rec, 0, sizeof(*rec));
}

void
bp_session_rec_cleanup(struct bp_session_rec *rec)
{
    if (rec == NULL) {
        return;
    }
    bp_free(rec->operator_id);
    memset(rec, 0, sizeof(*rec));
}

void
bp_admin_token_rec_cleanup(struct bp_admin_token_rec *rec)
{
    if (rec == NULL) {
        return;
    }
    bp_free(rec->id);
    bp_free(rec->operator_id);
    bp_free(rec->kind);
    bp_free(rec->prefix);
    bp_free(rec->name);
    memset(rec, 0, sizeof(*rec));
}

void
bp_admin_token_recs_free(struct bp_admin_token_rec *recs, size_t n)
{
    if (recs == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        bp_admin_token_rec_cleanup(&recs[i]);
    }
    bp_free(recs);
}

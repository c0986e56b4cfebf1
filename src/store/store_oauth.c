/* OAuth store calls, forwarded to the backend (store-int.h). Record cleanup lives with the
 * backend-neutral helpers in store_oauth_recs.c. */
#include <string.h>

#include "store/store-int.h"

bp_err
bp_store_client_insert(struct bp_store *s, const struct bp_client_rec *rec)
{
    return s->ops->oauth->client_insert(s, rec);
}

bp_err
bp_store_client_get(struct bp_store *s, const char *id, struct bp_client_rec *out)
{
    return s->ops->oauth->client_get(s, id, out);
}

bp_err
bp_store_client_list(struct bp_store *s, struct bp_client_rec **out, size_t *out_n)
{
    return s->ops->oauth->client_list(s, out, out_n);
}

bp_err
bp_store_client_rotate_secret(struct bp_store *s, const char *id, const unsigned char digest[32],
                              int64_t previous_expires_at)
{
    return s->ops->oauth->client_rotate_secret(s, id, digest, previous_expires_at);
}

bp_err
bp_store_client_previous_secret(struct bp_store *s, const char *id, unsigned char digest[32], int64_t *out_expires_at)
{
    memset(digest, 0, 32);
    *out_expires_at = 0;
    return s->ops->oauth->client_previous_secret(s, id, digest, out_expires_at);
}

bp_err
bp_store_client_revoke(struct bp_store *s, const char *id, int64_t now)
{
    return s->ops->oauth->client_revoke(s, id, now);
}

bp_err
bp_store_client_set_expiry(struct bp_store *s, const char *id, int64_t expires_at)
{
    return s->ops->oauth->client_set_expiry(s, id, expires_at);
}

bp_err
bp_store_client_set_rate(struct bp_store *s, const char *id, const char *rate_limit, int64_t burst)
{
    return s->ops->oauth->client_set_rate(s, id, rate_limit, burst);
}

bp_err
bp_store_client_set_allow_from(struct bp_store *s, const char *id, const char *allow_from)
{
    return s->ops->oauth->client_set_allow_from(s, id, allow_from);
}

bp_err
bp_store_operator_insert(struct bp_store *s, const struct bp_operator_rec *rec)
{
    return s->ops->oauth->operator_insert(s, rec);
}

bp_err
bp_store_operator_get(struct bp_store *s, const char *id, struct bp_operator_rec *out)
{
    return s->ops->oauth->operator_get(s, id, out);
}

bp_err
bp_store_operator_get_by_name(struct bp_store *s, const char *name, struct bp_operator_rec *out)
{
    return s->ops->oauth->operator_get_by_name(s, name, out);
}

bp_err
bp_store_operator_list(struct bp_store *s, struct bp_operator_rec **out, size_t *out_n)
{
    return s->ops->oauth->operator_list(s, out, out_n);
}

bp_err
bp_store_operator_set_disabled(struct bp_store *s, const char *id, bool disabled, int64_t now)
{
    return s->ops->oauth->operator_set_disabled(s, id, disabled, now);
}

bp_err
bp_store_operator_set_password(struct bp_store *s, const char *id, const char *hash, int64_t now)
{
    return s->ops->oauth->operator_set_password(s, id, hash, now);
}

bp_err
bp_store_token_insert(struct bp_store *s, const struct bp_token_rec *rec)
{
    return s->ops->oauth->token_insert(s, rec);
}

bp_err
bp_store_token_get_by_digest(struct bp_store *s, const unsigned char digest[32], struct bp_token_rec *out)
{
    return s->ops->oauth->token_get_by_digest(s, digest, out);
}

bp_err
bp_store_token_mark_used(struct bp_store *s, const char *id, int64_t now)
{
    return s->ops->oauth->token_mark_used(s, id, now);
}

bp_err
bp_store_token_revoke(struct bp_store *s, const char *id, int64_t now)
{
    return s->ops->oauth->token_revoke(s, id, now);
}

bp_err
bp_store_token_revoke_family(struct bp_store *s, const char *family_id, int64_t now, size_t *out_n)
{
    return s->ops->oauth->token_revoke_family(s, family_id, now, out_n);
}

bp_err
bp_store_token_list_changed(struct bp_store *s, int64_t now, const char *token_id, const char *client_id,
                            struct bp_live_token **out, size_t *out_n)
{
    *out = NULL;
    *out_n = 0;
    return s->ops->oauth->token_list_changed(s, now, token_id, client_id, out, out_n);
}

bp_err
bp_store_token_list_live(struct bp_store *s, int64_t now, struct bp_live_token **out, size_t *out_n)
{
    return s->ops->oauth->token_list_live(s, now, out, out_n);
}

bp_err
bp_store_oauth_purge(struct bp_store *s, int64_t before)
{
    return s->ops->oauth->purge(s, before);
}

bp_err
bp_store_code_insert(struct bp_store *s, const struct bp_code_rec *rec)
{
    return s->ops->oauth->code_insert(s, rec);
}

bp_err
bp_store_code_take(struct bp_store *s, const unsigned char digest[32], int64_t now, struct bp_code_rec *out)
{
    return s->ops->oauth->code_take(s, digest, now, out);
}

bp_err
bp_store_session_insert(struct bp_store *s, const struct bp_session_rec *rec)
{
    return s->ops->oauth->session_insert(s, rec);
}

bp_err
bp_store_session_get(struct bp_store *s, const unsigned char digest[32], struct bp_session_rec *out)
{
    return s->ops->oauth->session_get(s, digest, out);
}

bp_err
bp_store_session_delete(struct bp_store *s, const unsigned char digest[32])
{
    return s->ops->oauth->session_delete(s, digest);
}

bp_err
bp_store_token_revoke_oldest_access(struct bp_store *s, const char *client_id, size_t keep, int64_t now,
                                    size_t *out_n)
{
    return s->ops->oauth->token_revoke_oldest_access(s, client_id, keep, now, out_n);
}

bp_err
bp_store_operator_revoke_grants(struct bp_store *s, const char *operator_id, int64_t now)
{
    return s->ops->oauth->operator_revoke_grants(s, operator_id, now);
}

bp_err
bp_store_session_delete_operator(struct bp_store *s, const char *operator_id)
{
    return s->ops->oauth->session_delete_operator(s, operator_id);
}

bp_err
bp_store_operator_set_role(struct bp_store *s, const char *id, const char *role, int64_t now)
{
    return s->ops->oauth->operator_set_role(s, id, role, now);
}

bp_err
bp_store_admin_token_insert(struct bp_store *s, const struct bp_admin_token_rec *rec)
{
    return s->ops->oauth->admin_token_insert(s, rec);
}

bp_err
bp_store_admin_token_find(struct bp_store *s, const unsigned char digest[32], int64_t now,
                          struct bp_admin_token_rec *out, struct bp_operator_rec *out_operator)
{
    return s->ops->oauth->admin_token_find(s, digest, now, out, out_operator);
}

bp_err
bp_store_admin_token_list(struct bp_store *s, const char *operator_id, const char *kind,
                          struct bp_admin_token_rec **out, size_t *out_n)
{
    return s->ops->oauth->admin_token_list(s, operator_id, kind, out, out_n);
}

bp_err
bp_store_admin_token_get(struct bp_store *s, const char *id, struct bp_admin_token_rec *out)
{
    return s->ops->oauth->admin_token_get(s, id, out);
}

bp_err
bp_store_admin_token_revoke(struct bp_store *s, const char *id, int64_t now)
{
    return s->ops->oauth->admin_token_revoke(s, id, now);
}

bp_err
bp_store_admin_session_end(struct bp_store *s, const unsigned char digest[32])
{
    return s->ops->oauth->admin_session_end(s, digest);
}

bp_err
bp_store_admin_sessions_delete(struct bp_store *s, const char *operator_id, int64_t now)
{
    return s->ops->oauth->admin_sessions_delete(s, operator_id, now);
}

bp_err
bp_store_admin_sessions_trim(struct bp_store *s, const char *operator_id, int64_t keep)
{
    return s->ops->oauth->admin_sessions_trim(s, operator_id, keep);
}

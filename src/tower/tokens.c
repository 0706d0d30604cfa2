/* Tokens as resources of their users (list, API tokens, revoke) and the audit trail. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "model/spec.h"
#include "tower/api_int.h"

#define API_TTL_DEFAULT_MS (30LL * 24 * 3600 * 1000)
#define API_TTL_MAX_MS     (366LL * 24 * 3600 * 1000)
#define EVENTS_SINCE_MS    (24LL * 3600 * 1000)
#define TOKEN_NAME_MAX     64

/* Admins see every token of the tenant they work in; others their own. */
static const char *tokens_of(const sk_tower_ctx *c)
{
        return strcmp(c->role, "admin") == 0 ? NULL : c->user;
}

typedef struct token_acc {
        const sk_tower_ctx *c;
        json_t *items;
        const char *want_id; /* revoke: the id looked for */
        char *found_hash;
} token_acc;

static json_t *token_view(const sk_tower_ctx *c, const sk_token_row *row)
{
        char id[SK_TOWER_TOKEN_ID_LEN + 1];
        snprintf(id, sizeof(id), "%s", row->hash);
        _cleanup_free_ char *created = sk_tower_rfc3339(row->created);
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b}", "id", id, "user", row->user,
                              "kind", row->kind, "role", row->role, "name", row->name, "created",
                              created ? created : "", "revoked", row->revoked);
        if (o && row->expires) {
                _cleanup_free_ char *exp = sk_tower_rfc3339(row->expires);
                json_object_set_new(o, "expires", json_string(exp ? exp : ""));
        }
        if (o && c->token_id && strcmp(id, c->token_id) == 0 && strcmp(row->user, c->user) == 0 &&
            strcmp(c->scope, c->tenant) == 0)
                json_object_set_new(o, "current", json_true());
        return o;
}

static int add_token(const sk_token_row *row, void *user)
{
        token_acc *a = user;
        int64_t now = sk_tower_now(a->c->api);
        if (a->want_id) {
                if (strncmp(row->hash, a->want_id, SK_TOWER_TOKEN_ID_LEN) == 0 &&
                    strlen(a->want_id) == SK_TOWER_TOKEN_ID_LEN)
                        a->found_hash = strdup(row->hash);
                return 0;
        }
        /* expired tokens are of no interest any more */
        if (row->expires && row->expires <= now)
                return 0;
        json_t *o = token_view(a->c, row);
        if (!o)
                return -ENOMEM;
        json_array_append_new(a->items, o);
        return 0;
}

int sk_tower_h_tokens_list(sk_tower_ctx *c, sk_error **err)
{
        _cleanup_json_ json_t *items = json_array();
        token_acc a = {.c = c, .items = items};
        int r = c->api->store->ops->token_list(c->api->store, c->scope, tokens_of(c), add_token, &a,
                                               err);
        if (r < 0)
                return r == -ENOMEM ? sk_error_set(err, ENOMEM, "out of memory") : r;
        sk_tower_reply(c, 200, json_pack("{s:O}", "items", items));
        return 0;
}

/* An API token for automation: the caller's own, with a role no higher than the caller's. */
int sk_tower_h_token_create(sk_tower_ctx *c, sk_error **err)
{
        _cleanup_json_ json_t *body = NULL;
        int r = 0;
        if (c->req->body_len && (r = sk_tower_body(c, &body, err)) < 0)
                return r;
        if (strcmp(c->scope, c->tenant) != 0)
                return sk_error_set_path(err, EINVAL, "tenant",
                                         "tokens are made for yourself, in your own tenant %s",
                                         c->tenant);
        if (c->api_token)
                return sk_error_set(err, EPERM, "an API token cannot make tokens; log in");
        json_t *jr = json_object_get(body, "role");
        const char *role = jr ? json_string_value(jr) : c->role;
        bool metrics = role && strcmp(role, SK_TOWER_METRICS_ROLE) == 0;
        if (!role || (sk_tower_role_rank(role) < 0 && !metrics))
                return sk_error_set_path(err, EINVAL, "role",
                                         "must be one of admin, operator, developer, viewer, "
                                         "metrics");
        /* what a metrics token reads is what its maker may read there */
        if (metrics && (strcmp(c->role, "admin") != 0 || !sk_tenancy_is_provider(c->tn, c->tenant)))
                return sk_error_set_path(err, EPERM, "role",
                                         "only admins of a provider tenant make metrics tokens");
        if (sk_tower_role_rank(role) > sk_tower_role_rank(c->role))
                return sk_error_set_path(err, EPERM, "role",
                                         "a token cannot have more than your role (%s)", c->role);
        int64_t ttl = API_TTL_DEFAULT_MS;
        json_t *jt = json_object_get(body, "ttl");
        if (jt && (!json_is_string(jt) || sk_duration_ms(json_string_value(jt), &ttl) < 0 ||
                   ttl <= 0 || ttl > API_TTL_MAX_MS))
                return sk_error_set_path(err, EINVAL, "ttl",
                                         "must be a duration from 1s to 366 days (e.g. 30d)");
        json_t *jn = json_object_get(body, "name");
        const char *name = jn ? json_string_value(jn) : "";
        if (!name || strlen(name) > TOKEN_NAME_MAX)
                return sk_error_set_path(err, EINVAL, "name",
                                         "must be a string of at most %d characters",
                                         TOKEN_NAME_MAX);
        const char *known[] = {"role", "ttl", "name"};
        const char *key;
        json_t *val;
        json_object_foreach(body, key, val)
        {
                bool ok = false;
                for (size_t i = 0; i < SK_ARRAY_SIZE(known); i++)
                        ok = ok || strcmp(key, known[i]) == 0;
                if (!ok)
                        return sk_error_set_path(err, EINVAL, key,
                                                 "unknown field (role, ttl and name are)");
        }
        _cleanup_free_ char *tok = NULL, *hash = NULL;
        if (sk_tower_new_secret(&tok, &hash) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        int64_t expires = sk_tower_now(c->api) + ttl;
        r = c->api->store->ops->api_token_add(c->api->store, hash, c->tenant, c->user, role,
                                              expires, name, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *exp = sk_tower_rfc3339(expires);
        hash[SK_TOWER_TOKEN_ID_LEN] = '\0';
        sk_tower_reply(c, 200,
                       json_pack("{s:s, s:s, s:s, s:s, s:s}", "token", tok, "id", hash, "role",
                                 role, "name", name, "expires", exp ? exp : ""));
        return 0;
}

int sk_tower_h_token_revoke(sk_tower_ctx *c, sk_error **err)
{
        token_acc a = {.c = c, .want_id = c->name};
        int r = c->api->store->ops->token_list(c->api->store, c->scope, tokens_of(c), add_token, &a,
                                               err);
        _cleanup_free_ char *hash = a.found_hash;
        if (r < 0)
                return r;
        /* someone else's token is as unknown as a token that never was */
        if (!hash)
                return sk_error_set_path(err, ENOENT, "id", "no token with id %s", c->name);
        r = c->api->store->ops->token_revoke(c->api->store, hash, err);
        if (r < 0)
                return r;
        c->sync_only = -1;
        sk_tower_reply(c, 200, json_pack("{s:s}", "result", "revoked"));
        return 0;
}

typedef struct event_acc {
        const sk_tower_ctx *c;
        json_t *items;
} event_acc;

static int add_event(const sk_event_row *row, void *user)
{
        event_acc *a = user;
        if (!sk_tenancy_within(a->c->tn, row->tenant, a->c->scope))
                return 0;
        _cleanup_free_ char *time = sk_tower_rfc3339(row->time);
        json_t *o =
            json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i}", "id", (json_int_t)row->id,
                      "time", time ? time : "", "tenant", row->tenant, "actor", row->actor,
                      "method", row->method, "path", row->path, "resource", row->resource,
                      "address", row->address, "status", row->status);
        if (!o)
                return -ENOMEM;
        json_array_append_new(a->items, o);
        return 0;
}

/* The audit trail of the tenant worked in and every tenant below it. */
int sk_tower_h_events(sk_tower_ctx *c, sk_error **err)
{
        int64_t since = EVENTS_SINCE_MS;
        const char *q = sk_tower_query(c, "since");
        if (q && (sk_duration_ms(q, &since) < 0 || since <= 0))
                return sk_error_set_path(err, EINVAL, "since",
                                         "must be a duration like 10m, 1h or 7d");
        _cleanup_json_ json_t *items = json_array();
        event_acc a = {c, items};
        int r = c->api->store->ops->event_list(c->api->store, sk_tower_now(c->api) - since,
                                               add_event, &a, err);
        if (r < 0)
                return r == -ENOMEM ? sk_error_set(err, ENOMEM, "out of memory") : r;
        sk_tower_reply(c, 200, json_pack("{s:O}", "items", items));
        return 0;
}

/* The site's replicated state and its commands (model/site_state.h). */
#include "model/site_state.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/yaml.h"
#include "model/rules.h"

#define F SK_FIELD

static bool hash_ok(const char *h)
{
        if (!h || strlen(h) != 64)
                return false;
        for (const char *p = h; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

static const sk_string_rule hash_rule = {hash_ok, "must be 64 lowercase hex digits"};
static const sk_int_rule count_rule = {0, INT64_MAX};
/* site ids below 2^38: sk_fsm_local_host_id's range */
static const sk_int_rule site_id_rule = {1, (1LL << 38) - 1};

/* ---- hosts by id ---- */

struct hosts_walk {
        sk_list *l;
        const sk_field_ctx *ctx;
};

static int host_member(const char *key, const json_t *val, const char *path, void *arg,
                       sk_error **err)
{
        struct hosts_walk *w = arg;
        sk_host *h = (sk_host *)w->l->items + w->l->n;
        int r = sk_model_parse(&sk_host_table, val, path, w->ctx, h, err);
        if (r < 0)
                return r;
        w->l->n++;
        char want[24];
        snprintf(want, sizeof(want), "%" PRId64, h->id);
        if (h->id == SK_UNSET || strcmp(key, want))
                return sk_field_bad(err, path, "must be listed under its own id");
        return 0;
}

static int hosts_parse(const json_t *v, const char *path, const sk_field *f, void *dst,
                       const sk_field_ctx *ctx, sk_error **err)
{
        struct hosts_walk w = {dst, ctx};
        if (!json_is_object(v))
                return sk_field_bad(err, path, "must be a mapping of host ids to hosts");
        if (!(w.l->items = calloc(json_object_size(v) + 1, sizeof(sk_host))))
                return sk_field_oom(err);
        return sk_field_each_member(v, path, host_member, &w, err);
}

static int hosts_write(const sk_field *f, const void *src, json_t **out)
{
        const sk_list *l = src;
        _cleanup_json_ json_t *o = json_object();
        if (!o)
                return -ENOMEM;
        for (size_t i = 0; i < l->n; i++) {
                const sk_host *h = (const sk_host *)l->items + i;
                char key[24];
                snprintf(key, sizeof(key), "%" PRId64, h->id);
                if (json_object_set_new(o, key, sk_model_write(&sk_host_table, h)) < 0)
                        return -ENOMEM;
        }
        return sk_field_put(take_ptr(&o), out);
}

/* freed and compared as the list they are read into */
static const sk_list_rule host_list = SK_OBJECT_LIST(sk_host, sk_host_table, 0, 0, "hosts");

static void hosts_free(const sk_field *f, void *dst)
{
        sk_field as_list = {.type = &sk_ft_list, .arg = &host_list};
        sk_ft_list.free(&as_list, dst);
}

static bool hosts_equal(const sk_field *f, const void *a, const void *b)
{
        sk_field as_list = {.type = &sk_ft_list, .arg = &host_list};
        return sk_ft_list.equal(&as_list, a, b);
}

static const sk_field_type hosts_by_id = {hosts_parse, hosts_write, hosts_free, hosts_equal, NULL};

/* ---- the state ---- */

static const sk_list_rule placements_rule =
    SK_OBJECT_LIST(sk_placement, sk_placement_table, 0, SIZE_MAX, "placements");
static const sk_list_rule unplaced_rule =
    SK_OBJECT_LIST(sk_unplaced, sk_unplaced_table, 0, SIZE_MAX, "unplaced instances");
static const sk_field token_fields[] = {
    F("expires", sk_ft_int, sk_join_token, expires, true, NULL, &count_rule),
};
static const sk_model token_table = SK_MODEL(token_fields, sk_join_token, NULL, false);

static const sk_keyed_rule tokens_rule = {
    .key = &hash_rule,
    .item = &sk_ft_inline,
    .item_arg = &token_table,
    .item_size = sizeof(sk_join_token),
    .key_offset = offsetof(sk_join_token, hash),
};

static const sk_keyed_rule joins_rule = {
    .key = &hash_rule,
    .item = &sk_ft_int,
    .item_arg = &sk_rule_host_id,
    .item_size = sizeof(sk_local_join),
    .key_offset = offsetof(sk_local_join, hash),
    .value_offset = offsetof(sk_local_join, host_id),
};

static const sk_field state_fields[] = {
    F("desired", sk_ft_nullable_object, sk_site_state, desired, false, NULL, &sk_desired_doc_table),
    F("hosts", hosts_by_id, sk_site_state, hosts, true, NULL, NULL),
    F("placements", sk_ft_list, sk_site_state, placements, true, NULL, &placements_rule),
    F("unplaced", sk_ft_list, sk_site_state, unplaced, true, NULL, &unplaced_rule),
    F("removed", sk_ft_list, sk_site_state, removed, false, "[]", &sk_rule_host_ids),
    F("join-tokens", sk_ft_keyed, sk_site_state, join_tokens, false, "{}", &tokens_rule),
    F("local-count", sk_ft_int, sk_site_state, local_count, false, "0", &count_rule),
    F("local-joins", sk_ft_keyed, sk_site_state, local_joins, false, "{}", &joins_rule),
};
const sk_model sk_site_state_table = SK_MODEL(state_fields, sk_site_state, NULL, false);

SK_RESOURCE_FUNCTIONS(site_state, sk_site_state, sk_site_state_table)

const sk_host *sk_site_state_host(const sk_site_state *s, int64_t id)
{
        for (size_t i = 0; i < s->hosts.n; i++)
                if (s->hosts.items[i].id == id)
                        return &s->hosts.items[i];
        return NULL;
}

/* ---- commands ---- */

static const char *const op_words[] = {"desired",    "host",     "host-remove", "sched",
                                       "join-token", "join-use", "site-ca",     NULL};

/* Which fields each op needs (and no other may be set). */
static const char *const op_fields[][4] = {
    [SK_SITE_OP_DESIRED] = {"doc"},
    [SK_SITE_OP_HOST] = {"host"},
    [SK_SITE_OP_HOST_REMOVE] = {"id"},
    [SK_SITE_OP_SCHED] = {"placements", "unplaced"},
    [SK_SITE_OP_JOIN_TOKEN] = {"hash", "expires", "now"},
    [SK_SITE_OP_JOIN_USE] = {"hash", "now", "site-id"},
    [SK_SITE_OP_SITE_CA] = {"generation", "certificate", "key", "sha256"},
};

static bool needs(int op, const char *field)
{
        for (size_t i = 0; i < 4 && op_fields[op][i]; i++)
                if (!strcmp(op_fields[op][i], field))
                        return true;
        return false;
}

static bool pem_ok(const char *s)
{
        return s && *s;
}
static const sk_string_rule pem_rule = {pem_ok, "must be a PEM string"};
static const sk_int_rule ca_generation_rule = {1, INT32_MAX};

static int command_post(void *obj, const char *path, sk_error **err);

static const sk_field command_fields[] = {
    F("op", sk_ft_enum, sk_site_command, op, true, NULL, op_words),
    F("doc", sk_ft_object, sk_site_command, doc, false, NULL, &sk_desired_doc_table),
    F("host", sk_ft_object, sk_site_command, host, false, NULL, &sk_host_table),
    F("id", sk_ft_int, sk_site_command, id, false, NULL, &sk_rule_host_id),
    F("placements", sk_ft_list, sk_site_command, placements, false, NULL, &placements_rule),
    F("unplaced", sk_ft_list, sk_site_command, unplaced, false, NULL, &unplaced_rule),
    F("hash", sk_ft_string, sk_site_command, hash, false, NULL, &hash_rule),
    F("expires", sk_ft_int, sk_site_command, expires, false, NULL, &count_rule),
    F("now", sk_ft_int, sk_site_command, now, false, NULL, &count_rule),
    F("site-id", sk_ft_int, sk_site_command, site_id, false, NULL, &site_id_rule),
    F("generation", sk_ft_int, sk_site_command, generation, false, NULL, &ca_generation_rule),
    F("certificate", sk_ft_string, sk_site_command, certificate, false, NULL, &pem_rule),
    F("key", sk_ft_string, sk_site_command, key, false, NULL, &pem_rule),
    F("sha256", sk_ft_string, sk_site_command, sha256, false, NULL, &hash_rule),
};
const sk_model sk_site_command_table =
    SK_MODEL(command_fields, sk_site_command, command_post, false);

/* Whether the field f of c is set (the table's own write says so). */
static bool is_set(const sk_field *f, const sk_site_command *c)
{
        json_t *v = NULL;
        int r = f->type->write(f, (const char *)c + f->offset, &v);
        json_decref(v);
        return r != 0;
}

static int command_post(void *obj, const char *path, sk_error **err)
{
        const sk_site_command *c = obj;
        for (size_t i = 1; i < SK_ARRAY_SIZE(command_fields); i++) {
                const sk_field *f = &command_fields[i];
                bool want = needs(c->op, f->name), set = is_set(f, c);
                if (want == set)
                        continue;
                _cleanup_free_ char *p = sk_yaml_path_key(path, f->name);
                return sk_error_set_path(
                    err, EINVAL, p, want ? "is required for op %s" : "does not belong to op %s",
                    op_words[c->op]);
        }
        if (c->op == SK_SITE_OP_DESIRED && c->doc->generation == SK_UNSET)
                return sk_field_bad(err, "doc.generation", "is required");
        if (c->op == SK_SITE_OP_HOST && c->host->id == SK_UNSET)
                return sk_field_bad(err, "host.id", "is required");
        return 0;
}

SK_RESOURCE_FUNCTIONS(site_command, sk_site_command, sk_site_command_table)

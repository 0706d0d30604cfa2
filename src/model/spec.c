/* Resource kinds and their validation (DESIGN.md section 4, docs/resources.md).
 *
 * Validating a document is parsing it into its model (src/model/app.h, site.h, ...) and
 * writing that back as JSON: the rules live in the models' field tables, written once;
 * this file only knows the kinds and what the tower adds that a document may echo. */
#include "model/spec.h"

#include <string.h>
#include <strings.h>

#include "common/cleanup.h"
#include "model/app.h"
#include "model/deployment.h"
#include "model/resource.h"
#include "model/secret.h"
#include "model/site.h"
#include "model/tenant.h"

/* ---- kinds ---- */

static const sk_kind_info kinds[SK_KIND_COUNT] = {
    {SK_KIND_TENANT, "tenant", "tenants", NULL, true},
    {SK_KIND_USER, "user", "users", NULL, true},
    {SK_KIND_SITE, "site", "sites", NULL, true},
    {SK_KIND_HOST, "host", "hosts", NULL, false},
    {SK_KIND_APPLICATION, "application", "applications", "app", true},
    {SK_KIND_DEPLOYMENT, "deployment", "deployments", NULL, true},
    {SK_KIND_VAULT, "vault", "vaults", NULL, true},
    {SK_KIND_SECRET, "secret", "secrets", NULL, true},
    {SK_KIND_INSTANCE, "instance", "instances", NULL, false},
    {SK_KIND_ALERT, "alert", "alerts", NULL, false},
};

const sk_kind_info *sk_kind_lookup(const char *word)
{
        if (!word)
                return NULL;
        for (size_t i = 0; i < SK_KIND_COUNT; i++) {
                const sk_kind_info *k = &kinds[i];
                if (!strcasecmp(word, k->name) || !strcasecmp(word, k->plural))
                        return k;
                if (k->alias) {
                        if (!strcasecmp(word, k->alias))
                                return k;
                        size_t n = strlen(k->alias);
                        if (!strncasecmp(word, k->alias, n) && !strcasecmp(word + n, "s"))
                                return k;
                }
        }
        return NULL;
}

const sk_kind_info *sk_kind_get(sk_kind kind)
{
        if ((unsigned)kind >= SK_KIND_COUNT)
                return NULL;
        return &kinds[kind];
}

/* ---- entry points ---- */

/* Each appliable kind's model: the one place its rules are written (model/field.h). */
static const sk_model *const models[SK_KIND_COUNT] = {
    [SK_KIND_TENANT] = &sk_tenant_table,
    [SK_KIND_USER] = &sk_user_table,
    [SK_KIND_SITE] = &sk_site_table,
    [SK_KIND_APPLICATION] = &sk_app_table,
    [SK_KIND_DEPLOYMENT] = &sk_deployment_table,
    [SK_KIND_VAULT] = &sk_vault_table,
    [SK_KIND_SECRET] = &sk_secret_table,
};

static const char appliable_list[] =
    "tenant, user, site, application (app), deployment, vault or secret";

static const sk_kind_info *doc_kind(const json_t *doc, sk_error **err)
{
        if (!json_is_object(doc)) {
                sk_field_bad(err, "", "must be a mapping with kind and name");
                return NULL;
        }
        const json_t *k = json_object_get(doc, "kind");
        if (!k) {
                sk_field_bad(err, "kind", "is required");
                return NULL;
        }
        const sk_kind_info *info = sk_kind_lookup(json_string_value(k));
        if (!info || !info->appliable) {
                sk_error_set_path(err, EINVAL, "kind", "must be one of %s%s", appliable_list,
                                  info ? " (this kind cannot be applied)" : "");
                return NULL;
        }
        return info;
}

const sk_model *sk_spec_model(sk_kind kind)
{
        return (unsigned)kind < SK_KIND_COUNT ? models[kind] : NULL;
}

int sk_spec_input(sk_kind kind, const json_t *doc, json_t **input, sk_error **err)
{
        *input = NULL;
        const sk_kind_info *want = sk_kind_get(kind);
        if (!want || !want->appliable)
                return sk_error_set(err, EINVAL, "a %s cannot be applied",
                                    want ? want->name : "resource of this kind");
        const sk_kind_info *info = doc_kind(doc, err);
        if (!info)
                return -EINVAL;
        if (info->kind != kind)
                return sk_error_set_path(err, EINVAL, "kind", "must be %s here", want->name);
        /* What the tower adds to a resource it answers with is ignored on the way in, so
         * `skerry get ... -o yaml | skerry apply -f -` round-trips. */
        json_t *in = json_copy((json_t *)doc);
        if (!in)
                return sk_field_oom(err);
        static const char *const read_only[] = {"created", "updated", "versions", "status"};
        for (size_t i = 0; i < SK_ARRAY_SIZE(read_only); i++)
                json_object_del(in, read_only[i]);
        if (kind != SK_KIND_USER)
                json_object_del(in, "tenant");
        *input = in;
        return 0;
}

int sk_spec_validate_kind(sk_kind kind, const json_t *doc, json_t **normalized, sk_error **err)
{
        *normalized = NULL;
        _cleanup_json_ json_t *input = NULL;
        int r = sk_spec_input(kind, doc, &input, err);
        if (r < 0)
                return r;
        /* normalised = to_json(from_json(doc)): what the model keeps is what is stored */
        void *obj = NULL;
        r = sk_resource_from_json(models[kind], input, &obj, err);
        if (r < 0)
                return r;
        *normalized = sk_model_write(models[kind], obj);
        sk_resource_free(models[kind], obj);
        return *normalized ? 0 : sk_error_set(err, ENOMEM, "out of memory");
}

int sk_spec_validate(const json_t *doc, json_t **normalized, sk_error **err)
{
        *normalized = NULL;
        const sk_kind_info *info = doc_kind(doc, err);
        if (!info)
                return -EINVAL;
        return sk_spec_validate_kind(info->kind, doc, normalized, err);
}

#include "cli/apply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sk_cli_kind_rank(sk_kind kind)
{
        /* Whatever a document refers to must exist before it: users live in tenants,
         * applications read secrets from vaults, deployments name applications. */
        switch (kind) {
        case SK_KIND_TENANT:
                return 0;
        case SK_KIND_USER:
                return 1;
        case SK_KIND_SITE:
                return 2;
        case SK_KIND_VAULT:
                return 3;
        case SK_KIND_SECRET:
                return 4;
        case SK_KIND_APPLICATION:
                return 5;
        case SK_KIND_DEPLOYMENT:
                return 6;
        default:
                return 7;
        }
}

static int cmp_docs(const void *a, const void *b)
{
        const sk_cli_doc *x = a, *y = b;
        int rx = sk_cli_kind_rank(x->kind), ry = sk_cli_kind_rank(y->kind);
        if (rx != ry)
                return rx < ry ? -1 : 1;
        return x->index < y->index ? -1 : x->index > y->index;
}

void sk_cli_order_docs(sk_cli_doc *docs, size_t n)
{
        /* qsort is not stable; the input index as the last key makes it so. */
        if (n > 1)
                qsort(docs, n, sizeof(*docs), cmp_docs);
}

char *sk_cli_doc_error(const char *file, const sk_yaml_doc *doc, const char *path, const char *msg)
{
        int line = doc ? doc->line : 0, column = 1;
        if (doc && sk_yaml_doc_position(doc, path ? path : "", &line, &column) < 0) {
                line = doc->line;
                column = 1;
        }
        if (line <= 0)
                line = 1;
        if (column <= 0)
                column = 1;
        char *out = NULL;
        int n;
        if (path && *path)
                n = asprintf(&out, "%s:%d:%d: %s: %s", file, line, column, path, msg);
        else
                n = asprintf(&out, "%s:%d:%d: %s", file, line, column, msg);
        return n < 0 ? NULL : out;
}

char *sk_cli_apply_line(sk_kind kind, const json_t *doc, const char *result)
{
        const sk_kind_info *info = sk_kind_get(kind);
        const char *name = json_string_value(json_object_get(doc, "name"));
        const char *version = json_string_value(json_object_get(doc, "version"));
        char *out = NULL;
        int n;
        if (kind == SK_KIND_APPLICATION && version)
                n = asprintf(&out, "%s/%s %s %s", info ? info->name : "?", name ? name : "?",
                             version, result);
        else
                n = asprintf(&out, "%s/%s %s", info ? info->name : "?", name ? name : "?", result);
        return n < 0 ? NULL : out;
}

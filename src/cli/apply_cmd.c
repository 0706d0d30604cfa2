/* `skerry apply|diff|delete -f FILE...`: load, validate everything locally, then PUT (or
 * compare, or DELETE) in dependency order. Nothing is sent when any document is invalid;
 * every error is reported, not only the first. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/apply.h"
#include "cli/diff.h"
#include "cli/format.h"
#include "cli/internal.h"
#include "common/cleanup.h"
#include "common/yaml.h"

typedef struct input {
        const char *name; /* for messages */
        char *text;
        size_t len;
        sk_yaml_docs docs;
} input;

static int read_stream(FILE *f, char **text, size_t *len)
{
        char *buf = NULL;
        size_t n = 0, cap = 0;
        for (;;) {
                if (n + 4096 + 1 > cap) {
                        cap = cap ? cap * 2 : 8192;
                        char *p = realloc(buf, cap);
                        if (!p) {
                                free(buf);
                                return -ENOMEM;
                        }
                        buf = p;
                }
                size_t got = fread(buf + n, 1, cap - n - 1, f);
                n += got;
                if (got == 0)
                        break;
        }
        if (ferror(f)) {
                int e = errno ? errno : EIO;
                free(buf);
                return -e;
        }
        buf[n] = '\0';
        *text = buf;
        *len = n;
        return 0;
}

static int read_input(const char *file, input *in)
{
        int r;
        if (strcmp(file, "-") == 0) {
                in->name = "<stdin>";
                r = read_stream(stdin, &in->text, &in->len);
        } else {
                in->name = file;
                _cleanup_fclose_ FILE *f = fopen(file, "re");
                if (!f)
                        r = -errno;
                else
                        r = read_stream(f, &in->text, &in->len);
        }
        if (r < 0)
                fprintf(stderr, "skerry: %s: %s\n", in->name, strerror(-r));
        return r;
}

static int load_input(input *in)
{
        _cleanup_error_ sk_error *err = NULL;
        int r = sk_yaml_load(in->text, in->len, &in->docs, &err);
        if (r < 0) {
                if (err && err->line > 0)
                        fprintf(stderr, "%s:%d:%d: %s\n", in->name, err->line,
                                err->column > 0 ? err->column : 1, sk_error_msg(err, r));
                else
                        fprintf(stderr, "%s: %s\n", in->name, sk_error_msg(err, r));
        }
        return r;
}

/* Validates one document; on success sets d->kind. Returns 0 or prints and returns <0. */
static int validate(sk_cli_doc *d)
{
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_json_ json_t *norm = NULL;
        int r = sk_spec_validate(d->doc->value, &norm, &err);
        if (r < 0) {
                _cleanup_free_ char *msg =
                    sk_cli_doc_error(d->file, d->doc, err ? err->path : NULL, sk_error_msg(err, r));
                fprintf(stderr, "%s\n", msg ? msg : sk_error_msg(err, r));
                return r;
        }
        const sk_kind_info *k = sk_kind_lookup(json_string_value(json_object_get(norm, "kind")));
        if (!k || !json_is_string(json_object_get(d->doc->value, "name"))) {
                _cleanup_free_ char *msg =
                    sk_cli_doc_error(d->file, d->doc, "kind", "not a document skerry can apply");
                fprintf(stderr, "%s\n", msg ? msg : "not a document skerry can apply");
                return -EINVAL;
        }
        d->kind = k->kind;
        return 0;
}

/* An API error answered for one document, with its position in the file. */
static int doc_api_fail(const sk_cli_doc *d, const sk_kind_info *k, const char *name,
                        sk_cli_api_err *api)
{
        _cleanup_free_ char *what = NULL;
        if (!api->path && asprintf(&what, "%s/%s: %s", k->name, name, api->message) < 0)
                what = NULL;
        _cleanup_free_ char *msg =
            sk_cli_doc_error(d->file, d->doc, api->path, what ? what : api->message);
        fprintf(stderr, "%s\n", msg ? msg : api->message);
        if (api->status == 401)
                fputs("skerry: log in with `skerry login TENANT/USER`, or give --token "
                      "or SKERRY_TOKEN\n",
                      stderr);
        sk_cli_api_err_clear(api);
        return SK_EXIT_ERROR;
}

/* PUTs one document (?dry-run=1 when dry); *out gets the answer when out is set. Prints
 * its error. Returns an exit code. */
static int put_doc(sk_cli_ctx *c, const sk_cli_doc *d, bool dry, json_t **out)
{
        const sk_kind_info *k = sk_kind_get(d->kind);
        const char *name = json_string_value(json_object_get(d->doc->value, "name"));
        const char *q[] = {"tenant", c->tenant, "dry-run", dry ? "1" : NULL, NULL};
        _cleanup_free_ char *path = sk_cli_resource_path(k->plural, name, NULL, q);
        if (!path)
                return sk_cli_fail(NULL, -ENOMEM);
        _cleanup_error_ sk_error *err = NULL;
        sk_cli_api_err api = {0};
        /* The document goes as the user wrote it, so a server-side path maps back to it. */
        int r = sk_cli_call(&c->client, "PUT", path, d->doc->value, out, &api, &err);
        if (r == -EPROTO && api.message)
                return doc_api_fail(d, k, name, &api);
        if (r < 0)
                return sk_cli_fail(err, r);
        return SK_EXIT_OK;
}

static int apply_doc(sk_cli_ctx *c, const sk_cli_doc *d)
{
        _cleanup_json_ json_t *v = NULL;
        int rc = put_doc(c, d, c->dry_run, &v);
        if (rc != SK_EXIT_OK)
                return rc;
        const char *result = json_string_value(json_object_get(v, "result"));
        _cleanup_free_ char *line =
            sk_cli_apply_line(d->kind, d->doc->value, result ? result : "applied");
        printf("%s%s\n", line ? line : "", c->dry_run ? " (dry run)" : "");
        fflush(stdout);
        return SK_EXIT_OK;
}

/* What the tower stores for d, as compared by diff: without the fields it adds itself. */
static json_t *comparable(const json_t *v, sk_kind kind)
{
        json_t *out = json_deep_copy(v);
        static const char *const own[] = {"created", "updated", "status", "versions", "id"};
        for (size_t i = 0; out && i < SK_ARRAY_SIZE(own); i++)
                json_object_del(out, own[i]);
        if (out && kind != SK_KIND_USER)
                json_object_del(out, "tenant");
        return out;
}

/* Block YAML with sorted keys, so key order never shows as a change. */
static char *normalized_yaml(const json_t *v)
{
        if (!v)
                return strdup("");
        _cleanup_free_ char *sorted = json_dumps(v, JSON_SORT_KEYS | JSON_COMPACT);
        _cleanup_json_ json_t *again = sorted ? json_loads(sorted, 0, NULL) : NULL;
        return again ? sk_yaml_dump(again) : NULL;
}

/* 0 no change, 1 a change (printed), or an error exit code via *rc. */
static int diff_doc(sk_cli_ctx *c, const sk_cli_doc *d, bool color, int *rc)
{
        const sk_kind_info *k = sk_kind_get(d->kind);
        const char *name = json_string_value(json_object_get(d->doc->value, "name"));
        _cleanup_json_ json_t *dry = NULL;
        *rc = put_doc(c, d, true, &dry);
        if (*rc != SK_EXIT_OK)
                return 0;
        const char *version = d->kind == SK_KIND_APPLICATION
                                  ? json_string_value(json_object_get(d->doc->value, "version"))
                                  : NULL;
        const char *q[] = {"tenant", c->tenant, "version", version, NULL};
        _cleanup_free_ char *path = sk_cli_resource_path(k->plural, name, NULL, q);
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_json_ json_t *cur = NULL;
        sk_cli_api_err api = {0};
        int r = path ? sk_cli_call(&c->client, "GET", path, NULL, &cur, &api, &err) : -ENOMEM;
        if (r == -EPROTO && api.status == 404) {
                sk_cli_api_err_clear(&api);
        } else if (r == -EPROTO && api.message) {
                *rc = doc_api_fail(d, k, name, &api);
                return 0;
        } else if (r < 0) {
                *rc = sk_cli_fail(err, r);
                return 0;
        }
        _cleanup_json_ json_t *before = cur ? comparable(cur, d->kind) : NULL;
        _cleanup_json_ json_t *after = comparable(json_object_get(dry, "item"), d->kind);
        _cleanup_free_ char *a = normalized_yaml(before), *b = normalized_yaml(after);
        _cleanup_free_ char *an = NULL, *bn = NULL;
        if (asprintf(&an, "%s/%s (tower)", k->name, name) < 0)
                an = NULL;
        if (asprintf(&bn, "%s/%s (%s)", k->name, name, d->file) < 0)
                bn = NULL;
        _cleanup_free_ char *text =
            a && b && an && bn ? sk_cli_unified_diff(cur ? an : "/dev/null", a, bn, b, color)
                               : NULL;
        if (!text) {
                *rc = sk_cli_fail(NULL, -ENOMEM);
                return 0;
        }
        fputs(text, stdout);
        return *text != '\0';
}

/* DELETE for one document: an application document removes its version. */
static int delete_doc(sk_cli_ctx *c, const sk_cli_doc *d)
{
        const sk_kind_info *k = sk_kind_get(d->kind);
        const char *name = json_string_value(json_object_get(d->doc->value, "name"));
        const char *version = d->kind == SK_KIND_APPLICATION
                                  ? json_string_value(json_object_get(d->doc->value, "version"))
                                  : NULL;
        const char *q[] = {"tenant", c->tenant, "version", version, NULL};
        _cleanup_free_ char *path = sk_cli_resource_path(k->plural, name, NULL, q);
        if (!path)
                return sk_cli_fail(NULL, -ENOMEM);
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_json_ json_t *v = NULL;
        sk_cli_api_err api = {0};
        int r = sk_cli_call(&c->client, "DELETE", path, NULL, &v, &api, &err);
        if (r == -EPROTO && api.message)
                return doc_api_fail(d, k, name, &api);
        if (r < 0)
                return sk_cli_fail(err, r);
        const char *result = json_string_value(json_object_get(v, "result"));
        printf("%s/%s%s%s %s\n", k->name, name, version ? " " : "", version ? version : "",
               result ? result : "deleted");
        fflush(stdout);
        return SK_EXIT_OK;
}

typedef enum { DO_APPLY, DO_DIFF, DO_DELETE } action;

/* Every document, each error reported, none skipped: the user fixes all in one go. */
static int run_docs(sk_cli_ctx *c, sk_cli_doc *docs, size_t ndocs, action what)
{
        int rc = sk_cli_connect(c, true);
        if (rc != SK_EXIT_OK)
                return rc;
        size_t failed = 0, changed = 0;
        bool color = what == DO_DIFF && sk_cli_use_color(1);
        for (size_t n = 0; n < ndocs; n++) {
                /* deletes go dependents first */
                const sk_cli_doc *d = &docs[what == DO_DELETE ? ndocs - 1 - n : n];
                if (what == DO_APPLY)
                        rc = apply_doc(c, d);
                else if (what == DO_DELETE)
                        rc = delete_doc(c, d);
                else
                        changed += (size_t)diff_doc(c, d, color, &rc);
                failed += rc != SK_EXIT_OK;
        }
        fflush(stdout);
        if (failed) {
                fprintf(stderr, "skerry: %zu of %zu documents failed\n", failed, ndocs);
                return SK_EXIT_ERROR;
        }
        return changed ? SK_EXIT_ERROR : SK_EXIT_OK;
}

static int load_and_run(sk_cli_ctx *c, input *ins, size_t nin, action what)
{
        size_t ndocs = 0, errors = 0;
        for (size_t i = 0; i < nin; i++) {
                if (read_input(c->files[i], &ins[i]) < 0)
                        return SK_EXIT_ERROR;
                if (load_input(&ins[i]) < 0)
                        errors++;
                ndocs += ins[i].docs.n;
        }
        _cleanup_free_ sk_cli_doc *docs = calloc(ndocs ? ndocs : 1, sizeof(*docs));
        if (!docs)
                return sk_cli_fail(NULL, -ENOMEM);
        size_t n = 0;
        for (size_t i = 0; i < nin; i++)
                for (size_t j = 0; j < ins[i].docs.n; j++, n++) {
                        docs[n] = (sk_cli_doc){ins[i].name, &ins[i].docs.docs[j], SK_KIND_COUNT, n};
                        if (validate(&docs[n]) < 0)
                                errors++;
                }
        if (errors) {
                fprintf(stderr, "skerry: nothing %s: %zu error%s\n",
                        what == DO_DELETE ? "deleted"
                        : what == DO_DIFF ? "compared"
                                          : "applied",
                        errors, errors == 1 ? "" : "s");
                return SK_EXIT_ERROR;
        }
        if (ndocs == 0) {
                fprintf(stderr, "skerry: no documents in the input\n");
                return SK_EXIT_ERROR;
        }
        sk_cli_order_docs(docs, ndocs);
        return run_docs(c, docs, ndocs, what);
}

static int with_files(sk_cli_ctx *c, action what)
{
        if (c->nfiles == 0)
                return sk_cli_usage_error(c, "%s needs -f FILE (- for stdin)", c->verb->name);
        size_t stdin_uses = 0;
        for (size_t i = 0; i < c->nfiles; i++)
                stdin_uses += strcmp(c->files[i], "-") == 0;
        if (stdin_uses > 1)
                return sk_cli_usage_error(c, "-f - (stdin) can be given only once");
        input *ins = calloc(c->nfiles, sizeof(*ins));
        if (!ins)
                return sk_cli_fail(NULL, -ENOMEM);
        int rc = load_and_run(c, ins, c->nfiles, what);
        for (size_t i = 0; i < c->nfiles; i++) {
                sk_yaml_docs_free(&ins[i].docs);
                free(ins[i].text);
        }
        free(ins);
        return rc;
}

int sk_cli_cmd_apply(sk_cli_ctx *c)
{
        return with_files(c, DO_APPLY);
}

int sk_cli_cmd_diff(sk_cli_ctx *c)
{
        return with_files(c, DO_DIFF);
}

int sk_cli_cmd_delete_files(sk_cli_ctx *c)
{
        return with_files(c, DO_DELETE);
}

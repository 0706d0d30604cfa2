/* `skerry apply -f FILE...`: load, validate everything locally, then PUT in dependency
 * order. Nothing is sent when any document is invalid. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/apply.h"
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

/* PUTs one document; prints its result line or its error. Returns an exit code. */
static int put_doc(sk_cli_ctx *c, const sk_cli_doc *d)
{
        const sk_kind_info *k = sk_kind_get(d->kind);
        const char *name = json_string_value(json_object_get(d->doc->value, "name"));
        const char *q[] = {"tenant", c->tenant, NULL};
        _cleanup_free_ char *path = sk_cli_resource_path(k->plural, name, NULL, q);
        if (!path)
                return sk_cli_fail(NULL, -ENOMEM);
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_json_ json_t *v = NULL;
        sk_cli_api_err api = {0};
        /* The document goes as the user wrote it, so a server-side path maps back to it. */
        int r = sk_cli_call(&c->client, "PUT", path, d->doc->value, &v, &api, &err);
        if (r == -EPROTO && api.message) {
                _cleanup_free_ char *what = NULL;
                if (!api.path && asprintf(&what, "%s/%s: %s", k->name, name, api.message) < 0)
                        what = NULL;
                _cleanup_free_ char *msg =
                    sk_cli_doc_error(d->file, d->doc, api.path, what ? what : api.message);
                fprintf(stderr, "%s\n", msg ? msg : api.message);
                if (api.status == 401)
                        fputs("skerry: log in with `skerry login TENANT/USER`, or give --token "
                              "or SKERRY_TOKEN\n",
                              stderr);
                sk_cli_api_err_clear(&api);
                return SK_EXIT_ERROR;
        }
        if (r < 0)
                return sk_cli_fail(err, r);
        const char *result = json_string_value(json_object_get(v, "result"));
        _cleanup_free_ char *line =
            sk_cli_apply_line(d->kind, d->doc->value, result ? result : "applied");
        printf("%s\n", line ? line : "");
        fflush(stdout);
        return SK_EXIT_OK;
}

static int apply_inputs(sk_cli_ctx *c, input *ins, size_t nin)
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
                fprintf(stderr, "skerry: nothing applied: %zu error%s\n", errors,
                        errors == 1 ? "" : "s");
                return SK_EXIT_ERROR;
        }
        if (ndocs == 0) {
                fprintf(stderr, "skerry: no documents in the input\n");
                return SK_EXIT_ERROR;
        }
        sk_cli_order_docs(docs, ndocs);
        int rc = sk_cli_connect(c, true);
        for (size_t i = 0; rc == SK_EXIT_OK && i < ndocs; i++) {
                rc = put_doc(c, &docs[i]);
                if (rc != SK_EXIT_OK && i > 0)
                        fprintf(stderr, "skerry: stopped after %zu of %zu documents\n", i, ndocs);
        }
        return rc;
}

int sk_cli_cmd_apply(sk_cli_ctx *c)
{
        if (c->nfiles == 0)
                return sk_cli_usage_error(c, "apply needs -f FILE (- for stdin)");
        size_t stdin_uses = 0;
        for (size_t i = 0; i < c->nfiles; i++)
                stdin_uses += strcmp(c->files[i], "-") == 0;
        if (stdin_uses > 1)
                return sk_cli_usage_error(c, "-f - (stdin) can be given only once");
        input *ins = calloc(c->nfiles, sizeof(*ins));
        if (!ins)
                return sk_cli_fail(NULL, -ENOMEM);
        int rc = apply_inputs(c, ins, c->nfiles);
        for (size_t i = 0; i < c->nfiles; i++) {
                sk_yaml_docs_free(&ins[i].docs);
                free(ins[i].text);
        }
        free(ins);
        return rc;
}

/* The reading verbs (get, describe, match, rollout status, whoami) and delete. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/format.h"
#include "cli/internal.h"
#include "cli/jsonpath.h"
#include "common/cleanup.h"
#include "common/yaml.h"
#include "model/labelexpr.h"

static void print_expr_error(const char *expr, const char *msg, int column);

static bool listed_only(const sk_kind_info *k)
{
        /* The API has no GET /v1/hosts/NAME: one host or instance is found in the list. */
        return k->kind == SK_KIND_HOST || k->kind == SK_KIND_INSTANCE;
}

/* Usage checks that need no tower; returns an exit code. */
static int check_flags(const sk_cli_ctx *c, const sk_kind_info *k)
{
        if (c->site && !listed_only(k))
                return sk_cli_usage_error(c, "--site is for hosts and instances, not %s",
                                          k->plural);
        if (!c->site && !c->site_local && k->kind == SK_KIND_HOST)
                return sk_cli_usage_error(c, "hosts are listed per site: add --site S");
        if (c->version && k->kind != SK_KIND_APPLICATION)
                return sk_cli_usage_error(c, "--version is for applications, not %s", k->plural);
        return SK_EXIT_OK;
}

static const char *item_name(const sk_kind_info *k, const json_t *item)
{
        if (k->kind == SK_KIND_INSTANCE)
                return json_string_value(json_object_get(item, "instance"));
        const char *n = json_string_value(json_object_get(item, "name"));
        if (!n && k->kind == SK_KIND_HOST)
                n = json_string_value(json_object_get(item, "host"));
        return n;
}

static int fetch(sk_cli_ctx *c, const sk_kind_info *k, const char *name, json_t **out)
{
        bool listed = listed_only(k);
        const char *q[] = {"site", c->site, "version", c->version, "tenant", c->tenant, NULL};
        _cleanup_free_ char *path = sk_cli_resource_path(k->plural, listed ? NULL : name, NULL, q);
        if (!path)
                return sk_cli_fail(NULL, -ENOMEM);
        int rc = sk_cli_request(c, "GET", path, NULL, out, NULL);
        if (rc != SK_EXIT_OK || !listed || !name)
                return rc;
        size_t i;
        json_t *item;
        json_array_foreach(json_object_get(*out, "items"), i, item)
        {
                const char *n = item_name(k, item);
                if (n && strcmp(n, name) == 0) {
                        json_incref(item);
                        json_decref(*out);
                        *out = item;
                        return SK_EXIT_OK;
                }
        }
        json_decref(*out);
        *out = NULL;
        fprintf(stderr, "skerry: no %s '%s'%s%s\n", k->name, name, c->site ? " on site " : "",
                c->site ? c->site : "");
        return SK_EXIT_ERROR;
}

static int print_text(char *text)
{
        if (!text)
                return sk_cli_fail(NULL, -ENOMEM);
        fputs(text, stdout);
        free(text);
        return SK_EXIT_OK;
}

/* `-o` of get: table, wide, json, yaml, name or jsonpath=TEMPLATE. */
typedef struct output {
        enum { OUT_TABLE, OUT_WIDE, OUT_JSON, OUT_YAML, OUT_NAME, OUT_JSONPATH } mode;
        const char *tmpl;
        bool color;
} output;

static int parse_output(const sk_cli_ctx *c, output *o)
{
        static const char *const names[] = {"table", "wide", "json", "yaml", "name"};
        const char *t = c->output ? c->output : "table";
        o->color = sk_cli_use_color(1);
        if (strncmp(t, "jsonpath=", 9) == 0) {
                o->mode = OUT_JSONPATH, o->tmpl = t + 9;
                /* the syntax is checked on no data, so a typo costs no request */
                _cleanup_error_ sk_error *err = NULL;
                _cleanup_free_ char *out = NULL;
                _cleanup_json_ json_t *none = json_null();
                int r = sk_cli_jsonpath(o->tmpl, none, &out, &err);
                if (r < 0)
                        return sk_cli_usage_error(c, "%s", sk_error_msg(err, r));
                return SK_EXIT_OK;
        }
        for (size_t i = 0; i < SK_ARRAY_SIZE(names); i++)
                if (strcmp(t, names[i]) == 0) {
                        o->mode = (typeof(o->mode))i;
                        return SK_EXIT_OK;
                }
        return sk_cli_usage_error(c,
                                  "-o must be table, wide, json, yaml, name or "
                                  "jsonpath=TEMPLATE, not '%s'",
                                  t);
}

/* -l: parsed here first, so a typo costs no request and shows a caret. */
static int parse_selector(const sk_cli_ctx *c, sk_expr **e)
{
        if (!c->selector)
                return SK_EXIT_OK;
        _cleanup_error_ sk_error *err = NULL;
        int r = sk_expr_parse(c->selector, e, &err);
        if (r < 0) {
                print_expr_error(c->selector, sk_error_msg(err, r), err ? err->column : 0);
                return SK_EXIT_ERROR;
        }
        return SK_EXIT_OK;
}

/* Keeps the items whose labels e selects (where the API has no selector of its own). */
static void filter_items(json_t *v, const sk_expr *e)
{
        json_t *items = json_object_get(v, "items");
        _cleanup_json_ json_t *kept = json_array();
        size_t i;
        json_t *item;
        json_array_foreach(items, i, item)
        {
                const json_t *labels = json_object_get(item, "labels");
                if (sk_expr_match(e, json_is_object(labels) ? labels : NULL))
                        json_array_append(kept, item);
        }
        json_object_set(v, "items", kept);
}

static int fetch_selected(sk_cli_ctx *c, const sk_kind_info *k, const char *name, const sk_expr *e,
                          json_t **out)
{
        /* sites are selected by the tower (?match=), so application tenants see theirs */
        if (e && !name && k->kind == SK_KIND_SITE) {
                const char *q[] = {"match", c->selector, "tenant", c->tenant, NULL};
                _cleanup_free_ char *path = sk_cli_resource_path("sites", NULL, NULL, q);
                if (!path)
                        return sk_cli_fail(NULL, -ENOMEM);
                return sk_cli_request(c, "GET", path, NULL, out, NULL);
        }
        int rc = fetch(c, k, name, out);
        if (rc == SK_EXIT_OK && e && !name)
                filter_items(*out, e);
        return rc;
}

/* The answer as -o asks; a malloc'd text (NULL: out of memory or a printed error). */
static char *render(const sk_cli_ctx *c, const sk_kind_info *k, const output *o, json_t *v,
                    bool one, int *rc)
{
        *rc = SK_EXIT_OK;
        if (o->mode == OUT_JSON) {
                char *t = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
                char *out = NULL;
                if (t && asprintf(&out, "%s\n", t) < 0)
                        out = NULL;
                free(t);
                return out;
        }
        if (o->mode == OUT_YAML)
                return sk_yaml_dump(v);
        if (o->mode == OUT_JSONPATH) {
                _cleanup_error_ sk_error *err = NULL;
                char *text = NULL, *out = NULL;
                int r = sk_cli_jsonpath(o->tmpl, v, &text, &err);
                if (r < 0) {
                        *rc = sk_cli_usage_error(c, "%s", sk_error_msg(err, r));
                        return NULL;
                }
                if (asprintf(&out, "%s\n", text) < 0)
                        out = NULL;
                free(text);
                return out;
        }
        _cleanup_json_ json_t *items =
            one ? json_pack("[O]", v) : json_incref(json_object_get(v, "items"));
        if (!json_is_array(items)) {
                fprintf(stderr, "skerry: the tower's answer has no \"items\" list\n");
                *rc = SK_EXIT_ERROR;
                return NULL;
        }
        if (o->mode == OUT_NAME) {
                char *buf = NULL;
                size_t len = 0;
                FILE *f = open_memstream(&buf, &len);
                size_t i;
                json_t *item;
                json_array_foreach(f ? items : NULL, i, item)
                {
                        const char *n = item_name(k, item);
                        fprintf(f, "%s/%s\n", k->name, n ? n : "-");
                }
                if (f && fclose(f) != 0) {
                        free(buf);
                        buf = NULL;
                }
                return buf;
        }
        return sk_cli_format_table_opts(k->kind, items, time(NULL), o->mode == OUT_WIDE, o->color);
}

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
        interrupted = 1;
}

/* Rows of a rendered table keyed by the item's name: what --watch compares. */
static void watch_rows(const char *table, json_t *items, const sk_kind_info *k, json_t *rows)
{
        const char *line = strchr(table, '\n');
        size_t i = 0;
        while (line && line[1]) {
                const char *next = strchr(line + 1, '\n');
                const char *n = item_name(k, json_array_get(items, i++));
                if (n && next)
                        json_object_set_new(rows, n, json_stringn(line + 1, (size_t)(next - line)));
                line = next;
        }
}

/* --watch: the first answer in full, then (tables) each new or changed row, or (other
 * outputs) the whole answer when it changes; until SIGINT. */
static int watch(sk_cli_ctx *c, const sk_kind_info *k, const char *name, const sk_expr *e,
                 const output *o)
{
        struct sigaction sa = {.sa_handler = on_interrupt};
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        _cleanup_json_ json_t *seen = json_object();
        _cleanup_free_ char *last = NULL;
        bool first = true;
        bool table = o->mode == OUT_TABLE || o->mode == OUT_WIDE;
        while (!interrupted) {
                _cleanup_json_ json_t *v = NULL;
                int rc = fetch_selected(c, k, name, e, &v);
                if (rc != SK_EXIT_OK)
                        return rc;
                char *text = render(c, k, o, v, name != NULL, &rc);
                if (!text)
                        return rc != SK_EXIT_OK ? rc : sk_cli_fail(NULL, -ENOMEM);
                if (!table) {
                        if (!last || strcmp(last, text) != 0)
                                fputs(text, stdout);
                        free(last);
                        last = text;
                } else {
                        _cleanup_json_ json_t *rows = json_object();
                        _cleanup_json_ json_t *items =
                            name ? json_pack("[O]", v) : json_incref(json_object_get(v, "items"));
                        watch_rows(text, items, k, rows);
                        if (first) {
                                fputs(text, stdout);
                        } else {
                                const char *key;
                                json_t *row;
                                json_object_foreach(rows, key, row)
                                {
                                        if (!json_equal(row, json_object_get(seen, key)))
                                                fputs(json_string_value(row), stdout);
                                }
                        }
                        json_object_update(seen, rows);
                        free(text);
                }
                first = false;
                fflush(stdout);
                for (int i = 0; i < 10 && !interrupted; i++)
                        usleep(100 * 1000);
        }
        return SK_EXIT_OK;
}

int sk_cli_cmd_get(sk_cli_ctx *c)
{
        /* the audit trail is no resource kind */
        if (strcmp(c->args[0], "events") == 0 || strcmp(c->args[0], "event") == 0) {
                if (c->nargs > 1)
                        return sk_cli_usage_error(c, "get events takes no NAME");
                if (c->selector || c->watch)
                        return sk_cli_usage_error(c, "get events takes no -l or --watch");
                return sk_cli_cmd_get_events(c);
        }
        if (c->since)
                return sk_cli_usage_error(c, "--since is for get events");
        const sk_kind_info *k = sk_cli_kind_arg(c, c->args[0]);
        if (!k)
                return SK_EXIT_USAGE;
        output o = {0};
        int rc = parse_output(c, &o);
        if (rc == SK_EXIT_OK)
                rc = check_flags(c, k);
        const char *name = c->nargs > 1 ? c->args[1] : NULL;
        if (rc == SK_EXIT_OK && name && c->selector)
                rc = sk_cli_usage_error(c, "-l selects among many: give NAME or -l, not both");
        _cleanup_expr_ sk_expr *e = NULL;
        if (rc == SK_EXIT_OK)
                rc = parse_selector(c, &e);
        if (rc == SK_EXIT_OK)
                rc = sk_cli_connect(c, true);
        if (rc != SK_EXIT_OK)
                return rc;
        if (c->watch)
                return watch(c, k, name, e, &o);
        _cleanup_json_ json_t *v = NULL;
        rc = fetch_selected(c, k, name, e, &v);
        if (rc != SK_EXIT_OK)
                return rc;
        bool table = o.mode == OUT_TABLE || o.mode == OUT_WIDE;
        if (table && !name && json_array_size(json_object_get(v, "items")) == 0 &&
            json_is_array(json_object_get(v, "items"))) {
                fprintf(stderr, "no %s found\n", k->plural);
                return SK_EXIT_OK;
        }
        char *text = render(c, k, &o, v, name != NULL, &rc);
        if (!text)
                return rc != SK_EXIT_OK ? rc : sk_cli_fail(NULL, -ENOMEM);
        return print_text(text);
}

int sk_cli_cmd_describe(sk_cli_ctx *c)
{
        const sk_kind_info *k = sk_cli_kind_arg(c, c->args[0]);
        if (!k)
                return SK_EXIT_USAGE;
        int rc = check_flags(c, k);
        if (rc == SK_EXIT_OK)
                rc = sk_cli_connect(c, true);
        if (rc != SK_EXIT_OK)
                return rc;
        _cleanup_json_ json_t *v = NULL;
        rc = fetch(c, k, c->args[1], &v);
        if (rc != SK_EXIT_OK)
                return rc;
        return print_text(sk_cli_format_describe(k->kind, v, time(NULL)));
}

int sk_cli_cmd_delete(sk_cli_ctx *c)
{
        if (c->nfiles) {
                if (c->nargs)
                        return sk_cli_usage_error(c, "give KIND NAME or -f FILE, not both");
                return sk_cli_cmd_delete_files(c);
        }
        if (c->nargs < 2)
                return sk_cli_usage_error(c, "missing argument");
        const sk_kind_info *k = sk_cli_kind_arg(c, c->args[0]);
        if (!k)
                return SK_EXIT_USAGE;
        if (k->kind == SK_KIND_INSTANCE)
                return sk_cli_usage_error(c, "instances are not deleted one by one: delete or "
                                             "change their deployment");
        if (k->kind == SK_KIND_HOST && !c->site)
                return sk_cli_usage_error(c, "a host is removed from its site: add --site S");
        if (c->site_local)
                return sk_cli_usage_error(c, "delete goes through the tower, not --site-local");
        int rc = check_flags(c, k);
        if (rc == SK_EXIT_OK)
                rc = sk_cli_connect(c, true);
        if (rc != SK_EXIT_OK)
                return rc;
        const char *q[] = {"site", c->site, "version", c->version, "tenant", c->tenant, NULL};
        _cleanup_free_ char *path = sk_cli_resource_path(k->plural, c->args[1], NULL, q);
        if (!path)
                return sk_cli_fail(NULL, -ENOMEM);
        _cleanup_json_ json_t *v = NULL;
        rc = sk_cli_request(c, "DELETE", path, NULL, &v, NULL);
        if (rc != SK_EXIT_OK)
                return rc;
        const char *result = json_string_value(json_object_get(v, "result"));
        printf("%s/%s%s%s %s\n", k->name, c->args[1], c->version ? " " : "",
               c->version ? c->version : "", result ? result : "deleted");
        return SK_EXIT_OK;
}

static void print_expr_error(const char *expr, const char *msg, int column)
{
        fprintf(stderr, "skerry: bad expression: %s", msg);
        if (column > 0) {
                _cleanup_free_ char *caret = sk_cli_format_caret(expr, column);
                if (!strstr(msg, "column"))
                        fprintf(stderr, " (column %d)", column);
                fprintf(stderr, "\n%s", caret ? caret : "");
        } else {
                fputc('\n', stderr);
        }
}

static char *join_args(char **args, size_t n)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return NULL;
        for (size_t i = 0; i < n; i++)
                fprintf(f, "%s%s", i ? " " : "", args[i]);
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

int sk_cli_cmd_match(sk_cli_ctx *c)
{
        /* `skerry match chain = acme` works unquoted too. */
        _cleanup_free_ char *expr = join_args(c->args, c->nargs);
        if (!expr)
                return sk_cli_fail(NULL, -ENOMEM);
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_expr_ sk_expr *e = NULL;
        int r = sk_expr_parse(expr, &e, &err);
        if (r < 0) {
                print_expr_error(expr, sk_error_msg(err, r), err ? err->column : 0);
                return SK_EXIT_ERROR;
        }
        int rc = sk_cli_connect(c, true);
        if (rc != SK_EXIT_OK)
                return rc;
        const char *q[] = {"match", expr, "tenant", c->tenant, NULL};
        _cleanup_free_ char *path = sk_cli_resource_path("sites", NULL, NULL, q);
        if (!path)
                return sk_cli_fail(NULL, -ENOMEM);
        _cleanup_json_ json_t *v = NULL;
        sk_cli_api_err api = {0};
        r = sk_cli_call(&c->client, "GET", path, NULL, &v, &api, &err);
        if (r == -EPROTO && api.message) {
                if (api.column > 0)
                        print_expr_error(expr, api.message, api.column);
                else
                        sk_cli_api_fail(&api);
                sk_cli_api_err_clear(&api);
                return SK_EXIT_ERROR;
        }
        if (r < 0)
                return sk_cli_fail(err, r);
        const json_t *items = json_is_array(v) ? v : json_object_get(v, "items");
        size_t i;
        json_t *item;
        json_array_foreach(items, i, item)
        {
                const char *n = json_is_string(item)
                                    ? json_string_value(item)
                                    : json_string_value(json_object_get(item, "name"));
                if (n)
                        printf("%s\n", n);
        }
        return SK_EXIT_OK;
}

int sk_cli_cmd_whoami(sk_cli_ctx *c)
{
        int rc = sk_cli_connect(c, true);
        if (rc != SK_EXIT_OK)
                return rc;
        _cleanup_json_ json_t *v = NULL;
        rc = sk_cli_request(c, "GET", "/v1/whoami", NULL, &v, NULL);
        if (rc != SK_EXIT_OK)
                return rc;
        const char *t = json_string_value(json_object_get(v, "tenant"));
        const char *u = json_string_value(json_object_get(v, "user"));
        const char *role = json_string_value(json_object_get(v, "role"));
        printf("%s/%s (%s)\n", t ? t : "?", u ? u : "?", role ? role : "?");
        return SK_EXIT_OK;
}

int sk_cli_cmd_rollout_status(sk_cli_ctx *c)
{
        int64_t timeout_ms = 0;
        if (c->timeout && (sk_duration_ms(c->timeout, &timeout_ms) < 0 || timeout_ms <= 0))
                return sk_cli_usage_error(c, "--timeout: '%s' is not a duration like 30s or 5m",
                                          c->timeout);
        if (c->timeout && !c->watch)
                return sk_cli_usage_error(c, "--timeout is for --watch");
        if (c->output && strcmp(c->output, "json") != 0 && strcmp(c->output, "table") != 0)
                return sk_cli_usage_error(c, "-o must be table or json, not '%s'", c->output);
        bool json = c->output && strcmp(c->output, "json") == 0;
        int rc = sk_cli_connect(c, true);
        if (rc != SK_EXIT_OK)
                return rc;
        const char *q[] = {"tenant", c->tenant, NULL};
        _cleanup_free_ char *path = sk_cli_resource_path("deployments", c->args[0], NULL, q);
        _cleanup_free_ char *last = NULL;
        if (!path)
                return sk_cli_fail(NULL, -ENOMEM);
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
                _cleanup_json_ json_t *v = NULL;
                rc = sk_cli_request(c, "GET", path, NULL, &v, NULL);
                if (rc != SK_EXIT_OK)
                        return rc;
                bool done = false;
                char *text = sk_cli_format_rollout(v, &done);
                if (!text)
                        return sk_cli_fail(NULL, -ENOMEM);
                if (json) {
                        _cleanup_free_ char *j =
                            json_dumps(v, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
                        free(text);
                        if (!j || asprintf(&text, "%s\n", j) < 0)
                                return sk_cli_fail(NULL, -ENOMEM);
                }
                /* --watch prints only when something changed. */
                if (!last || strcmp(last, text) != 0) {
                        fputs(text, stdout);
                        fflush(stdout);
                }
                free(last);
                last = text;
                if (done)
                        return SK_EXIT_OK;
                struct timespec now;
                clock_gettime(CLOCK_MONOTONIC, &now);
                int64_t spent =
                    (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
                if (!c->watch || (timeout_ms && spent >= timeout_ms)) {
                        fprintf(stderr, "skerry: rollout of %s is not done%s\n", c->args[0],
                                c->watch ? " (timed out)" : "");
                        return SK_EXIT_ERROR;
                }
                usleep(1000 * 1000);
        }
}

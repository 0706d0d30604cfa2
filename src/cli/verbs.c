/* The reading verbs (get, describe, match, rollout status, whoami) and delete. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/format.h"
#include "cli/internal.h"
#include "common/cleanup.h"
#include "common/yaml.h"
#include "model/labelexpr.h"

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

static int print_json(const json_t *v)
{
        if (json_dumpf(v, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15)) < 0)
                return sk_cli_fail(NULL, -EIO);
        fputc('\n', stdout);
        return SK_EXIT_OK;
}

static int print_text(char *text)
{
        if (!text)
                return sk_cli_fail(NULL, -ENOMEM);
        fputs(text, stdout);
        free(text);
        return SK_EXIT_OK;
}

int sk_cli_cmd_get(sk_cli_ctx *c)
{
        /* the audit trail is no resource kind */
        if (strcmp(c->args[0], "events") == 0 || strcmp(c->args[0], "event") == 0) {
                if (c->nargs > 1)
                        return sk_cli_usage_error(c, "get events takes no NAME");
                return sk_cli_cmd_get_events(c);
        }
        if (c->since)
                return sk_cli_usage_error(c, "--since is for get events");
        const sk_kind_info *k = sk_cli_kind_arg(c, c->args[0]);
        if (!k)
                return SK_EXIT_USAGE;
        const char *o = c->output ? c->output : "table";
        if (strcmp(o, "table") && strcmp(o, "json") && strcmp(o, "yaml"))
                return sk_cli_usage_error(c, "-o must be table, json or yaml, not '%s'", o);
        int rc = check_flags(c, k);
        if (rc != SK_EXIT_OK)
                return rc;
        rc = sk_cli_connect(c, true);
        if (rc != SK_EXIT_OK)
                return rc;
        const char *name = c->nargs > 1 ? c->args[1] : NULL;
        _cleanup_json_ json_t *v = NULL;
        rc = fetch(c, k, name, &v);
        if (rc != SK_EXIT_OK)
                return rc;
        if (strcmp(o, "json") == 0)
                return print_json(v);
        if (strcmp(o, "yaml") == 0)
                return print_text(sk_yaml_dump(v));
        _cleanup_json_ json_t *items = NULL;
        if (name)
                items = json_pack("[O]", v);
        else
                items = json_incref(json_object_get(v, "items"));
        if (!json_is_array(items)) {
                fprintf(stderr, "skerry: the tower's answer has no \"items\" list\n");
                return SK_EXIT_ERROR;
        }
        if (json_array_size(items) == 0) {
                fprintf(stderr, "no %s found\n", k->plural);
                return SK_EXIT_OK;
        }
        return print_text(sk_cli_format_table(k->kind, items, time(NULL)));
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
        int rc = sk_cli_connect(c, true);
        if (rc != SK_EXIT_OK)
                return rc;
        const char *q[] = {"tenant", c->tenant, NULL};
        _cleanup_free_ char *path = sk_cli_resource_path("deployments", c->args[0], NULL, q);
        _cleanup_free_ char *last = NULL;
        if (!path)
                return sk_cli_fail(NULL, -ENOMEM);
        for (;;) {
                _cleanup_json_ json_t *v = NULL;
                rc = sk_cli_request(c, "GET", path, NULL, &v, NULL);
                if (rc != SK_EXIT_OK)
                        return rc;
                bool done = false;
                char *text = sk_cli_format_rollout(v, &done);
                if (!text)
                        return sk_cli_fail(NULL, -ENOMEM);
                /* --watch prints only when something changed. */
                if (!last || strcmp(last, text) != 0) {
                        fputs(text, stdout);
                        fflush(stdout);
                }
                free(last);
                last = text;
                if (!c->watch || done)
                        return SK_EXIT_OK;
                sleep(2);
        }
}

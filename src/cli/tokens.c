/* `skerry token list|create|revoke` and `skerry get events`: tokens and the audit trail. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/format.h"
#include "cli/internal.h"
#include "common/cleanup.h"
#include "common/yaml.h"

static int print_json(const json_t *v)
{
        if (json_dumpf(v, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY) < 0)
                return sk_cli_fail(NULL, -EIO);
        fputc('\n', stdout);
        return SK_EXIT_OK;
}

static int check_output(const sk_cli_ctx *c)
{
        const char *o = c->output ? c->output : "table";
        if (strcmp(o, "table") && strcmp(o, "json") && strcmp(o, "yaml"))
                return sk_cli_usage_error(c, "-o must be table, json or yaml, not '%s'", o);
        return SK_EXIT_OK;
}

/* -o json|yaml prints the answer; the table is the caller's. Returns -1 for a table. */
static int print_other(const sk_cli_ctx *c, const json_t *v)
{
        if (c->output && strcmp(c->output, "json") == 0)
                return print_json(v);
        if (c->output && strcmp(c->output, "yaml") == 0) {
                _cleanup_free_ char *text = sk_yaml_dump(v);
                if (!text)
                        return sk_cli_fail(NULL, -ENOMEM);
                fputs(text, stdout);
                return SK_EXIT_OK;
        }
        return -1;
}

/* Strings from the tower go to a terminal: no control characters. */
/* A string of the tower's for a terminal line: control bytes masked, "-" when absent. */
static const char *clean(const json_t *v, char *buf, size_t cap)
{
        const char *s = json_string_value(v);
        size_t n = 0;
        for (; s && *s && n + 1 < cap; s++)
                buf[n++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
        buf[n] = '\0';
        return n ? buf : "-";
}

/* A cell: a string or number as text, "-" when absent (sk_table masks control bytes). */
static char *cell(const json_t *v, const char *absent)
{
        if (json_is_integer(v)) {
                char *t = NULL;
                return asprintf(&t, "%lld", (long long)json_integer_value(v)) < 0 ? NULL : t;
        }
        const char *s = json_string_value(v);
        return strdup(s && *s ? s : absent);
}

/* items as a table measured by display width, one column per key; a key's cell is
 * decorate()'s text when it gives one (for marks like "(revoked)"). */
static int print_table(const json_t *items, size_t n, const char *const *headers,
                       const char *const *keys, char *(*decorate)(const json_t *, size_t))
{
        _cleanup_table_ sk_table *t = sk_table_new(n, headers);
        if (!t)
                return sk_cli_fail(NULL, -ENOMEM);
        size_t i;
        const json_t *row;
        json_array_foreach(items, i, row)
        {
                char *cells[8] = {0};
                int r = 0;
                for (size_t k = 0; k < n && r == 0; k++) {
                        cells[k] = decorate ? decorate(row, k) : NULL;
                        if (!cells[k])
                                cells[k] = cell(json_object_get(row, keys[k]), "-");
                        r = cells[k] ? 0 : -ENOMEM;
                }
                if (r == 0)
                        r = sk_table_add(t, (const char *const *)cells);
                for (size_t k = 0; k < n; k++)
                        free(cells[k]);
                if (r < 0)
                        return sk_cli_fail(NULL, r);
        }
        _cleanup_free_ char *text = sk_table_render_color(t, sk_cli_use_color(1));
        if (!text)
                return sk_cli_fail(NULL, -ENOMEM);
        fputs(text, stdout);
        return SK_EXIT_OK;
}

static int get_list(sk_cli_ctx *c, const char *path, json_t **out)
{
        int rc = check_output(c);
        if (rc == SK_EXIT_OK)
                rc = sk_cli_connect(c, true);
        if (rc == SK_EXIT_OK)
                rc = sk_cli_request(c, "GET", path, NULL, out, NULL);
        return rc;
}

/* A token that never expires says so; the name carries its marks. */
static char *token_cell(const json_t *t, size_t col)
{
        if (col == 5 && !json_object_get(t, "expires"))
                return strdup("never");
        if (col != 6)
                return NULL;
        const char *name = json_string_value(json_object_get(t, "name"));
        char *text = NULL;
        bool revoked = json_is_true(json_object_get(t, "revoked"));
        bool current = json_is_true(json_object_get(t, "current"));
        if (asprintf(&text, "%s%s%s", name && *name ? name : "-", revoked ? " (revoked)" : "",
                     current ? " (this one)" : "") < 0)
                return NULL;
        return text;
}

int sk_cli_cmd_token_list(sk_cli_ctx *c)
{
        const char *q[] = {"tenant", c->tenant, NULL};
        _cleanup_free_ char *path = sk_cli_resource_path("tokens", NULL, NULL, q);
        _cleanup_json_ json_t *v = NULL;
        int rc = path ? get_list(c, path, &v) : sk_cli_fail(NULL, -ENOMEM);
        if (rc != SK_EXIT_OK)
                return rc;
        if ((rc = print_other(c, v)) >= 0)
                return rc;
        json_t *items = json_object_get(v, "items");
        if (json_array_size(items) == 0) {
                fprintf(stderr, "no tokens found\n");
                return SK_EXIT_OK;
        }
        static const char *const headers[] = {"ID",      "USER",    "KIND", "ROLE",
                                              "CREATED", "EXPIRES", "NAME"};
        static const char *const keys[] = {"id",      "user",    "kind", "role",
                                           "created", "expires", "name"};
        return print_table(items, 7, headers, keys, token_cell);
}

int sk_cli_cmd_token_create(sk_cli_ctx *c)
{
        int64_t ms;
        if (c->ttl && (sk_duration_ms(c->ttl, &ms) < 0 || ms <= 0))
                return sk_cli_usage_error(c, "--ttl: '%s' is not a duration like 1h or 30d",
                                          c->ttl);
        if (c->role && strcmp(c->role, "admin") && strcmp(c->role, "operator") &&
            strcmp(c->role, "developer") && strcmp(c->role, "viewer") && strcmp(c->role, "metrics"))
                return sk_cli_usage_error(
                    c, "--role must be admin, operator, developer, viewer or metrics, not '%s'",
                    c->role);
        int rc = sk_cli_connect(c, true);
        if (rc != SK_EXIT_OK)
                return rc;
        _cleanup_json_ json_t *body = json_object();
        if (!body)
                return sk_cli_fail(NULL, -ENOMEM);
        if (c->role)
                json_object_set_new(body, "role", json_string(c->role));
        if (c->ttl)
                json_object_set_new(body, "ttl", json_string(c->ttl));
        if (c->token_name)
                json_object_set_new(body, "name", json_string(c->token_name));
        _cleanup_json_ json_t *v = NULL;
        rc = sk_cli_request(c, "POST", "/v1/tokens", body, &v, NULL);
        if (rc != SK_EXIT_OK)
                return rc;
        const char *token = json_string_value(json_object_get(v, "token"));
        if (!token) {
                fprintf(stderr, "skerry: the tower's answer has no token\n");
                return SK_EXIT_ERROR;
        }
        char b[3][80];
        /* the token alone on stdout, for scripts; what it is on stderr */
        fprintf(stderr, "token %s, role %s, expires %s\n",
                clean(json_object_get(v, "id"), b[0], 80),
                clean(json_object_get(v, "role"), b[1], 80),
                clean(json_object_get(v, "expires"), b[2], 80));
        printf("%s\n", token);
        return SK_EXIT_OK;
}

int sk_cli_cmd_token_revoke(sk_cli_ctx *c)
{
        int rc = sk_cli_connect(c, true);
        if (rc != SK_EXIT_OK)
                return rc;
        const char *q[] = {"tenant", c->tenant, NULL};
        _cleanup_free_ char *path = sk_cli_resource_path("tokens", c->args[0], NULL, q);
        if (!path)
                return sk_cli_fail(NULL, -ENOMEM);
        _cleanup_json_ json_t *v = NULL;
        rc = sk_cli_request(c, "DELETE", path, NULL, &v, NULL);
        if (rc == SK_EXIT_OK)
                printf("token %s revoked\n", c->args[0]);
        return rc;
}

int sk_cli_cmd_get_events(sk_cli_ctx *c)
{
        int64_t ms;
        if (c->since && (sk_duration_ms(c->since, &ms) < 0 || ms <= 0))
                return sk_cli_usage_error(c, "--since: '%s' is not a duration like 10m, 1h or 7d",
                                          c->since);
        const char *q[] = {"since", c->since, "tenant", c->tenant, NULL};
        _cleanup_free_ char *path = sk_cli_resource_path("events", NULL, NULL, q);
        _cleanup_json_ json_t *v = NULL;
        int rc = path ? get_list(c, path, &v) : sk_cli_fail(NULL, -ENOMEM);
        if (rc != SK_EXIT_OK)
                return rc;
        if ((rc = print_other(c, v)) >= 0)
                return rc;
        json_t *items = json_object_get(v, "items");
        if (json_array_size(items) == 0) {
                fprintf(stderr, "no events found\n");
                return SK_EXIT_OK;
        }
        static const char *const headers[] = {"TIME", "TENANT", "WHO", "METHOD",
                                              "PATH", "STATUS", "FROM"};
        static const char *const keys[] = {"time", "tenant", "actor",  "method",
                                           "path", "status", "address"};
        return print_table(items, 7, headers, keys, NULL);
}

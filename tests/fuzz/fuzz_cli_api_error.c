/* What the CLI makes of the tower's answers: error bodies (sk_cli_api_err_parse) and the
 * lists, items and deployments it shows as tables, describe views and rollout status
 * (cli/format.h). Every answer gives a message; a body that is not the API's error shape
 * gives "HTTP STATUS..." without control characters; formatted text never carries a
 * control character but newlines (and tabs under a caret), so a hostile value cannot
 * drive the terminal.
 *
 * Input: two bytes of HTTP status (taken modulo 600), one byte choosing the resource kind,
 * then the body. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api.h"
#include "cli/format.h"
#include "common/cleanup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 1 Nov 2026: a fixed clock keeps runs repeatable. */
#define NOW ((time_t)1793491200)

static bool has_control(const char *s, bool tabs)
{
        for (const unsigned char *p = (const unsigned char *)s; *p; p++)
                if ((*p < 0x20 && *p != '\n' && !(tabs && *p == '\t')) || *p == 0x7f)
                        return true;
        return false;
}

/* A formatted text: present (no allocation fails here) and clean. */
static void shown(char *text, bool tabs)
{
        if (!text || has_control(text, tabs))
                abort();
        free(text);
}

static void parse_error(long status, const char *body, const json_t *v)
{
        sk_cli_api_err e;
        if (sk_cli_api_err_parse(status, body, &e) < 0 || !e.message || e.status != status ||
            e.column < 0 || e.column >= 1000000)
                abort();
        const json_t *msg = json_object_get(json_object_get(v, "error"), "message");
        if (json_is_string(msg)) {
                /* the API's message, with control characters masked for the terminal */
                const char *want = json_string_value(msg);
                if (strlen(e.message) != strlen(want) || has_control(e.message, false))
                        abort();
                for (size_t i = 0; want[i]; i++)
                        if (e.message[i] != want[i] && e.message[i] != '?')
                                abort();
        } else if (e.code || e.path || e.column || strncmp(e.message, "HTTP ", 5) != 0 ||
                   has_control(e.message, false)) {
                abort(); /* not the API's shape: the status and a clean first line */
        }
        /* the CLI shows a caret under the column of a bad label expression */
        if (e.column > 0)
                shown(sk_cli_format_caret(e.message, e.column), true);
        sk_cli_api_err_clear(&e);
}

static void format_answer(sk_kind kind, const json_t *v)
{
        /* a cell keeps its characters: the table it goes into cleans them */
        char *cell = sk_cli_format_cell(v);
        if (!cell)
                abort();
        free(cell);
        /* `get` shows the list's items, or the one item asked for */
        const json_t *items = json_object_get(v, "items");
        if (json_is_array(items) && json_array_size(items) > 0) {
                shown(sk_cli_format_table(kind, items, NOW), false);
                shown(sk_cli_format_table_opts(kind, items, NOW, true, false), false);
        }
        if (json_is_array(v) && json_array_size(v) > 0)
                shown(sk_cli_format_table(kind, v, NOW), false);
        if (json_is_object(v)) {
                shown(sk_cli_format_describe(kind, v, NOW), false);
                bool done = false;
                shown(sk_cli_format_rollout(v, &done), false);
                const char *created = json_string_value(json_object_get(v, "created"));
                if (created)
                        shown(sk_cli_format_age(created, NOW), false);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 3)
                return 0;
        long status = (long)((data[0] | data[1] << 8) % 600);
        sk_kind kind = (sk_kind)(data[2] % SK_KIND_COUNT);
        /* the HTTP client hands the body over as a string */
        _cleanup_free_ char *body = strndup((const char *)data + 3, size - 3);
        if (!body)
                return 0;
        _cleanup_json_ json_t *v = json_loads(body, 0, NULL);
        parse_error(status, body, v);
        if (v)
                format_answer(kind, v);
        return 0;
}

/* Output formatting for the CLI: aligned tables, per-kind columns for `get`, the readable
 * view of `describe`, relative times and the caret under a bad expression. Pure functions
 * on JSON values; every result is a malloc'd string the caller frees (NULL only when out of
 * memory). Control characters in values are shown as '?', so a hostile label cannot drive
 * the terminal. */
#ifndef SK_CLI_FORMAT_H
#define SK_CLI_FORMAT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "model/spec.h"

typedef struct sk_table sk_table;

/* A table of ncols columns; headers are copied. */
sk_table *sk_table_new(size_t ncols, const char *const *headers);
/* Appends a row of ncols cells (copied; NULL shows as "-"). Returns 0 or -ENOMEM. */
int sk_table_add(sk_table *t, const char *const *cells);
/* Columns padded to their widest cell (in terminal columns: sk_cli_display_width), three
 * spaces apart, no trailing blanks; one line per row, header first. */
char *sk_table_render(const sk_table *t);
/* Same, with the header in bold when color is set. */
char *sk_table_render_color(const sk_table *t, bool color);

/* Terminal columns of a UTF-8 string: wide (CJK, emoji) characters count 2, combining
 * marks 0. */
size_t sk_cli_display_width(const char *s);

/* Colour only on a terminal, and never when NO_COLOR is set (no-color.org) or TERM=dumb. */
bool sk_cli_use_color(int fd);
void sk_table_free(sk_table *t);

/* The `get` table for a JSON array of resources of one kind. */
char *sk_cli_format_table(sk_kind kind, const json_t *items, time_t now);
/* Same; wide adds the columns of `-o wide`, color a bold header. */
char *sk_cli_format_table_opts(sk_kind kind, const json_t *items, time_t now, bool wide,
                               bool color);

/* The `describe` view of one resource; for deployments also the per-site instance status. */
char *sk_cli_format_describe(sk_kind kind, const json_t *item, time_t now);

/* `rollout status`: a deployment's running/desired counts overall and per site. *done is
 * set when every desired instance runs. */
char *sk_cli_format_rollout(const json_t *deployment, bool *done);

/* "5s", "3m", "2h", "4d" since an RFC 3339 time; the text itself when it does not parse. */
char *sk_cli_format_age(const char *rfc3339, time_t now);

/* The text and, on the next line, a '^' under the 1-based column. */
char *sk_cli_format_caret(const char *text, int column);

/* One cell from a JSON value: strings as they are, numbers, booleans, arrays joined with
 * ",", objects as "k=v,k=v" (keys sorted); NULL or json null -> "-". */
char *sk_cli_format_cell(const json_t *v);

static inline void sk_table_freep(sk_table **t)
{
        sk_table_free(*t);
}
#define _cleanup_table_ __attribute__((cleanup(sk_table_freep)))

#endif

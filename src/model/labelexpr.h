/* Label expressions (DESIGN.md section 4): select sites, hosts and tenants' site
 * assignments by their labels.
 *
 *   expr    := or
 *   or      := and ("or" and)*
 *   and     := unary ("and" unary)*
 *   unary   := "not" unary | "(" expr ")" | term
 *   term    := KEY "=" VALUE | KEY "!=" VALUE | KEY "~" REGEX | KEY "in" "(" list ")"
 *            | KEY "notin" "(" list ")" | KEY            (present)
 *
 * Keys and values are case-sensitive; a key may hold '/', '.', '-', '_' (system/name);
 * values may be quoted with '"' or '\''. `~` is a POSIX extended regex that must match
 * the whole value. A parse error names the 1-based column. */
#ifndef SK_MODEL_LABELEXPR_H
#define SK_MODEL_LABELEXPR_H

#include <jansson.h>
#include <stdbool.h>

#include "common/error.h"

typedef struct sk_expr sk_expr;

/* On error, (*err)->column holds the 1-based column of the fault. */
int sk_expr_parse(const char *text, sk_expr **out, sk_error **err);
void sk_expr_free(sk_expr *e);

/* labels: a JSON object whose values are strings (others are ignored). */
bool sk_expr_match(const sk_expr *e, const json_t *labels);

/* Canonical text of the expression (fully parenthesised where needed); caller frees. */
char *sk_expr_format(const sk_expr *e);

static inline void sk_expr_freep(sk_expr **e)
{
        sk_expr_free(*e);
}
#define _cleanup_expr_ __attribute__((cleanup(sk_expr_freep)))

#endif

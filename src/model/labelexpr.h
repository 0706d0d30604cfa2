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
 * the whole value. A parse error names the 1-based column.
 *
 * Matching cannot be made expensive (docs/security.md, "Label expressions"): regexes run
 * on a Thompson NFA (src/model/labelexpr_re.h), linear in the value, and the parser
 * refuses an expression whose worst-case cost passes SK_EXPR_MAX_COST. */
#ifndef SK_MODEL_LABELEXPR_H
#define SK_MODEL_LABELEXPR_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

typedef struct sk_expr sk_expr;

/* The longest label value (docs/resources.md) the cost bound is stated for. */
#define SK_EXPR_VALUE_MAX 256
/* Instructions one regex may compile to (x{999} still fits). */
#define SK_EXPR_REGEX_MAX 1000
/* Steps one match of an expression may take on labels whose values are at most
 * SK_EXPR_VALUE_MAX bytes: about 1 ms here (docs/benchmarks.md). */
#define SK_EXPR_MAX_COST (1 << 19)

/* On error, (*err)->column holds the 1-based column of the fault. */
int sk_expr_parse(const char *text, sk_expr **out, sk_error **err);
void sk_expr_free(sk_expr *e);

/* The same, shared with other callers of the same text through a small process-wide
 * cache (compiled once); release with sk_expr_free as usual. */
int sk_expr_parse_cached(const char *text, sk_expr **out, sk_error **err);
/* Empties the cache (tests, leak checks). */
void sk_expr_cache_clear(void);

/* labels: a JSON object whose values are strings (others are ignored). */
bool sk_expr_match(const sk_expr *e, const json_t *labels);

/* The same, adding the steps taken to *steps: never more than sk_expr_cost(e) when every
 * value is at most SK_EXPR_VALUE_MAX bytes (longer ones cost linearly more). */
bool sk_expr_match_counted(const sk_expr *e, const json_t *labels, uint64_t *steps);

/* The worst-case steps of one match (at most SK_EXPR_MAX_COST). */
uint64_t sk_expr_cost(const sk_expr *e);

/* Canonical text of the expression (fully parenthesised where needed); caller frees. */
char *sk_expr_format(const sk_expr *e);

static inline void sk_expr_freep(sk_expr **e)
{
        sk_expr_free(*e);
}
#define _cleanup_expr_ __attribute__((cleanup(sk_expr_freep)))

#endif

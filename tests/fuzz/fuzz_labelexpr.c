/* Label expressions: parse, format, reparse; the canonical text is a fixed point, and the
 * reparsed expression selects exactly what the first one did. The cost bound holds: an
 * expression that parses never costs more than SK_EXPR_MAX_COST, and no match takes more
 * steps than its cost, on values up to SK_EXPR_VALUE_MAX bytes that the input also picks
 * (input: the expression, then after a newline a label value). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/labelexpr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void within_bound(const sk_expr *e, const json_t *labels)
{
        uint64_t steps = 0;
        sk_expr_match_counted(e, labels, &steps);
        if (sk_expr_cost(e) > SK_EXPR_MAX_COST || steps > sk_expr_cost(e)) {
                fprintf(stderr, "steps %llu, cost %llu, bound %d\n", (unsigned long long)steps,
                        (unsigned long long)sk_expr_cost(e), SK_EXPR_MAX_COST);
                abort();
        }
}

/* The value part, at most SK_EXPR_VALUE_MAX bytes, NULs dropped; and the same byte
 * repeated to full length (the longest values are the costliest). */
static json_t *labels_from(const char *v, size_t n)
{
        char val[SK_EXPR_VALUE_MAX + 1], full[SK_EXPR_VALUE_MAX + 1];
        size_t len = 0;
        for (size_t i = 0; i < n && len < SK_EXPR_VALUE_MAX; i++)
                if (v[i])
                        val[len++] = v[i];
        val[len] = '\0';
        memset(full, len ? val[0] : 'a', SK_EXPR_VALUE_MAX);
        full[SK_EXPR_VALUE_MAX] = '\0';
        return json_pack("{s:s, s:s, s:s, s:s, s:s, s:i}", "a", val, "b", "", "system/name", full,
                         "chain", "acme", "x", val, "n", 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const uint8_t *nl = memchr(data, '\n', size);
        size_t elen = nl ? (size_t)(nl - data) : size;
        char *text = malloc(elen + 1);
        if (!text)
                return 0;
        memcpy(text, data, elen);
        text[elen] = '\0';
        sk_expr *e = NULL, *again = NULL;
        sk_error *err = NULL;
        if (sk_expr_parse(text, &e, &err) < 0) {
                if (!err || err->column < 1 || (size_t)err->column > elen + 1)
                        abort(); /* every fault names a column inside (or just after) the text */
                sk_error_free(&err);
                free(text);
                return 0;
        }
        char *canon = sk_expr_format(e);
        if (!canon || sk_expr_parse(canon, &again, &err) < 0)
                abort();
        char *canon2 = sk_expr_format(again);
        if (!canon2 || strcmp(canon, canon2))
                abort();
        json_t *labels =
            nl ? labels_from((const char *)nl + 1, size - elen - 1) : labels_from("x", 1);
        if (sk_expr_match(e, labels) != sk_expr_match(again, labels))
                abort();
        within_bound(e, labels);
        json_decref(labels);
        free(canon);
        free(canon2);
        sk_expr_free(e);
        sk_expr_free(again);
        free(text);
        return 0;
}

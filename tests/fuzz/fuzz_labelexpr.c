/* Label expressions: parse, format, reparse; the canonical text is a fixed point, and the
 * reparsed expression selects exactly what the first one did. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/labelexpr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        sk_expr *e = NULL, *again = NULL;
        sk_error *err = NULL;
        if (sk_expr_parse(text, &e, &err) < 0) {
                if (!err || err->column < 1 || (size_t)err->column > size + 1)
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
        json_t *labels = json_pack("{s:s, s:s, s:s, s:s, s:i}", "a", "x", "b", "", "system/name",
                                   "store-001", "chain", "acme", "n", 1);
        if (sk_expr_match(e, labels) != sk_expr_match(again, labels))
                abort();
        json_decref(labels);
        free(canon);
        free(canon2);
        sk_expr_free(e);
        sk_expr_free(again);
        free(text);
        return 0;
}

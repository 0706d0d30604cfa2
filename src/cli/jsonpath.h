/* `-o jsonpath=TEMPLATE`: the part of kubectl's JSONPath people use. Text outside braces is
 * printed as is; inside braces either a quoted literal ({"\n"}, {"\t"}) or a path from the
 * answer's root: `.field`, `['field']`, `[N]` (negative counts from the end), `[*]` and
 * `.*` (every element). Several results of one path are joined by a space; strings print
 * bare, other values as compact JSON. Pure. */
#ifndef SK_CLI_JSONPATH_H
#define SK_CLI_JSONPATH_H

#include <jansson.h>

#include "common/error.h"

/* On a syntax error the message names the 1-based column in the template. */
int sk_cli_jsonpath(const char *tmpl, const json_t *root, char **out, sk_error **err);

#endif

/* A unified diff of two texts, line by line, for `skerry diff`. Pure. */
#ifndef SK_CLI_DIFF_H
#define SK_CLI_DIFF_H

#include <stdbool.h>

/* "--- OLD_NAME\n+++ NEW_NAME\n@@ -a,b +c,d @@\n..." with 3 lines of context; "" when the
 * texts are equal. color wraps removed lines in red and added ones in green. Caller frees;
 * NULL when out of memory. */
char *sk_cli_unified_diff(const char *old_name, const char *old_text, const char *new_name,
                          const char *new_text, bool color);

#endif

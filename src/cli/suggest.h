/* "did you mean": the nearest word by edit distance, for mistyped verbs and kinds. */
#ifndef SK_CLI_SUGGEST_H
#define SK_CLI_SUGGEST_H

#include <stddef.h>

/* Levenshtein distance (insert, delete, substitute; an adjacent swap counts one), bytes,
 * case-insensitive. */
size_t sk_cli_edit_distance(const char *a, const char *b);

/* The candidate nearest to word when it is close enough to be a typo (at most 2 edits and
 * less than half the word), else NULL. Ties go to the first candidate. */
const char *sk_cli_suggest(const char *word, const char *const *cands, size_t n);

#endif

#include "cli/suggest.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static size_t min3(size_t a, size_t b, size_t c)
{
        size_t m = a < b ? a : b;
        return m < c ? m : c;
}

size_t sk_cli_edit_distance(const char *a, const char *b)
{
        size_t n = strlen(a), m = strlen(b);
        /* three rows suffice for the swap rule (optimal string alignment) */
        size_t *prev2 = calloc(m + 1, sizeof(size_t)), *prev = calloc(m + 1, sizeof(size_t)),
               *cur = calloc(m + 1, sizeof(size_t));
        size_t d = n > m ? n : m;
        if (!prev2 || !prev || !cur)
                goto out;
        for (size_t j = 0; j <= m; j++)
                prev[j] = j;
        for (size_t i = 1; i <= n; i++) {
                cur[0] = i;
                for (size_t j = 1; j <= m; j++) {
                        int ca = tolower((unsigned char)a[i - 1]),
                            cb = tolower((unsigned char)b[j - 1]);
                        size_t cost = ca != cb;
                        cur[j] = min3(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
                        if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                            tolower((unsigned char)a[i - 2]) == cb && prev2[j - 2] + 1 < cur[j])
                                cur[j] = prev2[j - 2] + 1;
                }
                size_t *t = prev2;
                prev2 = prev, prev = cur, cur = t;
        }
        d = prev[m];
out:
        free(prev2), free(prev), free(cur);
        return d;
}

const char *sk_cli_suggest(const char *word, const char *const *cands, size_t n)
{
        const char *best = NULL;
        size_t best_d = (size_t)-1, len = strlen(word);
        for (size_t i = 0; i < n; i++) {
                size_t d = sk_cli_edit_distance(word, cands[i]);
                if (d < best_d)
                        best = cands[i], best_d = d;
        }
        if (!best || best_d > 2 || best_d * 2 > len)
                return NULL;
        return best;
}

/* The label expressions' regex engine against glibc's regcomp/regexec (REG_EXTENDED, C
 * locale) as the oracle: where both take a pattern, both select the same values (anchored
 * to the whole value), and a match never takes more steps than the engine's bound; the
 * engine's DFA and its NFA always agree. Input:
 * the pattern, then after a newline the value. Patterns with large counted repetitions are
 * left out: those are what makes glibc slow, the reason for the engine. */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/labelexpr_re.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Few repetitions, none stacked (x*{2,4} takes glibc seconds), none counted past 9. */
static bool small_repetitions(const char *p)
{
        int ops = 0;
        bool after_op = false;
        for (; *p; p++) {
                bool op = strchr("*+?{", *p) != NULL;
                if (op && (after_op || ++ops > 3))
                        return false;
                if (*p >= '0' && *p <= '9' && p[1] >= '0' && p[1] <= '9')
                        return false;
                if (*p == '{')
                        while (p[1] && p[1] != '}' &&
                               !(p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9'))
                                p++;
                if (*p == '}' || op)
                        after_op = true;
                else
                        after_op = false;
                if (*p == '\\' && p[1])
                        p++;
        }
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const uint8_t *nl = memchr(data, '\n', size);
        size_t plen = nl ? (size_t)(nl - data) : size;
        if (plen > 64 || memchr(data, '\0', size))
                return 0;
        char pat[65], val[300];
        memcpy(pat, data, plen);
        pat[plen] = '\0';
        size_t vlen = nl ? size - plen - 1 : 0;
        if (vlen >= sizeof(val))
                vlen = sizeof(val) - 1;
        if (nl)
                memcpy(val, nl + 1, vlen);
        val[vlen] = '\0';
        sk_lre *re = NULL;
        char msg[160];
        if (sk_lre_compile(pat, 4096, &re, msg, sizeof(msg)) < 0) {
                if (!msg[0])
                        abort(); /* every refusal says why */
                return 0;
        }
        uint64_t steps = 0, nfa_steps = 0;
        bool ours = sk_lre_match(re, val, vlen, &steps);
        if (steps > (uint64_t)SK_LRE_STEPS_PER_BYTE * sk_lre_size(re) * (vlen + 1))
                abort();
        /* the DFA, when there is one, decides as the NFA does */
        if (sk_lre_match_nfa(re, val, vlen, &nfa_steps) != ours ||
            nfa_steps > (uint64_t)SK_LRE_STEPS_PER_BYTE * sk_lre_size(re) * (vlen + 1))
                abort();
        regex_t g;
        /* glibc's '$' also matches before a newline (even without REG_NEWLINE); label
         * values hold no control characters, so the quirk is left out of the comparison */
        if (small_repetitions(pat) && !strchr(val, '\n') && regcomp(&g, pat, REG_EXTENDED) == 0) {
                regmatch_t m;
                bool want =
                    regexec(&g, val, 1, &m, 0) == 0 && m.rm_so == 0 && (size_t)m.rm_eo == vlen;
                regfree(&g);
                if (ours != want) {
                        fprintf(stderr, "/%s/ on \"%s\": glibc %d, engine %d\n", pat, val, want,
                                ours);
                        abort();
                }
        }
        sk_lre_free(re);
        return 0;
}

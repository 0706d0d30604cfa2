/* Worst-case label regex matching: glibc's regcomp/regexec (what label expressions used
 * before) against the Thompson-NFA engine of src/model/labelexpr_re.c, on the same
 * patterns and values. Prints "RESULT key=value" lines for bench/run.sh. */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "model/labelexpr.h"
#include "model/labelexpr_re.h"

static double now_us(void)
{
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static long rss_max_kb(void)
{
        struct rusage u;
        getrusage(RUSAGE_SELF, &u);
        return u.ru_maxrss;
}

/* Compile once, then the median of `runs` full matches, in microseconds. */
static void one(const char *key, const char *pat, const char *val, int runs)
{
        double t0 = now_us();
        long rss0 = rss_max_kb();
        regex_t g;
        int rc = regcomp(&g, pat, REG_EXTENDED);
        double gcomp = now_us() - t0, gmatch = 0;
        for (int i = 0; rc == 0 && i < runs; i++) {
                regmatch_t m;
                double s = now_us();
                regexec(&g, val, 1, &m, 0);
                double d = now_us() - s;
                gmatch = i == 0 || d < gmatch ? d : gmatch;
        }
        long grss = rss_max_kb() - rss0;
        if (rc == 0)
                regfree(&g);
        sk_lre *re = NULL;
        char msg[160];
        t0 = now_us();
        int r = sk_lre_compile(pat, 1 << 20, &re, msg, sizeof(msg));
        double ecomp = now_us() - t0, ematch = 0;
        uint64_t steps = 0;
        for (int i = 0; r == 0 && i < runs; i++) {
                double s = now_us();
                steps = 0;
                sk_lre_match(re, val, strlen(val), &steps);
                double d = now_us() - s;
                ematch = i == 0 || d < ematch ? d : ematch;
        }
        printf("RESULT %s_glibc_compile_us=%.0f\nRESULT %s_glibc_match_us=%.1f\n"
               "RESULT %s_glibc_rss_kb=%ld\nRESULT %s_engine_compile_us=%.0f\n"
               "RESULT %s_engine_match_us=%.1f\nRESULT %s_engine_size=%zu\n"
               "RESULT %s_engine_steps=%llu\nRESULT %s_accepted=%s\n",
               key, gcomp, key, gmatch, key, grss, key, ecomp, key, ematch, key,
               re ? sk_lre_size(re) : 0, key, (unsigned long long)steps, key,
               r == 0 && sk_lre_size(re) <= SK_EXPR_REGEX_MAX ? "yes" : "no (too large)");
        sk_lre_free(re);
}

int main(void)
{
        char v256[SK_EXPR_VALUE_MAX + 1];
        memset(v256, 'a', SK_EXPR_VALUE_MAX);
        v256[SK_EXPR_VALUE_MAX] = '\0';
        one("issue8", "(((.|..)?){31}){32}", "store-001", 3);
        one("alt60", "(.|..){60}", v256, 5);
        one("dns", "[a-z0-9-]{1,63}", v256, 5);
        one("store", "store-0[0-9]+", "store-001", 5);

        /* the 775-byte expression: refused, and how fast */
        char hostile[800] = "";
        const char *bad = "system/name ~ \"(((.|..)?){31}){32}\"";
        strcat(hostile, bad);
        while (strlen(hostile) + strlen(bad) + 5 <= 775) {
                strcat(hostile, " and ");
                strcat(hostile, bad);
        }
        sk_expr *h = NULL;
        double t0 = now_us();
        int refused = sk_expr_parse(hostile, &h, NULL) < 0;
        printf("RESULT issue8_expr_bytes=%zu\nRESULT issue8_expr_refused=%s\n"
               "RESULT issue8_expr_refuse_us=%.0f\n",
               strlen(hostile), refused ? "yes" : "no", now_us() - t0);
        sk_expr_free(h);

        /* the costliest expression the parser takes, on the longest values */
        const char *term = "note ~ \"(a|aa|.){1,99}.*\"";
        sk_expr *e = NULL;
        if (sk_expr_parse(term, &e, NULL) < 0)
                return 1;
        json_t *labels = json_pack("{s:s}", "note", v256);
        double best = 0;
        uint64_t steps = 0;
        for (int i = 0; i < 5; i++) {
                double s = now_us();
                steps = 0;
                sk_expr_match_counted(e, labels, &steps);
                double d = now_us() - s;
                best = i == 0 || d < best ? d : best;
        }
        printf("RESULT worst_expr_cost=%llu\nRESULT worst_expr_steps=%llu\n"
               "RESULT worst_expr_match_us=%.0f\n",
               (unsigned long long)sk_expr_cost(e), (unsigned long long)steps, best);
        json_decref(labels);
        sk_expr_free(e);
        return 0;
}

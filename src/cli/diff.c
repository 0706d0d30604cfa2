#include "cli/diff.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"

#define CONTEXT 3

typedef struct lines {
        const char **at;
        size_t *len;
        size_t n;
} lines;

static int split(const char *text, lines *l)
{
        size_t cap = 1;
        for (const char *p = text; *p; p++)
                cap += *p == '\n';
        l->at = calloc(cap, sizeof(*l->at));
        l->len = calloc(cap, sizeof(*l->len));
        l->n = 0;
        if (!l->at || !l->len)
                return -1;
        for (const char *p = text; *p;) {
                const char *nl = strchr(p, '\n');
                size_t n = nl ? (size_t)(nl - p) : strlen(p);
                l->at[l->n] = p, l->len[l->n++] = n;
                p += n + (nl != NULL);
        }
        return 0;
}

static bool same(const lines *a, size_t i, const lines *b, size_t j)
{
        return a->len[i] == b->len[j] && memcmp(a->at[i], b->at[j], a->len[i]) == 0;
}

/* One edit script entry: ' ' kept, '-' only in old, '+' only in new. */
typedef struct op {
        char kind;
        size_t i, j; /* line in old, line in new */
} op;

/* Longest common subsequence table, then a walk from the start: documents are small. */
static op *script(const lines *a, const lines *b, size_t *nops)
{
        size_t w = b->n + 1;
        size_t *t = calloc((a->n + 1) * w, sizeof(*t));
        op *ops = calloc(a->n + b->n + 1, sizeof(*ops));
        if (!t || !ops) {
                free(t), free(ops);
                return NULL;
        }
        for (size_t i = a->n; i-- > 0;)
                for (size_t j = b->n; j-- > 0;)
                        t[i * w + j] = same(a, i, b, j) ? t[(i + 1) * w + j + 1] + 1
                                                        : (t[(i + 1) * w + j] > t[i * w + j + 1]
                                                               ? t[(i + 1) * w + j]
                                                               : t[i * w + j + 1]);
        size_t i = 0, j = 0, n = 0;
        while (i < a->n || j < b->n) {
                if (i < a->n && j < b->n && same(a, i, b, j))
                        ops[n++] = (op){' ', i++, j++};
                else if (i < a->n && (j == b->n || t[(i + 1) * w + j] >= t[i * w + j + 1]))
                        ops[n++] = (op){'-', i++, j}; /* removals first, as diff(1) */
                else
                        ops[n++] = (op){'+', i, j++};
        }
        free(t);
        *nops = n;
        return ops;
}

static void put_line(FILE *f, char kind, const lines *l, size_t k, bool color)
{
        const char *on = !color ? "" : kind == '-' ? "\033[31m" : kind == '+' ? "\033[32m" : "";
        fprintf(f, "%s%c%.*s%s\n", on, kind, (int)l->len[k], l->at[k], *on ? "\033[0m" : "");
}

static void put_hunk(FILE *f, const op *ops, size_t from, size_t to, const lines *a, const lines *b,
                     bool color)
{
        size_t oi = ops[from].i, nj = ops[from].j, ol = 0, nl = 0;
        for (size_t k = from; k < to; k++) {
                ol += ops[k].kind != '+';
                nl += ops[k].kind != '-';
        }
        /* an empty side starts at the line before, as diff(1) writes it */
        fprintf(f, "@@ -%zu,%zu +%zu,%zu @@\n", ol ? oi + 1 : oi, ol, nl ? nj + 1 : nj, nl);
        for (size_t k = from; k < to; k++) {
                if (ops[k].kind == '+')
                        put_line(f, '+', b, ops[k].j, color);
                else
                        put_line(f, ops[k].kind, a, ops[k].i, color);
        }
}

char *sk_cli_unified_diff(const char *old_name, const char *old_text, const char *new_name,
                          const char *new_text, bool color)
{
        lines a = {0}, b = {0};
        char *buf = NULL;
        size_t len = 0, n = 0;
        op *ops = NULL;
        FILE *f = NULL;
        if (split(old_text, &a) < 0 || split(new_text, &b) < 0 || !(ops = script(&a, &b, &n)))
                goto out;
        f = open_memstream(&buf, &len);
        if (!f)
                goto out;
        bool header = false;
        for (size_t k = 0; k < n;) {
                if (ops[k].kind == ' ') {
                        k++;
                        continue;
                }
                /* a hunk: the changes whose kept gaps are at most 2 * CONTEXT lines */
                size_t start = k >= CONTEXT ? k - CONTEXT : 0, end = k;
                for (;;) {
                        while (end < n && ops[end].kind != ' ')
                                end++;
                        size_t gap = end;
                        while (gap < n && ops[gap].kind == ' ')
                                gap++;
                        if (gap < n && gap - end <= 2 * CONTEXT) {
                                end = gap;
                                continue;
                        }
                        end = end + CONTEXT < n && end + CONTEXT < gap ? end + CONTEXT : gap;
                        break;
                }
                if (!header) {
                        fprintf(f, "--- %s\n+++ %s\n", old_name, new_name);
                        header = true;
                }
                put_hunk(f, ops, start, end, &a, &b, color);
                k = end;
        }
        if (fclose(f) != 0) {
                free(buf);
                buf = NULL;
        }
        f = NULL;
out:
        free(a.at), free(a.len), free(b.at), free(b.len), free(ops);
        return buf;
}

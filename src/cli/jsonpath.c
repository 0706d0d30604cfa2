#include "cli/jsonpath.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"

typedef struct jp {
        const char *tmpl, *p;
        sk_error **err;
} jp;

static int bad(jp *j, const char *what)
{
        int col = (int)(j->p - j->tmpl) + 1;
        return sk_error_set_pos(j->err, EINVAL, 1, col, "jsonpath: %s at column %d", what, col);
}

/* Applies one step to every value in cur; the results replace cur. */
static int step_key(json_t *cur, const char *key, size_t klen, json_t *next)
{
        size_t i;
        json_t *v;
        json_array_foreach(cur, i, v)
        {
                json_t *got = json_is_object(v) ? json_object_getn(v, key, klen) : NULL;
                if (got)
                        json_array_append(next, got);
        }
        return 0;
}

static void step_all(json_t *cur, json_t *next)
{
        size_t i;
        json_t *v;
        json_array_foreach(cur, i, v)
        {
                if (json_is_array(v)) {
                        json_array_extend(next, v);
                } else if (json_is_object(v)) {
                        const char *k;
                        json_t *e;
                        json_object_foreach(v, k, e) json_array_append(next, e);
                }
        }
}

static void step_index(json_t *cur, long idx, json_t *next)
{
        size_t i;
        json_t *v;
        json_array_foreach(cur, i, v)
        {
                long n = (long)json_array_size(v);
                long at = idx < 0 ? n + idx : idx;
                if (json_is_array(v) && at >= 0 && at < n)
                        json_array_append(next, json_array_get(v, (size_t)at));
        }
}

/* Parses one path up to the closing brace; *res gets the matching values. */
static int eval_path(jp *j, const json_t *root, json_t **res)
{
        json_t *cur = json_pack("[O]", root);
        if (!cur)
                return -ENOMEM;
        if (*j->p == '$')
                j->p++;
        while (*j->p && *j->p != '}' && *j->p != ' ') {
                json_t *next = json_array();
                if (!next) {
                        json_decref(cur);
                        return -ENOMEM;
                }
                int r = 0;
                if (j->p[0] == '.' && j->p[1] == '*') {
                        step_all(cur, next);
                        j->p += 2;
                } else if (*j->p == '.') {
                        const char *s = ++j->p;
                        while (*j->p && (isalnum((unsigned char)*j->p) || strchr("-_/", *j->p)))
                                j->p++;
                        if (j->p == s)
                                r = bad(j, "a field name is missing");
                        else
                                step_key(cur, s, (size_t)(j->p - s), next);
                } else if (j->p[0] == '[' && (j->p[1] == '\'' || j->p[1] == '"')) {
                        char q = j->p[1];
                        const char *s = j->p + 2, *e = strchr(s, q);
                        if (!e || e[1] != ']') {
                                r = bad(j, "an unclosed ['name']");
                        } else {
                                step_key(cur, s, (size_t)(e - s), next);
                                j->p = e + 2;
                        }
                } else if (j->p[0] == '[' && j->p[1] == '*' && j->p[2] == ']') {
                        step_all(cur, next);
                        j->p += 3;
                } else if (*j->p == '[') {
                        char *end;
                        long idx = strtol(j->p + 1, &end, 10);
                        if (end == j->p + 1 || *end != ']') {
                                r = bad(j, "expected [N], [*] or ['name']");
                        } else {
                                step_index(cur, idx, next);
                                j->p = end + 1;
                        }
                } else {
                        r = bad(j, "expected '.' or '['");
                }
                json_decref(cur);
                cur = next;
                if (r < 0) {
                        json_decref(cur);
                        return r;
                }
        }
        *res = cur;
        return 0;
}

static void put_value(FILE *f, const json_t *v)
{
        if (json_is_string(v)) {
                fputs(json_string_value(v), f);
                return;
        }
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
        if (s)
                fputs(s, f);
        free(s);
}

static int literal(jp *j, FILE *f)
{
        char q = *j->p++;
        while (*j->p && *j->p != q) {
                char c = *j->p++;
                if (c == '\\' && *j->p) {
                        c = *j->p++;
                        c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
                }
                fputc(c, f);
        }
        if (*j->p != q)
                return bad(j, "an unclosed quote");
        j->p++;
        return 0;
}

int sk_cli_jsonpath(const char *tmpl, const json_t *root, char **out, sk_error **err)
{
        jp j = {tmpl, tmpl, err};
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return -ENOMEM;
        int r = 0;
        while (r == 0 && *j.p) {
                if (*j.p != '{') {
                        fputc(*j.p++, f);
                        continue;
                }
                j.p++;
                while (*j.p == ' ')
                        j.p++;
                if (*j.p == '"' || *j.p == '\'') {
                        r = literal(&j, f);
                } else {
                        _cleanup_json_ json_t *res = NULL;
                        r = eval_path(&j, root, &res);
                        size_t i;
                        json_t *v;
                        json_array_foreach(r == 0 ? res : NULL, i, v)
                        {
                                if (i)
                                        fputc(' ', f);
                                put_value(f, v);
                        }
                }
                while (r == 0 && *j.p == ' ')
                        j.p++;
                if (r == 0 && *j.p != '}')
                        r = bad(&j, "expected '}'");
                if (r == 0)
                        j.p++;
        }
        if (fclose(f) != 0 && r == 0)
                r = -ENOMEM;
        if (r < 0) {
                free(buf);
                if (r == -ENOMEM)
                        sk_error_set(err, ENOMEM, "out of memory");
                return r;
        }
        *out = buf;
        return 0;
}

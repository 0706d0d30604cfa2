#include "common/conffile.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"

void sk_conffile_free(char **args)
{
        for (char **p = args; p && *p; p++)
                free(*p);
        free(args);
}

typedef struct list {
        char **v;
        size_t n, cap;
} list;

static int push(list *l, char *s)
{
        if (!s)
                return -ENOMEM;
        if (l->n + 2 > l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 16;
                char **p = realloc(l->v, cap * sizeof(*p));
                if (!p) {
                        free(s);
                        return -ENOMEM;
                }
                l->v = p, l->cap = cap;
        }
        l->v[l->n++] = s;
        l->v[l->n] = NULL;
        return 0;
}

static bool flag_char(char c)
{
        return islower((unsigned char)c) || isdigit((unsigned char)c) || c == '-';
}

/* One line (no newline, comments removed by the caller): 0 and maybe two arguments. */
static int parse_line(const char *s, size_t len, const char *name, int line, list *out,
                      sk_error **err)
{
        while (len && isspace((unsigned char)s[len - 1]))
                len--;
        while (len && isspace((unsigned char)*s))
                s++, len--;
        if (!len)
                return 0;
        size_t k = 0;
        while (k < len && flag_char(s[k]))
                k++;
        if (k == 0 || (s[0] == '-'))
                return sk_error_set_pos(err, EINVAL, line, 1,
                                        "%s:%d: expected a flag name (like listen), not '%.*s'",
                                        name, line, (int)len, s);
        size_t v = k;
        while (v < len && isspace((unsigned char)s[v]))
                v++;
        bool eq = v < len && s[v] == '=';
        if (eq)
                for (v++; v < len && isspace((unsigned char)s[v]); v++)
                        ;
        else if (v == k && v < len)
                return sk_error_set_pos(err, EINVAL, line, (int)k + 1,
                                        "%s:%d: '%.*s' is not a flag name", name, line, (int)len,
                                        s);
        const char *val = s + v;
        size_t vlen = len - v;
        if (vlen >= 1 && val[0] == '"') {
                if (vlen < 2 || val[vlen - 1] != '"')
                        return sk_error_set_pos(err, EINVAL, line, (int)v + 1,
                                                "%s:%d: the value's quote is not closed", name,
                                                line);
                val++, vlen -= 2;
        }
        char *flag = NULL;
        if (asprintf(&flag, "--%.*s", (int)k, s) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (push(out, flag) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        bool has_value = eq || v < len;
        if (has_value && push(out, strndup(val, vlen)) < 0)
                return sk_error_set(err, ENOMEM, "out of memory");
        return 0;
}

int sk_conffile_parse(const char *text, const char *name, char ***args, size_t *n, sk_error **err)
{
        list out = {0};
        int line = 1, r = 0;
        for (const char *p = text; *p && r == 0; line++) {
                size_t len = strcspn(p, "\n");
                /* '#' starts a comment outside quotes */
                size_t end = 0;
                bool quoted = false;
                for (; end < len && (quoted || p[end] != '#'); end++)
                        quoted ^= p[end] == '"';
                r = parse_line(p, end, name, line, &out, err);
                p += len + (p[len] == '\n');
        }
        if (r == 0 && !out.v && !(out.v = calloc(1, sizeof(*out.v))))
                r = sk_error_set(err, ENOMEM, "out of memory");
        if (r < 0) {
                sk_conffile_free(out.v);
                return r;
        }
        *args = out.v;
        *n = out.n;
        return 0;
}

static int read_file(const char *path, char **text, sk_error **err)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f) {
                int e = errno;
                return sk_error_set(err, e, "%s: %s", path, strerror(e));
        }
        size_t cap = 0;
        *text = NULL;
        if (getdelim(text, &cap, '\0', f) < 0) {
                free(*text);
                *text = ferror(f) ? NULL : strdup("");
                if (!*text)
                        return sk_error_set(err, EIO, "%s: cannot read", path);
        }
        return 0;
}

int sk_conffile_args(int argc, char **argv, int *out_argc, char ***out_argv, sk_error **err)
{
        const char *path = NULL;
        int at = -1, width = 0;
        for (int i = 1; i < argc && !path; i++) {
                if (strcmp(argv[i], "--") == 0)
                        break;
                if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
                        path = argv[i + 1], at = i, width = 2;
                else if (strncmp(argv[i], "--config=", 9) == 0)
                        path = argv[i] + 9, at = i, width = 1;
                else if (strcmp(argv[i], "--config") == 0)
                        return sk_error_set(err, EINVAL, "--config needs a FILE");
        }
        char **file = NULL;
        size_t nfile = 0;
        if (path) {
                _cleanup_free_ char *text = NULL;
                int r = read_file(path, &text, err);
                if (r == 0)
                        r = sk_conffile_parse(text, path, &file, &nfile, err);
                if (r < 0)
                        return r;
        }
        list out = {0};
        int r = push(&out, strdup(argv[0]));
        for (size_t i = 0; r == 0 && i < nfile; i++)
                r = push(&out, take_ptr(&file[i]));
        for (int i = 1; r == 0 && i < argc; i++)
                if (i < at || i >= at + width || at < 0)
                        r = push(&out, strdup(argv[i]));
        for (size_t i = 0; i < nfile; i++)
                free(file[i]); /* those not handed on */
        free(file);
        if (r < 0) {
                sk_conffile_free(out.v);
                return sk_error_set(err, ENOMEM, "out of memory");
        }
        *out_argc = (int)out.n;
        *out_argv = out.v;
        return 0;
}

int sk_conffile_run(int (*role)(int, char **), int argc, char **argv)
{
        int n;
        char **args;
        _cleanup_error_ sk_error *err = NULL;
        int r = sk_conffile_args(argc, argv, &n, &args, &err);
        if (r < 0) {
                fprintf(stderr, "skerry %s: %s\n", argv[0], sk_error_msg(err, r));
                return 2;
        }
        r = role(n, args);
        sk_conffile_free(args);
        return r;
}

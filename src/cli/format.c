#include "cli/format.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"

struct sk_table {
        size_t ncols, nrows, cap;
        char **cells; /* (nrows + 1) * ncols, header first */
};

static char *sanitize(const char *s)
{
        char *out = strdup(s ? s : "-");
        if (!out)
                return NULL;
        for (unsigned char *p = (unsigned char *)out; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        *p = '?';
        return out;
}

static size_t utf8_width(const char *s)
{
        size_t n = 0;
        for (const unsigned char *p = (const unsigned char *)s; *p; p++)
                if ((*p & 0xc0) != 0x80)
                        n++;
        return n;
}

sk_table *sk_table_new(size_t ncols, const char *const *headers)
{
        sk_table *t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        t->ncols = ncols;
        t->nrows = 0;
        if (sk_table_add(t, headers) < 0) {
                sk_table_free(t);
                return NULL;
        }
        t->nrows = 0; /* the header is row "-1" */
        return t;
}

int sk_table_add(sk_table *t, const char *const *cells)
{
        size_t used = t->cells ? (t->nrows + 1) * t->ncols : 0;
        if (used + t->ncols > t->cap) {
                size_t cap = t->cap ? t->cap * 2 : t->ncols * 8;
                while (cap < used + t->ncols)
                        cap *= 2;
                char **p = realloc(t->cells, cap * sizeof(*p));
                if (!p)
                        return -ENOMEM;
                t->cells = p;
                t->cap = cap;
        }
        for (size_t i = 0; i < t->ncols; i++) {
                t->cells[used + i] = sanitize(cells[i]);
                if (!t->cells[used + i]) {
                        for (size_t j = 0; j < i; j++)
                                free(t->cells[used + j]);
                        return -ENOMEM;
                }
        }
        if (used)
                t->nrows++;
        return 0;
}

char *sk_table_render(const sk_table *t)
{
        _cleanup_free_ size_t *width = calloc(t->ncols ? t->ncols : 1, sizeof(*width));
        if (!width)
                return NULL;
        size_t rows = t->nrows + 1;
        for (size_t r = 0; r < rows; r++)
                for (size_t c = 0; c < t->ncols; c++) {
                        size_t w = utf8_width(t->cells[r * t->ncols + c]);
                        if (w > width[c])
                                width[c] = w;
                }
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return NULL;
        for (size_t r = 0; r < rows; r++) {
                for (size_t c = 0; c < t->ncols; c++) {
                        const char *cell = t->cells[r * t->ncols + c];
                        fputs(cell, f);
                        if (c + 1 < t->ncols)
                                fprintf(f, "%*s", (int)(width[c] - utf8_width(cell) + 3), "");
                }
                fputc('\n', f);
        }
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

void sk_table_free(sk_table *t)
{
        if (!t)
                return;
        if (t->cells)
                for (size_t i = 0; i < (t->nrows + 1) * t->ncols; i++)
                        free(t->cells[i]);
        free(t->cells);
        free(t);
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void write_scalar(FILE *f, const json_t *v)
{
        switch (json_typeof(v)) {
        case JSON_STRING:
                fputs(json_string_value(v), f);
                break;
        case JSON_INTEGER:
                fprintf(f, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                break;
        case JSON_REAL:
                fprintf(f, "%.15g", json_real_value(v));
                break;
        case JSON_TRUE:
                fputs("true", f);
                break;
        case JSON_FALSE:
                fputs("false", f);
                break;
        default:
                fputs("-", f);
                break;
        }
}

static void write_cell(FILE *f, const json_t *v)
{
        if (json_is_array(v)) {
                size_t i;
                json_t *e;
                json_array_foreach(v, i, e)
                {
                        if (i)
                                fputc(',', f);
                        write_cell(f, e);
                }
        } else if (json_is_object(v)) {
                size_t n = json_object_size(v), i = 0;
                _cleanup_free_ const char **keys = calloc(n ? n : 1, sizeof(*keys));
                if (!keys)
                        return;
                const char *k;
                json_t *e;
                json_object_foreach((json_t *)v, k, e) keys[i++] = k;
                qsort(keys, n, sizeof(*keys), cmp_str);
                for (i = 0; i < n; i++) {
                        fprintf(f, "%s%s=", i ? "," : "", keys[i]);
                        write_cell(f, json_object_get(v, keys[i]));
                }
        } else {
                write_scalar(f, v);
        }
}

char *sk_cli_format_cell(const json_t *v)
{
        if (!v || json_is_null(v) || (json_is_array(v) && json_array_size(v) == 0) ||
            (json_is_object(v) && json_object_size(v) == 0) ||
            (json_is_string(v) && json_string_length(v) == 0))
                return strdup("-");
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return NULL;
        write_cell(f, v);
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

static bool parse_rfc3339(const char *s, time_t *out)
{
        struct tm tm = {0};
        const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!p)
                return false;
        if (*p == '.')
                for (p++; *p >= '0' && *p <= '9'; p++)
                        ;
        long offset = 0;
        if (*p == 'Z' || *p == 'z') {
                p++;
        } else if (*p == '+' || *p == '-') {
                int hh, mm;
                if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2)
                        return false;
                offset = (hh * 3600L + mm * 60L) * (*p == '-' ? -1 : 1);
                p += 6;
        } else {
                return false;
        }
        if (*p)
                return false;
        *out = timegm(&tm) - offset;
        return true;
}

char *sk_cli_format_age(const char *rfc3339, time_t now)
{
        time_t t;
        if (!rfc3339 || !*rfc3339)
                return strdup("-");
        if (!parse_rfc3339(rfc3339, &t))
                return sanitize(rfc3339); /* shown as it came, but never raw to a terminal */
        long d = (long)(now - t);
        if (d < 0)
                d = 0;
        char *out = NULL;
        int n;
        if (d < 120)
                n = asprintf(&out, "%lds", d);
        else if (d < 120 * 60)
                n = asprintf(&out, "%ldm", d / 60);
        else if (d < 48 * 3600)
                n = asprintf(&out, "%ldh", d / 3600);
        else
                n = asprintf(&out, "%ldd", d / 86400);
        return n < 0 ? NULL : out;
}

/* A string field, or the first of several names that is present. */
static const json_t *field(const json_t *item, const char *a, const char *b)
{
        const json_t *v = json_object_get(item, a);
        if ((!v || json_is_null(v)) && b)
                v = json_object_get(item, b);
        return v;
}

static char *names_of(const json_t *arr)
{
        if (!json_is_array(arr) || json_array_size(arr) == 0)
                return strdup("-");
        _cleanup_json_ json_t *names = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(arr, i, e) json_array_append(names, json_object_get(e, "name"));
        return sk_cli_format_cell(names);
}

static char *running_desired(const json_t *item)
{
        const json_t *st = json_object_get(item, "status");
        const json_t *run = json_object_get(st, "running"), *des = json_object_get(st, "desired");
        char *out = NULL;
        if (!json_is_integer(run) || !json_is_integer(des))
                return strdup("-");
        if (asprintf(&out, "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT,
                     json_integer_value(run), json_integer_value(des)) < 0)
                return NULL;
        return out;
}

#define MAX_COLS 6

/* Fills cells[] for one item; returns the number of columns. headers when item is NULL. */
static size_t kind_row(sk_kind kind, const json_t *item, time_t now, const char **headers,
                       char **cells)
{
        const json_t *name = field(item, "name", NULL);
        switch (kind) {
        case SK_KIND_SITE:
                headers[0] = "NAME", headers[1] = "LABELS";
                if (item) {
                        cells[0] = sk_cli_format_cell(name);
                        cells[1] = sk_cli_format_cell(json_object_get(item, "labels"));
                }
                return 2;
        case SK_KIND_APPLICATION: {
                headers[0] = "NAME", headers[1] = "VERSION", headers[2] = "VERSIONS",
                headers[3] = "SERVICES";
                if (item) {
                        const json_t *ver = json_object_get(item, "version");
                        const json_t *vers = json_object_get(item, "versions");
                        cells[0] = sk_cli_format_cell(name);
                        cells[1] = sk_cli_format_cell(ver);
                        cells[2] = sk_cli_format_cell(vers ? vers : ver);
                        cells[3] = names_of(json_object_get(item, "services"));
                }
                return 4;
        }
        case SK_KIND_DEPLOYMENT:
                headers[0] = "NAME", headers[1] = "APPLICATION", headers[2] = "VERSION",
                headers[3] = "SITES", headers[4] = "RUNNING/DESIRED";
                if (item) {
                        cells[0] = sk_cli_format_cell(name);
                        cells[1] = sk_cli_format_cell(json_object_get(item, "application"));
                        cells[2] = sk_cli_format_cell(json_object_get(item, "version"));
                        cells[3] = sk_cli_format_cell(json_object_get(item, "sites"));
                        cells[4] = running_desired(item);
                }
                return 5;
        case SK_KIND_HOST:
                /* role and liveness as the site's leader last reported them */
                headers[0] = "NAME", headers[1] = "SITE", headers[2] = "ROLE", headers[3] = "STATE",
                headers[4] = "LAST-SEEN";
                if (item) {
                        const json_t *seen = field(item, "last-seen", "updated");
                        cells[0] = sk_cli_format_cell(field(item, "name", "host"));
                        cells[1] = sk_cli_format_cell(json_object_get(item, "site"));
                        cells[2] = sk_cli_format_cell(json_object_get(item, "role"));
                        cells[3] = sk_cli_format_cell(json_object_get(item, "state"));
                        cells[4] = json_is_string(seen)
                                       ? sk_cli_format_age(json_string_value(seen), now)
                                       : strdup("-");
                }
                return 5;
        case SK_KIND_INSTANCE:
                headers[0] = "INSTANCE", headers[1] = "SITE", headers[2] = "HOST",
                headers[3] = "STATE", headers[4] = "REASON";
                if (item) {
                        cells[0] = sk_cli_format_cell(json_object_get(item, "instance"));
                        cells[1] = sk_cli_format_cell(json_object_get(item, "site"));
                        cells[2] = sk_cli_format_cell(json_object_get(item, "host"));
                        cells[3] = sk_cli_format_cell(json_object_get(item, "state"));
                        cells[4] = sk_cli_format_cell(json_object_get(item, "reason"));
                }
                return 5;
        case SK_KIND_TENANT:
                headers[0] = "NAME", headers[1] = "TYPE";
                if (item) {
                        cells[0] = sk_cli_format_cell(name);
                        cells[1] = sk_cli_format_cell(json_object_get(item, "type"));
                }
                return 2;
        case SK_KIND_USER:
                headers[0] = "NAME", headers[1] = "ROLE";
                if (item) {
                        cells[0] = sk_cli_format_cell(name);
                        cells[1] = sk_cli_format_cell(json_object_get(item, "role"));
                }
                return 2;
        default:
                headers[0] = "NAME";
                if (item)
                        cells[0] = sk_cli_format_cell(name);
                return 1;
        }
}

char *sk_cli_format_table(sk_kind kind, const json_t *items, time_t now)
{
        const char *headers[MAX_COLS] = {0};
        char *cells[MAX_COLS] = {0};
        size_t n = kind_row(kind, NULL, now, headers, cells);
        _cleanup_table_ sk_table *t = sk_table_new(n, headers);
        if (!t)
                return NULL;
        size_t i;
        json_t *item;
        json_array_foreach(items, i, item)
        {
                kind_row(kind, item, now, headers, cells);
                int r = 0;
                for (size_t c = 0; c < n; c++)
                        if (!cells[c])
                                r = -ENOMEM;
                if (r == 0)
                        r = sk_table_add(t, (const char *const *)cells);
                for (size_t c = 0; c < n; c++) {
                        free(cells[c]);
                        cells[c] = NULL;
                }
                if (r < 0)
                        return NULL;
        }
        return sk_table_render(t);
}

static bool is_scalar(const json_t *v)
{
        return !json_is_object(v) && !json_is_array(v);
}

static bool is_scalar_array(const json_t *v)
{
        size_t i;
        json_t *e;
        if (!json_is_array(v))
                return false;
        json_array_foreach(v, i, e) if (!is_scalar(e)) return false;
        return true;
}

static void put_value(FILE *f, const json_t *v)
{
        _cleanup_free_ char *cell = NULL;
        if (is_scalar_array(v)) {
                size_t i;
                json_t *e;
                if (json_array_size(v) == 0)
                        fputs("-", f);
                json_array_foreach(v, i, e)
                {
                        _cleanup_free_ char *s = sk_cli_format_cell(e);
                        _cleanup_free_ char *clean = sanitize(s);
                        fprintf(f, "%s%s", i ? ", " : "", clean ? clean : "");
                }
                return;
        }
        cell = sk_cli_format_cell(v);
        _cleanup_free_ char *clean = sanitize(cell);
        fputs(clean ? clean : "", f);
}

static void put_object(FILE *f, const json_t *obj, int indent, const char *const *skip, time_t now);

static void put_array(FILE *f, const json_t *arr, int indent, time_t now)
{
        size_t i;
        json_t *e;
        json_array_foreach(arr, i, e)
        {
                if (json_is_object(e)) {
                        fprintf(f, "%*s-\n", indent, "");
                        put_object(f, e, indent + 2, NULL, now);
                } else if (json_is_array(e)) {
                        fprintf(f, "%*s-\n", indent, "");
                        put_array(f, e, indent + 2, now);
                } else {
                        fprintf(f, "%*s- ", indent, "");
                        put_value(f, e);
                        fputc('\n', f);
                }
        }
}

static bool skipped(const char *key, const char *const *skip)
{
        for (; skip && *skip; skip++)
                if (strcmp(key, *skip) == 0)
                        return true;
        return false;
}

/* Scalars (and lists of scalars) aligned on one line each; nested values indented. */
static void put_object(FILE *f, const json_t *obj, int indent, const char *const *skip, time_t now)
{
        const char *key;
        json_t *v;
        size_t width = 0;
        json_object_foreach((json_t *)obj, key, v)
        {
                if (!skipped(key, skip) && (is_scalar(v) || is_scalar_array(v)) &&
                    strlen(key) > width)
                        width = strlen(key);
        }
        json_object_foreach((json_t *)obj, key, v)
        {
                if (skipped(key, skip))
                        continue;
                _cleanup_free_ char *k = sanitize(key);
                if (is_scalar(v) || is_scalar_array(v)) {
                        fprintf(f, "%*s%s:%*s", indent, "", k ? k : "",
                                (int)(width - strlen(key) + 1), "");
                        put_value(f, v);
                        if ((strcmp(key, "created") == 0 || strcmp(key, "updated") == 0 ||
                             strcmp(key, "last-seen") == 0) &&
                            json_is_string(v)) {
                                _cleanup_free_ char *age =
                                    sk_cli_format_age(json_string_value(v), now);
                                if (age && strcmp(age, json_string_value(v)) != 0)
                                        fprintf(f, " (%s ago)", age);
                        }
                        fputc('\n', f);
                } else if (json_is_object(v)) {
                        fprintf(f, "%*s%s:\n", indent, "", k ? k : "");
                        put_object(f, v, indent + 2, NULL, now);
                } else {
                        fprintf(f, "%*s%s:\n", indent, "", k ? k : "");
                        put_array(f, v, indent + 2, now);
                }
        }
}

static void put_deployment_status(FILE *f, const json_t *status, time_t now)
{
        const json_t *run = json_object_get(status, "running");
        const json_t *des = json_object_get(status, "desired");
        fputs("\nStatus:\n", f);
        if (json_is_integer(run) && json_is_integer(des))
                fprintf(
                    f, "  running %" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT " instances\n",
                    json_integer_value(run), json_integer_value(des));
        const json_t *sites = json_object_get(status, "sites");
        if (!json_is_array(sites) || json_array_size(sites) == 0) {
                fputs("  no site matches\n", f);
                return;
        }
        size_t i;
        json_t *s;
        json_array_foreach(sites, i, s)
        {
                _cleanup_free_ char *site = sk_cli_format_cell(json_object_get(s, "site"));
                _cleanup_free_ char *ver = sk_cli_format_cell(json_object_get(s, "version"));
                _cleanup_free_ char *site_c = sanitize(site), *ver_c = sanitize(ver);
                fprintf(f, "  site %s, version %s:\n", site_c ? site_c : "", ver_c ? ver_c : "");
                const json_t *insts = json_object_get(s, "instances");
                if (!json_is_array(insts) || json_array_size(insts) == 0) {
                        fputs("    no instances reported yet\n", f);
                        continue;
                }
                static const char *const hdr[] = {"INSTANCE", "HOST",    "STATE",
                                                  "RESTARTS", "UPDATED", "REASON"};
                _cleanup_table_ sk_table *t = sk_table_new(SK_ARRAY_SIZE(hdr), hdr);
                if (!t)
                        return;
                size_t j;
                json_t *in;
                json_array_foreach(insts, j, in)
                {
                        const json_t *upd = json_object_get(in, "updated");
                        char *cells[] = {
                            sk_cli_format_cell(json_object_get(in, "instance")),
                            sk_cli_format_cell(json_object_get(in, "host")),
                            sk_cli_format_cell(json_object_get(in, "state")),
                            sk_cli_format_cell(json_object_get(in, "restarts")),
                            json_is_string(upd) ? sk_cli_format_age(json_string_value(upd), now)
                                                : strdup("-"),
                            sk_cli_format_cell(json_object_get(in, "reason")),
                        };
                        sk_table_add(t, (const char *const *)cells);
                        for (size_t c = 0; c < SK_ARRAY_SIZE(cells); c++)
                                free(cells[c]);
                }
                _cleanup_free_ char *text = sk_table_render(t);
                /* Indent every line of the table under its site. */
                for (char *line = text, *nl; line && *line; line = nl + 1) {
                        nl = strchr(line, '\n');
                        if (!nl)
                                break;
                        fprintf(f, "    %.*s\n", (int)(nl - line), line);
                }
        }
}

char *sk_cli_format_describe(sk_kind kind, const json_t *item, time_t now)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return NULL;
        const sk_kind_info *info = sk_kind_get(kind);
        const json_t *name = json_object_get(item, kind == SK_KIND_INSTANCE ? "instance" : "name");
        _cleanup_free_ char *n = sk_cli_format_cell(name);
        _cleanup_free_ char *nc = sanitize(n);
        fprintf(f, "%s %s\n", info ? info->name : "resource", nc ? nc : "");
        static const char *const skip_status[] = {"status", NULL};
        bool dep = kind == SK_KIND_DEPLOYMENT;
        if (json_is_object(item))
                put_object(f, item, 2, dep ? skip_status : NULL, now);
        if (dep && json_is_object(json_object_get(item, "status")))
                put_deployment_status(f, json_object_get(item, "status"), now);
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

char *sk_cli_format_caret(const char *text, int column)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return NULL;
        _cleanup_free_ char *clean = sanitize(text);
        /* Tabs stay, so that the caret line below matches the text's layout. */
        for (size_t i = 0; clean && text[i]; i++)
                if (text[i] == '\t')
                        clean[i] = '\t';
        fprintf(f, "%s\n", clean ? clean : "");
        /* Walk characters, not bytes, and keep tabs so the caret lines up in a terminal. */
        int col = 1;
        for (const unsigned char *p = (const unsigned char *)text; *p && col < column; p++) {
                if ((*p & 0xc0) == 0x80)
                        continue;
                fputc(*p == '\t' ? '\t' : ' ', f);
                col++;
        }
        fputs("^\n", f);
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

char *sk_cli_format_rollout(const json_t *dep, bool *done)
{
        const json_t *st = json_object_get(dep, "status");
        const json_t *run = json_object_get(st, "running"), *des = json_object_get(st, "desired");
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return NULL;
        _cleanup_free_ char *name = sk_cli_format_cell(json_object_get(dep, "name"));
        _cleanup_free_ char *app = sk_cli_format_cell(json_object_get(dep, "application"));
        _cleanup_free_ char *ver = sk_cli_format_cell(json_object_get(dep, "version"));
        _cleanup_free_ char *head = NULL;
        if (asprintf(&head, "deployment %s (application %s %s)", name, app, ver) < 0)
                head = NULL;
        _cleanup_free_ char *head_c = sanitize(head);
        *done = true;
        if (!json_is_integer(run) || !json_is_integer(des)) {
                fprintf(f, "%s: no status reported\n", head_c ? head_c : "");
        } else {
                *done = json_integer_value(run) == json_integer_value(des);
                fprintf(f,
                        "%s: %" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT
                        " instances running\n",
                        head_c ? head_c : "", json_integer_value(run), json_integer_value(des));
        }
        static const char *const hdr[] = {"SITE", "VERSION", "RUNNING", "NOT RUNNING"};
        _cleanup_table_ sk_table *t = sk_table_new(SK_ARRAY_SIZE(hdr), hdr);
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(st, "sites"), i, s)
        {
                const json_t *insts = json_object_get(s, "instances");
                size_t n = json_array_size(insts), up = 0, j;
                json_t *in;
                char *bad = NULL;
                size_t bad_len = 0;
                FILE *b = open_memstream(&bad, &bad_len);
                json_array_foreach(insts, j, in)
                {
                        const char *state = json_string_value(json_object_get(in, "state"));
                        if (state && strcmp(state, "running") == 0) {
                                up++;
                                continue;
                        }
                        const char *inst = json_string_value(json_object_get(in, "instance"));
                        const char *why = json_string_value(json_object_get(in, "reason"));
                        if (b)
                                fprintf(b, "%s%s %s%s%s", ftell(b) > 0 ? ", " : "",
                                        inst ? inst : "?", state ? state : "?",
                                        why && *why ? ": " : "", why && *why ? why : "");
                }
                if (b)
                        fclose(b);
                _cleanup_free_ char *site = sk_cli_format_cell(json_object_get(s, "site"));
                _cleanup_free_ char *sver = sk_cli_format_cell(json_object_get(s, "version"));
                _cleanup_free_ char *count = NULL;
                if (asprintf(&count, "%zu/%zu", up, n) < 0)
                        count = NULL;
                const char *cells[] = {site, sver, count, bad && *bad ? bad : "-"};
                if (t)
                        sk_table_add(t, cells);
                free(bad);
        }
        if (t && t->nrows > 0) {
                _cleanup_free_ char *text = sk_table_render(t);
                for (char *line = text, *nl; line && (nl = strchr(line, '\n')); line = nl + 1)
                        fprintf(f, "  %.*s\n", (int)(nl - line), line);
        }
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

#include "cli/format.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Columns a code point takes on a terminal: 0 for combining marks and zero-width ones,
 * 2 for East Asian wide and fullwidth forms and emoji, else 1 (no locale needed). */
static size_t cp_width(unsigned cp)
{
        if ((cp >= 0x300 && cp <= 0x36f) || (cp >= 0x200b && cp <= 0x200f) ||
            (cp >= 0xfe00 && cp <= 0xfe0f) || (cp >= 0x1ab0 && cp <= 0x1aff) ||
            (cp >= 0x20d0 && cp <= 0x20ff))
                return 0;
        if ((cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0x303e) ||
            (cp >= 0x3041 && cp <= 0x33ff) || (cp >= 0x3400 && cp <= 0x4dbf) ||
            (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0xa000 && cp <= 0xa4cf) ||
            (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) ||
            (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
            (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1f64f) ||
            (cp >= 0x1f900 && cp <= 0x1f9ff) || (cp >= 0x20000 && cp <= 0x3fffd))
                return 2;
        return 1;
}

size_t sk_cli_display_width(const char *s)
{
        size_t n = 0;
        const unsigned char *p = (const unsigned char *)s;
        while (*p) {
                unsigned cp = *p;
                int more = cp >= 0xf0 ? 3 : cp >= 0xe0 ? 2 : cp >= 0xc0 ? 1 : 0;
                cp &= more == 3 ? 0x07 : more == 2 ? 0x0f : more == 1 ? 0x1f : 0xff;
                p++;
                for (; more > 0 && (*p & 0xc0) == 0x80; more--)
                        cp = (cp << 6) | (*p++ & 0x3f);
                n += more ? 1 : cp_width(cp); /* a cut sequence counts one */
        }
        return n;
}

bool sk_cli_use_color(int fd)
{
        const char *no = getenv("NO_COLOR"), *term = getenv("TERM");
        if (no && *no)
                return false;
        if (term && strcmp(term, "dumb") == 0)
                return false;
        return isatty(fd);
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
        return sk_table_render_color(t, false);
}

char *sk_table_render_color(const sk_table *t, bool color)
{
        _cleanup_free_ size_t *width = calloc(t->ncols ? t->ncols : 1, sizeof(*width));
        if (!width)
                return NULL;
        size_t rows = t->nrows + 1;
        for (size_t r = 0; r < rows; r++)
                for (size_t c = 0; c < t->ncols; c++) {
                        size_t w = sk_cli_display_width(t->cells[r * t->ncols + c]);
                        if (w > width[c])
                                width[c] = w;
                }
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return NULL;
        for (size_t r = 0; r < rows; r++) {
                if (color && r == 0)
                        fputs("\033[1m", f);
                for (size_t c = 0; c < t->ncols; c++) {
                        const char *cell = t->cells[r * t->ncols + c];
                        fputs(cell, f);
                        if (c + 1 < t->ncols)
                                fprintf(f, "%*s", (int)(width[c] - sk_cli_display_width(cell) + 3),
                                        "");
                }
                if (color && r == 0)
                        fputs("\033[0m", f);
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

#define MAX_COLS 10

static char *age_of(const json_t *item, const char *key, time_t now)
{
        const json_t *v = json_object_get(item, key);
        return json_is_string(v) ? sk_cli_format_age(json_string_value(v), now) : strdup("-");
}

typedef struct row {
        const char **headers;
        char **cells;
        const json_t *item;
        size_t n;
} row;

/* One column: its header always, its cell when there is an item. */
static void col(row *r, const char *header, char *(*make)(const json_t *, const char *, time_t),
                const char *key, time_t now)
{
        r->headers[r->n] = header;
        if (r->item)
                r->cells[r->n] = make(r->item, key, now);
        r->n++;
}

static char *cell_of(const json_t *item, const char *key, time_t now)
{
        return sk_cli_format_cell(json_object_get(item, key));
}

static char *name_of(const json_t *item, const char *key, time_t now)
{
        return sk_cli_format_cell(field(item, "name", key));
}

static char *running_of(const json_t *item, const char *key, time_t now)
{
        return running_desired(item);
}

static char *services_of(const json_t *item, const char *key, time_t now)
{
        return names_of(json_object_get(item, "services"));
}

static char *versions_of(const json_t *item, const char *key, time_t now)
{
        const json_t *vers = json_object_get(item, "versions");
        return sk_cli_format_cell(vers ? vers : json_object_get(item, "version"));
}

static char *seen_of(const json_t *item, const char *key, time_t now)
{
        return age_of(item, json_object_get(item, "last-seen") ? "last-seen" : "updated", now);
}

/* Fills cells[] for one item; returns the number of columns. headers when item is NULL.
 * wide adds the columns of `-o wide`. */
static size_t kind_row(sk_kind kind, const json_t *item, time_t now, bool wide,
                       const char **headers, char **cells)
{
        row r = {headers, cells, item, 0};
        switch (kind) {
        case SK_KIND_SITE:
                col(&r, "NAME", name_of, NULL, now);
                col(&r, "LABELS", cell_of, "labels", now);
                break;
        case SK_KIND_APPLICATION:
                col(&r, "NAME", name_of, NULL, now);
                col(&r, "VERSION", cell_of, "version", now);
                col(&r, "VERSIONS", versions_of, NULL, now);
                col(&r, "SERVICES", services_of, NULL, now);
                break;
        case SK_KIND_DEPLOYMENT:
                col(&r, "NAME", name_of, NULL, now);
                col(&r, "APPLICATION", cell_of, "application", now);
                col(&r, "VERSION", cell_of, "version", now);
                col(&r, "SITES", cell_of, "sites", now);
                col(&r, "RUNNING/DESIRED", running_of, NULL, now);
                break;
        case SK_KIND_HOST:
                col(&r, "NAME", name_of, "host", now);
                col(&r, "SITE", cell_of, "site", now);
                col(&r, "ROLE", cell_of, "role", now);
                col(&r, "STATE", cell_of, "state", now);
                col(&r, "LABELS", cell_of, "labels", now);
                col(&r, "LAST-SEEN", seen_of, NULL, now);
                if (wide) {
                        col(&r, "ADDRESS", cell_of, "address", now);
                        col(&r, "JOINED", age_of, "joined", now);
                }
                return r.n;
        case SK_KIND_INSTANCE:
                col(&r, "INSTANCE", cell_of, "instance", now);
                col(&r, "SITE", cell_of, "site", now);
                col(&r, "HOST", cell_of, "host", now);
                col(&r, "STATE", cell_of, "state", now);
                col(&r, "REASON", cell_of, "reason", now);
                if (wide) {
                        col(&r, "DEPLOYMENT", cell_of, "deployment", now);
                        col(&r, "VERSION", cell_of, "version", now);
                }
                return r.n;
        case SK_KIND_TENANT:
                col(&r, "NAME", name_of, NULL, now);
                col(&r, "TYPE", cell_of, "type", now);
                if (wide)
                        col(&r, "PARENT", cell_of, "parent", now);
                break;
        case SK_KIND_USER:
                col(&r, "NAME", name_of, NULL, now);
                col(&r, "ROLE", cell_of, "role", now);
                break;
        default:
                col(&r, "NAME", name_of, NULL, now);
                break;
        }
        if (wide) {
                col(&r, "TENANT", cell_of, "tenant", now);
                col(&r, "AGE", age_of, "created", now);
        }
        return r.n;
}

char *sk_cli_format_table(sk_kind kind, const json_t *items, time_t now)
{
        return sk_cli_format_table_opts(kind, items, now, false, false);
}

char *sk_cli_format_table_opts(sk_kind kind, const json_t *items, time_t now, bool wide, bool color)
{
        const char *headers[MAX_COLS] = {0};
        char *cells[MAX_COLS] = {0};
        size_t n = kind_row(kind, NULL, now, wide, headers, cells);
        _cleanup_table_ sk_table *t = sk_table_new(n, headers);
        if (!t)
                return NULL;
        size_t i;
        json_t *item;
        json_array_foreach(items, i, item)
        {
                kind_row(kind, item, now, wide, headers, cells);
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
        return sk_table_render_color(t, color);
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

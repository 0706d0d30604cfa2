#include "common/yaml.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/cleanup.h"

#define MAX_DEPTH 64

/* ---- paths ---- */

static bool plain_key(const char *key)
{
        if (!*key)
                return false;
        for (const char *p = key; *p; p++)
                if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
                        return false;
        return true;
}

char *sk_yaml_path_key(const char *parent, const char *key)
{
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        if (!f)
                return NULL;
        fputs(parent ? parent : "", f);
        if (plain_key(key)) {
                if (parent && *parent)
                        fputc('.', f);
                fputs(key, f);
        } else {
                fputs("[\"", f);
                for (const char *p = key; *p; p++) {
                        if (*p == '"' || *p == '\\')
                                fputc('\\', f);
                        fputc(*p, f);
                }
                fputs("\"]", f);
        }
        if (fclose(f) != 0) {
                free(out);
                return NULL;
        }
        return out;
}

char *sk_yaml_path_index(const char *parent, size_t index)
{
        char *out = NULL;
        if (asprintf(&out, "%s[%zu]", parent ? parent : "", index) < 0)
                return NULL;
        return out;
}

/* ---- scalar typing (YAML 1.2 core schema) ---- */

static bool all_digits(const char *s, int base)
{
        if (!*s)
                return false;
        for (; *s; s++) {
                int c = (unsigned char)*s;
                if (base == 16 ? !isxdigit(c) : base == 8 ? (c < '0' || c > '7') : !isdigit(c))
                        return false;
        }
        return true;
}

static bool is_float(const char *s)
{
        if (*s == '+' || *s == '-')
                s++;
        bool mant = false;
        if (*s == '.') {
                s++;
                if (!isdigit((unsigned char)*s))
                        return false;
                while (isdigit((unsigned char)*s))
                        s++;
                mant = true;
        } else {
                while (isdigit((unsigned char)*s)) {
                        s++;
                        mant = true;
                }
                if (!mant)
                        return false;
                if (*s == '.') {
                        s++;
                        while (isdigit((unsigned char)*s))
                                s++;
                }
        }
        if (*s == 'e' || *s == 'E') {
                s++;
                if (*s == '+' || *s == '-')
                        s++;
                if (!isdigit((unsigned char)*s))
                        return false;
                while (isdigit((unsigned char)*s))
                        s++;
        }
        return *s == '\0';
}

enum scalar_type { T_STRING, T_NULL, T_TRUE, T_FALSE, T_INT, T_REAL };

static enum scalar_type classify(const char *s)
{
        if (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
            !strcmp(s, "NULL"))
                return T_NULL;
        if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
                return T_TRUE;
        if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
                return T_FALSE;
        const char *d = (*s == '+' || *s == '-') ? s + 1 : s;
        if (all_digits(d, 10))
                return T_INT;
        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'o') && all_digits(s + 2, s[1] == 'x' ? 16 : 8))
                return T_INT;
        if (is_float(s))
                return T_REAL;
        return T_STRING;
}

/* Returns NULL with *why set when the number does not fit. */
static json_t *typed_scalar(const char *s, const char **why)
{
        switch (classify(s)) {
        case T_NULL:
                return json_null();
        case T_TRUE:
                return json_true();
        case T_FALSE:
                return json_false();
        case T_INT: {
                int base = 10;
                const char *digits = s;
                if (s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
                        base = s[1] == 'x' ? 16 : 8;
                        digits = s + 2;
                }
                errno = 0;
                char *end = NULL;
                long long v = strtoll(digits, &end, base);
                if (errno == ERANGE || *end) {
                        *why = "integer out of range (64-bit)";
                        return NULL;
                }
                return json_integer(v);
        }
        case T_REAL: {
                double d = strtod(s, NULL);
                if (!isfinite(d)) {
                        *why = "number out of range";
                        return NULL;
                }
                return json_real(d);
        }
        case T_STRING:
                break;
        }
        return json_string(s);
}

/* ---- loading ---- */

struct frame {
        json_t *node; /* borrowed: owned by its parent or the document */
        char *path;
        char *key; /* mapping: the key read, waiting for its value */
        size_t index;
};

struct loader {
        sk_yaml_docs *out;
        sk_yaml_doc doc;
        size_t pos_cap;
        struct frame stack[MAX_DEPTH + 1];
        int depth;
        bool empty_root; /* the document is one empty plain scalar */
        sk_error **err;
};

static int add_pos(struct loader *l, char *path, const yaml_mark_t *m)
{
        if (l->doc.npos == l->pos_cap) {
                size_t cap = l->pos_cap ? l->pos_cap * 2 : 16;
                sk_yaml_pos *p = realloc(l->doc.pos, cap * sizeof(*p));
                if (!p) {
                        free(path);
                        return sk_error_set(l->err, ENOMEM, "out of memory");
                }
                l->doc.pos = p;
                l->pos_cap = cap;
        }
        l->doc.pos[l->doc.npos++] =
            (sk_yaml_pos){.path = path, .line = (int)m->line + 1, .column = (int)m->column + 1};
        return 0;
}

static void doc_clear(sk_yaml_doc *d)
{
        json_decref(d->value);
        for (size_t i = 0; i < d->npos; i++)
                free(d->pos[i].path);
        free(d->pos);
        *d = (sk_yaml_doc){0};
}

static int fail_at(struct loader *l, const yaml_mark_t *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_at(struct loader *l, const yaml_mark_t *m, const char *fmt, ...)
{
        _cleanup_free_ char *msg = NULL;
        va_list ap;
        va_start(ap, fmt);
        int n = vasprintf(&msg, fmt, ap);
        va_end(ap);
        return sk_error_set_pos(l->err, EINVAL, (int)m->line + 1, (int)m->column + 1, "%s",
                                n < 0 ? "invalid YAML" : msg);
}

/* A mapping key, sequence item or document root arrives: returns (in *path) where the
 * new node lives, or NULL in *path with 0 when the scalar was a key. */
static int node_path(struct loader *l, const yaml_event_t *ev, char **path)
{
        *path = NULL;
        if (l->depth == 0) {
                *path = strdup("");
                return *path ? 0 : -ENOMEM;
        }
        struct frame *f = &l->stack[l->depth - 1];
        if (json_is_array(f->node)) {
                *path = sk_yaml_path_index(f->path, f->index++);
                return *path ? 0 : -ENOMEM;
        }
        if (f->key) {
                *path = sk_yaml_path_key(f->path, f->key);
                return *path ? 0 : -ENOMEM;
        }
        if (ev->type != YAML_SCALAR_EVENT)
                return fail_at(l, &ev->start_mark, "%s", "mapping keys must be scalars");
        const char *key = (const char *)ev->data.scalar.value;
        if (strlen(key) != ev->data.scalar.length)
                return fail_at(l, &ev->start_mark, "%s", "a key must not contain NUL");
        if (json_object_get(f->node, key))
                return fail_at(l, &ev->start_mark, "duplicate key \"%s\"", key);
        f->key = strdup(key);
        return f->key ? 0 : -ENOMEM;
}

static int attach(struct loader *l, json_t *v)
{
        if (l->depth == 0) {
                l->doc.value = v;
                return 0;
        }
        struct frame *f = &l->stack[l->depth - 1];
        int r;
        if (json_is_array(f->node)) {
                r = json_array_append_new(f->node, v);
        } else {
                r = json_object_set_new(f->node, f->key, v);
                free(f->key);
                f->key = NULL;
        }
        return r == 0 ? 0 : sk_error_set(l->err, ENOMEM, "out of memory");
}

static int check_tag_anchor(struct loader *l, const yaml_event_t *ev, const yaml_char_t *anchor,
                            const yaml_char_t *tag, bool *force_str)
{
        if (anchor)
                return fail_at(l, &ev->start_mark, "%s",
                               "anchors and aliases are not supported: write the value out");
        if (!tag)
                return 0;
        static const char *known[] = {"str", "int", "float", "bool", "null", "map", "seq"};
        const char *t = (const char *)tag;
        const char *prefix = "tag:yaml.org,2002:";
        if (!strncmp(t, prefix, strlen(prefix))) {
                t += strlen(prefix);
                for (size_t i = 0; i < SK_ARRAY_SIZE(known); i++)
                        if (!strcmp(t, known[i])) {
                                if (force_str && !strcmp(t, "str"))
                                        *force_str = true;
                                return 0;
                        }
        }
        if (!strcmp((const char *)tag, "!"))
                return 0;
        return fail_at(l, &ev->start_mark, "unsupported tag \"%s\"", (const char *)tag);
}

static int on_scalar(struct loader *l, const yaml_event_t *ev)
{
        bool force_str = false;
        int r = check_tag_anchor(l, ev, ev->data.scalar.anchor, ev->data.scalar.tag, &force_str);
        if (r < 0)
                return r;
        _cleanup_free_ char *path = NULL;
        r = node_path(l, ev, &path);
        if (r < 0 || !path)
                return r < 0 ? sk_error_set(l->err, r, "out of memory") : 0;
        const char *s = (const char *)ev->data.scalar.value;
        if (strlen(s) != ev->data.scalar.length)
                return fail_at(l, &ev->start_mark, "%s", "a value must not contain NUL");
        if (l->depth == 0 && !*s && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
                l->empty_root = true;
        json_t *v;
        const char *why = "not valid UTF-8";
        if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !force_str)
                v = typed_scalar(s, &why);
        else
                v = json_string(s);
        if (!v)
                return fail_at(l, &ev->start_mark, "%s", why);
        r = attach(l, v);
        if (r < 0)
                return r;
        return add_pos(l, take_ptr(&path), &ev->start_mark);
}

static int on_start(struct loader *l, const yaml_event_t *ev, bool mapping)
{
        int r = mapping ? check_tag_anchor(l, ev, ev->data.mapping_start.anchor,
                                           ev->data.mapping_start.tag, NULL)
                        : check_tag_anchor(l, ev, ev->data.sequence_start.anchor,
                                           ev->data.sequence_start.tag, NULL);
        if (r < 0)
                return r;
        if (l->depth >= MAX_DEPTH)
                return fail_at(l, &ev->start_mark, "nesting deeper than %d levels", MAX_DEPTH);
        _cleanup_free_ char *path = NULL;
        r = node_path(l, ev, &path);
        if (r < 0)
                return r == -ENOMEM ? sk_error_set(l->err, r, "out of memory") : r;
        json_t *v = mapping ? json_object() : json_array();
        if (!v)
                return sk_error_set(l->err, ENOMEM, "out of memory");
        r = attach(l, v);
        if (r < 0)
                return r;
        char *frame_path = strdup(path);
        if (!frame_path)
                return sk_error_set(l->err, ENOMEM, "out of memory");
        r = add_pos(l, take_ptr(&path), &ev->start_mark);
        if (r < 0) {
                free(frame_path);
                return r;
        }
        l->stack[l->depth++] = (struct frame){.node = v, .path = frame_path};
        return 0;
}

static void on_end(struct loader *l)
{
        struct frame *f = &l->stack[--l->depth];
        free(f->path);
        free(f->key);
        *f = (struct frame){0};
}

static int on_document_end(struct loader *l)
{
        /* An empty document holds one empty plain scalar: skip it. */
        bool empty = l->empty_root;
        l->empty_root = false;
        if (!l->doc.value || empty) {
                doc_clear(&l->doc);
                l->pos_cap = 0;
                return 0;
        }
        sk_yaml_doc *docs = realloc(l->out->docs, (l->out->n + 1) * sizeof(*docs));
        if (!docs)
                return sk_error_set(l->err, ENOMEM, "out of memory");
        l->out->docs = docs;
        docs[l->out->n++] = l->doc;
        l->doc = (sk_yaml_doc){0};
        l->pos_cap = 0;
        return 0;
}

static int handle(struct loader *l, const yaml_event_t *ev)
{
        switch (ev->type) {
        case YAML_DOCUMENT_START_EVENT:
                l->doc.line = (int)ev->start_mark.line + 1;
                return 0;
        case YAML_DOCUMENT_END_EVENT:
                return on_document_end(l);
        case YAML_ALIAS_EVENT:
                return fail_at(l, &ev->start_mark, "%s",
                               "anchors and aliases are not supported: write the value out");
        case YAML_SCALAR_EVENT:
                return on_scalar(l, ev);
        case YAML_SEQUENCE_START_EVENT:
                return on_start(l, ev, false);
        case YAML_MAPPING_START_EVENT:
                return on_start(l, ev, true);
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
                on_end(l);
                return 0;
        default:
                return 0;
        }
}

static void parser_deletep(yaml_parser_t *p)
{
        yaml_parser_delete(p);
}

static int syntax_error(const yaml_parser_t *p, const char *text, size_t len, sk_error **err)
{
        const yaml_mark_t *m = &p->problem_mark;
        int line = (int)m->line + 1, column = (int)m->column + 1;
        if (p->error == YAML_READER_ERROR) {
                /* the reader reports a byte offset only (bad UTF-8, control characters) */
                line = 1;
                column = 1;
                for (size_t i = 0; i < p->problem_offset && i < len; i++) {
                        if (text[i] == '\n') {
                                line++;
                                column = 1;
                        } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
                                column++;
                        }
                }
                return sk_error_set_pos(err, EINVAL, line, column, "%s (byte %zu)",
                                        p->problem ? p->problem : "unreadable input",
                                        p->problem_offset);
        }
        if (p->error == YAML_MEMORY_ERROR)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (p->context)
                return sk_error_set_pos(err, EINVAL, line, column, "%s %s (line %d)",
                                        p->problem ? p->problem : "syntax error", p->context,
                                        (int)p->context_mark.line + 1);
        return sk_error_set_pos(err, EINVAL, line, column, "%s",
                                p->problem ? p->problem : "syntax error");
}

int sk_yaml_load(const char *text, size_t len, sk_yaml_docs *out, sk_error **err)
{
        *out = (sk_yaml_docs){0};
        __attribute__((cleanup(parser_deletep))) yaml_parser_t parser;
        if (!yaml_parser_initialize(&parser))
                return sk_error_set(err, ENOMEM, "out of memory");
        yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);

        struct loader l = {.out = out, .err = err};
        int r = 0;
        for (bool done = false; !done && r == 0;) {
                yaml_event_t ev;
                if (!yaml_parser_parse(&parser, &ev)) {
                        r = syntax_error(&parser, text, len, err);
                        break;
                }
                done = ev.type == YAML_STREAM_END_EVENT;
                r = handle(&l, &ev);
                yaml_event_delete(&ev);
        }
        while (l.depth > 0)
                on_end(&l);
        doc_clear(&l.doc);
        if (r < 0)
                sk_yaml_docs_free(out);
        return r;
}

void sk_yaml_docs_free(sk_yaml_docs *docs)
{
        if (!docs)
                return;
        for (size_t i = 0; i < docs->n; i++)
                doc_clear(&docs->docs[i]);
        free(docs->docs);
        *docs = (sk_yaml_docs){0};
}

/* ---- positions ---- */

static const sk_yaml_pos *find_exact(const sk_yaml_doc *doc, const char *path, size_t len)
{
        for (size_t i = 0; i < doc->npos; i++)
                if (strlen(doc->pos[i].path) == len && !strncmp(doc->pos[i].path, path, len))
                        return &doc->pos[i];
        return NULL;
}

int sk_yaml_doc_position(const sk_yaml_doc *doc, const char *path, int *line, int *column)
{
        if (!doc || !path)
                return -ENOENT;
        /* Offsets where each component ends, so quoted keys holding '.' or '[' count once. */
        size_t n = strlen(path);
        _cleanup_free_ size_t *ends = calloc(n + 2, sizeof(*ends));
        if (!ends)
                return -ENOMEM;
        size_t nends = 0;
        ends[nends++] = 0;
        bool quoted = false;
        for (size_t i = 0; i < n; i++) {
                char c = path[i];
                if (quoted) {
                        if (c == '\\' && i + 1 < n)
                                i++;
                        else if (c == '"')
                                quoted = false;
                        continue;
                }
                if (c == '"')
                        quoted = true;
                else if ((c == '.' || c == '[') && i > 0)
                        ends[nends++] = i;
        }
        ends[nends++] = n;
        for (size_t k = nends; k-- > 0;) {
                const sk_yaml_pos *p = find_exact(doc, path, ends[k]);
                if (p) {
                        *line = p->line;
                        *column = p->column;
                        return 0;
                }
        }
        return -ENOENT;
}

/* ---- dumping ---- */

static bool yaml_printable(uint32_t c)
{
        return c == 0x9 || c == 0xA || c == 0xD || (c >= 0x20 && c <= 0x7E) || c == 0x85 ||
               (c >= 0xA0 && c <= 0xD7FF) || (c >= 0xE000 && c <= 0xFFFD && c != 0xFEFF) ||
               (c >= 0x10000 && c <= 0x10FFFF);
}

/* Decodes one UTF-8 character (jansson strings are valid UTF-8). */
static size_t utf8_next(const unsigned char *s, uint32_t *c)
{
        if (s[0] < 0x80) {
                *c = s[0];
                return 1;
        }
        if ((s[0] & 0xE0) == 0xC0) {
                *c = ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
                return 2;
        }
        if ((s[0] & 0xF0) == 0xE0) {
                *c = ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) |
                     (s[2] & 0x3F);
                return 3;
        }
        *c = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
             ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        return 4;
}

static bool needs_quotes(const char *s)
{
        if (classify(s) != T_STRING)
                return true;
        if (strchr("-?:,[]{}#&*!|>'\"%@`", s[0]))
                return true;
        if (s[0] == ' ' || s[strlen(s) - 1] == ' ' || s[strlen(s) - 1] == ':')
                return true;
        if (strstr(s, ": ") || strstr(s, " #") || strlen(s) > 250)
                return true;
        if (!strncmp(s, "---", 3) || !strncmp(s, "...", 3)) /* document markers */
                return true;
        for (const unsigned char *p = (const unsigned char *)s; *p;) {
                uint32_t c;
                p += utf8_next(p, &c);
                if (c < 0x20 || c == 0x7F || !yaml_printable(c) || c == 0x85 || c == 0x2028 ||
                    c == 0x2029 || c == 0xA0)
                        return true;
        }
        return false;
}

static void put_quoted(FILE *f, const char *s)
{
        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *)s; *p;) {
                uint32_t c;
                size_t n = utf8_next(p, &c);
                switch (c) {
                case '"':
                        fputs("\\\"", f);
                        break;
                case '\\':
                        fputs("\\\\", f);
                        break;
                case '\n':
                        fputs("\\n", f);
                        break;
                case '\t':
                        fputs("\\t", f);
                        break;
                case '\r':
                        fputs("\\r", f);
                        break;
                case 0x85:
                        fputs("\\N", f);
                        break;
                case 0x2028:
                        fputs("\\L", f);
                        break;
                case 0x2029:
                        fputs("\\P", f);
                        break;
                default:
                        if (c < 0x20 || c == 0x7F)
                                fprintf(f, "\\x%02X", (unsigned)c);
                        else if (!yaml_printable(c))
                                fprintf(f, c > 0xFFFF ? "\\U%08X" : "\\u%04X", (unsigned)c);
                        else
                                fwrite(p, 1, n, f);
                }
                p += n;
        }
        fputc('"', f);
}

static void put_string(FILE *f, const char *s)
{
        if (needs_quotes(s))
                put_quoted(f, s);
        else
                fputs(s, f);
}

static void put_scalar(FILE *f, const json_t *v)
{
        if (json_is_string(v)) {
                put_string(f, json_string_value(v));
        } else if (json_is_object(v)) {
                fputs("{}", f);
        } else if (json_is_array(v)) {
                fputs("[]", f);
        } else {
                char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
                fputs(s ? s : "null", f);
                free(s);
        }
}

static bool is_block(const json_t *v)
{
        return (json_is_object(v) && json_object_size(v) > 0) ||
               (json_is_array(v) && json_array_size(v) > 0);
}

static void indent_to(FILE *f, int n)
{
        for (int i = 0; i < n; i++)
                fputc(' ', f);
}

static void dump_node(FILE *f, const json_t *v, int indent, bool inline_first);

/* After a key or "- ": a scalar on the same line, a block below. */
static void dump_value(FILE *f, const json_t *v, int indent)
{
        if (is_block(v)) {
                fputc('\n', f);
                dump_node(f, v, indent + 2, false);
        } else {
                fputc(' ', f);
                put_scalar(f, v);
                fputc('\n', f);
        }
}

static void dump_node(FILE *f, const json_t *v, int indent, bool inline_first)
{
        bool first = true;
        if (json_is_object(v)) {
                const char *key;
                json_t *child;
                json_object_foreach((json_t *)v, key, child)
                {
                        if (!(first && inline_first))
                                indent_to(f, indent);
                        first = false;
                        if (strlen(key) > 250) {
                                /* libyaml's simple keys end at 1024 characters, escapes included */
                                fputs("? ", f);
                                put_quoted(f, key);
                                fputc('\n', f);
                                indent_to(f, indent);
                        } else {
                                put_string(f, key);
                        }
                        fputc(':', f);
                        dump_value(f, child, indent);
                }
        } else if (json_is_array(v)) {
                size_t i;
                json_t *child;
                json_array_foreach(v, i, child)
                {
                        if (!(first && inline_first))
                                indent_to(f, indent);
                        first = false;
                        fputs("- ", f);
                        if (is_block(child)) {
                                dump_node(f, child, indent + 2, true);
                        } else {
                                put_scalar(f, child);
                                fputc('\n', f);
                        }
                }
        }
}

char *sk_yaml_dump(const json_t *value)
{
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        if (!f)
                return NULL;
        if (is_block(value)) {
                dump_node(f, value, 0, false);
        } else {
                put_scalar(f, value);
                fputc('\n', f);
        }
        if (fclose(f) != 0) {
                free(out);
                return NULL;
        }
        return out;
}

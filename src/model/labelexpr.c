#include "model/labelexpr.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "model/labelexpr_re.h"

#define MAX_LEN     4096
#define MAX_DEPTH   32
#define CACHE_MAX   1024
#define CACHE_BYTES (32 << 20)

enum op { E_OR, E_AND, E_NOT, E_HAS, E_EQ, E_NE, E_RE, E_IN, E_NOTIN };

struct sk_expr {
        enum op op;
        char *key;
        char **vals; /* E_EQ, E_NE, E_RE: one; E_IN, E_NOTIN: the list */
        size_t nvals;
        sk_lre *re;     /* E_RE */
        sk_expr **kids; /* E_OR, E_AND: two or more; E_NOT: one */
        size_t nkids;
        uint64_t cost; /* the root: sk_expr_cost */
        int refs;      /* the root: owners (sk_expr_parse_cached shares one tree) */
};

enum tok_type { T_END, T_WORD, T_STR, T_LP, T_RP, T_COMMA, T_EQ, T_NE, T_TILDE };

struct tok {
        enum tok_type type;
        size_t start; /* byte offset; the column is start + 1 */
        char *text;   /* T_WORD, T_STR */
};

struct parser {
        const char *s;
        size_t pos;
        int depth;
        struct tok tok;
        uint64_t cost; /* of the terms parsed so far */
        sk_error **err;
};

static void node_free(sk_expr *e)
{
        if (!e)
                return;
        free(e->key);
        for (size_t i = 0; i < e->nvals; i++)
                free(e->vals[i]);
        free(e->vals);
        sk_lre_free(e->re);
        for (size_t i = 0; i < e->nkids; i++)
                node_free(e->kids[i]);
        free(e->kids);
        free(e);
}

void sk_expr_free(sk_expr *e)
{
        if (e && __atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) == 0)
                node_free(e);
}

static int fail(struct parser *p, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct parser *p, size_t at, const char *fmt, ...)
{
        _cleanup_free_ char *msg = NULL;
        va_list ap;
        va_start(ap, fmt);
        int n = vasprintf(&msg, fmt, ap);
        va_end(ap);
        return sk_error_set_pos(p->err, EINVAL, 0, (int)at + 1, "%s at column %zu",
                                n < 0 ? "invalid label expression" : msg, at + 1);
}

static int oom(struct parser *p)
{
        return sk_error_set(p->err, ENOMEM, "out of memory");
}

/* ---- lexing ---- */

static bool word_char(char c)
{
        return isalnum((unsigned char)c) || (c && strchr("_./-:+@", c) != NULL);
}

static bool key_char(char c)
{
        return isalnum((unsigned char)c) || (c && strchr("_./-", c) != NULL);
}

static bool is_keyword(const char *w)
{
        return !strcmp(w, "and") || !strcmp(w, "or") || !strcmp(w, "not") || !strcmp(w, "in") ||
               !strcmp(w, "notin");
}

static bool tok_is(const struct tok *t, const char *keyword)
{
        return t->type == T_WORD && !strcmp(t->text, keyword);
}

static void skip_space(struct parser *p)
{
        while (p->s[p->pos] && isspace((unsigned char)p->s[p->pos]))
                p->pos++;
}

/* A quoted string: '\' escapes the quote and itself; any other '\' is kept, for regexes. */
static int lex_quoted(struct parser *p)
{
        size_t start = p->pos;
        char q = p->s[p->pos++];
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        if (!f)
                return oom(p);
        for (;;) {
                char c = p->s[p->pos];
                if (!c) {
                        fclose(f);
                        free(out);
                        return fail(p, start, "unterminated quoted string");
                }
                p->pos++;
                if (c == q)
                        break;
                if (c == '\\' && (p->s[p->pos] == q || p->s[p->pos] == '\\'))
                        c = p->s[p->pos++];
                fputc(c, f);
        }
        if (fclose(f) != 0) {
                free(out);
                return oom(p);
        }
        p->tok = (struct tok){.type = T_STR, .start = start, .text = out};
        return 0;
}

static int make_word(struct parser *p, size_t start)
{
        char *w = strndup(p->s + start, p->pos - start);
        if (!w)
                return oom(p);
        p->tok = (struct tok){.type = T_WORD, .start = start, .text = w};
        return 0;
}

static int advance(struct parser *p)
{
        free(p->tok.text);
        p->tok = (struct tok){0};
        skip_space(p);
        size_t start = p->pos;
        char c = p->s[p->pos];
        p->tok.start = start;
        switch (c) {
        case '\0':
                p->tok.type = T_END;
                return 0;
        case '(':
        case ')':
        case ',':
        case '=':
        case '~':
                p->tok.type = c == '('   ? T_LP
                              : c == ')' ? T_RP
                              : c == ',' ? T_COMMA
                              : c == '=' ? T_EQ
                                         : T_TILDE;
                p->pos++;
                return 0;
        case '!':
                if (p->s[p->pos + 1] == '=') {
                        p->tok.type = T_NE;
                        p->pos += 2;
                        return 0;
                }
                return fail(p, start, "unexpected '!' (did you mean '!=' or 'not'?)");
        case '"':
        case '\'':
                return lex_quoted(p);
        default:
                break;
        }
        if (!word_char(c)) {
                if (isprint((unsigned char)c))
                        return fail(p, start, "unexpected character '%c'", c);
                return fail(p, start, "unexpected byte 0x%02x", (unsigned char)c);
        }
        while (word_char(p->s[p->pos]))
                p->pos++;
        return make_word(p, start);
}

/* After '~': a quoted string, or everything up to a space or an unbalanced ')'. */
static int advance_regex(struct parser *p)
{
        free(p->tok.text);
        p->tok = (struct tok){0};
        skip_space(p);
        size_t start = p->pos;
        char c = p->s[p->pos];
        if (c == '"' || c == '\'')
                return lex_quoted(p);
        int parens = 0;
        for (;;) {
                c = p->s[p->pos];
                if (!c || isspace((unsigned char)c) || (c == ')' && parens == 0))
                        break;
                if (c == '\\' && p->s[p->pos + 1]) {
                        p->pos += 2;
                        continue;
                }
                if (c == '[') {
                        /* a bracket expression may hold ')' and ' ', and starts with ']' */
                        size_t i = p->pos + 1;
                        if (p->s[i] == '^')
                                i++;
                        if (p->s[i] == ']')
                                i++;
                        while (p->s[i] && p->s[i] != ']')
                                i++;
                        if (p->s[i] == ']') {
                                p->pos = i + 1;
                                continue;
                        }
                }
                if (c == '(')
                        parens++;
                else if (c == ')')
                        parens--;
                p->pos++;
        }
        if (p->pos == start) {
                p->tok = (struct tok){.type = T_END, .start = start};
                if (c == ')')
                        p->tok.type = T_RP;
                return 0;
        }
        return make_word(p, start);
}

static const char *describe(const struct tok *t)
{
        switch (t->type) {
        case T_END:
                return "the end of the expression";
        case T_LP:
                return "'('";
        case T_RP:
                return "')'";
        case T_COMMA:
                return "','";
        case T_EQ:
                return "'='";
        case T_NE:
                return "'!='";
        case T_TILDE:
                return "'~'";
        case T_STR:
                return "a quoted string";
        case T_WORD:
                return is_keyword(t->text) ? "a keyword" : "a word";
        }
        return "?";
}

/* ---- parsing ---- */

static sk_expr *node_new(enum op op)
{
        sk_expr *e = calloc(1, sizeof(*e));
        if (e)
                e->op = op;
        return e;
}

static int add_kid(struct parser *p, sk_expr *parent, sk_expr *kid)
{
        /* "a and (b and c)" is the same as "a and b and c": keep one flat list */
        if (kid->op == parent->op && (kid->op == E_AND || kid->op == E_OR)) {
                for (size_t i = 0; i < kid->nkids; i++) {
                        int r = add_kid(p, parent, kid->kids[i]);
                        kid->kids[i] = NULL;
                        if (r < 0) {
                                for (size_t j = i + 1; j < kid->nkids; j++) {
                                        node_free(kid->kids[j]);
                                        kid->kids[j] = NULL;
                                }
                                node_free(kid);
                                return r;
                        }
                }
                node_free(kid);
                return 0;
        }
        sk_expr **k = realloc(parent->kids, (parent->nkids + 1) * sizeof(*k));
        if (!k) {
                node_free(kid);
                return oom(p);
        }
        parent->kids = k;
        k[parent->nkids++] = kid;
        return 0;
}

static int add_val(struct parser *p, sk_expr *e)
{
        char **v = realloc(e->vals, (e->nvals + 1) * sizeof(*v));
        if (!v)
                return oom(p);
        e->vals = v;
        v[e->nvals++] = take_ptr(&p->tok.text);
        return advance(p);
}

static int expect_value(struct parser *p, sk_expr *e, const char *after)
{
        if (p->tok.type != T_WORD && p->tok.type != T_STR)
                return fail(p, p->tok.start, "expected a value after %s, found %s", after,
                            describe(&p->tok));
        return add_val(p, e);
}

/* Adds a term's worst-case cost (sk_expr_cost) and refuses the expression once the sum
 * passes the bound: the term at `at` is the one named. */
static int charge(struct parser *p, uint64_t cost, size_t at)
{
        p->cost += cost;
        if (p->cost > SK_EXPR_MAX_COST)
                return fail(p, at,
                            "label expression too costly to match (its regexes are too large in "
                            "all: at most %d steps per label set, see docs/security.md)",
                            SK_EXPR_MAX_COST);
        return 0;
}

static int parse_regex(struct parser *p, sk_expr *e)
{
        size_t at = p->tok.start;
        int r = expect_value(p, e, "'~'");
        if (r < 0)
                return r;
        char msg[160];
        r = sk_lre_compile(e->vals[0], SK_EXPR_REGEX_MAX, &e->re, msg, sizeof(msg));
        if (r == -ENOMEM)
                return oom(p);
        if (r < 0)
                return fail(p, at, "invalid regex: %s", msg);
        return charge(
            p, (uint64_t)SK_LRE_STEPS_PER_BYTE * sk_lre_size(e->re) * (SK_EXPR_VALUE_MAX + 1), at);
}

static int parse_list(struct parser *p, sk_expr *e, const char *op)
{
        if (p->tok.type != T_LP)
                return fail(p, p->tok.start, "expected '(' after '%s', found %s", op,
                            describe(&p->tok));
        size_t open = p->tok.start;
        int r = advance(p);
        if (r < 0)
                return r;
        if (p->tok.type == T_RP)
                return fail(p, p->tok.start, "empty list after '%s'", op);
        for (;;) {
                if (p->tok.type == T_END)
                        return fail(p, open, "unclosed '('");
                r = expect_value(p, e, e->nvals ? "','" : "'('");
                if (r < 0)
                        return r;
                if (p->tok.type == T_RP)
                        return advance(p);
                if (p->tok.type == T_END)
                        return fail(p, open, "unclosed '('");
                if (p->tok.type != T_COMMA)
                        return fail(p, p->tok.start, "expected ',' or ')' in the list, found %s",
                                    describe(&p->tok));
                r = advance(p);
                if (r < 0)
                        return r;
        }
}

static int parse_term(struct parser *p, sk_expr **out)
{
        if (p->tok.type != T_WORD || is_keyword(p->tok.text))
                return fail(p, p->tok.start, "expected a label key, 'not' or '(', found %s",
                            describe(&p->tok));
        for (const char *c = p->tok.text; *c; c++)
                if (!key_char(*c))
                        return fail(p, p->tok.start + (size_t)(c - p->tok.text),
                                    "a label key may hold letters, digits and '_./-' only");
        sk_expr *e = node_new(E_HAS);
        if (!e)
                return oom(p);
        size_t at = p->tok.start;
        e->key = take_ptr(&p->tok.text);
        int r = advance(p);
        if (r == 0) {
                switch (p->tok.type) {
                case T_EQ:
                case T_NE:
                        e->op = p->tok.type == T_EQ ? E_EQ : E_NE;
                        r = advance(p);
                        if (r == 0)
                                r = expect_value(p, e, e->op == E_EQ ? "'='" : "'!='");
                        break;
                case T_TILDE:
                        e->op = E_RE;
                        r = advance_regex(p);
                        if (r == 0)
                                r = parse_regex(p, e);
                        break;
                case T_WORD:
                        if (tok_is(&p->tok, "in") || tok_is(&p->tok, "notin")) {
                                e->op = tok_is(&p->tok, "in") ? E_IN : E_NOTIN;
                                r = advance(p);
                                if (r == 0)
                                        r = parse_list(p, e, e->op == E_IN ? "in" : "notin");
                        }
                        break;
                default:
                        break;
                }
        }
        /* the visit and the key's lookup; a compared value costs its length (regexes
         * are charged by parse_regex) */
        uint64_t cost = 1 + strlen(e->key);
        for (size_t i = 0; e->op != E_RE && i < e->nvals; i++)
                cost += strlen(e->vals[i]) + 1;
        if (r == 0)
                r = charge(p, cost, at);
        if (r < 0) {
                node_free(e);
                return r;
        }
        *out = e;
        return 0;
}

static int parse_or(struct parser *p, sk_expr **out);

static int parse_unary(struct parser *p, sk_expr **out)
{
        bool nests = tok_is(&p->tok, "not") || p->tok.type == T_LP;
        if (nests && ++p->depth > MAX_DEPTH)
                return fail(p, p->tok.start, "expression nested deeper than %d levels", MAX_DEPTH);
        int r;
        if (tok_is(&p->tok, "not")) {
                r = charge(p, 1, p->tok.start);
                if (r == 0)
                        r = advance(p);
                sk_expr *kid = NULL;
                if (r == 0)
                        r = parse_unary(p, &kid);
                if (r < 0)
                        return r;
                sk_expr *e = node_new(E_NOT);
                if (!e) {
                        node_free(kid);
                        return oom(p);
                }
                r = add_kid(p, e, kid);
                if (r < 0) {
                        node_free(e);
                        return r;
                }
                *out = e;
        } else if (p->tok.type == T_LP) {
                size_t open = p->tok.start;
                r = advance(p);
                if (r == 0)
                        r = parse_or(p, out);
                if (r < 0)
                        return r;
                if (p->tok.type != T_RP) {
                        node_free(*out);
                        *out = NULL;
                        if (p->tok.type == T_END)
                                return fail(p, open, "unclosed '('");
                        return fail(p, p->tok.start, "expected ')', 'and' or 'or', found %s",
                                    describe(&p->tok));
                }
                r = advance(p);
                if (r < 0) {
                        node_free(*out);
                        *out = NULL;
                        return r;
                }
        } else {
                r = parse_term(p, out);
                if (r < 0)
                        return r;
        }
        if (nests)
                p->depth--;
        return 0;
}

static int parse_binary(struct parser *p, sk_expr **out, enum op op)
{
        const char *word = op == E_OR ? "or" : "and";
        sk_expr *first = NULL;
        int r = op == E_OR ? parse_binary(p, &first, E_AND) : parse_unary(p, &first);
        if (r < 0)
                return r;
        if (!tok_is(&p->tok, word)) {
                *out = first;
                return 0;
        }
        sk_expr *e = node_new(op);
        if (!e) {
                node_free(first);
                return oom(p);
        }
        r = add_kid(p, e, first);
        if (r == 0)
                r = charge(p, 1, p->tok.start);
        while (r == 0 && tok_is(&p->tok, word)) {
                sk_expr *kid = NULL;
                r = advance(p);
                if (r == 0)
                        r = op == E_OR ? parse_binary(p, &kid, E_AND) : parse_unary(p, &kid);
                if (r == 0)
                        r = add_kid(p, e, kid);
        }
        if (r < 0) {
                node_free(e);
                return r;
        }
        *out = e;
        return 0;
}

static int parse_or(struct parser *p, sk_expr **out)
{
        return parse_binary(p, out, E_OR);
}

int sk_expr_parse(const char *text, sk_expr **out, sk_error **err)
{
        *out = NULL;
        struct parser p = {.s = text, .err = err};
        size_t len = strlen(text);
        if (len > MAX_LEN)
                return fail(&p, MAX_LEN, "label expression longer than %d bytes", MAX_LEN);
        int r = advance(&p);
        if (r == 0 && p.tok.type == T_END)
                r = fail(&p, p.tok.start, "empty label expression");
        sk_expr *e = NULL;
        if (r == 0)
                r = parse_or(&p, &e);
        if (r == 0 && p.tok.type != T_END) {
                if (p.tok.type == T_RP)
                        r = fail(&p, p.tok.start, "unexpected ')' without a matching '('");
                else
                        r = fail(&p, p.tok.start,
                                 "expected 'and', 'or' or the end of the expression, found %s",
                                 describe(&p.tok));
        }
        free(p.tok.text);
        if (r < 0) {
                node_free(e);
                return r;
        }
        e->cost = p.cost;
        e->refs = 1;
        *out = e;
        return 0;
}

uint64_t sk_expr_cost(const sk_expr *e)
{
        return e ? e->cost : 0;
}

/* ---- the cache ---- */

/* Compiled expressions by text, shared: the tower matches the same deployments' and
 * tenants' expressions on every refresh. Bounded in entries and in bytes (a costly
 * expression holds up to about a megabyte of programs and DFA tables); the least recently
 * used goes first. */
static struct cached {
        char *text;
        uint64_t hash;
        size_t bytes;
        sk_expr *e;
        uint64_t used;
} cache[CACHE_MAX];
static size_t cache_bytes;
static uint64_t cache_clock;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t text_hash(const char *text)
{
        uint64_t h = 1469598103934665603ULL;
        for (; *text; text++)
                h = (h ^ (unsigned char)*text) * 1099511628211ULL;
        return h;
}

static size_t expr_bytes(const sk_expr *e)
{
        size_t n = sizeof(*e) + (e->key ? strlen(e->key) + 1 : 0) + e->nvals * sizeof(char *) +
                   e->nkids * sizeof(sk_expr *) + (e->re ? sk_lre_bytes(e->re) : 0);
        for (size_t i = 0; i < e->nvals; i++)
                n += strlen(e->vals[i]) + 1;
        for (size_t i = 0; i < e->nkids; i++)
                n += expr_bytes(e->kids[i]);
        return n;
}

static struct cached *cache_find(const char *text, uint64_t hash)
{
        for (size_t i = 0; i < CACHE_MAX; i++)
                if (cache[i].text && cache[i].hash == hash && strcmp(cache[i].text, text) == 0)
                        return &cache[i];
        return NULL;
}

static void cache_drop(struct cached *c)
{
        cache_bytes -= c->bytes;
        free(c->text);
        sk_expr_free(c->e);
        memset(c, 0, sizeof(*c));
}

static void cache_put(const char *text, uint64_t hash, sk_expr *e)
{
        size_t bytes = expr_bytes(e) + strlen(text) + 1;
        if (cache_find(text, hash) || bytes > CACHE_BYTES / 8)
                return; /* parsed meanwhile by another thread; or too big to keep */
        char *copy = strdup(text);
        if (!copy)
                return;
        size_t slot;
        for (;;) { /* a free slot and room for the bytes, dropping the least recently used */
                size_t free_slot = CACHE_MAX, victim = CACHE_MAX;
                for (size_t i = 0; i < CACHE_MAX; i++) {
                        if (!cache[i].text)
                                free_slot = free_slot < CACHE_MAX ? free_slot : i;
                        else if (victim == CACHE_MAX || cache[i].used < cache[victim].used)
                                victim = i;
                }
                if (free_slot < CACHE_MAX && cache_bytes + bytes <= CACHE_BYTES) {
                        slot = free_slot;
                        break;
                }
                cache_drop(&cache[victim]); /* full, or bytes held: something to drop */
        }
        __atomic_add_fetch(&e->refs, 1, __ATOMIC_ACQ_REL);
        cache[slot] = (struct cached){
            .text = copy, .hash = hash, .bytes = bytes, .e = e, .used = ++cache_clock};
        cache_bytes += bytes;
}

int sk_expr_parse_cached(const char *text, sk_expr **out, sk_error **err)
{
        uint64_t hash = text_hash(text);
        pthread_mutex_lock(&cache_lock);
        struct cached *c = cache_find(text, hash);
        if (c) {
                c->used = ++cache_clock;
                __atomic_add_fetch(&c->e->refs, 1, __ATOMIC_ACQ_REL);
                *out = c->e;
        }
        pthread_mutex_unlock(&cache_lock);
        if (c)
                return 0;
        int r = sk_expr_parse(text, out, err);
        if (r < 0)
                return r;
        pthread_mutex_lock(&cache_lock);
        cache_put(text, hash, *out);
        pthread_mutex_unlock(&cache_lock);
        return 0;
}

void sk_expr_cache_clear(void)
{
        pthread_mutex_lock(&cache_lock);
        for (size_t i = 0; i < CACHE_MAX; i++)
                if (cache[i].text)
                        cache_drop(&cache[i]);
        pthread_mutex_unlock(&cache_lock);
}

/* ---- matching ---- */

/* strcmp, counting the bytes it looks at. */
static bool same(const char *a, const char *b, uint64_t *steps)
{
        size_t i = 0;
        while (a[i] && a[i] == b[i])
                i++;
        *steps += i + 1;
        return a[i] == b[i];
}

static bool in_list(const sk_expr *e, const char *v, uint64_t *steps)
{
        for (size_t i = 0; i < e->nvals; i++)
                if (same(v, e->vals[i], steps))
                        return true;
        return false;
}

static bool match(const sk_expr *e, const json_t *labels, uint64_t *steps)
{
        const char *v = NULL;
        ++*steps;
        if (e->key) {
                const json_t *j = json_object_get(labels, e->key);
                v = json_is_string(j) ? json_string_value(j) : NULL;
                *steps += strlen(e->key);
        }
        switch (e->op) {
        case E_OR:
                for (size_t i = 0; i < e->nkids; i++)
                        if (match(e->kids[i], labels, steps))
                                return true;
                return false;
        case E_AND:
                for (size_t i = 0; i < e->nkids; i++)
                        if (!match(e->kids[i], labels, steps))
                                return false;
                return true;
        case E_NOT:
                return !match(e->kids[0], labels, steps);
        case E_HAS:
                return v != NULL;
        case E_EQ:
                return v && same(v, e->vals[0], steps);
        case E_NE:
                return !(v && same(v, e->vals[0], steps));
        case E_RE:
                return v && sk_lre_match(e->re, v, strlen(v), steps);
        case E_IN:
                return v && in_list(e, v, steps);
        case E_NOTIN:
                return !(v && in_list(e, v, steps));
        }
        return false;
}

bool sk_expr_match_counted(const sk_expr *e, const json_t *labels, uint64_t *steps)
{
        uint64_t n = 0;
        bool r = e && match(e, labels, &n);
        if (steps)
                *steps += n;
        return r;
}

bool sk_expr_match(const sk_expr *e, const json_t *labels)
{
        return sk_expr_match_counted(e, labels, NULL);
}

/* ---- formatting ---- */

static void put_value(FILE *f, const char *v)
{
        bool bare = *v && !is_keyword(v);
        for (const char *c = v; *c && bare; c++)
                bare = word_char(*c);
        if (bare) {
                fputs(v, f);
                return;
        }
        fputc('"', f);
        for (const char *c = v; *c; c++) {
                if (*c == '"' || (*c == '\\' && (c[1] == '\\' || c[1] == '"' || !c[1])))
                        fputc('\\', f);
                fputc(*c, f);
        }
        fputc('"', f);
}

static void put_expr(FILE *f, const sk_expr *e)
{
        static const char *ops[] = {[E_EQ] = " = ",
                                    [E_NE] = " != ",
                                    [E_RE] = " ~ ",
                                    [E_IN] = " in (",
                                    [E_NOTIN] = " notin ("};
        switch (e->op) {
        case E_OR:
        case E_AND:
                for (size_t i = 0; i < e->nkids; i++) {
                        bool paren = e->op == E_AND && e->kids[i]->op == E_OR;
                        if (i)
                                fputs(e->op == E_OR ? " or " : " and ", f);
                        fputs(paren ? "(" : "", f);
                        put_expr(f, e->kids[i]);
                        fputs(paren ? ")" : "", f);
                }
                return;
        case E_NOT: {
                bool paren = e->kids[0]->op == E_AND || e->kids[0]->op == E_OR;
                fputs(paren ? "not (" : "not ", f);
                put_expr(f, e->kids[0]);
                fputs(paren ? ")" : "", f);
                return;
        }
        case E_HAS:
                fputs(e->key, f);
                return;
        default:
                fputs(e->key, f);
                fputs(ops[e->op], f);
                for (size_t i = 0; i < e->nvals; i++) {
                        if (i)
                                fputs(", ", f);
                        put_value(f, e->vals[i]);
                }
                if (e->op == E_IN || e->op == E_NOTIN)
                        fputc(')', f);
        }
}

char *sk_expr_format(const sk_expr *e)
{
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        if (!f)
                return NULL;
        if (e)
                put_expr(f, e);
        if (fclose(f) != 0) {
                free(out);
                return NULL;
        }
        return out;
}

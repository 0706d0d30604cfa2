/* A regex is parsed to a tree, its size (in instructions) checked before any code is
 * emitted, then compiled to a Thompson NFA and simulated a byte at a time over the set of
 * live states (Pike's method without captures): no backtracking, so the time is linear in
 * the value whatever the pattern, and counted repetitions cost their size up front. When
 * the subset construction stays small, the sets are computed once at compile time (the
 * DFA at the end of this file) and a match is one table lookup a byte. */
#include "model/labelexpr_re.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Groups and stacked repetitions nested deeper than this are refused (keeps recursion
 * bounded; glibc has no such limit, but no sane label regex comes near). */
#define MAX_NEST 64

enum nt { N_EMPTY, N_CLASS, N_ASSERT, N_CAT, N_ALT, N_REP };

enum assert_kind { A_BEGIN, A_END, A_WORD_B, A_NOT_WORD_B, A_WORD_START, A_WORD_END };

struct node {
        uint8_t type;
        uint8_t kind;  /* N_ASSERT */
        uint32_t cls;  /* N_CLASS */
        int min, max;  /* N_REP; max < 0: unbounded */
        int kid;       /* N_REP: the operand; N_CAT, N_ALT: the first child */
        int next;      /* the next sibling, or -1 */
        uint64_t size; /* instructions emitted, set by size_of */
};

struct cls {
        uint64_t b[4];
};

enum op { I_CLASS, I_SPLIT, I_JMP, I_ASSERT, I_MATCH };

struct inst {
        uint8_t op;
        uint8_t kind;  /* I_ASSERT */
        uint32_t cls;  /* I_CLASS */
        uint32_t x, y; /* I_SPLIT: both; I_JMP: x */
};

/* The DFA built from the program when it is small (labelexpr_dfa below): one table
 * lookup per byte instead of a pass over the live states. */
struct dfa {
        uint8_t byte_class[256]; /* bytes no class of the program tells apart share one */
        size_t nbc;
        uint16_t *next; /* [state * nbc + class]; state 0 is the dead one */
        bool *accept;   /* [state]: the value may end here */
        size_t nstates;
        uint16_t start;
};

struct sk_lre {
        struct inst *prog;
        size_t n;
        struct cls *cls;
        size_t ncls;
        struct dfa *dfa; /* NULL: simulate the NFA */
};

struct cc {
        const char *s;
        size_t pos;
        int nest;
        struct node *nodes;
        size_t nn, ncap;
        struct cls *cls;
        size_t ncls, ccap;
        struct inst *prog;
        size_t n;
        char *msg;
        size_t msglen;
        bool oom;
};

static int bad(struct cc *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(struct cc *c, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        if (c->msglen)
                vsnprintf(c->msg, c->msglen, fmt, ap);
        va_end(ap);
        return -1;
}

static int node_new(struct cc *c, enum nt type)
{
        if (c->nn == c->ncap) {
                size_t cap = c->ncap ? 2 * c->ncap : 32;
                struct node *n = realloc(c->nodes, cap * sizeof(*n));
                if (!n) {
                        c->oom = true;
                        return bad(c, "out of memory");
                }
                c->nodes = n;
                c->ncap = cap;
        }
        c->nodes[c->nn] = (struct node){.type = type, .kid = -1, .next = -1};
        return (int)c->nn++;
}

/* ---- classes ---- */

static void cls_set(struct cls *k, unsigned ch)
{
        k->b[ch >> 6] |= UINT64_C(1) << (ch & 63);
}

static bool cls_has(const struct cls *k, unsigned ch)
{
        return k->b[ch >> 6] >> (ch & 63) & 1;
}

static bool is_word(unsigned ch)
{
        return isalnum((int)ch) || ch == '_';
}

/* A class node; equal sets share one entry. */
static int class_node(struct cc *c, const struct cls *k)
{
        size_t i = 0;
        while (i < c->ncls && memcmp(&c->cls[i], k, sizeof(*k)))
                i++;
        if (i == c->ncls) {
                if (c->ncls == c->ccap) {
                        size_t cap = c->ccap ? 2 * c->ccap : 8;
                        struct cls *n = realloc(c->cls, cap * sizeof(*n));
                        if (!n) {
                                c->oom = true;
                                return bad(c, "out of memory");
                        }
                        c->cls = n;
                        c->ccap = cap;
                }
                c->cls[c->ncls++] = *k;
        }
        int n = node_new(c, N_CLASS);
        if (n >= 0)
                c->nodes[n].cls = (uint32_t)i;
        return n;
}

static int char_node(struct cc *c, unsigned ch)
{
        struct cls k = {0};
        cls_set(&k, ch);
        return class_node(c, &k);
}

static int assert_node(struct cc *c, enum assert_kind kind)
{
        int n = node_new(c, N_ASSERT);
        if (n >= 0)
                c->nodes[n].kind = (uint8_t)kind;
        return n;
}

static const struct {
        const char *name;
        int (*is)(int);
} named[] = {
    {"alpha", isalpha},   {"upper", isupper}, {"lower", islower}, {"digit", isdigit},
    {"xdigit", isxdigit}, {"space", isspace}, {"print", isprint}, {"punct", ispunct},
    {"graph", isgraph},   {"cntrl", iscntrl}, {"blank", isblank}, {"alnum", isalnum},
};

static void add_named(struct cls *k, int (*is)(int))
{
        for (unsigned ch = 1; ch < 256; ch++)
                if (is((int)ch))
                        cls_set(k, ch);
}

/* "[:name:]", "[.x.]" or "[=x=]" after the '[' at c->pos; *single the byte of the last
 * two (-1 for a named class, added to k). */
static int bracket_symbol(struct cc *c, struct cls *k, int *single)
{
        char delim = c->s[c->pos + 1];
        size_t start = c->pos + 2, i = start;
        while (c->s[i] && !(c->s[i] == delim && c->s[i + 1] == ']' && i > start))
                i++;
        if (!c->s[i] || i - start > 32)
                return bad(c, "unmatched [, [^, [:, [., or [=");
        size_t len = i - start;
        c->pos = i + 2;
        if (delim != ':') {
                if (len != 1)
                        return bad(c, "invalid collation character");
                *single = (unsigned char)c->s[start];
                return 0;
        }
        for (size_t j = 0; j < sizeof(named) / sizeof(named[0]); j++)
                if (strlen(named[j].name) == len && !memcmp(named[j].name, c->s + start, len)) {
                        add_named(k, named[j].is);
                        *single = -1;
                        return 0;
                }
        return bad(c, "invalid character class name");
}

/* One element of a bracket expression: a byte (returned) or a named class (-1). */
static int bracket_elem(struct cc *c, struct cls *k, int *out)
{
        const char *s = c->s;
        if (s[c->pos] == '[' &&
            (s[c->pos + 1] == ':' || s[c->pos + 1] == '.' || s[c->pos + 1] == '='))
                return bracket_symbol(c, k, out);
        *out = (unsigned char)s[c->pos++];
        return 0;
}

static int bracket(struct cc *c)
{
        const char *s = c->s;
        struct cls k = {0};
        c->pos++; /* '[' */
        bool negate = s[c->pos] == '^';
        if (negate)
                c->pos++;
        bool first = true;
        for (;;) {
                if (!s[c->pos])
                        return bad(c, "unmatched [, [^, [:, [., or [=");
                if (s[c->pos] == ']' && !first)
                        break;
                if (s[c->pos] == '-' && !first && s[c->pos + 1] != ']')
                        return bad(c, "invalid range end");
                int lo;
                if (bracket_elem(c, &k, &lo) < 0)
                        return -1;
                first = false;
                if (s[c->pos] != '-' || s[c->pos + 1] == ']' || !s[c->pos + 1]) {
                        if (lo >= 0)
                                cls_set(&k, (unsigned)lo);
                        continue;
                }
                c->pos++; /* '-' */
                int hi;
                if (lo < 0 || bracket_elem(c, &k, &hi) < 0 || hi < 0 || hi < lo)
                        return bad(c, "invalid range end");
                for (int ch = lo; ch <= hi; ch++)
                        cls_set(&k, (unsigned)ch);
        }
        c->pos++; /* ']' */
        if (negate)
                for (int i = 0; i < 4; i++)
                        k.b[i] = ~k.b[i];
        k.b[0] &= ~UINT64_C(1); /* a value holds no NUL */
        return class_node(c, &k);
}

/* ---- the tree ---- */

static int parse_alt(struct cc *c);

static int escape(struct cc *c)
{
        unsigned char e = (unsigned char)c->s[c->pos + 1];
        if (!e)
                return bad(c, "trailing backslash");
        c->pos += 2;
        if (e >= '1' && e <= '9')
                return bad(c, "back-references are not supported");
        struct cls k = {0};
        switch (e) {
        case 'w':
        case 'W':
        case 's':
        case 'S':
                for (unsigned ch = 1; ch < 256; ch++)
                        if ((e == 'w' || e == 'W' ? is_word(ch) : isspace((int)ch) != 0) ==
                            (e == 'w' || e == 's'))
                                cls_set(&k, ch);
                return class_node(c, &k);
        case 'b':
                return assert_node(c, A_WORD_B);
        case 'B':
                return assert_node(c, A_NOT_WORD_B);
        case '<':
                return assert_node(c, A_WORD_START);
        case '>':
                return assert_node(c, A_WORD_END);
        case '`':
                return assert_node(c, A_BEGIN);
        case '\'':
                return assert_node(c, A_END);
        default:
                return char_node(c, e);
        }
}

static int atom(struct cc *c)
{
        char ch = c->s[c->pos];
        switch (ch) {
        case '(': {
                if (++c->nest > MAX_NEST)
                        return bad(c, "regex nested deeper than %d", MAX_NEST);
                c->pos++;
                int inner = parse_alt(c);
                if (inner < 0)
                        return -1;
                if (c->s[c->pos] != ')')
                        return bad(c, "unmatched ( or \\(");
                c->pos++;
                c->nest--;
                return inner;
        }
        case '*':
        case '+':
        case '?':
        case '{':
                return bad(c, "invalid preceding regular expression");
        case '.': {
                struct cls k = {{~UINT64_C(1), ~UINT64_C(0), ~UINT64_C(0), ~UINT64_C(0)}};
                c->pos++;
                return class_node(c, &k);
        }
        case '[':
                return bracket(c);
        case '^':
        case '$':
                c->pos++;
                return assert_node(c, ch == '^' ? A_BEGIN : A_END);
        case '\\':
                return escape(c);
        default:
                c->pos++;
                return char_node(c, (unsigned char)ch);
        }
}

/* Digits at c->pos, saturated; -1 when there are none. */
static int number(struct cc *c)
{
        if (!isdigit((unsigned char)c->s[c->pos]))
                return -1;
        long n = 0;
        while (isdigit((unsigned char)c->s[c->pos])) {
                n = n * 10 + (c->s[c->pos++] - '0');
                if (n > 100000)
                        n = 100000;
        }
        return (int)n;
}

/* "{n}", "{n,}", "{n,m}", "{,m}" at c->pos. */
static int interval(struct cc *c, int *min, int *max)
{
        c->pos++; /* '{' */
        int lo = number(c), hi;
        if (c->s[c->pos] == '}') {
                hi = lo;
        } else if (c->s[c->pos] == ',') {
                c->pos++;
                hi = number(c);
                if (lo < 0)
                        lo = 0;
        } else {
                return bad(c, c->s[c->pos] ? "invalid content of \\{\\}" : "unmatched \\{");
        }
        if (lo < 0 || c->s[c->pos] != '}' || (hi >= 0 && hi < lo))
                return bad(c, c->s[c->pos] ? "invalid content of \\{\\}" : "unmatched \\{");
        c->pos++;
        *min = lo;
        *max = hi;
        return 0;
}

static int repeat(struct cc *c)
{
        int n = atom(c);
        if (n >= 0 && c->nodes[n].type == N_ASSERT && strchr("*+?{", c->s[c->pos]) && c->s[c->pos])
                return bad(c, "invalid preceding regular expression");
        int stacked = 0;
        while (n >= 0 && c->s[c->pos] && strchr("*+?{", c->s[c->pos])) {
                int min = 0, max = -1;
                char q = c->s[c->pos];
                if (q == '{') {
                        if (interval(c, &min, &max) < 0)
                                return -1;
                } else {
                        c->pos++;
                        min = q == '+';
                        max = q == '?' ? 1 : -1;
                }
                if (++stacked > MAX_NEST)
                        return bad(c, "regex nested deeper than %d", MAX_NEST);
                int r = node_new(c, N_REP);
                if (r < 0)
                        return -1;
                c->nodes[r].kid = n;
                c->nodes[r].min = min;
                c->nodes[r].max = max;
                n = r;
        }
        return n;
}

/* A branch ends at the end, at '|', and at the ')' of an open group (a ')' without one is
 * an ordinary byte, as in glibc). */
static bool branch_ends(const struct cc *c)
{
        char ch = c->s[c->pos];
        return !ch || ch == '|' || (ch == ')' && c->nest > 0);
}

/* A list node: N_CAT of repetitions up to the branch's end, or N_ALT of branches. */
static int list(struct cc *c, enum nt type, int (*item)(struct cc *))
{
        int head = node_new(c, type), last = -1;
        if (head < 0)
                return -1;
        for (;;) {
                int k = item(c);
                if (k < 0)
                        return -1;
                if (last < 0)
                        c->nodes[head].kid = k;
                else
                        c->nodes[last].next = k;
                last = k;
                if (type == N_CAT ? branch_ends(c) : c->s[c->pos] != '|')
                        return head;
                if (type == N_ALT)
                        c->pos++;
        }
}

static int parse_cat(struct cc *c)
{
        return branch_ends(c) ? node_new(c, N_EMPTY) : list(c, N_CAT, repeat);
}

static int parse_alt(struct cc *c)
{
        return list(c, N_ALT, parse_cat);
}

/* ---- size and code ---- */

static uint64_t sat_add(uint64_t a, uint64_t b)
{
        return a + b < a ? UINT64_MAX : a + b;
}

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
        return b && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

static uint64_t size_of(struct cc *c, int n);

static uint64_t measure(struct cc *c, int n)
{
        const struct node *d = &c->nodes[n];
        uint64_t sum = 0;
        switch (d->type) {
        case N_EMPTY:
                return 0;
        case N_CLASS:
        case N_ASSERT:
                return 1;
        case N_CAT:
        case N_ALT:
                for (int k = d->kid; k >= 0; k = c->nodes[k].next)
                        sum = sat_add(sat_add(sum, size_of(c, k)), d->type == N_ALT ? 2 : 0);
                return d->type == N_ALT ? sum - 2 : sum; /* the last branch needs neither */
        case N_REP: {
                uint64_t s = size_of(c, d->kid);
                if (d->max < 0)
                        return d->min ? sat_add(sat_mul(s, (uint64_t)d->min), 1) : sat_add(s, 2);
                return sat_add(sat_mul(s, (uint64_t)d->min),
                               sat_mul(sat_add(s, 1), (uint64_t)(d->max - d->min)));
        }
        }
        return 0;
}

/* Instructions emit() writes for node n (saturating), kept in the node: emit() skips what
 * writes nothing, or ((){99999}){99999} would loop 10^10 times for no instruction. */
static uint64_t size_of(struct cc *c, int n)
{
        uint64_t size = measure(c, n);
        c->nodes[n].size = size;
        return size;
}

static uint32_t put(struct cc *c, struct inst in)
{
        c->prog[c->n] = in;
        return (uint32_t)c->n++;
}

static void emit(struct cc *c, int n)
{
        const struct node *d = &c->nodes[n];
        if (!d->size)
                return;
        switch (d->type) {
        case N_EMPTY:
                return;
        case N_CLASS:
                put(c, (struct inst){.op = I_CLASS, .cls = d->cls});
                return;
        case N_ASSERT:
                put(c, (struct inst){.op = I_ASSERT, .kind = d->kind});
                return;
        case N_CAT:
                for (int k = d->kid; k >= 0; k = c->nodes[k].next)
                        emit(c, k);
                return;
        case N_ALT: {
                /* SPLIT next, L2; branch; JMP end; L2: ...; the JMPs chained through x
                 * (plus one; 0 ends the chain) until the end is known */
                uint32_t chain = 0;
                for (int k = d->kid; k >= 0; k = c->nodes[k].next) {
                        if (c->nodes[k].next < 0) {
                                emit(c, k);
                                break;
                        }
                        uint32_t split = put(c, (struct inst){.op = I_SPLIT});
                        c->prog[split].x = split + 1;
                        emit(c, k);
                        chain = put(c, (struct inst){.op = I_JMP, .x = chain}) + 1;
                        c->prog[split].y = (uint32_t)c->n;
                }
                while (chain) {
                        uint32_t j = chain - 1;
                        chain = c->prog[j].x;
                        c->prog[j].x = (uint32_t)c->n;
                }
                return;
        }
        case N_REP:
                for (int i = 0; i < d->min - (d->max < 0 && d->min > 0); i++)
                        emit(c, d->kid);
                if (d->max < 0 && d->min > 0) { /* L: e; SPLIT L, next */
                        uint32_t l = (uint32_t)c->n;
                        emit(c, d->kid);
                        uint32_t split = put(c, (struct inst){.op = I_SPLIT, .x = l});
                        c->prog[split].y = split + 1;
                } else if (d->max < 0) { /* L: SPLIT L+1, end; e; JMP L */
                        uint32_t split = put(c, (struct inst){.op = I_SPLIT});
                        c->prog[split].x = split + 1;
                        emit(c, d->kid);
                        put(c, (struct inst){.op = I_JMP, .x = split});
                        c->prog[split].y = (uint32_t)c->n;
                } else {
                        for (int i = d->min; i < d->max; i++) { /* SPLIT next, end; e */
                                uint32_t split = put(c, (struct inst){.op = I_SPLIT});
                                c->prog[split].x = split + 1;
                                emit(c, d->kid);
                                c->prog[split].y = (uint32_t)c->n;
                        }
                }
                return;
        }
}

static struct dfa *build_dfa(const sk_lre *re);

void sk_lre_free(sk_lre *re)
{
        if (!re)
                return;
        if (re->dfa) {
                free(re->dfa->next);
                free(re->dfa->accept);
                free(re->dfa);
        }
        free(re->prog);
        free(re->cls);
        free(re);
}

int sk_lre_compile(const char *pattern, size_t max_size, sk_lre **out, char *msg, size_t msglen)
{
        *out = NULL;
        struct cc c = {.s = pattern, .msg = msg, .msglen = msglen};
        int root = parse_alt(&c);
        int r = -EINVAL;
        uint64_t size = root >= 0 ? size_of(&c, root) : 0;
        if (root >= 0 && size + 1 > max_size)
                root =
                    bad(&c, "regex too large: %s%llu instructions, at most %zu",
                        size == UINT64_MAX ? "over " : "",
                        (unsigned long long)(size == UINT64_MAX ? max_size : size + 1), max_size);
        sk_lre *re = root >= 0 ? calloc(1, sizeof(*re)) : NULL;
        if (re)
                c.prog = calloc(size + 1, sizeof(*c.prog));
        if (root >= 0 && (!re || !c.prog)) {
                c.oom = true;
                bad(&c, "out of memory");
        } else if (root >= 0) {
                emit(&c, root);
                put(&c, (struct inst){.op = I_MATCH});
                *re = (sk_lre){.prog = c.prog, .n = c.n, .cls = c.cls, .ncls = c.ncls};
                re->dfa = build_dfa(re); /* NULL is fine: the NFA runs */
                c.prog = NULL;
                c.cls = NULL;
                *out = re;
                re = NULL;
                r = 0;
        }
        if (c.oom)
                r = -ENOMEM;
        free(re);
        free(c.prog);
        free(c.cls);
        free(c.nodes);
        return r;
}

size_t sk_lre_size(const sk_lre *re)
{
        return re->n;
}

size_t sk_lre_bytes(const sk_lre *re)
{
        size_t n = sizeof(*re) + re->n * sizeof(*re->prog) + re->ncls * sizeof(*re->cls);
        if (re->dfa)
                n += sizeof(*re->dfa) +
                     re->dfa->nstates * (re->dfa->nbc * sizeof(*re->dfa->next) + sizeof(bool));
        return n;
}

/* ---- matching ---- */

/* How a closure decides assertions: on a value, or for building the DFA (where `^` holds
 * only at position 0 and `$` waits in the set until the value ends). */
enum mode { M_VALUE, M_DFA_STEP, M_DFA_END };

struct sim {
        const sk_lre *re;
        const unsigned char *s;
        size_t len;
        enum mode mode;
        uint32_t *mark;  /* per instruction: the generation it was last added in */
        uint32_t *stack; /* the closure's work list */
        uint64_t steps;
};

static bool holds(const struct sim *m, enum assert_kind kind, size_t at)
{
        if (m->mode != M_VALUE) /* no word assertions in a program with a DFA */
                return kind == A_BEGIN ? m->mode == M_DFA_STEP && at == 0 : kind == A_END;
        bool before = at > 0 && is_word(m->s[at - 1]);
        bool after = at < m->len && is_word(m->s[at]);
        switch (kind) {
        case A_BEGIN:
                return at == 0;
        case A_END:
                return at == m->len;
        case A_WORD_B:
                return before != after;
        case A_NOT_WORD_B:
                return before == after;
        case A_WORD_START:
                return !before && after;
        case A_WORD_END:
                return before && !after;
        }
        return false;
}

/* Adds pc and what it reaches without consuming a byte at position `at` to the list. */
static void closure(struct sim *m, uint32_t pc, size_t at, uint32_t gen, uint32_t *list, size_t *n)
{
        size_t sp = 0;
        m->stack[sp++] = pc;
        while (sp) {
                pc = m->stack[--sp];
                if (m->mark[pc] == gen)
                        continue;
                m->mark[pc] = gen;
                m->steps++;
                const struct inst *in = &m->re->prog[pc];
                switch (in->op) {
                case I_JMP:
                        m->stack[sp++] = in->x;
                        break;
                case I_SPLIT:
                        m->stack[sp++] = in->y;
                        m->stack[sp++] = in->x;
                        break;
                case I_ASSERT:
                        if (m->mode == M_DFA_STEP && in->kind == A_END)
                                list[(*n)++] = pc;
                        else if (holds(m, in->kind, at))
                                m->stack[sp++] = pc + 1;
                        break;
                case I_CLASS:
                case I_MATCH:
                        list[(*n)++] = pc;
                        break;
                }
        }
}

static bool dfa_match(const struct dfa *d, const unsigned char *s, size_t len, uint64_t *steps)
{
        uint16_t st = d->start;
        size_t at = 0;
        while (at < len && st)
                st = d->next[st * d->nbc + d->byte_class[s[at++]]];
        if (steps)
                *steps += at + 1;
        return st && d->accept[st];
}

bool sk_lre_match(const sk_lre *re, const char *s, size_t len, uint64_t *steps)
{
        if (re->dfa && len > 0) /* the empty value: `$^` needs both at once; the NFA knows */
                return dfa_match(re->dfa, (const unsigned char *)s, len, steps);
        return sk_lre_match_nfa(re, s, len, steps);
}

bool sk_lre_has_dfa(const sk_lre *re)
{
        return re->dfa != NULL;
}

bool sk_lre_match_nfa(const sk_lre *re, const char *s, size_t len, uint64_t *steps)
{
        /* small programs need no allocation: marks, the stack (a visit pushes at most two,
         * and each instruction is visited once per generation) and two lists */
        uint32_t local[5 * 256 + 1];
        size_t n = re->n;
        uint32_t *mem = n <= 256 ? local : malloc((5 * n + 1) * sizeof(uint32_t));
        if (!mem)
                return false;
        struct sim m = {.re = re, .s = (const unsigned char *)s, .len = len, .mark = mem};
        m.stack = mem + n;
        uint32_t *cur = mem + 3 * n + 1, *nxt = mem + 4 * n + 1;
        memset(m.mark, 0xff, n * sizeof(uint32_t));
        size_t nc = 0, nn;
        closure(&m, 0, 0, 0, cur, &nc);
        for (size_t at = 0; at < len && nc; at++) {
                nn = 0;
                for (size_t i = 0; i < nc; i++) {
                        const struct inst *in = &re->prog[cur[i]];
                        m.steps++;
                        if (in->op == I_CLASS && cls_has(&re->cls[in->cls], m.s[at]))
                                closure(&m, cur[i] + 1, at + 1, (uint32_t)(at + 1), nxt, &nn);
                }
                uint32_t *t = cur;
                cur = nxt;
                nxt = t;
                nc = nn;
        }
        bool matched = false;
        for (size_t i = 0; i < nc; i++)
                matched |= re->prog[cur[i]].op == I_MATCH;
        if (mem != local)
                free(mem);
        if (steps)
                *steps += m.steps;
        return matched;
}

/* ---- the DFA ---- */

/* States, and work per instruction, a DFA may take to build; past either, the NFA runs
 * instead. The work is half of one worst-case NFA match of a 256-byte value, so building
 * adds less than matching once could cost. */
#define DFA_MAX_STATES 256
#define DFA_BUDGET     256
#define DFA_SLOTS      (2 * DFA_MAX_STATES) /* the hash of states, a power of two */

struct builder {
        struct sim m;
        struct dfa *d;
        uint8_t rep[256]; /* a byte of each byte class */
        uint32_t *pool;   /* the states' sorted instruction lists, back to back */
        size_t pool_len, pool_cap;
        size_t off[DFA_MAX_STATES + 1]; /* state i: pool[off[i] .. off[i + 1]) */
        size_t nstates;
        uint16_t slot[DFA_SLOTS]; /* state + 1; 0 free */
        uint32_t gen;
};

/* Byte classes: start with one, split by every class of the program, renumber densely. */
static void byte_classes(const sk_lre *re, struct dfa *d, uint8_t rep[256])
{
        memset(d->byte_class, 0, sizeof(d->byte_class));
        size_t n = 1;
        for (size_t k = 0; k < re->ncls; k++) {
                int dense[512];
                for (int i = 0; i < 512; i++)
                        dense[i] = -1;
                int ids[256];
                for (unsigned b = 0; b < 256; b++)
                        ids[b] = d->byte_class[b] * 2 + cls_has(&re->cls[k], b);
                n = 0;
                for (unsigned b = 0; b < 256; b++) {
                        if (dense[ids[b]] < 0)
                                dense[ids[b]] = (int)n++;
                        d->byte_class[b] = (uint8_t)dense[ids[b]];
                }
        }
        d->nbc = n;
        for (int b = 255; b >= 0; b--)
                rep[d->byte_class[b]] = (uint8_t)b;
}

static int cmp_u32(const void *a, const void *b)
{
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
        return x < y ? -1 : x > y;
}

/* The state of this set of instructions, added when new; -1 past the limits. */
static int state_of(struct builder *b, uint32_t *list, size_t n)
{
        if (n)
                qsort(list, n, sizeof(*list), cmp_u32);
        for (size_t m = n; m; m >>= 1) /* sorting and hashing: n log n */
                b->m.steps += n;
        uint64_t h = 1469598103934665603ULL;
        for (size_t i = 0; i < n; i++)
                h = (h ^ list[i]) * 1099511628211ULL;
        size_t at = h & (DFA_SLOTS - 1);
        for (; b->slot[at]; at = (at + 1) & (DFA_SLOTS - 1)) {
                size_t s = b->slot[at] - 1;
                if (b->off[s + 1] - b->off[s] == n &&
                    (!n || !memcmp(b->pool + b->off[s], list, n * sizeof(*list))))
                        return (int)s;
        }
        if (b->nstates == DFA_MAX_STATES)
                return -1;
        if (b->pool_len + n + 1 > b->pool_cap) {
                size_t cap = 2 * (b->pool_len + n + 1);
                uint32_t *p = realloc(b->pool, cap * sizeof(*p));
                if (!p)
                        return -1;
                b->pool = p;
                b->pool_cap = cap;
        }
        if (n)
                memcpy(b->pool + b->pool_len, list, n * sizeof(*list));
        b->pool_len += n;
        b->slot[at] = (uint16_t)(b->nstates + 1);
        b->off[++b->nstates] = b->pool_len;
        return (int)b->nstates - 1;
}

/* The value may end in state s: it holds MATCH, or a waiting `$` that leads to it. */
static bool ends_well(struct builder *b, size_t s, uint32_t *list)
{
        const sk_lre *re = b->m.re;
        for (size_t i = b->off[s]; i < b->off[s + 1]; i++) {
                uint32_t pc = b->pool[i];
                if (re->prog[pc].op == I_MATCH)
                        return true;
                if (re->prog[pc].op != I_ASSERT)
                        continue;
                size_t n = 0;
                b->m.mode = M_DFA_END;
                closure(&b->m, pc, 1, ++b->gen, list, &n);
                b->m.mode = M_DFA_STEP;
                for (size_t j = 0; j < n; j++)
                        if (re->prog[list[j]].op == I_MATCH)
                                return true;
        }
        return false;
}

/* Fills every state's transitions, adding states as they appear. */
static bool explore(struct builder *b, uint32_t *list)
{
        const sk_lre *re = b->m.re;
        struct dfa *d = b->d;
        size_t rows = 1; /* the dead state's row, all zero, is never read */
        for (size_t s = 1; s < b->nstates; s++) {
                if (s == rows) {
                        rows = rows * 2 < DFA_MAX_STATES ? rows * 2 : DFA_MAX_STATES;
                        uint16_t *more = realloc(d->next, rows * d->nbc * sizeof(*more));
                        if (!more)
                                return false;
                        d->next = more;
                }
                for (size_t c = 0; c < d->nbc; c++) {
                        size_t n = 0;
                        uint32_t gen = ++b->gen;
                        b->m.steps += 1 + b->off[s + 1] - b->off[s];
                        for (size_t i = b->off[s]; i < b->off[s + 1]; i++) {
                                const struct inst *in = &re->prog[b->pool[i]];
                                if (in->op == I_CLASS && cls_has(&re->cls[in->cls], b->rep[c]))
                                        closure(&b->m, b->pool[i] + 1, 1, gen, list, &n);
                        }
                        int t = state_of(b, list, n);
                        if (t < 0 || b->m.steps > (uint64_t)DFA_BUDGET * re->n)
                                return false;
                        d->next[s * d->nbc + c] = (uint16_t)t;
                }
        }
        return true;
}

static struct dfa *build_dfa(const sk_lre *re)
{
        for (size_t i = 0; i < re->n; i++)
                if (re->prog[i].op == I_ASSERT && re->prog[i].kind != A_BEGIN &&
                    re->prog[i].kind != A_END)
                        return NULL; /* word assertions look at both sides: the NFA does */
        struct builder *b = calloc(1, sizeof(*b));
        uint32_t *mem = malloc((5 * re->n + 1) * sizeof(uint32_t));
        struct dfa *d = calloc(1, sizeof(*d));
        bool ok = b && mem && d;
        if (ok) {
                b->m =
                    (struct sim){.re = re, .mode = M_DFA_STEP, .mark = mem, .stack = mem + re->n};
                memset(mem, 0xff, re->n * sizeof(uint32_t));
                b->d = d;
                byte_classes(re, d, b->rep);
                d->next = calloc(d->nbc, sizeof(*d->next));
                ok = d->next && state_of(b, NULL, 0) == 0; /* the dead state */
        }
        uint32_t *list = ok ? mem + 3 * re->n + 1 : NULL;
        if (ok) {
                size_t n = 0;
                closure(&b->m, 0, 0, ++b->gen, list, &n);
                int start = state_of(b, list, n);
                ok = start >= 0 && explore(b, list);
                d->start = (uint16_t)start;
        }
        if (ok && (d->accept = calloc(b->nstates, sizeof(*d->accept)))) {
                for (size_t s = 1; s < b->nstates; s++)
                        d->accept[s] = ends_well(b, s, list);
                uint16_t *fit = realloc(d->next, b->nstates * d->nbc * sizeof(*d->next));
                d->next = fit ? fit : d->next;
                d->nstates = b->nstates;
        }
        if (!ok || !d->accept) {
                if (d)
                        free(d->next);
                free(d);
                d = NULL;
        }
        if (b)
                free(b->pool);
        free(b);
        free(mem);
        return d;
}

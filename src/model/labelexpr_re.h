/* The regex engine of label expressions (docs/security.md, "Label expressions"): POSIX
 * extended regexes as glibc's regcomp reads them in the C locale (bytes; classes such as
 * [:alpha:]; GNU \w \W \s \S \b \B \< \> \` \'; no back-references), compiled to a
 * Thompson NFA and run without backtracking: a full match of an n-byte value visits at most
 * SK_LRE_STEPS_PER_BYTE * size * (n + 1) instructions, whatever the pattern. A small
 * program is also turned into a DFA at compile time (at most 256 states, built with at
 * most half the work of one worst-case match of 256 bytes), which then takes one step a
 * byte. */
#ifndef SK_MODEL_LABELEXPR_RE_H
#define SK_MODEL_LABELEXPR_RE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sk_lre sk_lre;

/* Work per instruction and value byte: one visit in the closure, one class test. */
#define SK_LRE_STEPS_PER_BYTE 2

/* Compiles pattern into at most max_size instructions. On error returns -EINVAL (or
 * -ENOMEM) and writes a message to msg. */
int sk_lre_compile(const char *pattern, size_t max_size, sk_lre **out, char *msg, size_t msglen);
void sk_lre_free(sk_lre *re);

/* Instructions in the program: what a match costs per value byte. */
size_t sk_lre_size(const sk_lre *re);
/* The memory the compiled regex holds. */
size_t sk_lre_bytes(const sk_lre *re);

/* Whether the regex matches all of s[0..len); adds the work done to *steps. */
bool sk_lre_match(const sk_lre *re, const char *s, size_t len, uint64_t *steps);

/* For tests: whether a DFA was built, and the match by the NFA alone. */
bool sk_lre_has_dfa(const sk_lre *re);
bool sk_lre_match_nfa(const sk_lre *re, const char *s, size_t len, uint64_t *steps);

#endif

/* Connection admission (docs/security.md): who gets one of the tower's connections. A
 * connection is a stranger until a request on it authenticates (a user's token, a host's
 * certificate); strangers are limited per client address and in total, so that a flood of
 * idle or slow connections from a few addresses cannot take the descriptors that users and
 * the sites' long-polls need. Proven connections count against neither limit: 10,000 sites
 * behind one NAT address hold 10,000 long-polls, while only a few of their connections at
 * a time are strangers (between the TCP accept and the first authenticated request).
 * Proven connections are counted per identity instead (a host's certificate, a user), so
 * one stolen certificate or password cannot take the reserve either. */
#ifndef SK_TOWER_ADMIT_H
#define SK_TOWER_ADMIT_H

#include <stdbool.h>
#include <stddef.h>

#define SK_ADMIT_ADDR_MAX 64 /* an address as text, IPv6 included */

typedef struct sk_admit sk_admit;

#define SK_ADMIT_IDENTITY_MAX 160 /* "host:SITE/HOST", "user:TENANT/USER" */

typedef struct sk_admit_stats {
        size_t strangers, proven, refused;
} sk_admit_stats;

typedef struct sk_admit_limits {
        unsigned limit;        /* connections in all, strangers and proven */
        unsigned reserve;      /* of those, the places strangers never take */
        unsigned per_address;  /* strangers from one address at a time */
        unsigned per_identity; /* proven connections of one identity */
} sk_admit_limits;

sk_admit *sk_admit_new(const sk_admit_limits *limits);
void sk_admit_free(sk_admit *a);
/* Whether a new connection from addr may come in; if so it is counted as a stranger. It
 * may while strangers are fewer than limit - reserve, a place is free, and its address
 * holds fewer than per_address and fewer than the places still free: each address may
 * take at most half of what is left, so that a few addresses cannot take it all. */
bool sk_admit_open(sk_admit *a, const char *addr);
/* A stranger from addr authenticated as identity: it counts as proven from now on, unless
 * identity holds per_identity connections already (false: it stays a stranger). */
bool sk_admit_prove(sk_admit *a, const char *addr, const char *identity);
/* A connection from addr closed; identity: the one it was proven as, or NULL. */
void sk_admit_close(sk_admit *a, const char *addr, const char *identity);
sk_admit_stats sk_admit_get_stats(sk_admit *a);

#endif

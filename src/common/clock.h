/* Time, read in one place. Code whose decisions depend on time (the site cluster's
 * liveness, leadership hand-over, join tokens) reads it through an sk_clock it was given,
 * so tests drive it with a fake one instead of asserting wall-clock bounds. */
#ifndef SK_COMMON_CLOCK_H
#define SK_COMMON_CLOCK_H

#include <stdint.h>

typedef struct sk_clock {
        int64_t (*monotonic_ms)(void *user); /* for intervals and deadlines */
        int64_t (*wall_ms)(void *user);      /* Unix ms: what is shown or replicated */
        void *user;
} sk_clock;

/* The system's clocks (CLOCK_MONOTONIC, CLOCK_REALTIME). */
const sk_clock *sk_clock_system(void);

int64_t sk_monotonic_ms(void);
int64_t sk_wall_ms(void);

static inline int64_t sk_clock_mono(const sk_clock *c)
{
        return c->monotonic_ms(c->user);
}

static inline int64_t sk_clock_wall(const sk_clock *c)
{
        return c->wall_ms(c->user);
}

/* "2006-01-02T15:04:05Z" for a Unix ms time; caller frees (NULL when out of memory). */
char *sk_rfc3339(int64_t wall_ms);

#endif

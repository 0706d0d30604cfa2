/* Failed-login lockout: a small table of keys (a user, an address) with their failures.
 * Kept in memory: a restarted tower forgets it, which costs an attacker a restart it cannot
 * cause. When the table is full the entry idle longest makes room. */
#include <stdlib.h>
#include <string.h>

#include "tower/api_int.h"

#define SLOTS       4096
#define KEY_MAX     200
#define LOCK_MS     (30LL * 1000)
#define LOCK_MAX_MS (3600LL * 1000)
/* A key without failures for this long starts again from zero. */
#define FORGET_MS (24LL * 3600 * 1000)

typedef struct slot {
        char key[KEY_MAX];
        int failures;
        int64_t locked_until, last;
} slot;

struct sk_login_limit {
        slot *slots;
        size_t n;
};

sk_login_limit *sk_login_limit_new(void)
{
        sk_login_limit *l = calloc(1, sizeof(*l));
        if (l && !(l->slots = calloc(SLOTS, sizeof(slot)))) {
                free(l);
                return NULL;
        }
        return l;
}

void sk_login_limit_free(sk_login_limit *l)
{
        if (!l)
                return;
        free(l->slots);
        free(l);
}

static slot *find(sk_login_limit *l, const char *key)
{
        for (size_t i = 0; i < l->n; i++)
                if (strncmp(l->slots[i].key, key, KEY_MAX - 1) == 0)
                        return &l->slots[i];
        return NULL;
}

int64_t sk_login_limit_locked(sk_login_limit *l, const char *key, int64_t now)
{
        slot *s = find(l, key);
        return s && s->locked_until > now ? s->locked_until - now : 0;
}

void sk_login_limit_fail(sk_login_limit *l, const char *key, int threshold, int64_t now)
{
        slot *s = find(l, key);
        if (!s) {
                if (l->n < SLOTS) {
                        s = &l->slots[l->n++];
                } else {
                        s = &l->slots[0];
                        for (size_t i = 1; i < l->n; i++)
                                if (l->slots[i].last < s->last)
                                        s = &l->slots[i];
                }
                memset(s, 0, sizeof(*s));
                strncpy(s->key, key, KEY_MAX - 1);
        }
        if (s->last && now - s->last > FORGET_MS)
                s->failures = 0;
        s->failures++;
        s->last = now;
        if (s->failures >= threshold) {
                int64_t ms = LOCK_MS;
                for (int i = threshold; i < s->failures && ms < LOCK_MAX_MS; i++)
                        ms *= 2;
                s->locked_until = now + (ms < LOCK_MAX_MS ? ms : LOCK_MAX_MS);
        }
}

void sk_login_limit_reset(sk_login_limit *l, const char *key)
{
        slot *s = find(l, key);
        if (s) {
                s->failures = 0;
                s->locked_until = 0;
        }
}

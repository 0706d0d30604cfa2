/* Failed-login lockout and login throttling: a small table of keys (a user at an address,
 * an address) with their failures, and the password checks each address has in flight.
 * Kept in memory: a restarted tower forgets it, which costs an attacker a restart it cannot
 * cause. When the table is full the entry idle longest makes room. Its own lock: a job's
 * end is counted from wherever the server frees the job. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tower/api_int.h"

#define SLOTS       4096
#define KEY_MAX     200
#define LOCK_MS     (30LL * 1000)
#define LOCK_MAX_MS (3600LL * 1000)
/* A key without failures for this long starts again from zero. */
#define FORGET_MS (24LL * 3600 * 1000)
/* A flood (refusals while locked or throttled) is recorded once per this long. */
#define NOTE_MS (60LL * 1000)

typedef struct slot {
        char key[KEY_MAX];
        int failures;
        int in_flight;
        int64_t locked_until, last, noted;
} slot;

struct sk_login_limit {
        pthread_mutex_t lock;
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
        if (l)
                pthread_mutex_init(&l->lock, NULL);
        return l;
}

void sk_login_limit_free(sk_login_limit *l)
{
        if (!l)
                return;
        pthread_mutex_destroy(&l->lock);
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

/* The key's slot, made when missing (a slot with checks in flight is never taken). */
static slot *get(sk_login_limit *l, const char *key)
{
        slot *s = find(l, key);
        if (s)
                return s;
        if (l->n < SLOTS) {
                s = &l->slots[l->n++];
        } else {
                for (size_t i = 0; i < l->n; i++)
                        if (!l->slots[i].in_flight && (!s || l->slots[i].last < s->last))
                                s = &l->slots[i];
                if (!s)
                        return NULL;
        }
        memset(s, 0, sizeof(*s));
        strncpy(s->key, key, KEY_MAX - 1);
        return s;
}

int64_t sk_login_limit_locked(sk_login_limit *l, const char *key, int64_t now)
{
        pthread_mutex_lock(&l->lock);
        slot *s = find(l, key);
        int64_t ms = s && s->locked_until > now ? s->locked_until - now : 0;
        pthread_mutex_unlock(&l->lock);
        return ms;
}

void sk_login_limit_fail(sk_login_limit *l, const char *key, int threshold, int64_t now)
{
        pthread_mutex_lock(&l->lock);
        slot *s = get(l, key);
        if (!s) {
                pthread_mutex_unlock(&l->lock);
                return;
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
        pthread_mutex_unlock(&l->lock);
}

void sk_login_limit_reset(sk_login_limit *l, const char *key)
{
        pthread_mutex_lock(&l->lock);
        slot *s = find(l, key);
        if (s) {
                s->failures = 0;
                s->locked_until = 0;
        }
        pthread_mutex_unlock(&l->lock);
}

bool sk_login_limit_begin(sk_login_limit *l, const char *key, int max, int64_t now)
{
        pthread_mutex_lock(&l->lock);
        slot *s = get(l, key);
        bool ok = s && s->in_flight < max;
        if (ok) {
                s->in_flight++;
                s->last = now;
        }
        pthread_mutex_unlock(&l->lock);
        return ok;
}

void sk_login_limit_end(sk_login_limit *l, const char *key)
{
        pthread_mutex_lock(&l->lock);
        slot *s = find(l, key);
        if (s && s->in_flight > 0)
                s->in_flight--;
        pthread_mutex_unlock(&l->lock);
}

bool sk_login_limit_note(sk_login_limit *l, const char *key, int64_t now)
{
        pthread_mutex_lock(&l->lock);
        slot *s = get(l, key);
        bool first = s && (!s->noted || now - s->noted >= NOTE_MS);
        if (first)
                s->noted = now;
        pthread_mutex_unlock(&l->lock);
        return first;
}

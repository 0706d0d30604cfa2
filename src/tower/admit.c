/* Connection admission (admit.h): one hash table of counts, strangers per address ("a:"
 * keys) and proven connections per identity ("i:" keys), under its own lock
 * (libmicrohttpd's polling thread opens and closes, the request handler proves). */
#include "tower/admit.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096

#define KEY_MAX (SK_ADMIT_IDENTITY_MAX + 2)

typedef struct entry entry;
struct entry {
        char key[KEY_MAX];
        unsigned n;
        entry *next;
};

struct sk_admit {
        pthread_mutex_t lock;
        sk_admit_limits lim;
        size_t strangers, proven, refused;
        entry *buckets[BUCKETS];
};

sk_admit *sk_admit_new(const sk_admit_limits *limits)
{
        sk_admit *a = calloc(1, sizeof(*a));
        if (!a)
                return NULL;
        pthread_mutex_init(&a->lock, NULL);
        a->lim = *limits;
        return a;
}

void sk_admit_free(sk_admit *a)
{
        if (!a)
                return;
        for (size_t i = 0; i < BUCKETS; i++) {
                while (a->buckets[i]) {
                        entry *e = a->buckets[i];
                        a->buckets[i] = e->next;
                        free(e);
                }
        }
        pthread_mutex_destroy(&a->lock);
        free(a);
}

static entry **slot_of(sk_admit *a, char kind, const char *name)
{
        char key[KEY_MAX];
        snprintf(key, sizeof(key), "%c:%s", kind, name);
        uint32_t h = 2166136261u; /* FNV-1a */
        for (const unsigned char *p = (const unsigned char *)key; *p; p++)
                h = (h ^ *p) * 16777619u;
        entry **e = &a->buckets[h % BUCKETS];
        while (*e && strcmp((*e)->key, key) != 0)
                e = &(*e)->next;
        if (!*e && (*e = calloc(1, sizeof(**e))))
                memcpy((*e)->key, key, sizeof(key));
        return e;
}

/* Under lock: an entry without any count goes (one just made, or its last one gone). */
static void forget_empty(entry **e)
{
        if (*e && (*e)->n == 0) {
                entry *gone = *e;
                *e = gone->next;
                free(gone);
        }
}

/* Under lock: one less for the entry. */
static void drop(entry **e)
{
        if (*e && (*e)->n > 0)
                (*e)->n--;
        forget_empty(e);
}

bool sk_admit_open(sk_admit *a, const char *addr)
{
        pthread_mutex_lock(&a->lock);
        entry **e = slot_of(a, 'a', addr);
        size_t used = a->strangers + a->proven;
        size_t free_places = used < a->lim.limit ? a->lim.limit - used : 0;
        bool ok = *e && a->strangers + a->lim.reserve < a->lim.limit && free_places > 0 &&
                  (*e)->n < a->lim.per_address && (*e)->n < free_places;
        if (ok) {
                (*e)->n++;
                a->strangers++;
        } else {
                forget_empty(e);
                a->refused++;
        }
        pthread_mutex_unlock(&a->lock);
        return ok;
}

bool sk_admit_prove(sk_admit *a, const char *addr, const char *identity)
{
        pthread_mutex_lock(&a->lock);
        entry **id = slot_of(a, 'i', identity);
        bool ok = *id && (*id)->n < a->lim.per_identity;
        if (ok) {
                (*id)->n++;
                a->proven++;
                a->strangers--;
                drop(slot_of(a, 'a', addr));
        } else {
                forget_empty(id);
                a->refused++;
        }
        pthread_mutex_unlock(&a->lock);
        return ok;
}

void sk_admit_close(sk_admit *a, const char *addr, const char *identity)
{
        pthread_mutex_lock(&a->lock);
        if (identity) {
                a->proven--;
                drop(slot_of(a, 'i', identity));
        } else {
                a->strangers--;
                drop(slot_of(a, 'a', addr));
        }
        pthread_mutex_unlock(&a->lock);
}

sk_admit_stats sk_admit_get_stats(sk_admit *a)
{
        pthread_mutex_lock(&a->lock);
        sk_admit_stats s = {a->strangers, a->proven, a->refused};
        pthread_mutex_unlock(&a->lock);
        return s;
}

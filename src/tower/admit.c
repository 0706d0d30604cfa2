/* Connection admission (admit.h): a hash table of stranger counts per address, under its
 * own lock (libmicrohttpd's polling thread opens and closes, the request handler proves). */
#include "tower/admit.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096

typedef struct entry entry;
struct entry {
        char addr[SK_ADMIT_ADDR_MAX];
        unsigned strangers;
        entry *next;
};

struct sk_admit {
        pthread_mutex_t lock;
        unsigned per_address, strangers_max;
        size_t strangers, proven, refused;
        entry *buckets[BUCKETS];
};

sk_admit *sk_admit_new(unsigned per_address, unsigned strangers_max)
{
        sk_admit *a = calloc(1, sizeof(*a));
        if (!a)
                return NULL;
        pthread_mutex_init(&a->lock, NULL);
        a->per_address = per_address;
        a->strangers_max = strangers_max;
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

static entry **slot_of(sk_admit *a, const char *addr)
{
        uint32_t h = 2166136261u; /* FNV-1a */
        for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
                h = (h ^ *p) * 16777619u;
        entry **e = &a->buckets[h % BUCKETS];
        while (*e && strcmp((*e)->addr, addr) != 0)
                e = &(*e)->next;
        return e;
}

bool sk_admit_open(sk_admit *a, const char *addr)
{
        pthread_mutex_lock(&a->lock);
        entry **e = slot_of(a, addr);
        bool ok = a->strangers < a->strangers_max && (!*e || (*e)->strangers < a->per_address);
        if (ok && !*e) {
                *e = calloc(1, sizeof(**e));
                if (*e)
                        strncpy((*e)->addr, addr, SK_ADMIT_ADDR_MAX - 1);
                ok = *e != NULL;
        }
        if (ok) {
                (*e)->strangers++;
                a->strangers++;
        } else {
                a->refused++;
        }
        pthread_mutex_unlock(&a->lock);
        return ok;
}

/* Under lock: one stranger from addr less; the entry goes with its last one. */
static void drop_stranger(sk_admit *a, const char *addr)
{
        entry **e = slot_of(a, addr);
        if (!*e)
                return;
        a->strangers--;
        if (--(*e)->strangers == 0) {
                entry *gone = *e;
                *e = gone->next;
                free(gone);
        }
}

void sk_admit_prove(sk_admit *a, const char *addr)
{
        pthread_mutex_lock(&a->lock);
        drop_stranger(a, addr);
        a->proven++;
        pthread_mutex_unlock(&a->lock);
}

void sk_admit_close(sk_admit *a, const char *addr, bool proven)
{
        pthread_mutex_lock(&a->lock);
        if (proven)
                a->proven--;
        else
                drop_stranger(a, addr);
        pthread_mutex_unlock(&a->lock);
}

sk_admit_stats sk_admit_get_stats(sk_admit *a)
{
        pthread_mutex_lock(&a->lock);
        sk_admit_stats s = {a->strangers, a->proven, a->refused};
        pthread_mutex_unlock(&a->lock);
        return s;
}

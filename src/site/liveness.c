#include "site/liveness.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void sk_liveness_init(sk_liveness *l, int64_t lost_after_ms)
{
        memset(l, 0, sizeof(*l));
        l->lost_after_ms = lost_after_ms;
}

void sk_liveness_clear(sk_liveness *l)
{
        free(l->items);
        memset(l, 0, sizeof(*l));
}

static sk_liveness_entry *find(const sk_liveness *l, int64_t id)
{
        for (size_t i = 0; i < l->n; i++)
                if (l->items[i].id == id)
                        return &l->items[i];
        return NULL;
}

static sk_liveness_entry *add(sk_liveness *l, int64_t id, bool alive, int64_t now_ms)
{
        if (l->n == l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 8;
                sk_liveness_entry *v = realloc(l->items, cap * sizeof(*v));
                if (!v)
                        return NULL;
                l->items = v;
                l->cap = cap;
        }
        l->items[l->n] = (sk_liveness_entry){id, now_ms, alive};
        return &l->items[l->n++];
}

int sk_liveness_track(sk_liveness *l, int64_t id, bool alive, int64_t last_ms)
{
        if (find(l, id))
                return 0;
        return add(l, id, alive, last_ms) ? 0 : -ENOMEM;
}

void sk_liveness_reset(sk_liveness *l, int64_t now_ms)
{
        for (size_t i = 0; i < l->n; i++)
                l->items[i].last_ms = now_ms;
}

int sk_liveness_seen(sk_liveness *l, int64_t id, int64_t at_ms)
{
        sk_liveness_entry *e = find(l, id);
        if (!e)
                return add(l, id, true, at_ms) ? 0 : -ENOMEM;
        if (at_ms <= e->last_ms)
                return 0;
        bool was_lost = !e->alive;
        e->alive = true;
        e->last_ms = at_ms;
        return was_lost ? 1 : 0;
}

void sk_liveness_forget(sk_liveness *l, int64_t id)
{
        sk_liveness_entry *e = find(l, id);
        if (e)
                *e = l->items[--l->n];
}

size_t sk_liveness_check(sk_liveness *l, int64_t now_ms, int64_t *lost)
{
        size_t n = 0;
        for (size_t i = 0; i < l->n; i++) {
                sk_liveness_entry *e = &l->items[i];
                if (e->alive && now_ms - e->last_ms >= l->lost_after_ms) {
                        e->alive = false;
                        lost[n++] = e->id;
                }
        }
        return n;
}

int64_t sk_liveness_next_due(const sk_liveness *l)
{
        int64_t due = INT64_MAX;
        for (size_t i = 0; i < l->n; i++)
                if (l->items[i].alive && l->items[i].last_ms + l->lost_after_ms < due)
                        due = l->items[i].last_ms + l->lost_after_ms;
        return due;
}

int sk_liveness_state(const sk_liveness *l, int64_t id)
{
        const sk_liveness_entry *e = find(l, id);
        return e ? (e->alive ? 1 : 0) : -1;
}

#define DEFAULT_LOST_AFTER_MS 5000

static int64_t clamp(int64_t v, int64_t lo, int64_t hi)
{
        return v < lo ? lo : v > hi ? hi : v;
}

int64_t sk_liveness_beat_ms(int64_t lost_after_ms)
{
        int64_t after = lost_after_ms > 0 ? lost_after_ms : DEFAULT_LOST_AFTER_MS;
        return clamp(after / 4, SK_LIVENESS_BEAT_MIN_MS, SK_LIVENESS_BEAT_MAX_MS);
}

int64_t sk_liveness_beat_timeout_ms(int64_t lost_after_ms)
{
        int64_t after = lost_after_ms > 0 ? lost_after_ms : DEFAULT_LOST_AFTER_MS;
        return clamp(after / 2, sk_liveness_beat_ms(after), SK_LIVENESS_BEAT_TIMEOUT_MAX_MS);
}

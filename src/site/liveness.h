/* The leader's view of which hosts are alive (docs/site-cluster.md): a host is lost when
 * nothing was heard from it for the site's host-lost-after. Pure: the caller passes the
 * clock (monotonic ms), so tests drive it with a fake one.
 *
 * A new leader knows nothing of the others' last contact, so sk_liveness_reset gives every
 * host a fresh start (a full host-lost-after) instead of declaring them all lost at once. */
#ifndef SK_SITE_LIVENESS_H
#define SK_SITE_LIVENESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sk_liveness_entry {
        int64_t id;
        int64_t last_ms; /* last contact */
        bool alive;
} sk_liveness_entry;

typedef struct sk_liveness {
        sk_liveness_entry *items;
        size_t n, cap;
        int64_t lost_after_ms;
} sk_liveness;

void sk_liveness_init(sk_liveness *l, int64_t lost_after_ms);
void sk_liveness_clear(sk_liveness *l);
/* Starts tracking a host (a new leader does it for every host the replicated state
 * knows): last contact at last_ms, `alive` as the state says (a lost host stays lost
 * until it is heard from). A host already tracked is left alone. -ENOMEM. */
int sk_liveness_track(sk_liveness *l, int64_t id, bool alive, int64_t last_ms);
/* Every tracked host's last contact set to now. */
void sk_liveness_reset(sk_liveness *l, int64_t now_ms);
/* Contact from a host at at_ms. Contact no newer than the last one known changes
 * nothing (a stale report does not revive a lost host). Returns 1 when the host was lost
 * and is back, 0 otherwise, -ENOMEM. */
int sk_liveness_seen(sk_liveness *l, int64_t id, int64_t at_ms);
void sk_liveness_forget(sk_liveness *l, int64_t id);
/* Marks hosts lost whose last contact is older than lost_after; writes their ids to
 * lost (room for l->n) and returns how many newly lost. */
size_t sk_liveness_check(sk_liveness *l, int64_t now_ms, int64_t *lost);
/* When the first alive host's time runs out (its last contact plus lost_after): the next
 * check that can find a host lost. INT64_MAX when no host is alive. */
int64_t sk_liveness_next_due(const sk_liveness *l);
/* -1: unknown, 0: lost, 1: alive. */
int sk_liveness_state(const sk_liveness *l, int64_t id);

/* How often an agent heartbeats the leader for a site's host-lost-after: a quarter of it,
 * so three heartbeats in a row may be late or lost before the host is, but no more often
 * than every SK_LIVENESS_BEAT_MIN_MS (an idle site stays cheap) and at least every
 * SK_LIVENESS_BEAT_MAX_MS. lost_after_ms <= 0 means the default (5 s). */
#define SK_LIVENESS_BEAT_MIN_MS 200
#define SK_LIVENESS_BEAT_MAX_MS 1000
int64_t sk_liveness_beat_ms(int64_t lost_after_ms);
/* A heartbeat's connect and answer timeout: half of host-lost-after, at least one beat
 * and at most SK_LIVENESS_BEAT_TIMEOUT_MAX_MS, so a dead or stuck leader holds the next
 * heartbeat (to the new one) back by less than the time that declares a host lost. */
#define SK_LIVENESS_BEAT_TIMEOUT_MAX_MS 3000
int64_t sk_liveness_beat_timeout_ms(int64_t lost_after_ms);

#endif

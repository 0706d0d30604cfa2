/* The heartbeat pacing rule and the leader's liveness edge cases (src/site/liveness.c),
 * pure, on a fake clock: a quarter of host-lost-after between heartbeats, bounded; late and
 * missed heartbeats up to that margin lose no host; the boundaries of a loss. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "site/liveness.h"

static void test_beat_pacing(void **state)
{
        /* a quarter of host-lost-after */
        assert_int_equal(sk_liveness_beat_ms(1000), 250);
        assert_int_equal(sk_liveness_beat_ms(2000), 500);
        assert_int_equal(sk_liveness_beat_ms(3000), 750);
        /* never more often than the floor: an idle site stays cheap */
        assert_int_equal(sk_liveness_beat_ms(400), SK_LIVENESS_BEAT_MIN_MS);
        assert_int_equal(sk_liveness_beat_ms(1), SK_LIVENESS_BEAT_MIN_MS);
        /* never less often than the ceiling */
        assert_int_equal(sk_liveness_beat_ms(5000), SK_LIVENESS_BEAT_MAX_MS);
        assert_int_equal(sk_liveness_beat_ms(3600000), SK_LIVENESS_BEAT_MAX_MS);
        /* unknown (0 or negative): the 5 s default */
        assert_int_equal(sk_liveness_beat_ms(0), sk_liveness_beat_ms(5000));
        assert_int_equal(sk_liveness_beat_ms(-7), sk_liveness_beat_ms(5000));
}

static void test_beat_timeout(void **state)
{
        assert_int_equal(sk_liveness_beat_timeout_ms(1000), 500);
        assert_int_equal(sk_liveness_beat_timeout_ms(5000), 2500);
        assert_int_equal(sk_liveness_beat_timeout_ms(10000), SK_LIVENESS_BEAT_TIMEOUT_MAX_MS);
        assert_int_equal(sk_liveness_beat_timeout_ms(0), 2500);
        /* at least one beat, even when host-lost-after is below the model's 1 s floor */
        assert_int_equal(sk_liveness_beat_timeout_ms(300), SK_LIVENESS_BEAT_MIN_MS);
}

/* For every host-lost-after the site model accepts (1 s to 1 h): three heartbeats may go
 * missing, and a heartbeat that waits out its whole timeout is followed by the next one,
 * before the host is lost. */
static void test_pacing_margin(void **state)
{
        for (int64_t after = 1000; after <= 3600000; after += after < 20000 ? 50 : 60000) {
                int64_t beat = sk_liveness_beat_ms(after), t = sk_liveness_beat_timeout_ms(after);
                assert_true(beat >= SK_LIVENESS_BEAT_MIN_MS && beat <= SK_LIVENESS_BEAT_MAX_MS);
                assert_true(4 * beat <= after);
                assert_true(t + beat < after);
        }
}

/* A host heartbeating on the pacing rule, on a fake clock: up to three heartbeats in a row
 * lost, or each one late by most of a beat, keep it alive; a fourth lost one does not. */
static void test_late_heartbeats(void **state)
{
        const int64_t after = 1000, beat = sk_liveness_beat_ms(after);
        sk_liveness l;
        sk_liveness_init(&l, after);
        int64_t lost[2], now = 100000;
        assert_int_equal(sk_liveness_track(&l, 1, true, now), 0);
        /* each heartbeat arrives up to a beat late: the gap is under two beats */
        for (int i = 0; i < 40; i++) {
                now += beat + (i % 2 ? beat - 1 : 0);
                assert_int_equal(sk_liveness_check(&l, now, lost), 0);
                assert_int_equal(sk_liveness_seen(&l, 1, now), 0);
        }
        /* three in a row lost: the leader checks at every due beat and finds none */
        int64_t last = now;
        for (int i = 1; i <= 3; i++)
                assert_int_equal(sk_liveness_check(&l, last + i * beat, lost), 0);
        assert_int_equal(sk_liveness_seen(&l, 1, last + 4 * beat - 1), 0);
        /* the fourth lost one: lost exactly host-lost-after after the last contact */
        last += 4 * beat - 1;
        assert_int_equal(sk_liveness_next_due(&l), last + after);
        assert_int_equal(sk_liveness_check(&l, last + after - 1, lost), 0);
        assert_int_equal(sk_liveness_check(&l, last + after, lost), 1);
        assert_int_equal(lost[0], 1);
        sk_liveness_clear(&l);
}

/* Edge cases the leader relies on: contact exactly at the boundary, a report that raced
 * the loss, a host back from a loss, a new host-lost-after, a reset by a new leader. */
static void test_edges(void **state)
{
        sk_liveness l;
        sk_liveness_init(&l, 1000);
        int64_t lost[4];
        assert_int_equal(sk_liveness_track(&l, 1, true, 5000), 0);
        assert_int_equal(sk_liveness_track(&l, 2, true, 5000), 0);
        /* contact at the very instant the check runs keeps the host */
        assert_int_equal(sk_liveness_seen(&l, 1, 6000), 0);
        assert_int_equal(sk_liveness_check(&l, 6000, lost), 1);
        assert_int_equal(lost[0], 2);
        /* a report taken before the loss but read after it does not revive the host */
        assert_int_equal(sk_liveness_seen(&l, 2, 5000), 0);
        assert_int_equal(sk_liveness_state(&l, 2), 0);
        /* a newer one does, once, with a full period from that contact */
        assert_int_equal(sk_liveness_seen(&l, 2, 6500), 1);
        assert_int_equal(sk_liveness_seen(&l, 2, 6500), 0);
        assert_int_equal(sk_liveness_check(&l, 7499, lost), 1); /* host 1: 6000 + 1000 */
        assert_int_equal(lost[0], 1);
        assert_int_equal(sk_liveness_check(&l, 7499, lost), 0); /* reported once */
        assert_int_equal(sk_liveness_state(&l, 2), 1);
        /* a longer host-lost-after from the state applies at the next check */
        l.lost_after_ms = 5000;
        assert_int_equal(sk_liveness_check(&l, 11499, lost), 0);
        assert_int_equal(sk_liveness_next_due(&l), 11500);
        /* a new leader's reset: a full period for every host, lost ones stay lost */
        sk_liveness_reset(&l, 20000);
        assert_int_equal(sk_liveness_state(&l, 1), 0);
        assert_int_equal(sk_liveness_check(&l, 24999, lost), 0);
        assert_int_equal(sk_liveness_check(&l, 25000, lost), 1);
        assert_int_equal(lost[0], 2);
        /* a forgotten host is never reported */
        assert_int_equal(sk_liveness_seen(&l, 3, 26000), 0);
        sk_liveness_forget(&l, 3);
        assert_int_equal(sk_liveness_check(&l, 40000, lost), 0);
        assert_int_equal(sk_liveness_state(&l, 3), -1);
        sk_liveness_clear(&l);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_beat_pacing),   cmocka_unit_test(test_beat_timeout),
            cmocka_unit_test(test_pacing_margin), cmocka_unit_test(test_late_heartbeats),
            cmocka_unit_test(test_edges),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The site cluster's protocol messages: raft entries applied to the replicated state
 * machine (desired documents, host entries the leader makes from heartbeats, host
 * removals, the scheduler's answers) and snapshots restored (agent/cluster_fsm.h).
 *
 * Input: one entry a line, encoded by sk_fsm_encode as a leader does when it is JSON, else
 * NUL-padded to a multiple of 8 bytes as it is; the whole input, padded the same way, is
 * also restored as a snapshot. A malformed entry
 * is refused with a message and changes nothing; after every entry a snapshot restores to the same
 * state; the scheduler's own answer applies and is then stable; this host's share of the
 * placements builds into containers or is refused with a message. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "host/desired.h"
#include "site/cluster_fsm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ENTRIES 16

static void refused(int r, sk_error **err)
{
        if (r >= 0 || !*err || !(*err)->msg)
                abort();
        sk_error_free(err);
}

/* A snapshot restores to the same state, and snapshots again to the same bytes. */
static void check_snapshot(const sk_fsm *f)
{
        size_t len = 0, len2 = 0;
        _cleanup_free_ char *snap = sk_fsm_snapshot(f, &len);
        if (!snap || len % 8 != 0)
                abort();
        sk_fsm g;
        if (sk_fsm_init(&g) < 0 || sk_fsm_restore(&g, snap, len, NULL) < 0 ||
            !json_equal(f->state, g.state))
                abort();
        _cleanup_free_ char *again = sk_fsm_snapshot(&g, &len2);
        if (!again || len != len2 || memcmp(snap, again, len) != 0)
                abort();
        sk_fsm_clear(&g);
}

/* As raft hands entries and snapshots over: exactly the padded length, at least one NUL. */
static char *padded(const uint8_t *data, size_t n, size_t *len)
{
        *len = (n / 8 + 1) * 8;
        char *buf = calloc(1, *len);
        if (buf)
                memcpy(buf, data, n);
        return buf;
}

static void apply_entry(sk_fsm *f, const uint8_t *line, size_t n)
{
        /* A JSON entry is what a leader encodes (reals at the precision every node then
         * parses alike); anything else stands for a damaged log, given as it is. */
        size_t len;
        _cleanup_json_ json_t *cmd = json_loadb((const char *)line, n, 0, NULL);
        _cleanup_free_ char *buf = cmd ? sk_fsm_encode(cmd, &len) : padded(line, n, &len);
        if (!buf)
                return;
        _cleanup_json_ json_t *before = json_deep_copy(f->state);
        sk_error *err = NULL;
        int r = sk_fsm_apply(f, buf, len, &err);
        if (r < 0) {
                refused(r, &err);
                if (!json_equal(before, f->state))
                        abort(); /* a refused entry changed the state */
                return;
        }
        if (r &
            ~(SK_FSM_DESIRED | SK_FSM_HOSTS | SK_FSM_PLACEMENTS | SK_FSM_JOINS | SK_FSM_SITE_CA))
                abort();
        if (r == 0 && !json_equal(before, f->state))
                abort(); /* changed, but said it did not */
        check_snapshot(f);
}

static void build_share(const sk_fsm *f, const char *name)
{
        json_t *placed = NULL;
        sk_error *err = NULL;
        int r = sk_fsm_local_placed(f, name, NULL, &placed, &err);
        if (r < 0) {
                refused(r, &err);
                return;
        }
        sk_desired_set set;
        r = sk_desired_build(placed, "s1", name, &set, &err);
        if (r < 0)
                refused(r, &err);
        else
                sk_desired_set_clear(&set);
        json_decref(placed);
}

static void schedule(sk_fsm *f)
{
        json_t *cmd = NULL;
        sk_error *err = NULL;
        int r = sk_fsm_schedule(f, NULL, &cmd, &err);
        if (r < 0) {
                refused(r, &err);
                return;
        }
        if (!cmd)
                return;
        size_t len = 0;
        char *buf = sk_fsm_encode(cmd, &len);
        json_decref(cmd);
        if (!buf || sk_fsm_apply(f, buf, len, NULL) < 0)
                abort(); /* the scheduler's own answer must apply */
        free(buf);
        cmd = NULL;
        if (sk_fsm_schedule(f, NULL, &cmd, NULL) < 0 || cmd)
                abort(); /* and the same state gives the same answer */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        sk_fsm f;
        if (sk_fsm_init(&f) < 0)
                return 0;
        /* the whole input as a snapshot: restores, or leaves the state as it was */
        _cleanup_json_ json_t *empty = json_deep_copy(f.state);
        sk_error *err = NULL;
        size_t len;
        _cleanup_free_ char *snap = padded(data, size, &len);
        int r = snap ? sk_fsm_restore(&f, snap, len, &err) : 0;
        if (r < 0) {
                refused(r, &err);
                if (!json_equal(empty, f.state))
                        abort();
        } else {
                /* a damaged snapshot's reals are not yet at the encoded precision: from
                 * the next snapshot on, every node holds the same */
                size_t n = 0;
                _cleanup_free_ char *next = sk_fsm_snapshot(&f, &n);
                sk_fsm g;
                if (!next || sk_fsm_init(&g) < 0 || sk_fsm_restore(&g, next, n, NULL) < 0)
                        abort();
                check_snapshot(&g);
                sk_fsm_clear(&g);
        }
        sk_fsm_clear(&f);

        if (sk_fsm_init(&f) < 0)
                return 0;
        const uint8_t *p = data, *end = data + size;
        for (int i = 0; i < MAX_ENTRIES && p < end; i++) {
                const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
                size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
                apply_entry(&f, p, n);
                p += n + 1;
        }
        (void)sk_fsm_generation(&f);
        (void)sk_fsm_lost_after_ms(&f);
        schedule(&f);
        const char *key;
        json_t *h;
        json_object_foreach((json_t *)sk_fsm_hosts(&f), key, h)
        {
                const char *name = json_string_value(json_object_get(h, "name"));
                if (name)
                        build_share(&f, name);
        }
        json_decref(sk_fsm_unplaced_status(&f, "s1", "h1"));
        sk_fsm_clear(&f);
        return 0;
}

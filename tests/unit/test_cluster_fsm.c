/* The site cluster's state machine and the leader's liveness tracking, as pure functions:
 * entries applied, snapshots taken and restored, the scheduler's answer stored, this
 * host's share of the placements, hosts lost and back on a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "site/cluster_fsm.h"
#include "site/liveness.h"

static const char *APP =
    "{\"name\": \"pos\", \"version\": \"1.0.0\", \"services\": ["
    " {\"name\": \"api\", \"replicas\": 3, \"resources\": {\"cpu\": 0.5, \"memory\": \"64Mi\"},"
    "  \"containers\": [{\"name\": \"api\", \"image\": \"localhost/busybox:latest\"}]},"
    " {\"name\": \"cam\", \"replicas\": 1, \"placement\": {\"devices\": [\"camera\"]},"
    "  \"containers\": [{\"name\": \"cam\", \"image\": \"localhost/busybox:latest\","
    "   \"devices\": [\"camera\"]}]}]}";

static json_t *desired_doc(int64_t generation, const char *lost_after)
{
        json_t *app = json_loads(APP, 0, NULL);
        assert_non_null(app);
        json_t *doc =
            json_pack("{s:I, s:{s:s, s:s, s:{}}, s:[{s:s, s:s, s:s, s:s, s:o}]}", "generation",
                      (json_int_t)generation, "site", "name", "s1", "tenant", "default", "labels",
                      "deployments", "tenant", "default", "name", "pos-d", "application", "pos",
                      "version", "1.0.0", "spec", app);
        assert_non_null(doc);
        if (lost_after)
                json_object_set_new(json_object_get(doc, "site"), "host-lost-after",
                                    json_string(lost_after));
        return doc;
}

static json_t *host(int64_t id, const char *name, bool alive, bool camera)
{
        json_t *h = json_pack("{s:I, s:s, s:s, s:{s:s}, s:{}, s:{s:I, s:I}, s:b}", "id",
                              (json_int_t)id, "name", name, "address", "127.0.0.1:1", "labels",
                              "system/name", name, "devices", "capacity", "cpu", (json_int_t)4000,
                              "memory", (json_int_t)(8LL << 30), "alive", alive);
        if (camera) {
                json_object_set_new(json_object_get(h, "labels"), "device/camera",
                                    json_string("1"));
                json_object_set_new(
                    json_object_get(h, "devices"), "camera",
                    json_pack("[{s:s, s:s}]", "path", "/dev/video0", "host-path", "/tmp/d/video0"));
        }
        return h;
}

/* Encodes cmd as the cluster does and applies it; returns sk_fsm_apply's answer. */
static int apply(sk_fsm *f, json_t *cmd)
{
        size_t len = 0;
        _cleanup_free_ char *buf = sk_fsm_encode(cmd, &len);
        json_decref(cmd);
        assert_non_null(buf);
        assert_int_equal(len % 8, 0);
        assert_true(len > strlen(buf)); /* NUL padding, at least one */
        return sk_fsm_apply(f, buf, len, NULL);
}

static int apply_host(sk_fsm *f, json_t *h)
{
        return apply(f, json_pack("{s:s, s:o}", "op", "host", "host", h));
}

/* Runs the scheduler (with the leader's latest heartbeats, optional) and applies its answer;
 * returns whether it changed anything. */
static bool schedule_with(sk_fsm *f, const json_t *reports)
{
        json_t *cmd = NULL;
        _cleanup_error_ sk_error *err = NULL;
        int r = sk_fsm_schedule(f, reports, &cmd, &err);
        if (r < 0)
                fail_msg("schedule: %s", sk_error_msg(err, r));
        if (!cmd)
                return false;
        assert_int_equal(apply(f, cmd), SK_FSM_PLACEMENTS);
        return true;
}

static bool schedule(sk_fsm *f)
{
        return schedule_with(f, NULL);
}

/* The leader's heartbeats as the cluster keeps them: host `name` (id 3) reports instance
 * id in `state`. */
static json_t *heartbeats(const char *name, const char *id, const char *state)
{
        json_t *r = json_pack("{s:{s:{s:s, s:[{s:s, s:s}]}}}", "3", "report", "host", name,
                              "instances", "instance", id, "state", state);
        assert_non_null(r);
        return r;
}

/* Whether instance id is in host name's share. */
static bool in_share(const sk_fsm *f, const char *name, const char *id)
{
        _cleanup_json_ json_t *placed = NULL;
        assert_int_equal(sk_fsm_local_placed(f, name, NULL, &placed, NULL), 0);
        size_t i;
        json_t *p;
        json_array_foreach(
            placed, i,
            p) if (!strcmp(json_string_value(json_object_get(p, "instance")), id)) return true;
        return false;
}

static size_t count_on(const sk_fsm *f, const char *name)
{
        size_t n = 0, i;
        json_t *p;
        json_array_foreach(json_object_get(f->state, "placements"), i, p) n +=
            strcmp(json_string_value(json_object_get(p, "host")), name) == 0;
        return n;
}

static void test_apply_and_changes(void **state)
{
        sk_fsm f;
        assert_int_equal(sk_fsm_init(&f), 0);
        assert_null(sk_fsm_desired(&f));
        assert_int_equal(sk_fsm_lost_after_ms(&f), SK_FSM_LOST_AFTER_DEFAULT_MS);
        assert_int_equal(
            apply(&f, json_pack("{s:s, s:o}", "op", "desired", "doc", desired_doc(4, "2s"))),
            SK_FSM_DESIRED);
        /* the same document again changes nothing */
        assert_int_equal(
            apply(&f, json_pack("{s:s, s:o}", "op", "desired", "doc", desired_doc(4, "2s"))), 0);
        assert_int_equal(sk_fsm_generation(&f), 4);
        assert_int_equal(sk_fsm_lost_after_ms(&f), 2000);
        assert_int_equal(apply_host(&f, host(1, "h1", true, false)), SK_FSM_HOSTS);
        assert_int_equal(apply_host(&f, host(1, "h1", true, false)), 0);
        assert_int_equal(apply_host(&f, host(2, "h2", true, true)), SK_FSM_HOSTS);
        assert_string_equal(json_string_value(json_object_get(sk_fsm_host(&f, 2), "name")), "h2");
        assert_int_equal(apply(&f, json_pack("{s:s, s:I}", "op", "host-remove", "id", 2)),
                         SK_FSM_HOSTS);
        assert_null(sk_fsm_host(&f, 2));
        assert_int_equal(json_object_size(sk_fsm_hosts(&f)), 1);
        sk_fsm_clear(&f);
}

static void test_malformed_entries(void **state)
{
        sk_fsm f;
        assert_int_equal(sk_fsm_init(&f), 0);
        _cleanup_json_ json_t *before = json_deep_copy(f.state);
        sk_error *err = NULL;
        assert_int_equal(sk_fsm_apply(&f, "nonsense\0\0\0\0\0\0\0", 16, &err), -EINVAL);
        assert_non_null(err);
        sk_error_free(&err);
        assert_int_equal(apply(&f, json_pack("{s:s}", "op", "explode")), -EINVAL);
        assert_int_equal(sk_fsm_apply(&f, "{\"op\":\"host\",\"host\":{\"id\":0}}\0\0", 32, &err),
                         -EINVAL);
        assert_string_equal(err->path, "host.id");
        sk_error_free(&err);
        /* a host without capacity is refused with the field named */
        assert_int_equal(apply(&f, json_pack("{s:s, s:{s:I, s:s}}", "op", "host", "host", "id", 3,
                                             "name", "h3")),
                         -EINVAL);
        assert_int_equal(apply(&f, json_pack("{s:s, s:{s:I}}", "op", "desired", "doc", "x", 1)),
                         -EINVAL);
        assert_true(json_equal(before, f.state));
        sk_fsm_clear(&f);
}

static void test_schedule_and_local_share(void **state)
{
        sk_fsm f;
        assert_int_equal(sk_fsm_init(&f), 0);
        json_t *cmd = NULL;
        assert_int_equal(sk_fsm_schedule(&f, NULL, &cmd, NULL), 0);
        assert_null(cmd); /* nothing to schedule without a desired document */
        apply(&f, json_pack("{s:s, s:o}", "op", "desired", "doc", desired_doc(1, NULL)));
        apply_host(&f, host(1, "h1", true, false));
        apply_host(&f, host(2, "h2", true, true));
        apply_host(&f, host(3, "h3", true, false));
        assert_true(schedule(&f));
        assert_false(schedule(&f)); /* stable: the same answer is not proposed again */
        /* three api replicas spread, the camera service on the camera host */
        assert_int_equal(count_on(&f, "h1"), 1);
        assert_int_equal(count_on(&f, "h2"), 2);
        assert_int_equal(count_on(&f, "h3"), 1);

        _cleanup_json_ json_t *placed = NULL;
        _cleanup_json_ json_t *disc = json_pack("{s:[{s:s, s:s}]}", "camera", "path", "/dev/video0",
                                                "host-path", "/x/video0");
        assert_int_equal(sk_fsm_local_placed(&f, "h2", disc, &placed, NULL), 0);
        assert_int_equal(json_array_size(placed), 2);
        bool cam = false;
        size_t i;
        json_t *p;
        json_array_foreach(placed, i, p)
        {
                assert_string_equal(json_string_value(json_object_get(p, "tenant")), "default");
                assert_string_equal(json_string_value(json_object_get(p, "application")), "pos");
                assert_non_null(json_object_get(p, "spec"));
                if (strcmp(json_string_value(json_object_get(p, "service")), "cam") == 0) {
                        cam = true;
                        json_t *node = json_array_get(
                            json_object_get(json_object_get(p, "devices"), "camera"), 0);
                        assert_string_equal(json_string_value(json_object_get(node, "host-path")),
                                            "/x/video0");
                        assert_string_equal(json_string_value(json_object_get(node, "path")),
                                            "/dev/video0");
                }
        }
        assert_true(cam);

        /* h3 lost: its api replica moves, nothing else does */
        _cleanup_json_ json_t *before = json_deep_copy(json_object_get(f.state, "placements"));
        apply_host(&f, host(3, "h3", false, false));
        assert_true(schedule(&f));
        assert_int_equal(count_on(&f, "h3"), 0);
        assert_int_equal(count_on(&f, "h1") + count_on(&f, "h2"), 4);
        json_array_foreach(before, i, p)
        {
                if (strcmp(json_string_value(json_object_get(p, "host")), "h3") == 0)
                        continue;
                bool kept = false;
                size_t k;
                json_t *q;
                json_array_foreach(json_object_get(f.state, "placements"), k, q) kept |=
                    json_equal(p, q);
                assert_true(kept);
        }
        /* h3 back: the api replicas are 2, 1, 0 now, so one moves back to h3 (no duplicate
         * in the map), make-before-break: its old host keeps it in its share until h3's
         * heartbeat reports it running */
        apply_host(&f, host(3, "h3", true, false));
        assert_true(schedule(&f));
        assert_int_equal(count_on(&f, "h3"), 1);
        assert_int_equal(json_array_size(json_object_get(f.state, "placements")), 4);
        const char *id = NULL, *old = NULL;
        json_array_foreach(json_object_get(f.state, "placements"), i, p)
        {
                if (json_object_get(p, "from")) {
                        id = json_string_value(json_object_get(p, "instance"));
                        old = json_string_value(json_object_get(p, "from"));
                }
        }
        assert_non_null(id);
        assert_true(in_share(&f, "h3", id));
        assert_true(in_share(&f, old, id));
        assert_false(schedule(&f));
        _cleanup_json_ json_t *starting = heartbeats("h3", id, "starting");
        _cleanup_json_ json_t *reports = heartbeats("h3", id, "running");
        assert_false(schedule_with(&f, starting)); /* not running yet */
        _cleanup_free_ char *keep_id = strdup(id), *keep_old = strdup(old);
        assert_true(schedule_with(&f, reports));
        assert_true(in_share(&f, "h3", keep_id));
        assert_false(in_share(&f, keep_old, keep_id));
        assert_false(schedule_with(&f, reports));
        json_array_foreach(json_object_get(f.state, "placements"), i, p)
            assert_null(json_object_get(p, "from"));
        sk_fsm_clear(&f);
}

static void test_unplaceable(void **state)
{
        sk_fsm f;
        assert_int_equal(sk_fsm_init(&f), 0);
        apply(&f, json_pack("{s:s, s:o}", "op", "desired", "doc", desired_doc(1, NULL)));
        apply_host(&f, host(1, "h1", true, false));
        assert_true(schedule(&f));
        _cleanup_json_ json_t *st = sk_fsm_unplaced_status(&f, "s1", "h1");
        assert_int_equal(json_array_size(st), 1);
        json_t *u = json_array_get(st, 0);
        assert_string_equal(json_string_value(json_object_get(u, "state")), "unplaceable");
        assert_string_equal(json_string_value(json_object_get(u, "instance")),
                            "default/pos-d/cam/0");
        assert_string_equal(json_string_value(json_object_get(u, "version")), "1.0.0");
        assert_non_null(strstr(json_string_value(json_object_get(u, "reason")), "device/camera"));
        sk_fsm_clear(&f);
}

/* The tower's per-tenant quotas in the desired document bound what the scheduler places. */
static void test_quota(void **state)
{
        sk_fsm f;
        assert_int_equal(sk_fsm_init(&f), 0);
        json_t *doc = desired_doc(1, NULL);
        json_object_set_new(doc, "quotas",
                            json_pack("{s:{s:I, s:I, s:I}}", "default", "cpu", (json_int_t)4000,
                                      "memory", (json_int_t)(8LL << 30), "instances",
                                      (json_int_t)2));
        apply(&f, json_pack("{s:s, s:o}", "op", "desired", "doc", doc));
        apply_host(&f, host(1, "h1", true, true));
        apply_host(&f, host(2, "h2", true, false));
        assert_true(schedule(&f));
        /* four instances wanted (api x3, cam x1), two allowed */
        assert_int_equal(json_array_size(json_object_get(f.state, "placements")), 2);
        _cleanup_json_ json_t *st = sk_fsm_unplaced_status(&f, "s1", "h1");
        assert_int_equal(json_array_size(st), 2);
        size_t i;
        json_t *u;
        json_array_foreach(st, i, u)
        {
                assert_string_equal(json_string_value(json_object_get(u, "state")), "unplaceable");
                assert_non_null(strstr(json_string_value(json_object_get(u, "reason")),
                                       "quota of tenant default exceeded"));
        }
        sk_fsm_clear(&f);
}

static void test_snapshot_restore(void **state)
{
        sk_fsm a, b;
        assert_int_equal(sk_fsm_init(&a), 0);
        assert_int_equal(sk_fsm_init(&b), 0);
        apply(&a, json_pack("{s:s, s:o}", "op", "desired", "doc", desired_doc(9, "3s")));
        apply_host(&a, host(1, "h1", true, true));
        apply_host(&a, host(2, "h2", false, false));
        schedule(&a);
        size_t len = 0;
        _cleanup_free_ char *snap = sk_fsm_snapshot(&a, &len);
        assert_non_null(snap);
        assert_int_equal(len % 8, 0);
        assert_int_equal(sk_fsm_restore(&b, snap, len, NULL), 0);
        assert_true(json_equal(a.state, b.state));
        assert_int_equal(sk_fsm_lost_after_ms(&b), 3000);
        /* a broken snapshot leaves the state alone */
        sk_error *err = NULL;
        assert_int_equal(sk_fsm_restore(&b, "{\"hosts\": 3}\0\0\0\0", 16, &err), -EINVAL);
        assert_non_null(err);
        sk_error_free(&err);
        assert_true(json_equal(a.state, b.state));
        /* replaying the same entries on the restored copy gives the same state */
        apply_host(&a, host(3, "h3", true, false));
        apply_host(&b, host(3, "h3", true, false));
        assert_true(json_equal(a.state, b.state));
        sk_fsm_clear(&a);
        sk_fsm_clear(&b);
}

/* The tower's removed-hosts: the host leaves the inventory and joins the deny list on
 * every host alike, a late report does not bring it back, its instances are placed on the
 * others at once (no waiting for host-lost-after), and the list survives a snapshot. */
static void test_removed_hosts(void **state)
{
        sk_fsm f;
        assert_int_equal(sk_fsm_init(&f), 0);
        assert_int_equal(
            apply(&f, json_pack("{s:s, s:o}", "op", "desired", "doc", desired_doc(1, NULL))),
            SK_FSM_DESIRED);
        assert_int_equal(apply_host(&f, host(1, "h1", true, true)), SK_FSM_HOSTS);
        assert_int_equal(apply_host(&f, host(2, "h2", true, false)), SK_FSM_HOSTS);
        assert_int_equal(apply_host(&f, host(3, "h3", true, false)), SK_FSM_HOSTS);
        assert_true(schedule(&f));
        assert_int_equal(count_on(&f, "h2"), 1);
        assert_false(sk_fsm_is_removed(&f, 2));

        /* malformed: nothing changes, the path is named */
        json_t *bad = desired_doc(2, NULL);
        json_object_set_new(bad, "removed-hosts", json_pack("[I, s]", (json_int_t)2, "x"));
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        json_t *cmd = json_pack("{s:s, s:o}", "op", "desired", "doc", bad);
        buf = sk_fsm_encode(cmd, &len);
        json_decref(cmd);
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_fsm_apply(&f, buf, len, &err), -EINVAL);
        assert_string_equal(err->path, "doc.removed-hosts[1]");
        assert_int_equal(sk_fsm_generation(&f), 1);
        assert_non_null(sk_fsm_host(&f, 2));

        json_t *doc = desired_doc(2, NULL);
        json_object_set_new(doc, "removed-hosts", json_pack("[I]", (json_int_t)2));
        assert_int_equal(apply(&f, json_pack("{s:s, s:o}", "op", "desired", "doc", doc)),
                         SK_FSM_DESIRED | SK_FSM_HOSTS);
        assert_true(sk_fsm_is_removed(&f, 2));
        assert_false(sk_fsm_is_removed(&f, 3));
        assert_null(sk_fsm_host(&f, 2));
        /* a heartbeat that raced the removal is ignored */
        assert_int_equal(apply_host(&f, host(2, "h2", true, false)), 0);
        assert_null(sk_fsm_host(&f, 2));
        /* h2's instance moves now: h2 is not lost, it is gone */
        assert_true(schedule(&f));
        assert_int_equal(count_on(&f, "h2"), 0);
        assert_int_equal(count_on(&f, "h1") + count_on(&f, "h3"), 4);
        assert_false(schedule(&f));

        /* the next document lists it again (the tower keeps every removal): no change */
        json_t *again = desired_doc(3, NULL);
        json_object_set_new(again, "removed-hosts", json_pack("[I]", (json_int_t)2));
        assert_int_equal(apply(&f, json_pack("{s:s, s:o}", "op", "desired", "doc", again)),
                         SK_FSM_DESIRED);

        size_t slen = 0;
        _cleanup_free_ char *snap = sk_fsm_snapshot(&f, &slen);
        sk_fsm g;
        assert_int_equal(sk_fsm_init(&g), 0);
        assert_int_equal(sk_fsm_restore(&g, snap, slen, NULL), 0);
        assert_true(sk_fsm_is_removed(&g, 2));
        assert_true(json_equal(g.state, f.state));
        /* a snapshot from before removals existed loads with an empty list */
        _cleanup_json_ json_t *old =
            json_pack("{s:n, s:{}, s:[], s:[]}", "desired", "hosts", "placements", "unplaced");
        _cleanup_free_ char *oldbuf = sk_fsm_encode(old, &slen);
        assert_int_equal(sk_fsm_restore(&g, oldbuf, slen, NULL), 0);
        assert_false(sk_fsm_is_removed(&g, 2));
        assert_int_equal(json_array_size(json_object_get(g.state, "removed")), 0);
        sk_fsm_clear(&g);
        sk_fsm_clear(&f);
}

/* The leader looks for lost hosts when the first alive one's time runs out, not at its
 * next tick. */
static void test_liveness_next_due(void **state)
{
        sk_liveness l;
        sk_liveness_init(&l, 5000);
        int64_t lost[4];
        assert_true(sk_liveness_next_due(&l) == INT64_MAX); /* nobody tracked */
        assert_int_equal(sk_liveness_track(&l, 1, true, 10000), 0);
        assert_int_equal(sk_liveness_track(&l, 2, true, 9000), 0);
        assert_int_equal(sk_liveness_track(&l, 3, false, 1000), 0); /* lost: never due */
        assert_int_equal(sk_liveness_next_due(&l), 14000);
        /* at the due time exactly, the check finds it */
        assert_int_equal(sk_liveness_check(&l, sk_liveness_next_due(&l) - 1, lost), 0);
        assert_int_equal(sk_liveness_check(&l, sk_liveness_next_due(&l), lost), 1);
        assert_int_equal(lost[0], 2);
        assert_int_equal(sk_liveness_next_due(&l), 15000);
        assert_int_equal(sk_liveness_seen(&l, 1, 12000), 0);
        assert_int_equal(sk_liveness_next_due(&l), 17000);
        assert_int_equal(sk_liveness_check(&l, 17000, lost), 1);
        assert_true(sk_liveness_next_due(&l) == INT64_MAX); /* everyone lost */
        sk_liveness_clear(&l);
}

static void test_liveness(void **state)
{
        sk_liveness l;
        sk_liveness_init(&l, 5000);
        int64_t lost[8];
        /* a new leader at t=100 s: h1 known alive, h2 known lost, h3 the old leader last
         * heard at 98 s */
        assert_int_equal(sk_liveness_track(&l, 1, true, 100000), 0);
        assert_int_equal(sk_liveness_track(&l, 2, false, 100000), 0);
        assert_int_equal(sk_liveness_track(&l, 3, true, 98000), 0);
        assert_int_equal(sk_liveness_track(&l, 1, false, 0), 0); /* already tracked: kept */
        assert_int_equal(sk_liveness_state(&l, 1), 1);
        assert_int_equal(sk_liveness_state(&l, 2), 0);
        assert_int_equal(sk_liveness_state(&l, 9), -1);
        assert_int_equal(sk_liveness_check(&l, 102999, lost), 0);
        /* the old leader goes first: 5 s after it was last heard, not after the election */
        assert_int_equal(sk_liveness_check(&l, 103000, lost), 1);
        assert_int_equal(lost[0], 3);
        assert_int_equal(sk_liveness_check(&l, 103001, lost), 0); /* reported once */
        assert_int_equal(sk_liveness_seen(&l, 1, 104000), 0);
        assert_int_equal(sk_liveness_check(&l, 108999, lost), 0);
        assert_int_equal(sk_liveness_check(&l, 109000, lost), 1);
        assert_int_equal(lost[0], 1);
        /* a stale report (no newer than the last contact) does not bring a host back */
        assert_int_equal(sk_liveness_seen(&l, 1, 104000), 0);
        assert_int_equal(sk_liveness_state(&l, 1), 0);
        assert_int_equal(sk_liveness_seen(&l, 1, 109500), 1);
        assert_int_equal(sk_liveness_state(&l, 1), 1);
        /* a host first heard of is alive; forgetting it stops tracking */
        assert_int_equal(sk_liveness_seen(&l, 7, 110000), 0);
        assert_int_equal(sk_liveness_state(&l, 7), 1);
        sk_liveness_forget(&l, 7);
        assert_int_equal(sk_liveness_state(&l, 7), -1);
        /* reset: everyone gets a full period from now */
        sk_liveness_reset(&l, 200000);
        assert_int_equal(sk_liveness_check(&l, 204999, lost), 0);
        assert_int_equal(sk_liveness_check(&l, 205000, lost), 1); /* h1; h2, h3 stay lost */
        sk_liveness_clear(&l);
}

/* Site-local joins: a token is replicated, used once for the next local host id (a range
 * that names the site and cannot meet the tower's ids), refused when expired, and the whole
 * survives a snapshot. */
#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HASH_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

static json_t *token_cmd(const char *hash, int64_t expires, int64_t now)
{
        return json_pack("{s:s, s:s, s:I, s:I}", "op", "join-token", "hash", hash, "expires",
                         (json_int_t)expires, "now", (json_int_t)now);
}

static json_t *use_cmd(const char *hash, int64_t now, int64_t site)
{
        return json_pack("{s:s, s:s, s:I, s:I}", "op", "join-use", "hash", hash, "now",
                         (json_int_t)now, "site-id", (json_int_t)site);
}

static void test_local_joins(void **state)
{
        sk_fsm f, g;
        assert_int_equal(sk_fsm_init(&f), 0);
        assert_int_equal(sk_fsm_init(&g), 0);
        assert_int_equal(sk_fsm_local_host_id(7, 1), (1LL << 62) + 7 * (1LL << 24) + 1);
        assert_int_equal(sk_fsm_local_host_id(0, 1), 0);
        assert_int_equal(sk_fsm_local_host_id(7, 1LL << 24), 0);
        assert_int_equal(sk_fsm_local_host_id(1LL << 38, 1), 0);

        assert_int_equal(apply(&f, token_cmd(HASH_A, 10000, 1000)), SK_FSM_JOINS);
        assert_int_equal(apply(&f, token_cmd(HASH_B, 5000, 1000)), SK_FSM_JOINS);
        assert_true(sk_fsm_join_token_valid(&f, HASH_A, 2000));
        assert_false(sk_fsm_join_token_valid(&f, HASH_A, 10000));
        assert_false(sk_fsm_join_token_valid(&f, HASH_C, 2000));
        assert_int_equal(sk_fsm_join_result(&f, HASH_A), 0);

        /* used: the first local id of site 7, recorded under the hash; the token is gone */
        assert_int_equal(apply(&f, use_cmd(HASH_A, 2000, 7)), SK_FSM_JOINS);
        int64_t first = sk_fsm_local_host_id(7, 1);
        assert_int_equal(sk_fsm_join_result(&f, HASH_A), first);
        assert_false(sk_fsm_join_token_valid(&f, HASH_A, 2000));
        /* used twice: nothing changes, no second id */
        assert_int_equal(apply(&f, use_cmd(HASH_A, 2100, 7)), 0);
        assert_int_equal(sk_fsm_join_result(&f, HASH_A), first);
        /* expired at the entry's time: refused (no result) */
        assert_int_equal(apply(&f, use_cmd(HASH_B, 5000, 7)), 0);
        assert_int_equal(sk_fsm_join_result(&f, HASH_B), 0);
        /* an unknown token likewise */
        assert_int_equal(apply(&f, use_cmd(HASH_C, 2000, 7)), 0);
        assert_int_equal(sk_fsm_join_result(&f, HASH_C), 0);

        /* a snapshot carries tokens, results and the counter: the next id follows */
        assert_int_equal(apply(&f, token_cmd(HASH_C, 90000, 6000)), SK_FSM_JOINS);
        size_t len = 0;
        _cleanup_free_ char *snap = sk_fsm_snapshot(&f, &len);
        assert_int_equal(sk_fsm_restore(&g, snap, len, NULL), 0);
        assert_true(json_equal(f.state, g.state));
        assert_int_equal(apply(&g, use_cmd(HASH_C, 7000, 7)), SK_FSM_JOINS);
        assert_int_equal(sk_fsm_join_result(&g, HASH_C), sk_fsm_local_host_id(7, 2));
        assert_int_equal(sk_fsm_join_result(&g, HASH_A), first);

        /* malformed entries change nothing and name the field */
        _cleanup_json_ json_t *before = json_deep_copy(g.state);
        static const char *const bad[][2] = {
            {"{\"op\": \"join-token\", \"hash\": \"ABC\", \"expires\": 1, \"now\": 0}", "hash"},
            {"{\"op\": \"join-token\", \"hash\": \"" HASH_A "\", \"expires\": \"x\", \"now\": 0}",
             "expires"},
            {"{\"op\": \"join-use\", \"hash\": \"" HASH_A "\", \"now\": 1}", "site-id"},
            {"{\"op\": \"join-use\", \"hash\": \"" HASH_A "\", \"site-id\": 7}", "now"},
            {"{\"op\": \"join-use\", \"hash\": 5, \"now\": 1, \"site-id\": 7}", "hash"},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                sk_error *err = NULL;
                size_t n = strlen(bad[i][0]);
                _cleanup_free_ char *buf = calloc(1, (n + 8) / 8 * 8);
                memcpy(buf, bad[i][0], n);
                assert_int_equal(sk_fsm_apply(&g, buf, (n + 8) / 8 * 8, &err), -EINVAL);
                assert_non_null(err);
                assert_string_equal(err->path, bad[i][1]);
                sk_error_free(&err);
        }
        assert_true(json_equal(before, g.state));

        /* a snapshot with a damaged field is refused */
        sk_error *err = NULL;
        static const char broken[] = "{\"hosts\": {}, \"placements\": [], \"unplaced\": [], "
                                     "\"join-tokens\": []}\0\0\0\0\0\0";
        assert_int_equal(sk_fsm_restore(&g, broken, sizeof(broken) - 1, &err), -EINVAL);
        assert_string_equal(err->path, "join-tokens");
        sk_error_free(&err);
        sk_fsm_clear(&f);
        sk_fsm_clear(&g);
}

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static json_t *site_ca_cmd(int gen, const char *sha)
{
        return json_pack("{s:s, s:i, s:s, s:s, s:s}", "op", "site-ca", "generation", gen,
                         "certificate", "CERT", "key", "KEY", "sha256", sha);
}

/* Site CA generations (docs/security.md): the newest is kept, the pin follows the
 * desired document's announcement first, snapshots carry it. */
static void test_site_ca(void **state)
{
        sk_fsm f;
        assert_int_equal(sk_fsm_init(&f), 0);
        assert_int_equal(sk_fsm_site_ca_generation(&f), 0);
        assert_null(sk_fsm_site_ca_pin(&f));
        assert_int_equal(apply(&f, site_ca_cmd(2, SHA_A)), SK_FSM_SITE_CA);
        assert_int_equal(sk_fsm_site_ca_generation(&f), 2);
        assert_string_equal(sk_fsm_site_ca_pin(&f), SHA_A);
        assert_string_equal(json_string_value(json_object_get(sk_fsm_site_ca(&f), "key")), "KEY");
        /* an older or equal generation changes nothing */
        assert_int_equal(apply(&f, site_ca_cmd(1, SHA_B)), 0);
        assert_int_equal(apply(&f, site_ca_cmd(2, SHA_B)), 0);
        assert_string_equal(sk_fsm_site_ca_pin(&f), SHA_A);
        /* malformed entries change nothing */
        assert_int_equal(apply(&f, site_ca_cmd(0, SHA_B)), -EINVAL);
        assert_int_equal(apply(&f, site_ca_cmd(3, "ABC")), -EINVAL);
        assert_int_equal(apply(&f, json_pack("{s:s, s:i, s:s, s:s}", "op", "site-ca", "generation",
                                             3, "certificate", "C", "sha256", SHA_B)),
                         -EINVAL);
        assert_int_equal(sk_fsm_site_ca_generation(&f), 2);
        /* a document announcing generation 3 pins peers to it before its key arrives */
        assert_int_equal(sk_fsm_site_ca_announced(&f), 0);
        json_t *doc = desired_doc(1, NULL);
        json_object_set_new(doc, "site-ca",
                            json_pack("{s:i, s:s}", "generation", 3, "sha256", SHA_B));
        assert_true(apply(&f, json_pack("{s:s, s:o}", "op", "desired", "doc", doc)) > 0);
        assert_int_equal(sk_fsm_site_ca_announced(&f), 3);
        assert_string_equal(sk_fsm_site_ca_pin(&f), SHA_B);
        assert_false(sk_fsm_site_ca_allows_leaf(&f, SHA_A));
        doc = desired_doc(2, NULL);
        json_object_set_new(
            doc, "site-ca",
            json_pack("{s:i, s:s, s:[s]}", "generation", 3, "sha256", SHA_B, "leaves", SHA_A));
        assert_true(apply(&f, json_pack("{s:s, s:o}", "op", "desired", "doc", doc)) > 0);
        assert_true(sk_fsm_site_ca_allows_leaf(&f, SHA_A));
        assert_false(sk_fsm_site_ca_allows_leaf(&f, SHA_B));
        assert_false(sk_fsm_site_ca_allows_leaf(&f, NULL));
        assert_int_equal(apply(&f, site_ca_cmd(3, SHA_B)), SK_FSM_SITE_CA);
        /* snapshots carry it */
        size_t len = 0;
        _cleanup_free_ char *snap = sk_fsm_snapshot(&f, &len);
        sk_fsm g;
        assert_int_equal(sk_fsm_init(&g), 0);
        assert_int_equal(sk_fsm_restore(&g, snap, len, NULL), 0);
        assert_int_equal(sk_fsm_site_ca_generation(&g), 3);
        assert_string_equal(sk_fsm_site_ca_pin(&g), SHA_B);
        sk_fsm_clear(&g);
        sk_fsm_clear(&f);
}

/* What the tower sends once a host removal re-keyed the site CA still schedules (the
 * model knows the document's site-ca announcement). */
static void test_schedule_with_site_ca(void **unused)
{
        sk_fsm f;
        assert_int_equal(sk_fsm_init(&f), 0);
        assert_int_equal(apply_host(&f, host(1, "h1", true, false)), SK_FSM_HOSTS);
        json_t *doc = desired_doc(4, NULL);
        json_object_set_new(
            doc, "site-ca",
            json_pack("{s:i, s:s, s:[s]}", "generation", 2, "sha256", SHA_B, "leaves", SHA_A));
        assert_true(apply(&f, json_pack("{s:s, s:o}", "op", "desired", "doc", doc)) > 0);
        assert_int_equal(sk_fsm_site_ca_announced(&f), 2);
        assert_true(schedule(&f));
        assert_false(schedule(&f));
        sk_fsm_clear(&f);
}

/* A snapshot as the site wrote it before the FSM read its desired document by the model
 * (compact JSON, keys sorted): it restores, its views read the same, and a snapshot of the
 * restored state is the same bytes (raft logs and snapshots stay compatible). */
static const char OLD_SNAPSHOT[] =
    "{\"desired\":{\"deployments\":[{\"application\":\"pos\",\"name\":\"pos-d\",\"spec\":{"
    "\"kind\":\"application\",\"name\":\"pos\",\"services\":[{\"containers\":[{\"image\":"
    "\"localhost/busybox:latest\",\"name\":\"api\",\"restart\":\"always\"}],\"name\":\"api\","
    "\"network\":{\"outbound\":\"deny\"},\"replicas\":2}],\"version\":\"1.0.0\"},\"tenant\":"
    "\"default\",\"version\":\"1.0.0\"}],\"generation\":3,\"site\":{\"host-lost-after\":\"2s\","
    "\"labels\":{},\"name\":\"s1\",\"tenant\":\"default\"}},\"hosts\":{\"1\":{\"address\":"
    "\"127.0.0.1:1\",\"alive\":true,\"capacity\":{\"cpu\":4000,\"memory\":8589934592},"
    "\"devices\":{},\"id\":1,\"labels\":{\"system/name\":\"h1\"},\"name\":\"h1\"}},"
    "\"local-count\":0,\"placements\":[{\"host\":\"h1\",\"instance\":\"default/pos-d/api/0\","
    "\"spec-hash\":\"ab\"},{\"from\":\"h1\",\"host\":\"h2\",\"instance\":"
    "\"default/pos-d/api/1\",\"spec-hash\":\"ab\"}],\"removed\":[7],\"unplaced\":[]}";

static void test_old_snapshot_restores(void **unused)
{
        sk_fsm f;
        assert_int_equal(sk_fsm_init(&f), 0);
        _cleanup_error_ sk_error *err = NULL;
        if (sk_fsm_restore(&f, OLD_SNAPSHOT, sizeof(OLD_SNAPSHOT), &err) < 0)
                fail_msg("restore: %s", sk_error_msg(err, -EINVAL));
        assert_int_equal(sk_fsm_generation(&f), 3);
        assert_int_equal(sk_fsm_lost_after_ms(&f), 2000);
        assert_true(sk_fsm_is_removed(&f, 7));
        assert_int_equal(sk_fsm_desired(&f)->deployments.items[0].spec.services.items[0].replicas,
                         2);
        size_t len = 0;
        _cleanup_free_ char *snap = sk_fsm_snapshot(&f, &len);
        assert_string_equal(snap, OLD_SNAPSHOT);
        /* h1 runs api/0 and, until h2 does, api/1; the spec as the tower sent it */
        _cleanup_json_ json_t *placed = NULL;
        assert_int_equal(sk_fsm_local_placed(&f, "h1", NULL, &placed, NULL), 0);
        assert_int_equal(json_array_size(placed), 2);
        json_t *one = json_array_get(placed, 1);
        assert_string_equal(json_string_value(json_object_get(one, "application")), "pos");
        _cleanup_json_ json_t *old = json_loads(OLD_SNAPSHOT, 0, NULL);
        json_t *svc = json_array_get(
            json_object_get(
                json_object_get(
                    json_array_get(json_object_get(json_object_get(old, "desired"), "deployments"),
                                   0),
                    "spec"),
                "services"),
            0);
        assert_true(json_equal(json_object_get(one, "spec"), svc));
        /* a snapshot whose document the model refuses is refused, the state unchanged */
        json_object_set_new(svc, "replicas", json_integer(-1));
        _cleanup_free_ char *bad = json_dumps(old, JSON_COMPACT);
        sk_error_free(&err);
        assert_int_equal(sk_fsm_restore(&f, bad, strlen(bad) + 1, &err), -EINVAL);
        assert_string_equal(err->path, "desired.deployments[0].spec.services[0].replicas");
        assert_int_equal(sk_fsm_generation(&f), 3);
        sk_fsm_clear(&f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_apply_and_changes),
            cmocka_unit_test(test_malformed_entries),
            cmocka_unit_test(test_schedule_and_local_share),
            cmocka_unit_test(test_unplaceable),
            cmocka_unit_test(test_quota),
            cmocka_unit_test(test_snapshot_restore),
            cmocka_unit_test(test_removed_hosts),
            cmocka_unit_test(test_liveness),
            cmocka_unit_test(test_liveness_next_due),
            cmocka_unit_test(test_local_joins),
            cmocka_unit_test(test_site_ca),
            cmocka_unit_test(test_schedule_with_site_ca),
            cmocka_unit_test(test_old_snapshot_restores),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

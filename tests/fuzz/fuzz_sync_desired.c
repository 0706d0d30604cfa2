/* The agent's handling of a desired document from the tower (GET /v1/sync/desired), on
 * any JSON: the document goes into the site's replicated state as a "desired" entry
 * beside one host, the scheduler's answer is applied, and this host's share is built into
 * containers (an array is also taken as placed instances, as the supervisor takes them).
 * Nothing may crash or leak; a refusal names the field; a built container has a name,
 * image, labels and a spec hash, and building again gives the same hashes. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "host/desired.h"
#include "site/cluster_fsm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char SITE[] = "store-001", HOST[] = "h1";

static void check_set(const sk_desired_set *s)
{
        for (size_t i = 0; i < s->n; i++) {
                const sk_desired_instance *in = &s->items[i];
                if (!in->id || !json_is_object(in->meta))
                        abort();
                if (in->fail_reason)
                        continue;
                for (size_t k = 0; k < in->n_containers; k++) {
                        const sk_desired_container *c = &in->containers[k];
                        if (!c->name || !c->image || !c->spec_hash || !c->env ||
                            !json_is_object(c->labels) || strlen(c->spec_hash) < 32)
                                abort();
                }
        }
}

static bool same_hashes(const sk_desired_set *a, const sk_desired_set *b)
{
        if (a->n != b->n)
                return false;
        for (size_t i = 0; i < a->n; i++) {
                const sk_desired_instance *x = &a->items[i], *y = &b->items[i];
                if (x->n_containers != y->n_containers || !x->fail_reason != !y->fail_reason)
                        return false;
                if (x->fail_reason)
                        continue; /* nothing of it is created, hashes need not exist */
                for (size_t k = 0; k < x->n_containers; k++)
                        if (strcmp(x->containers[k].spec_hash, y->containers[k].spec_hash) != 0)
                                return false;
        }
        return true;
}

/* Builds the containers of placed instances twice; refusals must name a reason. */
static void build(const json_t *placed)
{
        sk_desired_set a, b;
        sk_error *err = NULL;
        int r = sk_desired_build(placed, SITE, HOST, &a, &err);
        if (r < 0) {
                if (!err || !err->msg)
                        abort();
                sk_error_free(&err);
                return;
        }
        check_set(&a);
        if (sk_desired_build(placed, SITE, HOST, &b, NULL) < 0 || !same_hashes(&a, &b))
                abort();
        sk_desired_set_clear(&a);
        sk_desired_set_clear(&b);
}

static int apply(sk_fsm *f, json_t *cmd, sk_error **err)
{
        size_t len = 0;
        _cleanup_free_ char *buf = sk_fsm_encode(cmd, &len);
        json_decref(cmd);
        if (!buf)
                return -ENOMEM;
        return sk_fsm_apply(f, buf, len, err);
}

static void clustered(const json_t *doc)
{
        sk_fsm f;
        if (sk_fsm_init(&f) < 0)
                abort();
        _cleanup_json_ json_t *disc =
            json_pack("{s:[{s:s, s:s, s:s, s:i, s:i}]}", "camera", "path", "/dev/video0",
                      "host-path", "/dev/video0", "type", "char", "major", 81, "minor", 0);
        json_t *host =
            json_pack("{s:i, s:s, s:s, s:{s:s, s:s, s:s}, s:O, s:{s:i, s:I}, s:b}", "id", 1, "name",
                      HOST, "address", "127.0.0.1:7443", "labels", "system/name", HOST, "role",
                      "till", "device/camera", "1", "devices", disc, "capacity", "cpu", 4000,
                      "memory", (json_int_t)(8LL << 30), "alive", true);
        if (apply(&f, json_pack("{s:s, s:o}", "op", "host", "host", host), NULL) != SK_FSM_HOSTS)
                abort();
        sk_error *err = NULL;
        int r = apply(&f, json_pack("{s:s, s:O}", "op", "desired", "doc", doc), &err);
        if (r < 0) {
                if (!err || !err->msg)
                        abort();
                sk_error_free(&err);
                sk_fsm_clear(&f);
                return;
        }
        json_t *cmd = NULL;
        r = sk_fsm_schedule(&f, NULL, &cmd, &err);
        if (r < 0) {
                if (!err || !err->msg)
                        abort();
                sk_error_free(&err);
        } else if (cmd && apply(&f, cmd, NULL) < 0) {
                abort(); /* the scheduler's own answer must apply */
        }
        json_t *placed = NULL;
        r = sk_fsm_local_placed(&f, HOST, disc, &placed, &err);
        if (r < 0) {
                if (!err || !err->msg)
                        abort();
                sk_error_free(&err);
        } else {
                build(placed);
                json_decref(placed);
        }
        json_decref(sk_fsm_unplaced_status(&f, SITE, HOST));
        sk_fsm_clear(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_json_ json_t *doc = json_loadb((const char *)data, size, 0, NULL);
        if (!doc)
                return 0;
        if (json_is_array(doc))
                build(doc);
        clustered(doc);
        return 0;
}

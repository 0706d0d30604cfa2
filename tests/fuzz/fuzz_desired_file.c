/* The agent's loading of its persisted DIR/desired.json (sk_desired_load), on any file
 * content: it loads a JSON object with an integer generation or refuses with a message
 * (never "no file"); what loads goes through what the agent does with it at start (the
 * site cluster's "desired" entry, the scheduler, this host's share and its containers),
 * and written
 * back the way the uplink persists a document, it loads again to the same document. */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/pki.h"
#include "host/desired.h"
#include "site/cluster_fsm.h"
#include "site/uplink.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static char dir[64], file[96];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path);
}

/* A failed check: remove the temporary folder first (an abort skips atexit), then crash
 * for libFuzzer to keep the input. */
static void fail(void)
{
        nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
        abort();
}

static void cleanup(void)
{
        nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        strcpy(dir, "/tmp/sk-fuzz-desired-XXXXXX");
        if (!mkdtemp(dir))
                fail();
        snprintf(file, sizeof(file), "%s/desired.json", dir);
        atexit(cleanup);
        return 0;
}

static int apply(sk_fsm *f, json_t *cmd, sk_error **err)
{
        size_t len = 0;
        _cleanup_free_ char *buf = sk_fsm_encode(cmd, &len);
        json_decref(cmd);
        return buf ? sk_fsm_apply(f, buf, len, err) : -ENOMEM;
}

/* This host's containers from a state holding the document; refusals name a reason. */
static int build_local(sk_fsm *f, sk_error **err)
{
        json_t *sched = NULL;
        int r = sk_fsm_schedule(f, NULL, &sched, err);
        if (r >= 0 && sched && apply(f, sched, NULL) < 0)
                fail(); /* the scheduler's own answer must apply */
        _cleanup_json_ json_t *placed = NULL;
        if (r >= 0)
                r = sk_fsm_local_placed(f, "h1", NULL, &placed, err);
        sk_desired_set set;
        if (r >= 0)
                r = sk_desired_build(placed, "store-001", "h1", &set, err);
        if (r >= 0)
                sk_desired_set_clear(&set);
        return r;
}

/* The loaded document as the agent uses it: a cluster seeds its replicated state from
 * the file, the leader schedules, this host builds its share. Only refusals with a
 * message are allowed. */
static void use(const json_t *doc)
{
        sk_fsm f;
        if (sk_fsm_init(&f) < 0)
                fail();
        json_t *host = json_pack("{s:i, s:s, s:s, s:{s:s, s:s}, s:{}, s:{s:i, s:I}, s:b}", "id", 1,
                                 "name", "h1", "address", "127.0.0.1:7443", "labels", "system/name",
                                 "h1", "role", "till", "devices", "capacity", "cpu", 4000, "memory",
                                 (json_int_t)(8LL << 30), "alive", true);
        if (apply(&f, json_pack("{s:s, s:o}", "op", "host", "host", host), NULL) != SK_FSM_HOSTS)
                fail();
        sk_error *err = NULL;
        int r = apply(&f, json_pack("{s:s, s:O}", "op", "desired", "doc", doc), &err);
        if (r >= 0)
                r = build_local(&f, &err);
        if (r < 0 && (!err || !err->msg))
                fail();
        sk_error_free(&err);
        sk_fsm_clear(&f);
}

#define PERSIST_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* The uplink persists what the tower sent (uplink.c take_desired). The tower renders
 * reals at 15 digits too, so only a document that survives that rendering can come from
 * it (a file with a real of more digits, near the largest double, was never written by
 * an agent). Such a document, persisted, loads back equal and persists to the same bytes. */
static void persist_again(const json_t *doc)
{
        _cleanup_free_ char *sent = json_dumps(doc, PERSIST_FLAGS);
        if (!sent)
                fail();
        _cleanup_json_ json_t *taken = json_loads(sent, 0, NULL);
        if (!taken)
                return;
        _cleanup_free_ char *text = json_dumps(taken, PERSIST_FLAGS);
        if (!text || sk_file_write(file, text, strlen(text), 0600, NULL) < 0)
                fail();
        _cleanup_json_ json_t *again = NULL;
        sk_error *err = NULL;
        if (sk_desired_load(dir, &again, &err) < 0) {
                fprintf(stderr, "the persisted document does not load: %s\n",
                        sk_error_msg(err, EINVAL));
                fail();
        }
        _cleanup_free_ char *text2 = json_dumps(again, PERSIST_FLAGS);
        if (!json_equal(taken, again) || !text2 || strcmp(text, text2) != 0)
                fail();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (sk_file_write(file, (const char *)data, size, 0600, NULL) < 0)
                fail();
        json_t *doc = NULL;
        sk_error *err = NULL;
        int r = sk_desired_load(dir, &doc, &err);
        if (r < 0) {
                if (r == -ENOENT || !err || !err->msg)
                        fail();
                sk_error_free(&err);
                return 0;
        }
        if (!json_is_object(doc) || !json_is_integer(json_object_get(doc, "generation")))
                fail();
        use(doc);

        persist_again(doc);
        json_decref(doc);
        return 0;
}

/* A heartbeat as the site LAN can send it to the leader (heartbeat.h), on any bytes: it is
 * refused with a message naming the field, or accepted as a report the parser accepts
 * again unchanged and whose inventory entry the replicated state (cluster_fsm.h) takes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "site/cluster_fsm.h"
#include "site/heartbeat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PEER 7

/* The entry goes into a fresh state as the leader proposes it. */
static void apply_entry(const json_t *report)
{
        _cleanup_json_ json_t *entry = sk_heartbeat_host_entry(report, PEER, true);
        _cleanup_json_ json_t *cmd = json_pack("{s:s, s:O}", "op", "host", "host", entry);
        size_t len = 0;
        _cleanup_free_ char *buf = cmd ? sk_fsm_encode(cmd, &len) : NULL;
        if (!buf)
                abort();
        sk_fsm f;
        if (sk_fsm_init(&f) < 0)
                abort();
        sk_error *err = NULL;
        if (sk_fsm_apply(&f, buf, len, &err) != SK_FSM_HOSTS)
                abort(); /* what the parser accepts, the state must take */
        sk_fsm_clear(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_json_ json_t *body = json_loadb((const char *)data, size, 0, NULL);
        if (!body)
                return 0;
        _cleanup_json_ json_t *report = NULL;
        sk_error *err = NULL;
        if (sk_heartbeat_parse(body, PEER, &report, &err) < 0) {
                if (!err || !err->msg || report)
                        abort();
                sk_error_free(&err);
                return 0;
        }
        if (json_integer_value(json_object_get(report, "host-id")) != PEER ||
            !json_is_object(json_object_get(report, "devices")) ||
            !json_is_array(json_object_get(report, "instances")))
                abort();
        _cleanup_json_ json_t *again = NULL;
        if (sk_heartbeat_parse(report, PEER, &again, NULL) < 0 || !json_equal(report, again))
                abort();
        /* another host's certificate cannot send it under this id */
        _cleanup_json_ json_t *other = NULL;
        if (json_object_get(body, "host-id") &&
            sk_heartbeat_parse(body, PEER + 1, &other, NULL) == 0)
                abort();
        apply_entry(report);
        return 0;
}

/* The site's documents through their models (src/model): raft entries, snapshots and
 * status reports arrive from other hosts and from the tower, so any JSON is accepted or
 * refused with a path and message. The first byte picks the model (desired, host,
 * placement, unplaced, instance status, application, site state, site command); the rest is the
 * JSON. What parses writes back to JSON that parses again to an equal struct and writes the same
 * JSON (to_json(from_json(to_json(x))) == to_json(x)). */
#include <stdint.h>
#include <stdlib.h>

#include "model/app.h"
#include "model/desired.h"
#include "model/host.h"
#include "model/instance.h"
#include "model/resource.h"
#include "model/site_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const sk_model *const models[] = {&sk_desired_doc_table,     &sk_host_table,
                                          &sk_placement_table,       &sk_unplaced_table,
                                          &sk_instance_status_table, &sk_app_embedded_table,
                                          &sk_site_state_table,      &sk_site_command_table};
        if (size < 1)
                return 0;
        const sk_model *m = models[data[0] % (sizeof(models) / sizeof(models[0]))];
        json_t *in = json_loadb((const char *)data + 1, size - 1, JSON_DECODE_ANY, NULL);
        if (!in)
                return 0;
        void *x = NULL, *y = NULL;
        sk_error *err = NULL;
        if (sk_resource_from_json(m, in, &x, &err) < 0) {
                if (!err || !err->msg || (err->code == EINVAL && !err->path))
                        abort();
                sk_error_free(&err);
                json_decref(in);
                return 0;
        }
        json_t *out = sk_model_write(m, x);
        if (!out || sk_resource_from_json(m, out, &y, &err) < 0 || !sk_model_equal(m, x, y))
                abort();
        json_t *again = sk_model_write(m, y);
        if (!again || !json_equal(out, again))
                abort();
        json_decref(again);
        json_decref(out);
        sk_resource_free(m, x);
        sk_resource_free(m, y);
        json_decref(in);
        return 0;
}

/* YAML documents through the validators: any input is accepted or refused with a path
 * and message; a normalised document validates again to itself (normalising is
 * idempotent), and the error path always leads to a position. */
#include <stdint.h>
#include <stdlib.h>

#include "common/yaml.h"
#include "model/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        sk_yaml_docs docs;
        sk_error *err = NULL;
        if (sk_yaml_load((const char *)data, size, &docs, &err) < 0) {
                sk_error_free(&err);
                return 0;
        }
        for (size_t i = 0; i < docs.n; i++) {
                json_t *out = NULL, *again = NULL;
                if (sk_spec_validate(docs.docs[i].value, &out, &err) < 0) {
                        int line, col;
                        if (!err || !err->msg || !err->path ||
                            sk_yaml_doc_position(&docs.docs[i], err->path, &line, &col) != 0)
                                abort();
                        sk_error_free(&err);
                        continue;
                }
                if (sk_spec_validate(out, &again, &err) < 0 || !json_equal(out, again))
                        abort();
                json_decref(out);
                json_decref(again);
        }
        sk_yaml_docs_free(&docs);
        return 0;
}

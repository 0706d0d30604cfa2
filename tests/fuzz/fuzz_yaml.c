/* YAML loading: any input either loads or fails cleanly; what loads dumps to YAML that
 * loads back to the same values, and every recorded path finds its own position. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/yaml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        sk_yaml_docs docs;
        sk_error *err = NULL;
        if (sk_yaml_load((const char *)data, size, &docs, &err) < 0) {
                if (!err || !err->msg)
                        abort();
                sk_error_free(&err);
                return 0;
        }
        for (size_t i = 0; i < docs.n; i++) {
                const sk_yaml_doc *d = &docs.docs[i];
                for (size_t k = 0; k < d->npos; k++) {
                        int line = 0, col = 0;
                        if (sk_yaml_doc_position(d, d->pos[k].path, &line, &col) != 0 ||
                            line != d->pos[k].line || col != d->pos[k].column)
                                abort();
                }
                char *text = sk_yaml_dump(d->value);
                if (!text)
                        abort();
                sk_yaml_docs again;
                if (sk_yaml_load(text, strlen(text), &again, &err) < 0 || again.n != 1 ||
                    !json_equal(d->value, again.docs[0].value))
                        abort(); /* the dump must load back to the same value */
                sk_yaml_docs_free(&again);
                free(text);
        }
        sk_yaml_docs_free(&docs);
        return 0;
}

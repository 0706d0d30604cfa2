/* Config files of the server roles (common/conffile.h) and the CLI's -o jsonpath= templates:
 * any text either parses into flags that all start with "--" (each followed by at most one
 * value) or gives an error with a message; a template either renders or names a column.
 *
 * Input: one byte choosing the parser (even: config file, odd: jsonpath), then the text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/jsonpath.h"
#include "common/cleanup.h"
#include "common/conffile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char answer[] =
    "{\"items\": [{\"name\": \"a\", \"labels\": {\"k\": \"v\"}, \"n\": [1, "
    "2, {\"x\": null}]}, {\"name\": \"b\"}], \"kind\": \"site\"}";

static void conffile(const char *text)
{
        char **args = NULL;
        size_t n = 0;
        _cleanup_error_ sk_error *err = NULL;
        if (sk_conffile_parse(text, "f.conf", &args, &n, &err) < 0) {
                if (!err || !err->msg || strncmp(err->msg, "f.conf:", 7) != 0)
                        abort();
                return;
        }
        if (!args || args[n])
                abort();
        if (n > 0 && strncmp(args[0], "--", 2) != 0)
                abort();
        for (size_t i = 1; i < n; i++) /* never two values in a row */
                if (strncmp(args[i - 1], "--", 2) != 0 && strncmp(args[i], "--", 2) != 0)
                        abort();
        sk_conffile_free(args);
}

static void jsonpath(const char *tmpl)
{
        _cleanup_json_ json_t *v = json_loads(answer, 0, NULL);
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_free_ char *out = NULL;
        if (sk_cli_jsonpath(tmpl, v, &out, &err) < 0) {
                if (!err || err->column < 1 || (size_t)err->column > strlen(tmpl) + 1)
                        abort();
        } else if (!out) {
                abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 1)
                return 0;
        _cleanup_free_ char *text = strndup((const char *)data + 1, size - 1);
        if (!text)
                return 0;
        if (data[0] % 2 == 0)
                conffile(text);
        else
                jsonpath(text);
        return 0;
}

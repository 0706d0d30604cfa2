/* Host certificate chains as PEM text from outside: what a site's leader forwards in a
 * status report for the tower to adopt a host on (sk_pki_verify_pem, docs/security.md).
 *
 * Input: the PEM text. Verified against a tower CA made once in a temporary folder: an
 * accepted chain names a skerry host and a site CA fingerprint of 64 hex digits or none;
 * a refused one says why. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/pki.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sk_ca *ca;
static char dir[] = "/tmp/sk-fuzz-pki-XXXXXX";

/* Leaves nothing behind. */
static void cleanup(void)
{
        static const char *const files[] = {"ca.pem", "ca.key"};
        for (size_t i = 0; i < 2; i++) {
                char path[64];
                snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
                unlink(path);
        }
        rmdir(dir);
        sk_ca_free(ca);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        if (!mkdtemp(dir) || sk_ca_open(dir, &ca, NULL) < 0)
                abort();
        atexit(cleanup);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        char *uri = NULL;
        char fp[SK_PKI_FP_LEN] = "x";
        sk_error *err = NULL;
        int r = sk_pki_verify_pem(text, sk_ca_cert_pem(ca), &uri, fp, &err);
        if (r < 0 && (!err || !err->msg || uri))
                abort();
        if (r >= 0 && (sk_pki_parse_host_uri(uri, NULL, NULL) < 0 ||
                       (fp[0] && strspn(fp, "0123456789abcdef") != 64)))
                abort();
        sk_error_free(&err);
        free(uri);
        free(text);
        return 0;
}

/* The shared CA of tower replicas (replica.h). The certificate is stored in clear
 * (setting "ca.pem"); the private key as base64(nonce | crypto_secretbox(key PEM)) under a
 * 32-byte key that never enters the store: DIR/store.key (hex, mode 0600), which the
 * operator copies from the first replica to the others. */
#include "tower/replica.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"

#define SEALED_PREFIX "secretbox:"

typedef struct secret {
        char *p;
        size_t len;
} secret;

static void secret_free(secret *s)
{
        if (s->p) {
                sodium_memzero(s->p, s->len);
                free(s->p);
        }
}
#define _cleanup_secret_ __attribute__((cleanup(secret_free)))

static char *path_of(const char *dir, const char *name)
{
        char *p = NULL;
        return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

/* DIR/store.key into key; created when missing and create is set. */
static int store_key(const char *dir, bool create, unsigned char key[crypto_secretbox_KEYBYTES],
                     sk_error **err)
{
        _cleanup_free_ char *path = path_of(dir, "store.key");
        if (!path)
                return sk_error_set(err, ENOMEM, "out of memory");
        _cleanup_secret_ secret text = {0};
        if (access(path, F_OK) != 0) {
                if (!create)
                        return sk_error_set(err, ENOENT,
                                            "the store holds a CA sealed with the store key of "
                                            "the replica that created it: copy that replica's "
                                            "store.key to %s (mode 0600)",
                                            path);
                randombytes_buf(key, crypto_secretbox_KEYBYTES);
                char hex[crypto_secretbox_KEYBYTES * 2 + 2];
                sodium_bin2hex(hex, sizeof(hex) - 1, key, crypto_secretbox_KEYBYTES);
                strcat(hex, "\n");
                int r = sk_file_write(path, hex, strlen(hex), 0600, err);
                sodium_memzero(hex, sizeof(hex));
                if (r >= 0)
                        sk_info("created %s: copy it to every other replica's data folder", path);
                return r;
        }
        int r = sk_file_read(path, &text.p, &text.len, err);
        if (r < 0)
                return r;
        size_t bin_len = 0;
        if (sodium_hex2bin(key, crypto_secretbox_KEYBYTES, text.p, text.len, " \n", &bin_len,
                           NULL) != 0 ||
            bin_len != crypto_secretbox_KEYBYTES)
                return sk_error_set(err, EINVAL, "%s: must hold %d hex digits", path,
                                    crypto_secretbox_KEYBYTES * 2);
        return 0;
}

static int seal(const unsigned char *key, const char *plain, char **out, sk_error **err)
{
        size_t n = strlen(plain);
        size_t box_len = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + n;
        _cleanup_free_ unsigned char *box = malloc(box_len);
        size_t b64_len = sodium_base64_ENCODED_LEN(box_len, sodium_base64_VARIANT_ORIGINAL);
        char *text = malloc(strlen(SEALED_PREFIX) + b64_len);
        if (!box || !text) {
                free(text);
                return sk_error_set(err, ENOMEM, "out of memory");
        }
        randombytes_buf(box, crypto_secretbox_NONCEBYTES);
        crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, (const unsigned char *)plain, n,
                              box, key);
        strcpy(text, SEALED_PREFIX);
        sodium_bin2base64(text + strlen(SEALED_PREFIX), b64_len, box, box_len,
                          sodium_base64_VARIANT_ORIGINAL);
        *out = text;
        return 0;
}

static int unseal(const unsigned char *key, const char *text, const char *dir, secret *out,
                  sk_error **err)
{
        size_t pre = strlen(SEALED_PREFIX);
        if (strncmp(text, SEALED_PREFIX, pre) != 0)
                return sk_error_set(err, EINVAL, "the store's CA key is not sealed as expected");
        text += pre;
        size_t cap = strlen(text);
        _cleanup_free_ unsigned char *box = malloc(cap + 1);
        size_t box_len = 0;
        if (!box)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (sodium_base642bin(box, cap, text, cap, NULL, &box_len, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0 ||
            box_len < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
                return sk_error_set(err, EINVAL, "the store's CA key is damaged");
        out->len = box_len - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
        out->p = malloc(out->len + 1);
        if (!out->p)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (crypto_secretbox_open_easy((unsigned char *)out->p, box + crypto_secretbox_NONCEBYTES,
                                       box_len - crypto_secretbox_NONCEBYTES, box, key) != 0)
                return sk_error_set(err, EACCES,
                                    "%s/store.key does not open the CA in the store: it is not "
                                    "the key of the replica that created it",
                                    dir);
        out->p[out->len] = '\0';
        return 0;
}

/* The first replica: its own CA (created when missing) goes into the store. */
static int publish_ca(sk_store *s, const char *dir, sk_ca **ca, sk_error **err)
{
        unsigned char key[crypto_secretbox_KEYBYTES];
        int r = store_key(dir, true, key, err);
        if (r < 0)
                return r;
        r = sk_ca_open(dir, ca, err);
        _cleanup_free_ char *key_path = path_of(dir, "ca.key");
        _cleanup_secret_ secret pem = {0};
        if (r >= 0 && !key_path)
                r = sk_error_set(err, ENOMEM, "out of memory");
        if (r >= 0)
                r = sk_file_read(key_path, &pem.p, &pem.len, err);
        _cleanup_free_ char *sealed = NULL;
        if (r >= 0)
                r = seal(key, pem.p, &sealed, err);
        sodium_memzero(key, sizeof(key));
        if (r >= 0)
                r = s->ops->setting_add(s, "ca.key", sealed, err);
        if (r >= 0)
                r = s->ops->setting_add(s, "ca.pem", sk_ca_cert_pem(*ca), err);
        if (r >= 0)
                sk_info("stored the certificate authority in the shared store");
        return r;
}

static bool file_equals(const char *path, const char *want)
{
        _cleanup_secret_ secret have = {0};
        return sk_file_read(path, &have.p, &have.len, NULL) == 0 && have.len == strlen(want) &&
               memcmp(have.p, want, have.len) == 0;
}

int sk_tower_replica_ca(sk_store *s, const char *dir, sk_ca **ca, sk_error **err)
{
        if (sodium_init() < 0)
                return sk_error_set(err, EIO, "libsodium failed to initialise");
        _cleanup_free_ char *cert = NULL, *sealed = NULL;
        int r = s->ops->setting_get(s, "ca.pem", &cert, NULL);
        if (r == -ENOENT)
                return publish_ca(s, dir, ca, err);
        if (r >= 0)
                r = s->ops->setting_get(s, "ca.key", &sealed, err);
        if (r < 0)
                return sk_error_prefix(err, "reading the CA from the store"), r;
        unsigned char key[crypto_secretbox_KEYBYTES];
        r = store_key(dir, false, key, err);
        _cleanup_secret_ secret pem = {0};
        if (r >= 0)
                r = unseal(key, sealed, dir, &pem, err);
        sodium_memzero(key, sizeof(key));
        if (r < 0)
                return r;
        _cleanup_free_ char *cert_path = path_of(dir, "ca.pem");
        _cleanup_free_ char *key_path = path_of(dir, "ca.key");
        if (!cert_path || !key_path)
                return sk_error_set(err, ENOMEM, "out of memory");
        /* The key first: ca.pem appearing is what marks the pair complete (sk_ca_open). */
        if (!file_equals(cert_path, cert) || !file_equals(key_path, pem.p)) {
                if (access(cert_path, F_OK) == 0)
                        sk_warn("%s differs from the CA in the shared store: replacing it",
                                cert_path);
                unlink(cert_path);
                r = sk_file_write(key_path, pem.p, pem.len, 0600, err);
                if (r >= 0)
                        r = sk_file_write(cert_path, cert, strlen(cert), 0644, err);
                if (r < 0)
                        return r;
        }
        return sk_ca_open(dir, ca, err);
}

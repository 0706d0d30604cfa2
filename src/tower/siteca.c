#include "tower/siteca.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"

#define SEAL_LABEL "skerry site CA seal v1"

static int seal_key(sk_ca *ca, unsigned char key[crypto_secretbox_KEYBYTES], sk_error **err)
{
        _Static_assert(SK_CA_SECRET_BYTES == crypto_secretbox_KEYBYTES, "secret size");
        return sk_ca_derive_secret(ca, SEAL_LABEL, key, err);
}

/* nonce || box, base64. */
static int seal(sk_ca *ca, const char *plain, char **out, sk_error **err)
{
        unsigned char key[crypto_secretbox_KEYBYTES];
        int r = seal_key(ca, key, err);
        if (r < 0)
                return r;
        size_t len = strlen(plain);
        size_t box_len = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + len;
        _cleanup_free_ unsigned char *box = malloc(box_len);
        size_t b64_len = sodium_base64_ENCODED_LEN(box_len, sodium_base64_VARIANT_ORIGINAL);
        _cleanup_free_ char *text = malloc(b64_len);
        if (!box || !text) {
                sodium_memzero(key, sizeof(key));
                return sk_error_set(err, ENOMEM, "out of memory");
        }
        randombytes_buf(box, crypto_secretbox_NONCEBYTES);
        crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, (const unsigned char *)plain, len,
                              box, key);
        sodium_memzero(key, sizeof(key));
        sodium_bin2base64(text, b64_len, box, box_len, sodium_base64_VARIANT_ORIGINAL);
        *out = take_ptr(&text);
        return 0;
}

static int unseal(sk_ca *ca, const char *text, char **out, sk_error **err)
{
        size_t cap = strlen(text);
        _cleanup_free_ unsigned char *box = malloc(cap + 1);
        size_t box_len = 0;
        if (!box)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (sodium_base642bin(box, cap, text, cap, NULL, &box_len, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0 ||
            box_len < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
                return sk_error_set(err, EINVAL, "the stored site CA key is damaged");
        size_t len = box_len - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
        _cleanup_free_ char *plain = malloc(len + 1);
        if (!plain)
                return sk_error_set(err, ENOMEM, "out of memory");
        unsigned char key[crypto_secretbox_KEYBYTES];
        int r = seal_key(ca, key, err);
        if (r < 0)
                return r;
        r = crypto_secretbox_open_easy((unsigned char *)plain, box + crypto_secretbox_NONCEBYTES,
                                       box_len - crypto_secretbox_NONCEBYTES, box, key);
        sodium_memzero(key, sizeof(key));
        if (r != 0)
                return sk_error_set(err, EACCES,
                                    "the stored site CA key was not sealed by this tower's CA");
        plain[len] = '\0';
        *out = take_ptr(&plain);
        return 0;
}

static int load(sk_store *s, sk_ca *ca, const char *name, const char *text, char **cert_pem,
                char **key_pem, sk_error **err)
{
        json_error_t je;
        _cleanup_json_ json_t *o = json_loads(text, 0, &je);
        const char *cert = json_string_value(json_object_get(o, "certificate"));
        const char *sealed = json_string_value(json_object_get(o, "key"));
        if (!cert || !sealed)
                return sk_error_set(err, EINVAL,
                                    "setting %s: must be an object with strings \"certificate\" "
                                    "and \"key\"",
                                    name);
        _cleanup_free_ char *key = NULL;
        int r = unseal(ca, sealed, &key, err);
        if (r < 0)
                return sk_error_prefix(err, "setting %s", name), r;
        char *c = strdup(cert);
        if (!c) {
                sodium_memzero(key, strlen(key));
                return sk_error_set(err, ENOMEM, "out of memory");
        }
        *cert_pem = c;
        *key_pem = take_ptr(&key);
        return 0;
}

int sk_tower_site_ca(sk_store *s, sk_ca *ca, int64_t site_id, char **cert_pem, char **key_pem,
                     sk_error **err)
{
        if (sodium_init() < 0)
                return sk_error_set(err, EIO, "libsodium failed to initialise");
        char name[64];
        snprintf(name, sizeof(name), "site-ca/%lld", (long long)site_id);
        _cleanup_free_ char *text = NULL;
        int r = s->ops->setting_get(s, name, &text, NULL);
        if (r >= 0)
                return load(s, ca, name, text, cert_pem, key_pem, err);
        if (r != -ENOENT)
                return sk_error_set(err, -r, "reading setting %s failed", name);

        _cleanup_free_ char *cert = NULL, *key = NULL, *sealed = NULL;
        r = sk_ca_issue_site_ca(ca, site_id, &cert, &key, err);
        if (r >= 0)
                r = seal(ca, key, &sealed, err);
        _cleanup_json_ json_t *o =
            r >= 0 ? json_pack("{s:s, s:s}", "certificate", cert, "key", sealed) : NULL;
        _cleanup_free_ char *stored = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (r >= 0 && !stored)
                r = sk_error_set(err, ENOMEM, "out of memory");
        if (r >= 0)
                r = s->ops->setting_add(s, name, stored, NULL);
        if (r == -EEXIST) {
                /* Another replica issued it first: everyone uses that one. */
                sodium_memzero(key, strlen(key));
                free(text);
                text = NULL;
                r = s->ops->setting_get(s, name, &text, err);
                return r < 0 ? r : load(s, ca, name, text, cert_pem, key_pem, err);
        }
        if (r < 0) {
                if (key)
                        sodium_memzero(key, strlen(key));
                return sk_error_set(err, -r, "storing setting %s failed", name);
        }
        *cert_pem = take_ptr(&cert);
        *key_pem = take_ptr(&key);
        return 0;
}

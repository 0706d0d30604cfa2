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

/* Generation 1 lives at "site-ca/<id>" (as before generations existed), generation n > 1
 * at "site-ca/<id>/<n>": each re-key adds a setting and never rewrites one, so replicas
 * racing to re-key agree through the store's unique key, as for the first issue. */
static void setting_name(int64_t site_id, int gen, char name[64])
{
        if (gen <= 1)
                snprintf(name, 64, "site-ca/%lld", (long long)site_id);
        else
                snprintf(name, 64, "site-ca/%lld/%d", (long long)site_id, gen);
}

/* The newest generation stored (0: none) and its setting's text. Removals are rare, so a
 * site has few generations and probing them one by one is cheap. */
static int current(sk_store *s, int64_t site_id, int *gen, char **text, sk_error **err)
{
        *gen = 0;
        *text = NULL;
        for (int g = 1; g < SK_SITE_CA_GENERATIONS_MAX; g++) {
                char name[64];
                setting_name(site_id, g, name);
                char *t = NULL;
                int r = s->ops->setting_get(s, name, &t, NULL);
                if (r == -ENOENT)
                        return 0;
                if (r < 0)
                        return sk_error_set(err, -r, "reading setting %s failed", name);
                free(*text);
                *text = t;
                *gen = g;
        }
        return sk_error_set(err, E2BIG, "site %lld: too many site CA generations",
                            (long long)site_id);
}

static int load(sk_store *s, sk_ca *ca, const char *name, const char *text, int gen,
                sk_tower_site_ca_info *out, sk_error **err)
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
        *out = (sk_tower_site_ca_info){.generation = gen, .key_pem = take_ptr(&key)};
        out->cert_pem = strdup(cert);
        if (!out->cert_pem) {
                sk_tower_site_ca_info_wipe(out);
                return sk_error_set(err, ENOMEM, "out of memory");
        }
        r = sk_pki_fingerprint(cert, out->sha256, err);
        if (r < 0) {
                sk_tower_site_ca_info_wipe(out);
                return sk_error_prefix(err, "setting %s", name), r;
        }
        return 0;
}

/* Issues generation gen, stores it unless another replica stored that generation first,
 * and loads what the store then holds. */
static int issue(sk_store *s, sk_ca *ca, int64_t site_id, int gen, sk_tower_site_ca_info *out,
                 sk_error **err)
{
        char name[64];
        setting_name(site_id, gen, name);
        _cleanup_free_ char *cert = NULL, *sealed = NULL, *stored = NULL, *text = NULL;
        _cleanup_wipe_ char *key = NULL;
        char fp[SK_PKI_FP_LEN];
        int r = sk_ca_issue_site_ca(ca, site_id, &cert, &key, err);
        if (r >= 0)
                r = seal(ca, key, &sealed, err);
        if (r >= 0)
                r = sk_pki_fingerprint(cert, fp, err);
        if (r < 0)
                return r;
        _cleanup_json_ json_t *o = json_pack("{s:s, s:s, s:i, s:s}", "certificate", cert, "key",
                                             sealed, "generation", gen, "sha256", fp);
        stored = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (!stored)
                return sk_error_set(err, ENOMEM, "out of memory");
        r = s->ops->setting_add(s, name, stored, NULL);
        if (r < 0 && r != -EEXIST) /* EEXIST: another replica issued it first */
                return sk_error_set(err, -r, "storing setting %s failed", name);
        r = s->ops->setting_get(s, name, &text, err);
        return r < 0 ? r : load(s, ca, name, text, gen, out, err);
}

void sk_tower_site_ca_info_wipe(sk_tower_site_ca_info *i)
{
        free(i->cert_pem);
        if (i->key_pem)
                sodium_memzero(i->key_pem, strlen(i->key_pem));
        free(i->key_pem);
        *i = (sk_tower_site_ca_info){0};
}

int sk_tower_site_ca_get(sk_store *s, sk_ca *ca, int64_t site_id, bool create,
                         sk_tower_site_ca_info *out, sk_error **err)
{
        *out = (sk_tower_site_ca_info){0};
        if (sodium_init() < 0)
                return sk_error_set(err, EIO, "libsodium failed to initialise");
        int gen = 0;
        _cleanup_free_ char *text = NULL;
        int r = current(s, site_id, &gen, &text, err);
        if (r < 0)
                return r;
        if (gen > 0) {
                char name[64];
                setting_name(site_id, gen, name);
                return load(s, ca, name, text, gen, out, err);
        }
        return create ? issue(s, ca, site_id, 1, out, err) : -ENOENT;
}

int sk_tower_site_ca(sk_store *s, sk_ca *ca, int64_t site_id, char **cert_pem, char **key_pem,
                     sk_error **err)
{
        sk_tower_site_ca_info i;
        int r = sk_tower_site_ca_get(s, ca, site_id, true, &i, err);
        if (r < 0)
                return r;
        *cert_pem = take_ptr(&i.cert_pem);
        *key_pem = take_ptr(&i.key_pem);
        sk_tower_site_ca_info_wipe(&i);
        return 0;
}

int sk_tower_site_ca_rekey(sk_store *s, sk_ca *ca, int64_t site_id, int *generation, sk_error **err)
{
        *generation = 0;
        if (sodium_init() < 0)
                return sk_error_set(err, EIO, "libsodium failed to initialise");
        int gen = 0;
        _cleanup_free_ char *text = NULL;
        int r = current(s, site_id, &gen, &text, err);
        if (r < 0 || gen == 0) /* no site CA yet: no host holds a key to retire */
                return r;
        sk_tower_site_ca_info i;
        r = issue(s, ca, site_id, gen + 1, &i, err);
        if (r < 0)
                return r;
        *generation = i.generation;
        sk_tower_site_ca_info_wipe(&i);
        return 0;
}

int sk_tower_site_ca_current(sk_store *s, int64_t site_id, int *generation,
                             char sha256[SK_PKI_FP_LEN], sk_error **err)
{
        _cleanup_free_ char *text = NULL;
        sha256[0] = '\0';
        int r = current(s, site_id, generation, &text, err);
        if (r < 0 || *generation == 0)
                return r;
        /* The public half is enough: no need to unseal the key on every request. */
        _cleanup_json_ json_t *o = json_loads(text, 0, NULL);
        return sk_pki_fingerprint(json_string_value(json_object_get(o, "certificate")), sha256,
                                  err);
}

static void leaf_setting(int64_t host_id, char name[64])
{
        snprintf(name, 64, "site-leaf/%lld", (long long)host_id);
}

int sk_tower_site_leaf_keep(sk_store *s, int64_t host_id, const char *leaf_fp, sk_error **err)
{
        char name[64];
        leaf_setting(host_id, name);
        int r = s->ops->setting_add(s, name, leaf_fp, NULL);
        if (r < 0 && r != -EEXIST)
                return sk_error_set(err, -r, "storing setting %s failed", name);
        return 0;
}

/* Whether host_id is a host the tower adopted with exactly this certificate. */
static bool adopted_leaf(sk_store *s, int64_t host_id, const char *leaf_fp)
{
        char name[64];
        leaf_setting(host_id, name);
        _cleanup_free_ char *have = NULL;
        return leaf_fp && *leaf_fp && s->ops->setting_get(s, name, &have, NULL) >= 0 &&
               strcmp(have, leaf_fp) == 0;
}

int sk_tower_site_ca_check(sk_store *s, int64_t site_id, int64_t host_id, const sk_pki_chain *chain,
                           sk_error **err)
{
        if (!chain->site_ca[0])
                return 0;
        int gen = 0;
        char have[SK_PKI_FP_LEN];
        int r = sk_tower_site_ca_current(s, site_id, &gen, have, err);
        if (r < 0)
                return r;
        if (gen == 0)
                return sk_error_set(err, EACCES, "site %lld has no site CA to sign hosts",
                                    (long long)site_id);
        /* A retired generation's key can mint new certificates, not reproduce one whose
         * private key a host kept: the very certificate the tower adopted stays good. */
        if (strcmp(chain->site_ca, have) != 0 && adopted_leaf(s, host_id, chain->leaf))
                return 0;
        return sk_pki_check_site_ca(chain->site_ca, have, err);
}

struct leaves {
        sk_store *s;
        json_t *list;
};

static int add_leaf(const sk_host_row *row, void *user)
{
        struct leaves *l = user;
        char name[64];
        leaf_setting(row->id, name);
        char *fp = NULL;
        if (l->s->ops->setting_get(l->s, name, &fp, NULL) >= 0)
                json_array_append_new(l->list, json_string(fp));
        free(fp);
        return 0;
}

json_t *sk_tower_site_leaves(sk_store *s, int64_t site_id)
{
        struct leaves l = {s, json_array()};
        if (!l.list || s->ops->host_list(s, site_id, add_leaf, &l, NULL) < 0) {
                json_decref(l.list);
                return NULL;
        }
        return l.list;
}

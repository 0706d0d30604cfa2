#include "common/pki.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <libgen.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"

#define CA_CN         "skerry CA"
#define CA_DAYS       3650
#define MAX_DAYS      36500
#define MAX_FILE_SIZE (16u << 20)
#define SERIAL_BYTES  16
#define URI_PREFIX    "skerry://"
#define DAY_SECONDS   86400
/* Edge hosts often boot with a wrong clock until NTP catches up; a certificate that only
 * becomes valid "now" would be refused by a peer a few minutes behind. */
#define BACKDATE_SECONDS 3600

struct sk_ca {
        gnutls_x509_crt_t crt;
        gnutls_x509_privkey_t key;
        char *cert_pem;
        /* 0 for the tower's CA; a site CA's site, whose identities alone it may sign. */
        int64_t site_id;
        /* GnuTLS does not promise that one key object may sign from two threads at once. */
        pthread_mutex_t lock;
};

/* Cleanup helpers for the GnuTLS types used here. */
static void crt_freep(gnutls_x509_crt_t *p)
{
        if (*p)
                gnutls_x509_crt_deinit(*p);
}
static void privkey_freep(gnutls_x509_privkey_t *p)
{
        if (*p)
                gnutls_x509_privkey_deinit(*p);
}
static void crq_freep(gnutls_x509_crq_t *p)
{
        if (*p)
                gnutls_x509_crq_deinit(*p);
}
static void pubkey_freep(gnutls_pubkey_t *p)
{
        if (*p)
                gnutls_pubkey_deinit(*p);
}
static void datum_freep(gnutls_datum_t *d)
{
        gnutls_free(d->data);
}
static void unlinkp(char **path)
{
        if (*path) {
                unlink(*path);
                free(*path);
        }
}
#define _cleanup_crt_     __attribute__((cleanup(crt_freep)))
#define _cleanup_privkey_ __attribute__((cleanup(privkey_freep)))
#define _cleanup_crq_     __attribute__((cleanup(crq_freep)))
#define _cleanup_pubkey_  __attribute__((cleanup(pubkey_freep)))
#define _cleanup_trust_   __attribute__((cleanup(trust_freep)))
#define _cleanup_datum_   __attribute__((cleanup(datum_freep)))
#define _cleanup_unlink_  __attribute__((cleanup(unlinkp)))

static int gtls_fail(sk_error **err, int gr, const char *what)
{
        return sk_error_set(err, gr == GNUTLS_E_MEMORY_ERROR ? ENOMEM : EIO, "%s: %s", what,
                            gnutls_strerror(gr));
}

/* A gnutls_datum_t export into a NUL-terminated malloc'ed string. */
static int datum_to_str(const gnutls_datum_t *d, char **out, sk_error **err)
{
        char *s = malloc(d->size + 1);
        if (!s)
                return sk_error_set(err, ENOMEM, "out of memory");
        memcpy(s, d->data, d->size);
        s[d->size] = '\0';
        *out = s;
        return 0;
}

/* ---- files ---- */

int sk_file_read(const char *path, char **data, size_t *len, sk_error **err)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return sk_error_set(err, errno, "%s: %s", path, strerror(errno));
        struct stat st;
        if (fstat(fd, &st) < 0)
                return sk_error_set(err, errno, "%s: %s", path, strerror(errno));
        if (!S_ISREG(st.st_mode))
                return sk_error_set(err, EINVAL, "%s: not a regular file", path);
        if ((uint64_t)st.st_size > MAX_FILE_SIZE)
                return sk_error_set(err, EFBIG, "%s: larger than %u bytes", path, MAX_FILE_SIZE);
        size_t cap = (size_t)st.st_size;
        _cleanup_free_ char *buf = malloc(cap + 1);
        if (!buf)
                return sk_error_set(err, ENOMEM, "out of memory");
        size_t n = 0;
        while (n < cap) {
                ssize_t r = read(fd, buf + n, cap - n);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return sk_error_set(err, errno, "%s: %s", path, strerror(errno));
                if (r == 0)
                        break; /* shrank while reading: keep what is there */
                n += (size_t)r;
        }
        buf[n] = '\0';
        *data = take_ptr(&buf);
        if (len)
                *len = n;
        return 0;
}

static int fsync_parent(const char *path, sk_error **err)
{
        _cleanup_free_ char *copy = strdup(path);
        if (!copy)
                return sk_error_set(err, ENOMEM, "out of memory");
        const char *dir = dirname(copy);
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || fsync(dfd) < 0)
                return sk_error_set(err, errno, "%s: %s", dir, strerror(errno));
        return 0;
}

int sk_file_write(const char *path, const char *data, size_t len, unsigned mode, sk_error **err)
{
        _cleanup_unlink_ char *tmp = NULL;
        if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0) {
                tmp = NULL;
                return sk_error_set(err, ENOMEM, "out of memory");
        }
        _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
                int e = errno;
                free(take_ptr(&tmp)); /* nothing was created */
                return sk_error_set(err, e, "%s: cannot create temporary file: %s", path,
                                    strerror(e));
        }
        /* fchmod, not the umask, decides: a key must end up 0600 whatever the caller's umask. */
        if (fchmod(fd, mode & 07777) < 0)
                return sk_error_set(err, errno, "%s: %s", tmp, strerror(errno));
        size_t done = 0;
        while (done < len) {
                ssize_t w = write(fd, data + done, len - done);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0)
                        return sk_error_set(err, errno, "%s: %s", tmp, strerror(errno));
                done += (size_t)w;
        }
        if (fsync(fd) < 0)
                return sk_error_set(err, errno, "%s: %s", tmp, strerror(errno));
        if (close(take_fd(&fd)) < 0)
                return sk_error_set(err, errno, "%s: %s", tmp, strerror(errno));
        if (rename(tmp, path) < 0)
                return sk_error_set(err, errno, "%s: %s", path, strerror(errno));
        free(take_ptr(&tmp)); /* renamed: nothing to unlink */
        return fsync_parent(path, err);
}

/* ---- certificate building blocks ---- */

static int new_p256_key(gnutls_x509_privkey_t *out, sk_error **err)
{
        _cleanup_privkey_ gnutls_x509_privkey_t key = NULL;
        int r = gnutls_x509_privkey_init(&key);
        if (r < 0)
                return gtls_fail(err, r, "private key");
        r = gnutls_x509_privkey_generate2(
            key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0, NULL, 0);
        if (r < 0)
                return gtls_fail(err, r, "generating an ECDSA P-256 key");
        *out = take_ptr(&key);
        return 0;
}

/* Unencrypted PKCS#8 PEM: the form every TLS library (GnuTLS, OpenSSL under libcurl) reads. */
static int export_key_pem(gnutls_x509_privkey_t key, char **out, sk_error **err)
{
        _cleanup_datum_ gnutls_datum_t d = {NULL, 0};
        int r = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN,
                                                  &d);
        if (r < 0)
                return gtls_fail(err, r, "exporting a private key");
        return datum_to_str(&d, out, err);
}

static int export_crt_pem(gnutls_x509_crt_t crt, char **out, sk_error **err)
{
        _cleanup_datum_ gnutls_datum_t d = {NULL, 0};
        int r = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d);
        if (r < 0)
                return gtls_fail(err, r, "exporting a certificate");
        return datum_to_str(&d, out, err);
}

static int check_days(unsigned days, sk_error **err)
{
        if (days < 1 || days > MAX_DAYS)
                return sk_error_set(err, EINVAL, "days: must be between 1 and %u, not %u", MAX_DAYS,
                                    days);
        return 0;
}

static int check_cn(const char *cn, sk_error **err)
{
        /* 64 is the X.520 upper bound for a common name. */
        if (!cn || !cn[0] || strlen(cn) > 64)
                return sk_error_set(err, EINVAL, "cn: must be 1 to 64 characters");
        return 0;
}

/* Version, random serial, validity and subject CN: what every certificate here has. */
static int crt_new(const char *cn, unsigned days, gnutls_x509_crt_t *out, sk_error **err)
{
        _cleanup_crt_ gnutls_x509_crt_t crt = NULL;
        int r = gnutls_x509_crt_init(&crt);
        if (r < 0)
                return gtls_fail(err, r, "certificate");
        r = gnutls_x509_crt_set_version(crt, 3);
        if (r < 0)
                return gtls_fail(err, r, "certificate version");

        unsigned char serial[SERIAL_BYTES];
        r = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));
        if (r < 0)
                return gtls_fail(err, r, "random serial");
        /* Positive and without a leading zero byte, so the DER INTEGER is minimal. */
        serial[0] = (unsigned char)((serial[0] & 0x7f) | 0x40);
        r = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
        if (r < 0)
                return gtls_fail(err, r, "certificate serial");

        time_t now = time(NULL);
        r = gnutls_x509_crt_set_activation_time(crt, now - BACKDATE_SECONDS);
        if (r >= 0)
                r = gnutls_x509_crt_set_expiration_time(crt, now + (time_t)days * DAY_SECONDS);
        if (r < 0)
                return gtls_fail(err, r, "certificate validity");

        r = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                          (unsigned)strlen(cn));
        if (r < 0)
                return gtls_fail(err, r, "certificate subject");
        *out = take_ptr(&crt);
        return 0;
}

static int set_subject_key_id(gnutls_x509_crt_t crt, sk_error **err)
{
        unsigned char id[64];
        size_t size = sizeof(id);
        int r = gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, id, &size);
        if (r >= 0)
                r = gnutls_x509_crt_set_subject_key_id(crt, id, size);
        if (r < 0)
                return gtls_fail(err, r, "subject key identifier");
        return 0;
}

/* Authority key id and signature by the CA; exports the result. Called with ca->lock. */
static int ca_sign_locked(sk_ca *ca, gnutls_x509_crt_t crt, char **pem, sk_error **err)
{
        unsigned char id[64];
        size_t size = sizeof(id);
        int r = gnutls_x509_crt_get_subject_key_id(ca->crt, id, &size, NULL);
        if (r >= 0)
                r = gnutls_x509_crt_set_authority_key_id(crt, id, size);
        if (r < 0)
                return gtls_fail(err, r, "authority key identifier");
        r = gnutls_x509_crt_sign2(crt, ca->crt, ca->key, GNUTLS_DIG_SHA256, 0);
        if (r < 0)
                return gtls_fail(err, r, "signing a certificate");
        return export_crt_pem(crt, pem, err);
}

static int ca_sign(sk_ca *ca, gnutls_x509_crt_t crt, char **pem, sk_error **err)
{
        pthread_mutex_lock(&ca->lock);
        int r = ca_sign_locked(ca, crt, pem, err);
        pthread_mutex_unlock(&ca->lock);
        return r;
}

/* The end of issuing a certificate for a key made here: sign it, hand out both PEMs. */
static int sign_with_key(sk_ca *ca, gnutls_x509_crt_t crt, gnutls_x509_privkey_t key,
                         char **cert_pem, char **key_pem, sk_error **err)
{
        int r = set_subject_key_id(crt, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *cert = NULL, *keyp = NULL;
        r = ca_sign(ca, crt, &cert, err);
        if (r < 0)
                return r;
        r = export_key_pem(key, &keyp, err);
        if (r < 0)
                return r;
        *cert_pem = take_ptr(&cert);
        *key_pem = take_ptr(&keyp);
        return 0;
}

/* ---- the CA ---- */

void sk_ca_free(sk_ca *ca)
{
        if (!ca)
                return;
        if (ca->crt)
                gnutls_x509_crt_deinit(ca->crt);
        if (ca->key)
                gnutls_x509_privkey_deinit(ca->key);
        free(ca->cert_pem);
        pthread_mutex_destroy(&ca->lock);
        free(ca);
}

void sk_ca_freep(sk_ca **ca)
{
        sk_ca_free(*ca);
        *ca = NULL;
}

const char *sk_ca_cert_pem(const sk_ca *ca)
{
        return ca->cert_pem;
}

static int ca_alloc(sk_ca **out, sk_error **err)
{
        sk_ca *ca = calloc(1, sizeof(*ca));
        if (!ca)
                return sk_error_set(err, ENOMEM, "out of memory");
        pthread_mutex_init(&ca->lock, NULL);
        *out = ca;
        return 0;
}

static int ca_create(const char *cert_path, const char *key_path, sk_ca *ca, sk_error **err)
{
        int r = new_p256_key(&ca->key, err);
        if (r < 0)
                return r;
        r = crt_new(CA_CN, CA_DAYS, &ca->crt, err);
        if (r < 0)
                return r;
        r = gnutls_x509_crt_set_key(ca->crt, ca->key);
        if (r >= 0)
                r = gnutls_x509_crt_set_basic_constraints(ca->crt, 1, -1);
        if (r >= 0)
                r = gnutls_x509_crt_set_key_usage(ca->crt,
                                                  GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN);
        if (r < 0)
                return gtls_fail(err, r, "CA certificate");
        r = set_subject_key_id(ca->crt, err);
        if (r < 0)
                return r;
        r = gnutls_x509_crt_sign2(ca->crt, ca->crt, ca->key, GNUTLS_DIG_SHA256, 0);
        if (r < 0)
                return gtls_fail(err, r, "self-signing the CA certificate");
        r = export_crt_pem(ca->crt, &ca->cert_pem, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *key_pem = NULL;
        r = export_key_pem(ca->key, &key_pem, err);
        if (r < 0)
                return r;
        /* The key first: ca.pem appearing is what marks the pair complete (see sk_ca_open). */
        r = sk_file_write(key_path, key_pem, strlen(key_pem), 0600, err);
        explicit_bzero(key_pem, strlen(key_pem));
        if (r < 0)
                return r;
        r = sk_file_write(cert_path, ca->cert_pem, strlen(ca->cert_pem), 0644, err);
        if (r < 0)
                return r;
        sk_info("created a new certificate authority in %s", cert_path);
        return 0;
}

static int find_skerry_uri(gnutls_x509_crt_t crt, char **uri, sk_error **err);
static const char *parse_id(const char *s, int64_t *id);

/* 0 with the site id when crt names a site ("skerry://site/<id>"), -ENOENT otherwise. */
static int site_ca_id(gnutls_x509_crt_t crt, int64_t *site_id)
{
        _cleanup_free_ char *uri = NULL;
        if (find_skerry_uri(crt, &uri, NULL) < 0)
                return -ENOENT;
        return sk_pki_parse_site_uri(uri, site_id) < 0 ? -ENOENT : 0;
}

/* Imports a CA certificate and its key from PEM, checking that they belong together; what
 * names them in messages. The key text is wiped once imported. */
static int ca_import(const char *what, const char *cert_pem, size_t cert_len, char *key_pem,
                     size_t key_len, sk_ca *ca, sk_error **err)
{
        int r = gnutls_x509_crt_init(&ca->crt);
        if (r < 0)
                return gtls_fail(err, r, "CA certificate");
        gnutls_datum_t d = {(unsigned char *)cert_pem, (unsigned)cert_len};
        r = gnutls_x509_crt_import(ca->crt, &d, GNUTLS_X509_FMT_PEM);
        if (r < 0)
                return sk_error_set(err, EINVAL, "%s: not a PEM certificate: %s", what,
                                    gnutls_strerror(r));
        if (gnutls_x509_crt_get_ca_status(ca->crt, NULL) <= 0)
                return sk_error_set(err, EINVAL, "%s: not a CA certificate", what);

        r = gnutls_x509_privkey_init(&ca->key);
        if (r < 0)
                return gtls_fail(err, r, "CA key");
        gnutls_datum_t k = {(unsigned char *)key_pem, (unsigned)key_len};
        r = gnutls_x509_privkey_import2(ca->key, &k, GNUTLS_X509_FMT_PEM, NULL, 0);
        explicit_bzero(key_pem, key_len);
        if (r < 0)
                return sk_error_set(err, EINVAL, "%s key: not a PEM private key: %s", what,
                                    gnutls_strerror(r));

        unsigned char crt_id[64], key_id[64];
        size_t crt_id_len = sizeof(crt_id), key_id_len = sizeof(key_id);
        r = gnutls_x509_crt_get_key_id(ca->crt, GNUTLS_KEYID_USE_SHA256, crt_id, &crt_id_len);
        if (r >= 0)
                r = gnutls_x509_privkey_get_key_id(ca->key, GNUTLS_KEYID_USE_SHA256, key_id,
                                                   &key_id_len);
        if (r < 0)
                return gtls_fail(err, r, "CA key id");
        if (crt_id_len != key_id_len || memcmp(crt_id, key_id, crt_id_len) != 0)
                return sk_error_set(err, EINVAL, "%s: the key does not belong to the certificate",
                                    what);
        return export_crt_pem(ca->crt, &ca->cert_pem, err);
}

static int ca_load(const char *cert_path, const char *key_path, sk_ca *ca, sk_error **err)
{
        _cleanup_free_ char *cert_pem = NULL, *key_pem = NULL;
        size_t cert_len = 0, key_len = 0;
        int r = sk_file_read(cert_path, &cert_pem, &cert_len, err);
        if (r < 0)
                return r;
        r = sk_file_read(key_path, &key_pem, &key_len, err);
        if (r < 0)
                return r;
        struct stat st;
        if (stat(key_path, &st) == 0 && (st.st_mode & 077))
                sk_warn("%s is readable by others (mode %04o); it should be 0600", key_path,
                        (unsigned)(st.st_mode & 07777));
        r = ca_import(cert_path, cert_pem, cert_len, key_pem, key_len, ca, err);
        if (r < 0)
                return r;
        if (site_ca_id(ca->crt, &ca->site_id) == 0)
                return sk_error_set(err, EINVAL, "%s: a site CA, not the tower's CA", cert_path);
        return 0;
}

static char *path_join(const char *dir, const char *name)
{
        char *p = NULL;
        return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

int sk_ca_open(const char *dir, sk_ca **out, sk_error **err)
{
        _cleanup_free_ char *cert_path = path_join(dir, "ca.pem");
        _cleanup_free_ char *key_path = path_join(dir, "ca.key");
        if (!cert_path || !key_path)
                return sk_error_set(err, ENOMEM, "out of memory");
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return sk_error_set(err, errno, "%s: %s", dir, strerror(errno));

        _cleanup_ca_ sk_ca *ca = NULL;
        int r = ca_alloc(&ca, err);
        if (r < 0)
                return r;
        /* ca.pem is written last, so without it any ca.key is a leftover of an interrupted
         * first start that never signed anything: start over. */
        if (access(cert_path, F_OK) == 0)
                r = ca_load(cert_path, key_path, ca, err);
        else if (errno == ENOENT)
                r = ca_create(cert_path, key_path, ca, err);
        else
                r = sk_error_set(err, errno, "%s: %s", cert_path, strerror(errno));
        if (r < 0) {
                sk_error_prefix(err, "certificate authority");
                return r;
        }
        *out = take_ptr(&ca);
        return 0;
}

int sk_ca_derive_secret(sk_ca *ca, const char *label, unsigned char out[SK_CA_SECRET_BYTES],
                        sk_error **err)
{
        _cleanup_datum_ gnutls_datum_t der = {NULL, 0};
        pthread_mutex_lock(&ca->lock);
        int r = gnutls_x509_privkey_export2(ca->key, GNUTLS_X509_FMT_DER, &der);
        pthread_mutex_unlock(&ca->lock);
        if (r < 0)
                return gtls_fail(err, r, "exporting the CA key");
        /* HMAC keyed with the CA's private key: whoever holds the CA can derive it again,
         * nobody else can. */
        r = gnutls_hmac_fast(GNUTLS_MAC_SHA256, der.data, der.size, label, strlen(label), out);
        explicit_bzero(der.data, der.size);
        if (r < 0)
                return gtls_fail(err, r, "deriving a secret from the CA key");
        return 0;
}

/* ---- site CAs ---- */

int sk_ca_load_site(const char *cert_pem, const char *key_pem, sk_ca **out, sk_error **err)
{
        if (!cert_pem || !key_pem)
                return sk_error_set(err, EINVAL, "site CA: no certificate or key");
        _cleanup_ca_ sk_ca *ca = NULL;
        int r = ca_alloc(&ca, err);
        if (r < 0)
                return r;
        /* ca_import wipes the key text it reads, and the caller's must stay as it is. */
        size_t key_len = strlen(key_pem);
        _cleanup_free_ char *key = strdup(key_pem);
        if (!key)
                return sk_error_set(err, ENOMEM, "out of memory");
        r = ca_import("site CA", cert_pem, strlen(cert_pem), key, key_len, ca, err);
        if (r < 0)
                return r;
        if (site_ca_id(ca->crt, &ca->site_id) < 0)
                return sk_error_set(err, EINVAL,
                                    "site CA: certificate names no site "
                                    "(URI skerry://site/<id>)");
        *out = take_ptr(&ca);
        return 0;
}

int64_t sk_ca_site_id(const sk_ca *ca)
{
        return ca->site_id;
}

int sk_ca_issue_site_ca(sk_ca *ca, int64_t site_id, char **cert_pem, char **key_pem, sk_error **err)
{
        if (ca->site_id != 0)
                return sk_error_set(err, EINVAL, "a site CA cannot issue another site CA");
        if (site_id <= 0)
                return sk_error_set(err, EINVAL, "site_id: must be positive, not %lld",
                                    (long long)site_id);
        _cleanup_free_ char *uri = NULL, *cn = NULL;
        if (asprintf(&uri, URI_PREFIX "site/%lld", (long long)site_id) < 0 ||
            asprintf(&cn, "skerry site %lld CA", (long long)site_id) < 0) {
                uri = cn = NULL;
                return sk_error_set(err, ENOMEM, "out of memory");
        }
        _cleanup_privkey_ gnutls_x509_privkey_t key = NULL;
        int r = new_p256_key(&key, err);
        if (r < 0)
                return r;
        _cleanup_crt_ gnutls_x509_crt_t crt = NULL;
        r = crt_new(cn, CA_DAYS, &crt, err);
        if (r < 0)
                return r;
        /* No longer than the tower CA: a chain is only as valid as its root. */
        time_t root_end = gnutls_x509_crt_get_expiration_time(ca->crt);
        if (root_end != (time_t)-1)
                r = gnutls_x509_crt_set_expiration_time(crt, root_end);
        if (r >= 0)
                r = gnutls_x509_crt_set_key(crt, key);
        /* Path length 0: it signs hosts, never another CA. */
        if (r >= 0)
                r = gnutls_x509_crt_set_basic_constraints(crt, 1, 0);
        if (r >= 0)
                r = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_KEY_CERT_SIGN);
        if (r >= 0)
                r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_URI, uri,
                                                         (unsigned)strlen(uri), GNUTLS_FSAN_SET);
        if (r < 0)
                return gtls_fail(err, r, "site CA certificate");
        return sign_with_key(ca, crt, key, cert_pem, key_pem, err);
}

/* ---- issuing ---- */

static int add_server_name(gnutls_x509_crt_t crt, const char *name, size_t i, sk_error **err)
{
        unsigned char ip[16];
        int r;
        if (!name || !name[0])
                return sk_error_set(err, EINVAL, "names[%zu]: empty", i);
        if (inet_pton(AF_INET, name, ip) == 1)
                r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 4,
                                                         GNUTLS_FSAN_APPEND);
        else if (inet_pton(AF_INET6, name, ip) == 1)
                r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 16,
                                                         GNUTLS_FSAN_APPEND);
        else
                r = gnutls_x509_crt_set_subject_alt_name(
                    crt, GNUTLS_SAN_DNSNAME, name, (unsigned)strlen(name), GNUTLS_FSAN_APPEND);
        if (r < 0)
                return sk_error_set(err, EINVAL,
                                    "names[%zu]: \"%s\" is not a valid DNS name "
                                    "or IP address: %s",
                                    i, name, gnutls_strerror(r));
        return 0;
}

int sk_ca_issue_server(sk_ca *ca, const char *const *names, size_t n_names, unsigned days,
                       char **cert_pem, char **key_pem, sk_error **err)
{
        if (n_names == 0)
                return sk_error_set(err, EINVAL, "names: at least one DNS name or IP address");
        int r = check_days(days, err);
        if (r < 0)
                return r;
        /* The CN is only for people; clients match the SANs. */
        const char *cn =
            names[0] && names[0][0] && strlen(names[0]) <= 64 ? names[0] : "skerry tower";
        _cleanup_privkey_ gnutls_x509_privkey_t key = NULL;
        r = new_p256_key(&key, err);
        if (r < 0)
                return r;
        _cleanup_crt_ gnutls_x509_crt_t crt = NULL;
        r = crt_new(cn, days, &crt, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_names; i++) {
                r = add_server_name(crt, names[i], i, err);
                if (r < 0)
                        return r;
        }
        r = gnutls_x509_crt_set_key(crt, key);
        if (r >= 0)
                r = gnutls_x509_crt_set_basic_constraints(crt, 0, -1);
        if (r >= 0)
                r = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE |
                                                           GNUTLS_KEY_KEY_ENCIPHERMENT);
        if (r >= 0)
                r = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0);
        if (r < 0)
                return gtls_fail(err, r, "server certificate");
        return sign_with_key(ca, crt, key, cert_pem, key_pem, err);
}

static int import_csr(const char *csr_pem, gnutls_x509_crq_t *out, sk_error **err)
{
        if (!csr_pem || !csr_pem[0])
                return sk_error_set(err, EINVAL, "certificate request: empty");
        _cleanup_crq_ gnutls_x509_crq_t crq = NULL;
        int r = gnutls_x509_crq_init(&crq);
        if (r < 0)
                return gtls_fail(err, r, "certificate request");
        gnutls_datum_t d = {(unsigned char *)csr_pem, (unsigned)strlen(csr_pem)};
        r = gnutls_x509_crq_import(crq, &d, GNUTLS_X509_FMT_PEM);
        if (r < 0)
                return sk_error_set(err, EINVAL, "certificate request: not a PEM CSR: %s",
                                    gnutls_strerror(r));
        /* Proof that the requester holds the private key of the public key it sends. */
        r = gnutls_x509_crq_verify(crq, 0);
        if (r < 0)
                return sk_error_set(err, EINVAL,
                                    "certificate request: its signature does not verify: %s",
                                    gnutls_strerror(r));
        unsigned bits = 0;
        int pk = gnutls_x509_crq_get_pk_algorithm(crq, &bits);
        if (pk == GNUTLS_PK_RSA && bits < 2048)
                return sk_error_set(err, EINVAL,
                                    "certificate request: RSA key of %u bits is too weak "
                                    "(2048 at least)",
                                    bits);
        *out = take_ptr(&crq);
        return 0;
}

int sk_ca_sign_client(sk_ca *ca, const char *csr_pem, const char *cn, const char *uri,
                      unsigned days, char **cert_pem, sk_error **err)
{
        int r = check_days(days, err);
        if (r < 0)
                return r;
        r = check_cn(cn, err);
        if (r < 0)
                return r;
        if (!uri || !uri[0] || !strstr(uri, "://"))
                return sk_error_set(err, EINVAL, "uri: \"%s\" is not a URI", uri ? uri : "");
        int64_t uri_site = 0, uri_host = 0;
        if (ca->site_id != 0 &&
            (sk_pki_parse_host_uri(uri, &uri_site, &uri_host) < 0 || uri_site != ca->site_id ||
             !sk_pki_is_site_local_id(uri_site, uri_host)))
                return sk_error_set(err, EINVAL,
                                    "uri: \"%s\" is not a host of site %lld's own id range, "
                                    "the only ids this site CA signs for",
                                    uri, (long long)ca->site_id);
        _cleanup_crq_ gnutls_x509_crq_t crq = NULL;
        r = import_csr(csr_pem, &crq, err);
        if (r < 0)
                return r;
        _cleanup_pubkey_ gnutls_pubkey_t pub = NULL;
        r = gnutls_pubkey_init(&pub);
        if (r >= 0)
                r = gnutls_pubkey_import_x509_crq(pub, crq, 0);
        if (r < 0)
                return gtls_fail(err, r, "certificate request public key");

        _cleanup_crt_ gnutls_x509_crt_t crt = NULL;
        r = crt_new(cn, days, &crt, err);
        if (r < 0)
                return r;
        r = gnutls_x509_crt_set_pubkey(crt, pub);
        if (r >= 0)
                r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_URI, uri,
                                                         (unsigned)strlen(uri), GNUTLS_FSAN_SET);
        if (r >= 0)
                r = gnutls_x509_crt_set_basic_constraints(crt, 0, -1);
        if (r >= 0)
                r = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE |
                                                           GNUTLS_KEY_KEY_ENCIPHERMENT);
        if (r >= 0)
                r = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0);
        if (r < 0)
                return gtls_fail(err, r, "client certificate");
        r = set_subject_key_id(crt, err);
        if (r < 0)
                return r;
        return ca_sign(ca, crt, cert_pem, err);
}

int sk_pki_make_key_and_csr(const char *cn, char **key_pem, char **csr_pem, sk_error **err)
{
        int r = check_cn(cn, err);
        if (r < 0)
                return r;
        _cleanup_privkey_ gnutls_x509_privkey_t key = NULL;
        r = new_p256_key(&key, err);
        if (r < 0)
                return r;
        _cleanup_crq_ gnutls_x509_crq_t crq = NULL;
        r = gnutls_x509_crq_init(&crq);
        if (r >= 0)
                r = gnutls_x509_crq_set_version(crq, 1);
        if (r >= 0)
                r = gnutls_x509_crq_set_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                                  (unsigned)strlen(cn));
        if (r >= 0)
                r = gnutls_x509_crq_set_key(crq, key);
        if (r >= 0)
                r = gnutls_x509_crq_sign2(crq, key, GNUTLS_DIG_SHA256, 0);
        if (r < 0)
                return gtls_fail(err, r, "certificate request");
        _cleanup_datum_ gnutls_datum_t d = {NULL, 0};
        r = gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_PEM, &d);
        if (r < 0)
                return gtls_fail(err, r, "exporting a certificate request");
        _cleanup_free_ char *csr = NULL, *keyp = NULL;
        r = datum_to_str(&d, &csr, err);
        if (r < 0)
                return r;
        r = export_key_pem(key, &keyp, err);
        if (r < 0)
                return r;
        *csr_pem = take_ptr(&csr);
        *key_pem = take_ptr(&keyp);
        return 0;
}

/* ---- verifying peers ---- */

/* The first URI SAN that names a skerry identity, or -ENOENT. */
static int find_skerry_uri(gnutls_x509_crt_t crt, char **uri, sk_error **err)
{
        for (unsigned i = 0;; i++) {
                size_t size = 0;
                unsigned type = 0;
                int r = gnutls_x509_crt_get_subject_alt_name2(crt, i, NULL, &size, &type, NULL);
                if (r == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
                        return -ENOENT;
                if (r != GNUTLS_E_SHORT_MEMORY_BUFFER && r < 0)
                        return gtls_fail(err, r, "client certificate names");
                if (type != GNUTLS_SAN_URI)
                        continue;
                _cleanup_free_ char *buf = malloc(size + 1);
                if (!buf)
                        return sk_error_set(err, ENOMEM, "out of memory");
                r = gnutls_x509_crt_get_subject_alt_name2(crt, i, buf, &size, &type, NULL);
                if (r < 0)
                        return gtls_fail(err, r, "client certificate names");
                buf[size] = '\0';
                if (strlen(buf) == size && strncmp(buf, URI_PREFIX, strlen(URI_PREFIX)) == 0) {
                        *uri = take_ptr(&buf);
                        return 0;
                }
        }
}

static int import_der(const gnutls_datum_t *raw, const char *what, gnutls_x509_crt_t *out,
                      sk_error **err)
{
        _cleanup_crt_ gnutls_x509_crt_t crt = NULL;
        int r = gnutls_x509_crt_init(&crt);
        if (r < 0)
                return gtls_fail(err, r, what);
        r = gnutls_x509_crt_import(crt, raw, GNUTLS_X509_FMT_DER);
        if (r < 0)
                return sk_error_set(err, EACCES, "%s cannot be parsed: %s", what,
                                    gnutls_strerror(r));
        *out = take_ptr(&crt);
        return 0;
}

/* The one intermediate we accept: a site CA as sk_ca_issue_site_ca makes it (CA, path
 * length 0, keyCertSign, the site's URI). The chain check proper is GnuTLS's. */
static int check_site_ca(gnutls_x509_crt_t crt, int64_t *site_id, sk_error **err)
{
        unsigned critical = 0, is_ca = 0, usage = 0;
        int pathlen = -1;
        int r = gnutls_x509_crt_get_basic_constraints(crt, &critical, &is_ca, &pathlen);
        if (r < 0 || !is_ca || pathlen != 0)
                return sk_error_set(err, EACCES,
                                    "client certificate chain: the intermediate is not a site "
                                    "CA (a CA with path length 0)");
        r = gnutls_x509_crt_get_key_usage(crt, &usage, &critical);
        if (r < 0 || !(usage & GNUTLS_KEY_KEY_CERT_SIGN))
                return sk_error_set(err, EACCES,
                                    "client certificate chain: the site CA may not sign "
                                    "certificates (no keyCertSign)");
        if (site_ca_id(crt, site_id) < 0)
                return sk_error_set(err, EACCES,
                                    "client certificate chain: the site CA names no site "
                                    "(URI skerry://site/<id>)");
        return 0;
}

static int status_error(unsigned status, sk_error **err)
{
        if (status & (GNUTLS_CERT_SIGNER_NOT_FOUND | GNUTLS_CERT_SIGNATURE_FAILURE |
                      GNUTLS_CERT_SIGNER_NOT_CA | GNUTLS_CERT_INSECURE_ALGORITHM))
                return sk_error_set(err, EACCES, "client certificate is not from this tower's CA");
        if (status & GNUTLS_CERT_EXPIRED)
                return sk_error_set(err, EACCES, "client certificate expired");
        if (status & GNUTLS_CERT_NOT_ACTIVATED)
                return sk_error_set(err, EACCES, "client certificate is not valid yet");
        if (status & GNUTLS_CERT_PURPOSE_MISMATCH)
                return sk_error_set(err, EACCES,
                                    "client certificate is not for client authentication");
        if (status != 0) {
                _cleanup_datum_ gnutls_datum_t why = {NULL, 0};
                gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0);
                return sk_error_set(err, EACCES, "client certificate refused: %s",
                                    why.data ? (const char *)why.data : "invalid");
        }
        return 0;
}

struct sk_pki_trust {
        gnutls_x509_trust_list_t list;
        gnutls_datum_t ca_der; /* the CA certificate itself, to drop it from a chain */
};

int sk_pki_trust_new(const char *ca_pem, sk_pki_trust **out, sk_error **err)
{
        *out = NULL;
        sk_pki_trust *t = calloc(1, sizeof(*t));
        if (!t)
                return sk_error_set(err, ENOMEM, "out of memory");
        gnutls_datum_t ca = {(unsigned char *)ca_pem, ca_pem ? (unsigned)strlen(ca_pem) : 0};
        _cleanup_crt_ gnutls_x509_crt_t crt = NULL;
        int r = gnutls_x509_trust_list_init(&t->list, 0);
        if (r < 0) {
                free(t);
                return gtls_fail(err, r, "trust list");
        }
        r = ca_pem ? gnutls_x509_trust_list_add_trust_mem(t->list, &ca, NULL, GNUTLS_X509_FMT_PEM,
                                                          0, 0)
                   : 0;
        if (r <= 0) {
                sk_pki_trust_free(t);
                return sk_error_set(err, EINVAL, "CA certificate: no PEM certificate found%s%s",
                                    r < 0 ? ": " : "", r < 0 ? gnutls_strerror(r) : "");
        }
        /* the first certificate of the PEM is the CA a chain may end with */
        if (gnutls_x509_crt_init(&crt) >= 0 &&
            gnutls_x509_crt_import(crt, &ca, GNUTLS_X509_FMT_PEM) >= 0)
                gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &t->ca_der);
        *out = t;
        return 0;
}

void sk_pki_trust_free(sk_pki_trust *t)
{
        if (!t)
                return;
        if (t->list)
                gnutls_x509_trust_list_deinit(t->list, 1);
        gnutls_free(t->ca_der.data);
        free(t);
}

static void trust_freep(sk_pki_trust **t)
{
        sk_pki_trust_free(*t);
}

/* Whether der is the very certificate of the trusted CA. */
static bool is_ca_cert(const gnutls_datum_t *der, const sk_pki_trust *t)
{
        return t->ca_der.data && t->ca_der.size == der->size &&
               memcmp(t->ca_der.data, der->data, der->size) == 0;
}

int sk_sha256_hex(const void *data, size_t len, char hex[SK_PKI_FP_LEN])
{
        unsigned char fp[32];
        if (gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, fp) < 0)
                return -EIO;
        for (size_t i = 0; i < sizeof(fp); i++)
                snprintf(hex + 2 * i, 3, "%02x", fp[i]);
        return 0;
}

static int fingerprint_der(const gnutls_datum_t *der, char hex[SK_PKI_FP_LEN])
{
        return sk_sha256_hex(der->data, der->size, hex);
}

int sk_pki_fingerprint(const char *pem, char hex[SK_PKI_FP_LEN], sk_error **err)
{
        _cleanup_crt_ gnutls_x509_crt_t crt = NULL;
        _cleanup_datum_ gnutls_datum_t der = {NULL, 0};
        gnutls_datum_t d = {(unsigned char *)pem, pem ? (unsigned)strlen(pem) : 0};
        if (!pem || gnutls_x509_crt_init(&crt) < 0 ||
            gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) < 0 ||
            gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der) < 0 ||
            fingerprint_der(&der, hex) < 0)
                return sk_error_set(err, EPROTO, "the certificate cannot be read");
        return 0;
}

/* The chain check on raw DER certificates, whichever way they arrived (a TLS session, or
 * PEM a leader forwarded). */
static int verify_chain(const gnutls_datum_t *raw, unsigned n, const sk_pki_trust *trust,
                        char **uri, char site_ca_fp[SK_PKI_FP_LEN], sk_error **err)
{
        if (site_ca_fp)
                site_ca_fp[0] = '\0';
        /* A host signed by the tower CA sends its certificate alone; one signed by its site's
         * CA sends that CA after it. Some TLS stacks (OpenSSL) append the root they were
         * given as well: the tower CA itself adds nothing, drop it. Anything longer is no
         * chain we make. */
        while (n > 1 && is_ca_cert(&raw[n - 1], trust))
                n--;
        if (n > 2)
                return sk_error_set(err, EACCES,
                                    "client certificate chain: %u certificates, at most a host "
                                    "certificate and its site CA",
                                    n);

        _cleanup_crt_ gnutls_x509_crt_t leaf = NULL, site_ca = NULL;
        int r = import_der(&raw[0], "client certificate", &leaf, err);
        if (r < 0)
                return r;
        /* A CA as the leaf would let a site CA's holder pose as a host named by nothing. */
        if (gnutls_x509_crt_get_ca_status(leaf, NULL) > 0)
                return sk_error_set(err, EACCES, "client certificate is a CA, not a host");
        int64_t ca_site = 0;
        if (n == 2) {
                r = import_der(&raw[1], "client certificate chain", &site_ca, err);
                if (r < 0)
                        return r;
                r = check_site_ca(site_ca, &ca_site, err);
                if (r < 0)
                        return r;
                /* Names alike are not enough: the signature must be the site CA's. */
                unsigned st = 0;
                r = gnutls_x509_crt_verify(leaf, &site_ca, 1, 0, &st);
                if (r < 0 || (st & (GNUTLS_CERT_SIGNER_NOT_FOUND | GNUTLS_CERT_SIGNATURE_FAILURE)))
                        return sk_error_set(err, EACCES,
                                            "client certificate is not signed by the site CA "
                                            "sent with it");
        }

        /* The purpose check keeps a server certificate from posing as a host. GnuTLS checks
         * time validity, signatures, CA flags and path lengths along the chain. */
        gnutls_typed_vdata_st purpose = {
            .type = GNUTLS_DT_KEY_PURPOSE_OID,
            .data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT,
        };
        gnutls_x509_crt_t chain[2] = {leaf, site_ca};
        unsigned status = 0;
        r = gnutls_x509_trust_list_verify_crt2(trust->list, chain, n, &purpose, 1, 0, &status,
                                               NULL);
        if (r < 0)
                return gtls_fail(err, r, "verifying the client certificate");
        r = status_error(status, err);
        if (r < 0)
                return r;

        _cleanup_free_ char *found = NULL;
        r = find_skerry_uri(leaf, &found, err);
        if (r == -ENOENT)
                return sk_error_set(err, EACCES, "client certificate has no skerry identity");
        if (r < 0)
                return r;
        /* URI name constraints cannot tell site 7 from site 8 (they match hosts, not paths),
         * so a site CA's reach is checked here: only identities of its own site, and only
         * ids of the site's own range, so that its key can never speak for a host the tower
         * signed. */
        int64_t leaf_site = 0, leaf_host = 0;
        if (n == 2 &&
            (sk_pki_parse_host_uri(found, &leaf_site, &leaf_host) < 0 || leaf_site != ca_site))
                return sk_error_set(err, EACCES,
                                    "client certificate \"%s\" is not a host of site %lld, "
                                    "whose site CA signed it",
                                    found, (long long)ca_site);
        if (n == 2 && !sk_pki_is_site_local_id(ca_site, leaf_host))
                return sk_error_set(err, EACCES,
                                    "client certificate \"%s\": a site CA signs only ids of its "
                                    "site's own range",
                                    found);
        if (n == 2 && site_ca_fp && fingerprint_der(&raw[1], site_ca_fp) < 0)
                return sk_error_set(err, EIO, "hashing the site CA failed");
        *uri = take_ptr(&found);
        return 0;
}

int sk_pki_verify_peer_trust(gnutls_session_t session, const sk_pki_trust *trust, char **uri,
                             char site_ca_fp[SK_PKI_FP_LEN], sk_error **err)
{
        unsigned n = 0;
        const gnutls_datum_t *raw = gnutls_certificate_get_peers(session, &n);
        if (!raw || n == 0)
                return sk_error_set(err, EACCES, "no client certificate");
        if (gnutls_certificate_type_get2(session, GNUTLS_CTYPE_PEERS) != GNUTLS_CRT_X509)
                return sk_error_set(err, EACCES, "client certificate is not X.509");
        return verify_chain(raw, n, trust, uri, site_ca_fp, err);
}

int sk_pki_verify_peer_ca(gnutls_session_t session, const char *ca_pem, char **uri,
                          char site_ca_fp[SK_PKI_FP_LEN], sk_error **err)
{
        _cleanup_trust_ sk_pki_trust *t = NULL;
        int r = sk_pki_trust_new(ca_pem, &t, err);
        return r < 0 ? r : sk_pki_verify_peer_trust(session, t, uri, site_ca_fp, err);
}

int sk_pki_peer_leaf_fp(gnutls_session_t session, char fp[SK_PKI_FP_LEN])
{
        unsigned n = 0;
        const gnutls_datum_t *raw = gnutls_certificate_get_peers(session, &n);
        fp[0] = '\0';
        return raw && n > 0 ? fingerprint_der(&raw[0], fp) : -ENOENT;
}

int sk_pki_verify_peer(gnutls_session_t session, const char *ca_pem, char **uri, sk_error **err)
{
        return sk_pki_verify_peer_ca(session, ca_pem, uri, NULL, err);
}

int sk_pki_verify_pem(const char *chain_pem, const char *ca_pem, char **uri,
                      char site_ca_fp[SK_PKI_FP_LEN], sk_error **err)
{
        gnutls_x509_crt_t crts[4];
        unsigned n = 4;
        gnutls_datum_t d = {(unsigned char *)chain_pem,
                            chain_pem ? (unsigned)strlen(chain_pem) : 0};
        int r = chain_pem ? gnutls_x509_crt_list_import(crts, &n, &d, GNUTLS_X509_FMT_PEM, 0)
                          : GNUTLS_E_BASE64_DECODING_ERROR;
        if (r < 0)
                return sk_error_set(err, EACCES, "certificate: not 1 to 4 PEM certificates (%s)",
                                    gnutls_strerror(r));
        gnutls_datum_t raw[4] = {{NULL, 0}};
        for (unsigned i = 0; i < n && r >= 0; i++)
                r = gnutls_x509_crt_export2(crts[i], GNUTLS_X509_FMT_DER, &raw[i]);
        _cleanup_trust_ sk_pki_trust *t = NULL;
        if (r >= 0)
                r = sk_pki_trust_new(ca_pem, &t, err);
        else
                r = gtls_fail(err, r, "certificate");
        if (r >= 0)
                r = verify_chain(raw, n, t, uri, site_ca_fp, err);
        for (unsigned i = 0; i < n; i++) {
                gnutls_free(raw[i].data);
                gnutls_x509_crt_deinit(crts[i]);
        }
        return r;
}

int sk_pki_check_site_ca(const char *got_fp, const char *current_fp, sk_error **err)
{
        if (!got_fp || !*got_fp || !current_fp || !*current_fp || strcmp(got_fp, current_fp) == 0)
                return 0;
        return sk_error_set(err, EACCES,
                            "client certificate is signed by a retired site CA (%.16s..., the "
                            "site's is %.16s...)",
                            got_fp, current_fp);
}

/* A positive decimal id without sign, spaces or leading zeros, so each id has one URI. */
static const char *parse_id(const char *s, int64_t *id)
{
        if (*s < '1' || *s > '9')
                return NULL;
        int64_t v = 0;
        for (; *s >= '0' && *s <= '9'; s++) {
                int d = *s - '0';
                if (v > (INT64_MAX - d) / 10)
                        return NULL;
                v = v * 10 + d;
        }
        *id = v;
        return s;
}

int sk_pki_parse_host_uri(const char *uri, int64_t *site_id, int64_t *host_id)
{
        static const char site[] = URI_PREFIX "site/";
        static const char host[] = "/host/";
        int64_t s = 0, h = 0;
        if (!uri || strncmp(uri, site, strlen(site)) != 0)
                return -EINVAL;
        const char *p = parse_id(uri + strlen(site), &s);
        if (!p || strncmp(p, host, strlen(host)) != 0)
                return -EINVAL;
        p = parse_id(p + strlen(host), &h);
        if (!p || *p != '\0')
                return -EINVAL;
        if (site_id)
                *site_id = s;
        if (host_id)
                *host_id = h;
        return 0;
}

int sk_pki_parse_site_uri(const char *uri, int64_t *site_id)
{
        static const char site[] = URI_PREFIX "site/";
        int64_t s = 0;
        if (!uri || strncmp(uri, site, strlen(site)) != 0)
                return -EINVAL;
        const char *p = parse_id(uri + strlen(site), &s);
        if (!p || *p != '\0')
                return -EINVAL;
        if (site_id)
                *site_id = s;
        return 0;
}

bool sk_pki_is_site_local_id(int64_t site_id, int64_t host_id)
{
        if (site_id <= 0 || site_id >= (1LL << 38))
                return false;
        int64_t first = SK_PKI_LOCAL_ID_BASE + site_id * (1LL << 24);
        return host_id > first && host_id < first + (1LL << 24);
}

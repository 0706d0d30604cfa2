/* The PKI against GnuTLS itself: certificates are parsed back and checked with GnuTLS, and
 * peer verification runs inside real TLS handshakes over a socketpair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
/* cmocka needs the three above first. */
#include <cmocka.h>

#include <arpa/inet.h>
#include <ftw.h>
#include <glob.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/pki.h"

#define HOST_URI "skerry://site/4/host/9"
/* An id of site 4's own range (2^62 + 4 * 2^24 + 9): what a site CA may sign. */
#define LOCAL_URI       "skerry://site/4/host/4611686018494496777"
#define SITE8_LOCAL_URI "skerry://site/8/host/4611686018561605635"

struct fixture {
        char dir[64];
        sk_ca *ca;
        char *server_cert, *server_key;
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path);
}

static int teardown(void **state);

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        assert_non_null(f);
        strcpy(f->dir, "/tmp/skerry-pki-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        *state = f;
        /* No asserts from here: a failed setup gets no teardown, so clean up by hand. */
        _cleanup_error_ sk_error *err = NULL;
        static const char *const names[] = {"localhost", "127.0.0.1"};
        int r = sk_ca_open(f->dir, &f->ca, &err);
        if (r == 0)
                r = sk_ca_issue_server(f->ca, names, 2, 30, &f->server_cert, &f->server_key, &err);
        if (r < 0) {
                print_error("setup: %s\n", sk_error_msg(err, r));
                teardown(state);
                return -1;
        }
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        sk_ca_free(f->ca);
        free(f->server_cert);
        free(f->server_key);
        nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(f);
        return 0;
}

static gnutls_x509_crt_t import_crt(const char *pem)
{
        gnutls_x509_crt_t crt = NULL;
        assert_int_equal(gnutls_x509_crt_init(&crt), 0);
        gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
        assert_int_equal(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM), 0);
        return crt;
}

static gnutls_x509_privkey_t import_key(const char *pem)
{
        gnutls_x509_privkey_t key = NULL;
        assert_int_equal(gnutls_x509_privkey_init(&key), 0);
        gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
        assert_int_equal(gnutls_x509_privkey_import2(key, &d, GNUTLS_X509_FMT_PEM, NULL, 0), 0);
        return key;
}

static char *crt_dn(gnutls_x509_crt_t crt, int issuer)
{
        gnutls_datum_t d = {NULL, 0};
        int r = issuer ? gnutls_x509_crt_get_issuer_dn3(crt, &d, 0)
                       : gnutls_x509_crt_get_dn3(crt, &d, 0);
        assert_int_equal(r, 0);
        char *s = strndup((const char *)d.data, d.size);
        gnutls_free(d.data);
        return s;
}

/* Verifies crt against the CA PEM with GnuTLS directly; returns the status bits. */
static unsigned verify_with(gnutls_x509_crt_t crt, const char *ca_pem)
{
        gnutls_x509_crt_t ca = import_crt(ca_pem);
        unsigned status = 0;
        assert_int_equal(gnutls_x509_crt_list_verify(&crt, 1, &ca, 1, NULL, 0, 0, &status), 0);
        gnutls_x509_crt_deinit(ca);
        return status;
}

static int has_purpose(gnutls_x509_crt_t crt, const char *oid)
{
        for (unsigned i = 0;; i++) {
                char buf[128];
                size_t size = sizeof(buf);
                int r = gnutls_x509_crt_get_key_purpose_oid(crt, i, buf, &size, NULL);
                if (r < 0)
                        return 0;
                if (strcmp(buf, oid) == 0)
                        return 1;
        }
}

static char *path_in(const char *dir, const char *name)
{
        char *p = NULL;
        assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
        return p;
}

/* ---- the CA ---- */

static void test_ca_create_then_reopen(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *key_path = path_in(f->dir, "ca.key");
        struct stat st;
        assert_int_equal(stat(key_path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);

        _cleanup_free_ char *disk = NULL;
        _cleanup_free_ char *cert_path = path_in(f->dir, "ca.pem");
        assert_int_equal(sk_file_read(cert_path, &disk, NULL, NULL), 0);
        assert_string_equal(disk, sk_ca_cert_pem(f->ca));

        _cleanup_ca_ sk_ca *again = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_ca_open(f->dir, &again, &err), 0);
        assert_string_equal(sk_ca_cert_pem(again), sk_ca_cert_pem(f->ca));

        gnutls_x509_crt_t crt = import_crt(sk_ca_cert_pem(f->ca));
        unsigned critical = 0;
        assert_true(gnutls_x509_crt_get_ca_status(crt, &critical) > 0);
        unsigned usage = 0;
        assert_true(gnutls_x509_crt_get_key_usage(crt, &usage, &critical) >= 0);
        assert_int_equal(usage, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN);
        _cleanup_free_ char *subject = crt_dn(crt, 0);
        assert_string_equal(subject, "CN=skerry CA");
        assert_int_equal(gnutls_x509_crt_get_pk_algorithm(crt, NULL), GNUTLS_PK_ECDSA);
        assert_int_equal(verify_with(crt, sk_ca_cert_pem(f->ca)), 0);
        time_t years = (gnutls_x509_crt_get_expiration_time(crt) - time(NULL)) / 86400 / 365;
        assert_int_equal(years, 10);
        gnutls_x509_crt_deinit(crt);
}

static void test_ca_refuses_foreign_key(void **state)
{
        struct fixture *f = *state;
        /* Under the fixture's folder, so teardown removes them whatever happens. */
        _cleanup_free_ char *other = path_in(f->dir, "other");
        _cleanup_ca_ sk_ca *ca2 = NULL;
        assert_int_equal(sk_ca_open(other, &ca2, NULL), 0);

        /* Copy the other CA's key next to this CA's certificate. */
        _cleanup_free_ char *other_key = path_in(other, "ca.key");
        _cleanup_free_ char *key = NULL;
        size_t len = 0;
        assert_int_equal(sk_file_read(other_key, &key, &len, NULL), 0);
        _cleanup_free_ char *mixed = path_in(f->dir, "mixed");
        assert_int_equal(mkdir(mixed, 0700), 0);
        _cleanup_free_ char *mixed_key = path_in(mixed, "ca.key");
        _cleanup_free_ char *mixed_pem = path_in(mixed, "ca.pem");
        const char *pem = sk_ca_cert_pem(f->ca);
        assert_int_equal(sk_file_write(mixed_key, key, len, 0600, NULL), 0);
        assert_int_equal(sk_file_write(mixed_pem, pem, strlen(pem), 0644, NULL), 0);

        _cleanup_ca_ sk_ca *bad = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_ca_open(mixed, &bad, &err), -EINVAL);
        assert_null(bad);
        assert_non_null(strstr(sk_error_msg(err, -EINVAL), "does not belong to"));

        /* A garbage certificate is named as such. */
        assert_int_equal(sk_file_write(mixed_pem, "junk\n", 5, 0644, NULL), 0);
        sk_error_free(&err);
        assert_int_equal(sk_ca_open(mixed, &bad, &err), -EINVAL);
        assert_non_null(strstr(sk_error_msg(err, -EINVAL), "not a PEM certificate"));
}

/* ---- server certificates ---- */

static void test_server_cert_has_sans(void **state)
{
        struct fixture *f = *state;
        static const char *const names[] = {"tower.example.com", "192.0.2.7", "2001:db8::1"};
        _cleanup_free_ char *cert = NULL, *key = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_ca_issue_server(f->ca, names, 3, 90, &cert, &key, &err), 0);
        assert_non_null(strstr(key, "BEGIN PRIVATE KEY"));

        gnutls_x509_crt_t crt = import_crt(cert);
        int found_dns = 0, found_v4 = 0, found_v6 = 0;
        for (unsigned i = 0;; i++) {
                unsigned char buf[256];
                size_t size = sizeof(buf);
                unsigned type = 0;
                int r = gnutls_x509_crt_get_subject_alt_name2(crt, i, buf, &size, &type, NULL);
                if (r == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
                        break;
                assert_true(r >= 0);
                unsigned char v4[4], v6[16];
                inet_pton(AF_INET, "192.0.2.7", v4);
                inet_pton(AF_INET6, "2001:db8::1", v6);
                if (type == GNUTLS_SAN_DNSNAME && size == 17 &&
                    memcmp(buf, "tower.example.com", 17) == 0)
                        found_dns++;
                else if (type == GNUTLS_SAN_IPADDRESS && size == 4 && memcmp(buf, v4, 4) == 0)
                        found_v4++;
                else if (type == GNUTLS_SAN_IPADDRESS && size == 16 && memcmp(buf, v6, 16) == 0)
                        found_v6++;
                else
                        fail_msg("unexpected SAN %u of type %u", i, type);
        }
        assert_int_equal(found_dns, 1);
        assert_int_equal(found_v4, 1);
        assert_int_equal(found_v6, 1);
        assert_int_equal(gnutls_x509_crt_check_hostname(crt, "tower.example.com"), 1);
        assert_int_equal(gnutls_x509_crt_check_ip(crt, (unsigned char[]){192, 0, 2, 7}, 4, 0), 1);
        assert_int_equal(gnutls_x509_crt_check_hostname(crt, "other.example.com"), 0);

        assert_true(has_purpose(crt, GNUTLS_KP_TLS_WWW_SERVER));
        assert_false(has_purpose(crt, GNUTLS_KP_TLS_WWW_CLIENT));
        unsigned usage = 0;
        assert_true(gnutls_x509_crt_get_key_usage(crt, &usage, NULL) >= 0);
        assert_int_equal(usage, GNUTLS_KEY_DIGITAL_SIGNATURE | GNUTLS_KEY_KEY_ENCIPHERMENT);
        assert_int_equal(gnutls_x509_crt_get_ca_status(crt, NULL), 0);
        _cleanup_free_ char *issuer = crt_dn(crt, 1);
        assert_string_equal(issuer, "CN=skerry CA");
        assert_int_equal(verify_with(crt, sk_ca_cert_pem(f->ca)), 0);

        /* Authority key id is the CA's subject key id. */
        unsigned char aki[64], ski[64];
        size_t aki_len = sizeof(aki), ski_len = sizeof(ski);
        assert_int_equal(gnutls_x509_crt_get_authority_key_id(crt, aki, &aki_len, NULL), 0);
        gnutls_x509_crt_t ca = import_crt(sk_ca_cert_pem(f->ca));
        assert_int_equal(gnutls_x509_crt_get_subject_key_id(ca, ski, &ski_len, NULL), 0);
        assert_memory_equal(aki, ski, ski_len);
        assert_int_equal(aki_len, ski_len);

        /* Two certificates never share a serial. */
        gnutls_x509_crt_t server = import_crt(f->server_cert);
        unsigned char s1[32], s2[32];
        size_t l1 = sizeof(s1), l2 = sizeof(s2);
        assert_int_equal(gnutls_x509_crt_get_serial(crt, s1, &l1), 0);
        assert_int_equal(gnutls_x509_crt_get_serial(server, s2, &l2), 0);
        assert_false(l1 == l2 && memcmp(s1, s2, l1) == 0);

        gnutls_x509_crt_deinit(server);
        gnutls_x509_crt_deinit(ca);
        gnutls_x509_crt_deinit(crt);
}

static void test_server_cert_bad_input(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *cert = NULL, *key = NULL;
        _cleanup_error_ sk_error *err = NULL;
        static const char *const names[] = {"ok.example", ""};
        assert_int_equal(sk_ca_issue_server(f->ca, names, 0, 30, &cert, &key, &err), -EINVAL);
        assert_non_null(strstr(sk_error_msg(err, -EINVAL), "names"));
        sk_error_free(&err);
        assert_int_equal(sk_ca_issue_server(f->ca, names, 2, 30, &cert, &key, &err), -EINVAL);
        assert_non_null(strstr(sk_error_msg(err, -EINVAL), "names[1]"));
        sk_error_free(&err);
        assert_int_equal(sk_ca_issue_server(f->ca, names, 1, 0, &cert, &key, &err), -EINVAL);
        assert_non_null(strstr(sk_error_msg(err, -EINVAL), "days"));
        assert_null(cert);
        assert_null(key);
}

/* ---- client certificates ---- */

static void test_sign_csr(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *key = NULL, *csr = NULL, *cert = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_pki_make_key_and_csr("ignored-name", &key, &csr, &err), 0);
        assert_non_null(strstr(csr, "BEGIN NEW CERTIFICATE REQUEST"));
        assert_int_equal(sk_ca_sign_client(f->ca, csr, "till-1", HOST_URI, 365, &cert, &err), 0);

        gnutls_x509_crt_t crt = import_crt(cert);
        char buf[256];
        size_t size = sizeof(buf);
        unsigned type = 0;
        assert_int_equal(gnutls_x509_crt_get_subject_alt_name2(crt, 0, buf, &size, &type, NULL),
                         GNUTLS_SAN_URI);
        assert_int_equal(size, strlen(HOST_URI));
        assert_memory_equal(buf, HOST_URI, size);
        size = sizeof(buf);
        assert_int_equal(gnutls_x509_crt_get_subject_alt_name2(crt, 1, buf, &size, &type, NULL),
                         GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);

        _cleanup_free_ char *subject = crt_dn(crt, 0);
        assert_string_equal(subject, "CN=till-1");
        _cleanup_free_ char *issuer = crt_dn(crt, 1);
        assert_string_equal(issuer, "CN=skerry CA");
        assert_int_equal(verify_with(crt, sk_ca_cert_pem(f->ca)), 0);
        assert_true(has_purpose(crt, GNUTLS_KP_TLS_WWW_CLIENT));
        assert_false(has_purpose(crt, GNUTLS_KP_TLS_WWW_SERVER));
        time_t days = (gnutls_x509_crt_get_expiration_time(crt) - time(NULL) + 60) / 86400;
        assert_int_equal(days, 365);

        /* The certificate carries the requester's key. */
        gnutls_x509_privkey_t pk = import_key(key);
        unsigned char a[32], b[32];
        size_t la = sizeof(a), lb = sizeof(b);
        assert_int_equal(gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, a, &la), 0);
        assert_int_equal(gnutls_x509_privkey_get_key_id(pk, GNUTLS_KEYID_USE_SHA256, b, &lb), 0);
        assert_int_equal(la, lb);
        assert_memory_equal(a, b, la);

        /* Subject key id names that key; authority key id names the CA's. */
        unsigned char ski[64], sha1[64], aki[64], ca_ski[64];
        size_t ski_len = sizeof(ski), sha1_len = sizeof(sha1), aki_len = sizeof(aki),
               ca_ski_len = sizeof(ca_ski);
        assert_int_equal(gnutls_x509_crt_get_subject_key_id(crt, ski, &ski_len, NULL), 0);
        assert_int_equal(gnutls_x509_privkey_get_key_id(pk, GNUTLS_KEYID_USE_SHA1, sha1, &sha1_len),
                         0);
        assert_int_equal(ski_len, sha1_len);
        assert_memory_equal(ski, sha1, ski_len);
        assert_int_equal(gnutls_x509_crt_get_authority_key_id(crt, aki, &aki_len, NULL), 0);
        gnutls_x509_crt_t ca = import_crt(sk_ca_cert_pem(f->ca));
        assert_int_equal(gnutls_x509_crt_get_subject_key_id(ca, ca_ski, &ca_ski_len, NULL), 0);
        gnutls_x509_crt_deinit(ca);
        assert_int_equal(aki_len, ca_ski_len);
        assert_memory_equal(aki, ca_ski, aki_len);
        gnutls_x509_privkey_deinit(pk);
        gnutls_x509_crt_deinit(crt);
}

static void test_refuse_bad_csr(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *cert = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(
            sk_ca_sign_client(f->ca, "not a csr at all", "h", HOST_URI, 30, &cert, &err), -EINVAL);
        assert_non_null(strstr(sk_error_msg(err, -EINVAL), "certificate request"));
        assert_null(cert);

        /* A well-formed CSR whose signature was tampered with. */
        _cleanup_free_ char *key = NULL, *csr = NULL;
        assert_int_equal(sk_pki_make_key_and_csr("h", &key, &csr, NULL), 0);
        gnutls_x509_crq_t crq = NULL;
        assert_int_equal(gnutls_x509_crq_init(&crq), 0);
        gnutls_datum_t in = {(unsigned char *)csr, (unsigned)strlen(csr)};
        assert_int_equal(gnutls_x509_crq_import(crq, &in, GNUTLS_X509_FMT_PEM), 0);
        gnutls_datum_t der = {NULL, 0}, pem = {NULL, 0};
        assert_int_equal(gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_DER, &der), 0);
        der.data[der.size - 1] ^= 0x01; /* last byte of the ECDSA signature */
        assert_int_equal(gnutls_pem_base64_encode2("NEW CERTIFICATE REQUEST", &der, &pem), 0);
        _cleanup_free_ char *bad = strndup((const char *)pem.data, pem.size);
        gnutls_free(der.data);
        gnutls_free(pem.data);
        gnutls_x509_crq_deinit(crq);

        sk_error_free(&err);
        assert_int_equal(sk_ca_sign_client(f->ca, bad, "h", HOST_URI, 30, &cert, &err), -EINVAL);
        assert_non_null(strstr(sk_error_msg(err, -EINVAL), "signature does not verify"));
        assert_null(cert);

        /* The untampered one is fine; bad cn and uri are named. */
        sk_error_free(&err);
        assert_int_equal(sk_ca_sign_client(f->ca, csr, "", HOST_URI, 30, &cert, &err), -EINVAL);
        assert_non_null(strstr(sk_error_msg(err, -EINVAL), "cn"));
        sk_error_free(&err);
        assert_int_equal(sk_ca_sign_client(f->ca, csr, "h", "", 30, &cert, &err), -EINVAL);
        assert_non_null(strstr(sk_error_msg(err, -EINVAL), "uri"));
        assert_int_equal(sk_ca_sign_client(f->ca, csr, "h", HOST_URI, 30, &cert, NULL), 0);
        assert_non_null(cert);
}

/* ---- TLS handshakes ---- */

struct client_run {
        int fd;
        const char *ca_pem, *cert_pem, *key_pem;
        int handshake;
        int got_byte;
};

static void set_timeouts(int fd)
{
        struct timeval tv = {.tv_sec = 10};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Runs on its own thread, so no cmocka asserts here: results go back in the struct. */
static void *client_main(void *arg)
{
        struct client_run *c = arg;
        gnutls_certificate_credentials_t cred = NULL;
        gnutls_session_t s = NULL;
        c->handshake = -1;
        if (gnutls_certificate_allocate_credentials(&cred) < 0)
                return NULL;
        gnutls_datum_t ca = {(unsigned char *)c->ca_pem, (unsigned)strlen(c->ca_pem)};
        if (gnutls_certificate_set_x509_trust_mem(cred, &ca, GNUTLS_X509_FMT_PEM) <= 0)
                goto out;
        if (c->cert_pem) {
                gnutls_datum_t crt = {(unsigned char *)c->cert_pem, (unsigned)strlen(c->cert_pem)};
                gnutls_datum_t key = {(unsigned char *)c->key_pem, (unsigned)strlen(c->key_pem)};
                if (gnutls_certificate_set_x509_key_mem(cred, &crt, &key, GNUTLS_X509_FMT_PEM) < 0)
                        goto out;
        }
        if (gnutls_init(&s, GNUTLS_CLIENT) < 0)
                goto out;
        gnutls_set_default_priority(s);
        gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
        gnutls_server_name_set(s, GNUTLS_NAME_DNS, "localhost", strlen("localhost"));
        /* The client checks the tower's certificate too, as the agent does. */
        gnutls_session_set_verify_cert(s, "localhost", 0);
        gnutls_transport_set_int(s, c->fd);
        gnutls_handshake_set_timeout(s, 10000);
        int r;
        do {
                r = gnutls_handshake(s);
        } while (r < 0 && !gnutls_error_is_fatal(r));
        c->handshake = r;
        if (r == 0) {
                char byte;
                while ((r = (int)gnutls_record_recv(s, &byte, 1)) != 0) {
                        if (r == 1)
                                c->got_byte = 1;
                        else if (gnutls_error_is_fatal(r))
                                break;
                }
        }
out:
        if (s)
                gnutls_deinit(s);
        gnutls_certificate_free_credentials(cred);
        return NULL;
}

/* The site CA fingerprint the last handshake_and_verify saw. */
static char last_site_ca[SK_PKI_FP_LEN];

/* A server handshake that requests (not requires) a client certificate, then
 * sk_pki_verify_peer_ca. Returns its result; *msg gets the error message. */
static int handshake_and_verify(struct fixture *f, const char *cert_pem, const char *key_pem,
                                char **uri, char **msg)
{
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        set_timeouts(sv[0]);
        set_timeouts(sv[1]);
        struct client_run c = {
            .fd = sv[1],
            .ca_pem = sk_ca_cert_pem(f->ca),
            .cert_pem = cert_pem,
            .key_pem = key_pem,
        };
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, client_main, &c), 0);

        gnutls_certificate_credentials_t cred = NULL;
        assert_int_equal(gnutls_certificate_allocate_credentials(&cred), 0);
        gnutls_datum_t crt = {(unsigned char *)f->server_cert, (unsigned)strlen(f->server_cert)};
        gnutls_datum_t key = {(unsigned char *)f->server_key, (unsigned)strlen(f->server_key)};
        assert_int_equal(gnutls_certificate_set_x509_key_mem(cred, &crt, &key, GNUTLS_X509_FMT_PEM),
                         0);
        gnutls_session_t s = NULL;
        assert_int_equal(gnutls_init(&s, GNUTLS_SERVER), 0);
        gnutls_set_default_priority(s);
        gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
        gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUEST);
        gnutls_transport_set_int(s, sv[0]);
        gnutls_handshake_set_timeout(s, 10000);
        int r;
        do {
                r = gnutls_handshake(s);
        } while (r < 0 && !gnutls_error_is_fatal(r));
        int handshake = r;

        sk_error *err = NULL;
        int verified = -1;
        if (handshake == 0) {
                verified = sk_pki_verify_peer_ca(s, sk_ca_cert_pem(f->ca), uri, last_site_ca, &err);
                gnutls_record_send(s, "x", 1);
                gnutls_bye(s, GNUTLS_SHUT_WR);
        }
        gnutls_deinit(s);
        close(sv[0]);
        pthread_join(th, NULL);
        close(sv[1]);
        gnutls_certificate_free_credentials(cred);

        assert_int_equal(handshake, 0);
        assert_int_equal(c.handshake, 0);
        assert_true(c.got_byte);
        *msg = err ? strdup(sk_error_msg(err, verified)) : NULL;
        sk_error_free(&err);
        return verified;
}

static char *client_cert_from(sk_ca *ca, const char *uri, char **key)
{
        _cleanup_free_ char *csr = NULL;
        char *cert = NULL;
        assert_int_equal(sk_pki_make_key_and_csr("till-1", key, &csr, NULL), 0);
        assert_int_equal(sk_ca_sign_client(ca, csr, "till-1", uri, 30, &cert, NULL), 0);
        return cert;
}

static void test_tls_peer_from_our_ca(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *key = NULL;
        _cleanup_free_ char *cert = client_cert_from(f->ca, HOST_URI, &key);
        _cleanup_free_ char *uri = NULL, *msg = NULL;
        assert_int_equal(handshake_and_verify(f, cert, key, &uri, &msg), 0);
        assert_null(msg);
        assert_non_null(uri);
        assert_string_equal(uri, HOST_URI);

        /* The CA sent after the leaf (OpenSSL clients do) changes nothing. */
        free(uri);
        uri = NULL;
        char *with_ca = NULL;
        assert_true(asprintf(&with_ca, "%s%s", cert, sk_ca_cert_pem(f->ca)) > 0);
        assert_int_equal(handshake_and_verify(f, with_ca, key, &uri, &msg), 0);
        assert_string_equal(uri, HOST_URI);
        free(with_ca);
}

static void test_tls_peer_from_other_ca(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *other = path_in(f->dir, "other");
        _cleanup_ca_ sk_ca *ca2 = NULL;
        assert_int_equal(sk_ca_open(other, &ca2, NULL), 0);
        _cleanup_free_ char *key = NULL;
        _cleanup_free_ char *cert = client_cert_from(ca2, HOST_URI, &key);

        _cleanup_free_ char *uri = NULL, *msg = NULL;
        assert_int_equal(handshake_and_verify(f, cert, key, &uri, &msg), -EACCES);
        assert_null(uri);
        assert_string_equal(msg, "client certificate is not from this tower's CA");
}

static void test_tls_no_peer_cert(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *uri = NULL, *msg = NULL;
        assert_int_equal(handshake_and_verify(f, NULL, NULL, &uri, &msg), -EACCES);
        assert_null(uri);
        assert_string_equal(msg, "no client certificate");
}

static void test_tls_server_cert_as_client(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *uri = NULL, *msg = NULL;
        assert_int_equal(handshake_and_verify(f, f->server_cert, f->server_key, &uri, &msg),
                         -EACCES);
        assert_null(uri);
        assert_string_equal(msg, "client certificate is not for client authentication");
}

/* A client certificate signed with the CA's key on disk, with the given validity and
 * optional URI: what sk_ca_sign_client will not make (expired, no identity). */
static char *forge_client_cert(struct fixture *f, time_t from, time_t until, const char *uri,
                               char **key_pem)
{
        _cleanup_free_ char *csr = NULL, *ca_key_pem = NULL;
        _cleanup_free_ char *ca_key_path = path_in(f->dir, "ca.key");
        assert_int_equal(sk_pki_make_key_and_csr("forged", key_pem, &csr, NULL), 0);
        assert_int_equal(sk_file_read(ca_key_path, &ca_key_pem, NULL, NULL), 0);
        gnutls_x509_privkey_t ca_key = import_key(ca_key_pem);
        gnutls_x509_privkey_t key = import_key(*key_pem);
        gnutls_x509_crt_t ca = import_crt(sk_ca_cert_pem(f->ca));

        gnutls_x509_crt_t crt = NULL;
        assert_int_equal(gnutls_x509_crt_init(&crt), 0);
        assert_int_equal(gnutls_x509_crt_set_version(crt, 3), 0);
        assert_int_equal(gnutls_x509_crt_set_serial(crt, "\x42\x01", 2), 0);
        assert_int_equal(gnutls_x509_crt_set_activation_time(crt, from), 0);
        assert_int_equal(gnutls_x509_crt_set_expiration_time(crt, until), 0);
        assert_int_equal(
            gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, "forged", 6), 0);
        assert_int_equal(gnutls_x509_crt_set_key(crt, key), 0);
        if (uri)
                assert_int_equal(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_URI, uri,
                                                                      strlen(uri), GNUTLS_FSAN_SET),
                                 0);
        else
                assert_int_equal(gnutls_x509_crt_set_subject_alt_name(
                                     crt, GNUTLS_SAN_DNSNAME, "host.example", 12, GNUTLS_FSAN_SET),
                                 0);
        assert_int_equal(gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0), 0);
        assert_int_equal(gnutls_x509_crt_sign2(crt, ca, ca_key, GNUTLS_DIG_SHA256, 0), 0);
        gnutls_datum_t d = {NULL, 0};
        assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d), 0);
        char *pem = strndup((const char *)d.data, d.size);
        gnutls_free(d.data);
        explicit_bzero(ca_key_pem, strlen(ca_key_pem));
        gnutls_x509_crt_deinit(crt);
        gnutls_x509_crt_deinit(ca);
        gnutls_x509_privkey_deinit(key);
        gnutls_x509_privkey_deinit(ca_key);
        return pem;
}

static void test_tls_expired_peer(void **state)
{
        struct fixture *f = *state;
        time_t now = time(NULL);
        _cleanup_free_ char *key = NULL;
        _cleanup_free_ char *cert =
            forge_client_cert(f, now - 10 * 86400, now - 86400, HOST_URI, &key);
        _cleanup_free_ char *uri = NULL, *msg = NULL;
        assert_int_equal(handshake_and_verify(f, cert, key, &uri, &msg), -EACCES);
        assert_null(uri);
        assert_string_equal(msg, "client certificate expired");
}

static void test_tls_peer_without_identity(void **state)
{
        struct fixture *f = *state;
        time_t now = time(NULL);
        _cleanup_free_ char *key = NULL, *uri = NULL, *msg = NULL;
        _cleanup_free_ char *cert = forge_client_cert(f, now - 60, now + 86400, NULL, &key);
        assert_int_equal(handshake_and_verify(f, cert, key, &uri, &msg), -EACCES);
        assert_null(uri);
        assert_string_equal(msg, "client certificate has no skerry identity");

        /* A URI that is not a skerry one is no identity either. */
        free(key);
        free(cert);
        free(msg);
        key = msg = NULL;
        cert = forge_client_cert(f, now - 60, now + 86400, "https://example.com/host/9", &key);
        assert_int_equal(handshake_and_verify(f, cert, key, &uri, &msg), -EACCES);
        assert_null(uri);
        assert_string_equal(msg, "client certificate has no skerry identity");

        /* The forged path itself is sound: with a URI the same certificate passes. */
        free(key);
        free(msg);
        key = msg = NULL;
        _cleanup_free_ char *good = forge_client_cert(f, now - 60, now + 86400, HOST_URI, &key);
        assert_int_equal(handshake_and_verify(f, good, key, &uri, &msg), 0);
        assert_string_equal(uri, HOST_URI);
}

/* ---- host URIs ---- */

static void test_parse_host_uri(void **state)
{
        int64_t site = 0, host = 0;
        assert_int_equal(sk_pki_parse_host_uri("skerry://site/4/host/9", &site, &host), 0);
        assert_int_equal(site, 4);
        assert_int_equal(host, 9);
        assert_int_equal(
            sk_pki_parse_host_uri("skerry://site/9223372036854775807/host/12", &site, &host), 0);
        assert_int_equal(site, INT64_MAX);
        assert_int_equal(host, 12);

        static const char *const bad[] = {
            "",
            "skerry://site/4/host/",
            "skerry://site//host/9",
            "skerry://site/4/host/9/",
            "skerry://site/4/host/9x",
            "skerry://site/04/host/9",
            "skerry://site/0/host/9",
            "skerry://site/-4/host/9",
            "skerry://site/+4/host/9",
            "skerry://site/ 4/host/9",
            "skerry://site/4/hosts/9",
            "skerry://site/9223372036854775808/host/1",
            "https://site/4/host/9",
            "SKERRY://site/4/host/9",
            "skerry://site/4",
        };
        for (size_t i = 0; i < SK_ARRAY_SIZE(bad); i++) {
                site = host = -1;
                if (sk_pki_parse_host_uri(bad[i], &site, &host) != -EINVAL)
                        fail_msg("accepted \"%s\"", bad[i]);
                assert_int_equal(site, -1);
                assert_int_equal(host, -1);
        }
        assert_int_equal(sk_pki_parse_host_uri(NULL, &site, &host), -EINVAL);
}

/* ---- files ---- */

static void test_file_write_mode(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *path = path_in(f->dir, "secret");
        mode_t old = umask(0);
        int r = sk_file_write(path, "first", 5, 0600, NULL);
        umask(old);
        assert_int_equal(r, 0);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);

        /* Overwrite: new content, the new mode, and no temporary file left behind. */
        old = umask(077);
        r = sk_file_write(path, "second\0x", 8, 0644, NULL);
        umask(old);
        assert_int_equal(r, 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0644);
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        assert_int_equal(sk_file_read(path, &data, &len, NULL), 0);
        assert_int_equal(len, 8);
        assert_memory_equal(data, "second\0x", 8);

        _cleanup_free_ char *pattern = path_in(f->dir, "secret.tmp.*");
        glob_t g;
        assert_int_equal(glob(pattern, 0, NULL, &g), GLOB_NOMATCH);
        globfree(&g);

        /* Errors name the path. */
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_file_write("/nonexistent-skerry-dir/x", "a", 1, 0600, &err), -ENOENT);
        assert_non_null(strstr(sk_error_msg(err, -ENOENT), "/nonexistent-skerry-dir/x"));
        sk_error_free(&err);
        _cleanup_free_ char *none = path_in(f->dir, "missing");
        _cleanup_free_ char *nothing = NULL;
        assert_int_equal(sk_file_read(none, &nothing, &len, &err), -ENOENT);
        assert_non_null(strstr(sk_error_msg(err, -ENOENT), "missing"));
}

/* ---- site CAs ---- */

#define SITE_URI "skerry://site/4"

static char *concat(const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b);
        char *s = malloc(la + lb + 1);
        assert_non_null(s);
        memcpy(s, a, la);
        memcpy(s + la, b, lb + 1);
        return s;
}

static char *tower_ca_key(struct fixture *f)
{
        _cleanup_free_ char *path = path_in(f->dir, "ca.key");
        char *pem = NULL;
        assert_int_equal(sk_file_read(path, &pem, NULL, NULL), 0);
        return pem;
}

/* Any certificate signed by issuer_cert/issuer_key with the given URI and constraints
 * (pathlen < -1: no basic constraints at all), the kinds sk_ca_* refuse to make. */
static char *forge_cert(const char *issuer_cert, const char *issuer_key, const char *uri, int is_ca,
                        int pathlen, unsigned usage, char **key_pem)
{
        _cleanup_free_ char *csr = NULL;
        assert_int_equal(sk_pki_make_key_and_csr("forged", key_pem, &csr, NULL), 0);
        gnutls_x509_privkey_t ikey = import_key(issuer_key);
        gnutls_x509_privkey_t key = import_key(*key_pem);
        gnutls_x509_crt_t icrt = import_crt(issuer_cert);
        gnutls_x509_crt_t crt = NULL;
        time_t now = time(NULL);
        assert_int_equal(gnutls_x509_crt_init(&crt), 0);
        assert_int_equal(gnutls_x509_crt_set_version(crt, 3), 0);
        assert_int_equal(gnutls_x509_crt_set_serial(crt, "\x42\x02", 2), 0);
        assert_int_equal(gnutls_x509_crt_set_activation_time(crt, now - 60), 0);
        assert_int_equal(gnutls_x509_crt_set_expiration_time(crt, now + 86400), 0);
        assert_int_equal(
            gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, "forged", 6), 0);
        assert_int_equal(gnutls_x509_crt_set_key(crt, key), 0);
        assert_int_equal(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_URI, uri, strlen(uri),
                                                              GNUTLS_FSAN_SET),
                         0);
        if (pathlen >= -1)
                assert_int_equal(gnutls_x509_crt_set_basic_constraints(crt, is_ca, pathlen), 0);
        if (usage)
                assert_int_equal(gnutls_x509_crt_set_key_usage(crt, usage), 0);
        if (!is_ca)
                assert_int_equal(
                    gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0), 0);
        unsigned char id[64];
        size_t size = sizeof(id);
        assert_int_equal(gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, id, &size), 0);
        assert_int_equal(gnutls_x509_crt_set_subject_key_id(crt, id, size), 0);
        size = sizeof(id);
        if (gnutls_x509_crt_get_subject_key_id(icrt, id, &size, NULL) == 0)
                assert_int_equal(gnutls_x509_crt_set_authority_key_id(crt, id, size), 0);
        assert_int_equal(gnutls_x509_crt_sign2(crt, icrt, ikey, GNUTLS_DIG_SHA256, 0), 0);
        gnutls_datum_t d = {NULL, 0};
        assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d), 0);
        char *pem = strndup((const char *)d.data, d.size);
        gnutls_free(d.data);
        gnutls_x509_crt_deinit(crt);
        gnutls_x509_crt_deinit(icrt);
        gnutls_x509_privkey_deinit(key);
        gnutls_x509_privkey_deinit(ikey);
        return pem;
}

static void test_site_ca_issued(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *cert = NULL, *key = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_ca_issue_site_ca(f->ca, 4, &cert, &key, &err), 0);
        gnutls_x509_crt_t crt = import_crt(cert);
        unsigned critical = 0, is_ca = 0, usage = 0;
        int pathlen = -1;
        assert_int_equal(gnutls_x509_crt_get_basic_constraints(crt, &critical, &is_ca, &pathlen),
                         1);
        assert_true(is_ca);
        assert_int_equal(pathlen, 0);
        assert_true(gnutls_x509_crt_get_key_usage(crt, &usage, &critical) >= 0);
        assert_int_equal(usage, GNUTLS_KEY_KEY_CERT_SIGN);
        char buf[64];
        size_t size = sizeof(buf);
        unsigned type = 0;
        assert_int_equal(gnutls_x509_crt_get_subject_alt_name2(crt, 0, buf, &size, &type, NULL),
                         GNUTLS_SAN_URI);
        assert_int_equal(size, strlen(SITE_URI));
        assert_memory_equal(buf, SITE_URI, size);
        _cleanup_free_ char *issuer = crt_dn(crt, 1);
        assert_string_equal(issuer, "CN=skerry CA");
        assert_int_equal(verify_with(crt, sk_ca_cert_pem(f->ca)), 0);
        /* It ends with the tower CA. */
        gnutls_x509_crt_t root = import_crt(sk_ca_cert_pem(f->ca));
        assert_int_equal(gnutls_x509_crt_get_expiration_time(crt),
                         gnutls_x509_crt_get_expiration_time(root));
        gnutls_x509_crt_deinit(root);
        gnutls_x509_crt_deinit(crt);

        /* Loaded back, it knows its site and refuses to make another CA. */
        _cleanup_ca_ sk_ca *site = NULL;
        assert_int_equal(sk_ca_load_site(cert, key, &site, &err), 0);
        assert_int_equal(sk_ca_site_id(site), 4);
        assert_int_equal(sk_ca_site_id(f->ca), 0);
        _cleanup_free_ char *c2 = NULL, *k2 = NULL;
        assert_int_equal(sk_ca_issue_site_ca(site, 4, &c2, &k2, &err), -EINVAL);
        assert_null(c2);
        assert_int_equal(sk_ca_issue_site_ca(f->ca, 0, &c2, &k2, NULL), -EINVAL);

        /* The tower CA is no site CA, and a key of another certificate is refused. */
        _cleanup_free_ char *tk = tower_ca_key(f);
        _cleanup_ca_ sk_ca *bad = NULL;
        sk_error *e2 = NULL;
        assert_int_equal(sk_ca_load_site(sk_ca_cert_pem(f->ca), tk, &bad, &e2), -EINVAL);
        assert_non_null(strstr(sk_error_msg(e2, -EINVAL), "names no site"));
        sk_error_free(&e2);
        assert_int_equal(sk_ca_load_site(cert, tk, &bad, &e2), -EINVAL);
        assert_non_null(strstr(sk_error_msg(e2, -EINVAL), "does not belong"));
        sk_error_free(&e2);
        assert_null(bad);
        /* The caller's key text is left as it was. */
        assert_non_null(strstr(key, "PRIVATE KEY"));
}

static void test_site_ca_signs_own_site_only(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *cert = NULL, *key = NULL;
        assert_int_equal(sk_ca_issue_site_ca(f->ca, 4, &cert, &key, NULL), 0);
        _cleanup_ca_ sk_ca *site = NULL;
        assert_int_equal(sk_ca_load_site(cert, key, &site, NULL), 0);

        _cleanup_free_ char *hkey = NULL, *csr = NULL, *leaf = NULL;
        assert_int_equal(sk_pki_make_key_and_csr("till-9", &hkey, &csr, NULL), 0);
        assert_int_equal(sk_ca_sign_client(site, csr, "till-9", LOCAL_URI, 30, &leaf, NULL), 0);
        gnutls_x509_crt_t crt = import_crt(leaf);
        _cleanup_free_ char *issuer = crt_dn(crt, 1);
        assert_string_equal(issuer, "CN=skerry site 4 CA");
        assert_int_equal(verify_with(crt, cert), 0);
        /* Not the tower CA's own signature. */
        assert_int_not_equal(verify_with(crt, sk_ca_cert_pem(f->ca)), 0);
        gnutls_x509_crt_deinit(crt);

        /* Another site's, the tower's own ids (its key must never speak for those), not a
         * host. */
        static const char *const refused[] = {"skerry://site/5/host/9",
                                              "skerry://site/4",
                                              HOST_URI,
                                              "skerry://site/5/host/4611686018511273993",
                                              "skerry://site/40/host/9",
                                              "https://x/y"};
        for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
                _cleanup_free_ char *other = NULL;
                _cleanup_error_ sk_error *err = NULL;
                assert_int_equal(
                    sk_ca_sign_client(site, csr, "till-9", refused[i], 30, &other, &err), -EINVAL);
                assert_null(other);
                assert_non_null(strstr(sk_error_msg(err, -EINVAL), "uri:"));
        }
}

static void test_parse_site_uri(void **state)
{
        int64_t s = 0;
        assert_int_equal(sk_pki_parse_site_uri("skerry://site/17", &s), 0);
        assert_int_equal(s, 17);
        static const char *const bad[] = {
            "skerry://site/",   "skerry://site/0",  "skerry://site/7/", "skerry://site/7/host/1",
            "skerry://site/-7", "skerry://site/07", "skerry://tower/7", NULL};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_int_equal(sk_pki_parse_site_uri(bad[i], &s), -EINVAL);
}

/* A site CA of site_id from the fixture's tower CA, and a host of host_uri signed by it;
 * returns "leaf + site CA" as a host sends it. */
static char *site_chain(struct fixture *f, int64_t site_id, const char *host_uri, char **key)
{
        _cleanup_free_ char *cert = NULL, *ckey = NULL, *csr = NULL, *leaf = NULL;
        assert_int_equal(sk_ca_issue_site_ca(f->ca, site_id, &cert, &ckey, NULL), 0);
        _cleanup_ca_ sk_ca *site = NULL;
        assert_int_equal(sk_ca_load_site(cert, ckey, &site, NULL), 0);
        assert_int_equal(sk_pki_make_key_and_csr("till-9", key, &csr, NULL), 0);
        assert_int_equal(sk_ca_sign_client(site, csr, "till-9", host_uri, 30, &leaf, NULL), 0);
        return concat(leaf, cert);
}

static void test_tls_peer_through_site_ca(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *key = NULL, *uri = NULL, *msg = NULL;
        _cleanup_free_ char *chain = site_chain(f, 4, LOCAL_URI, &key);
        assert_int_equal(handshake_and_verify(f, chain, key, &uri, &msg), 0);
        assert_null(msg);
        assert_string_equal(uri, LOCAL_URI);

        /* With the tower CA appended too (as OpenSSL clients send it): the same. */
        free(uri);
        uri = NULL;
        _cleanup_free_ char *with_root = concat(chain, sk_ca_cert_pem(f->ca));
        assert_int_equal(handshake_and_verify(f, with_root, key, &uri, &msg), 0);
        assert_string_equal(uri, LOCAL_URI);

        /* The leaf alone, without its site CA, does not chain to the tower CA. */
        free(uri);
        uri = NULL;
        const char *end = strstr(chain, "-----END CERTIFICATE-----");
        assert_non_null(end);
        _cleanup_free_ char *leaf =
            strndup(chain, (size_t)(end - chain) + strlen("-----END CERTIFICATE-----\n"));
        assert_int_equal(handshake_and_verify(f, leaf, key, &uri, &msg), -EACCES);
        assert_null(uri);
        assert_string_equal(msg, "client certificate is not from this tower's CA");
}

/* Two generations of site 4's CA (what removing a host does at the tower): the chain
 * says which one signed, and sk_pki_check_site_ca refuses the retired one. */
static void test_site_ca_generations(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *c1 = NULL, *k1 = NULL, *c2 = NULL, *k2 = NULL;
        assert_int_equal(sk_ca_issue_site_ca(f->ca, 4, &c1, &k1, NULL), 0);
        assert_int_equal(sk_ca_issue_site_ca(f->ca, 4, &c2, &k2, NULL), 0);
        char fp1[SK_PKI_FP_LEN], fp2[SK_PKI_FP_LEN];
        assert_int_equal(sk_pki_fingerprint(c1, fp1, NULL), 0);
        assert_int_equal(sk_pki_fingerprint(c2, fp2, NULL), 0);
        assert_int_equal(strlen(fp1), 64);
        assert_string_not_equal(fp1, fp2);

        _cleanup_ca_ sk_ca *old = NULL;
        assert_int_equal(sk_ca_load_site(c1, k1, &old, NULL), 0);
        _cleanup_free_ char *key = NULL, *csr = NULL, *leaf = NULL, *uri = NULL, *msg = NULL;
        assert_int_equal(sk_pki_make_key_and_csr("intruder", &key, &csr, NULL), 0);
        assert_int_equal(sk_ca_sign_client(old, csr, "intruder", LOCAL_URI, 30, &leaf, NULL), 0);
        _cleanup_free_ char *chain = concat(leaf, c1);

        /* Over TLS: the chain verifies, and names the generation that signed it. */
        assert_int_equal(handshake_and_verify(f, chain, key, &uri, &msg), 0);
        assert_string_equal(last_site_ca, fp1);
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_pki_check_site_ca(last_site_ca, fp2, &err), -EACCES);
        assert_non_null(strstr(sk_error_msg(err, -EACCES), "retired site CA"));
        assert_int_equal(sk_pki_check_site_ca(last_site_ca, fp1, NULL), 0);
        assert_int_equal(sk_pki_check_site_ca("", fp2, NULL), 0);

        /* A host the tower signed: no site CA in its chain. */
        free(uri);
        free(key);
        uri = key = NULL;
        _cleanup_free_ char *tower_leaf = client_cert_from(f->ca, HOST_URI, &key);
        assert_int_equal(handshake_and_verify(f, tower_leaf, key, &uri, &msg), 0);
        assert_string_equal(last_site_ca, "");

        /* The same checks on PEM text (what a leader forwards for adoption). */
        free(uri);
        uri = NULL;
        char fp[SK_PKI_FP_LEN] = "x";
        assert_int_equal(sk_pki_verify_pem(chain, sk_ca_cert_pem(f->ca), &uri, fp, NULL), 0);
        assert_string_equal(uri, LOCAL_URI);
        assert_string_equal(fp, fp1);
        free(uri);
        uri = NULL;
        _cleanup_free_ char *mixed = concat(leaf, c2); /* the leaf with the wrong generation */
        sk_error_free(&err);
        assert_int_equal(sk_pki_verify_pem(mixed, sk_ca_cert_pem(f->ca), &uri, fp, &err), -EACCES);
        assert_string_equal(sk_error_msg(err, -EACCES),
                            "client certificate is not signed by the site CA sent with it");
        assert_int_equal(sk_pki_verify_pem(leaf, sk_ca_cert_pem(f->ca), &uri, fp, NULL), -EACCES);
        assert_int_equal(sk_pki_verify_pem("junk", sk_ca_cert_pem(f->ca), &uri, fp, NULL), -EACCES);
        assert_null(uri);
}

static void test_tls_site_ca_of_other_site(void **state)
{
        struct fixture *f = *state;
        /* A site-8 CA signing a site-4 identity: what sk_ca_sign_client refuses to do. */
        _cleanup_free_ char *cert = NULL, *ckey = NULL, *key = NULL, *uri = NULL, *msg = NULL;
        assert_int_equal(sk_ca_issue_site_ca(f->ca, 8, &cert, &ckey, NULL), 0);
        _cleanup_free_ char *leaf =
            forge_cert(cert, ckey, HOST_URI, 0, -1, GNUTLS_KEY_DIGITAL_SIGNATURE, &key);
        _cleanup_free_ char *chain = concat(leaf, cert);
        assert_int_equal(handshake_and_verify(f, chain, key, &uri, &msg), -EACCES);
        assert_null(uri);
        assert_string_equal(msg, "client certificate \"" HOST_URI "\" is not a host of site 8, "
                                 "whose site CA signed it");

        /* A forgery for its own site but the tower's range of ids: refused too (the site
         * CA's key must never speak for a host the tower signed). */
        free(key);
        free(msg);
        key = msg = NULL;
        _cleanup_free_ char *tleaf = forge_cert(cert, ckey, "skerry://site/8/host/3", 0, -1,
                                                GNUTLS_KEY_DIGITAL_SIGNATURE, &key);
        _cleanup_free_ char *tchain = concat(tleaf, cert);
        assert_int_equal(handshake_and_verify(f, tchain, key, &uri, &msg), -EACCES);
        assert_string_equal(msg, "client certificate \"skerry://site/8/host/3\": a site CA signs "
                                 "only ids of its site's own range");

        /* The same forgery for its own site's range passes: the checks above refused it. */
        free(key);
        free(msg);
        key = msg = NULL;
        _cleanup_free_ char *leaf8 =
            forge_cert(cert, ckey, SITE8_LOCAL_URI, 0, -1, GNUTLS_KEY_DIGITAL_SIGNATURE, &key);
        _cleanup_free_ char *chain8 = concat(leaf8, cert);
        assert_int_equal(handshake_and_verify(f, chain8, key, &uri, &msg), 0);
        assert_string_equal(uri, SITE8_LOCAL_URI);
}

static void test_tls_site_ca_without_ca_constraints(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *tk = tower_ca_key(f);
        static const struct {
                int is_ca, pathlen;
                unsigned usage;
                const char *uri, *msg;
        } cases[] = {
            {0, -1, GNUTLS_KEY_KEY_CERT_SIGN, SITE_URI,
             "client certificate chain: the intermediate is not a site CA (a CA with path "
             "length 0)"},
            {1, -1, GNUTLS_KEY_KEY_CERT_SIGN, SITE_URI,
             "client certificate chain: the intermediate is not a site CA (a CA with path "
             "length 0)"},
            {0, -2, 0, SITE_URI,
             "client certificate chain: the intermediate is not a site CA (a CA with path "
             "length 0)"},
            {1, 0, GNUTLS_KEY_DIGITAL_SIGNATURE, SITE_URI,
             "client certificate chain: the site CA may not sign certificates (no "
             "keyCertSign)"},
            {1, 0, GNUTLS_KEY_KEY_CERT_SIGN, "skerry://site/4/host/2",
             "client certificate chain: the site CA names no site (URI skerry://site/<id>)"},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                _cleanup_free_ char *ikey = NULL, *key = NULL, *uri = NULL, *msg = NULL;
                _cleanup_free_ char *inter =
                    forge_cert(sk_ca_cert_pem(f->ca), tk, cases[i].uri, cases[i].is_ca,
                               cases[i].pathlen, cases[i].usage, &ikey);
                _cleanup_free_ char *leaf =
                    forge_cert(inter, ikey, HOST_URI, 0, -1, GNUTLS_KEY_DIGITAL_SIGNATURE, &key);
                _cleanup_free_ char *chain = concat(leaf, inter);
                assert_int_equal(handshake_and_verify(f, chain, key, &uri, &msg), -EACCES);
                assert_null(uri);
                assert_string_equal(msg, cases[i].msg);
        }
        /* A well-formed forgery passes, so the fields above are what was refused. */
        _cleanup_free_ char *ikey = NULL, *key = NULL, *uri = NULL, *msg = NULL;
        _cleanup_free_ char *inter =
            forge_cert(sk_ca_cert_pem(f->ca), tk, SITE_URI, 1, 0, GNUTLS_KEY_KEY_CERT_SIGN, &ikey);
        _cleanup_free_ char *leaf =
            forge_cert(inter, ikey, LOCAL_URI, 0, -1, GNUTLS_KEY_DIGITAL_SIGNATURE, &key);
        _cleanup_free_ char *chain = concat(leaf, inter);
        assert_int_equal(handshake_and_verify(f, chain, key, &uri, &msg), 0);
        assert_string_equal(uri, LOCAL_URI);
        explicit_bzero(tk, strlen(tk));
}

static void test_tls_leaf_signed_by_host(void **state)
{
        struct fixture *f = *state;
        /* A real host certificate of site 4 used as an issuer. */
        _cleanup_free_ char *hkey = NULL;
        _cleanup_free_ char *host = client_cert_from(f->ca, "skerry://site/4/host/2", &hkey);
        _cleanup_free_ char *key = NULL, *uri = NULL, *msg = NULL;
        _cleanup_free_ char *leaf =
            forge_cert(host, hkey, HOST_URI, 0, -1, GNUTLS_KEY_DIGITAL_SIGNATURE, &key);
        _cleanup_free_ char *chain = concat(leaf, host);
        assert_int_equal(handshake_and_verify(f, chain, key, &uri, &msg), -EACCES);
        assert_null(uri);
        assert_string_equal(msg, "client certificate chain: the intermediate is not a site CA "
                                 "(a CA with path length 0)");
}

static void test_tls_site_ca_refusals(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *cert = NULL, *ckey = NULL;
        assert_int_equal(sk_ca_issue_site_ca(f->ca, 4, &cert, &ckey, NULL), 0);

        /* A CA as the leaf (one that may sign TLS handshakes; the site CA itself may not). */
        _cleanup_free_ char *tk = tower_ca_key(f);
        _cleanup_free_ char *cakey = NULL, *uri = NULL, *msg = NULL;
        _cleanup_free_ char *caleaf =
            forge_cert(sk_ca_cert_pem(f->ca), tk, HOST_URI, 1, 0,
                       GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_DIGITAL_SIGNATURE, &cakey);
        explicit_bzero(tk, strlen(tk));
        assert_int_equal(handshake_and_verify(f, caleaf, cakey, &uri, &msg), -EACCES);
        assert_null(uri);
        assert_string_equal(msg, "client certificate is a CA, not a host");
        free(msg);
        msg = NULL;

        /* A leaf of our site CA sent with the site CA of another tower. */
        _cleanup_free_ char *other_dir = path_in(f->dir, "other");
        _cleanup_ca_ sk_ca *other = NULL;
        assert_int_equal(sk_ca_open(other_dir, &other, NULL), 0);
        _cleanup_free_ char *ocert = NULL, *okey = NULL, *key = NULL, *csr = NULL, *leaf = NULL;
        assert_int_equal(sk_ca_issue_site_ca(other, 4, &ocert, &okey, NULL), 0);
        _cleanup_ca_ sk_ca *osite = NULL;
        assert_int_equal(sk_ca_load_site(ocert, okey, &osite, NULL), 0);
        assert_int_equal(sk_pki_make_key_and_csr("till-9", &key, &csr, NULL), 0);
        assert_int_equal(sk_ca_sign_client(osite, csr, "till-9", LOCAL_URI, 30, &leaf, NULL), 0);
        _cleanup_free_ char *chain = concat(leaf, ocert);
        assert_int_equal(handshake_and_verify(f, chain, key, &uri, &msg), -EACCES);
        assert_null(uri);
        assert_string_equal(msg, "client certificate is not from this tower's CA");
        free(msg);
        msg = NULL;

        /* That leaf sent with our own site CA of the same site (same name, other key): GnuTLS
         * drops a chain certificate that did not sign the one before it, and what arrives
         * alone does not chain; a sender that kept it would meet the signature check. */
        _cleanup_free_ char *mixed = concat(leaf, cert);
        assert_int_equal(handshake_and_verify(f, mixed, key, &uri, &msg), -EACCES);
        assert_null(uri);
        assert_true(strcmp(msg, "client certificate is not from this tower's CA") == 0 ||
                    strcmp(msg, "client certificate is not signed by the site CA sent with it") ==
                        0);
        free(msg);
        msg = NULL;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_ca_create_then_reopen, setup, teardown),
            cmocka_unit_test_setup_teardown(test_ca_refuses_foreign_key, setup, teardown),
            cmocka_unit_test_setup_teardown(test_server_cert_has_sans, setup, teardown),
            cmocka_unit_test_setup_teardown(test_server_cert_bad_input, setup, teardown),
            cmocka_unit_test_setup_teardown(test_sign_csr, setup, teardown),
            cmocka_unit_test_setup_teardown(test_refuse_bad_csr, setup, teardown),
            cmocka_unit_test_setup_teardown(test_tls_peer_from_our_ca, setup, teardown),
            cmocka_unit_test_setup_teardown(test_tls_peer_from_other_ca, setup, teardown),
            cmocka_unit_test_setup_teardown(test_tls_no_peer_cert, setup, teardown),
            cmocka_unit_test_setup_teardown(test_tls_server_cert_as_client, setup, teardown),
            cmocka_unit_test_setup_teardown(test_tls_expired_peer, setup, teardown),
            cmocka_unit_test_setup_teardown(test_tls_peer_without_identity, setup, teardown),
            cmocka_unit_test(test_parse_host_uri),
            cmocka_unit_test(test_parse_site_uri),
            cmocka_unit_test_setup_teardown(test_site_ca_issued, setup, teardown),
            cmocka_unit_test_setup_teardown(test_site_ca_signs_own_site_only, setup, teardown),
            cmocka_unit_test_setup_teardown(test_tls_peer_through_site_ca, setup, teardown),
            cmocka_unit_test_setup_teardown(test_tls_site_ca_of_other_site, setup, teardown),
            cmocka_unit_test_setup_teardown(test_site_ca_generations, setup, teardown),
            cmocka_unit_test_setup_teardown(test_tls_site_ca_without_ca_constraints, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_tls_leaf_signed_by_host, setup, teardown),
            cmocka_unit_test_setup_teardown(test_tls_site_ca_refusals, setup, teardown),
            cmocka_unit_test_setup_teardown(test_file_write_mode, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

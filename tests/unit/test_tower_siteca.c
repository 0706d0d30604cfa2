/* The tower's site CAs (tower/siteca.c) against a real SQLite store and a real CA in a
 * temporary folder: issued once per site, sealed in the store, usable to sign hosts; and
 * the store adopting hosts that joined a site while the tower was unreachable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
/* cmocka needs the three above first. */
#include <cmocka.h>

#include <ftw.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/cleanup.h"
#include "common/pki.h"
#include "tower/siteca.h"
#include "tower/store.h"

typedef struct fx {
        char dir[64];
        sk_store *store;
        sk_ca *ca;
} fx;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path);
}

static int setup(void **state)
{
        fx *f = calloc(1, sizeof(*f));
        assert_non_null(f);
        strcpy(f->dir, "/tmp/sk-siteca-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        *state = f;
        char db[128];
        snprintf(db, sizeof(db), "%s/tower.db", f->dir);
        if (sk_store_sqlite_open(db, &f->store, NULL) < 0 || sk_ca_open(f->dir, &f->ca, NULL) < 0) {
                nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
                return -1;
        }
        return 0;
}

static int teardown(void **state)
{
        fx *f = *state;
        sk_ca_free(f->ca);
        f->store->ops->close(f->store);
        nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(f);
        return 0;
}

/* Verifies the leaf -> site CA -> tower CA chain with GnuTLS directly. */
static unsigned verify_chain(const char *leaf_pem, const char *site_pem, const char *root_pem)
{
        gnutls_x509_crt_t chain[2], root;
        const char *pems[] = {leaf_pem, site_pem, root_pem};
        gnutls_x509_crt_t *dst[] = {&chain[0], &chain[1], &root};
        for (int i = 0; i < 3; i++) {
                assert_int_equal(gnutls_x509_crt_init(dst[i]), 0);
                gnutls_datum_t d = {(unsigned char *)pems[i], (unsigned)strlen(pems[i])};
                assert_int_equal(gnutls_x509_crt_import(*dst[i], &d, GNUTLS_X509_FMT_PEM), 0);
        }
        unsigned status = 0;
        assert_int_equal(gnutls_x509_crt_list_verify(chain, 2, &root, 1, NULL, 0, 0, &status), 0);
        for (int i = 0; i < 3; i++)
                gnutls_x509_crt_deinit(*dst[i]);
        return status;
}

static void test_issued_once_and_signs(void **state)
{
        fx *f = *state;
        _cleanup_free_ char *c1 = NULL, *k1 = NULL, *c2 = NULL, *k2 = NULL, *c3 = NULL, *k3 = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_tower_site_ca(f->store, f->ca, 7, &c1, &k1, &err), 0);
        assert_int_equal(sk_tower_site_ca(f->store, f->ca, 7, &c2, &k2, &err), 0);
        assert_string_equal(c1, c2);
        assert_string_equal(k1, k2);
        assert_int_equal(sk_tower_site_ca(f->store, f->ca, 8, &c3, &k3, &err), 0);
        assert_string_not_equal(c1, c3);

        /* The store holds the key sealed, not in the clear. */
        _cleanup_free_ char *stored = NULL;
        assert_int_equal(f->store->ops->setting_get(f->store, "site-ca/7", &stored, NULL), 0);
        assert_non_null(strstr(stored, "BEGIN CERTIFICATE"));
        assert_null(strstr(stored, "PRIVATE KEY"));

        /* It signs hosts of its site, chaining to the tower CA. */
        _cleanup_ca_ sk_ca *site = NULL;
        assert_int_equal(sk_ca_load_site(c1, k1, &site, &err), 0);
        assert_int_equal(sk_ca_site_id(site), 7);
        _cleanup_free_ char *key = NULL, *csr = NULL, *leaf = NULL;
        assert_int_equal(sk_pki_make_key_and_csr("h9", &key, &csr, NULL), 0);
        assert_int_equal(sk_ca_sign_client(site, csr, "h9",
                                           "skerry://site/7/host/4611686018544828425", 30, &leaf,
                                           &err),
                         0);
        assert_int_equal(verify_chain(leaf, c1, sk_ca_cert_pem(f->ca)), 0);
        /* Site 8's CA is not its issuer. */
        assert_int_not_equal(verify_chain(leaf, c3, sk_ca_cert_pem(f->ca)), 0);
}

static void test_other_tower_cannot_unseal(void **state)
{
        fx *f = *state;
        _cleanup_free_ char *c1 = NULL, *k1 = NULL;
        assert_int_equal(sk_tower_site_ca(f->store, f->ca, 7, &c1, &k1, NULL), 0);
        char other[128];
        snprintf(other, sizeof(other), "%s/other", f->dir);
        _cleanup_ca_ sk_ca *ca2 = NULL;
        assert_int_equal(sk_ca_open(other, &ca2, NULL), 0);
        _cleanup_free_ char *c2 = NULL, *k2 = NULL;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(sk_tower_site_ca(f->store, ca2, 7, &c2, &k2, &err), -EACCES);
        assert_null(k2);
        assert_string_equal(sk_error_msg(err, -EACCES),
                            "setting site-ca/7: the stored site CA key was not sealed by this "
                            "tower's CA");
}

static void test_damaged_setting(void **state)
{
        fx *f = *state;
        assert_int_equal(
            f->store->ops->setting_add(f->store, "site-ca/3", "{\"certificate\": 1}", NULL), 0);
        assert_int_equal(
            f->store->ops->setting_add(f->store, "site-ca/4",
                                       "{\"certificate\": \"x\", \"key\": \"!!notbase64\"}", NULL),
            0);
        _cleanup_free_ char *c = NULL, *k = NULL;
        sk_error *err = NULL;
        assert_int_equal(sk_tower_site_ca(f->store, f->ca, 3, &c, &k, &err), -EINVAL);
        assert_string_equal(sk_error_msg(err, -EINVAL),
                            "setting site-ca/3: must be an object with strings \"certificate\" "
                            "and \"key\"");
        sk_error_free(&err);
        assert_int_equal(sk_tower_site_ca(f->store, f->ca, 4, &c, &k, &err), -EINVAL);
        assert_string_equal(sk_error_msg(err, -EINVAL),
                            "setting site-ca/4: the stored site CA key is damaged");
        sk_error_free(&err);
        assert_null(c);
        assert_null(k);
}

static int count_rows(const sk_host_row *row, void *user)
{
        (*(int64_t *)user)++;
        return 0;
}

static int copy_name(const sk_host_row *row, void *user)
{
        snprintf(user, 64, "%s", row->name);
        return 0;
}

/* An adopted site-local id keeps its id, is listed, and leaves the tower's own sequence
 * where it was: the next join gets the next low id, never one next to the adopted. */
static void test_adopt_keeps_sequence(void **state)
{
        fx *f = *state;
        sk_store *s = f->store;
        int64_t site = 0;
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(
            s->ops->resource_put(s, "default", "site", "s1", "", "{\"labels\":{}}", &site, &err),
            SK_PUT_CREATED);
        int64_t h1 = 0, h2 = 0, h3 = 0;
        assert_int_equal(s->ops->host_add(s, site, "h1", "{}", 1, &h1, &err), 0);
        int64_t local = SK_PKI_LOCAL_ID_BASE + site * (1LL << 24) + 1;
        assert_true(sk_pki_is_site_local_id(site, local));
        assert_false(sk_pki_is_site_local_id(site + 1, local));
        assert_false(sk_pki_is_site_local_id(site, h1));
        assert_int_equal(s->ops->host_adopt(s, site, local, "d1", "{}", 2, &err), 0);
        assert_int_equal(s->ops->host_add(s, site, "h2", "{}", 3, &h2, &err), 0);
        assert_int_equal(h2, h1 + 1);
        /* a deleted id is not given again */
        assert_int_equal(s->ops->host_delete(s, h2, 4, &err), 0);
        assert_int_equal(s->ops->host_add(s, site, "h3", "{}", 5, &h3, &err), 0);
        assert_int_equal(h3, h2 + 1);
        int64_t n = 0;
        assert_true(s->ops->host_list(s, site, count_rows, &n, NULL) >= 0);
        assert_int_equal(n, 3);
        char name[64] = "";
        assert_true(s->ops->host_get(s, local, copy_name, name, NULL) >= 0);
        assert_string_equal(name, "d1");
        /* the id or the name taken */
        sk_error *e2 = NULL;
        assert_int_equal(s->ops->host_adopt(s, site, local, "d2", "{}", 6, &e2), -EEXIST);
        sk_error_free(&e2);
        assert_int_equal(s->ops->host_adopt(s, site, local + 1, "h1", "{}", 6, &e2), -EEXIST);
        sk_error_free(&e2);
        assert_int_equal(s->ops->host_adopt(s, site + 1000, local + 2, "x", "{}", 6, &e2), -ENOENT);
        sk_error_free(&e2);
}

/* Re-keying adds a generation (a new key), never rewrites one; only the newest is current. */
static void test_rekey_generations(void **state)
{
        fx *f = *state;
        int gen = -1;
        char fp[SK_PKI_FP_LEN];
        /* no site CA yet: nothing to retire */
        assert_int_equal(sk_tower_site_ca_rekey(f->store, f->ca, 7, &gen, NULL), 0);
        assert_int_equal(gen, 0);
        assert_int_equal(sk_tower_site_ca_current(f->store, 7, &gen, fp, NULL), 0);
        assert_int_equal(gen, 0);
        sk_pki_chain some = {"ab", "cd"};
        assert_int_equal(sk_tower_site_ca_check(f->store, 7, 5, &some, NULL), -EACCES);

        sk_tower_site_ca_info g1, g2;
        assert_int_equal(sk_tower_site_ca_get(f->store, f->ca, 7, true, &g1, NULL), 0);
        assert_int_equal(g1.generation, 1);
        assert_int_equal(sk_tower_site_ca_rekey(f->store, f->ca, 7, &gen, NULL), 0);
        assert_int_equal(gen, 2);
        assert_int_equal(sk_tower_site_ca_get(f->store, f->ca, 7, true, &g2, NULL), 0);
        assert_int_equal(g2.generation, 2);
        assert_string_not_equal(g1.cert_pem, g2.cert_pem);
        assert_string_not_equal(g1.key_pem, g2.key_pem);
        assert_string_not_equal(g1.sha256, g2.sha256);
        assert_int_equal(sk_tower_site_ca_current(f->store, 7, &gen, fp, NULL), 0);
        assert_int_equal(gen, 2);
        assert_string_equal(fp, g2.sha256);

        _cleanup_error_ sk_error *err = NULL;
        sk_pki_chain old = {"", "leaf-5"}, cur = {"", "leaf-6"}, none = {"", "leaf-7"};
        snprintf(old.site_ca, sizeof(old.site_ca), "%s", g1.sha256);
        snprintf(cur.site_ca, sizeof(cur.site_ca), "%s", g2.sha256);
        assert_int_equal(sk_tower_site_ca_check(f->store, 7, 5, &old, &err), -EACCES);
        assert_non_null(strstr(sk_error_msg(err, -EACCES), "retired"));
        assert_int_equal(sk_tower_site_ca_check(f->store, 7, 6, &cur, NULL), 0);
        assert_int_equal(sk_tower_site_ca_check(f->store, 7, 7, &none, NULL), 0);
        /* the very certificate the tower adopted host 5 with stays good; no other one */
        assert_int_equal(sk_tower_site_leaf_keep(f->store, 5, "leaf-5", NULL), 0);
        assert_int_equal(sk_tower_site_leaf_keep(f->store, 5, "leaf-5", NULL), 0);
        assert_int_equal(sk_tower_site_ca_check(f->store, 7, 5, &old, NULL), 0);
        assert_int_equal(sk_tower_site_ca_check(f->store, 7, 8, &old, NULL), -EACCES);
        snprintf(old.leaf, sizeof(old.leaf), "leaf-other");
        assert_int_equal(sk_tower_site_ca_check(f->store, 7, 5, &old, NULL), -EACCES);
        /* the joins' entry point hands out the current generation */
        _cleanup_free_ char *c = NULL, *k = NULL;
        assert_int_equal(sk_tower_site_ca(f->store, f->ca, 7, &c, &k, NULL), 0);
        assert_string_equal(c, g2.cert_pem);
        /* generation 1 stays where it was, generation 2 has its own setting */
        _cleanup_free_ char *t1 = NULL, *t2 = NULL;
        assert_int_equal(f->store->ops->setting_get(f->store, "site-ca/7", &t1, NULL), 0);
        assert_int_equal(f->store->ops->setting_get(f->store, "site-ca/7/2", &t2, NULL), 0);
        assert_null(strstr(t2, "PRIVATE KEY"));
        /* another site is untouched */
        assert_int_equal(sk_tower_site_ca_current(f->store, 8, &gen, fp, NULL), 0);
        assert_int_equal(gen, 0);
        sk_tower_site_ca_info_wipe(&g1);
        sk_tower_site_ca_info_wipe(&g2);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_issued_once_and_signs, setup, teardown),
            cmocka_unit_test_setup_teardown(test_other_tower_cannot_unseal, setup, teardown),
            cmocka_unit_test_setup_teardown(test_damaged_setting, setup, teardown),
            cmocka_unit_test_setup_teardown(test_adopt_keeps_sequence, setup, teardown),
            cmocka_unit_test_setup_teardown(test_rekey_generations, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

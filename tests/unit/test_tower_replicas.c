/* Tower replicas on one PostgreSQL store: the store's lock and settings (on both backends),
 * site sync refreshes that take turns and give one content one generation, the LISTEN
 * thread that hears another replica's change, and the CA shared through the store. A
 * private server from tests/lib/postgres-service.sh; every test starts from an empty
 * schema. */
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "common/cleanup.h"
#include "common/pki.h"
#include "tower/api.h"
#include "tower/listen.h"
#include "tower/replica.h"
#include "tower/store.h"

static struct {
        char dir[64];
        char conninfo[512];
        bool started;
} pg;

static int pg_service(const char *verb, char *out, size_t len)
{
        return sk_test_service("tests/lib/postgres-service.sh", verb, pg.dir, out, len);
}

static int pg_admin(const char *sql)
{
        PGconn *c = PQconnectdb(pg.conninfo);
        int rc = -1;
        if (PQstatus(c) == CONNECTION_OK) {
                PGresult *r = PQexec(c, sql);
                ExecStatusType st = PQresultStatus(r);
                rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
                if (rc < 0)
                        fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
                PQclear(r);
        }
        PQfinish(c);
        return rc;
}

static int group_teardown(void **state)
{
        if (!pg.started)
                return 0;
        pg.started = false;
        int r = pg_service("stop", NULL, 0);
        if (rmdir(pg.dir) < 0)
                r = -1;
        return r;
}

static int group_setup(void **state)
{
        if (access("tests/lib/postgres-service.sh", X_OK) != 0) {
                fprintf(stderr, "tests/lib/postgres-service.sh not found: run the tests from the "
                                "repository root\n");
                return -1;
        }
        snprintf(pg.dir, sizeof(pg.dir), "/tmp/skerry-replicas-XXXXXX");
        if (!mkdtemp(pg.dir))
                return -1;
        pg.started = true;
        if (pg_service("start", pg.conninfo, sizeof(pg.conninfo)) < 0 || !pg.conninfo[0]) {
                fprintf(stderr, "replica tests: the PostgreSQL test server did not start (is "
                                "the postgresql package installed? scripts/install-deps.sh)\n");
                group_teardown(state);
                return -1;
        }
        return 0;
}

/* Two replicas: a store, an API and a data folder each, on the same database. */
typedef struct replica {
        sk_store *store;
        sk_ca *ca;
        sk_tower_api *api;
        char dir[96];
} replica;

typedef struct fx {
        char dir[64];
        replica r[2];
        char *admin;
        int64_t site; /* the site made by make_site */
} fx;

static void open_replica(fx *f, int i)
{
        replica *rp = &f->r[i];
        char dir[sizeof(rp->dir)];
        snprintf(dir, sizeof(dir), "%s/d%d", f->dir, i + 1);
        memcpy(rp->dir, dir, sizeof(dir));
        assert_int_equal(mkdir(rp->dir, 0700), 0);
        _cleanup_error_ sk_error *err = NULL;
        int r = sk_store_pg_open(pg.conninfo, &rp->store, &err);
        if (r < 0)
                fail_msg("open: %s", sk_error_msg(err, r));
}

static int setup(void **state)
{
        if (pg_admin("SET client_min_messages = warning;"
                     " DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public") < 0)
                return -1;
        fx *f = calloc(1, sizeof(*f));
        strcpy(f->dir, "/tmp/sk-replicas-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        open_replica(f, 0);
        open_replica(f, 1);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        fx *f = *state;
        for (int i = 0; i < 2; i++) {
                sk_tower_api_free(f->r[i].api);
                sk_ca_free(f->r[i].ca);
                if (f->r[i].store)
                        f->r[i].store->ops->close(f->r[i].store);
        }
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
        assert_int_equal(system(cmd), 0);
        free(f->admin);
        free(f);
        return 0;
}

/* The CA through the store as `skerry tower --store` does it, then an API on it. */
static int replica_ca(replica *rp, sk_error **err)
{
        sk_store *s = rp->store;
        int r = s->ops->begin(s, err);
        if (r < 0)
                return r;
        r = s->ops->lock(s, SK_STORE_LOCK_BOOTSTRAP, err);
        if (r >= 0)
                r = sk_tower_replica_ca(s, rp->dir, &rp->ca, err);
        if (r >= 0)
                r = s->ops->commit(s, err);
        else
                s->ops->rollback(s);
        return r;
}

static void copy_file(const char *from, const char *to)
{
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
        assert_int_equal(system(cmd), 0);
}

static char *read_text(const char *path)
{
        char *data = NULL;
        size_t len = 0;
        if (sk_file_read(path, &data, &len, NULL) < 0)
                return NULL;
        return data;
}

/* Both replicas up: the first makes the CA and the admin token, the second shares both. */
static void start_both(fx *f)
{
        _cleanup_error_ sk_error *err = NULL;
        int r = replica_ca(&f->r[0], &err);
        if (r < 0)
                fail_msg("first CA: %s", sk_error_msg(err, r));
        char from[128], to[128];
        snprintf(from, sizeof(from), "%s/store.key", f->r[0].dir);
        snprintf(to, sizeof(to), "%s/store.key", f->r[1].dir);
        copy_file(from, to);
        r = replica_ca(&f->r[1], &err);
        if (r < 0)
                fail_msg("second CA: %s", sk_error_msg(err, r));
        for (int i = 0; i < 2; i++)
                assert_int_equal(sk_tower_api_new(f->r[i].store, f->r[i].ca, &f->r[i].api, NULL),
                                 0);
        r = sk_tower_bootstrap(f->r[0].api, &f->admin, &err);
        if (r < 0)
                fail_msg("bootstrap: %s", sk_error_msg(err, r));
        r = sk_tower_bootstrap(f->r[1].api, NULL, &err);
        if (r < 0)
                fail_msg("second bootstrap: %s", sk_error_msg(err, r));
}

static int call(replica *rp, const char *token, const char *method, const char *path,
                const char *body)
{
        char auth[256];
        snprintf(auth, sizeof(auth), "Bearer %s", token);
        sk_tower_request req = {.method = method,
                                .path = path,
                                .authorization = auth,
                                .body = body,
                                .body_len = body ? strlen(body) : 0};
        sk_tower_response resp;
        sk_tower_api_handle(rp->api, &req, &resp);
        int status = resp.status;
        sk_tower_response_clear(&resp);
        return status;
}

static int find_id(const sk_resource_row *row, void *user)
{
        *(int64_t *)user = row->id;
        return 0;
}

static void make_site(fx *f)
{
        assert_int_equal(call(&f->r[0], f->admin, "PUT", "/v1/sites/store-1",
                              "{\"kind\":\"site\",\"name\":\"store-1\","
                              "\"labels\":{\"chain\":\"acme\"}}"),
                         200);
        sk_store *s = f->r[0].store;
        assert_int_equal(
            s->ops->resource_get(s, "default", "site", "store-1", "", find_id, &f->site, NULL), 0);
        assert_true(f->site > 0);
}

static int64_t generation(fx *f)
{
        int64_t gen = -1;
        sk_store *s = f->r[1].store;
        assert_int_equal(s->ops->site_sync_get(s, f->site, &gen, NULL, NULL), 0);
        return gen;
}

/* A change written to the store without the refresh that the API does after it. */
static void change_site_quietly(fx *f, int n)
{
        char doc[160];
        snprintf(doc, sizeof(doc),
                 "{\"kind\":\"site\",\"labels\":{\"chain\":\"acme\",\"n\":\"%d\"},"
                 "\"name\":\"store-1\"}",
                 n);
        sk_store *s = f->r[0].store;
        assert_int_equal(s->ops->resource_put(s, "default", "site", "store-1", "", doc, NULL, NULL),
                         SK_PUT_UPDATED);
}

static void check_settings(sk_store *s)
{
        char *v = NULL;
        assert_int_equal(s->ops->setting_get(s, "x", &v, NULL), -ENOENT);
        assert_int_equal(s->ops->setting_add(s, "x", "one", NULL), 0);
        _cleanup_error_ sk_error *err = NULL;
        assert_int_equal(s->ops->setting_add(s, "x", "two", &err), -EEXIST);
        assert_non_null(strstr(sk_error_msg(err, EEXIST), "x"));
        assert_int_equal(s->ops->setting_get(s, "x", &v, NULL), 0);
        assert_string_equal(v, "one");
        free(v);
        /* a lock belongs to a transaction */
        assert_int_equal(s->ops->lock(s, SK_STORE_LOCK_SYNC, NULL), -EINVAL);
        assert_int_equal(s->ops->begin(s, NULL), 0);
        assert_int_equal(s->ops->lock(s, SK_STORE_LOCK_SYNC, NULL), 0);
        assert_int_equal(s->ops->setting_add(s, "y", "in a transaction", NULL), 0);
        s->ops->rollback(s);
        assert_int_equal(s->ops->setting_get(s, "y", &v, NULL), -ENOENT);
}

static void test_settings_both_backends(void **state)
{
        fx *f = *state;
        check_settings(f->r[0].store);
        /* the other replica sees them */
        char *v = NULL;
        assert_int_equal(f->r[1].store->ops->setting_get(f->r[1].store, "x", &v, NULL), 0);
        assert_string_equal(v, "one");
        free(v);
        char db[128];
        snprintf(db, sizeof(db), "%s/tower.db", f->dir);
        sk_store *sq = NULL;
        assert_int_equal(sk_store_sqlite_open(db, &sq, NULL), 0);
        check_settings(sq);
        sq->ops->close(sq);
}

typedef struct locker {
        sk_store *s;
        int64_t key;
        volatile bool got;
        int r;
} locker;

static void *take_lock(void *arg)
{
        locker *l = arg;
        l->r = l->s->ops->begin(l->s, NULL);
        if (l->r == 0)
                l->r = l->s->ops->lock(l->s, l->key, NULL);
        l->got = true;
        if (l->r == 0)
                l->r = l->s->ops->commit(l->s, NULL);
        return NULL;
}

static void sleep_ms(int ms)
{
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
}

/* The lock is held across replicas until the holder's transaction ends. */
static void test_lock_across_replicas(void **state)
{
        fx *f = *state;
        sk_store *a = f->r[0].store;
        assert_int_equal(a->ops->begin(a, NULL), 0);
        assert_int_equal(a->ops->lock(a, SK_STORE_LOCK_BOOTSTRAP, NULL), 0);
        locker l = {.s = f->r[1].store, .key = SK_STORE_LOCK_BOOTSTRAP};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, take_lock, &l), 0);
        sleep_ms(300);
        assert_false(l.got);
        assert_int_equal(a->ops->commit(a, NULL), 0);
        pthread_join(t, NULL);
        assert_true(l.got);
        assert_int_equal(l.r, 0);
}

/* A refresh waits for a refresh holding the sync lock on another replica. */
typedef struct refresher {
        sk_tower_api *api;
        int rounds;
        pthread_barrier_t *start;
        int r;
} refresher;

static void *refresh_main(void *arg)
{
        refresher *rf = arg;
        if (rf->start)
                pthread_barrier_wait(rf->start);
        for (int i = 0; i < rf->rounds && rf->r == 0; i++)
                rf->r = sk_tower_sync_refresh(rf->api, true, NULL);
        return NULL;
}

static void test_refresh_takes_the_sync_lock(void **state)
{
        fx *f = *state;
        start_both(f);
        make_site(f);
        int64_t g = generation(f);
        change_site_quietly(f, 1);
        sk_store *a = f->r[0].store;
        assert_int_equal(a->ops->begin(a, NULL), 0);
        assert_int_equal(a->ops->lock(a, SK_STORE_LOCK_SYNC, NULL), 0);
        refresher rf = {.api = f->r[1].api, .rounds = 1};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, refresh_main, &rf), 0);
        sleep_ms(300);
        /* replica B is waiting: nothing moved yet (read through a third connection) */
        sk_store *c = NULL;
        assert_int_equal(sk_store_pg_open(pg.conninfo, &c, NULL), 0);
        int64_t now = -1;
        assert_int_equal(c->ops->site_sync_get(c, f->site, &now, NULL, NULL), 0);
        assert_int_equal(now, g);
        a->ops->rollback(a);
        pthread_join(t, NULL);
        assert_int_equal(rf.r, 0);
        assert_int_equal(c->ops->site_sync_get(c, f->site, &now, NULL, NULL), 0);
        assert_int_equal(now, g + 1);
        c->ops->close(c);
}

/* Both replicas recompute every change at once: each content gets exactly one generation. */
static void test_one_generation_per_content(void **state)
{
        fx *f = *state;
        start_both(f);
        make_site(f);
        int64_t g = generation(f);
        assert_int_equal(g, 1);
        for (int n = 1; n <= 8; n++) {
                change_site_quietly(f, n);
                pthread_barrier_t start;
                pthread_barrier_init(&start, NULL, 2);
                refresher rf[2] = {{f->r[0].api, 3, &start, 0}, {f->r[1].api, 3, &start, 0}};
                pthread_t t[2];
                for (int i = 0; i < 2; i++)
                        assert_int_equal(pthread_create(&t[i], NULL, refresh_main, &rf[i]), 0);
                for (int i = 0; i < 2; i++) {
                        pthread_join(t[i], NULL);
                        assert_int_equal(rf[i].r, 0);
                }
                pthread_barrier_destroy(&start);
                assert_int_equal(generation(f), g + n);
        }
        /* a change made through replica A is already current when B looks */
        assert_int_equal(call(&f->r[0], f->admin, "PUT", "/v1/sites/store-1",
                              "{\"kind\":\"site\",\"name\":\"store-1\","
                              "\"labels\":{\"chain\":\"other\"}}"),
                         200);
        assert_int_equal(generation(f), g + 9);
        assert_int_equal(sk_tower_sync_refresh(f->r[1].api, true, NULL), 0);
        assert_int_equal(generation(f), g + 9);
}

/* The LISTEN thread: what it heard. */
typedef struct heard {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        int revisions;
        int64_t sites[64];
        int n_sites;
} heard;

static void on_revision(void *ctx)
{
        heard *h = ctx;
        pthread_mutex_lock(&h->lock);
        h->revisions++;
        pthread_cond_broadcast(&h->cond);
        pthread_mutex_unlock(&h->lock);
}

static void on_site(void *ctx, int64_t site)
{
        heard *h = ctx;
        pthread_mutex_lock(&h->lock);
        if (h->n_sites < 64)
                h->sites[h->n_sites++] = site;
        pthread_cond_broadcast(&h->cond);
        pthread_mutex_unlock(&h->lock);
}

static int64_t mono_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits up to ms for the site to be heard; returns how long it took, -1 never. */
static int64_t wait_site(heard *h, int64_t site, int ms)
{
        int64_t t0 = mono_ms();
        pthread_mutex_lock(&h->lock);
        for (;;) {
                for (int i = 0; i < h->n_sites; i++) {
                        if (h->sites[i] == site) {
                                pthread_mutex_unlock(&h->lock);
                                return mono_ms() - t0;
                        }
                }
                if (mono_ms() - t0 >= ms)
                        break;
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 50 * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&h->cond, &h->lock, &ts);
        }
        pthread_mutex_unlock(&h->lock);
        return -1;
}

static void test_listener_hears_other_replica(void **state)
{
        fx *f = *state;
        start_both(f);
        make_site(f);
        heard h = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
        sk_tower_listener_cbs cbs = {on_revision, on_site, &h, 60000};
        sk_tower_listener *l = NULL;
        _cleanup_error_ sk_error *err = NULL;
        int r = sk_tower_listener_start(pg.conninfo, &cbs, &l, &err);
        if (r < 0)
                fail_msg("listener: %s", sk_error_msg(err, r));
        /* a change through replica A moves the site's generation: B hears the site */
        assert_int_equal(call(&f->r[0], f->admin, "PUT", "/v1/sites/store-1",
                              "{\"kind\":\"site\",\"name\":\"store-1\","
                              "\"labels\":{\"chain\":\"moved\"}}"),
                         200);
        int64_t took = wait_site(&h, f->site, 3000);
        assert_true(took >= 0);
        assert_true(took < 1000);
        pthread_mutex_lock(&h.lock);
        int revisions = h.revisions;
        pthread_mutex_unlock(&h.lock);
        assert_true(revisions >= 1);
        /* a write that changes no document moves the revision only */
        pthread_mutex_lock(&h.lock);
        h.n_sites = 0;
        pthread_mutex_unlock(&h.lock);
        assert_int_equal(call(&f->r[0], f->admin, "PUT", "/v1/tenants/shop",
                              "{\"kind\":\"tenant\",\"name\":\"shop\",\"type\":\"provider\"}"),
                         200);
        assert_int_equal(wait_site(&h, f->site, 500), -1);
        sk_tower_listener_stop(l);
}

static void test_listener_bad_conninfo(void **state)
{
        sk_tower_listener_cbs cbs = {on_revision, on_site, NULL, 0};
        sk_tower_listener *l = NULL;
        _cleanup_error_ sk_error *err = NULL;
        int r = sk_tower_listener_start("host=127.0.0.1 port=1 dbname=nowhere password=hunter2 "
                                        "connect_timeout=2",
                                        &cbs, &l, &err);
        assert_int_equal(r, -EIO);
        const char *msg = sk_error_msg(err, EIO);
        assert_non_null(strstr(msg, "nowhere"));
        assert_null(strstr(msg, "hunter2"));
}

/* One CA for all replicas: the key sealed in the store, opened with DATA/store.key. */
static void test_shared_ca(void **state)
{
        fx *f = *state;
        _cleanup_error_ sk_error *err = NULL;
        int r = replica_ca(&f->r[0], &err);
        if (r < 0)
                fail_msg("first CA: %s", sk_error_msg(err, r));
        /* sealed: the store never holds the key in clear */
        char *sealed = NULL;
        sk_store *s = f->r[0].store;
        assert_int_equal(s->ops->setting_get(s, "ca.key", &sealed, NULL), 0);
        assert_null(strstr(sealed, "PRIVATE KEY"));
        free(sealed);

        /* without the store key the second replica says which file to copy */
        r = replica_ca(&f->r[1], &err);
        assert_int_equal(r, -ENOENT);
        assert_non_null(strstr(sk_error_msg(err, -r), "store.key"));
        sk_error_free(&err);

        /* with another key it cannot open the CA */
        char path[160];
        snprintf(path, sizeof(path), "%s/store.key", f->r[1].dir);
        const char *wrong = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
        assert_int_equal(sk_file_write(path, wrong, strlen(wrong), 0600, NULL), 0);
        r = replica_ca(&f->r[1], &err);
        assert_int_equal(r, -EACCES);
        sk_error_free(&err);

        /* with the first replica's key: the same CA, written to its data folder */
        char from[160];
        snprintf(from, sizeof(from), "%s/store.key", f->r[0].dir);
        copy_file(from, path);
        r = replica_ca(&f->r[1], &err);
        if (r < 0)
                fail_msg("second CA: %s", sk_error_msg(err, r));
        assert_string_equal(sk_ca_cert_pem(f->r[0].ca), sk_ca_cert_pem(f->r[1].ca));
        char p1[160], p2[160];
        snprintf(p1, sizeof(p1), "%s/ca.key", f->r[0].dir);
        snprintf(p2, sizeof(p2), "%s/ca.key", f->r[1].dir);
        _cleanup_free_ char *k1 = read_text(p1), *k2 = read_text(p2);
        assert_non_null(k1);
        assert_non_null(k2);
        assert_string_equal(k1, k2);
        struct stat st;
        assert_int_equal(stat(p2, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        /* a host certificate signed by one replica chains to the other's CA */
        _cleanup_free_ char *key = NULL, *csr = NULL, *cert = NULL;
        assert_int_equal(sk_pki_make_key_and_csr("h1", &key, &csr, NULL), 0);
        assert_int_equal(
            sk_ca_sign_client(f->r[1].ca, csr, "h1", "skerry://site/1/host/1", 1, &cert, NULL), 0);
        /* and a restart changes nothing */
        sk_ca_free(f->r[1].ca);
        f->r[1].ca = NULL;
        r = replica_ca(&f->r[1], &err);
        assert_int_equal(r, 0);
        assert_string_equal(sk_ca_cert_pem(f->r[0].ca), sk_ca_cert_pem(f->r[1].ca));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_settings_both_backends, setup, teardown),
            cmocka_unit_test_setup_teardown(test_lock_across_replicas, setup, teardown),
            cmocka_unit_test_setup_teardown(test_refresh_takes_the_sync_lock, setup, teardown),
            cmocka_unit_test_setup_teardown(test_one_generation_per_content, setup, teardown),
            cmocka_unit_test_setup_teardown(test_listener_hears_other_replica, setup, teardown),
            cmocka_unit_test(test_listener_bad_conninfo),
            cmocka_unit_test_setup_teardown(test_shared_ca, setup, teardown),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

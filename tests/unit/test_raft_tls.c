/* The raft TLS transport with real raft: 3-node clusters on loopback in one libuv loop,
 * certificates from a temporary CA, intruders (another site, another CA, no certificate)
 * refused, and a recording relay on the wire that must never see an entry's payload (the
 * same relay does see it with raft's plain TCP transport, so the check can fail). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
/* cmocka needs the three above first. */
#include <cmocka.h>

#include "testutil.h"

#include <arpa/inet.h>
#include <ftw.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <pthread.h>
#include <raft.h>
#include <raft/uv.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/pki.h"
#include "site/raft_tls.h"

#define MAX_NODES   6
#define MAX_ENTRIES 16
#define WAIT_MS     15000

/* ---- fixture: a temporary folder, two CAs, one loop ---- */

struct world {
        char dir[64];
        sk_ca *ca, *other_ca;
        uv_loop_t loop;
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path);
}

static int teardown(void **state)
{
        struct world *w = *state;
        sk_ca_free(w->ca);
        sk_ca_free(w->other_ca);
        nftw(w->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(w);
        return 0;
}

static int setup(void **state)
{
        struct world *w = calloc(1, sizeof(*w));
        if (!w)
                return -1;
        strcpy(w->dir, "/tmp/skerry-raft-tls-XXXXXX");
        *state = w;
        if (!mkdtemp(w->dir)) {
                free(w);
                return -1;
        }
        char ca1[128], ca2[128];
        snprintf(ca1, sizeof(ca1), "%s/ca", w->dir);
        snprintf(ca2, sizeof(ca2), "%s/other-ca", w->dir);
        _cleanup_error_ sk_error *err = NULL;
        if (mkdir(ca1, 0700) < 0 || mkdir(ca2, 0700) < 0 || sk_ca_open(ca1, &w->ca, &err) < 0 ||
            sk_ca_open(ca2, &w->other_ca, &err) < 0 || uv_loop_init(&w->loop) < 0) {
                print_error("setup: %s\n", err ? err->msg : "mkdir or loop");
                teardown(state);
                return -1;
        }
        return 0;
}

/* ---- helpers ---- */

static int free_port(void)
{
        int port = sk_test_free_port();
        assert_true(port > 0);
        return port;
}

static void make_ident(sk_ca *ca, int64_t site, int64_t host, char **cert, char **key)
{
        _cleanup_error_ sk_error *err = NULL;
        _cleanup_free_ char *csr = NULL;
        char cn[32], uri[96];
        snprintf(cn, sizeof(cn), "host-%lld", (long long)host);
        snprintf(uri, sizeof(uri), "skerry://site/%lld/host/%lld", (long long)site,
                 (long long)host);
        int r = sk_pki_make_key_and_csr(cn, key, &csr, &err);
        if (r == 0)
                r = sk_ca_sign_client(ca, csr, cn, uri, 30, cert, &err);
        if (r < 0)
                fail_msg("identity: %s", sk_error_msg(err, r));
}

struct waiter {
        bool (*pred)(void *);
        void *arg;
        uint64_t deadline;
        bool ok;
};

static void on_tick(uv_timer_t *t)
{
        struct waiter *wt = t->data;
        if (wt->pred(wt->arg)) {
                wt->ok = true;
                uv_stop(t->loop);
        } else if (uv_now(t->loop) >= wt->deadline) {
                uv_stop(t->loop);
        }
}

/* Runs the loop until pred holds or ms pass; returns whether it held. */
static bool run_until(uv_loop_t *loop, bool (*pred)(void *), void *arg, unsigned ms)
{
        if (pred(arg))
                return true;
        uv_update_time(loop);
        struct waiter wt = {pred, arg, uv_now(loop) + ms, false};
        uv_timer_t t;
        uv_timer_init(loop, &t);
        t.data = &wt;
        uv_timer_start(&t, on_tick, 10, 10);
        uv_run(loop, UV_RUN_DEFAULT);
        uv_close((uv_handle_t *)&t, NULL);
        uv_run(loop, UV_RUN_NOWAIT);
        return wt.ok;
}

static bool never(void *arg)
{
        return false;
}

/* ---- raft nodes ---- */

struct node {
        struct world *w;
        raft_id id;
        char addr[32]; /* the address raft knows (a relay's, in the wire tests) */
        char bind[32]; /* where it really listens, when that differs */
        bool plain;    /* raft's own TCP transport, for the control test */
        char *cert, *key;
        struct raft_uv_transport transport;
        struct raft_io io;
        struct raft_fsm fsm;
        struct raft raft;
        bool started, closed;
        unsigned applied;
        char entries[MAX_ENTRIES][64];
};

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
        struct node *n = fsm->data;
        if (n->applied < MAX_ENTRIES)
                snprintf(n->entries[n->applied], sizeof(n->entries[0]), "%.*s",
                         (int)strnlen(buf->base, buf->len), (const char *)buf->base);
        n->applied++;
        *result = NULL;
        return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
        struct node *n = fsm->data;
        *bufs = raft_malloc(sizeof(**bufs));
        (*bufs)[0].base = raft_malloc(sizeof(n->applied));
        memcpy((*bufs)[0].base, &n->applied, sizeof(n->applied));
        (*bufs)[0].len = sizeof(n->applied);
        *n_bufs = 1;
        return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
        struct node *n = fsm->data;
        memcpy(&n->applied, buf->base, sizeof(n->applied));
        raft_free(buf->base);
        return 0;
}

static void node_setup(struct node *n, struct world *w, raft_id id, sk_ca *ca, int64_t site)
{
        memset(n, 0, sizeof(*n));
        n->w = w;
        n->id = id;
        snprintf(n->addr, sizeof(n->addr), "127.0.0.1:%d", free_port());
        if (ca)
                make_ident(ca, site, (int64_t)id, &n->cert, &n->key);
}

/* Starts n as a voter of the cluster made of the given nodes. */
static void node_start(struct node *n, struct node *const *members, size_t n_members)
{
        struct world *w = n->w;
        char dir[128];
        snprintf(dir, sizeof(dir), "%s/node-%llu", w->dir, (unsigned long long)n->id);
        assert_int_equal(mkdir(dir, 0700), 0);

        if (n->plain) {
                assert_int_equal(raft_uv_tcp_init(&n->transport, &w->loop), 0);
                if (n->bind[0])
                        assert_int_equal(raft_uv_tcp_set_bind_address(&n->transport, n->bind), 0);
        } else {
                _cleanup_error_ sk_error *err = NULL;
                sk_raft_tls_config cfg = {
                    .ca_pem = sk_ca_cert_pem(w->ca),
                    .cert_pem = n->cert,
                    .key_pem = n->key,
                    .bind_address = n->bind[0] ? n->bind : NULL,
                };
                int r = sk_raft_tls_init(&n->transport, &w->loop, &cfg, &err);
                if (r < 0)
                        fail_msg("transport: %s", sk_error_msg(err, r));
        }
        assert_int_equal(raft_uv_init(&n->io, &w->loop, dir, &n->transport), 0);
        raft_uv_set_segment_size(&n->io, 1 << 20);
        raft_uv_set_connect_retry_delay(&n->io, 100);
        n->fsm.version = 1;
        n->fsm.data = n;
        n->fsm.apply = fsm_apply;
        n->fsm.snapshot = fsm_snapshot;
        n->fsm.restore = fsm_restore;
        assert_int_equal(raft_init(&n->raft, &n->io, &n->fsm, n->id, n->addr), 0);
        n->raft.data = n;
        raft_set_election_timeout(&n->raft, 300);
        raft_set_heartbeat_timeout(&n->raft, 50);

        struct raft_configuration conf;
        raft_configuration_init(&conf);
        for (size_t i = 0; i < n_members; i++)
                assert_int_equal(
                    raft_configuration_add(&conf, members[i]->id, members[i]->addr, RAFT_VOTER), 0);
        assert_int_equal(raft_bootstrap(&n->raft, &conf), 0);
        raft_configuration_close(&conf);
        assert_int_equal(raft_start(&n->raft), 0);
        n->started = true;
}

static void on_raft_closed(struct raft *r)
{
        struct node *n = r->data;
        raft_uv_close(&n->io);
        if (n->plain)
                raft_uv_tcp_close(&n->transport);
        else
                sk_raft_tls_close(&n->transport);
        n->closed = true;
}

struct node_set {
        struct node *v[MAX_NODES];
        size_t n;
};

static bool all_closed(void *arg)
{
        struct node_set *s = arg;
        for (size_t i = 0; i < s->n; i++)
                if (s->v[i]->started && !s->v[i]->closed)
                        return false;
        return true;
}

static void nodes_close(struct world *w, struct node_set *s)
{
        for (size_t i = 0; i < s->n; i++)
                if (s->v[i]->started)
                        raft_close(&s->v[i]->raft, on_raft_closed);
        assert_true(run_until(&w->loop, all_closed, s, WAIT_MS));
        for (size_t i = 0; i < s->n; i++) {
                free(s->v[i]->cert);
                free(s->v[i]->key);
        }
}

/* Every handle closed: the loop closes cleanly (nothing leaked into it). */
static void loop_finish(struct world *w)
{
        uv_run(&w->loop, UV_RUN_DEFAULT);
        assert_int_equal(uv_loop_close(&w->loop), 0);
}

/* One leader among s, and every member of s follows it. */
static bool agreed_leader(void *arg)
{
        struct node_set *s = arg;
        struct node *leader = NULL;
        for (size_t i = 0; i < s->n; i++) {
                if (raft_state(&s->v[i]->raft) == RAFT_LEADER) {
                        if (leader)
                                return false;
                        leader = s->v[i];
                }
        }
        if (!leader)
                return false;
        for (size_t i = 0; i < s->n; i++) {
                raft_id id = 0;
                const char *addr = NULL;
                raft_leader(&s->v[i]->raft, &id, &addr);
                if (id != leader->id)
                        return false;
        }
        return true;
}

static struct node *leader_of(struct node_set *s)
{
        for (size_t i = 0; i < s->n; i++)
                if (raft_state(&s->v[i]->raft) == RAFT_LEADER)
                        return s->v[i];
        return NULL;
}

struct applied_goal {
        struct node_set *s;
        unsigned count;
};

static bool all_applied(void *arg)
{
        struct applied_goal *g = arg;
        for (size_t i = 0; i < g->s->n; i++)
                if (g->s->v[i]->applied < g->count)
                        return false;
        return true;
}

struct apply_req {
        struct raft_apply req;
        int status;
        bool done;
};

static void on_applied(struct raft_apply *req, int status, void *result)
{
        struct apply_req *a = req->data;
        a->status = status;
        a->done = true;
}

static bool apply_done(void *arg)
{
        return ((struct apply_req *)arg)->done;
}

static void apply_entry(struct world *w, struct node *leader, const char *text)
{
        struct apply_req a = {.done = false};
        a.req.data = &a;
        /* libraft 0.15 sends entries unpadded but decodes a batch of several as if each
         * were padded to 8 bytes: entry lengths must be multiples of 8. */
        struct raft_buffer buf = {.len = (strlen(text) + 1 + 7) / 8 * 8};
        buf.base = raft_malloc(buf.len);
        assert_non_null(buf.base);
        memset(buf.base, 0, buf.len);
        memcpy(buf.base, text, strlen(text));
        int r = raft_apply(&leader->raft, &a.req, &buf, 1, on_applied);
        if (r != 0) {
                raft_free(buf.base);
                fail_msg("raft_apply: %s", raft_strerror(r));
        }
        assert_true(run_until(&w->loop, apply_done, &a, WAIT_MS));
        assert_int_equal(a.status, 0);
}

static void start_cluster(struct node_set *s)
{
        for (size_t i = 0; i < s->n; i++)
                node_start(s->v[i], s->v, s->n);
}

/* ---- a 3-node cluster elects a leader and replicates entries ---- */

static void test_cluster(void **state)
{
        struct world *w = *state;
        struct node nodes[3];
        struct node_set s = {.n = 3};
        for (size_t i = 0; i < 3; i++) {
                node_setup(&nodes[i], w, i + 1, w->ca, 7);
                s.v[i] = &nodes[i];
        }
        start_cluster(&s);
        assert_true(run_until(&w->loop, agreed_leader, &s, WAIT_MS));

        static const char *const texts[] = {"put app pos 2.1.0", "place pos/api/0 on host 2",
                                            "place pos/api/1 on host 3", "seal secret db",
                                            "host 1 labels role=till"};
        for (size_t i = 0; i < SK_ARRAY_SIZE(texts); i++)
                apply_entry(w, leader_of(&s), texts[i]);
        /* raft applies configuration entries too, but not through the FSM: count ours. */
        struct applied_goal g = {&s, SK_ARRAY_SIZE(texts)};
        assert_true(run_until(&w->loop, all_applied, &g, WAIT_MS));
        uint64_t accepted = 0, connected = 0;
        for (size_t i = 0; i < 3; i++) {
                assert_int_equal(nodes[i].applied, SK_ARRAY_SIZE(texts));
                for (size_t k = 0; k < SK_ARRAY_SIZE(texts); k++)
                        assert_string_equal(nodes[i].entries[k], texts[k]);
                sk_raft_tls_stats st;
                sk_raft_tls_get_stats(&nodes[i].transport, &st);
                assert_int_equal(st.refused, 0);
                accepted += st.accepted;
                connected += st.connected;
        }
        /* The leader dialled both followers at least. */
        assert_true(accepted >= 2);
        assert_true(connected >= 2);

        nodes_close(w, &s);
        loop_finish(w);
}

/* ---- intruders: another site, another CA, no certificate at all ---- */

struct bare_client {
        int port;
        atomic_bool done;
        bool refused;
        char why[128];
};

/* A TLS client with no certificate, blocking, in its own thread. */
static void *bare_client_run(void *arg)
{
        struct bare_client *b = arg;
        gnutls_certificate_credentials_t cred = NULL;
        gnutls_session_t s = NULL;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)b->port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        struct timeval tv = {.tv_sec = 10};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
                snprintf(b->why, sizeof(b->why), "could not connect");
                goto out;
        }
        gnutls_certificate_allocate_credentials(&cred);
        gnutls_init(&s, GNUTLS_CLIENT);
        gnutls_set_default_priority(s);
        gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
        gnutls_transport_set_int(s, fd);
        int r = gnutls_handshake(s);
        if (r < 0) {
                b->refused = true;
                snprintf(b->why, sizeof(b->why), "handshake: %s", gnutls_strerror(r));
                goto out;
        }
        /* TLS 1.3: the server's refusal shows on the first read. */
        char buf[64];
        ssize_t n = gnutls_record_recv(s, buf, sizeof(buf));
        b->refused = n <= 0;
        snprintf(b->why, sizeof(b->why), "read: %s",
                 n < 0    ? gnutls_strerror((int)n)
                 : n == 0 ? "closed"
                          : "got data");
out:
        if (s)
                gnutls_deinit(s);
        if (cred)
                gnutls_certificate_free_credentials(cred);
        if (fd >= 0)
                close(fd);
        atomic_store(&b->done, true);
        return NULL;
}

static bool bare_done(void *arg)
{
        return atomic_load(&((struct bare_client *)arg)->done);
}

static uint64_t refused_total(struct node_set *s, size_t n)
{
        uint64_t sum = 0;
        for (size_t i = 0; i < n; i++) {
                sk_raft_tls_stats st;
                sk_raft_tls_get_stats(&s->v[i]->transport, &st);
                sum += st.refused;
        }
        return sum;
}

static void test_intruders_refused(void **state)
{
        struct world *w = *state;
        struct node nodes[5];
        struct node_set good = {.n = 3}, all = {.n = 5};
        for (size_t i = 0; i < 3; i++) {
                node_setup(&nodes[i], w, i + 1, w->ca, 7);
                good.v[i] = all.v[i] = &nodes[i];
        }
        /* Same CA, site 8; and site 7 with a certificate from another CA. */
        node_setup(&nodes[3], w, 4, w->ca, 8);
        node_setup(&nodes[4], w, 5, w->other_ca, 7);
        all.v[3] = &nodes[3];
        all.v[4] = &nodes[4];
        start_cluster(&good);
        for (size_t k = 3; k < 5; k++) {
                /* Each intruder believes it is a voter of 1, 2, 3 and itself. */
                struct node *m[4] = {&nodes[0], &nodes[1], &nodes[2], &nodes[k]};
                node_start(&nodes[k], m, 4);
        }
        assert_true(run_until(&w->loop, agreed_leader, &good, WAIT_MS));
        apply_entry(w, leader_of(&good), "inside the site");
        struct applied_goal g = {&good, 1};
        assert_true(run_until(&w->loop, all_applied, &g, WAIT_MS));

        uint64_t before = refused_total(&good, 3);
        struct bare_client bare = {.port = 0};
        sscanf(strchr(nodes[0].addr, ':') + 1, "%d", &bare.port);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, bare_client_run, &bare), 0);
        bool finished = run_until(&w->loop, bare_done, &bare, WAIT_MS);
        pthread_join(th, NULL);
        assert_true(finished);
        assert_true(bare.refused);
        assert_true(refused_total(&good, 3) > before);

        /* Give the intruders several election rounds (300 ms timeouts). */
        run_until(&w->loop, never, NULL, 2000);
        for (size_t k = 3; k < 5; k++) {
                sk_raft_tls_stats st;
                sk_raft_tls_get_stats(&nodes[k].transport, &st);
                assert_int_equal(st.connected, 0);
                assert_int_equal(st.accepted, 0);
                assert_int_not_equal(raft_state(&nodes[k].raft), RAFT_LEADER);
                assert_int_equal(nodes[k].applied, 0);
        }
        struct node *leader = leader_of(&good);
        assert_non_null(leader);
        assert_int_equal(leader->raft.configuration.n, 3);
        for (size_t i = 0; i < 3; i++) {
                assert_int_equal(nodes[i].applied, 1);
                raft_id id = 0;
                const char *addr = NULL;
                raft_leader(&nodes[i].raft, &id, &addr);
                assert_true(id >= 1 && id <= 3);
        }
        /* The good nodes refused the intruders' dials, not just the bare client. */
        assert_true(refused_total(&good, 3) >= before + 3);

        nodes_close(w, &all);
        loop_finish(w);
}

/* ---- what crosses the wire: a relay in front of every node records it ---- */

struct record {
        char *data;
        size_t len, cap;
};

struct relay;

struct pair {
        struct relay *r;
        struct pair *next;
        uv_tcp_t a, b; /* a: the dialler, b: the node */
        uv_connect_t creq;
        int open;
        bool closing;
};

struct relay {
        uv_tcp_t server;
        int target_port;
        struct record *rec;
        struct pair *pairs;
        bool closed;
};

struct wbuf {
        uv_write_t req;
        char data[];
};

static void record_add(struct record *rec, const char *p, size_t n)
{
        if (rec->len + n > rec->cap) {
                rec->cap = (rec->len + n) * 2;
                rec->data = realloc(rec->data, rec->cap);
                assert_non_null(rec->data);
        }
        memcpy(rec->data + rec->len, p, n);
        rec->len += n;
}

static void pair_handle_closed(uv_handle_t *h)
{
        struct pair *p = h->data;
        if (--p->open > 0)
                return;
        struct pair **pp = &p->r->pairs;
        while (*pp != p)
                pp = &(*pp)->next;
        *pp = p->next;
        free(p);
}

static void pair_close(struct pair *p)
{
        if (p->closing)
                return;
        p->closing = true;
        uv_close((uv_handle_t *)&p->a, pair_handle_closed);
        uv_close((uv_handle_t *)&p->b, pair_handle_closed);
}

static void relay_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
        *buf = uv_buf_init(malloc(suggested), (unsigned)suggested);
}

static void relay_written(uv_write_t *req, int status)
{
        free(req);
}

static void relay_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
        struct pair *p = s->data;
        if (n > 0 && !p->closing) {
                record_add(p->r->rec, buf->base, (size_t)n);
                struct wbuf *wb = malloc(sizeof(*wb) + (size_t)n);
                memcpy(wb->data, buf->base, (size_t)n);
                uv_buf_t b = uv_buf_init(wb->data, (unsigned)n);
                uv_stream_t *to =
                    s == (uv_stream_t *)&p->a ? (uv_stream_t *)&p->b : (uv_stream_t *)&p->a;
                if (uv_write(&wb->req, to, &b, 1, relay_written) < 0) {
                        free(wb);
                        pair_close(p);
                }
        } else if (n < 0) {
                pair_close(p);
        }
        free(buf->base);
}

static void relay_connected(uv_connect_t *req, int status)
{
        struct pair *p = req->data;
        if (p->closing)
                return;
        if (status < 0 || uv_read_start((uv_stream_t *)&p->a, relay_alloc, relay_read) < 0 ||
            uv_read_start((uv_stream_t *)&p->b, relay_alloc, relay_read) < 0)
                pair_close(p);
}

static void relay_accept(uv_stream_t *server, int status)
{
        struct relay *r = server->data;
        if (status < 0)
                return;
        struct pair *p = calloc(1, sizeof(*p));
        assert_non_null(p);
        p->r = r;
        p->next = r->pairs;
        r->pairs = p;
        uv_tcp_init(server->loop, &p->a);
        uv_tcp_init(server->loop, &p->b);
        p->a.data = p->b.data = p->creq.data = p;
        p->open = 2;
        struct sockaddr_in to;
        uv_ip4_addr("127.0.0.1", r->target_port, &to);
        if (uv_accept(server, (uv_stream_t *)&p->a) < 0 ||
            uv_tcp_connect(&p->creq, &p->b, (struct sockaddr *)&to, relay_connected) < 0)
                pair_close(p);
}

static void relay_start(uv_loop_t *loop, struct relay *r, int listen_port, int target_port,
                        struct record *rec)
{
        memset(r, 0, sizeof(*r));
        r->target_port = target_port;
        r->rec = rec;
        struct sockaddr_in a;
        uv_ip4_addr("127.0.0.1", listen_port, &a);
        assert_int_equal(uv_tcp_init(loop, &r->server), 0);
        r->server.data = r;
        assert_int_equal(uv_tcp_bind(&r->server, (struct sockaddr *)&a, 0), 0);
        assert_int_equal(uv_listen((uv_stream_t *)&r->server, 16, relay_accept), 0);
}

static void relay_server_closed(uv_handle_t *h)
{
        ((struct relay *)h->data)->closed = true;
}

static void relay_close(struct relay *r)
{
        uv_close((uv_handle_t *)&r->server, relay_server_closed);
        for (struct pair *p = r->pairs; p; p = p->next)
                pair_close(p);
}

#define PAYLOAD "till-07 sold 42 herrings to card 4929-XXXX; secret=kelp"

/* Runs a 3-node cluster behind relays, applies PAYLOAD, and tells whether the payload
 * showed on the wire; *bytes is how much crossed it. */
static bool payload_on_wire(struct world *w, bool plain, size_t *bytes)
{
        struct node nodes[3];
        struct relay relays[3];
        struct record rec = {NULL, 0, 0};
        struct node_set s = {.n = 3};
        for (size_t i = 0; i < 3; i++) {
                node_setup(&nodes[i], w, i + 1, plain ? NULL : w->ca, 7);
                nodes[i].plain = plain;
                /* raft dials the relay's port; the node listens behind it. */
                int behind = free_port();
                snprintf(nodes[i].bind, sizeof(nodes[i].bind), "127.0.0.1:%d", behind);
                int front = atoi(strchr(nodes[i].addr, ':') + 1);
                relay_start(&w->loop, &relays[i], front, behind, &rec);
                s.v[i] = &nodes[i];
        }
        start_cluster(&s);
        assert_true(run_until(&w->loop, agreed_leader, &s, WAIT_MS));
        apply_entry(w, leader_of(&s), PAYLOAD);
        struct applied_goal g = {&s, 1};
        assert_true(run_until(&w->loop, all_applied, &g, WAIT_MS));
        for (size_t i = 0; i < 3; i++)
                assert_string_equal(nodes[i].entries[0], PAYLOAD);

        nodes_close(w, &s);
        for (size_t i = 0; i < 3; i++)
                relay_close(&relays[i]);
        loop_finish(w);
        for (size_t i = 0; i < 3; i++)
                assert_true(relays[i].closed && !relays[i].pairs);

        bool found = rec.len > 0 && memmem(rec.data, rec.len, PAYLOAD, strlen(PAYLOAD));
        /* Nor any long piece of it. */
        for (size_t off = 0; !found && off + 12 <= strlen(PAYLOAD); off++)
                found = rec.len > 0 && memmem(rec.data, rec.len, &PAYLOAD[off], 12);
        *bytes = rec.len;
        free(rec.data);
        return found;
}

static void test_wire_is_ciphertext(void **state)
{
        size_t bytes = 0;
        assert_false(payload_on_wire(*state, false, &bytes));
        /* Handshakes, certificates and the replicated entry did cross the relays. */
        assert_true(bytes > 2000);
}

/* The control: with raft's plain TCP transport the same relay sees the payload, so the
 * test above would notice plaintext. */
static void test_wire_control_plain_tcp_leaks(void **state)
{
        size_t bytes = 0;
        assert_true(payload_on_wire(*state, true, &bytes));
}

/* ---- the pump: bytes arrive intact and in order, also after raft's side stalled ---- */

struct stream_test {
        struct raft_uv_transport a, b;
        struct raft_uv_connect req;
        uv_stream_t *sa, *sb; /* raft's ends: dialled, accepted */
        raft_id accepted_id;
        char accepted_addr[32];
        size_t got, writes_done;
        bool bad, a_closed, b_closed;
        char rbuf[7777];
};

struct swrite {
        uv_write_t req;
        struct stream_test *st;
        char data[];
};

static unsigned char pattern(size_t i)
{
        return (unsigned char)((i * 7 + i / 251) & 0xff);
}

static void st_accept(struct raft_uv_transport *t, raft_id id, const char *address,
                      uv_stream_t *stream)
{
        struct stream_test *st = t->data;
        st->sb = stream;
        st->accepted_id = id;
        snprintf(st->accepted_addr, sizeof(st->accepted_addr), "%s", address);
}

static void st_connected(struct raft_uv_connect *req, uv_stream_t *stream, int status)
{
        struct stream_test *st = req->data;
        assert_int_equal(status, 0);
        st->sa = stream;
}

static bool st_ready(void *arg)
{
        struct stream_test *st = arg;
        return st->sa && st->sb;
}

static void st_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
        struct stream_test *st = h->data;
        *buf = uv_buf_init(st->rbuf, sizeof(st->rbuf));
}

static void st_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
        struct stream_test *st = s->data;
        for (ssize_t i = 0; i < n; i++, st->got++)
                if ((unsigned char)buf->base[i] != pattern(st->got))
                        st->bad = true;
}

static void st_written(uv_write_t *req, int status)
{
        struct swrite *w = (struct swrite *)req;
        assert_int_equal(status, 0);
        w->st->writes_done++;
        free(w);
}

struct st_goal {
        struct stream_test *st;
        size_t bytes, writes;
};

static bool st_all_read(void *arg)
{
        struct st_goal *g = arg;
        return g->st->got >= g->bytes && g->st->writes_done == g->writes;
}

static void st_free_handle(uv_handle_t *h)
{
        raft_free(h);
}

static void st_a_closed(struct raft_uv_transport *t)
{
        ((struct stream_test *)t->data)->a_closed = true;
}

static void st_b_closed(struct raft_uv_transport *t)
{
        ((struct stream_test *)t->data)->b_closed = true;
}

static bool st_closed(void *arg)
{
        struct stream_test *st = arg;
        return st->a_closed && st->b_closed;
}

static void test_stream_integrity(void **state)
{
        struct world *w = *state;
        struct stream_test *st = calloc(1, sizeof(*st));
        assert_non_null(st);
        _cleanup_free_ char *c1 = NULL, *k1 = NULL, *c2 = NULL, *k2 = NULL;
        make_ident(w->ca, 7, 1, &c1, &k1);
        make_ident(w->ca, 7, 2, &c2, &k2);
        const char *ca = sk_ca_cert_pem(w->ca);
        sk_raft_tls_config cfg1 = {.ca_pem = ca, .cert_pem = c1, .key_pem = k1};
        sk_raft_tls_config cfg2 = {.ca_pem = ca, .cert_pem = c2, .key_pem = k2};
        assert_int_equal(sk_raft_tls_init(&st->a, &w->loop, &cfg1, NULL), 0);
        assert_int_equal(sk_raft_tls_init(&st->b, &w->loop, &cfg2, NULL), 0);
        st->a.data = st->b.data = st->req.data = st;
        char addr_a[32], addr_b[32];
        snprintf(addr_a, sizeof(addr_a), "127.0.0.1:%d", free_port());
        snprintf(addr_b, sizeof(addr_b), "127.0.0.1:%d", free_port());
        assert_int_equal(st->a.init(&st->a, 1, addr_a), 0);
        assert_int_equal(st->b.init(&st->b, 2, addr_b), 0);
        assert_int_equal(st->b.listen(&st->b, st_accept), 0);
        assert_int_equal(st->a.connect(&st->a, &st->req, 2, addr_b, st_connected), 0);
        assert_true(run_until(&w->loop, st_ready, st, WAIT_MS));
        /* The listener learnt who dialled from the hello, checked against the certificate. */
        assert_int_equal(st->accepted_id, 1);
        assert_string_equal(st->accepted_addr, addr_a);
        st->sa->data = st->sb->data = st;

        /* About 40 MB in writes of odd sizes, more than the pump lets queue up while the
         * receiving side reads nothing: both directions of backpressure engage. */
        size_t total = 0, writes = 0;
        for (size_t k = 0; k < 600; k++, writes++) {
                size_t n = 1 + (k * 7919) % 131072;
                struct swrite *wr = malloc(sizeof(*wr) + n);
                assert_non_null(wr);
                wr->st = st;
                for (size_t i = 0; i < n; i++)
                        wr->data[i] = (char)pattern(total + i);
                uv_buf_t b = uv_buf_init(wr->data, (unsigned)n);
                assert_int_equal(uv_write(&wr->req, st->sa, &b, 1, st_written), 0);
                total += n;
        }
        run_until(&w->loop, never, NULL, 500);
        assert_true(st->writes_done < writes); /* it did stall */
        assert_int_equal(uv_read_start(st->sb, st_alloc, st_read), 0);
        struct st_goal g = {st, total, writes};
        assert_true(run_until(&w->loop, st_all_read, &g, WAIT_MS));
        assert_int_equal(st->got, total);
        assert_false(st->bad);

        uv_close((uv_handle_t *)st->sa, st_free_handle);
        uv_close((uv_handle_t *)st->sb, st_free_handle);
        st->a.close(&st->a, st_a_closed);
        st->b.close(&st->b, st_b_closed);
        assert_true(run_until(&w->loop, st_closed, st, WAIT_MS));
        sk_raft_tls_close(&st->a);
        sk_raft_tls_close(&st->b);
        free(st);
        loop_finish(w);
}

/* ---- site CA generations (docs/security.md) ---- */

struct pin_test {
        struct raft_uv_transport a, b;
        struct raft_uv_connect req;
        char current[SK_PKI_FP_LEN]; /* the site CA b's site holds as current */
        char adopted[SK_PKI_FP_LEN]; /* a certificate the tower adopted, good anyway */
        uv_stream_t *sa, *sb;
        int status; /* of the last dial: 1 pending */
        bool a_closed, b_closed;
};

static bool pin_retired(const char *fp, const char *leaf_fp, void *user)
{
        struct pin_test *pt = user;
        return sk_pki_check_site_ca(fp, pt->current, NULL) < 0 && strcmp(leaf_fp, pt->adopted) != 0;
}

static void pin_accept(struct raft_uv_transport *t, raft_id id, const char *address,
                       uv_stream_t *stream)
{
        ((struct pin_test *)t->data)->sb = stream;
}

static void pin_connected(struct raft_uv_connect *req, uv_stream_t *stream, int status)
{
        struct pin_test *pt = req->data;
        pt->sa = stream;
        pt->status = status;
}

static bool pin_dialled(void *arg)
{
        struct pin_test *pt = arg;
        return pt->status != 1 && (pt->status != 0 || pt->sb);
}

static void pin_a_closed(struct raft_uv_transport *t)
{
        ((struct pin_test *)t->data)->a_closed = true;
}

static void pin_b_closed(struct raft_uv_transport *t)
{
        ((struct pin_test *)t->data)->b_closed = true;
}

static bool pin_closed(void *arg)
{
        struct pin_test *pt = arg;
        return pt->a_closed && pt->b_closed;
}

/* a dials b once; returns the dial's status (0: connected, both ends then closed again). */
static int pin_dial(struct world *w, struct pin_test *pt, const char *addr_b)
{
        pt->status = 1;
        pt->sa = pt->sb = NULL;
        assert_int_equal(pt->a.connect(&pt->a, &pt->req, 2, addr_b, pin_connected), 0);
        assert_true(run_until(&w->loop, pin_dialled, pt, WAIT_MS));
        if (pt->status == 0) {
                uv_close((uv_handle_t *)pt->sa, st_free_handle);
                uv_close((uv_handle_t *)pt->sb, st_free_handle);
        }
        return pt->status;
}

/* A host whose certificate a site CA signed (a site-local join) dials a host of its site:
 * let in while that site CA is current, refused once a removal retired it. */
static void test_retired_site_ca(void **state)
{
        struct world *w = *state;
        struct pin_test *pt = calloc(1, sizeof(*pt));
        assert_non_null(pt);
        _cleanup_free_ char *sc = NULL, *sk = NULL, *csr = NULL, *leaf = NULL, *k1 = NULL;
        assert_int_equal(sk_ca_issue_site_ca(w->ca, 7, &sc, &sk, NULL), 0);
        _cleanup_ca_ sk_ca *site = NULL;
        assert_int_equal(sk_ca_load_site(sc, sk, &site, NULL), 0);
        int64_t local = SK_PKI_LOCAL_ID_BASE + 7 * (1LL << 24) + 1;
        char uri[96];
        snprintf(uri, sizeof(uri), "skerry://site/7/host/%lld", (long long)local);
        assert_int_equal(sk_pki_make_key_and_csr("local-1", &k1, &csr, NULL), 0);
        assert_int_equal(sk_ca_sign_client(site, csr, "local-1", uri, 30, &leaf, NULL), 0);
        _cleanup_free_ char *c1 = NULL, *c2 = NULL, *k2 = NULL;
        assert_true(asprintf(&c1, "%s%s", leaf, sc) > 0);
        make_ident(w->ca, 7, 2, &c2, &k2);
        assert_int_equal(sk_pki_fingerprint(sc, pt->current, NULL), 0);

        const char *ca = sk_ca_cert_pem(w->ca);
        sk_raft_tls_config cfg1 = {.ca_pem = ca, .cert_pem = c1, .key_pem = k1};
        sk_raft_tls_config cfg2 = {.ca_pem = ca,
                                   .cert_pem = c2,
                                   .key_pem = k2,
                                   .is_retired_ca = pin_retired,
                                   .http_user = pt};
        assert_int_equal(sk_raft_tls_init(&pt->a, &w->loop, &cfg1, NULL), 0);
        assert_int_equal(sk_raft_tls_init(&pt->b, &w->loop, &cfg2, NULL), 0);
        pt->a.data = pt->b.data = pt->req.data = pt;
        char addr_a[32], addr_b[32];
        snprintf(addr_a, sizeof(addr_a), "127.0.0.1:%d", free_port());
        snprintf(addr_b, sizeof(addr_b), "127.0.0.1:%d", free_port());
        assert_int_equal(pt->a.init(&pt->a, (raft_id)local, addr_a), 0);
        assert_int_equal(pt->b.init(&pt->b, 2, addr_b), 0);
        assert_int_equal(pt->b.listen(&pt->b, pin_accept), 0);

        /* The current generation: connected. */
        assert_int_equal(pin_dial(w, pt, addr_b), 0);

        /* A removal re-keyed the site: the same certificate is refused. */
        sk_raft_tls_stats before, after;
        sk_raft_tls_get_stats(&pt->b, &before);
        memset(pt->current, 'a', 64);
        assert_int_not_equal(pin_dial(w, pt, addr_b), 0);
        assert_null(pt->sb);
        sk_raft_tls_get_stats(&pt->b, &after);
        assert_int_equal(after.refused, before.refused + 1);

        /* Unless the tower adopted that very certificate (the retired key cannot make it
         * again without the host's private key). */
        assert_int_equal(sk_pki_fingerprint(c1, pt->adopted, NULL), 0);
        assert_int_equal(pin_dial(w, pt, addr_b), 0);

        pt->a.close(&pt->a, pin_a_closed);
        pt->b.close(&pt->b, pin_b_closed);
        assert_true(run_until(&w->loop, pin_closed, pt, WAIT_MS));
        sk_raft_tls_close(&pt->a);
        sk_raft_tls_close(&pt->b);
        free(pt);
        loop_finish(w);
}

/* ---- configuration errors ---- */

static void test_bad_config(void **state)
{
        struct world *w = *state;
        struct raft_uv_transport t;
        _cleanup_free_ char *cert = NULL, *key = NULL, *cert2 = NULL, *key2 = NULL;
        make_ident(w->ca, 7, 1, &cert, &key);
        make_ident(w->ca, 7, 2, &cert2, &key2);
        const char *ca = sk_ca_cert_pem(w->ca);

        struct {
                sk_raft_tls_config cfg;
                const char *field;
        } cases[] = {
            {{.ca_pem = NULL, .cert_pem = cert, .key_pem = key}, "ca_pem"},
            {{.ca_pem = ca, .cert_pem = "junk", .key_pem = key}, "cert_pem"},
            {{.ca_pem = "junk", .cert_pem = cert, .key_pem = key}, "ca_pem"},
            {{.ca_pem = ca, .cert_pem = cert, .key_pem = key2}, "key_pem"},
            {{.ca_pem = ca, .cert_pem = cert, .key_pem = key, .bind_address = "localhost"},
             "bind_address"},
            /* The CA's own certificate has no host URI. */
            {{.ca_pem = ca, .cert_pem = ca, .key_pem = key}, "cert_pem"},
        };
        for (size_t i = 0; i < SK_ARRAY_SIZE(cases); i++) {
                _cleanup_error_ sk_error *err = NULL;
                int r = sk_raft_tls_init(&t, &w->loop, &cases[i].cfg, &err);
                assert_int_equal(r, -EINVAL);
                assert_non_null(err);
                assert_non_null(err->path);
                assert_string_equal(err->path, cases[i].field);
        }

        /* A raft id that is not the certificate's host, or an address that is no IP:port. */
        _cleanup_error_ sk_error *err = NULL;
        sk_raft_tls_config ok = {.ca_pem = ca, .cert_pem = cert, .key_pem = key};
        assert_int_equal(sk_raft_tls_init(&t, &w->loop, &ok, &err), 0);
        assert_int_equal(t.init(&t, 2, "127.0.0.1:1"), RAFT_INVALID);
        assert_non_null(strstr(t.errmsg, "host 1"));
        assert_int_equal(t.init(&t, 1, "somewhere"), 0);
        assert_int_equal(t.listen(&t, NULL), RAFT_INVALID);
        sk_raft_tls_close(&t);
        loop_finish(w);
}

int main(void)
{
        signal(SIGPIPE, SIG_IGN);
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
            cmocka_unit_test_setup_teardown(test_stream_integrity, setup, teardown),
            cmocka_unit_test_setup_teardown(test_retired_site_ca, setup, teardown),
            cmocka_unit_test_setup_teardown(test_cluster, setup, teardown),
            cmocka_unit_test_setup_teardown(test_intruders_refused, setup, teardown),
            cmocka_unit_test_setup_teardown(test_wire_is_ciphertext, setup, teardown),
            cmocka_unit_test_setup_teardown(test_wire_control_plain_tcp_leaks, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}

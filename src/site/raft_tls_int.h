/* Internals shared by raft_tls.c (the transport: identity, listener, close) and
 * raft_tls_conn.c (one connection: TLS handshake, verification, hello, pump). */
#ifndef SK_SITE_RAFT_TLS_INT_H
#define SK_SITE_RAFT_TLS_INT_H

#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "site/raft_tls.h"

/* The hello a dialling node sends inside TLS before raft's bytes: protocol, its raft id,
 * the length of its address (with the NUL), all u64 little-endian, then the address. The
 * listener answers one SK_RTLS_ACK byte once it accepted, so a refused dial fails at
 * connect time instead of looking like a connection that drops. */
#define SK_RTLS_PROTO        UINT64_C(0x534b524146540001) /* "SKRAFT", version 1 */
#define SK_RTLS_ADDR_MAX     256
#define SK_RTLS_HELLO_HEADER 24
#define SK_RTLS_ACK          0x01
/* A refusal of the same peer address for the same reason is logged as a warning at most
 * this often (debug otherwise). */
#define SK_RTLS_QUIET_MS 60000
/* Connections without a certificate (site-local joins) accepted per minute, at most. */
#define SK_RTLS_ANON_MAX 20

struct sk_rtls_conn;

typedef struct sk_rtls {
        struct raft_uv_transport *t;
        uv_loop_t *loop;
        gnutls_certificate_credentials_t cred;
        gnutls_priority_t prio;
        char *ca_pem;
        char *bind_address;
        int64_t site_id, host_id; /* from our own certificate */
        raft_id id;
        char *address;

        uv_tcp_t listener;
        bool listener_init, listener_closed;
        raft_uv_accept_cb accept_cb;
        void (*on_http)(int fd, int64_t host_id, void *user);
        void *http_user;
        bool (*is_denied)(int64_t host_id, void *user);
        bool (*is_retired_ca)(const char *site_ca_fp, const char *leaf_fp, void *user);

        struct sk_rtls_conn *conns; /* every connection not yet freed */
        bool closing, close_fired;
        raft_uv_transport_close_cb close_cb;
        sk_raft_tls_stats stats;
        uint64_t anon_window; /* ms: start of the minute counted in anon_count */
        int anon_count;       /* connections without a certificate in that minute */
        struct {
                uint64_t key, at;
        } quiet[16]; /* recent refusals: hash of peer address and reason, when */
} sk_rtls;

/* "1.2.3.4:5" or "[::1]:5" into a socket address; -EINVAL otherwise. */
int sk_rtls_parse_addr(const char *address, struct sockaddr_storage *ss);

/* A connection on tr->listener is waiting: accept it and start the server handshake. */
void sk_rtls_conn_accept(sk_rtls *tr);
/* Dials address, expecting raft server id; cb fires exactly once unless this fails. */
int sk_rtls_conn_connect(sk_rtls *tr, struct raft_uv_connect *req, raft_id id, const char *address,
                         raft_uv_connect_cb cb);
/* Closes every connection (pending dials report RAFT_CANCELED). */
void sk_rtls_conn_close_all(sk_rtls *tr);
/* Fires the transport's close callback once it is closing and nothing is left open. */
void sk_rtls_maybe_closed(sk_rtls *tr);

#endif

/* A raft transport (struct raft_uv_transport of libraft 0.15) that carries raft's byte
 * stream between the hosts of a site over mutual TLS on libuv TCP, so nothing readable
 * crosses the LAN.
 *
 * Every host presents the client certificate it got at join time ("skerry://site/<s>/
 * host/<h>"); both ends verify the other's certificate against the tower's CA, require
 * the same site as their own, and require the peer's host id to be the raft server id it
 * claims (incoming) or was dialled as (outgoing). Refused peers are logged and counted.
 *
 * raft reads and writes a uv_stream_t, so each verified connection gets a local
 * socketpair: raft owns one end (a uv_pipe_t it closes and frees), a pump in the same
 * loop moves bytes between the other end and the TLS session on the TCP socket. No
 * threads. See docs/site-cluster.md.
 *
 * Addresses are numeric, "IPv4:port" or "[IPv6]:port". The process must ignore SIGPIPE. */
#ifndef SK_SITE_RAFT_TLS_H
#define SK_SITE_RAFT_TLS_H

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/error.h"

/* How long a peer has to finish the TLS handshake and the raft hello. */
#define SK_RAFT_TLS_HANDSHAKE_MS 10000

typedef struct sk_raft_tls_config {
        const char *ca_pem;   /* the tower's CA */
        const char *cert_pem; /* this host's certificate from the join */
        const char *key_pem;  /* its key */
        /* Optional "IP:port" to listen on instead of the address given to raft (for a
         * host behind a port mapping, or a test relay). */
        const char *bind_address;
        /* Optional: a verified peer whose first bytes inside TLS are an HTTP request (not
         * the raft hello) is handed here instead, so the site-local API shares the raft
         * port. fd is a local stream socket carrying the decrypted bytes (owned by the
         * callee from then on); host_id is the one in the peer's certificate. Called in
         * the loop's thread. */
        void (*on_http)(int fd, int64_t host_id, void *user);
        void *http_user;
        /* Optional: true when host_id has been removed from the site (the replicated deny
         * list): its connections are refused like a host of another site's, both ways.
         * Called in the loop's thread with http_user. */
        bool (*is_denied)(int64_t host_id, void *user);
        /* Optional: true when site_ca_fp (the SHA-256 of the site CA a peer's chain went
         * through) is not the site's current one and leaf_fp (the peer certificate's) is not
         * one the tower adopted: a removed host may still hold a retired generation's key
         * (docs/security.md). Refused both ways, like is_denied. Called in the loop's thread
         * with http_user. */
        bool (*is_retired_ca)(const char *site_ca_fp, const char *leaf_fp, void *user);
} sk_raft_tls_config;

typedef struct sk_raft_tls_stats {
        uint64_t accepted;  /* incoming connections handed to raft */
        uint64_t connected; /* outgoing connections handed to raft */
        uint64_t refused;   /* peers refused: TLS failure, certificate, site, id or hello */
        uint64_t http;      /* connections handed to on_http */
} sk_raft_tls_stats;

/* Sets up t (all of it: function table and impl). The certificate must carry a skerry
 * host URI; its site is the one peers must share, its host id the raft id this node must
 * be given in raft_init. The PEM strings are copied. */
int sk_raft_tls_init(struct raft_uv_transport *t, uv_loop_t *loop, const sk_raft_tls_config *cfg,
                     sk_error **err);

/* Releases t's memory; only after raft's close (which closes the transport) completed,
 * like raft_uv_tcp_close. */
void sk_raft_tls_close(struct raft_uv_transport *t);

void sk_raft_tls_get_stats(const struct raft_uv_transport *t, sk_raft_tls_stats *out);

#endif

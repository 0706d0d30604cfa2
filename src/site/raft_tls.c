/* The transport object: our identity from the join certificate, the listener, and the
 * close protocol raft expects. Connections live in raft_tls_conn.c. */
#include <arpa/inet.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/pki.h"
#include "site/raft_tls.h"
#include "site/raft_tls_int.h"

/* TLS 1.3 only: both ends are skerry, and 1.3 encrypts the certificates too. */
#define PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3"

int sk_rtls_parse_addr(const char *address, struct sockaddr_storage *ss)
{
        char host[64];
        const char *colon;
        const char *h = address;
        size_t hlen;
        if (!address)
                return -EINVAL;
        if (address[0] == '[') {
                const char *end = strchr(address, ']');
                if (!end || end[1] != ':')
                        return -EINVAL;
                h = address + 1;
                hlen = (size_t)(end - h);
                colon = end + 1;
        } else {
                colon = strrchr(address, ':');
                if (!colon)
                        return -EINVAL;
                hlen = (size_t)(colon - address);
        }
        if (hlen == 0 || hlen >= sizeof(host))
                return -EINVAL;
        memcpy(host, h, hlen);
        host[hlen] = '\0';
        char *end = NULL;
        errno = 0;
        unsigned long port = strtoul(colon + 1, &end, 10);
        if (errno || !colon[1] || *end || port > 65535)
                return -EINVAL;
        memset(ss, 0, sizeof(*ss));
        if (address[0] == '[')
                return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) ? -EINVAL : 0;
        return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) ? -EINVAL : 0;
}

static void crt_deinitp(gnutls_x509_crt_t *c)
{
        if (*c)
                gnutls_x509_crt_deinit(*c);
}

/* Site and host of our own certificate, from its skerry URI. */
static int own_identity(const char *cert_pem, int64_t *site, int64_t *host, sk_error **err)
{
        __attribute__((cleanup(crt_deinitp))) gnutls_x509_crt_t crt = NULL;
        int r = gnutls_x509_crt_init(&crt);
        if (r < 0)
                return sk_error_set(err, ENOMEM, "certificate: %s", gnutls_strerror(r));
        gnutls_datum_t d = {(unsigned char *)cert_pem, (unsigned)strlen(cert_pem)};
        r = gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM);
        if (r < 0)
                return sk_error_set_path(err, EINVAL, "cert_pem", "certificate: %s",
                                         gnutls_strerror(r));
        for (unsigned i = 0;; i++) {
                char buf[512];
                size_t len = sizeof(buf) - 1;
                r = gnutls_x509_crt_get_subject_alt_name(crt, i, buf, &len, NULL);
                if (r == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
                        break;
                if (r == GNUTLS_E_SHORT_MEMORY_BUFFER)
                        continue;
                if (r < 0)
                        return sk_error_set_path(err, EINVAL, "cert_pem", "certificate: %s",
                                                 gnutls_strerror(r));
                buf[len] = '\0';
                if (r == GNUTLS_SAN_URI && sk_pki_parse_host_uri(buf, site, host) == 0)
                        return 0;
        }
        return sk_error_set_path(err, EINVAL, "cert_pem",
                                 "certificate carries no skerry://site/<s>/host/<h> URI");
}

static int tr_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
        sk_rtls *tr = t->impl;
        if ((uint64_t)tr->host_id != id) {
                snprintf(t->errmsg, sizeof(t->errmsg),
                         "raft id %llu differs from host %lld in this host's certificate",
                         (unsigned long long)id, (long long)tr->host_id);
                return RAFT_INVALID;
        }
        if (strlen(address) + 1 > SK_RTLS_ADDR_MAX) {
                snprintf(t->errmsg, sizeof(t->errmsg), "address too long");
                return RAFT_INVALID;
        }
        char *a = strdup(address);
        if (!a)
                return RAFT_NOMEM;
        free(tr->address);
        tr->address = a;
        tr->id = id;
        return 0;
}

static void on_connection(uv_stream_t *server, int status)
{
        sk_rtls *tr = server->data;
        if (tr->closing)
                return;
        if (status < 0) {
                sk_warn("raft-tls: listen: %s", uv_strerror(status));
                return;
        }
        sk_rtls_conn_accept(tr);
}

static int tr_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
        sk_rtls *tr = t->impl;
        const char *addr = tr->bind_address ? tr->bind_address : tr->address;
        struct sockaddr_storage ss;
        if (sk_rtls_parse_addr(addr, &ss) < 0) {
                snprintf(t->errmsg, sizeof(t->errmsg), "listen address \"%s\" is not IP:port",
                         addr ? addr : "");
                return RAFT_INVALID;
        }
        int r = uv_tcp_init(tr->loop, &tr->listener);
        if (r < 0) {
                snprintf(t->errmsg, sizeof(t->errmsg), "listen: %s", uv_strerror(r));
                return RAFT_IOERR;
        }
        tr->listener.data = tr;
        tr->listener_init = true;
        tr->accept_cb = cb;
        r = uv_tcp_bind(&tr->listener, (struct sockaddr *)&ss, 0);
        if (r == 0)
                r = uv_listen((uv_stream_t *)&tr->listener, 128, on_connection);
        if (r < 0) {
                snprintf(t->errmsg, sizeof(t->errmsg), "listen on %s: %s", addr, uv_strerror(r));
                return RAFT_IOERR;
        }
        return 0;
}

static int tr_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                      const char *address, raft_uv_connect_cb cb)
{
        sk_rtls *tr = t->impl;
        if (tr->closing)
                return RAFT_CANCELED;
        return sk_rtls_conn_connect(tr, req, id, address, cb);
}

void sk_rtls_maybe_closed(sk_rtls *tr)
{
        if (!tr->closing || tr->close_fired || !tr->listener_closed || tr->conns)
                return;
        tr->close_fired = true;
        if (tr->close_cb)
                tr->close_cb(tr->t);
}

static void on_listener_closed(uv_handle_t *h)
{
        sk_rtls *tr = h->data;
        tr->listener_closed = true;
        sk_rtls_maybe_closed(tr);
}

static void tr_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
        sk_rtls *tr = t->impl;
        if (tr->closing)
                return;
        tr->closing = true;
        tr->close_cb = cb;
        if (tr->listener_init)
                uv_close((uv_handle_t *)&tr->listener, on_listener_closed);
        else
                tr->listener_closed = true;
        sk_rtls_conn_close_all(tr);
        sk_rtls_maybe_closed(tr);
}

static void rtls_free(sk_rtls *tr)
{
        if (!tr)
                return;
        if (tr->cred)
                gnutls_certificate_free_credentials(tr->cred);
        if (tr->prio)
                gnutls_priority_deinit(tr->prio);
        free(tr->ca_pem);
        free(tr->bind_address);
        free(tr->address);
        free(tr);
}

static void rtls_freep(sk_rtls **tr)
{
        rtls_free(*tr);
}

int sk_raft_tls_init(struct raft_uv_transport *t, uv_loop_t *loop, const sk_raft_tls_config *cfg,
                     sk_error **err)
{
        if (!cfg->ca_pem)
                return sk_error_set_path(err, EINVAL, "ca_pem", "no CA certificate");
        if (!cfg->cert_pem)
                return sk_error_set_path(err, EINVAL, "cert_pem", "no host certificate");
        if (!cfg->key_pem)
                return sk_error_set_path(err, EINVAL, "key_pem", "no host key");
        struct sockaddr_storage ss;
        if (cfg->bind_address && sk_rtls_parse_addr(cfg->bind_address, &ss) < 0)
                return sk_error_set_path(err, EINVAL, "bind_address", "\"%s\" is not IP:port",
                                         cfg->bind_address);

        __attribute__((cleanup(rtls_freep))) sk_rtls *tr = calloc(1, sizeof(*tr));
        if (!tr)
                return sk_error_set(err, ENOMEM, "out of memory");
        tr->t = t;
        tr->loop = loop;
        int r = own_identity(cfg->cert_pem, &tr->site_id, &tr->host_id, err);
        if (r < 0)
                return r;
        tr->ca_pem = strdup(cfg->ca_pem);
        tr->bind_address = cfg->bind_address ? strdup(cfg->bind_address) : NULL;
        tr->on_http = cfg->on_http;
        tr->http_user = cfg->http_user;
        tr->is_denied = cfg->is_denied;
        tr->is_retired_ca = cfg->is_retired_ca;
        if (!tr->ca_pem || (cfg->bind_address && !tr->bind_address))
                return sk_error_set(err, ENOMEM, "out of memory");

        r = gnutls_certificate_allocate_credentials(&tr->cred);
        if (r < 0) {
                tr->cred = NULL;
                return sk_error_set(err, ENOMEM, "TLS credentials: %s", gnutls_strerror(r));
        }
        gnutls_datum_t ca = {(unsigned char *)cfg->ca_pem, (unsigned)strlen(cfg->ca_pem)};
        r = gnutls_certificate_set_x509_trust_mem(tr->cred, &ca, GNUTLS_X509_FMT_PEM);
        if (r <= 0)
                return sk_error_set_path(err, EINVAL, "ca_pem", "CA certificate: %s",
                                         r < 0 ? gnutls_strerror(r) : "no certificate found");
        gnutls_datum_t cert = {(unsigned char *)cfg->cert_pem, (unsigned)strlen(cfg->cert_pem)};
        gnutls_datum_t key = {(unsigned char *)cfg->key_pem, (unsigned)strlen(cfg->key_pem)};
        r = gnutls_certificate_set_x509_key_mem(tr->cred, &cert, &key, GNUTLS_X509_FMT_PEM);
        if (r < 0)
                return sk_error_set_path(err, EINVAL, "key_pem", "host certificate and key: %s",
                                         gnutls_strerror(r));
        r = gnutls_priority_init(&tr->prio, PRIORITY, NULL);
        if (r < 0) {
                tr->prio = NULL;
                return sk_error_set(err, EINVAL, "TLS priority: %s", gnutls_strerror(r));
        }

        memset(t, 0, sizeof(*t));
        t->impl = take_ptr(&tr);
        t->init = tr_init;
        t->listen = tr_listen;
        t->connect = tr_connect;
        t->close = tr_close;
        return 0;
}

void sk_raft_tls_close(struct raft_uv_transport *t)
{
        rtls_free(t->impl);
        t->impl = NULL;
}

void sk_raft_tls_get_stats(const struct raft_uv_transport *t, sk_raft_tls_stats *out)
{
        const sk_rtls *tr = t->impl;
        *out = tr->stats;
}

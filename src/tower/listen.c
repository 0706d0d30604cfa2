/* LISTEN/NOTIFY for tower replicas (listen.h). The thread sleeps in poll() on the libpq
 * socket and a stop pipe; a lost connection is re-established every second until it
 * comes back, and then reported as a possible change, since notifications sent while it
 * was away are gone. */
#include "tower/listen.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"

#define IDLE_MS_DEFAULT 5000
#define RETRY_MS        1000

struct sk_tower_listener {
        PGconn *conn;
        sk_tower_listener_cbs cbs;
        int stop_pipe[2];
        pthread_t thread;
        bool started;
};

static void ignore_notice(void *arg, const char *message)
{
}

static int subscribe(PGconn *conn)
{
        PGresult *r = PQexec(conn, "LISTEN skerry_revision; LISTEN skerry_site");
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        return ok ? 0 : -EIO;
}

/* Waits up to ms for the connection's socket or the stop pipe. Returns 1 readable, 0
 * timeout, -1 stop. */
static int wait_for(sk_tower_listener *l, int fd, int ms)
{
        struct pollfd p[2] = {{.fd = l->stop_pipe[0], .events = POLLIN},
                              {.fd = fd, .events = POLLIN}};
        int n = poll(p, fd >= 0 ? 2 : 1, ms);
        if (n < 0 && errno == EINTR)
                return 0;
        if (p[0].revents)
                return -1;
        return n > 0 ? 1 : 0;
}

/* Handles every notification that arrived; returns whether a revision one was among them. */
static bool drain(sk_tower_listener *l)
{
        bool moved = false;
        PGnotify *n;
        while ((n = PQnotifies(l->conn))) {
                if (strcmp(n->relname, "skerry_site") == 0) {
                        char *end;
                        long long id = strtoll(n->extra, &end, 10);
                        if (end != n->extra && !*end && id > 0 && l->cbs.site)
                                l->cbs.site(l->cbs.ctx, (int64_t)id);
                } else {
                        moved = true;
                }
                PQfreemem(n);
        }
        return moved;
}

/* Reconnects until it works or stop is asked. Returns false on stop. */
static bool reconnect(sk_tower_listener *l)
{
        for (;;) {
                if (wait_for(l, -1, RETRY_MS) < 0)
                        return false;
                PQreset(l->conn);
                if (PQstatus(l->conn) == CONNECTION_OK && subscribe(l->conn) == 0) {
                        sk_info("store notifications: connected again");
                        return true;
                }
        }
}

static void *listener_main(void *arg)
{
        sk_tower_listener *l = arg;
        int idle = l->cbs.idle_ms > 0 ? l->cbs.idle_ms : IDLE_MS_DEFAULT;
        for (;;) {
                int w = wait_for(l, PQsocket(l->conn), idle);
                if (w < 0)
                        break;
                bool moved = w == 0; /* idle: look anyway */
                if (w > 0) {
                        if (!PQconsumeInput(l->conn) || PQstatus(l->conn) != CONNECTION_OK) {
                                sk_warn("store notifications: connection lost (%.*s); retrying",
                                        (int)strcspn(PQerrorMessage(l->conn), "\n"),
                                        PQerrorMessage(l->conn));
                                if (!reconnect(l))
                                        break;
                                moved = true;
                        }
                        moved |= drain(l);
                }
                if (moved && l->cbs.revision)
                        l->cbs.revision(l->cbs.ctx);
        }
        return NULL;
}

static void listener_free(sk_tower_listener *l)
{
        if (!l)
                return;
        if (l->conn)
                PQfinish(l->conn);
        for (int i = 0; i < 2; i++)
                if (l->stop_pipe[i] >= 0)
                        close(l->stop_pipe[i]);
        free(l);
}

int sk_tower_listener_start(const char *conninfo, const sk_tower_listener_cbs *cbs,
                            sk_tower_listener **out, sk_error **err)
{
        sk_tower_listener *l = calloc(1, sizeof(*l));
        if (!l)
                return sk_error_set(err, ENOMEM, "out of memory");
        l->cbs = *cbs;
        l->stop_pipe[0] = l->stop_pipe[1] = -1;
        if (pipe2(l->stop_pipe, O_CLOEXEC) < 0) {
                int e = errno;
                listener_free(l);
                return sk_error_set(err, e, "store notifications: pipe: %s", strerror(e));
        }
        l->conn = PQconnectdb(conninfo);
        if (!l->conn || PQstatus(l->conn) != CONNECTION_OK) {
                const char *host = l->conn ? PQhost(l->conn) : NULL;
                const char *port = l->conn ? PQport(l->conn) : NULL;
                const char *db = l->conn ? PQdb(l->conn) : NULL;
                const char *msg = l->conn ? PQerrorMessage(l->conn) : "out of memory";
                int r = sk_error_set(err, EIO, "store notifications: PostgreSQL %s%s%s%s%s: %.*s",
                                     db ? db : "", host && *host ? " on " : "", host ? host : "",
                                     port && *port ? ":" : "", port ? port : "",
                                     (int)strcspn(msg, "\n"), msg);
                listener_free(l);
                return r;
        }
        PQsetNoticeProcessor(l->conn, ignore_notice, NULL);
        if (subscribe(l->conn) < 0) {
                int r = sk_error_set(err, EIO, "store notifications: LISTEN failed: %.*s",
                                     (int)strcspn(PQerrorMessage(l->conn), "\n"),
                                     PQerrorMessage(l->conn));
                listener_free(l);
                return r;
        }
        if (pthread_create(&l->thread, NULL, listener_main, l) != 0) {
                listener_free(l);
                return sk_error_set(err, EAGAIN, "store notifications: cannot start the thread");
        }
        l->started = true;
        *out = l;
        return 0;
}

void sk_tower_listener_stop(sk_tower_listener *l)
{
        if (!l)
                return;
        if (l->started) {
                ssize_t n = write(l->stop_pipe[1], "x", 1);
                (void)n;
                pthread_join(l->thread, NULL);
        }
        listener_free(l);
}

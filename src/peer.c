/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * peer.c - the node-to-node HTTP client; see peer.h.
 */
#include "peer.h"
#include "auth.h"
#include "store.h"

#include "httpd.h"
#include "http_protocol.h"
#include "apr_network_io.h"
#include "apr_strings.h"
#include "apr_uri.h"

#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>

#define CS_IOBUF 65536

/* Idle connections are kept per process, at most CS_IDLE_MAX of them and
 * for at most CS_IDLE_TIME: well under httpd's default KeepAliveTimeout
 * (5 s), so the peer rarely closes one that is about to be reused. */
#define CS_IDLE_MAX  32
#define CS_IDLE_TIME apr_time_from_msec(2000)

typedef struct cs_conn_t cs_conn_t;
struct cs_conn_t {
    apr_pool_t *own;        /* unmanaged; holds the socket and the buffer */
    apr_pool_t *p;          /* the pool of the request being made */
    cs_conn_t *next;        /* in the idle list */
    const char *url;        /* the peer's base URL: the reuse key */
    apr_time_t idle_since;
    int reused;             /* taken from the idle list for this request */
    apr_socket_t *sock;
    const char *host;       /* host:port for the Host header */
    char *buf;              /* read buffer */
    apr_size_t len;         /* bytes in buf */
    apr_size_t pos;         /* consumed */
    /* the parsed response head */
    int status;
    apr_uint64_t version;
    int have_version;
    char sha256[CS_SHA256_HEX_LEN + 1];
    apr_int64_t length;     /* Content-Length, -1 if absent */
    int bad_header;
    int close;              /* the peer said Connection: close */
};

static pthread_mutex_t cs_idle_mutex = PTHREAD_MUTEX_INITIALIZER;
static cs_conn_t *cs_idle;
static int cs_idle_count;
static int cs_idle_closed;  /* the child is exiting: keep nothing */

static void cs_conn_destroy(cs_conn_t *c)
{
    apr_pool_destroy(c->own);   /* closes the socket */
}

/* A connection given up by its request (an error path, or the request
 * pool going away first). */
static apr_status_t cs_conn_cleanup(void *data)
{
    cs_conn_destroy(data);
    return APR_SUCCESS;
}

static apr_status_t cs_idle_close_all(void *data)
{
    cs_conn_t *c, *next;

    (void)data;
    pthread_mutex_lock(&cs_idle_mutex);
    c = cs_idle;
    cs_idle = NULL;
    cs_idle_count = 0;
    cs_idle_closed = 1;
    pthread_mutex_unlock(&cs_idle_mutex);
    for (; c; c = next) {
        next = c->next;
        cs_conn_destroy(c);
    }
    return APR_SUCCESS;
}

void cs_peer_child_init(apr_pool_t *pchild)
{
    apr_pool_cleanup_register(pchild, NULL, cs_idle_close_all,
                              apr_pool_cleanup_null);
}

/* Still open?  A peer that closed an idle connection makes it readable
 * (EOF); an open one has nothing to say between requests. */
static int cs_conn_alive(cs_conn_t *c)
{
    apr_os_sock_t fd;
    char b;
    ssize_t n;

    if (apr_os_sock_get(&fd, c->sock) != APR_SUCCESS) {
        return 0;
    }
    n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* An idle connection to base_url, or NULL. */
static cs_conn_t *cs_idle_take(const char *base_url)
{
    apr_time_t now = apr_time_now();
    cs_conn_t *c, **pp, *found = NULL, *stale = NULL;

    pthread_mutex_lock(&cs_idle_mutex);
    for (pp = &cs_idle; (c = *pp) != NULL;) {
        if (now - c->idle_since > CS_IDLE_TIME) {
            *pp = c->next;              /* too old: close it */
            c->next = stale;
            stale = c;
            cs_idle_count--;
            continue;
        }
        if (!found && strcmp(c->url, base_url) == 0) {
            *pp = c->next;
            cs_idle_count--;
            found = c;
            continue;
        }
        pp = &c->next;
    }
    pthread_mutex_unlock(&cs_idle_mutex);
    while (stale) {
        c = stale->next;
        cs_conn_destroy(stale);
        stale = c;
    }
    if (found && !cs_conn_alive(found)) {
        cs_conn_destroy(found);
        found = NULL;
    }
    return found;
}

/* The request is done with c: keep it for the next one when its answer
 * was read completely and the peer keeps the connection open. */
static void cs_conn_release(cs_conn_t *c, int reusable)
{
    apr_pool_cleanup_kill(c->p, c, cs_conn_cleanup);
    /* Nothing may follow the answer (a peer sending more than it
     * announced): such a connection is not kept. */
    if (reusable && !c->close && c->len == c->pos && cs_conn_alive(c)) {
        pthread_mutex_lock(&cs_idle_mutex);
        if (!cs_idle_closed && cs_idle_count < CS_IDLE_MAX) {
            c->idle_since = apr_time_now();
            c->next = cs_idle;
            cs_idle = c;
            cs_idle_count++;
            c = NULL;
        }
        pthread_mutex_unlock(&cs_idle_mutex);
    }
    if (c) {
        cs_conn_destroy(c);
    }
}

static apr_status_t cs_connect_new(const cs_peer_conf_t *pc,
                                   const char *base_url, cs_conn_t **cp)
{
    apr_pool_t *own;
    cs_conn_t *c;
    apr_uri_t uri;
    apr_sockaddr_t *sa;
    apr_status_t rv;

    rv = apr_pool_create_unmanaged_ex(&own, NULL, NULL);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    c = apr_pcalloc(own, sizeof(*c));
    c->own = own;
    if (apr_uri_parse(own, base_url, &uri) != APR_SUCCESS || !uri.hostname) {
        apr_pool_destroy(own);
        return APR_EINVAL;
    }
    if (!uri.port) {
        uri.port = 80;
    }
    rv = apr_sockaddr_info_get(&sa, uri.hostname, APR_UNSPEC, uri.port, 0,
                               own);
    if (rv != APR_SUCCESS) {
        apr_pool_destroy(own);
        return rv;
    }
    /* Walk the address list as proxy_util.c does. */
    for (; sa; sa = sa->next) {
        rv = apr_socket_create(&c->sock, sa->family, SOCK_STREAM,
                               APR_PROTO_TCP, own);
        if (rv != APR_SUCCESS) {
            continue;
        }
        apr_socket_opt_set(c->sock, APR_TCP_NODELAY, 1);
        apr_socket_timeout_set(c->sock, pc->timeout);
        rv = apr_socket_connect(c->sock, sa);
        if (rv == APR_SUCCESS) {
            break;
        }
        apr_socket_close(c->sock);
        c->sock = NULL;
    }
    if (!c->sock) {
        apr_pool_destroy(own);
        return rv != APR_SUCCESS ? rv : APR_ECONNREFUSED;
    }
    c->url = apr_pstrdup(own, base_url);
    c->host = apr_psprintf(own, "%s:%u", uri.hostname, uri.port);
    c->buf = apr_palloc(own, CS_IOBUF);
    *cp = c;
    return APR_SUCCESS;
}

/* A connection to base_url for one request made with pool p: an idle one
 * if there is one (unless fresh is set), else a new one.  It belongs to p
 * until cs_conn_release(). */
static apr_status_t cs_connect(apr_pool_t *p, const cs_peer_conf_t *pc,
                               const char *base_url, int fresh,
                               cs_conn_t **cp)
{
    cs_conn_t *c = fresh ? NULL : cs_idle_take(base_url);
    apr_status_t rv;

    if (c) {
        c->reused = 1;
        apr_socket_timeout_set(c->sock, pc->timeout);
    }
    else if ((rv = cs_connect_new(pc, base_url, &c)) != APR_SUCCESS) {
        return rv;
    }
    else {
        c->reused = 0;
        CS_COUNTER_ADD(pc->counters, peer_connects, 1);
    }
    CS_COUNTER_ADD(pc->counters, peer_requests, 1);
    c->p = p;
    c->len = c->pos = 0;
    c->status = 0;
    c->version = 0;
    c->have_version = 0;
    c->sha256[0] = '\0';
    c->length = -1;
    c->bad_header = 0;
    c->close = 0;
    apr_pool_cleanup_register(p, c, cs_conn_cleanup, apr_pool_cleanup_null);
    *cp = c;
    return APR_SUCCESS;
}

/* A reused connection that the peer closed before answering anything
 * (its keep-alive timeout raced this request): worth one fresh try. */
static int cs_conn_went_away(cs_conn_t *c, apr_status_t rv)
{
    return c->reused && c->len == 0
           && (APR_STATUS_IS_EOF(rv) || APR_STATUS_IS_ECONNRESET(rv)
               || APR_STATUS_IS_ECONNABORTED(rv) || rv == APR_FROM_OS_ERROR(EPIPE));
}

static apr_status_t cs_send_all(cs_conn_t *c, const char *data,
                                apr_size_t len)
{
    while (len > 0) {
        apr_size_t n = len;
        apr_status_t rv = apr_socket_send(c->sock, data, &n);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        data += n;
        len -= n;
    }
    return APR_SUCCESS;
}

static apr_status_t cs_send_head(cs_conn_t *c, const cs_peer_conf_t *pc,
                                 const char *method, const char *key,
                                 apr_uint64_t version, const char *extra)
{
    const char *head = apr_psprintf(
        c->p, "%s %s HTTP/1.1\r\nHost: %s\r\n"
        CS_VERSION_HEADER ": %" APR_UINT64_T_FMT "\r\n"
        CS_AUTH_HEADER ": %s\r\n%s\r\n",
        method, ap_escape_uri(c->p, key), c->host, version,
        cs_auth_value(c->p, pc->node, pc->secret, method, key, version,
                      apr_time_now()
                      + (pc->counters
                         ? __atomic_load_n(&pc->counters->clock_skew,
                                           __ATOMIC_RELAXED) : 0)),
        extra ? extra : "");

    return cs_send_all(c, head, strlen(head));
}

static int cs_on_header(void *baton, const char *name, size_t nlen,
                        const char *value, size_t vlen)
{
    cs_conn_t *c = baton;
    uint64_t n;

    if (nlen == sizeof(CS_VERSION_HEADER) - 1
        && strncasecmp(name, CS_VERSION_HEADER, nlen) == 0) {
        if (c->have_version || cs_parse_u64(value, vlen, &n) != 0) {
            c->bad_header = 1;
            return -1;
        }
        c->version = n;
        c->have_version = 1;
    }
    else if (nlen == sizeof(CS_SHA256_HEADER) - 1
             && strncasecmp(name, CS_SHA256_HEADER, nlen) == 0) {
        if (c->sha256[0] || !cs_is_sha256_hex(value, vlen)) {
            c->bad_header = 1;
            return -1;
        }
        memcpy(c->sha256, value, vlen);
        c->sha256[vlen] = '\0';
    }
    else if (nlen == 14 && strncasecmp(name, "Content-Length", 14) == 0) {
        if (c->length >= 0 || cs_parse_u64(value, vlen, &n) != 0
            || n > (uint64_t)APR_INT64_MAX) {
            c->bad_header = 1;
            return -1;
        }
        c->length = (apr_int64_t)n;
    }
    else if (nlen == 17 && strncasecmp(name, "Transfer-Encoding", 17) == 0) {
        c->bad_header = 1;      /* peers always send a Content-Length */
        return -1;
    }
    else if (nlen == 10 && strncasecmp(name, "Connection", 10) == 0) {
        size_t i;
        for (i = 0; i + 5 <= vlen; i++) {
            if (strncasecmp(value + i, "close", 5) == 0) {
                c->close = 1;
            }
        }
    }
    return 0;
}

/* Read and parse the response head; body bytes already read stay in
 * c->buf[c->pos..c->len). */
static apr_status_t cs_read_head(cs_conn_t *c, const char **why)
{
    for (;;) {
        long n;
        apr_size_t got;
        apr_status_t rv;

        n = cs_http_parse_head(c->buf, c->len, &c->status, cs_on_header, c);
        if (n > 0) {
            c->pos = (apr_size_t)n;
            if (c->len >= 9 && memcmp(c->buf, "HTTP/1.0 ", 9) == 0) {
                c->close = 1;   /* no keep-alive without asking for it */
            }
            return APR_SUCCESS;
        }
        if (n < 0 || c->len >= CS_HTTP_HEAD_MAX) {
            *why = c->bad_header ? "malformed X-ClusterStorage/"
                   "Content-Length header" : "malformed response head";
            return APR_EGENERAL;
        }
        got = CS_HTTP_HEAD_MAX - c->len;
        rv = apr_socket_recv(c->sock, c->buf + c->len, &got);
        c->len += got;
        if (rv != APR_SUCCESS && !(APR_STATUS_IS_EOF(rv) && got > 0)) {
            *why = APR_STATUS_IS_TIMEUP(rv) ? "timed out waiting for the "
                   "answer" : "connection closed before the answer";
            return rv;
        }
    }
}

/* Read and drop a short body (an error page), so that the connection can
 * serve the next request; 0 when that is not possible. */
static int cs_skip_body(cs_conn_t *c)
{
    apr_size_t have = c->len - c->pos;

    if (c->status == HTTP_NO_CONTENT || c->status == HTTP_NOT_MODIFIED) {
        /* No body by definition; one announced anyway is not waited for,
         * and the connection is not trusted with another request. */
        if (c->length > 0) {
            return 0;
        }
        c->length = 0;
    }
    if (c->length < 0 || c->length > CS_IOBUF) {
        return 0;
    }
    while ((apr_int64_t)have < c->length) {
        apr_size_t n = (apr_size_t)c->length - have;
        if (apr_socket_recv(c->sock, c->buf, &n) != APR_SUCCESS) {
            return 0;
        }
        have += n;
    }
    if ((apr_int64_t)have != c->length) {
        return 0;               /* more than announced */
    }
    c->len = c->pos = 0;
    return 1;
}

/* One request/answer on a connection to base_url.  A reused connection
 * that the peer closed before answering anything (its keep-alive timeout
 * raced this request) is worth exactly one more try on a fresh one; a
 * peer that answered, or timed out, is not asked twice. */
typedef apr_status_t (*cs_exchange_fn)(cs_conn_t *c, void *baton);

/* before (if not NULL) runs ahead of each connection attempt. */
static apr_status_t cs_exchange(apr_pool_t *p, const cs_peer_conf_t *pc,
                                const char *base_url,
                                void (*before)(void *baton),
                                cs_exchange_fn fn, void *baton)
{
    cs_conn_t *c;
    apr_status_t rv = APR_SUCCESS;
    int attempt;

    for (attempt = 0; attempt < 2; attempt++) {
        if (before) {
            before(baton);
        }
        rv = cs_connect(p, pc, base_url, attempt > 0, &c);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        rv = fn(c, baton);
        if (rv == APR_SUCCESS || !cs_conn_went_away(c, rv)) {
            break;
        }
    }
    return rv;
}

typedef struct {
    const cs_peer_conf_t *pc;
    const char *key;
    const cs_entry_t *e;
    struct cs_tmp_t *tmp;
    cs_fetch_tee_fn tee;
    void *baton;
    apr_uint64_t got;       /* body bytes written to tmp */
    const char **why;
    cs_fetch_cause_t *cause;
} cs_fetch_ctx;

/* n more body bytes: into the temp file, then to the tee. */
static apr_status_t cs_fetch_keep(cs_fetch_ctx *x, const char *buf,
                                  apr_size_t n)
{
    apr_status_t rv = cs_store_tmp_write(x->tmp, buf, n);

    if (rv != APR_SUCCESS) {
        *x->why = "cannot write the temp file";
        *x->cause = CS_FETCH_LOCAL;
        return rv;
    }
    if (x->tee) {
        x->tee(x->baton, buf, n, x->got);
    }
    x->got += n;
    return APR_SUCCESS;
}

static void cs_fetch_connecting(void *baton)
{
    cs_fetch_ctx *x = baton;

    *x->why = "cannot connect";
    *x->cause = CS_FETCH_CONNECT;
}

static apr_status_t cs_fetch_exchange(cs_conn_t *c, void *baton)
{
    cs_fetch_ctx *x = baton;
    const cs_entry_t *e = x->e;
    apr_status_t rv;
    apr_int64_t left;
    apr_uint64_t size;
    char sha[CS_SHA256_HEX_LEN + 1];

    *x->why = "cannot send the request";
    rv = cs_send_head(c, x->pc, "GET", x->key, e->version,
                      apr_psprintf(c->p, CS_EXPECT_HEADER ": %" APR_UINT64_T_FMT
                                   " %" APR_INT64_T_FMT "\r\n", e->size,
                                   (apr_int64_t)e->mtime));
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *x->cause = CS_FETCH_ANSWER;
    if ((rv = cs_read_head(c, x->why)) != APR_SUCCESS) {
        return rv;
    }
    if (c->status != HTTP_OK) {
        *x->why = apr_psprintf(c->p, "answered %d", c->status);
        return APR_EGENERAL;
    }
    if (!c->have_version || c->version != e->version) {
        *x->why = "answered with another version";
        return APR_EGENERAL;
    }
    if (strcmp(c->sha256, e->sha256) != 0) {
        *x->why = "announced another SHA-256";
        return APR_EGENERAL;
    }
    if (c->length < 0 || (apr_uint64_t)c->length != e->size) {
        *x->why = "announced another length";
        return APR_EGENERAL;
    }
    left = c->length;
    *x->cause = CS_FETCH_BODY;
    /* Body bytes that came with the head. */
    if (c->len > c->pos) {
        apr_size_t n = c->len - c->pos;
        if ((apr_int64_t)n > left) {
            n = (apr_size_t)left;
        }
        if ((rv = cs_fetch_keep(x, c->buf + c->pos, n)) != APR_SUCCESS) {
            return rv;
        }
        c->pos += n;
        left -= (apr_int64_t)n;
    }
    while (left > 0) {
        apr_size_t n = CS_IOBUF;
        if ((apr_int64_t)n > left) {
            n = (apr_size_t)left;
        }
        rv = apr_socket_recv(c->sock, c->buf, &n);
        if (n > 0) {
            apr_status_t wrv = cs_fetch_keep(x, c->buf, n);
            if (wrv != APR_SUCCESS) {
                return wrv;
            }
            left -= (apr_int64_t)n;
        }
        if (rv != APR_SUCCESS && left > 0) {
            *x->why = APR_STATUS_IS_TIMEUP(rv) ? "timed out in the body"
                      : "body cut short";
            return APR_STATUS_IS_EOF(rv) ? APR_EGENERAL : rv;
        }
    }
    cs_store_tmp_digest(x->tmp, &size, sha);
    if (size != e->size || strcmp(sha, e->sha256) != 0) {
        *x->cause = CS_FETCH_CHECKSUM;
        *x->why = "sent bytes whose SHA-256 does not match the registry";
        return APR_EGENERAL;
    }
    /* Everything announced was read, nothing more: reusable. */
    cs_conn_release(c, 1);
    return APR_SUCCESS;
}

apr_status_t cs_peer_fetch(apr_pool_t *p, const cs_peer_conf_t *pc,
                           const char *base_url, const char *key,
                           const cs_entry_t *e, struct cs_tmp_t *tmp,
                           cs_fetch_tee_fn tee, void *baton,
                           const char **why, cs_fetch_cause_t *cause)
{
    cs_fetch_ctx x;

    x.tee = tee;
    x.baton = baton;
    x.got = 0;
    x.pc = pc;
    x.key = key;
    x.e = e;
    x.tmp = tmp;
    x.why = why;
    x.cause = cause;
    /* A retry happens only when nothing was received, so nothing was
     * written to tmp. */
    return cs_exchange(p, pc, base_url, cs_fetch_connecting,
                       cs_fetch_exchange, &x);
}

typedef struct {
    const cs_peer_conf_t *pc;
    const char *method;
    const char *key;
    apr_uint64_t version;
    const cs_entry_t *e;    /* a push: the version whose bytes f holds */
    apr_file_t *f;
    const char *body;       /* or a body in memory */
    apr_size_t body_len;
    int *status;
} cs_status_ctx;

/* The request of x on c: its head, then its body (from x->f or memory). */
static apr_status_t cs_status_send(cs_conn_t *c, cs_status_ctx *x)
{
    const char *extra = NULL;
    apr_status_t rv;
    apr_uint64_t left = 0;

    if (x->f) {
        apr_off_t off = 0;
        rv = apr_file_seek(x->f, APR_SET, &off);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        left = x->e->size;
        extra = apr_psprintf(c->p, CS_SHA256_HEADER ": %s\r\n"
                             "Content-Length: %" APR_UINT64_T_FMT "\r\n",
                             x->e->sha256, x->e->size);
    }
    else if (x->body) {
        extra = apr_psprintf(c->p, "Content-Length: %" APR_SIZE_T_FMT "\r\n",
                             x->body_len);
    }
    rv = cs_send_head(c, x->pc, x->method, x->key, x->version, extra);
    if (rv == APR_SUCCESS && x->body) {
        rv = cs_send_all(c, x->body, x->body_len);
    }
    while (rv == APR_SUCCESS && left > 0) {
        apr_size_t n = CS_IOBUF;
        if (n > left) {
            n = (apr_size_t)left;
        }
        rv = apr_file_read(x->f, c->buf, &n);
        if (rv == APR_SUCCESS) {
            rv = cs_send_all(c, c->buf, n);
            left -= n;
        }
    }
    return rv;
}

/* The answer to x's request on c, sent with the result sent: its status
 * in *x->status, and c kept for reuse when it can be. */
static apr_status_t cs_status_read(cs_conn_t *c, cs_status_ctx *x,
                                   apr_status_t sent)
{
    const char *why;
    apr_status_t hrv;

    if (sent != APR_SUCCESS && !x->f) {
        return sent;
    }
    /* Even if sending a body failed, the peer may have answered (413,
     * 409...). */
    c->len = 0;
    if ((hrv = cs_read_head(c, &why)) == APR_SUCCESS) {
        *x->status = c->status;
        cs_conn_release(c, sent == APR_SUCCESS && cs_skip_body(c));
        return APR_SUCCESS;
    }
    return sent != APR_SUCCESS ? sent : hrv;
}

/* A request (a push's body streamed from x->f) whose answer is only a
 * status. */
static apr_status_t cs_status_exchange(cs_conn_t *c, void *baton)
{
    cs_status_ctx *x = baton;

    return cs_status_read(c, x, cs_status_send(c, x));
}

static apr_status_t cs_peer_status_only(apr_pool_t *p,
                                        const cs_peer_conf_t *pc,
                                        const char *base_url,
                                        const char *method, const char *key,
                                        apr_uint64_t version, int *status)
{
    cs_status_ctx x;

    memset(&x, 0, sizeof(x));
    x.pc = pc;
    x.method = method;
    x.key = key;
    x.version = version;
    x.status = status;
    *status = 0;
    return cs_exchange(p, pc, base_url, NULL, cs_status_exchange, &x);
}

apr_status_t cs_peer_push(apr_pool_t *p, const cs_peer_conf_t *pc,
                          const char *base_url, const char *key,
                          const cs_entry_t *e, const char *path,
                          int *status)
{
    cs_status_ctx x;
    apr_status_t rv;

    *status = 0;
    memset(&x, 0, sizeof(x));
    rv = apr_file_open(&x.f, path, APR_FOPEN_READ | APR_FOPEN_BINARY, 0, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    x.pc = pc;
    x.method = "PUT";
    x.key = key;
    x.version = e->version;
    x.e = e;
    x.status = status;
    return cs_exchange(p, pc, base_url, NULL, cs_status_exchange, &x);
}

apr_status_t cs_peer_delete(apr_pool_t *p, const cs_peer_conf_t *pc,
                            const char *base_url, const char *key,
                            apr_uint64_t version, int *status)
{
    return cs_peer_status_only(p, pc, base_url, "DELETE", key, version,
                               status);
}

void cs_peer_purge_all(apr_pool_t *p, const cs_peer_conf_t *pc, int n,
                       const char *const *urls, const char *key,
                       apr_uint64_t version, const char *keys,
                       apr_size_t len, int *statuses)
{
    int m = n > 0 ? n : 1;
    cs_status_ctx *x = apr_pcalloc(p, sizeof(*x) * m);
    cs_conn_t **c = apr_pcalloc(p, sizeof(*c) * m);
    apr_status_t *sent = apr_pcalloc(p, sizeof(*sent) * m);
    apr_time_t deadline = apr_time_now() + pc->timeout;
    /* PURGEKEYS's MAC covers its list (a digest, made once for all). */
    apr_uint64_t v = keys ? cs_auth_body_digest(keys, len) : version;
    cs_peer_conf_t late = *pc;
    int i;

    /* Every request goes out first, each connect bounded by the deadline
     * too; connecting to a peer that is up but hung succeeds (its kernel
     * accepts), and a PURGE fits in the socket's buffer. */
    for (i = 0; i < n; i++) {
        x[i].pc = pc;
        x[i].key = key;
        x[i].status = &statuses[i];
        statuses[i] = 0;
        x[i].method = keys ? "PURGEKEYS" : "PURGE";
        x[i].version = v;
        x[i].body = keys;
        x[i].body_len = keys ? len : 0;
        late.timeout = deadline - apr_time_now();
        if (late.timeout < apr_time_from_msec(1)) {
            late.timeout = apr_time_from_msec(1);
        }
        sent[i] = cs_connect(p, &late, urls[i], 0, &c[i]);
        if (sent[i] == APR_SUCCESS) {
            sent[i] = cs_status_send(c[i], &x[i]);
        }
        else {
            c[i] = NULL;
        }
    }
    /* Then the answers, each waited for until the one deadline at most. */
    for (i = 0; i < n; i++) {
        apr_interval_time_t left = deadline - apr_time_now();
        apr_status_t rv;

        if (!c[i]) {
            continue;
        }
        if (left < apr_time_from_msec(1)) {
            left = apr_time_from_msec(1);
        }
        apr_socket_timeout_set(c[i]->sock, left);
        rv = cs_status_read(c[i], &x[i], sent[i]);
        if (rv != APR_SUCCESS && cs_conn_went_away(c[i], rv)) {
            /* The peer closed the reused connection before it read the
             * request: once more on a new one, in the time left. */
            late.timeout = left;
            cs_exchange(p, &late, urls[i], NULL, cs_status_exchange, &x[i]);
        }
    }
}

apr_status_t cs_peer_moved(apr_pool_t *p, const cs_peer_conf_t *pc,
                           const char *base_url, const char *key,
                           apr_uint64_t seq, int *status)
{
    return cs_peer_status_only(p, pc, base_url, "MOVED", key, seq, status);
}

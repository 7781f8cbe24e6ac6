/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * mcache.c - the registry's memcached front: signed entries; see mcache.h.
 */
#include "mcache.h"
#include "crypto.h"

#include "apr_network_io.h"
#include "apr_strings.h"

#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>

#define CS_MC_MAC_LEN   32

void cs_mc_key(const char *key, char out[CS_MC_KEY_LEN + 1])
{
    memcpy(out, "cs1:", 4);
    cs_sha256_hex(key, strlen(key), out + 4);
}

/* Hex HMAC-SHA256 (first CS_MC_MAC_LEN digits) binding value to key. */
static void cs_mc_mac(const cs_server_conf *sc, const char *key,
                      const char *val, apr_size_t vlen,
                      char out[CS_MC_MAC_LEN + 1])
{
    apr_size_t klen = strlen(key);
    char buf[CS_KEY_MAX + 1 + CS_ENTRY_MAX_LEN + 1];
    char hex[CS_SHA256_HEX_LEN + 1];

    if (klen > CS_KEY_MAX || vlen > CS_ENTRY_MAX_LEN) {
        memset(out, 'x', CS_MC_MAC_LEN);    /* never matches a hex MAC */
        out[CS_MC_MAC_LEN] = '\0';
        return;
    }
    memcpy(buf, key, klen);
    buf[klen] = '\n';
    memcpy(buf + klen + 1, val, vlen);
    cs_hmac_hex(sc->secret, buf, klen + 1 + vlen, hex);
    memcpy(out, hex, CS_MC_MAC_LEN);
    out[CS_MC_MAC_LEN] = '\0';
}

static int cs_mc_value(const cs_server_conf *sc, const char *key,
                       const cs_entry_t *e, char *out, apr_size_t outlen)
{
    int n = cs_entry_encode(e, out, outlen);

    if (n < 0 || (apr_size_t)n + 2 + CS_MC_MAC_LEN > outlen) {
        return -1;
    }
    out[n] = ' ';
    cs_mc_mac(sc, key, out, (apr_size_t)n, out + n + 1);
    return n + 1 + CS_MC_MAC_LEN;
}

/* 0 and *e on a valid, authentic value; -1 otherwise. */
static int cs_mc_decode(const cs_server_conf *sc, const char *key,
                        const char *val, apr_size_t len, cs_entry_t *e)
{
    char mac[CS_MC_MAC_LEN + 1];
    apr_size_t body;

    if (len < CS_MC_MAC_LEN + 2 || len > CS_ENTRY_MAX_LEN + 1 + CS_MC_MAC_LEN
        || val[len - CS_MC_MAC_LEN - 1] != ' ') {
        return -1;
    }
    body = len - CS_MC_MAC_LEN - 1;
    cs_mc_mac(sc, key, val, body, mac);
    if (!cs_mem_equal(mac, val + body + 1, CS_MC_MAC_LEN)) {
        return -1;
    }
    return cs_entry_decode(val, body, e);
}

/* ------------------------------------------------------------------ */
/* The client: memcached's text protocol over kept-alive connections,  */
/* every connect, send and receive bounded by CS_MC_TIMEOUT            */
/* ------------------------------------------------------------------ */

/* Answers are one line, or one value of at most an entry (all short). */
#define CS_MC_BUF 1024

typedef struct cs_mc_conn_t cs_mc_conn_t;
struct cs_mc_conn_t {
    apr_pool_t *own;            /* unmanaged: the socket lives in it */
    apr_socket_t *sock;
    cs_mc_conn_t *next;         /* in the idle list */
    char buf[CS_MC_BUF];
    apr_size_t len;
};

typedef struct {
    const char *spec;           /* host:port, for the log */
    apr_sockaddr_t *sa;
    pthread_mutex_t mutex;      /* guards idle */
    cs_mc_conn_t *idle;
    int nidle;
    apr_int64_t down_until;     /* apr_time_t; atomic */
} cs_mc_server_t;

struct cs_mc_t {
    int n;
    cs_mc_server_t *servers;
    int closed;                 /* the child exits: keep nothing */
};

static void cs_mc_conn_close(cs_mc_conn_t *c)
{
    apr_pool_destroy(c->own);   /* closes the socket */
}

static apr_status_t cs_mc_close_all(void *data)
{
    struct cs_mc_t *mc = data;
    int i;

    for (i = 0; i < mc->n; i++) {
        cs_mc_server_t *ms = &mc->servers[i];
        cs_mc_conn_t *c, *next;
        pthread_mutex_lock(&ms->mutex);
        c = ms->idle;
        ms->idle = NULL;
        ms->nidle = 0;
        mc->closed = 1;
        pthread_mutex_unlock(&ms->mutex);
        for (; c; c = next) {
            next = c->next;
            cs_mc_conn_close(c);
        }
    }
    return APR_SUCCESS;
}

/* An idle connection (*reused 1) or a new one. */
static apr_status_t cs_mc_conn_get(cs_mc_server_t *ms, int fresh,
                                   cs_mc_conn_t **out, int *reused)
{
    cs_mc_conn_t *c = NULL;
    apr_pool_t *own;
    apr_status_t rv;

    if (!fresh) {
        pthread_mutex_lock(&ms->mutex);
        if ((c = ms->idle) != NULL) {
            ms->idle = c->next;
            ms->nidle--;
        }
        pthread_mutex_unlock(&ms->mutex);
    }
    *reused = c != NULL;
    if (!c) {
        if ((rv = apr_pool_create_unmanaged_ex(&own, NULL, NULL))
            != APR_SUCCESS) {
            return rv;
        }
        c = apr_pcalloc(own, sizeof(*c));
        c->own = own;
        rv = apr_socket_create(&c->sock, ms->sa->family, SOCK_STREAM,
                               APR_PROTO_TCP, own);
        if (rv == APR_SUCCESS) {
            apr_socket_opt_set(c->sock, APR_TCP_NODELAY, 1);
            apr_socket_timeout_set(c->sock, CS_MC_TIMEOUT);
            rv = apr_socket_connect(c->sock, ms->sa);
        }
        if (rv != APR_SUCCESS) {
            apr_pool_destroy(own);
            return rv;
        }
    }
    c->len = 0;
    *out = c;
    return APR_SUCCESS;
}

static void cs_mc_conn_put(struct cs_mc_t *mc, cs_mc_server_t *ms,
                           cs_mc_conn_t *c, int reusable)
{
    if (reusable) {
        pthread_mutex_lock(&ms->mutex);
        if (!mc->closed && ms->nidle < 64) {
            c->next = ms->idle;
            ms->idle = c;
            ms->nidle++;
            c = NULL;
        }
        pthread_mutex_unlock(&ms->mutex);
    }
    if (c) {
        cs_mc_conn_close(c);
    }
}

/* The length of the complete answer at the start of c->buf, 0 while it
 * is incomplete, -1 if it is not one memcached sends.  *value and *vlen: a
 * get's value (vlen -1: none). */
static long cs_mc_answer(cs_mc_conn_t *c, const char **value, long *vlen)
{
    const char *b = c->buf, *eol;
    apr_size_t n = c->len;

    *vlen = -1;
    eol = memchr(b, '\n', n);
    if (!eol) {
        return n >= sizeof(c->buf) ? -1 : 0;
    }
    if (n >= 6 && memcmp(b, "VALUE ", 6) == 0) {
        /* VALUE <key> <flags> <bytes>\r\n<data>\r\nEND\r\n */
        const char *sp = eol;
        apr_uint64_t bytes;
        long head = (long)(eol - b) + 1;
        while (sp > b && sp[-1] != ' ') {
            sp--;
        }
        if (cs_parse_u64(sp, (size_t)(eol - sp - (eol[-1] == '\r')),
                         &bytes) != 0
            || bytes > CS_MC_BUF) {
            return -1;
        }
        if (n < (apr_size_t)head + bytes + 7) {
            return (apr_size_t)head + bytes + 7 > sizeof(c->buf) ? -1 : 0;
        }
        if (memcmp(b + head + bytes, "\r\nEND\r\n", 7) != 0) {
            return -1;
        }
        *value = b + head;
        *vlen = (long)bytes;
        return head + (long)bytes + 7;
    }
    return (long)(eol - b) + 1;
}

/* The server of mckey: its hex SHA-256 (after "cs1:") picks one. */
static int cs_mc_server_of(const struct cs_mc_t *mc, const char *mckey)
{
    char six[7];

    memcpy(six, mckey + 4, 6);
    six[6] = '\0';
    return (int)(strtoul(six, NULL, 16) % (unsigned long)mc->n);
}

/* One request and its answer through the server of mckey; *line: the
 * answer's first line (NUL-terminated, without CRLF), *value and *vlen
 * get's value.  A server that did not answer within the timeout counts
 * as down for CS_MC_DOWN_TIME: this process asks the database meanwhile
 * (SPEC promise 9). */
static apr_status_t cs_mc_call(request_rec *r, struct cs_mc_t *mc,
                               int writer, const char *mckey,
                               const char *req, apr_size_t reqlen,
                               char **line, char **value, long *vlen)
{
    cs_mc_server_t *ms = &mc->servers[cs_mc_server_of(mc, mckey)];
    apr_time_t now = apr_time_now();
    apr_status_t rv = APR_SUCCESS;
    int attempt, reused;

    /* Readers leave a server that did not answer alone for a while; a
     * writer always tries (bounded), so that it leaves no old entry
     * behind in a memcached that answers again. */
    if (!writer && now < __atomic_load_n(&ms->down_until, __ATOMIC_RELAXED)) {
        return APR_EAGAIN;
    }
    for (attempt = 0; attempt < 2; attempt++) {
        cs_mc_conn_t *c;
        const char *val = NULL;
        long n = 0;
        apr_size_t sent = 0;

        if ((rv = cs_mc_conn_get(ms, attempt > 0, &c, &reused))
            != APR_SUCCESS) {
            break;
        }
        while (rv == APR_SUCCESS && sent < reqlen) {
            apr_size_t k = reqlen - sent;
            rv = apr_socket_send(c->sock, req + sent, &k);
            sent += k;
        }
        while (rv == APR_SUCCESS && (n = cs_mc_answer(c, &val, vlen)) == 0) {
            apr_size_t k = sizeof(c->buf) - c->len;
            rv = apr_socket_recv(c->sock, c->buf + c->len, &k);
            c->len += k;
        }
        if (rv == APR_SUCCESS && n > 0) {
            char *l = apr_pstrmemdup(r->pool, c->buf, (apr_size_t)n);
            l[strcspn(l, "\r\n")] = '\0';
            *line = l;
            *value = *vlen >= 0 ? apr_pstrmemdup(r->pool, val,
                                                 (apr_size_t)*vlen) : NULL;
            cs_mc_conn_put(mc, ms, c, (apr_size_t)n == c->len);
            return APR_SUCCESS;
        }
        cs_mc_conn_put(mc, ms, c, 0);
        if (rv == APR_SUCCESS) {
            rv = APR_EGENERAL;  /* an answer memcached does not send */
            break;
        }
        /* A kept connection the server closed (it restarted) is worth
         * one fresh try; a server that did not answer is not. */
        if (!reused || APR_STATUS_IS_TIMEUP(rv)) {
            break;
        }
    }
    /* (A refused connection costs nothing: it is simply tried again.) */
    if (APR_STATUS_IS_TIMEUP(rv)) {
        __atomic_store_n(&ms->down_until, apr_time_now() + CS_MC_DOWN_TIME,
                         __ATOMIC_RELAXED);
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, CSLOG(117)
                      "memcached %s did not answer in time; readers leave "
                      "it alone for %d s (the database answers meanwhile)",
                      ms->spec, (int)apr_time_sec(CS_MC_DOWN_TIME));
    }
    return rv;
}

/* add/set of mckey: APR_SUCCESS (stored), APR_EEXIST (add: there). */
static apr_status_t cs_mc_store(request_rec *r, struct cs_mc_t *mc,
                                const char *cmd, const char *mckey,
                                const char *val, apr_size_t n, int ttl)
{
    char *line, *value;
    long vlen;
    const char *req = apr_psprintf(r->pool, "%s %s 0 %d %" APR_SIZE_T_FMT
                                   "\r\n%.*s\r\n", cmd, mckey, ttl, n,
                                   (int)n, val);
    apr_status_t rv = cs_mc_call(r, mc, strcmp(cmd, "set") == 0, mckey, req,
                                 strlen(req), &line, &value, &vlen);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    return strcmp(line, "STORED") == 0 ? APR_SUCCESS
           : strcmp(line, "NOT_STORED") == 0 ? APR_EEXIST : APR_EGENERAL;
}

/* delete of mckey: APR_SUCCESS, APR_NOTFOUND, or why it failed. */
static apr_status_t cs_mc_delete(request_rec *r, struct cs_mc_t *mc,
                                 const char *mckey)
{
    char *line, *value;
    long vlen;
    const char *req = apr_pstrcat(r->pool, "delete ", mckey, "\r\n", NULL);
    apr_status_t rv = cs_mc_call(r, mc, 1, mckey, req, strlen(req), &line,
                                 &value, &vlen);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    return strcmp(line, "DELETED") == 0 ? APR_SUCCESS
           : strcmp(line, "NOT_FOUND") == 0 ? APR_NOTFOUND : APR_EGENERAL;
}

/* Reader: populate without overwriting what a writer may have set. */
void cs_mc_add(request_rec *r, const cs_server_conf *sc,
                      const char *key, const char *mckey,
                      const cs_entry_t *e)
{
    char val[CS_ENTRY_MAX_LEN + CS_MC_MAC_LEN + 2];
    int n;
    apr_status_t rv;

    if (!sc->mc || (n = cs_mc_value(sc, key, e, val, sizeof(val))) < 0) {
        return;
    }
    rv = cs_mc_store(r, sc->mc, "add", mckey, val, (apr_size_t)n,
                     sc->cache_ttl);
    if (rv != APR_SUCCESS && rv != APR_EEXIST) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r, CSLOG(110)
                      "memcached add failed for %s", key);
    }
}

/* Writer, after the commit: overwrite; if that fails, drop the entry. */
apr_status_t cs_mc_set(request_rec *r, const cs_server_conf *sc,
                       const char *key, const cs_entry_t *e)
{
    char mckey[CS_MC_KEY_LEN + 1];
    char val[CS_ENTRY_MAX_LEN + CS_MC_MAC_LEN + 2];
    int n;
    apr_status_t rv, rv2;

    if (!sc->mc) {
        return APR_SUCCESS;
    }
    cs_mc_key(key, mckey);
    n = cs_mc_value(sc, key, e, val, sizeof(val));
    if (n < 0) {
        return APR_EGENERAL;    /* cannot happen: entries are short */
    }
    /* (A kept connection from before a memcached restart is retried on a
     * fresh one inside cs_mc_call.) */
    rv = cs_mc_store(r, sc->mc, "set", mckey, val, (apr_size_t)n,
                     sc->cache_ttl);
    if (rv != APR_SUCCESS) {
        rv2 = cs_mc_delete(r, sc->mc, mckey);
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, CSLOG(111)
                      "memcached set failed for %s (delete: %s)", key,
                      rv2 == APR_SUCCESS ? "done"
                      : rv2 == APR_NOTFOUND ? "not there" : "failed too");
    }
    return rv;
}

/* Writes of many keys (a MOVE): each server gets its sets pipelined,
 * CS_MC_BATCH at a time without replies, then a "version" that answers
 * once it has taken all of them: one round trip per batch. */
#define CS_MC_BATCH 256

apr_status_t cs_mc_set_many(request_rec *r, const cs_server_conf *sc,
                            int n, const char *const *keys,
                            const cs_entry_t *entries)
{
    struct cs_mc_t *mc = sc->mc;
    apr_array_header_t **pending;
    apr_pool_t *sub;
    apr_status_t rv = APR_SUCCESS;
    int i, si;

    if (!mc) {
        return APR_SUCCESS;
    }
    apr_pool_create(&sub, r->pool);
    pending = apr_pcalloc(sub, mc->n * sizeof(*pending));
    for (si = 0; si < mc->n; si++) {
        pending[si] = apr_array_make(sub, CS_MC_BATCH + 1,
                                     sizeof(const char *));
    }
    for (i = 0; rv == APR_SUCCESS && i <= n; i++) {
        for (si = 0; si < mc->n && rv == APR_SUCCESS; si++) {
            apr_array_header_t *a = pending[si];
            const char *req;
            char *line, *value;
            long vlen;
            /* A full batch, or the end: send what this server has. */
            if (a->nelts == 0 || (i < n && a->nelts < CS_MC_BATCH)) {
                continue;
            }
            APR_ARRAY_PUSH(a, const char *) = "version\r\n";
            req = apr_array_pstrcat(sub, a, 0);
            rv = cs_mc_call(r, mc, 1, APR_ARRAY_IDX(a, 0, const char *) + 4,
                            req, strlen(req), &line, &value, &vlen);
            if (rv == APR_SUCCESS && strncmp(line, "VERSION", 7) != 0) {
                rv = APR_EGENERAL;
            }
            apr_array_clear(a);
        }
        if (i < n && rv == APR_SUCCESS) {
            char mckey[CS_MC_KEY_LEN + 1];
            char val[CS_ENTRY_MAX_LEN + CS_MC_MAC_LEN + 2];
            int len = cs_mc_value(sc, keys[i], &entries[i], val, sizeof(val));
            if (len < 0) {
                continue;
            }
            cs_mc_key(keys[i], mckey);
            /* "set KEY 0 TTL LEN noreply" + value (the key is at +4 for
             * the server pick above). */
            APR_ARRAY_PUSH(pending[cs_mc_server_of(mc, mckey)],
                           const char *) =
                apr_psprintf(sub, "set %s 0 %d %d noreply\r\n%.*s\r\n",
                             mckey, sc->cache_ttl, len, len, val);
        }
    }
    apr_pool_destroy(sub);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, CSLOG(118)
                      "memcached did not take the entries of %d keys; "
                      "their old entries may last until the TTL", n);
    }
    return rv;
}

apr_status_t cs_mc_child_init(apr_pool_t *p, server_rec *s)
{
    server_rec *vs;

    for (vs = s; vs; vs = vs->next) {
        cs_server_conf *sc = cs_sconf(vs);
        cs_server_conf *mainc = cs_sconf(s);
        struct cs_mc_t *mc;
        int i;

        if (!sc->memcache || sc->memcache->nelts == 0) {
            continue;
        }
        if (vs != s && sc->memcache == mainc->memcache && mainc->mc) {
            sc->mc = mainc->mc;     /* inherited: share the client */
            continue;
        }
        mc = apr_pcalloc(p, sizeof(*mc));
        mc->servers = apr_pcalloc(p, sc->memcache->nelts
                                     * sizeof(cs_mc_server_t));
        for (i = 0; i < sc->memcache->nelts; i++) {
            const char *spec = APR_ARRAY_IDX(sc->memcache, i, const char *);
            cs_mc_server_t *ms = &mc->servers[mc->n];
            char *host = NULL, *scope = NULL;
            apr_port_t port = 0;
            apr_status_t rv;

            /* Validated in the directive handler already. */
            apr_parse_addr_port(&host, &scope, &port, spec, p);
            rv = apr_sockaddr_info_get(&ms->sa, host, APR_UNSPEC,
                                       port ? port : 11211, 0, p);
            if (rv != APR_SUCCESS) {
                ap_log_error(APLOG_MARK, APLOG_ERR, rv, vs, CSLOG(112)
                             "cannot set up memcached server %s", spec);
                continue;
            }
            ms->spec = spec;
            pthread_mutex_init(&ms->mutex, NULL);
            mc->n++;
        }
        if (mc->n == 0) {
            continue;
        }
        sc->mc = mc;
        apr_pool_cleanup_register(p, mc, cs_mc_close_all,
                                  apr_pool_cleanup_null);
    }
    return APR_SUCCESS;
}

apr_status_t cs_mc_get(request_rec *r, const cs_server_conf *sc,
                       const char *key, char mckey[CS_MC_KEY_LEN + 1],
                       cs_entry_t *e)
{
    char *line = NULL, *val = NULL;
    long len = -1;
    apr_status_t rv;

    cs_mc_key(key, mckey);
    rv = cs_mc_call(r, sc->mc, 0, mckey,
                    apr_pstrcat(r->pool, "get ", mckey, "\r\n", NULL),
                    4 + CS_MC_KEY_LEN + 2, &line, &val, &len);
    if (rv == APR_SUCCESS && len >= 0) {
        if (cs_mc_decode(sc, key, val, (apr_size_t)len, e) == 0) {
            return APR_SUCCESS;
        }
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(113)
                      "ignoring malformed memcached entry for %s", key);
        cs_mc_delete(r, sc->mc, mckey);
        return APR_NOTFOUND;
    }
    if (rv == APR_SUCCESS) {
        rv = strcmp(line, "END") == 0 ? APR_NOTFOUND : APR_EGENERAL;
    }
    if (rv != APR_NOTFOUND) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r, CSLOG(114)
                      "memcached get failed for %s; using the database",
                      key);
    }
    return rv;
}

/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * dbconn.c - mod_dbd's connections with every wait bounded; see dbconn.h.
 *
 * apr_dbd_mysql 1.6 passes no timeouts to MariaDB Connector/C, which then
 * waits in poll() without a limit for a server that accepted the
 * connection and never answers (SO_RCVTIMEO does not help: the library
 * polls before it reads).  Connector/C does take MYSQL_OPT_READ_TIMEOUT
 * and friends, but only at a connect; so each connection is made again
 * once, with them set, before the module uses it (mariadb_reconnect()
 * keeps the same handle, which the driver holds).  The two functions
 * come from the library the driver loaded (dlsym), so the module needs no
 * client headers and works, unbounded, with another driver.
 *
 * Once the database did not answer, requests must not queue up behind it:
 * until it answers again they fail at once.  Whether it answers again is
 * asked without mod_dbd (whose new connections have no timeout): the
 * server's greeting, read from the address of the last connection within
 * the timeout, as a load balancer's MySQL check does.
 */
#include "dbconn.h"

#include "http_request.h"
#include "apr_atomic.h"
#include "apr_dbd.h"
#include "apr_hash.h"

#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static APR_OPTIONAL_FN_TYPE(ap_dbd_acquire) *cs_dbd_acquire;
static APR_OPTIONAL_FN_TYPE(ap_dbd_open) *cs_dbd_open;
static APR_OPTIONAL_FN_TYPE(ap_dbd_close) *cs_dbd_close;

int cs_dbconn_have_dbd(void)
{
    cs_dbd_acquire = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_acquire);
    cs_dbd_open = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_open);
    cs_dbd_close = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_close);
    return cs_dbd_acquire && cs_dbd_open && cs_dbd_close;
}

/* ------------------------------------------------------------------ */
/* Timeouts on each connection                                        */
/* ------------------------------------------------------------------ */

/* Connector/C's option numbers (enum mysql_option, stable in its ABI). */
#define CS_MY_OPT_CONNECT_TIMEOUT 0
#define CS_MY_OPT_READ_TIMEOUT    11
#define CS_MY_OPT_WRITE_TIMEOUT   12
#define CS_MY_OPT_RECONNECT       20

typedef int (*cs_my_options_fn)(void *mysql, int option, const void *arg);
typedef char (*cs_my_reconnect_fn)(void *mysql);
typedef int (*cs_my_socket_fn)(void *mysql);
typedef int (*cs_my_get_option_fn)(void *mysql, int option, ...);

static cs_my_options_fn cs_my_options;
static cs_my_reconnect_fn cs_my_reconnect;
static cs_my_socket_fn cs_my_socket;
static cs_my_get_option_fn cs_my_get_option;
static volatile apr_uint32_t cs_my_looked;  /* 0, then 1: looked up */
static volatile apr_uint32_t cs_warned_unbounded, cs_warned_foreign;
static volatile apr_uint32_t cs_warned_connect;

/* Marks a connection (in its `prepared` hash) whose timeouts are set. */
#define CS_BOUNDED_LABEL "\001cs-bounded"

/* Whether the database answers, and its address (where the greeting is
 * asked for while it does not): in the node's shared block, so that one
 * process's finding holds for all (counters.h); a process of its own
 * without one. */
typedef __typeof__(((cs_counters_t *)0)->db) cs_db_state_t;
static cs_db_state_t cs_db_private;

static cs_db_state_t *cs_state(server_rec *s)
{
    cs_server_conf *sc = cs_sconf(s);

    return sc->counters ? &sc->counters->db : &cs_db_private;
}

static void cs_my_lookup(void)
{
    if (apr_atomic_read32(&cs_my_looked)) {
        return;
    }
    /* The driver (and with it libmariadb) is loaded by now: mod_dbd made
     * the connection this is called for. */
    cs_my_options = (cs_my_options_fn)dlsym(RTLD_DEFAULT, "mysql_options");
    cs_my_reconnect = (cs_my_reconnect_fn)dlsym(RTLD_DEFAULT,
                                                "mariadb_reconnect");
    cs_my_socket = (cs_my_socket_fn)dlsym(RTLD_DEFAULT, "mysql_get_socket");
    cs_my_get_option = (cs_my_get_option_fn)dlsym(RTLD_DEFAULT,
                                                  "mysql_get_optionv");
    apr_atomic_set32(&cs_my_looked, 1);
}

static void cs_note_address(server_rec *s, void *mysql)
{
    cs_db_state_t *st = cs_state(s);
    struct sockaddr_storage a;
    socklen_t n = sizeof(a);
    uint32_t none = 0;
    int fd = cs_my_socket ? cs_my_socket(mysql) : -1;

    if (__atomic_load_n(&st->addr_state, __ATOMIC_ACQUIRE) != 0 || fd < 0
        || getpeername(fd, (struct sockaddr *)&a, &n) != 0 || n == 0
        || n > sizeof(st->addr)
        || !__atomic_compare_exchange_n(&st->addr_state, &none, 1, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        return;
    }
    memcpy(st->addr, &a, n);
    st->addrlen = n;
    __atomic_store_n(&st->addr_state, 2, __ATOMIC_RELEASE);
}

static unsigned int cs_timeout_secs(server_rec *s)
{
    apr_interval_time_t t = cs_sconf(s)->db_timeout;

    return (unsigned int)((t + APR_USEC_PER_SEC - 1) / APR_USEC_PER_SEC);
}

/* Give dbd its timeouts (once per connection).  0, or -1 when the
 * connection could not be made again (the database did not answer). */
static int cs_bound(server_rec *s, ap_dbd_t *dbd)
{
    unsigned int t = cs_timeout_secs(s);
    char on = 1;
    void *mysql;

    if (apr_hash_get(dbd->prepared, CS_BOUNDED_LABEL, APR_HASH_KEY_STRING)) {
        return 0;
    }
    cs_my_lookup();
    if (strcmp(apr_dbd_name(dbd->driver), "mysql") != 0 || !cs_my_options
        || !cs_my_reconnect
        || !(mysql = apr_dbd_native_handle(dbd->driver, dbd->handle))) {
        if (apr_atomic_cas32(&cs_warned_unbounded, 1, 0) == 0) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, CSLOG(125)
                         "the database driver is %s without MariaDB "
                         "Connector/C's mysql_options/mariadb_reconnect: "
                         "waits on the database are not bounded (a frozen "
                         "database holds requests)",
                         apr_dbd_name(dbd->driver));
        }
        apr_hash_set(dbd->prepared, CS_BOUNDED_LABEL, APR_HASH_KEY_STRING,
                     dbd);
        return 0;
    }
    {
        /* mod_dbd's new connections get a connect timeout only from an
         * option file (DBDParams group=...): say once if they have none. */
        unsigned int was = 0;
        if (cs_my_get_option
            && cs_my_get_option(mysql, CS_MY_OPT_CONNECT_TIMEOUT, &was) == 0
            && was == 0
            && apr_atomic_cas32(&cs_warned_connect, 1, 0) == 0) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, CSLOG(127)
                         "mod_dbd makes new database connections without a "
                         "connect timeout: add group=clusterstorage to "
                         "DBDParams and connect-timeout=%u to a "
                         "[clusterstorage] group of a MariaDB option file "
                         "(see the README); until then a request that opens "
                         "a connection just as the database freezes waits "
                         "for it", t);
        }
    }
    cs_my_options(mysql, CS_MY_OPT_CONNECT_TIMEOUT, &t);
    cs_my_options(mysql, CS_MY_OPT_READ_TIMEOUT, &t);
    cs_my_options(mysql, CS_MY_OPT_WRITE_TIMEOUT, &t);
    cs_my_options(mysql, CS_MY_OPT_RECONNECT, &on);
    if (apr_hash_count(dbd->prepared) > 0) {
        /* DBDPrepareSQL statements of other modules live on it. */
        if (apr_atomic_cas32(&cs_warned_foreign, 1, 0) == 0) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, CSLOG(126)
                         "database connections carry other modules' "
                         "prepared statements (DBDPrepareSQL): their "
                         "timeouts (%u s) apply from their next reconnect; "
                         "until then a frozen database can hold requests",
                         t);
        }
    }
    else if (cs_my_reconnect(mysql) != 0) {
        return -1;
    }
    else {
        /* From now on the library does not reconnect by itself: each of
         * its reconnects inside a ping or a statement would be one more
         * timeout for the same request.  A lost connection fails its
         * call; mod_dbd's ping finds it dead at the next acquire and makes
         * a new one. */
        on = 0;
        cs_my_options(mysql, CS_MY_OPT_RECONNECT, &on);
    }
    cs_note_address(s, mysql);
    apr_hash_set(dbd->prepared, CS_BOUNDED_LABEL, APR_HASH_KEY_STRING, dbd);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Unreachable: fail at once, ask the server's greeting                */
/* ------------------------------------------------------------------ */

/* How long requests fail at once before one of them asks again. */
#define CS_DB_RETRY apr_time_from_msec(500)

static int cs_lost(int e)
{
    /* Connector/C: can't connect (2002 local, 2003 TCP), gone (2006),
     * lost during a query or a read timeout (2013), lost (2055). */
    return e == 2002 || e == 2003 || e == 2006 || e == 2013 || e == 2055;
}

static void cs_mark_down(server_rec *s, const char *why)
{
    cs_db_state_t *st = cs_state(s);
    uint32_t up = 0;

    __atomic_store_n(&st->retry_at,
                     (uint64_t)(apr_time_now() + CS_DB_RETRY),
                     __ATOMIC_RELEASE);
    if (__atomic_compare_exchange_n(&st->down, &up, 1, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
        cs_server_conf *sc = cs_sconf(s);
        CS_COUNT(sc, db_outages, 1);
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, CSLOG(123)
                     "the database %s: it counts as unreachable (writes and "
                     "lookups get 503 at once, local copies are served "
                     "unverified) until it answers within %u s again", why,
                     cs_timeout_secs(s));
    }
}

static void cs_mark_up(server_rec *s)
{
    cs_db_state_t *st = cs_state(s);
    uint32_t down = 1;

    if (__atomic_load_n(&st->retry_at, __ATOMIC_ACQUIRE) != 0) {
        __atomic_store_n(&st->retry_at, 0, __ATOMIC_RELEASE);
    }
    if (__atomic_load_n(&st->down, __ATOMIC_ACQUIRE)
        && __atomic_compare_exchange_n(&st->down, &down, 0, 0,
                                       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, CSLOG(124)
                     "the database answers again");
    }
}

/* MariaDB's answer, with Galera, from a member outside the primary
 * component ("WSREP has not yet prepared node for application use"). */
#define CS_ER_NOT_PRIMARY 1047

void cs_dbconn_failed(server_rec *s, int e, apr_interval_time_t took)
{
    if (e == CS_ER_NOT_PRIMARY) {
        /* It answers, but with nothing: for the registry as good as
         * unreachable (promise 7), never an empty registry. */
        __atomic_store_n(&cs_state(s)->apart, 1, __ATOMIC_RELEASE);
        cs_mark_down(s, "is a Galera member outside the primary component "
                        "(error 1047)");
        return;
    }
    /* A connection that broke at once (the server restarted) is only that
     * connection's end: mod_dbd's next ping drops it.  One that broke
     * after waiting most of the timeout is a server that did not answer. */
    if (cs_lost(e) && took >= cs_sconf(s)->db_timeout / 2) {
        cs_mark_down(s, "did not answer in time");
    }
}

int cs_dbconn_down(server_rec *s)
{
    return __atomic_load_n(&cs_state(s)->retry_at, __ATOMIC_ACQUIRE) != 0;
}

/* Does the server send its greeting within the timeout?  (A MariaDB that
 * is frozen accepts the TCP connection in the kernel and says nothing.) */
static int cs_greets(server_rec *s)
{
    struct sockaddr_storage a;
    socklen_t n;
    unsigned char buf[5];
    struct pollfd pfd;
    apr_time_t deadline;
    int fd, got = 0, ok = 0;

    cs_db_state_t *st = cs_state(s);

    if (__atomic_load_n(&st->addr_state, __ATOMIC_ACQUIRE) != 2) {
        return 1;       /* never connected: mod_dbd has to try */
    }
    n = st->addrlen;
    memcpy(&a, st->addr, n);
    fd = socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return 0;
    }
    deadline = apr_time_now() + cs_sconf(s)->db_timeout;
    if (connect(fd, (struct sockaddr *)&a, n) != 0 && errno != EINPROGRESS) {
        close(fd);
        return 0;
    }
    pfd.fd = fd;
    /* The header (3 bytes length, 1 sequence) and the protocol version
     * (10), or an error packet (0xff) from a server that refuses us:
     * either way it answers. */
    while (got < 5) {
        apr_time_t left = deadline - apr_time_now();
        ssize_t r;

        pfd.events = POLLIN;
        pfd.revents = 0;
        if (left <= 0 || poll(&pfd, 1, (int)apr_time_as_msec(left) + 1) <= 0) {
            break;
        }
        r = recv(fd, buf + got, sizeof(buf) - got, 0);
        if (r <= 0) {
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
                continue;
            }
            break;
        }
        got += (int)r;
    }
    ok = got == 5 && (buf[4] == 10 || buf[4] == 0xff);
    close(fd);
    return ok;
}

/* May this caller use the database now?  While it is unreachable: no,
 * except one caller at a time after CS_DB_RETRY, which asks for the
 * greeting first. */
static int cs_may_use(server_rec *s)
{
    cs_db_state_t *st = cs_state(s);
    uint64_t at = __atomic_load_n(&st->retry_at, __ATOMIC_ACQUIRE);
    apr_time_t now;

    if (at == 0) {
        return 1;
    }
    now = apr_time_now();
    if ((uint64_t)now < at) {
        return 0;
    }
    /* Claim the next try: the others keep failing at once meanwhile. */
    if (!__atomic_compare_exchange_n(&st->retry_at, &at,
                                     (uint64_t)(now + cs_sconf(s)->db_timeout
                                                + CS_DB_RETRY),
                                     0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        return 0;
    }
    if (!cs_greets(s)) {
        __atomic_store_n(&st->retry_at,
                         (uint64_t)(apr_time_now() + CS_DB_RETRY),
                         __ATOMIC_RELEASE);
        return 0;
    }
    return 1;
}

/* After a member outside the primary component: is dbd's member back in
 * it?  (Its greeting says nothing: such a member greets.) */
static int cs_rejoined(server_rec *s, ap_dbd_t *dbd)
{
    cs_db_state_t *st = cs_state(s);
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    const char *v;
    int ready = 0;

    if (!__atomic_load_n(&st->apart, __ATOMIC_ACQUIRE)) {
        return 1;
    }
    if (apr_dbd_select(dbd->driver, dbd->pool, dbd->handle, &res,
                       "SHOW STATUS LIKE 'wsrep_ready'", 0) == 0) {
        while (apr_dbd_get_row(dbd->driver, dbd->pool, res, &row, -1) == 0) {
            v = apr_dbd_get_entry(dbd->driver, row, 1);
            ready = v && strcmp(v, "ON") == 0;
        }
    }
    if (ready) {
        __atomic_store_n(&st->apart, 0, __ATOMIC_RELEASE);
    }
    return ready;
}

/* mod_dbd makes a new connection while it holds its pool's lock (APR's
 * reslist), so a connect that waits on a database that does not answer
 * holds up every other thread of the process that asks for a connection,
 * even one that only gives back a bad one: waits add up (six threads
 * queued behind each other's connect timeouts waited 30 s).  So threads
 * go to mod_dbd one at a time, each waiting at most the database timeout
 * for its turn; one that finds the turn held for longer than this fails at
 * once, and so does one whose turn comes after the database was found
 * unreachable meanwhile.  A turn on a database that answers lasts a
 * ping (or a connect). */
#define CS_OPEN_PATIENCE apr_time_from_msec(500)
static pthread_mutex_t cs_open_mu = PTHREAD_MUTEX_INITIALIZER;
static apr_int64_t cs_open_since;       /* when the turn was taken */

/* Take the turn: 1, or 0 (logged at debug) when this caller must fail. */
static int cs_open_turn(server_rec *s)
{
    apr_time_t now = apr_time_now(), held;
    apr_time_t until = now + cs_sconf(s)->db_timeout;
    struct timespec ts;

    if (pthread_mutex_trylock(&cs_open_mu) != 0) {
        held = __atomic_load_n(&cs_open_since, __ATOMIC_ACQUIRE);
        ts.tv_sec = (time_t)apr_time_sec(until);
        ts.tv_nsec = (long)apr_time_usec(until) * 1000;
        if ((held && now - held > CS_OPEN_PATIENCE)
            || pthread_mutex_timedlock(&cs_open_mu, &ts) != 0) {
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, CSLOG(129)
                         "another thread has waited for a database "
                         "connection for more than %d ms: not waiting "
                         "behind it",
                         (int)apr_time_as_msec(CS_OPEN_PATIENCE));
            return 0;
        }
        if (cs_dbconn_down(s)) {
            pthread_mutex_unlock(&cs_open_mu);
            return 0;
        }
    }
    __atomic_store_n(&cs_open_since, (apr_int64_t)apr_time_now(),
                     __ATOMIC_RELEASE);
    return 1;
}

static void cs_open_done(void)
{
    __atomic_store_n(&cs_open_since, 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&cs_open_mu);
}

/* A connection from mod_dbd with its timeouts.  A connection that was
 * lost at once (its ping failed fast: the server restarted, and mod_dbd
 * dropped it) costs nothing but another try; one that took most of the
 * timeout means the database does not answer. */
static ap_dbd_t *cs_open_bounded(apr_pool_t *p, server_rec *s)
{
    apr_interval_time_t slow = cs_sconf(s)->db_timeout / 2;
    int i;

    for (i = 0; i < 4; i++) {
        apr_time_t t0 = apr_time_now();
        ap_dbd_t *dbd;

        if (!cs_open_turn(s)) {
            return NULL;
        }
        dbd = cs_dbd_open(p, s);
        cs_open_done();
        if (dbd && cs_bound(s, dbd) == 0) {
            if (!cs_rejoined(s, dbd)) {
                /* Still apart: down as it was, asked again later. */
                cs_dbd_close(s, dbd);
                cs_mark_down(s, "is a Galera member outside the primary "
                                "component (error 1047)");
                return NULL;
            }
            cs_mark_up(s);
            return dbd;
        }
        if (dbd) {
            cs_dbd_close(s, dbd);
        }
        if (apr_time_now() - t0 >= slow) {
            cs_mark_down(s, dbd ? "did not answer a new connection in time"
                                : "did not answer in time");
            return NULL;
        }
    }
    /* Every try failed at once: the server refuses connections, or
     * mod_dbd cannot give one yet (a child that is starting).  Only the
     * first counts as unreachable. */
    if (!cs_greets(s)) {
        cs_mark_down(s, "refused or dropped every connection");
    }
    return NULL;
}

/* What a request holds (its initial request's pool; released with it). */
typedef struct {
    server_rec *s;
    ap_dbd_t *dbd;
} cs_held_t;

#define CS_HELD_KEY "clusterstorage-dbconn"

static apr_status_t cs_release(void *data)
{
    cs_held_t *h = data;

    if (h->dbd) {
        cs_dbd_close(h->s, h->dbd);
        h->dbd = NULL;
    }
    return APR_SUCCESS;
}

ap_dbd_t *cs_dbconn_acquire(request_rec *r)
{
    cs_held_t *h = NULL;

    while (!ap_is_initial_req(r)) {     /* as ap_dbd_acquire() does */
        r = r->prev ? r->prev : r->main;
    }
    apr_pool_userdata_get((void **)&h, CS_HELD_KEY, r->pool);
    if (h) {
        return h->dbd;          /* this request's, or NULL: asked once */
    }
    h = apr_pcalloc(r->pool, sizeof(*h));
    h->s = r->server;
    apr_pool_userdata_setn(h, CS_HELD_KEY, NULL, r->pool);
    if (cs_may_use(r->server)
        && (h->dbd = cs_open_bounded(r->pool, r->server)) != NULL) {
        apr_pool_cleanup_register(r->pool, h, cs_release,
                                  apr_pool_cleanup_null);
    }
    return h->dbd;
}

ap_dbd_t *cs_dbconn_open(apr_pool_t *p, server_rec *s)
{
    if (!cs_may_use(s)) {
        return NULL;
    }
    return cs_open_bounded(p, s);
}

void cs_dbconn_close(server_rec *s, ap_dbd_t *dbd)
{
    if (dbd) {
        cs_dbd_close(s, dbd);
    }
}

/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * drive.c - the module's background work on mod_watchdog threads; see
 * drive.h.
 */
#include "drive.h"
#include "move.h"
#include "cache.h"
#include "config.h"
#include "holders.h"
#include "registry.h"
#include "replicate.h"
#include "scrub.h"
#include "store.h"

#include "mod_watchdog.h"
#include "ap_mpm.h"
#include "scoreboard.h"
#include "apr_thread_cond.h"
#include "apr_thread_mutex.h"

static APR_OPTIONAL_FN_TYPE(ap_watchdog_get_instance) *cs_wd_get_instance;
static APR_OPTIONAL_FN_TYPE(ap_watchdog_register_callback) *cs_wd_register;

#define CS_WD_HEARTBEAT "_clusterstorage_heartbeat_"
#define CS_WD_QUEUE     "_clusterstorage_queue_"
#define CS_WD_SCRUB     "_clusterstorage_scrub_"
#define CS_WD_REPAIR    "_clusterstorage_repair_"
#define CS_WD_HOLDERS   "_clusterstorage_holders_"

/* The node-wide lock (.clusterstorage/locks/) of its cache lease. */
#define CS_LEASE_LOCK   "lease"

/* The child's exit and the background threads.  mod_watchdog (built into
 * httpd) sets itself up in each child before mod_dbd does, so it is torn
 * down after it: a callback still using a database connection while the
 * child exits would find mod_dbd's connection pool being destroyed (seen
 * as a use-after-free in libmariadb under AddressSanitizer).  So a
 * pre-cleanup of the child's pool, which runs before any of that, stops
 * new registry work, waits (boundedly) for the work in flight, and gives
 * the node's cache lease up while mod_dbd is still there.  Created in
 * post_config, inherited unlocked by every child. */
static apr_thread_mutex_t *cs_bg_mutex;
static apr_thread_cond_t *cs_bg_cond;
static int cs_bg_active;        /* callbacks using the registry right now */
static int cs_bg_exiting;       /* the child is going away: no new work */
static int cs_hb_here;          /* this child runs the heartbeat thread */

/* How long the child's exit waits for background work in flight: one
 * peer request (a push) and a margin, at least 5 s. */
static apr_interval_time_t cs_exit_wait = apr_time_from_sec(5);

static int cs_bg_enter(void)
{
    int ok;

    apr_thread_mutex_lock(cs_bg_mutex);
    ok = !cs_bg_exiting;
    if (ok) {
        cs_bg_active++;
    }
    apr_thread_mutex_unlock(cs_bg_mutex);
    return ok;
}

static void cs_bg_leave(void)
{
    apr_thread_mutex_lock(cs_bg_mutex);
    cs_bg_active--;
    apr_thread_cond_broadcast(cs_bg_cond);
    apr_thread_mutex_unlock(cs_bg_mutex);
}

/* Is this child exiting because httpd restarts (a newer generation takes
 * over), rather than because it stops?  The MPM advances the running
 * generation before it tells the children of a restart; a stop leaves it
 * as it was. */
static int cs_restarting(void)
{
    int mine = 0;

    return ap_scoreboard_image
           && ap_mpm_query(AP_MPMQ_GENERATION, &mine) == APR_SUCCESS
           && ap_scoreboard_image->global->running_generation != mine;
}

static apr_status_t cs_bg_child_exit(void *data)
{
    server_rec *s = data, *vs;
    apr_time_t deadline = apr_time_now() + cs_exit_wait;
    apr_pool_t *tp;
    int hb, restarting = cs_restarting();

    cs_replicate_stop();        /* a drain stops after its current job */
    apr_thread_mutex_lock(cs_bg_mutex);
    cs_bg_exiting = 1;
    while (cs_bg_active > 0 && apr_time_now() < deadline) {
        apr_thread_cond_timedwait(cs_bg_cond, cs_bg_mutex,
                                  apr_time_from_msec(100));
    }
    if (cs_bg_active > 0) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, CSLOG(217)
                     "child exiting with %d background task(s) still "
                     "running after %" APR_TIME_T_FMT " ms; they end with "
                     "it (their work is picked up again by the next child)",
                     cs_bg_active, apr_time_as_msec(cs_exit_wait));
    }
    hb = cs_hb_here;
    for (vs = s; hb && vs; vs = vs->next) {
        cs_server_conf *sc = cs_sconf(vs);
        if (sc->cache) {
            cs_cache_set_lease(sc->cache, 0);
        }
    }
    apr_thread_mutex_unlock(cs_bg_mutex);
    if (apr_pool_create(&tp, NULL) != APR_SUCCESS) {
        return APR_SUCCESS;
    }
    for (vs = s; vs; vs = vs->next) {
        cs_server_conf *sc = cs_sconf(vs);
        if (!sc->store.state_dir) {
            continue;
        }
        /* The fetched copies this child has not registered yet. */
        cs_holders_stop(vs);
        cs_holders_flush(vs, tp);
        /* Stopping: writers need not wait for this node's lease any more
         * (best effort: if the registry cannot be told, the lease ages
         * out).  Restarting: the lease stays, for the new generation to
         * renew (after wiping the cache, whose lease this child ended
         * above).  A lease given up in the registry while another child
         * trusts the cache would let writers skip a node that serves
         * from it: so it is given up under the lease lock, which every
         * renewal holds, and ended locally again before the lock goes;
         * while another child renews, it is left to that child. */
        if (hb && sc->cache && !restarting) {
            apr_file_t *lock;
            if (cs_store_trylock_named(tp, &sc->store, CS_LEASE_LOCK, &lock)
                == APR_SUCCESS) {
                cs_registry_drop_lease(vs, tp);
                cs_cache_set_lease(sc->cache, 0);
                cs_store_unlock_key(lock);
            }
        }
    }
    apr_pool_destroy(tp);
    return APR_SUCCESS;
}

static apr_status_t cs_bg_forget(void *data)
{
    (void)data;
    cs_bg_mutex = NULL;
    cs_bg_cond = NULL;
    return APR_SUCCESS;
}

void cs_drive_child_init(apr_pool_t *pchild, server_rec *s)
{
    if (cs_bg_mutex) {
        if (cs_holders_child_init(pchild, s) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, CSLOG(156)
                         "no mutex for the list of copies to "
                         "register: each fetch registers its copy alone");
        }
        apr_pool_pre_cleanup_register(pchild, s, cs_bg_child_exit);
    }
}

/* Crash recovery (store.h): install a PUT's sealed temp file if the
 * registry says its version was committed as held by this node. */
typedef struct {
    server_rec *s;
    apr_pool_t *p;
    ap_dbd_t *dbd;
} cs_recover_ctx;

static int cs_recover_decide(void *baton, const char *key,
                             apr_uint64_t version, const char **relpath)
{
    cs_recover_ctx *ctx = baton;

    if (!ctx->dbd && !(ctx->dbd = cs_registry_open(ctx->s, ctx->p))) {
        return -1;
    }
    if (cs_registry_held_relpath(ctx->s, ctx->p, ctx->dbd, key, version,
                                 relpath) != APR_SUCCESS) {
        return -1;
    }
    return *relpath ? 1 : 0;
}

static void cs_recover(server_rec *s, apr_pool_t *pool)
{
    cs_server_conf *sc = cs_sconf(s);
    cs_recover_ctx ctx;
    int n = 0;

    ctx.s = s;
    ctx.p = pool;
    ctx.dbd = NULL;
    cs_store_recover(pool, &sc->store, cs_recover_decide, &ctx, &n);
    cs_registry_close(s, ctx.dbd);
    if (n) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, CSLOG(204)
                     "node %s: installed %d committed PUT(s) that a crash "
                     "had left in %s/tmp", sc->node_name, n,
                     sc->store.state_dir);
    }
}

/* The clock check of a heartbeat: the skew is measured against the
 * database (which decides liveness and ages leases) and kept for the
 * status page and the write path.  Beyond CS_LEASE_MARGIN the node's
 * cache may not be trusted (writers assume that margin); beyond
 * CS_WRITE_SKEW_MAX it takes no writes.  Logged when the state changes.
 * Returns 1 when the lease may be renewed. */
static int cs_skew_state(apr_interval_time_t skew)
{
    return cs_skew_beyond(skew, CS_WRITE_SKEW_MAX) ? 2
           : cs_skew_beyond(skew, CS_LEASE_MARGIN) ? 1 : 0;
}

static int cs_clock_check(server_rec *s, apr_pool_t *pool)
{
    cs_server_conf *sc = cs_sconf(s);
    apr_interval_time_t skew;
    apr_int64_t off;
    int now_state, state = 0;

    if (cs_registry_clock_skew(s, pool, &skew) != APR_SUCCESS) {
        return 1;               /* the heartbeat itself went through */
    }
    if (sc->counters && sc->counters->clock_measured) {
        state = cs_skew_state(cs_clock_skew(sc));
    }
    if (sc->counters) {
        __atomic_store_n(&sc->counters->clock_skew, (int64_t)skew,
                         __ATOMIC_RELAXED);
        __atomic_store_n(&sc->counters->clock_measured,
                         (int64_t)apr_time_now(), __ATOMIC_RELAXED);
    }
    off = skew < 0 ? -skew : skew;
    now_state = cs_skew_state(skew);
    if (now_state != state) {
        if (now_state == 2) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, CSLOG(206)
                         "node %s: this node's clock is %.1f s %s the "
                         "database's (more than %d s): refusing writes and "
                         "not trusting the local cache; fix the clock (NTP)",
                         sc->node_name, (double)off / APR_USEC_PER_SEC,
                         skew < 0 ? "ahead of" : "behind",
                         CS_WRITE_SKEW_MAX);
        }
        else if (now_state == 1) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, CSLOG(205)
                         "node %s: this node's clock is %.1f s %s the "
                         "database's (more than %d s): not trusting the "
                         "local cache; fix the clock (NTP)", sc->node_name,
                         (double)off / APR_USEC_PER_SEC,
                         skew < 0 ? "ahead of" : "behind", CS_LEASE_MARGIN);
        }
        else {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, CSLOG(207)
                         "node %s: this node's clock agrees with the "
                         "database's again (%.3f s)", sc->node_name,
                         (double)skew / APR_USEC_PER_SEC);
        }
    }
    return now_state == 0;
}

/* Heartbeat thread: schema at start, then this node's heartbeat.  Kept
 * apart from the queue thread so that a long transfer never delays it. */
static apr_status_t cs_wd_heartbeat(int state, void *data, apr_pool_t *pool)
{
    server_rec *s = data;
    cs_server_conf *sc = cs_sconf(s);
    apr_status_t rv;
    apr_file_t *lease_lock;
    apr_time_t t0;
    int i;

    if (state != AP_WATCHDOG_STATE_STOPPING && !cs_bg_enter()) {
        return APR_SUCCESS;     /* the child is exiting */
    }
    switch (state) {
    case AP_WATCHDOG_STATE_STARTING:
        cs_hb_here = 1;
        /* mod_watchdog (built into httpd) starts this thread from its
         * child_init, which may run before mod_dbd's has set up the
         * connection pool: give it a moment rather than warn. */
        for (i = 0; (rv = cs_registry_ensure_schema(s, pool))
                    == APR_ECONNREFUSED && i < 50; i++) {
            apr_sleep(apr_time_from_msec(20));
        }
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, CSLOG(201)
                         "node %s: registry not reachable at start-up; "
                         "retrying in the background", sc->node_name);
        }
        /* record the first heartbeat right away */
        /* fall through */
    case AP_WATCHDOG_STATE_RUNNING:
        /* A renewal and an exiting child's giving the lease up never
         * interleave (cs_bg_child_exit()).  While a child gives it up,
         * this round renews nothing (the next one renews, after a wipe);
         * the thread never waits for the lock, nor a child's exit for
         * the thread. */
        rv = cs_store_trylock_named(pool, &sc->store, CS_LEASE_LOCK,
                                    &lease_lock);
        if (rv == APR_EBUSY) {
            break;
        }
        if (rv != APR_SUCCESS) {
            lease_lock = NULL;
        }
        t0 = apr_time_now();
        rv = cs_registry_heartbeat(s, pool);
        if (rv == APR_SUCCESS) {
            /* MOVEs this node could not be told of: applied before the
             * lease is renewed, as the invalidations are (move.h). */
            ap_dbd_t *dbd = cs_registry_open(s, pool);
            rv = dbd ? cs_move_apply(s, pool, dbd, NULL) : APR_ECONNREFUSED;
            cs_registry_close(s, dbd);
        }
        if (rv == APR_SUCCESS && !cs_clock_check(s, pool)) {
            cs_cache_set_lease(sc->cache, 0);
        }
        else if (rv == APR_SUCCESS) {
            /* cache.h point 1: the lease counts from before the heartbeat
             * and the invalidations applied with it.  Never renewed once
             * the child began to exit (it has given the lease up). */
            apr_thread_mutex_lock(cs_bg_mutex);
            if (!cs_bg_exiting) {
                cs_cache_set_lease(sc->cache,
                                   t0 + CS_LEASE_PERIODS * sc->heartbeat);
            }
            apr_thread_mutex_unlock(cs_bg_mutex);
        }
        cs_store_unlock_key(lease_lock);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, CSLOG(202)
                         "node %s: cannot record heartbeat", sc->node_name);
        }
        else {
            ap_log_error(APLOG_MARK, APLOG_TRACE1, 0, s, CSLOG(203)
                         "node %s: heartbeat recorded", sc->node_name);
            cs_recover(s, pool);
        }
        break;
    case AP_WATCHDOG_STATE_STOPPING:
        /* No registry here: mod_dbd may be gone already; the child's exit
         * gave the lease up in the registry (cs_bg_child_exit()). */
        if (sc->cache) {
            cs_cache_set_lease(sc->cache, 0);
        }
        return APR_SUCCESS;
    default:
        break;
    }
    cs_bg_leave();
    return APR_SUCCESS;
}

/* A drain that waits on its bell stops when the child begins to exit,
 * or when the MPM tells it to stop (a graceful restart: the next
 * generation's drain takes over). */
static int cs_queue_stopping(void)
{
    int state = AP_MPMQ_RUNNING;

    return cs_bg_exiting
           || (ap_mpm_query(AP_MPMQ_MPM_STATE, &state) == APR_SUCCESS
               && state == AP_MPMQ_STOPPING);
}

/* Queue thread, one per node: replication and delete jobs, each as soon
 * as its writer rings the bell, and the whole queue every 100 ms; the
 * callback returns only when the child stops. */
static apr_status_t cs_wd_queue(int state, void *data, apr_pool_t *pool)
{
    if (state == AP_WATCHDOG_STATE_RUNNING && cs_bg_enter()) {
        cs_replicate_run(data, pool, cs_queue_stopping);
        cs_bg_leave();
    }
    return APR_SUCCESS;
}

/* Repair thread, every heartbeat period: a round of the repair (pushes
 * for as long as a period).  A thread of its own, beside the queue's:
 * restoring many keys never delays the replication of new writes. */
static apr_status_t cs_wd_repair(int state, void *data, apr_pool_t *pool)
{
    if (state == AP_WATCHDOG_STATE_RUNNING && cs_bg_enter()) {
        cs_replicate_repair(data, pool);
        cs_bg_leave();
    }
    return APR_SUCCESS;
}

/* Holders thread, in every child, every tick (100 ms): this child's
 * fetched copies made durable and registered, in one batch (holders.h). */
static apr_status_t cs_wd_holders(int state, void *data, apr_pool_t *pool)
{
    if (state == AP_WATCHDOG_STATE_RUNNING && cs_bg_enter()) {
        cs_holders_flush(data, pool);
        cs_bg_leave();
    }
    return APR_SUCCESS;
}

/* The scrub stops what it reads as soon as the child begins to exit. */
static int cs_bg_stopping(void)
{
    return cs_bg_exiting;
}

/* Scrub thread, every second: a few seconds of the node's scrub.  A
 * thread of its own: it reads whole files at its paced rate. */
static apr_status_t cs_wd_scrub(int state, void *data, apr_pool_t *pool)
{
    if (state == AP_WATCHDOG_STATE_RUNNING && cs_bg_enter()) {
        cs_scrub_step(data, pool, cs_bg_stopping);
        cs_bg_leave();
    }
    return APR_SUCCESS;
}

int cs_drive_available(void)
{
    cs_wd_get_instance = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance);
    cs_wd_register = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_register_callback);
    return cs_wd_get_instance && cs_wd_register;
}

int cs_drive_start(apr_pool_t *p, server_rec *s,
                   const apr_array_header_t *nodes)
{
    ap_watchdog_t *wd_hb = NULL, *wd_q = NULL, *wd_s = NULL, *wd_r = NULL;
    ap_watchdog_t *wd_h = NULL;
    int i;

    cs_bg_exiting = cs_bg_active = cs_hb_here = 0;
    if (apr_thread_mutex_create(&cs_bg_mutex, APR_THREAD_MUTEX_DEFAULT, p)
        != APR_SUCCESS
        || apr_thread_cond_create(&cs_bg_cond, p) != APR_SUCCESS) {
        cs_bg_mutex = NULL;
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, CSLOG(064)
                     "cannot create the background threads' mutex");
        return !OK;
    }
    /* Three singleton threads per httpd, in one child, */
    if (cs_wd_get_instance(&wd_hb, CS_WD_HEARTBEAT, 0, 1, p) != APR_SUCCESS
        || cs_wd_get_instance(&wd_r, CS_WD_REPAIR, 0, 1, p) != APR_SUCCESS
        || cs_wd_get_instance(&wd_s, CS_WD_SCRUB, 0, 1, p) != APR_SUCCESS
        /* and one in every child, for its fetched copies */
        || cs_wd_get_instance(&wd_h, CS_WD_HOLDERS, 0, 0, p)
           != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, CSLOG(006)
                     "cannot create the watchdog threads");
        return !OK;
    }
    /* They go with this generation's configuration pool. */
    apr_pool_cleanup_register(p, NULL, cs_bg_forget, apr_pool_cleanup_null);
    for (i = 0; i < nodes->nelts; i++) {
        server_rec *ns = APR_ARRAY_IDX(nodes, i, server_rec *);
        cs_server_conf *sc = cs_sconf(ns);
        if (sc->peer_timeout + apr_time_from_sec(2) > cs_exit_wait) {
            cs_exit_wait = sc->peer_timeout + apr_time_from_sec(2);
        }
        /* and one per node for its queue (its callback never returns
         * while the child runs, so each node has a thread of its own). */
        if (cs_wd_get_instance(&wd_q, apr_psprintf(p, "%s%d", CS_WD_QUEUE,
                                                   i), 0, 1, p)
            != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, ns, CSLOG(216)
                         "node %s: cannot create its queue's watchdog "
                         "thread", sc->node_name);
            return !OK;
        }
        if (cs_wd_register(wd_hb, sc->heartbeat, ns, cs_wd_heartbeat)
            || cs_wd_register(wd_q, AP_WD_TM_SLICE, ns, cs_wd_queue)
            || cs_wd_register(wd_r, sc->heartbeat, ns, cs_wd_repair)
            || cs_wd_register(wd_h, AP_WD_TM_SLICE, ns, cs_wd_holders)
            || (sc->scrub_rate > 0
                && cs_wd_register(wd_s, apr_time_from_sec(1), ns,
                                  cs_wd_scrub))) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, ns, CSLOG(015)
                         "cannot register the background callbacks");
            return !OK;
        }
    }
    return OK;
}

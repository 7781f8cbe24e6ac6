/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * replicate.c - the replication engine: draining the queue, pushes,
 * delete propagation and the repair sweep; see replicate.h.
 */
#include "replicate.h"
#include "peer.h"
#include "queue.h"
#include "registry.h"
#include "store.h"

#include "apr_hash.h"
#include "apr_strings.h"
#include "apr_tables.h"

#include <pthread.h>
#include <time.h>

typedef enum { CS_JOB_DONE, CS_JOB_RETRY, CS_JOB_DB_DOWN } cs_job_result;

/* The member named name, or NULL. */
static cs_node_t *cs_node_named(apr_array_header_t *nodes, const char *name)
{
    int i;

    for (i = 0; i < nodes->nelts; i++) {
        if (strcmp(APR_ARRAY_IDX(nodes, i, cs_node_t).name, name) == 0) {
            return &APR_ARRAY_IDX(nodes, i, cs_node_t);
        }
    }
    return NULL;
}

static int cs_in_list(apr_array_header_t *nodes, const char *name)
{
    int i;

    for (i = 0; i < nodes->nelts; i++) {
        if (strcmp(APR_ARRAY_IDX(nodes, i, cs_node_t).name, name) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Sort nodes by their placement score for key (codec.h), highest first:
 * the order in which the key's copies go to them. */
typedef struct {
    uint64_t score;
    cs_node_t node;
} cs_placed_t;

static int cs_place_cmp(const void *a, const void *b)
{
    uint64_t x = ((const cs_placed_t *)a)->score;
    uint64_t y = ((const cs_placed_t *)b)->score;

    return x < y ? 1 : x > y ? -1 : 0;
}

static void cs_place_order(apr_pool_t *p, const char *key,
                           apr_array_header_t *nodes)
{
    cs_placed_t *v = apr_palloc(p, sizeof(*v) * (nodes->nelts + 1));
    int i;

    for (i = 0; i < nodes->nelts; i++) {
        v[i].node = APR_ARRAY_IDX(nodes, i, cs_node_t);
        v[i].score = cs_place_score(key, v[i].node.name);
    }
    qsort(v, nodes->nelts, sizeof(*v), cs_place_cmp);
    for (i = 0; i < nodes->nelts; i++) {
        APR_ARRAY_IDX(nodes, i, cs_node_t) = v[i].node;
    }
}

/* A peer refused this node's copy at path of version e as not matching
 * the registry: read it again whole.  If its bytes are wrong, it goes to
 * the quarantine and the node stops being one of its holders (1). */
static int cs_damaged_here(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                           const char *key, const char *path,
                           const cs_entry_t *e)
{
    cs_server_conf *sc = cs_sconf(s);
    apr_file_t *f, *lock = NULL;
    apr_finfo_t fi;
    apr_uint64_t v, n;
    char sha[CS_SHA256_HEX_LEN + 1];
    const char *dst = NULL;
    apr_status_t rv;
    int match = 1;

    if (cs_store_lock_key(p, &sc->store, key, &lock) != APR_SUCCESS) {
        return 0;
    }
    if (cs_store_open(p, path, key, 0, &f, &fi, &v, sha) != APR_SUCCESS
        || v != e->version
        || cs_store_check_sum(p, f, e->sha256, NULL, NULL, &n, &match)
           != APR_SUCCESS
        || match) {
        cs_store_unlock_key(lock);
        return 0;
    }
    rv = cs_store_quarantine(p, &sc->store, path, &dst);
    cs_store_unlock_key(lock);
    ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, CSLOG(409)
                 "a peer refused this node's copy of %s v%" APR_UINT64_T_FMT
                 ", and read again its bytes do not match its SHA-256: %s%s",
                 key, e->version, rv == APR_SUCCESS ? "moved to "
                 : "could not move it to the quarantine", dst ? dst : "");
    cs_cache_invalidate(sc->cache, key);
    cs_registry_drop_replica(s, p, dbd, key, e->version);
    return 1;
}

/* A push of key's version to n went through (repair: made by the repair)
 * or failed: counted and logged alike wherever it was made. */
static void cs_push_done(server_rec *s, const char *key,
                         apr_uint64_t version, const cs_node_t *n,
                         int repair)
{
    cs_server_conf *sc = cs_sconf(s);

    CS_COUNT(sc, replications_done, 1);
    if (repair) {
        CS_COUNT(sc, repairs, 1);
    }
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, CSLOG(403)
                 "%s %s v%" APR_UINT64_T_FMT " to %s",
                 repair ? "repaired" : "replicated", key, version, n->name);
}

static void cs_push_failed(server_rec *s, const char *key,
                           apr_uint64_t version, const cs_node_t *n,
                           apr_status_t rv, int status)
{
    cs_server_conf *sc = cs_sconf(s);

    CS_COUNT(sc, replications_failed, 1);
    ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, CSLOG(404)
                 "replicating %s v%" APR_UINT64_T_FMT " to %s (%s) "
                 "failed: status %d", key, version, n->name, n->url,
                 status);
}

/* Make ClusterStorageReplicas live nodes hold version `version` of key,
 * pushing this node's copy.  Shared by queued jobs and repair. */
static cs_job_result cs_replicate(server_rec *s, apr_pool_t *p,
                                  ap_dbd_t *dbd, const char *key,
                                  const char *relpath,
                                  apr_uint64_t version, int repair)
{
    cs_server_conf *sc = cs_sconf(s);
    apr_array_header_t *holders, *nodes;
    cs_entry_t e;
    apr_file_t *f, *lock = NULL;
    apr_finfo_t fi;
    apr_uint64_t v;
    char sha[CS_SHA256_HEX_LEN + 1];
    const char *path;
    int i, live = 0, need;

    /* A writer queues its job before it commits and renames, holding the
     * key lock throughout: under that lock the job's version is either
     * committed and in place, or was never committed (aborted). */
    if (cs_store_lock_key(p, &sc->store, key, &lock) != APR_SUCCESS) {
        return CS_JOB_RETRY;
    }
    if (cs_registry_entry_holders(s, p, dbd, key, &e, &holders)
        != APR_SUCCESS) {
        cs_store_unlock_key(lock);
        return CS_JOB_DB_DOWN;
    }
    if (e.version != version || e.deleted) {
        cs_store_unlock_key(lock);
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, CSLOG(401)
                     "replication of %s v%" APR_UINT64_T_FMT " superseded",
                     key, version);
        return CS_JOB_DONE;
    }
    path = apr_pstrcat(p, sc->store.root, relpath, NULL);
    if (cs_store_open(p, path, key, 0, &f, &fi, &v, sha) != APR_SUCCESS
        || v != version) {
        path = NULL;
    }
    else if (!cs_store_intact(&sc->store, &fi, &e) || strcmp(sha, e.sha256) != 0) {
        /* Changed on disk behind the module's back: never pushed (SPEC
         * promise 10); out of the way, and no longer this node's. */
        const char *dst = NULL;
        apr_status_t qrv = cs_store_quarantine(p, &sc->store, path, &dst);
        ap_log_error(APLOG_MARK, APLOG_ERR, qrv, s, CSLOG(408)
                     "not replicating %s v%" APR_UINT64_T_FMT ": the local "
                     "copy is damaged (size, mtime or checksum); %s%s", key,
                     version, qrv == APR_SUCCESS ? "moved to " : "could not "
                     "move it to the quarantine", dst ? dst : "");
        cs_registry_drop_replica(s, p, dbd, key, version);
        cs_store_unlock_key(lock);
        return CS_JOB_DONE;
    }
    cs_store_unlock_key(lock);
    if (cs_registry_nodes(s, p, dbd, &nodes) != APR_SUCCESS) {
        return CS_JOB_DB_DOWN;
    }
    /* The copies that count: on nodes that are up (this one is) and not
     * draining (admin.h). */
    for (i = 0; i < holders->nelts; i++) {
        cs_node_t *h = &APR_ARRAY_IDX(holders, i, cs_node_t);
        cs_node_t *m = cs_node_named(nodes, h->name);
        if ((h->alive || strcmp(h->name, sc->node_name) == 0)
            && !(m && m->draining)) {
            live++;
        }
    }
    need = sc->replicas - live;
    if (need <= 0) {
        return CS_JOB_DONE;
    }
    if (!path) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, CSLOG(402)
                     "cannot replicate %s v%" APR_UINT64_T_FMT ": the local "
                     "copy is not that version", key, version);
        return CS_JOB_DONE;
    }
    cs_place_order(p, key, nodes);
    for (i = 0; i < nodes->nelts && need > 0; i++) {
        cs_node_t *n = &APR_ARRAY_IDX(nodes, i, cs_node_t);
        apr_pool_t *sub;
        apr_status_t rv;
        int status = 0;

        if (!n->alive || n->draining || strcmp(n->name, sc->node_name) == 0
            || cs_in_list(holders, n->name)) {
            continue;
        }
        apr_pool_create(&sub, p);
        rv = cs_peer_push(sub, &sc->peer, n->url, key, &e, path, &status);
        apr_pool_destroy(sub);
        if (rv == APR_SUCCESS && status >= 200 && status < 300) {
            need--;
            cs_push_done(s, key, version, n, repair);
        }
        else if (rv == APR_SUCCESS && status == HTTP_BAD_REQUEST
                 && cs_damaged_here(s, p, dbd, key, path, &e)) {
            /* The peer found the bytes wrong (CS045 there): they were,
             * so they are pushed nowhere again. */
            CS_COUNT(sc, replications_failed, 1);
            return CS_JOB_DONE;
        }
        else {
            cs_push_failed(s, key, version, n, rv, status);
        }
    }
    return need <= 0 ? CS_JOB_DONE : CS_JOB_RETRY;
}

/* Tell live nodes to drop copies older than the tombstone. */
static cs_job_result cs_propagate_delete(server_rec *s, apr_pool_t *p,
                                         ap_dbd_t *dbd, const cs_job_t *job)
{
    cs_server_conf *sc = cs_sconf(s);
    apr_array_header_t *nodes;
    apr_file_t *lock = NULL;
    cs_entry_t e;
    apr_status_t rv;
    int i, failed = 0;

    /* As in cs_replicate(): under the key lock the tombstone is either
     * committed or was never committed (then no copy may be dropped). */
    if (cs_store_lock_key(p, &sc->store, job->key, &lock) != APR_SUCCESS) {
        return CS_JOB_RETRY;
    }
    rv = cs_registry_entry(s, p, dbd, job->key, &e);
    cs_store_unlock_key(lock);
    if (rv != APR_SUCCESS) {
        return CS_JOB_DB_DOWN;
    }
    if (e.version < job->version) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, CSLOG(407)
                     "delete of %s v%" APR_UINT64_T_FMT " was not committed",
                     job->key, job->version);
        return CS_JOB_DONE;
    }
    if (cs_registry_nodes(s, p, dbd, &nodes) != APR_SUCCESS) {
        return CS_JOB_DB_DOWN;
    }
    for (i = 0; i < nodes->nelts; i++) {
        cs_node_t *n = &APR_ARRAY_IDX(nodes, i, cs_node_t);
        apr_pool_t *sub;
        int status = 0;

        if (!n->alive || strcmp(n->name, sc->node_name) == 0) {
            continue;   /* a down node drops it when next asked */
        }
        apr_pool_create(&sub, p);
        rv = cs_peer_delete(sub, &sc->peer, n->url, job->key, job->version,
                            &status);
        apr_pool_destroy(sub);
        if (rv != APR_SUCCESS || status < 200 || status >= 300) {
            failed = 1;
            ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, CSLOG(405)
                         "telling %s to drop %s failed: status %d", n->name,
                         job->key, status);
        }
    }
    return failed ? CS_JOB_RETRY : CS_JOB_DONE;
}

/* Retry state of the jobs that failed, of each node (one httpd may run
 * several).  Only the queue's watchdog thread touches them (one per
 * process).  A node's backoff table is rebuilt in a fresh pool at every
 * drain of its queue, holding only its jobs still waiting, so it never
 * grows beyond the queue. */
typedef struct {
    apr_time_t next;
    int attempts;
} cs_backoff_t;

typedef struct {
    apr_pool_t *pool;           /* this generation of the backoff table */
    apr_hash_t *backoff;        /* job path -> cs_backoff_t */
    apr_pool_t *npool;          /* the node list below */
    apr_array_header_t *nodes;  /* as the registry said at nodes_at */
    apr_time_t nodes_at;        /* monotonic (cs_mono_now) */
} cs_node_bg_t;

static apr_pool_t *cs_bg_pool;          /* lives as long as the process */
static apr_hash_t *cs_node_bg;          /* node name -> cs_node_bg_t */
static volatile int cs_stopping;

void cs_replicate_stop(void)
{
    cs_stopping = 1;
}

/* Each node's queue has a thread of its own, and they start together:
 * the table of their states is made and grown under this lock. */
static pthread_mutex_t cs_bg_lock = PTHREAD_MUTEX_INITIALIZER;

static cs_node_bg_t *cs_bg_of(server_rec *s)
{
    const char *name = cs_sconf(s)->node_name;
    cs_node_bg_t *nb;

    pthread_mutex_lock(&cs_bg_lock);
    if (!cs_bg_pool) {
        apr_pool_create(&cs_bg_pool, s->process->pool);
        apr_pool_tag(cs_bg_pool, "clusterstorage-background");
        cs_node_bg = apr_hash_make(cs_bg_pool);
    }
    nb = apr_hash_get(cs_node_bg, name, APR_HASH_KEY_STRING);
    if (!nb) {
        nb = apr_pcalloc(cs_bg_pool, sizeof(*nb));
        apr_pool_create(&nb->pool, cs_bg_pool);
        nb->backoff = apr_hash_make(nb->pool);
        apr_pool_create(&nb->npool, cs_bg_pool);
        apr_hash_set(cs_node_bg, apr_pstrdup(cs_bg_pool, name),
                     APR_HASH_KEY_STRING, nb);
    }
    pthread_mutex_unlock(&cs_bg_lock);
    return nb;
}

/* Microseconds of the monotonic clock: the drain's intervals do not
 * stretch or shrink when the wall clock is stepped. */
static apr_time_t cs_mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (apr_time_t)ts.tv_sec * APR_USEC_PER_SEC + ts.tv_nsec / 1000;
}

/* The node list a rung job is pushed by is at most this old: a node that
 * joined, died or started draining since is seen this much later (a push
 * to one that died fails, and the job goes the whole way, below). */
#define CS_NODES_FRESH apr_time_from_msec(500)

static apr_array_header_t *cs_drain_nodes(server_rec *s, cs_node_bg_t *nb,
                                          apr_pool_t *dp, ap_dbd_t **dbd)
{
    apr_time_t now = cs_mono_now();

    if (nb->nodes && now - nb->nodes_at < CS_NODES_FRESH) {
        return nb->nodes;
    }
    nb->nodes = NULL;
    apr_pool_clear(nb->npool);
    if ((*dbd || (*dbd = cs_registry_open(s, dp)))
        && cs_registry_nodes(s, nb->npool, *dbd, &nb->nodes)
           != APR_SUCCESS) {
        nb->nodes = NULL;
    }
    nb->nodes_at = now;
    return nb->nodes;
}

/* A job its writer rang with the entry it committed (e).  Nothing
 * changed since if this node's copy is still that version: then it is
 * the only copy (a new version has no other holder), so it is pushed to
 * the first nodes of the key's placement without asking the registry.
 * CS_JOB_DONE once enough of them took it.  A push that failed is
 * logged and the job waits for its retry; anything else (a copy that is
 * no longer e, a refusal, which may mean a newer version or a damaged
 * copy) is for cs_replicate(), which asks the registry: CS_JOB_RETRY
 * with *ask set. */
static cs_job_result cs_replicate_rung(server_rec *s, cs_node_bg_t *nb,
                                       apr_pool_t *p, apr_pool_t *dp,
                                       ap_dbd_t **dbd, const cs_job_t *job,
                                       const cs_entry_t *e, int *ask)
{
    cs_server_conf *sc = cs_sconf(s);
    apr_array_header_t *nodes;
    apr_file_t *f, *lock = NULL;
    apr_finfo_t fi;
    apr_uint64_t v;
    char sha[CS_SHA256_HEX_LEN + 1];
    const char *path = apr_pstrcat(p, sc->store.root, job->relpath, NULL);
    int i, need = sc->replicas - 1, fresh;

    *ask = 1;
    if (cs_store_lock_key(p, &sc->store, job->key, &lock) != APR_SUCCESS) {
        return CS_JOB_RETRY;
    }
    fresh = cs_store_open(p, path, job->key, 0, &f, &fi, &v, sha)
            == APR_SUCCESS && v == e->version
            && strcmp(sha, e->sha256) == 0 && cs_store_intact(&sc->store,
                                                              &fi, e);
    cs_store_unlock_key(lock);
    if (!fresh || !(nodes = cs_drain_nodes(s, nb, dp, dbd))) {
        return CS_JOB_RETRY;
    }
    /* A node that drains itself does not count its own copy. */
    for (i = 0; i < nodes->nelts; i++) {
        cs_node_t *n = &APR_ARRAY_IDX(nodes, i, cs_node_t);
        if (n->draining && strcmp(n->name, sc->node_name) == 0) {
            return CS_JOB_RETRY;
        }
    }
    nodes = apr_array_copy(p, nodes);
    cs_place_order(p, job->key, nodes);
    for (i = 0; i < nodes->nelts && need > 0; i++) {
        cs_node_t *n = &APR_ARRAY_IDX(nodes, i, cs_node_t);
        apr_pool_t *sub;
        apr_status_t rv;
        int status = 0;

        if (!n->alive || n->draining
            || strcmp(n->name, sc->node_name) == 0) {
            continue;
        }
        apr_pool_create(&sub, p);
        rv = cs_peer_push(sub, &sc->peer, n->url, job->key, e, path,
                          &status);
        apr_pool_destroy(sub);
        if (rv == APR_SUCCESS && status >= 200 && status < 300) {
            need--;
            cs_push_done(s, job->key, e->version, n, 0);
            continue;
        }
        if (rv == APR_SUCCESS && status >= 400 && status < 500) {
            return CS_JOB_RETRY;        /* refused: ask the registry */
        }
        cs_push_failed(s, job->key, e->version, n, rv, status);
        *ask = 0;
        return CS_JOB_RETRY;
    }
    /* Too few nodes up for the placement: cs_replicate() says so. */
    *ask = need > 0;
    return need > 0 ? CS_JOB_RETRY : CS_JOB_DONE;
}

/* The next generation of a node's backoff table: the entries of the jobs
 * in `waiting` (paths) that still have one; the old table is freed. */
static void cs_backoff_keep(cs_node_bg_t *nb, apr_array_header_t *waiting)
{
    apr_pool_t *np;
    apr_hash_t *nh;
    int i;

    if (apr_hash_count(nb->backoff) == 0) {
        apr_pool_clear(nb->pool);
        nb->backoff = apr_hash_make(nb->pool);
        return;
    }
    pthread_mutex_lock(&cs_bg_lock);    /* cs_bg_pool is shared */
    apr_pool_create(&np, cs_bg_pool);
    pthread_mutex_unlock(&cs_bg_lock);
    nh = apr_hash_make(np);
    for (i = 0; i < waiting->nelts; i++) {
        const char *path = APR_ARRAY_IDX(waiting, i, const char *);
        cs_backoff_t *bo = apr_hash_get(nb->backoff, path,
                                        APR_HASH_KEY_STRING);
        if (bo) {
            cs_backoff_t *copy = apr_pmemdup(np, bo, sizeof(*bo));
            apr_hash_set(nh, apr_pstrdup(np, path), APR_HASH_KEY_STRING,
                         copy);
        }
    }
    pthread_mutex_lock(&cs_bg_lock);
    apr_pool_destroy(nb->pool);
    pthread_mutex_unlock(&cs_bg_lock);
    nb->pool = np;
    nb->backoff = nh;
}

/* One job of s's queue (the file at path), unless its backoff says not
 * yet: removed once done, else left waiting (in *waiting, if given) and
 * its next try set.  *dbd is opened on first use; -1 when the registry
 * is down (the job stays, and the caller stops: the queue pauses). */
static int cs_drain_one(server_rec *s, cs_node_bg_t *nb, apr_pool_t *p,
                        ap_dbd_t **dbd, const char *path,
                        const cs_entry_t *rung, apr_time_t now,
                        apr_array_header_t *waiting)
{
    int ask = 1;
    cs_backoff_t *bo = apr_hash_get(nb->backoff, path, APR_HASH_KEY_STRING);
    apr_pool_t *sub;
    cs_job_t job;
    cs_job_result res;
    apr_status_t rv;

    if (cs_stopping || (bo && bo->next > now)) {
        if (waiting) {
            APR_ARRAY_PUSH(waiting, const char *) = path;
        }
        return 0;
    }
    apr_pool_create(&sub, p);
    rv = cs_queue_read(sub, path, &job);
    if (rv == APR_EINVAL) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, CSLOG(406)
                     "removing malformed queue job %s", path);
        cs_queue_remove(sub, path);
    }
    if (rv != APR_SUCCESS) {
        apr_pool_destroy(sub);
        return 0;               /* gone already (done by another pass) */
    }
    res = CS_JOB_RETRY;
    if (job.op == 'P' && rung && rung->version == job.version
        && !rung->deleted && rung->sha256[0] && !bo) {
        res = cs_replicate_rung(s, nb, sub, p, dbd, &job, rung, &ask);
    }
    if (res != CS_JOB_DONE && ask) {
        if (!*dbd && !(*dbd = cs_registry_open(s, p))) {
            apr_pool_destroy(sub);
            return -1;
        }
        res = job.op == 'P'
              ? cs_replicate(s, sub, *dbd, job.key, job.relpath,
                             job.version, 0)
              : cs_propagate_delete(s, sub, *dbd, &job);
    }
    apr_pool_destroy(sub);
    if (res == CS_JOB_DONE) {
        cs_queue_retire(p, &cs_sconf(s)->store, cs_sconf(s)->bell, path);
        if (bo) {
            apr_hash_set(nb->backoff, path, APR_HASH_KEY_STRING, NULL);
        }
        return 0;
    }
    if (waiting) {
        APR_ARRAY_PUSH(waiting, const char *) = path;
    }
    if (res == CS_JOB_DB_DOWN) {
        cs_registry_close(s, *dbd);
        *dbd = NULL;
        return -1;
    }
    if (!bo) {
        bo = apr_pcalloc(nb->pool, sizeof(*bo));
        apr_hash_set(nb->backoff, apr_pstrdup(nb->pool, path),
                     APR_HASH_KEY_STRING, bo);
    }
    bo->attempts++;
    bo->next = now + apr_time_from_msec(
        100 * (1 << (bo->attempts < 9 ? bo->attempts : 9)));
    if (bo->next > now + apr_time_from_sec(30)) {
        bo->next = now + apr_time_from_sec(30);
    }
    return 0;
}

/* Drain s's queue once: jobs oldest first. */
static void cs_replicate_drain(server_rec *s, cs_node_bg_t *nb,
                               apr_pool_t *p)
{
    cs_server_conf *sc = cs_sconf(s);
    apr_array_header_t *paths, *waiting, *rings;
    apr_hash_t *rung;
    ap_dbd_t *dbd = NULL;
    apr_time_t now = apr_time_now();
    int i;

    /* The rings waiting now are of jobs listed below (a job is rung after
     * its file is in place): a job found with its ring is pushed by what
     * its writer committed. */
    rings = cs_queue_wait(p, &sc->store, sc->bell, 0);
    rung = apr_hash_make(p);
    for (i = 0; i < rings->nelts; i++) {
        cs_rung_t *one = &APR_ARRAY_IDX(rings, i, cs_rung_t);
        apr_hash_set(rung, one->path, APR_HASH_KEY_STRING, &one->e);
    }
    paths = cs_queue_list(p, &sc->store);
    waiting = apr_array_make(p, 4, sizeof(const char *));
    for (i = 0; i < paths->nelts; i++) {
        const char *path = APR_ARRAY_IDX(paths, i, const char *);
        if (cs_drain_one(s, nb, p, &dbd, path,
                         apr_hash_get(rung, path, APR_HASH_KEY_STRING), now,
                         waiting) < 0) {
            /* registry down: pause, jobs stay queued */
            for (i++; i < paths->nelts; i++) {
                APR_ARRAY_PUSH(waiting, const char *) =
                    APR_ARRAY_IDX(paths, i, const char *);
            }
            break;
        }
    }
    cs_registry_close(s, dbd);
    cs_backoff_keep(nb, waiting);
}

void cs_replicate_run(server_rec *s, apr_pool_t *p, int (*stop)(void))
{
    cs_server_conf *sc = cs_sconf(s);
    cs_node_bg_t *nb = cs_bg_of(s);
    apr_interval_time_t pass = apr_time_from_msec(100);
    apr_time_t last = 0;
    apr_pool_t *sub;

    apr_pool_create(&sub, p);
    while (!cs_stopping && !stop()) {
        apr_array_header_t *rung;
        apr_time_t now = cs_mono_now();
        ap_dbd_t *dbd = NULL;
        int i;

        apr_pool_clear(sub);
        if (last == 0 || now - last >= pass) {
            /* The whole queue: jobs retried, jobs of other generations,
             * rings that were lost.  The next one 100 ms after this one
             * ended, so that rings are read in between however long a
             * pass takes. */
            cs_replicate_drain(s, nb, sub);
            last = cs_mono_now();
            continue;
        }
        rung = cs_queue_wait(sub, &sc->store, sc->bell, last + pass - now);
        now = apr_time_now();   /* backoff times are wall-clock ones */
        for (i = 0; i < rung->nelts && !cs_stopping; i++) {
            cs_rung_t *one = &APR_ARRAY_IDX(rung, i, cs_rung_t);
            if (cs_drain_one(s, nb, sub, &dbd, one->path, &one->e, now,
                             NULL) < 0) {
                break;          /* registry down: the next pass retries */
            }
        }
        cs_registry_close(s, dbd);
    }
    apr_pool_destroy(sub);
}

/* The repair's state of each node, touched by the repair's watchdog
 * thread only (one per process): per node that died, how far its keys
 * were gone through since it died; and the sweep over this node's own
 * keys. */
typedef struct {
    apr_int64_t died;           /* its last heartbeat, seconds */
    int done;                   /* all its keys restored since then */
    int failed;                 /* a push failed in this round */
    char cursor[CS_KEY_MAX + 1];
    /* This node draining: what the current pass found still short, and
     * the last pass's finding and end. */
    apr_int64_t keys, bytes, last_keys;
    apr_time_t last_at;
} cs_dead_t;

typedef struct {
    apr_hash_t *dead;           /* node name -> cs_dead_t */
    char cursor[CS_KEY_MAX + 1];
} cs_repair_t;

static apr_pool_t *cs_repair_pool;
static apr_hash_t *cs_repairs;  /* this node's name -> cs_repair_t */

static cs_repair_t *cs_repair_of(server_rec *s)
{
    const char *name = cs_sconf(s)->node_name;
    cs_repair_t *rs;

    if (!cs_repair_pool) {
        apr_pool_create(&cs_repair_pool, NULL);
        cs_repairs = apr_hash_make(cs_repair_pool);
    }
    if (!(rs = apr_hash_get(cs_repairs, name, APR_HASH_KEY_STRING))) {
        rs = apr_pcalloc(cs_repair_pool, sizeof(*rs));
        rs->dead = apr_hash_make(cs_repair_pool);
        apr_hash_set(cs_repairs, apr_pstrdup(cs_repair_pool, name),
                     APR_HASH_KEY_STRING, rs);
    }
    return rs;
}

/* A draining node's state in the repair (created on first use). */
static cs_dead_t *cs_state_named(cs_repair_t *rs, const char *name)
{
    cs_dead_t *d = apr_hash_get(rs->dead, name, APR_HASH_KEY_STRING);

    if (!d) {
        d = apr_pcalloc(cs_repair_pool, sizeof(*d));
        apr_hash_set(rs->dead, apr_pstrdup(cs_repair_pool, name),
                     APR_HASH_KEY_STRING, d);
    }
    return d;
}

/* One page of node's keys from *cursor: restore those that need this
 * node; the cursor moves on ("" at the end).  The keys found, or -1 when
 * the registry could not say; *failed when a push did not succeed. */
static int cs_repair_page(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                          const char *node, int draining, char *cursor,
                          int *failed)
{
    apr_array_header_t *keys;
    const char *next;
    apr_pool_t *sub;
    int i, n;

    apr_pool_create(&sub, p);
    if (cs_registry_under_replicated(s, sub, dbd, node, cursor, draining,
                                     &keys, &next)
        != APR_SUCCESS) {
        apr_pool_destroy(sub);
        return -1;
    }
    for (i = 0; i < keys->nelts && !cs_stopping; i++) {
        const char **kr = APR_ARRAY_IDX(keys, i, const char **);
        cs_entry_t e;
        if (cs_registry_entry(s, sub, dbd, kr[0], &e) == APR_SUCCESS
            && e.version && !e.deleted
            && cs_replicate(s, sub, dbd, kr[0], kr[1], e.version, 1)
               != CS_JOB_DONE) {
            *failed = 1;
        }
    }
    n = keys->nelts;
    if (strlen(next) <= CS_KEY_MAX) {
        strcpy(cursor, next);
    }
    else {
        cursor[0] = '\0';
    }
    apr_pool_destroy(sub);
    return n;
}

/* What this node's drain has left, for its status page (-1: none). */
static void cs_drain_publish(cs_server_conf *sc, apr_int64_t keys,
                             apr_int64_t bytes, apr_int64_t rate_milli)
{
    if (sc->counters) {
        __atomic_store_n(&sc->counters->drain_keys, (int64_t)keys,
                         __ATOMIC_RELAXED);
        __atomic_store_n(&sc->counters->drain_bytes, (int64_t)bytes,
                         __ATOMIC_RELAXED);
        __atomic_store_n(&sc->counters->drain_rate_milli, (int64_t)rate_milli,
                         __ATOMIC_RELAXED);
    }
}

void cs_replicate_repair(server_rec *s, apr_pool_t *p)
{
    cs_server_conf *sc = cs_sconf(s);
    cs_repair_t *rs = cs_repair_of(s);
    apr_array_header_t *nodes;
    apr_time_t deadline = apr_time_now()
                          + (sc->heartbeat > apr_time_from_sec(1)
                             ? sc->heartbeat : apr_time_from_sec(1));
    apr_int64_t now = apr_time_sec(apr_time_now());
    ap_dbd_t *dbd;
    cs_node_t *me;
    int i, n, found = 0, failed = 0, draining;

    if (!(dbd = cs_registry_open(s, p))) {
        return;
    }
    if (cs_registry_nodes(s, p, dbd, &nodes) != APR_SUCCESS) {
        cs_registry_close(s, dbd);
        return;
    }
    /* This node draining (admin.h): its keys go elsewhere, copied by
     * this node (it holds every one), page by page as fast as the pushes
     * go, pass after pass while it drains (writes through it add keys);
     * what is left is counted for its status page. */
    me = cs_node_named(nodes, sc->node_name);
    draining = me && me->draining;
    if (!draining) {
        cs_drain_publish(sc, -1, -1, -1);
    }
    while (draining && !cs_stopping && apr_time_now() < deadline) {
        cs_dead_t *d = cs_state_named(rs, sc->node_name);
        char from[CS_KEY_MAX + 1];
        apr_int64_t k, b;
        const char *next;

        strcpy(from, d->cursor);
        if ((n = cs_repair_page(s, p, dbd, sc->node_name, 1, d->cursor,
                                &d->failed)) < 0) {
            break;
        }
        found += n;
        if (cs_registry_drain_left(s, p, dbd, sc->node_name, from, &k, &b,
                                   &next) == APR_SUCCESS) {
            d->keys += k;
            d->bytes += b;
        }
        if (!d->cursor[0]) {
            /* A pass ended: publish, and the next one in the next round. */
            apr_time_t t = apr_time_now();
            apr_int64_t rate = -1;
            if (d->last_at && t > d->last_at) {
                rate = (d->last_keys - d->keys) * 1000 * APR_USEC_PER_SEC
                       / (t - d->last_at);
                rate = rate < 0 ? 0 : rate;
            }
            cs_drain_publish(sc, d->keys, d->bytes, rate);
            d->last_keys = d->keys;
            d->last_at = t;
            d->keys = d->bytes = 0;
            d->failed = 0;
            break;
        }
    }
    /* A node that died names the keys to restore: its own rows, page by
     * page, as fast as the pushes go, until all are done (then it is left
     * alone until it comes back and dies again). */
    for (i = 0; i < nodes->nelts && !cs_stopping; i++) {
        cs_node_t *nd = &APR_ARRAY_IDX(nodes, i, cs_node_t);
        cs_dead_t *d;
        apr_int64_t died = now - nd->age;

        if (nd->alive || strcmp(nd->name, sc->node_name) == 0) {
            continue;
        }
        d = cs_state_named(rs, nd->name);
        if (d->died < died - 2 || d->died > died + 2) {
            d->died = died;     /* a new death: start over */
            d->done = d->failed = 0;
            d->cursor[0] = '\0';
        }
        while (!d->done && !cs_stopping && apr_time_now() < deadline) {
            if ((n = cs_repair_page(s, p, dbd, nd->name, 0, d->cursor,
                                    &d->failed)) < 0) {
                break;
            }
            found += n;
            if (!d->cursor[0]) {
                d->done = !d->failed;   /* else the next round, again */
                d->failed = 0;
                if (!d->done) {
                    failed = 1;
                }
                break;
            }
        }
    }
    /* And one page of this node's own keys per round: what no death
     * names (a copy quarantined elsewhere, a replica count raised). */
    if (!cs_stopping && !draining
        && (n = cs_repair_page(s, p, dbd, sc->node_name, 0, rs->cursor,
                               &failed)) > 0) {
        found += n;
    }
    if (sc->counters) {
        __atomic_store_n(&sc->counters->repair_backlog, (int64_t)found,
                         __ATOMIC_RELAXED);
    }
    cs_registry_close(s, dbd);
}

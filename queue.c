/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * queue.c - the durable replication queue; see queue.h.
 */
#include "queue.h"

#include "apr_atomic.h"
#include "apr_strings.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

static volatile apr_uint32_t cs_job_seq;

static apr_status_t cs_write_all(int fd, const char *buf, apr_size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return APR_FROM_OS_ERROR(errno);
        }
        buf += n;
        len -= (apr_size_t)n;
    }
    return APR_SUCCESS;
}

apr_status_t cs_queue_add(apr_pool_t *p, const cs_server_conf *sc,
                          const cs_job_t *job, const char **path)
{
    const char *name = apr_psprintf(p, "%016" APR_UINT64_T_HEX_FMT
                                    "-%ld-%u.job",
                                    (apr_uint64_t)apr_time_now(),
                                    (long)getpid(),
                                    apr_atomic_inc32(&cs_job_seq));
    const char *tmp = apr_pstrcat(p, sc->state_dir, "/tmp/job-",
                                  apr_ltoa(p, (long)getpid()), "-", name,
                                  NULL);
    const char *dst = apr_pstrcat(p, sc->state_dir, "/queue/", name, NULL);
    const char *body = apr_psprintf(p, "CSJ1 %c %" APR_UINT64_T_FMT
                                    "\n%s\n%s", job->op, job->version,
                                    job->key, job->relpath);
    apr_status_t rv;
    int fd, dfd;

    fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    rv = cs_write_all(fd, body, strlen(body));
    if (rv == APR_SUCCESS && fsync(fd) != 0) {
        rv = APR_FROM_OS_ERROR(errno);
    }
    close(fd);
    if (rv == APR_SUCCESS && rename(tmp, dst) != 0) {
        rv = APR_FROM_OS_ERROR(errno);
    }
    if (rv != APR_SUCCESS) {
        unlink(tmp);
        return rv;
    }
    dfd = open(apr_pstrcat(p, sc->state_dir, "/queue", NULL),
               O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        rv = APR_FROM_OS_ERROR(errno);
    }
    if (dfd >= 0) {
        close(dfd);
    }
    if (rv != APR_SUCCESS) {
        unlink(dst);
        return rv;
    }
    if (path) {
        *path = dst;
    }
    return APR_SUCCESS;
}

apr_status_t cs_queue_remove(apr_pool_t *p, const char *path)
{
    (void)p;
    if (unlink(path) != 0 && errno != ENOENT) {
        return APR_FROM_OS_ERROR(errno);
    }
    return APR_SUCCESS;
}

int cs_job_parse(apr_pool_t *p, const char *buf, apr_size_t len,
                 cs_job_t *job)
{
    const char *key, *rel;
    size_t klen, rlen;
    uint64_t version;
    char op;

    if (cs_job_decode(buf, len, &op, &version, &key, &klen, &rel, &rlen)
        != 0) {
        return -1;
    }
    job->op = op;
    job->version = version;
    job->key = apr_pstrmemdup(p, key, klen);
    job->relpath = apr_pstrmemdup(p, rel, rlen);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Draining (watchdog thread only)                                    */
/* ------------------------------------------------------------------ */

#include "registry.h"
#include "store.h"
#include "peer.h"
#include "apr_file_info.h"
#include "apr_hash.h"
#include "apr_tables.h"

#include <stdlib.h>

typedef enum { CS_JOB_DONE, CS_JOB_RETRY, CS_JOB_DB_DOWN } cs_job_result;

typedef struct {
    apr_time_t next;
    int attempts;
} cs_backoff_t;

/* Only the watchdog thread touches these (one thread per process). */
static apr_pool_t *cs_bg_pool;
static apr_hash_t *cs_backoff;
static apr_hash_t *cs_repair_cursor;

static void cs_bg_init(server_rec *s)
{
    if (!cs_bg_pool) {
        apr_pool_create(&cs_bg_pool, s->process->pool);
        apr_pool_tag(cs_bg_pool, "clusterstorage-background");
        cs_backoff = apr_hash_make(cs_bg_pool);
        cs_repair_cursor = apr_hash_make(cs_bg_pool);
    }
}

static int cs_name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
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
    if (cs_store_lock_key(p, sc, key, &lock) != APR_SUCCESS) {
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
    path = apr_pstrcat(p, sc->root, relpath, NULL);
    if (cs_store_open(p, path, key, 0, &f, &fi, &v, sha) != APR_SUCCESS
        || v != version) {
        path = NULL;
    }
    cs_store_unlock_key(lock);
    if (cs_registry_nodes(s, p, dbd, &nodes) != APR_SUCCESS) {
        return CS_JOB_DB_DOWN;
    }
    for (i = 0; i < holders->nelts; i++) {
        cs_node_t *h = &APR_ARRAY_IDX(holders, i, cs_node_t);
        if (h->alive || strcmp(h->name, sc->node_name) == 0) {
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
    for (i = 0; i < nodes->nelts && need > 0; i++) {
        cs_node_t *n = &APR_ARRAY_IDX(nodes, i, cs_node_t);
        apr_pool_t *sub;
        apr_status_t rv;
        int status = 0;

        if (!n->alive || strcmp(n->name, sc->node_name) == 0
            || cs_in_list(holders, n->name)) {
            continue;
        }
        apr_pool_create(&sub, p);
        rv = cs_peer_push(sub, sc, n->url, key, &e, path, &status);
        apr_pool_destroy(sub);
        if (rv == APR_SUCCESS && status >= 200 && status < 300) {
            need--;
            CS_COUNT(sc, replications_done, 1);
            if (repair) {
                CS_COUNT(sc, repairs, 1);
            }
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, CSLOG(403)
                         "%s %s v%" APR_UINT64_T_FMT " to %s",
                         repair ? "repaired" : "replicated", key, version,
                         n->name);
        }
        else {
            CS_COUNT(sc, replications_failed, 1);
            ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, CSLOG(404)
                         "replicating %s v%" APR_UINT64_T_FMT " to %s (%s) "
                         "failed: status %d", key, version, n->name, n->url,
                         status);
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
    if (cs_store_lock_key(p, sc, job->key, &lock) != APR_SUCCESS) {
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
        rv = cs_peer_delete(sub, sc, n->url, job->key, job->version, &status);
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

static apr_status_t cs_read_small(apr_pool_t *p, const char *path,
                                  char **buf, apr_size_t *len)
{
    apr_file_t *f;
    apr_status_t rv;
    apr_size_t n = CS_KEY_MAX + 64;

    rv = apr_file_open(&f, path, APR_FOPEN_READ, 0, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *buf = apr_palloc(p, n + 1);
    rv = apr_file_read_full(f, *buf, n, len);
    apr_file_close(f);
    return (rv == APR_SUCCESS || APR_STATUS_IS_EOF(rv)) ? APR_SUCCESS : rv;
}

static apr_array_header_t *cs_list_jobs(apr_pool_t *p, const char *dir)
{
    apr_array_header_t *names = apr_array_make(p, 16, sizeof(const char *));
    apr_dir_t *d;
    apr_finfo_t fi;

    if (apr_dir_open(&d, dir, p) != APR_SUCCESS) {
        return names;
    }
    while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, d)
           == APR_SUCCESS) {
        apr_size_t n = strlen(fi.name);
        if (fi.filetype == APR_REG && n > 4
            && strcmp(fi.name + n - 4, ".job") == 0) {
            APR_ARRAY_PUSH(names, const char *) = apr_pstrdup(p, fi.name);
        }
    }
    apr_dir_close(d);
    qsort(names->elts, names->nelts, sizeof(const char *), cs_name_cmp);
    return names;
}

void cs_queue_drain(server_rec *s, apr_pool_t *p)
{
    cs_server_conf *sc = cs_sconf(s);
    const char *dir = apr_pstrcat(p, sc->state_dir, "/queue", NULL);
    apr_array_header_t *names;
    ap_dbd_t *dbd = NULL;
    apr_time_t now = apr_time_now();
    int i;

    cs_bg_init(s);
    names = cs_list_jobs(p, dir);
    for (i = 0; i < names->nelts; i++) {
        const char *name = APR_ARRAY_IDX(names, i, const char *);
        const char *path = apr_pstrcat(p, dir, "/", name, NULL);
        cs_backoff_t *bo = apr_hash_get(cs_backoff, path,
                                        APR_HASH_KEY_STRING);
        apr_pool_t *sub;
        char *buf;
        apr_size_t len;
        cs_job_t job;
        cs_job_result res;

        if (bo && bo->next > now) {
            continue;
        }
        apr_pool_create(&sub, p);
        if (cs_read_small(sub, path, &buf, &len) != APR_SUCCESS) {
            apr_pool_destroy(sub);
            continue;
        }
        if (cs_job_parse(sub, buf, len, &job) != 0) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, CSLOG(406)
                         "removing malformed queue job %s", path);
            cs_queue_remove(sub, path);
            apr_pool_destroy(sub);
            continue;
        }
        if (!dbd && !(dbd = cs_registry_open(s, p))) {
            apr_pool_destroy(sub);
            break;          /* registry down: pause, jobs stay queued */
        }
        res = job.op == 'P'
              ? cs_replicate(s, sub, dbd, job.key, job.relpath, job.version, 0)
              : cs_propagate_delete(s, sub, dbd, &job);
        apr_pool_destroy(sub);
        if (res == CS_JOB_DONE) {
            cs_queue_remove(p, path);
            if (bo) {
                apr_hash_set(cs_backoff, path, APR_HASH_KEY_STRING, NULL);
            }
        }
        else if (res == CS_JOB_RETRY) {
            if (!bo) {
                bo = apr_pcalloc(cs_bg_pool, sizeof(*bo));
                apr_hash_set(cs_backoff, apr_pstrdup(cs_bg_pool, path),
                             APR_HASH_KEY_STRING, bo);
            }
            bo->attempts++;
            bo->next = now + apr_time_from_msec(
                100 * (1 << (bo->attempts < 9 ? bo->attempts : 9)));
            if (bo->next > now + apr_time_from_sec(30)) {
                bo->next = now + apr_time_from_sec(30);
            }
        }
        else {
            cs_registry_close(s, dbd);
            dbd = NULL;
            break;
        }
    }
    cs_registry_close(s, dbd);
}

void cs_repair_step(server_rec *s, apr_pool_t *p)
{
    cs_server_conf *sc = cs_sconf(s);
    apr_array_header_t *keys;
    const char *cursor;
    ap_dbd_t *dbd;
    int i;

    cs_bg_init(s);
    cursor = apr_hash_get(cs_repair_cursor, sc->node_name,
                          APR_HASH_KEY_STRING);
    if (!(dbd = cs_registry_open(s, p))) {
        return;
    }
    if (cs_registry_under_replicated(s, p, dbd, cursor ? cursor : "", &keys)
        == APR_SUCCESS) {
        for (i = 0; i < keys->nelts; i++) {
            const char **kr = APR_ARRAY_IDX(keys, i, const char **);
            cs_entry_t e;
            if (cs_registry_entry(s, p, dbd, kr[0], &e) == APR_SUCCESS
                && e.version && !e.deleted) {
                cs_replicate(s, p, dbd, kr[0], kr[1], e.version, 1);
            }
        }
        /* Next time continue after the last key; start over at the end. */
        apr_hash_set(cs_repair_cursor, sc->node_name, APR_HASH_KEY_STRING,
                     keys->nelts ? apr_pstrdup(cs_bg_pool,
                                               APR_ARRAY_IDX(keys,
                                                             keys->nelts - 1,
                                                             const char **)[0])
                                 : NULL);
    }
    cs_registry_close(s, dbd);
}

void cs_queue_stats(apr_pool_t *p, const cs_server_conf *sc, int *jobs,
                    apr_int64_t *oldest)
{
    apr_array_header_t *names = cs_list_jobs(
        p, apr_pstrcat(p, sc->state_dir, "/queue", NULL));

    *jobs = names->nelts;
    *oldest = 0;
    if (names->nelts) {
        /* Names start with the creation time in hex microseconds. */
        apr_int64_t t = (apr_int64_t)apr_strtoi64(
            APR_ARRAY_IDX(names, 0, const char *), NULL, 16);
        *oldest = apr_time_sec(apr_time_now() - t);
    }
}

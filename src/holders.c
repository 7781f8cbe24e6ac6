/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * holders.c - the holder rows of fetched copies, written in batches; see
 * holders.h.
 */
#include "holders.h"
#include "registry.h"
#include "store.h"

#include "apr_strings.h"
#include "apr_thread_mutex.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Keys one statement registers at most. */
#define CS_HOLDERS_BATCH 256

typedef struct {
    apr_uint64_t version;
    apr_uint64_t inode;         /* of the file fetched (0: not known) */
    apr_time_t added;
    int synced;                 /* a syncfs() since it was added */
    const char *path;           /* the copy's file: after key in buf */
    char key[];
} cs_pending_t;

/* A copy the registry has refused this long is given up (CS157). */
#define CS_HOLDERS_MAX_AGE apr_time_from_sec(60)

struct cs_holders_t {
    apr_thread_mutex_t *mu;
    cs_pending_t **v;           /* malloc'd, as is each entry */
    int n, cap;
    int stopped;                /* no thread writes them any more */
    int failing;                /* the last write failed (logged once) */
    int syncfd;                 /* the state directory, for syncfs() */
};

static apr_status_t cs_holders_free(void *data)
{
    struct cs_holders_t *h = data;
    int i;

    for (i = 0; i < h->n; i++) {
        free(h->v[i]);
    }
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
    if (h->syncfd >= 0) {
        close(h->syncfd);
        h->syncfd = -1;
    }
    return APR_SUCCESS;
}

apr_status_t cs_holders_child_init(apr_pool_t *pchild, server_rec *s)
{
    server_rec *vs, *o;

    for (vs = s; vs; vs = vs->next) {
        cs_server_conf *sc = cs_sconf(vs);
        struct cs_holders_t *h;
        apr_status_t rv;

        sc->holders = NULL;
        if (!sc->store.state_dir) {
            continue;
        }
        /* Servers of one node (one root) share its list: the watchdog
         * writes the list of the first of them (drive.c). */
        for (o = s; o != vs; o = o->next) {
            cs_server_conf *oc = cs_sconf(o);
            if (oc->holders && strcmp(oc->store.root, sc->store.root) == 0) {
                sc->holders = oc->holders;
                break;
            }
        }
        if (sc->holders) {
            continue;
        }
        h = apr_pcalloc(pchild, sizeof(*h));
        rv = apr_thread_mutex_create(&h->mu, APR_THREAD_MUTEX_DEFAULT,
                                     pchild);
        if (rv != APR_SUCCESS) {
            return rv;      /* sc->holders NULL: fetches register alone */
        }
        /* Kept open: a syncfs() reports the write errors that happened
         * since its descriptor was opened, so one opened at each flush
         * would miss those of the writes before. */
        h->syncfd = open(sc->store.state_dir,
                         O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        apr_pool_cleanup_register(pchild, h, cs_holders_free,
                                  apr_pool_cleanup_null);
        sc->holders = h;
    }
    return APR_SUCCESS;
}

int cs_holders_room(const cs_server_conf *sc)
{
    struct cs_holders_t *h = sc->holders;
    int ok;

    if (!h) {
        return 0;
    }
    apr_thread_mutex_lock(h->mu);
    ok = !h->stopped && h->n < CS_HOLDERS_MAX;
    apr_thread_mutex_unlock(h->mu);
    return ok;
}

/* Append e (malloc'd) to h's list, growing it; h->mu held.  0 if there is
 * no memory for it (e is then freed). */
static int cs_push(struct cs_holders_t *h, cs_pending_t *e)
{
    if (h->n == h->cap) {
        int cap = h->cap ? h->cap * 2 : 64;
        cs_pending_t **v = realloc(h->v, sizeof(*v) * (size_t)cap);
        if (!v) {
            free(e);
            return 0;
        }
        h->v = v;
        h->cap = cap;
    }
    h->v[h->n++] = e;
    return 1;
}

void cs_holders_add(const cs_server_conf *sc, const char *key,
                    const char *path, apr_uint64_t version,
                    apr_uint64_t inode)
{
    struct cs_holders_t *h = sc->holders;
    size_t len = strlen(key), plen = strlen(path);
    cs_pending_t *e = malloc(sizeof(*e) + len + plen + 2);

    if (!h || !e) {
        free(e);
        return;     /* the copy stays unregistered (holders.h) */
    }
    e->version = version;
    e->inode = inode;
    e->added = apr_time_now();
    e->synced = 0;
    memcpy(e->key, key, len + 1);
    memcpy(e->key + len + 1, path, plen + 1);
    e->path = e->key + len + 1;
    /* Past cs_holders_room() the list may grow a little over its bound
     * (by the threads that asked at the same time), never without one. */
    apr_thread_mutex_lock(h->mu);
    cs_push(h, e);
    apr_thread_mutex_unlock(h->mu);
}

void cs_holders_stop(server_rec *s)
{
    cs_server_conf *sc = cs_sconf(s);
    struct cs_holders_t *h = sc->holders;

    if (h) {
        apr_thread_mutex_lock(h->mu);
        h->stopped = 1;
        apr_thread_mutex_unlock(h->mu);
    }
}

/* Put the entries of v[0..n) that are not NULL back in front of what
 * came meanwhile, within the bound; those over it are dropped (left
 * unregistered). */
static void cs_requeue(struct cs_holders_t *h, cs_pending_t **v, int n)
{
    cs_pending_t **nv;
    int i, k = 0, total;

    apr_thread_mutex_lock(h->mu);
    total = n + h->n;
    nv = malloc(sizeof(*nv) * (size_t)(total ? total : 1));
    for (i = 0; i < total; i++) {
        cs_pending_t *e = i < n ? v[i] : h->v[i - n];
        if (!e) {
            continue;
        }
        if (nv && k < CS_HOLDERS_MAX) {
            nv[k++] = e;
        }
        else {
            free(e);
        }
    }
    free(h->v);
    h->v = nv;
    h->n = k;
    h->cap = nv ? total : 0;
    apr_thread_mutex_unlock(h->mu);
}

/* Register the copies v[0..n) (n <= CS_HOLDERS_BATCH) whose key locks
 * are free: under those locks, each copy still there at its version (a
 * quarantine or a newer version may have replaced it since) is
 * registered.  The decided ones (registered, or dropped when their copy
 * is gone) are freed and set to NULL in v, the busy ones stay.  -1 if the
 * registry failed (nothing decided). */
static int cs_register_some(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                            cs_pending_t **v, int n, int *registered,
                            const char **why)
{
    cs_server_conf *sc = cs_sconf(s);
    const char **keys = apr_palloc(p, sizeof(*keys) * (size_t)n);
    const char **ok = apr_palloc(p, sizeof(*ok) * (size_t)n);
    apr_uint64_t *versions = apr_palloc(p, sizeof(*versions) * (size_t)n);
    int *busy = apr_pcalloc(p, sizeof(*busy) * (size_t)n);
    cs_lockset_t *ls = NULL;
    apr_status_t rv;
    int i, m = 0, d = 0;

    for (i = 0; i < n; i++) {
        keys[i] = v[i]->key;
    }
    if (cs_store_trylock_many(p, &sc->store, keys, n, busy, &ls)
        != APR_SUCCESS) {
        *why = "the key locks could not be tried";
        return -1;
    }
    for (i = 0; i < n; i++) {
        apr_file_t *f;
        apr_finfo_t fi;
        apr_uint64_t ver = 0;
        char sha[CS_SHA256_HEX_LEN + 1];
        apr_pool_t *fp;
        if (busy[i]) {
            continue;
        }
        /* The descriptor goes with fp (cs_store_open registers its close
         * there; closing it by hand would close it twice). */
        apr_pool_create(&fp, p);
        if (cs_store_open(fp, v[i]->path, v[i]->key, 0, &f, &fi, &ver, sha)
            == APR_SUCCESS && ver == v[i]->version
            && (!v[i]->inode || (apr_uint64_t)fi.inode == v[i]->inode)) {
            ok[m] = v[i]->key;
            versions[m++] = v[i]->version;
        }
        apr_pool_destroy(fp);
    }
    rv = cs_registry_add_replicas(s, p, dbd, ok, versions, m, why);
    cs_store_unlock_many(ls);
    if (rv != APR_SUCCESS) {
        return -1;
    }
    *registered += m;
    /* The decided ones are done; the busy ones stay in v. */
    for (i = 0; i < n; i++) {
        if (!busy[i]) {
            free(v[i]);
            v[i] = NULL;
            d++;
        }
    }
    return d;
}

void cs_holders_flush(server_rec *s, apr_pool_t *p)
{
    cs_server_conf *sc = cs_sconf(s);
    struct cs_holders_t *h = sc->holders;
    cs_pending_t **v;
    apr_pool_t *sub;
    ap_dbd_t *dbd;
    apr_status_t rv;
    apr_time_t t0;
    int n, i, done = 0, registered = 0;
    const char *why = NULL;

    if (!h) {
        return;
    }
    apr_thread_mutex_lock(h->mu);
    v = h->v;
    n = h->n;
    h->v = NULL;
    h->n = h->cap = 0;
    apr_thread_mutex_unlock(h->mu);
    if (n == 0) {
        free(v);
        return;
    }
    t0 = apr_time_now();
    /* The renames durable first: every fetched copy is on the state
     * directory's file system (renamed there from its temp directory);
     * not again for copies a previous tick synced already. */
    for (i = 0; i < n && v[i]->synced; i++) {
    }
    rv = APR_SUCCESS;
    if (i < n) {
        rv = h->syncfd >= 0 ? (syncfs(h->syncfd) == 0
                               ? APR_SUCCESS : APR_FROM_OS_ERROR(errno))
                            : cs_store_sync_fs(sc->store.state_dir, NULL);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, CSLOG(154)
                     "syncfs() of %s failed: %d fetched copies "
                     "are kept, but this node is not registered as their "
                     "holder",
                     sc->store.state_dir, n);
        for (i = 0; i < n; i++) {
            free(v[i]);
        }
        free(v);
        return;
    }
    for (i = 0; i < n; i++) {
        v[i]->synced = 1;
    }
    apr_pool_create(&sub, p);
    dbd = cs_registry_open(s, sub);
    for (i = 0; dbd && i < n; i += CS_HOLDERS_BATCH) {
        int m = n - i > CS_HOLDERS_BATCH ? CS_HOLDERS_BATCH : n - i, d;
        apr_pool_t *bp;
        apr_pool_create(&bp, sub);
        d = cs_register_some(s, bp, dbd, v + i, m, &registered, &why);
        if (d < 0) {
            why = apr_pstrdup(sub, why);
            apr_pool_destroy(bp);
            break;
        }
        apr_pool_destroy(bp);
        done += d;
    }
    cs_registry_close(s, dbd);
    if (!dbd || why) {
        if (!h->failing) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, CSLOG(153)
                         "%d fetched copies could not be "
                         "registered (%s); kept for the next try, and "
                         "not logged again until a batch is registered",
                         n - done, dbd ? why : "the registry is unreachable");
        }
        CS_COUNT(sc, registry_errors, 1);
        h->failing = 1;
    }
    else {
        h->failing = 0;
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, CSLOG(155)
                     "registered %d fetched copies in %"
                     APR_TIME_T_FMT
                     " ms; %d no longer there, %d waiting for their key "
                     "lock", registered, apr_time_as_msec(apr_time_now()
                                                          - t0),
                     done - registered, n - done);
    }
    apr_pool_destroy(sub);
    /* Those not decided (their key was locked, or the registry failed)
     * wait for the next tick, unless they have waited too long. */
    if (!dbd || why) {
        int old = 0;
        for (i = 0; i < n; i++) {
            if (v[i] && t0 - v[i]->added > CS_HOLDERS_MAX_AGE) {
                free(v[i]);
                v[i] = NULL;
                old++;
            }
        }
        if (old) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, CSLOG(157)
                         "%d fetched copies given up unregistered after %d s"
                         " of failed registrations (served here; not offered "
                         "to other nodes)", old,
                         (int)apr_time_sec(CS_HOLDERS_MAX_AGE));
        }
    }
    cs_requeue(h, v, n);
    free(v);
}

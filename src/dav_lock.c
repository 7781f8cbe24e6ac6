/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * dav_lock.c - WebDAV locks in the registry (cs_locks, names.h), so that
 * a lock taken through one node is enforced by every node, survives the
 * restart of the node that granted it and ends at its timeout (by the
 * database's clock).
 *
 * mod_dav keeps "indirect" locks (those a member inherits from a Depth
 * infinity lock on an ancestor) as records of their own, appended to each
 * member as it is created.  Here they are not stored: the locks of a key
 * are computed from the lock rows on the key and on its ancestors, so a
 * member created later, moved in, or on a node that missed nothing is
 * covered all the same.  Appending an indirect lock is therefore a no-op.
 */
#include "dav_lock.h"
#include "cs_private.h"
#include "names.h"
#include "registry.h"

#include "http_protocol.h"
#include "apr_strings.h"
#include "apr_lib.h"
#include "apr_uuid.h"

#include <time.h>

#define CS_LOCK_SCHEME "opaquelocktoken:"

struct dav_locktoken {
    const char *uuid;           /* 36 characters */
};

struct dav_lockdb_private {
    request_rec *r;
    /* The locks of one subtree and of its ancestors, read with one query
     * (a walk asks for every member: PROPFIND, MOVE, DELETE); forgotten
     * when this request changes a lock. */
    const char *memo_root;
    apr_array_header_t *memo;   /* cs_lock_t */
    int turn;                   /* this LOCK holds the cluster's lock turn */
};

/* The name of the turn LOCK requests take: a lock's check for conflicts
 * and its insert are one step cluster-wide (two exclusive locks taken at
 * once through any nodes: one 200, the other 423). */
#define CS_LOCK_TURN "\001dav-locks"


static const cs_dav_api_t *cs_api;

static dav_error *cs_lock_err(apr_pool_t *p, int status, int id,
                              const char *desc)
{
    return cs_api->new_error(p, status, id, 0, desc);
}

static dav_error *cs_lock_unavailable(apr_pool_t *p)
{
    return cs_lock_err(p, HTTP_SERVICE_UNAVAILABLE, DAV_ERR_LOCK_OPENDB,
                       "the registry cannot be reached");
}

static const char *cs_lock_supported(const dav_resource *res)
{
    return "<D:lockentry><D:lockscope><D:exclusive/></D:lockscope>"
           "<D:locktype><D:write/></D:locktype></D:lockentry>" DEBUG_CR
           "<D:lockentry><D:lockscope><D:shared/></D:lockscope>"
           "<D:locktype><D:write/></D:locktype></D:lockentry>" DEBUG_CR;
}

static int cs_is_uuid(const char *s)
{
    int i;

    for (i = 0; i < 36; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !apr_isxdigit(s[i])) {
            return 0;
        }
    }
    return s[36] == '\0';
}

static dav_error *cs_lock_parse(apr_pool_t *p, const char *text,
                                dav_locktoken **out)
{
    dav_locktoken *lt;

    if (strncmp(text, CS_LOCK_SCHEME, sizeof(CS_LOCK_SCHEME) - 1) != 0) {
        /* mod_dav treats such a token in If: as a state that never
         * matches. */
        return cs_lock_err(p, HTTP_BAD_REQUEST, DAV_ERR_LOCK_UNK_STATE_TOKEN,
                           "the lock token uses an unknown State-token "
                           "format");
    }
    text += sizeof(CS_LOCK_SCHEME) - 1;
    if (!cs_is_uuid(text)) {
        return cs_lock_err(p, HTTP_BAD_REQUEST, DAV_ERR_LOCK_PARSE_TOKEN,
                           "the lock token is malformed");
    }
    lt = apr_palloc(p, sizeof(*lt));
    lt->uuid = apr_pstrdup(p, text);
    *out = lt;
    return NULL;
}

static const char *cs_lock_format(apr_pool_t *p, const dav_locktoken *lt)
{
    return apr_pstrcat(p, CS_LOCK_SCHEME, lt->uuid, NULL);
}

static int cs_lock_compare(const dav_locktoken *a, const dav_locktoken *b)
{
    return strcmp(a->uuid, b->uuid);
}

static dav_error *cs_lock_open(request_rec *r, int ro, int force,
                               dav_lockdb **out)
{
    dav_lockdb *db = apr_pcalloc(r->pool, sizeof(*db));

    db->hooks = &cs_dav_lock_hooks;
    db->ro = ro;
    db->info = apr_pcalloc(r->pool, sizeof(*db->info));
    db->info->r = r;
    if (!ro && r->method_number == M_LOCK) {
        apr_status_t rv = cs_registry_turn(r, CS_LOCK_TURN, 10);
        if (rv == APR_TIMEUP) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CSLOG(085)
                          "LOCK %s: other LOCKs kept the cluster's lock turn "
                          "for 10 s (503); no lock taken", r->uri);
            return cs_lock_err(r->pool, HTTP_SERVICE_UNAVAILABLE, 0,
                               "no turn to take a lock within 10 s");
        }
        db->info->turn = rv == APR_SUCCESS;
    }
    *out = db;
    return NULL;
}

static void cs_lock_close(dav_lockdb *db)
{
    if (db->info->turn) {
        db->info->turn = 0;
        cs_registry_turn_end(db->info->r, CS_LOCK_TURN);
    }
}

static dav_error *cs_lock_remove_locknull(dav_lockdb *db,
                                          const dav_resource *res)
{
    return NULL;                /* the locks stay; the key now exists */
}

static dav_error *cs_lock_create(dav_lockdb *db, const dav_resource *res,
                                 dav_lock **out)
{
    apr_pool_t *p = db->info->r->pool;
    dav_lock *lock = apr_pcalloc(p, sizeof(*lock));
    dav_locktoken *lt = apr_palloc(p, sizeof(*lt));
    apr_uuid_t uuid;
    char buf[APR_UUID_FORMATTED_LENGTH + 1];

    apr_uuid_get(&uuid);
    apr_uuid_format(buf, &uuid);
    lt->uuid = apr_pstrdup(p, buf);
    lock->rectype = DAV_LOCKREC_DIRECT;
    lock->is_locknull = !res->exists;
    lock->locktoken = lt;
    *out = lock;
    return NULL;
}

/* The dav_lock of row l as seen from key. */
static dav_lock *cs_lock_from_row(apr_pool_t *p, const cs_lock_t *l,
                                  const dav_resource *res)
{
    dav_lock *lock = apr_pcalloc(p, sizeof(*lock));
    dav_locktoken *lt = apr_palloc(p, sizeof(*lt));

    lt->uuid = l->token;
    lock->rectype = strcmp(l->key, cs_api->key(res)) == 0
                    ? DAV_LOCKREC_DIRECT : DAV_LOCKREC_INDIRECT;
    lock->is_locknull = !res->exists;
    lock->scope = l->shared ? DAV_LOCKSCOPE_SHARED : DAV_LOCKSCOPE_EXCLUSIVE;
    lock->type = DAV_LOCKTYPE_WRITE;
    lock->depth = l->depth ? DAV_INFINITY : 0;
    lock->timeout = (time_t)l->expires;     /* 0 is DAV_TIMEOUT_INFINITE */
    lock->locktoken = lt;
    lock->owner = *l->owner ? l->owner : NULL;
    lock->auth_user = *l->auth_user ? l->auth_user : NULL;
    return lock;
}

/* Is key root or below it? */
static int cs_in_tree(const char *key, const char *root)
{
    apr_size_t n = strlen(root);

    return strncmp(key, root, n) == 0 && (key[n] == '\0' || key[n] == '/');
}

static dav_error *cs_lock_get(dav_lockdb *db, const dav_resource *res,
                              int calltype, dav_lock **out)
{
    struct dav_lockdb_private *info = db->info;
    request_rec *r = info->r;
    const char *key = cs_api->key(res);
    int i;

    *out = NULL;
    if (!info->memo || !cs_in_tree(key, info->memo_root)) {
        ap_dbd_t *dbd = cs_registry_acquire(r);
        if (!dbd || cs_names_locks_tree(r->server, r->pool, dbd, key,
                                        &info->memo) != APR_SUCCESS) {
            info->memo = NULL;
            return cs_lock_unavailable(r->pool);
        }
        info->memo_root = key;
    }
    /* Those on key itself, and those of depth infinity above it. */
    for (i = info->memo->nelts - 1; i >= 0; i--) {
        const cs_lock_t *l = &APR_ARRAY_IDX(info->memo, i, cs_lock_t);
        dav_lock *lock;
        if (strcmp(l->key, key) != 0
            && !(l->depth && cs_in_tree(key, l->key))) {
            continue;
        }
        lock = cs_lock_from_row(r->pool, l, res);
        lock->next = *out;
        *out = lock;
    }
    return NULL;
}

static dav_error *cs_lock_find(dav_lockdb *db, const dav_resource *res,
                               const dav_locktoken *lt, int partial_ok,
                               dav_lock **out)
{
    dav_lock *all, *l;
    dav_error *err = cs_lock_get(db, res, 0, &all);

    *out = NULL;
    for (l = all; !err && l; l = l->next) {
        if (strcmp(l->locktoken->uuid, lt->uuid) == 0) {
            l->next = NULL;
            *out = l;
            break;
        }
    }
    return err;
}

static dav_error *cs_lock_has(dav_lockdb *db, const dav_resource *res,
                              int *present)
{
    dav_lock *all;
    dav_error *err = cs_lock_get(db, res, 0, &all);

    *present = all != NULL;
    return err;
}

static apr_int64_t cs_lock_ttl(time_t timeout)
{
    time_t now = time(NULL);

    if (timeout == DAV_TIMEOUT_INFINITE) {
        return 0;
    }
    return timeout > now ? (apr_int64_t)(timeout - now) : 1;
}

static dav_error *cs_lock_append(dav_lockdb *db, const dav_resource *res,
                                 int make_indirect, const dav_lock *lock)
{
    request_rec *r = db->info->r;
    ap_dbd_t *dbd;

    db->info->memo = NULL;      /* this request changes the locks */
    if (make_indirect) {
        return NULL;            /* inherited locks are computed */
    }
    if (!(dbd = cs_registry_acquire(r))) {
        return cs_lock_unavailable(r->pool);
    }
    for (; lock; lock = lock->next) {
        cs_lock_t l;
        l.token = lock->locktoken->uuid;
        l.key = cs_api->key(res);
        l.depth = lock->depth != 0;
        l.shared = lock->scope == DAV_LOCKSCOPE_SHARED;
        l.owner = lock->owner;
        l.auth_user = lock->auth_user;
        l.expires = 0;
        if (cs_names_lock_add(r->server, r->pool, dbd, &l,
                              cs_lock_ttl(lock->timeout)) != APR_SUCCESS) {
            return cs_lock_unavailable(r->pool);
        }
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, CSLOG(122)
                      "lock %s taken on %s (depth %s, %s)", l.token, l.key,
                      l.depth ? "infinity" : "0",
                      l.shared ? "shared" : "exclusive");
    }
    return NULL;
}

static dav_error *cs_lock_remove(dav_lockdb *db, const dav_resource *res,
                                 const dav_locktoken *lt)
{
    request_rec *r = db->info->r;
    ap_dbd_t *dbd = cs_registry_acquire(r);
    dav_lock *all, *l;
    dav_error *err;

    db->info->memo = NULL;      /* this request changes the locks */
    if (!dbd) {
        return cs_lock_unavailable(r->pool);
    }
    if (lt) {
        if (cs_names_lock_del(r->server, r->pool, dbd, lt->uuid)
            != APR_SUCCESS) {
            return cs_lock_unavailable(r->pool);
        }
        return NULL;
    }
    /* Every lock taken on res itself. */
    if ((err = cs_lock_get(db, res, 0, &all)) != NULL) {
        return err;
    }
    for (l = all; l; l = l->next) {
        if (l->rectype == DAV_LOCKREC_DIRECT
            && cs_names_lock_del(r->server, r->pool, dbd, l->locktoken->uuid)
               != APR_SUCCESS) {
            return cs_lock_unavailable(r->pool);
        }
    }
    return NULL;
}

static dav_error *cs_lock_refresh(dav_lockdb *db, const dav_resource *res,
                                  const dav_locktoken_list *ltl,
                                  time_t new_time, dav_lock **out)
{
    request_rec *r = db->info->r;
    ap_dbd_t *dbd = cs_registry_acquire(r);
    dav_lock *all, *l, *next;
    dav_error *err;

    db->info->memo = NULL;      /* this request changes the locks */
    *out = NULL;
    if (!dbd) {
        return cs_lock_unavailable(r->pool);
    }
    if ((err = cs_lock_get(db, res, 0, &all)) != NULL) {
        return err;
    }
    for (l = all; l; l = next) {
        const dav_locktoken_list *t;
        next = l->next;
        for (t = ltl; t; t = t->next) {
            if (strcmp(t->locktoken->uuid, l->locktoken->uuid) == 0) {
                break;
            }
        }
        if (!t) {
            continue;
        }
        if (cs_names_lock_refresh(r->server, r->pool, dbd,
                                  l->locktoken->uuid, cs_lock_ttl(new_time))
            != APR_SUCCESS) {
            return cs_lock_unavailable(r->pool);
        }
        l->timeout = new_time;
        l->next = *out;
        *out = l;
    }
    return NULL;
}

static dav_error *cs_lock_lookup(dav_lockdb *db, const dav_locktoken *lt,
                                 const dav_resource *start,
                                 const dav_resource **out)
{
    request_rec *r = db->info->r;
    ap_dbd_t *dbd = cs_registry_acquire(r);
    cs_lock_t l;
    int found = 0;

    *out = NULL;
    if (!dbd || cs_names_lock_get(r->server, r->pool, dbd, lt->uuid, &l,
                                  &found) != APR_SUCCESS) {
        return cs_lock_unavailable(r->pool);
    }
    if (!found) {
        return cs_lock_err(r->pool, HTTP_BAD_REQUEST,
                           DAV_ERR_LOCK_UNK_STATE_TOKEN,
                           "no such lock (it may have expired)");
    }
    return cs_api->resource_at(start, l.key, out);
}

const dav_hooks_locks cs_dav_lock_hooks = {
    cs_lock_supported,
    cs_lock_parse,
    cs_lock_format,
    cs_lock_compare,
    cs_lock_open,
    cs_lock_close,
    cs_lock_remove_locknull,
    cs_lock_create,
    cs_lock_get,
    cs_lock_find,
    cs_lock_has,
    cs_lock_append,
    cs_lock_remove,
    cs_lock_refresh,
    cs_lock_lookup,
    NULL
};

void cs_dav_lock_init(const cs_dav_api_t *api)
{
    cs_api = api;
}

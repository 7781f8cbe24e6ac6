/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * names.h - the namespace in the registry: collections, listings, dead
 * properties and locks (SPEC section 8).
 *
 * Files stay where registry.h keeps them (cs_files, one row per key, with
 * its parent collection); this adds
 *   cs_dirs   one row per collection, indexed by parent, so that a
 *             listing reads only the members of one collection;
 *   cs_props  dead properties, one row per (key, namespace, name), the
 *             value a self-contained XML element;
 *   cs_locks  WebDAV locks, one row per token, with their expiry by the
 *             database's clock: every node enforces every lock.
 * A subtree is the key range [K/, K0) ('0' follows '/' in byte order), so
 * it is read with the primary key, never with LIKE.
 *
 * Every function takes an explicit connection and returns an APR status
 * (APR_EGENERAL: the database could not be asked, logged).
 */
#ifndef CS_NAMES_H
#define CS_NAMES_H

#include "registry.h"

/* A member of a collection. */
typedef struct {
    const char *key;
    int collection;
    cs_entry_t e;           /* a file's entry (collections: mtime only) */
} cs_member_t;

/* *exists: is key a collection?  *mtime its creation time (µs). */
apr_status_t cs_names_dir(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                          const char *key, int *exists, apr_int64_t *mtime);

/* The members of collection key (cs_member_t), collections first, each
 * group in key order. */
apr_status_t cs_names_members(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                              const char *key, apr_array_header_t **out);

/* Live files below key, at any depth (const char * keys, in order). */
apr_status_t cs_names_files_below(server_rec *s, apr_pool_t *p,
                                  ap_dbd_t *dbd, const char *key,
                                  apr_array_header_t **out);

/* Create collection key (its parent must exist).  *created 0: it existed
 * already. */
apr_status_t cs_names_mkcol(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                            const char *key, apr_int64_t mtime,
                            int *created);

/* Remove collection key and every collection, property and lock below
 * it (its files are tombstoned one by one by the caller first). */
apr_status_t cs_names_rmcol(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                            const char *key);

/* Copy the collections below src (and src itself) to the same places
 * below dst, with mtime. */
apr_status_t cs_names_copy_dirs(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                                const char *src, const char *dst,
                                apr_int64_t mtime);

/* ---- dead properties ------------------------------------------------- */

typedef struct {
    const char *ns;         /* "" for no namespace */
    const char *name;
    const char *value;      /* the whole element, as XML text */
} cs_prop_t;

/* Every dead property of key (cs_prop_t), by namespace and name. */
apr_status_t cs_names_props(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                            const char *key, apr_array_header_t **out);
apr_status_t cs_names_prop_set(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                               const char *key, const cs_prop_t *prop);
apr_status_t cs_names_prop_del(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                               const char *key, const char *ns,
                               const char *name);
/* The dead properties of src (and, with depth, of everything below it)
 * copied to dst, replacing dst's.  Without depth only src's own. */
apr_status_t cs_names_props_copy(server_rec *s, apr_pool_t *p,
                                 ap_dbd_t *dbd, const char *src,
                                 const char *dst, int depth);
/* Drop the dead properties of key (with depth: and below it). */
apr_status_t cs_names_props_drop(server_rec *s, apr_pool_t *p,
                                 ap_dbd_t *dbd, const char *key, int depth);

/* ---- locks ------------------------------------------------------------ */

typedef struct {
    const char *token;      /* a UUID, without "opaquelocktoken:" */
    const char *key;        /* where it was taken (the lock root) */
    int depth;              /* 0 or 1 (infinity) */
    int shared;
    const char *owner;      /* XML, may be "" */
    const char *auth_user;
    apr_int64_t expires;    /* seconds, database clock; 0: never */
} cs_lock_t;

/* The live locks that cover key: taken on key itself, or with depth
 * infinity on one of its ancestors (cs_lock_t). */
apr_status_t cs_names_locks(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                            const char *key, apr_array_header_t **out);
/* The same for key and everything below it in one query: the live locks
 * taken on key, below it, or with depth infinity on an ancestor. */
apr_status_t cs_names_locks_tree(server_rec *s, apr_pool_t *p,
                                 ap_dbd_t *dbd, const char *key,
                                 apr_array_header_t **out);
/* The live lock with token (found 0: none). */
apr_status_t cs_names_lock_get(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                               const char *token, cs_lock_t *lock,
                               int *found);
/* Record lock (its expiry given as seconds from now; 0: infinite). */
apr_status_t cs_names_lock_add(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                               const cs_lock_t *lock, apr_int64_t ttl);
apr_status_t cs_names_lock_del(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                               const char *token);
/* Let the lock with token run ttl seconds from now. */
apr_status_t cs_names_lock_refresh(server_rec *s, apr_pool_t *p,
                                   ap_dbd_t *dbd, const char *token,
                                   apr_int64_t ttl);

#endif /* CS_NAMES_H */

/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * registry.h - who holds what.
 *
 * The truth lives in MySQL/MariaDB, reached through mod_dbd (per request
 * with ap_dbd_acquire, in background threads with ap_dbd_open/close).  The
 * module creates its tables if they are missing (conf/schema.sql is the same
 * DDL for DBAs).  Statements are prepared lazily on each connection and
 * re-prepared after the database restarts.
 *
 * Lookups go through this node's cache (cache.h), then memcached
 * (mcache.h: signed values, readers add, writers set after their commit,
 * absent keys cached too so a 404 is cheap), then the database; memcached
 * down or not configured: every miss goes to the database.
 *
 * Versions are allocated inside the writer's transaction, under the row lock
 * of the key, so two nodes writing one key never produce the same version
 * and a conditional PUT/DELETE is decided against the committed state.
 */
#ifndef CS_REGISTRY_H
#define CS_REGISTRY_H

#include "config.h"
#include "cache.h"
#include "apr_dbd.h"
#include "mod_dbd.h"

/* Callbacks run inside the write transaction, under the key's row lock. */
typedef struct {
    /* Decide a precondition against the committed current entry; return
     * OK to proceed or an HTTP status (412) to abort. May be NULL. */
    int (*precondition)(request_rec *r, const cs_entry_t *cur, void *baton);
    /* Make the new version durable locally before the commit (xattrs on the
     * temp file, queue job).  Non-APR_SUCCESS aborts the transaction. */
    apr_status_t (*prepare)(request_rec *r, const cs_entry_t *next,
                            void *baton);
    /* Undo prepare() when the transaction did not commit. May be NULL. */
    void (*abort)(request_rec *r, const cs_entry_t *next, void *baton);
    void *baton;
    /* The new version's time as the client set it (X-OC-Mtime), or 0 for
     * now (kept later than the current version's). */
    apr_time_t mtime;
} cs_write_ops_t;

/* 1 if mod_dbd's optional functions are there (call in post_config). */
int cs_registry_have_dbd(void);

/* Per child: connect the memcached client of every node (server_rec). */
apr_status_t cs_registry_child_init(apr_pool_t *p, server_rec *s);

/* Current entry of key: memcached, then the database.  APR_SUCCESS with
 * e->version == 0 means "never stored".  Any other status: the registry
 * could not be read (the caller degrades per SPEC promise 7).  *local gets
 * the identity of this node's verified copy when the entry came from the
 * node-local cache and it knows one (cache.h), else zeros. */
apr_status_t cs_registry_get(request_rec *r, const char *key, cs_entry_t *e,
                             cs_local_t *local);

/* The entry of key straight from the database and, in the same round
 * trip, the nodes registered as holders of that version (cs_node_t) --
 * what a GET needs before it fetches a copy.  *holders is NULL on error. */
apr_status_t cs_registry_get_db_holders(request_rec *r, const char *key,
                                        cs_entry_t *e,
                                        apr_array_header_t **holders);

/* The same, straight from the database (used to settle a disagreement
 * between the cache and the local copy). */
apr_status_t cs_registry_get_db(request_rec *r, const char *key,
                                cs_entry_t *e);

/* Commit a new version of key (size, sha256) held by this node; relpath is
 * the key's file below ClusterStorageRoot (used by background repair).  Returns
 * OK with *out the committed entry and *created set when the key had no
 * live version, or an HTTP status: the precondition's, or 503 when the
 * database cannot be reached or refuses the transaction. */
int cs_registry_put(request_rec *r, const char *key, const char *relpath,
                    apr_uint64_t size,
                    const char *sha256, const cs_write_ops_t *ops,
                    cs_entry_t *out, int *created);

/* One key of a batch of first versions (cs_registry_create_batch()). */
typedef struct {
    const char *key;
    const char *relpath;        /* below ClusterStorageRoot */
    apr_uint64_t size;
    char sha256[CS_SHA256_HEX_LEN + 1];
    apr_time_t mtime;           /* its Last-Modified */
    void *baton;                /* the caller's */
    int found;                  /* out: the registry has a version of it */
    cs_entry_t e;               /* out: the entry written, or found */
} cs_batch_key_t;

/* Run in the batch's transaction once its rows are written (prepare:
 * make every written key durable locally, non-APR_SUCCESS aborts), and
 * after a commit that failed (abort: undo prepare). */
typedef struct {
    apr_status_t (*prepare)(request_rec *r, cs_batch_key_t *keys, int n,
                            void *baton);
    void (*abort)(request_rec *r, cs_batch_key_t *keys, int n, void *baton);
    void *baton;
} cs_batch_ops_t;

/* In one transaction: version 1 of every key of keys[0..n) that the
 * registry has never stored, acknowledged, with this node as its holder
 * and its parents as collections (sorted keys share them: their
 * statement runs once per directory); a key it has (a version, or a
 * tombstone) is only marked found.  memcached learns the written ones.
 * OK, 409 (a writer holds a row of one of them: nothing written, do
 * them one by one), 500 (prepare failed) or 503. */
int cs_registry_create_batch(request_rec *r, cs_batch_key_t *keys, int n,
                             const cs_batch_ops_t *ops);

/* A version that cs_registry_put() committed is not yet acknowledged:
 * until its writer calls this, just before it answers, a node that
 * cannot reach any holder of it may serve the version before it (SPEC
 * promise 11: an unfinished write never hides the last finished one). */
apr_status_t cs_registry_ack(request_rec *r, const char *key,
                             apr_uint64_t version);
/* *unacked: version of key is current, a file, and not acknowledged. */
apr_status_t cs_registry_unacked(request_rec *r, const char *key,
                                 apr_uint64_t version, int *unacked);

/* Commit a tombstone for key.  OK, 404 (absent or already deleted), the
 * precondition's status, or 503. */
int cs_registry_delete(request_rec *r, const char *key,
                       const cs_write_ops_t *ops, cs_entry_t *out);

/* Record this node's URL and heartbeat, then apply (to this node's cache)
 * and remove the invalidations queued for it (background thread). */
apr_status_t cs_registry_heartbeat(server_rec *s, apr_pool_t *p);

/* *skew: the database's clock minus this node's (background thread). */
apr_status_t cs_registry_clock_skew(server_rec *s, apr_pool_t *p,
                                    apr_interval_time_t *skew);

/* Create the tables if missing (background thread at start-up). */
apr_status_t cs_registry_ensure_schema(server_rec *s, apr_pool_t *p);

/* ---- cluster queries, on an explicit connection ----------------------- */

/* A member of the cluster as the registry sees it. */
typedef struct {
    const char *name;
    const char *url;
    int alive;              /* heartbeat younger than CS_ALIVE_PERIODS */
    apr_int64_t age;        /* seconds since the last heartbeat */
    int period;             /* its heartbeat period, seconds */
    int lease;              /* how long it trusts its cache (0: no cache) */
    int draining;           /* being emptied: serves, takes no new copies,
                             * its copies do not count (admin.h) */
} cs_node_t;

/* The request's connection (NULL, logged, when the database is down). */
ap_dbd_t *cs_registry_acquire(request_rec *r);
/* A connection for background work; give it back with _close. */
ap_dbd_t *cs_registry_open(server_rec *s, apr_pool_t *p);
void cs_registry_close(server_rec *s, ap_dbd_t *dbd);

apr_status_t cs_registry_entry(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                               const char *key, cs_entry_t *e);
/* The entry of key and the nodes registered as holders of its current
 * version (cs_node_t), in one round trip. */
apr_status_t cs_registry_entry_holders(server_rec *s, apr_pool_t *p,
                                       ap_dbd_t *dbd, const char *key,
                                       cs_entry_t *e,
                                       apr_array_header_t **holders);
/* Nodes registered as holders of key at version (cs_node_t). */
apr_status_t cs_registry_holders(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                                 const char *key, apr_uint64_t version,
                                 apr_array_header_t **out);
/* Every node that ever recorded a heartbeat (cs_node_t), by name. */
apr_status_t cs_registry_nodes(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                               apr_array_header_t **out);
/* Register s's node as a holder of key at version, if that version is
 * still the current one (one statement).  *added (if not NULL) says
 * whether this node now holds the current version in the registry. */
apr_status_t cs_registry_add_replica(server_rec *s, apr_pool_t *p,
                                     ap_dbd_t *dbd, const char *key,
                                     apr_uint64_t version, int *added);
/* cs_registry_add_replica() for n keys at once (one statement, not
 * prepared: its length varies): s's node becomes a holder of each
 * keys[i] whose current version is still versions[i].  Not logged: on
 * failure *why says what the database said (the caller logs it). */
apr_status_t cs_registry_add_replicas(server_rec *s, apr_pool_t *p,
                                      ap_dbd_t *dbd, const char *const *keys,
                                      const apr_uint64_t *versions, int n,
                                      const char **why);
/* Rows of the registry one repair statement reads at most. */
#define CS_REPAIR_PAGE 500

/* Repair: among one page (CS_REPAIR_PAGE rows, in key order after
 * `after`) of the keys node held, those whose current version s's node
 * holds too and must repair: fewer live holders than
 * ClusterStorageReplicas, and s's node the first live holder by name
 * (rows of {key, relpath}).  draining: node is s's own node, draining
 * (admin.h): every key of the page with fewer copies than that on nodes
 * that are up and do not drain.  *next: where the next page starts, ""
 * at the end. */
apr_status_t cs_registry_under_replicated(server_rec *s, apr_pool_t *p,
                                          ap_dbd_t *dbd, const char *node,
                                          const char *after, int draining,
                                          apr_array_header_t **keys,
                                          const char **next);

/* Draining (admin.h): mark node draining (on) or not; *found: it exists. */
apr_status_t cs_registry_set_draining(server_rec *s, apr_pool_t *p,
                                      ap_dbd_t *dbd, const char *node,
                                      int on, int *found);

/* One page of node's holder rows after `after`: how many current versions
 * have fewer than ClusterStorageReplicas copies on nodes that are up and
 * not draining, and their bytes; *next as for under_replicated. */
apr_status_t cs_registry_drain_left(server_rec *s, apr_pool_t *p,
                                    ap_dbd_t *dbd, const char *node,
                                    const char *after, apr_int64_t *keys,
                                    apr_int64_t *bytes, const char **next);

/* Forget node: its holder rows and its row, if it is draining and down
 * (*gone: it was removed). */
apr_status_t cs_registry_forget(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                                const char *node, int *gone);

/* ---- undelivered cache invalidations (see cache.h) ------------------ */

/* Queue an invalidation of key for node (it could not be told directly). */
apr_status_t cs_registry_inv_add(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                                 const char *node, const char *key,
                                 apr_uint64_t version);
/* *pending: is an invalidation of key still queued for node? */
apr_status_t cs_registry_inv_pending(server_rec *s, apr_pool_t *p,
                                     ap_dbd_t *dbd, const char *node,
                                     const char *key, int *pending);
/* Apply (call apply for) and remove every invalidation queued for s's
 * node.  APR_SUCCESS only if all of them were applied and removed. */
apr_status_t cs_registry_inv_apply(server_rec *s, apr_pool_t *p,
                                   ap_dbd_t *dbd,
                                   void (*apply)(void *baton,
                                                 const char *key),
                                   void *baton);

/* *relpath: the file below the root of key if version is its current
 * version and s's node is registered as holding it; NULL otherwise. */
apr_status_t cs_registry_held_relpath(server_rec *s, apr_pool_t *p,
                                      ap_dbd_t *dbd, const char *key,
                                      apr_uint64_t version,
                                      const char **relpath);

/* s's node no longer holds key at version (its copy was damaged). */
apr_status_t cs_registry_drop_replica(server_rec *s, apr_pool_t *p,
                                      ap_dbd_t *dbd, const char *key,
                                      apr_uint64_t version);

/* This node stops: it no longer trusts its cache, writers need not wait. */
apr_status_t cs_registry_drop_lease(server_rec *s, apr_pool_t *p);


/* A cluster-wide turn on key for r (a named lock of the database
 * session r uses, GET_LOCK): the partial writes of one key through any
 * nodes take turns instead of racing.  APR_SUCCESS once it is r's turn,
 * APR_TIMEUP after seconds, anything else when the database cannot give
 * turns (the caller goes on without).  _end gives the turn up; a session
 * that ends (a crashed node) gives it up too. */
apr_status_t cs_registry_turn(request_rec *r, const char *key, int seconds);
void cs_registry_turn_end(request_rec *r, const char *key);

/* ---- statements for the namespace (names.c) -------------------------- */

/* A statement of this module: prepared on first use on each connection
 * under its label (which starts with "cs_"), re-prepared after the
 * database lost it. */
typedef struct {
    const char *label;
    const char *sql;
} cs_sql_t;

/* Every row of a SELECT, each an array of ncols strings (NULL as "").
 * Outside a transaction a failure is retried once on fresh statements. */
apr_status_t cs_db_select(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                          const cs_sql_t *q, int ncols,
                          apr_array_header_t **rows, int nargs,
                          const char **args);
/* Run a statement; *nrows (if not NULL) the rows it changed. */
apr_status_t cs_db_run(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                       const cs_sql_t *q, int *nrows, int nargs,
                       const char **args);
/* A transaction of several of these statements (move.c): inside it a
 * failed statement is not retried on its own.  _end commits (commit 1)
 * or rolls back; APR_SUCCESS only for a commit that went through, and
 * *retryable says whether the whole transaction may simply run again (a
 * deadlock, a lock wait timeout, a lost race for a new row). */
apr_status_t cs_db_begin(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd);
apr_status_t cs_db_end(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                       int commit, int *retryable);
/* The parent collection of key ("" for a key just below "/"). */
const char *cs_key_parent(apr_pool_t *p, const char *key);

#endif /* CS_REGISTRY_H */

/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * cache.h - the node-local registry cache: registry entries in shared
 * memory, so that a GET of a file this node holds is decided without a
 * network round trip.
 *
 * Consistency argument (SPEC promise 1: once a PUT or DELETE is answered,
 * no node serves an older version while the registry is reachable):
 *
 *  1. Leases.  A node trusts its cache only while its lease runs: the
 *     heartbeat thread, once per ClusterStorageHeartbeat period, records
 *     the heartbeat in the database, applies every invalidation queued for
 *     this node in the database (cs_invalidations), and only then extends
 *     the lease to t0 + 2 periods, t0 being the time before the heartbeat
 *     was sent.  The heartbeat child that exits gives the lease up:
 *     locally, and, unless httpd restarts (then the new generation renews
 *     it), in the database, so that writers stop waiting for it.  Renewals
 *     and giving it up in the database hold the node's lease lock
 *     (.clusterstorage/locks/lease), so that another child's renewal
 *     cannot land in between and leave a lease trusted locally that the
 *     database says is gone; neither waits for it (a renewal that finds
 *     it held skips its round, a child giving up leaves it to a renewal
 *     in progress).  A node that cannot reach the database stops
 *     renewing and its cache goes cold when the lease ends.
 *
 *  2. Writers invalidate before they answer.  After the commit (and the
 *     memcached update), the writer tells every node whose lease may still
 *     run (heartbeat younger than 2 periods + a margin) to invalidate the
 *     key (a PURGE peer request, one round trip).  For every node it could
 *     not tell, it queues an invalidation row in the database and waits
 *     until either the row is gone (the node applied it while renewing) or
 *     the node's heartbeat is older than its lease (the lease has lapsed
 *     and cannot be renewed without applying the row).  Only then does the
 *     writer answer.  Clocks are assumed to agree within the margin (2 s).
 *
 *  3. No stale insert.  A reader that misses fills the cache from
 *     memcached/the database.  An invalidation may arrive while it reads.
 *     Every invalidation first bumps the node's epoch; a reader notes the
 *     epoch before it reads the registry and its insert is dropped if the
 *     epoch moved.  Inserts and invalidations of one slot are serialised
 *     by the slot's sequence lock (odd = being written), and an entry never
 *     replaces a newer version of the same key.
 *
 *  4. Restarts.  The cache lives in anonymous shared memory created once
 *     per httpd (it survives graceful restarts, so old and new children see
 *     the same invalidations); a new httpd starts with an empty cache and
 *     no lease.
 *
 *  5. The local copy.  Next to an entry the cache may hold the identity
 *     (device, inode, ctime) of this node's file that was found to carry
 *     that entry's version and SHA-256 in its attributes.  A hit whose
 *     opened file (fstat of the descriptor that is then served) has that
 *     identity skips reading the attributes: they cannot have changed
 *     without changing the ctime, and a file installed in its place is a
 *     new inode with a new ctime.  An identity is only noted for a file
 *     whose ctime is at least 2 s old, so that a change within the same
 *     clock tick cannot hide behind an equal ctime (git's "racy clean"
 *     rule; ctime can be as coarse as a jiffy).  The identity is dropped
 *     with its entry, never carried to another version or checksum.
 *
 * Readers never block: a slot being written is a miss.  The table is a
 * fixed set of 8-slot buckets indexed by a 128-bit keyed SipHash of the
 * key (random key per httpd); a full bucket evicts by overwriting (it is a
 * cache).
 */
#ifndef CS_CACHE_H
#define CS_CACHE_H

#include "codec.h"
#include "apr_pools.h"
#include "apr_time.h"

typedef struct cs_cache_t cs_cache_t;

/* How old a file's ctime must be before its identity is noted (5.). */
#define CS_CACHE_IDENTITY_AGE apr_time_from_sec(2)

/* Changes whenever the shared-memory layout does. */
#define CS_CACHE_LAYOUT "2"

/* Identity of a local file (see 5. above); ino 0: none. */
typedef struct {
    apr_uint64_t dev;
    apr_uint64_t ino;
    apr_int64_t ctime;          /* apr_time_t */
} cs_local_t;

/* The cache of one node, in anonymous shared memory from pool p (use a
 * pool that lives across restarts). */
apr_status_t cs_cache_create(apr_pool_t *p, apr_size_t slots,
                             cs_cache_t **c);

/* 1 and *e when key is cached, fresh and the lease runs; 0 otherwise.
 * *local (if not NULL) gets the identity of the verified local copy of
 * that version, or zeros. */
int cs_cache_get(cs_cache_t *c, const char *key, cs_entry_t *e,
                 cs_local_t *local);

/* The epoch to note before reading the registry for cs_cache_put(). */
apr_uint64_t cs_cache_epoch(cs_cache_t *c);

/* Insert what the registry said, unless an invalidation arrived since
 * `epoch` or the slot holds a newer version of the key. */
void cs_cache_put(cs_cache_t *c, const char *key, const cs_entry_t *e,
                  apr_uint64_t epoch);

/* This node's copy of key, identity *local, was found to carry e's
 * version and SHA-256: remember it next to the cached entry if that is the
 * same version and checksum (nothing happens if the slot moved on). */
void cs_cache_note_local(cs_cache_t *c, const char *key, const cs_entry_t *e,
                         const cs_local_t *local);

/* A write of key committed somewhere: forget what this node knew. */
void cs_cache_invalidate(cs_cache_t *c, const char *key);

/* Writes of many keys committed (a collection's MOVE): forget all. */
void cs_cache_flush(cs_cache_t *c);

/* Lease handling (heartbeat thread). */
void cs_cache_set_lease(cs_cache_t *c, apr_time_t until);
int cs_cache_lease_valid(cs_cache_t *c);
apr_time_t cs_cache_lease(cs_cache_t *c);

/* Statistics for the status page. */
void cs_cache_stats(cs_cache_t *c, apr_uint64_t *hits, apr_uint64_t *misses,
                    apr_uint64_t *invalidations);

#endif /* CS_CACHE_H */

/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * holders.h - the holder rows of fetched copies, written in batches.
 *
 * A GET that fetches a copy from a peer serves it as soon as it is
 * verified and renamed into place; that this node holds it is written to
 * the registry afterwards, for all the copies a child fetched meanwhile
 * at once.  A holder registered late only lets the repair and other
 * fetchers do a little more: a read checks the registry's version, not
 * its holders, so the copy is served here from the start.
 *
 * Not for received replicas: their sender ends its job with the 201, and
 * the repair finds the keys to restore through the rows of the nodes that
 * died, so a replica whose registration a crash lost would be one nobody
 * restores.  A replica is registered before its 201 (peer_serve.c).
 *
 * Promises:
 *   - the registry never names this node as the holder of a copy a crash
 *     could take: a fetched copy's bytes and attributes are fsynced
 *     before its rename (a crash leaves the whole file or none); only
 *     the rename's directory entry waits, and the copies of a batch are
 *     made durable by one syncfs() of the state directory's file system
 *     (where every fetched copy is, since it was renamed there from the
 *     temp directory; on a descriptor kept open, so that it reports
 *     every write error since the child started) before one statement
 *     registers them (cs_registry_add_replicas, which registers a key
 *     only at the version that is still current);
 *   - nor as the holder of a copy it no longer has: the statement runs
 *     under the key locks of its copies, each checked to be still the
 *     file that was fetched (its inode) at its version (a quarantine or
 *     a newer version may have replaced it); the lock of a key is only
 *     tried, never waited for (a long fetch may hold it): a key whose
 *     lock is taken waits for the next tick;
 *   - a batch is written at most one watchdog tick (100 ms) after its
 *     first copy, on a thread of each child; whatever is left when the
 *     child exits is written by its exit;
 *   - the pending copies are bounded (CS_HOLDERS_MAX per child): with no
 *     room, or with no thread to write them, the fetch makes its rename
 *     durable and registers it itself, as before;
 *   - a batch the registry refuses is kept for the next tick (CS153,
 *     logged once until one succeeds), for 60 s at most (then CS157: the
 *     copies stay, served here, but not offered to other nodes); one
 *     whose syncfs() fails is not registered (CS154).
 *
 * Thread-safe: one mutex per node and child around the pending list.
 */
#ifndef CS_HOLDERS_H
#define CS_HOLDERS_H

#include "config.h"

/* The pending copies a child keeps at most. */
#define CS_HOLDERS_MAX 4096

/* Set up node s's pending list in this child (child_init). */
apr_status_t cs_holders_child_init(apr_pool_t *pchild, server_rec *s);

/* Nonzero if a fetched copy may be left unsynced and handed to
 * cs_holders_add() (there is room and a thread to write it). */
int cs_holders_room(const cs_server_conf *sc);

/* Register this node as the holder of key at version (its copy at path,
 * that file's inode: 0 if unknown), later. */
void cs_holders_add(const cs_server_conf *sc, const char *key,
                    const char *path, apr_uint64_t version,
                    apr_uint64_t inode);

/* Write what is pending now: syncfs(), then one statement per
 * CS_HOLDERS_BATCH keys (the watchdog's callback; the child's exit). */
void cs_holders_flush(server_rec *s, apr_pool_t *p);

/* No thread will write them any more: cs_holders_room() says no. */
void cs_holders_stop(server_rec *s);

#endif /* CS_HOLDERS_H */

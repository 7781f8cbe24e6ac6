/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * move.h - MOVE of a file or a whole collection (SPEC section 8): one
 * registry transaction, and on each node a rename of its own copies.
 *
 * The transaction, under the row locks of the source's files: every live
 * file at or below the source gets its next version at the destination
 * with the same bytes (size, SHA-256 and time), the nodes that hold the
 * source's version are registered as holders of the destination's, the
 * source's files become tombstones, its collections and dead properties
 * move with it, its locks end, and every member of the cluster gets a row
 * in cs_moves: the MOVE it has to apply to its own copies.
 *
 * After the commit memcached learns the new entries of both paths, and
 * each node applies its row: this node at once, the others when told
 * (a MOVED peer request) or, if they could not be told, at their next
 * heartbeat, before they renew their cache lease.  Applying it means, per
 * file this node is registered as holding, under both key locks: the old
 * copy, if it still is the moved bytes (size, time, SHA-256 attribute),
 * is relabelled as the new version and renamed to the new path; if it is
 * not, this node stops being registered as a holder and repair makes up
 * for it.  So no file bytes travel between nodes that hold the file.  The
 * answer waits, as a write does (cache.h point 2), until every node whose
 * lease may still run has applied it or lost its lease: from then on no
 * node serves the source, and every node serves the destination.
 */
#ifndef CS_MOVE_H
#define CS_MOVE_H

#include "config.h"
#include "apr_dbd.h"
#include "mod_dbd.h"

/* MOVE of key skey (its file or directory spath) to dkey (dpath); tree:
 * it is a collection.  The destination must not exist (mod_dav removes
 * it first when Overwrite allows).  OK with *files the number of files
 * moved, or the status to answer (logged): 503 when the registry cannot
 * be reached or the clock is off. */
int cs_move(request_rec *r, const cs_server_conf *sc, const char *skey,
            const char *spath, const char *dkey, const char *dpath, int tree,
            int *files);

/* Apply every MOVE queued for s's node (heartbeat, MOVED peer request).
 * APR_SUCCESS when all of them were applied and removed from the queue;
 * *moved (if not NULL) counts the copies renamed. */
apr_status_t cs_move_apply(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                           int *moved);

#endif /* CS_MOVE_H */

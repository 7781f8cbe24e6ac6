/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * replicate.h - the replication engine, run by singleton mod_watchdog
 * threads (drive.c): it makes ClusterStorageReplicas live nodes
 * hold each current version and tells the others to drop deleted ones.
 *
 * Promises:
 *   - a job is looked at as soon as its writer rings the queue's bell,
 *     and every job at least every 100 ms;
 *   - a queued job (queue.h) is removed only once its work is confirmed:
 *     enough live holders of its version, or every live node told of the
 *     tombstone; a version that was superseded, or never committed, ends
 *     its job without work;
 *   - a job's version and the local copy are looked at under the key lock
 *     the writer holds from before its commit until after its rename, so a
 *     job is never judged between the two;
 *   - a failed job is retried with exponential backoff up to 30 s; while
 *     the registry is unreachable, draining pauses;
 *   - the repair sweep re-replicates keys whose holders went away, one
 *     holder per key doing it (the first live one by name), 20 keys per
 *     step, resuming where the last step ended.
 */
#ifndef CS_REPLICATE_H
#define CS_REPLICATE_H

#include "httpd.h"

/* Drain s's queue until stop() says so (checked at least every 100 ms):
 * a job rung on the queue's bell (queue.h) at once, and the whole queue
 * every 100 ms. */
void cs_replicate_run(server_rec *s, apr_pool_t *p, int (*stop)(void));

/* One step of the repair sweep for s's node. */
void cs_replicate_repair(server_rec *s, apr_pool_t *p);

/* The child is exiting: a drain or repair step in progress stops after
 * the job or key it is working on (jobs stay queued). */
void cs_replicate_stop(void);

#endif /* CS_REPLICATE_H */

/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * scrub.h - the background scrub of a node's copies (SPEC promise 10).
 *
 * Promises:
 *   - every copy under ClusterStorageRoot (not the state directory, not a
 *     file that is not one of the module's copies) is read again and its
 *     bytes compared with the SHA-256 it was stored with, one pass after
 *     another, a pass starting at most every ClusterStorageScrubInterval;
 *   - it reads at most ClusterStorageScrubRate bytes per second (a token
 *     bucket, checked every 64 KiB), on a thread of its own, so it never
 *     delays a heartbeat, a replication or a request more than its disk
 *     reads do;
 *   - a pass resumes where it stopped after a restart: its position (the
 *     last path checked, in path order) is kept in the state directory;
 *   - a damaged copy is moved to the quarantine under the key's lock (if
 *     it is still the file that was read), the node stops being one of
 *     its holders, and CS209 says so; then a good copy of the current
 *     version is fetched from a live holder, verified, and put in its
 *     place (CS215); failing that, the next GET here fetches one and the
 *     repair restores the replica count;
 *   - progress (files, bytes, damaged, passes) is in the counters, so on
 *     the status page and in Prometheus; CS210 reports each pass.
 */
#ifndef CS_SCRUB_H
#define CS_SCRUB_H

#include "config.h"

/* Continue the scrub of node s for a few seconds (its watchdog callback);
 * stop() nonzero: the child is exiting, return at once. */
void cs_scrub_step(server_rec *s, apr_pool_t *p, int (*stop)(void));

#endif

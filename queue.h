/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * queue.h - the durable replication queue.
 *
 * One small file per job in ROOT/.clusterstorage/queue, written to a temp
 * file, fsynced and renamed into place (then the directory is fsynced), so a
 * job that was reported as queued survives SIGKILL and power loss.  A job is
 * removed only after the work it describes was confirmed.  Job files are
 * named so that a directory listing sorts them by creation time.
 *
 * Job file format (text, one job per file):
 *   CSJ1 <op> <version>\n<key>\n<path below ClusterStorageRoot>
 * with op P (make ClusterStorageReplicas nodes hold this version) or D
 * (tell the holders of older versions to drop their copies).
 */
#ifndef CS_QUEUE_H
#define CS_QUEUE_H

#include "cs_private.h"

typedef struct {
    char op;                /* 'P' or 'D' */
    apr_uint64_t version;
    const char *key;
    const char *relpath;    /* the key's file below the root, "/..." */
} cs_job_t;

/* Durably add a job; *path (may be NULL) receives its file name. */
apr_status_t cs_queue_add(apr_pool_t *p, const cs_server_conf *sc,
                          const cs_job_t *job, const char **path);

/* Remove a job file (after confirmation, or when its commit failed). */
apr_status_t cs_queue_remove(apr_pool_t *p, const char *path);

/* Parse a job file's contents (pure; -1 on anything malformed). */
int cs_job_parse(apr_pool_t *p, const char *buf, apr_size_t len,
                 cs_job_t *job);

/* Background work of a node, run by a singleton mod_watchdog thread:
 * drain the queue (jobs oldest first; a failed job is retried with
 * exponential backoff up to 30 s and stays on disk until confirmed).
 * Pauses (returns) while the registry is unreachable. */
void cs_queue_drain(server_rec *s, apr_pool_t *p);

/* One step of the repair sweep: up to 20 under-replicated keys this node
 * must repair are pushed to live nodes that lack them; a cursor makes the
 * sweep incremental across calls. */
void cs_repair_step(server_rec *s, apr_pool_t *p);

/* Number of jobs waiting and the age (seconds) of the oldest. */
void cs_queue_stats(apr_pool_t *p, const cs_server_conf *sc, int *jobs,
                    apr_int64_t *oldest);

#endif /* CS_QUEUE_H */

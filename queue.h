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
 *   CSJ1 <op> <version>\n<key>
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
} cs_job_t;

/* Durably add a job; *path (may be NULL) receives its file name. */
apr_status_t cs_queue_add(apr_pool_t *p, const cs_server_conf *sc,
                          const cs_job_t *job, const char **path);

/* Remove a job file (after confirmation, or when its commit failed). */
apr_status_t cs_queue_remove(apr_pool_t *p, const char *path);

/* Parse a job file's contents (pure; -1 on anything malformed). */
int cs_job_parse(apr_pool_t *p, const char *buf, apr_size_t len,
                 cs_job_t *job);

#endif /* CS_QUEUE_H */

/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * queue.h - the durable replication queue: its job files.
 *
 * One small file per job in ROOT/.clusterstorage/queue, written through
 * cs_store_put_small() (temp file, fsync, rename, fsync of the directory),
 * so a job that was reported as queued survives SIGKILL and power loss.  A
 * job is removed only after the work it describes was confirmed (that work
 * is replicate.c's).  Job files are named so that a directory listing
 * sorts them by creation time.
 *
 * Job file format (text, one job per file):
 *   CSJ1 <op> <version>\n<key>\n<path below ClusterStorageRoot>
 * with op P (make ClusterStorageReplicas nodes hold this version) or D
 * (tell the holders of older versions to drop their copies).
 */
#ifndef CS_QUEUE_H
#define CS_QUEUE_H

#include "store.h"
#include "apr_tables.h"

typedef struct {
    char op;                /* 'P' or 'D' */
    apr_uint64_t version;
    const char *key;
    const char *relpath;    /* the key's file below the root, "/..." */
} cs_job_t;

typedef struct cs_queue_bell_t cs_queue_bell_t;

/* Durably add a job; *path (may be NULL) receives its file name.  With a
 * bell (may be NULL), a spare job file (cs_queue_retire) is taken over
 * where there is one. */
apr_status_t cs_queue_add(apr_pool_t *p, const cs_store_t *st,
                          cs_queue_bell_t *bell, const cs_job_t *job,
                          const char **path);
/* Durably add n jobs, made durable together by one syncfs() of the
 * queue's file system (which makes whatever else is written there
 * durable too; *dev gets its device); paths[i] receives each one's file
 * name.  On failure none of them is left. */
apr_status_t cs_queue_add_many(apr_pool_t *p, const cs_store_t *st,
                               const cs_job_t *jobs, int n,
                               const char **paths, apr_uint64_t *dev);

/* Remove a job file (after confirmation, or when its commit failed). */
apr_status_t cs_queue_remove(apr_pool_t *p, const char *path);
/* The same for a job that was done, whose file is kept as a spare in
 * ROOT/.clusterstorage/spare for the next cs_queue_add() to overwrite
 * (its name goes through the bell; as many as the bell holds, a few
 * hundred, and the rest removed): a queue that frees no inodes makes
 * none either, and on ext4 without a journal a new inode after many
 * freed ones costs a walk over them all (measured: 30 % of a PUT's
 * httpd CPU). */
void cs_queue_retire(apr_pool_t *p, const cs_store_t *st,
                     cs_queue_bell_t *bell, const char *path);

/* Parse a job file's contents (pure; -1 on anything malformed). */
int cs_job_parse(apr_pool_t *p, const char *buf, apr_size_t len,
                 cs_job_t *job);

/* The job files waiting, oldest first, as full paths. */
apr_array_header_t *cs_queue_list(apr_pool_t *p, const cs_store_t *st);

/* Read the job file path into *job: APR_SUCCESS, APR_EINVAL when it is
 * malformed, or why it could not be read (it may be gone already). */
apr_status_t cs_queue_read(apr_pool_t *p, const char *path, cs_job_t *job);

/* The queue's bell: a pipe made in post_config, before the children are
 * forked, so every child of the generation holds both ends.  A writer
 * rings it with its job's file name once the write is committed; the
 * drain (one thread, in one child) waits on it between its passes over
 * the whole queue, so a new job is pushed at once rather than at the next
 * pass.  Ringing never blocks and may be lost (a full pipe): every job is
 * still found by the next whole pass.  It also carries the names of the
 * spare job files of st (cs_queue_retire()), those already there
 * included. */
apr_status_t cs_queue_bell_create(apr_pool_t *p, const cs_store_t *st,
                                  cs_queue_bell_t **bell);
/* Ring with the job file `path` and the entry its writer committed (e:
 * NULL if none; its name and the entry, encoded as in memcached, are
 * sent). */
void cs_queue_ring(cs_queue_bell_t *bell, const char *path,
                   const cs_entry_t *e);
/* One ring: the job file (its full path below the queue) and what its
 * writer committed (e.version 0: not said). */
typedef struct {
    const char *path;
    cs_entry_t e;
} cs_rung_t;
/* Wait up to timeout for rings: the cs_rung_t of the jobs rung since the
 * last call, in ring order (none on a timeout). */
apr_array_header_t *cs_queue_wait(apr_pool_t *p, const cs_store_t *st,
                                  cs_queue_bell_t *bell,
                                  apr_interval_time_t timeout);

/* Number of jobs waiting and the age (seconds) of the oldest. */
void cs_queue_stats(apr_pool_t *p, const cs_store_t *st, int *jobs,
                    apr_int64_t *oldest);

#endif /* CS_QUEUE_H */

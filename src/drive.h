/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * drive.h - the background work of every node, on two singleton
 * mod_watchdog threads per httpd (one child runs them):
 *   heartbeat  at start the schema check, then every ClusterStorageHeartbeat
 *              period the heartbeat with the queued cache invalidations
 *              (the lease is renewed only after them, cache.h point 1) and
 *              the crash recovery of PUTs (store.h); on stop the lease is
 *              given up;
 *   queue      every 100 ms the replication queue, every heartbeat period
 *              one step of the repair sweep (replicate.h).
 */
#ifndef CS_DRIVE_H
#define CS_DRIVE_H

#include "httpd.h"
#include "apr_tables.h"

/* 1 if mod_watchdog's optional functions are there (post_config). */
int cs_drive_available(void);

/* post_config, second pass: create the threads and register every node
 * (server_rec * in nodes).  OK, or !OK logged. */
int cs_drive_start(apr_pool_t *p, server_rec *s,
                   const apr_array_header_t *nodes);

/* child_init: the child's exit first stops and waits for the background
 * registry work and gives the cache lease up (see drive.c). */
void cs_drive_child_init(apr_pool_t *pchild, server_rec *s);

#endif /* CS_DRIVE_H */

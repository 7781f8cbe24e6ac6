/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * cs_private.h - what every file of the module that logs shares: the
 * module's log index (so that "LogLevel clusterstorage:debug" works) and
 * the tag of each message.
 *
 * The files, from the bottom layer up (scripts/check-layers.sh keeps the
 * includes pointing down; the README's source-layout table explains them):
 *
 *   codec, counters      pure parsers/encoders; the counters' layout
 *   crypto, cs_private   HMAC and SHA-256; logging
 *   cache, store, auth   node-local registry cache; local copies; peer MACs
 *   queue, peer          replication job files; node-to-node HTTP client
 *   config               the per-server/per-directory configuration
 *   dbconn, mcache       bounded database connections; memcached in
 *                        front of the registry
 *   registry             MariaDB through mod_dbd, cluster queries
 *   names                the namespace: collections, properties, locks
 *   replicate            queue drain, pushes, delete propagation, repair
 *   scrub, holders       the background re-hash of every copy; the
 *                        batched registration of fetched copies
 *   request              what the request handlers share
 *   read, move           GET/HEAD, the fetch of a copy from a peer;
 *                        MOVE as one transaction and a rename per node
 *   write, peer_serve,   PUT/DELETE/partial writes with the cache fan-out;
 *   status               the answers to other nodes; the status page
 *   drive, dav_lock,     watchdog threads; WebDAV locks; the operator's
 *   admin                commands (drain, forget, adopt)
 *   dav                  the WebDAV repository provider (mod_dav)
 *   mod_clusterstorage   hooks, post_config, the dispatcher
 */
#ifndef CS_PRIVATE_H
#define CS_PRIVATE_H

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"

/* mod_clusterstorage.c declares the module (and its log index) itself. */
#if defined(APLOG_USE_MODULE) && !defined(CS_MODULE_MAIN)
APLOG_USE_MODULE(clusterstorage);
#endif

extern module AP_MODULE_DECLARE_DATA clusterstorage_module;

/* Stable, module-specific message tags, one per call site (README
 * "Observe"; scripts/check-log-tags.sh). */
#define CSLOG(n) "CS" #n ": "

#endif /* CS_PRIVATE_H */

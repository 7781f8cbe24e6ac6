/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * request.h - what the request handlers (read.c, write.c, peer_serve.c)
 * share: answering with a local copy, the status a store error becomes,
 * the key lock and the body of a request.
 *
 * Every helper that fails logs why (one tag per call site) and returns the
 * HTTP status to answer; OK means go on.
 */
#ifndef CS_REQUEST_H
#define CS_REQUEST_H

#include "config.h"
#include "codec.h"
#include "store.h"
#include "apr_dbd.h"
#include "mod_dbd.h"

/* r->notes entry of a request that proved it comes from a node (the
 * node's name); set by cs_check_peer() (peer_serve.c). */
#define CS_NOTE_PEER "clusterstorage-peer"

/* 1 if a segment of key is one of the server's AccessFileName names
 * (cs_key_check() refuses every ".ht*" segment already). */
int cs_key_is_access_file(request_rec *r, const char *key);

/* OK, or 503 (logged) while this node's clock is more than
 * CS_WRITE_SKEW_MAX off the database's (drive.c measures it). */
int cs_clock_allows_write(request_rec *r, const cs_server_conf *sc);

/* s as a JSON string (quoted, escaped). */
const char *cs_json_str(apr_pool_t *p, const char *s);

/* The value of the query argument name (URL-decoded), or NULL. */
const char *cs_query_arg(request_rec *r, const char *name);

/* 503 with Retry-After, counted. */
int cs_unavailable(request_rec *r);

/* Note what was done with r (CS_NOTE_SERVED, config.h): the first note
 * stays, unless force (a final outcome such as a failure or a write). */
void cs_note_served(request_rec *r, const char *what, int force);

/* ETag and X-ClusterStorage-Version of version e. */
void cs_version_headers(request_rec *r, const cs_entry_t *e);

/* Serve an opened, verified local copy (version e) with the core's
 * machinery: Last-Modified, ranges, conditions, file buckets/sendfile.
 * The bytes go out as stored: resource filters that would interpret them
 * (INCLUDES, SUBSTITUTE...) are taken off the request first.
 * unverified: the registry could not be asked (SPEC promise 7). */
int cs_serve(request_rec *r, apr_file_t *f, const apr_finfo_t *fi,
             const cs_entry_t *e, int unverified);
/* cs_serve()'s response headers for version e of size bytes (mtime: the
 * file's, when the registry has none), without the body. */
void cs_serve_head(request_rec *r, const cs_entry_t *e, apr_off_t size,
                   apr_time_t mtime, int unverified);
/* Take the filters that would change a stored file's bytes off r: every
 * resource filter (mod_include's INCLUDES, SUBSTITUTE, sed, ...).  Later
 * ones (content codings, security filters that inspect, the protocol's
 * byteranges) stay. */
void cs_plain_bytes(request_rec *r);

/* The answer to a failed store operation: 403 for an unsafe path, 409 for
 * a file or directory in the way, 507 for a full disk, else 500. */
int cs_store_http_status(apr_status_t rv);

/* The file key maps to (DocumentRoot/Alias: r->filename with any part
 * of the path below the first directory that does not exist yet), or
 * NULL (logged) when that is outside ClusterStorageRoot. */
const char *cs_key_path(request_rec *r, const cs_server_conf *sc,
                        const char *key);

/* Take the key lock (store.h) for r: OK, or 500 (logged). */
int cs_lock_key(request_rec *r, const cs_server_conf *sc, const char *key,
                apr_file_t **lock);

/* Create the missing parents of path before a copy of key is installed
 * there: OK, or the status (logged). */
int cs_prepare_dir(request_rec *r, const cs_server_conf *sc,
                   const char *key, const char *path);

/* Stream r's body into tmp: OK, or the status (logged); nothing is left
 * behind on failure once tmp's pool is gone. */
int cs_read_body(request_rec *r, const char *key, cs_tmp_t *tmp);

/* With the key lock held: if path is still a damaged copy of version e
 * (the version's attribute, but not its size, mtime or checksum), move it
 * to the quarantine, say so (why: what was found) and stop registering
 * this node as a holder of e.  1 if it was moved. */
/* NULL if the opened copy fi, whose attribute says checksum sha, can be
 * version e; else what is wrong with it. */
const char *cs_copy_damage(request_rec *r, const apr_finfo_t *fi,
                           const char *sha, const cs_entry_t *e);

int cs_quarantine(request_rec *r, const cs_server_conf *sc, const char *key,
                  const char *path, const cs_entry_t *e, const char *why);

/* Under the key lock, remove this node's copy of key at path if it is a
 * version older than `below` (a newer one may have replaced it
 * meanwhile).  OK, or 500 (logged) when the lock cannot be taken. */
int cs_drop_older(request_rec *r, const cs_server_conf *sc, const char *key,
                  const char *path, apr_uint64_t below);

/* cache.h point 2 for the nodes in pending (cs_node_t *, from
 * registry.h) that could not be told of a write at once: wait until each
 * has done what was queued for it (done() says so) or its cache lease
 * has run out.  Bounded (60 s); returns how many were still waited for. */
int cs_wait_nodes(request_rec *r, ap_dbd_t *dbd, apr_array_header_t *pending,
                  int (*done)(request_rec *r, ap_dbd_t *dbd,
                              const char *node, void *baton),
                  void *baton);

#endif /* CS_REQUEST_H */

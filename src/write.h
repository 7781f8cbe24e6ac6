/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * write.h - PUT and DELETE of a key from a client.
 *
 * Promises (SPEC promises 1, 2, 4, 6): a write is answered only after its
 * bytes are fsynced and renamed into place (PUT), its version is
 * committed in the registry with its replication or delete job durably
 * queued, and every node whose cache may hold the key has forgotten it or
 * lost its lease; conditional writes are decided against the committed
 * cluster-wide version under the key's row lock; a write that fails
 * leaves no file, no registry entry and no job behind.
 */
#ifndef CS_WRITE_H
#define CS_WRITE_H

#include "config.h"
#include "store.h"

int cs_handle_put(request_rec *r, const cs_server_conf *sc, const char *key,
                  const char *path);
int cs_handle_delete(request_rec *r, const cs_server_conf *sc,
                     const char *key, const char *path);

/* The same steps for other front ends (the WebDAV provider, dav.c).
 *
 * An upload: _begin makes the checks a PUT makes before its body (clock,
 * registry, the file in the way, and if conditional r's If-Match and
 * If-None-Match against key, again in the transaction) and opens the
 * temp file; the body goes to cs_store_tmp_write(cs_upload_tmp(up));
 * _commit makes it the key's next version (key lock, transaction, rename,
 * cache fan-out) and sets the version headers.  Each returns OK or the
 * status to answer (logged); an upload never committed leaves nothing
 * behind once r's pool is gone. */
typedef struct cs_upload_t cs_upload_t;
int cs_upload_begin(request_rec *r, const cs_server_conf *sc,
                    const char *key, const char *path, int conditional,
                    cs_upload_t **up);
cs_tmp_t *cs_upload_tmp(cs_upload_t *up);
int cs_upload_commit(cs_upload_t *up, cs_entry_t *e, int *created);
/* The same with the key lock already held (cs_lock_key()); released. */
int cs_upload_commit_locked(cs_upload_t *up, apr_file_t *lock, cs_entry_t *e,
                            int *created);

/* A tombstone for key, its copy at path removed: OK (*e the tombstone),
 * 404, a precondition's status or 503.  With expect (not 0) only if
 * expect is still the current version, else 409 (a MOVE's source that
 * was written meanwhile). */
int cs_delete_key(request_rec *r, const cs_server_conf *sc, const char *key,
                  const char *path, apr_uint64_t expect, cs_entry_t *e);

/* A partial write (SPEC section 8): the next version of key is its
 * current one with the len bytes of body written at offset (-1: at its
 * end, an append).  Built from this node's copy of the current version
 * and committed only if that version is still current, else built again
 * from the newer one: concurrent partial writes through any nodes all
 * land, each once.  OK (*out the new version), 404 (no such key), 416
 * (offset past its end), or the status of the write. */
int cs_patch_key(request_rec *r, const cs_server_conf *sc, const char *key,
                 const char *path, apr_off_t offset, cs_tmp_t *body,
                 apr_uint64_t len, cs_entry_t *out);

/* Adoption (admin.h): make the file at path, already under the root where
 * key maps, the registry's key without moving its bytes: hashed, version
 * 1 with its own mtime, parent collections, this node as holder,
 * replication queued.  *what says what happened (a file that is already
 * one of the module's copies is KNOWN, one whose key the registry has
 * with other bytes a CONFLICT and left alone); *bytes: its size.  The
 * file is opened in fp (closed with it: a caller adopting many files
 * gives each a pool of its own).  OK, or
 * the status to answer (503: registry unreachable). */
typedef enum {
    CS_ADOPT_NEW,
    CS_ADOPT_KNOWN,
    CS_ADOPT_MATCHED,
    CS_ADOPT_CONFLICT,
    CS_ADOPT_REFUSED,
    CS_ADOPT_PENDING            /* not done (yet) */
} cs_adopted_t;
int cs_adopt_file(request_rec *r, const cs_server_conf *sc, const char *key,
                  const char *path, apr_pool_t *fp, cs_adopted_t *what,
                  apr_uint64_t *bytes);

/* The same for a batch of files (in walk order, so that the files of a
 * directory come together): those the registry has never stored in one
 * transaction, their labels and jobs made durable together, one PURGE
 * per node for all of them; the others one by one as above.  Items
 * whose what is not CS_ADOPT_PENDING on entry are skipped.  OK, or the
 * status to answer: then the items still PENDING were not done. */
typedef struct {
    const char *key;
    const char *path;
    cs_adopted_t what;          /* out */
    apr_uint64_t bytes;         /* out */
} cs_adopt_item_t;
int cs_adopt_batch(request_rec *r, const cs_server_conf *sc,
                   cs_adopt_item_t *items, int n);

#endif /* CS_WRITE_H */

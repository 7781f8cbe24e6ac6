/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * store.h - the local store: this node's copies under ClusterStorageRoot.
 *
 * Promises:
 *   - A node's copy of key K is the ordinary file K maps to under the root.
 *     Its version, SHA-256 and key are extended attributes
 *     (user.clusterstorage.{version,sha256}, and .meta = "VERSION SHA256 KEY"
 *     for the hit path) set on the temp file before
 *     it is renamed into place, so content and version change together.
 *   - New content only ever arrives through a temp file in
 *     ROOT/.clusterstorage/tmp, written, fsynced and renamed; a client never
 *     sees a partial file.  A temp file is removed by a pool cleanup unless
 *     it was installed, so a failed request leaves nothing behind; temp files
 *     of processes that died (SIGKILL) are removed at the next start.
 *   - Writes never go through a symbolic link: parent directories are
 *     created one component at a time and a symlink anywhere below the root
 *     refuses the write.
 *   - Per-key locks serialise writers, deleters and (later) fetchers of one
 *     key across threads and processes of a node (flock on lock stripes).
 */
#ifndef CS_STORE_H
#define CS_STORE_H

#include "codec.h"
#include "apr_file_io.h"
#include "apr_file_info.h"

#include <sys/stat.h>

/* Where a node keeps its copies: ClusterStorageRoot and its working
 * directory ROOT/.clusterstorage (set up by cs_store_init_root()). */
typedef struct {
    const char *root;           /* absolute, resolved */
    apr_size_t root_len;
    const char *state_dir;      /* root/.clusterstorage */
    int exact_mtime;            /* the file system keeps microseconds */
} cs_store_t;

/* A path that is not safe to write: it leaves the root or goes through a
 * symbolic link (what a client asked for is refused: 403). */
#define CS_STORE_EUNSAFE (APR_OS_START_USERERR + 1)

#define CS_XATTR_VERSION "user.clusterstorage.version"
#define CS_XATTR_SHA256  "user.clusterstorage.sha256"
/* The key alone: only on copies written before .meta existed. */
#define CS_XATTR_KEY     "user.clusterstorage.key"
/* "VERSION SHA256 KEY", read with one call on a hit (ext4 keeps all of an
 * inode's attributes in one 4 KB block, so the key is stored only here). */
#define CS_XATTR_META    "user.clusterstorage.meta"

typedef struct cs_tmp_t cs_tmp_t;

/* post_config: check that root is an absolute, writable directory on a file
 * system with user xattrs, create ROOT/.clusterstorage/{tmp,queue,locks,
 * quarantine},
 * owned by the server's user, and remove temp files of dead processes.
 * *exact_mtime: whether the file system keeps a file's mtime to the
 * microsecond (cs_store_intact()).  On failure *why says what to change. */
apr_status_t cs_store_init_root(apr_pool_t *p, const char *root,
                                const char **why, int *exact_mtime);

/* The version, SHA-256 and key an opened copy names (APR_ENOENT: it
 * names none of them, not one of the module's copies). */
apr_status_t cs_store_read_key(apr_file_t *f, apr_uint64_t *version,
                               char sha256[CS_SHA256_HEX_LEN + 1],
                               char key[CS_KEY_MAX + 1]);
/* Called after every chunk a check reads (n bytes): nonzero stops it. */
typedef int (*cs_pace_fn)(void *baton, apr_size_t n);
/* Read the whole of f (from its start, in 64 KiB chunks, pace after
 * each) and say whether its bytes have the hex SHA-256 sha256.  *read:
 * the bytes read.  APR_EINTR when pace stopped it. */
apr_status_t cs_store_check_sum(apr_pool_t *p, apr_file_t *f,
                                const char *sha256, cs_pace_fn pace,
                                void *baton, apr_uint64_t *read, int *match);
/* The same reading, giving the hex SHA-256 of f's bytes. */
apr_status_t cs_store_hash(apr_pool_t *p, apr_file_t *f, cs_pace_fn pace,
                           void *baton, char sha256[CS_SHA256_HEX_LEN + 1],
                           apr_uint64_t *read);
/* 1 if the opened copy fi can still be version e: a copy's mtime is its
 * version's time (set when it was sealed) and its size is the version's,
 * so an edit or a truncation behind the module's back shows in the fstat
 * a hit makes anyway (to the microsecond where the file system keeps
 * that, else to the second).  Bit rot that leaves both alone is not seen
 * here. */
int cs_store_intact(const cs_store_t *st, const apr_finfo_t *fi,
                    const cs_entry_t *e);

/* Move a damaged copy out of the way, into ROOT/.clusterstorage/quarantine
 * (kept for the operator; nothing reads it), and fsync both directories.
 * *dst (may be NULL) gets where it went.  Call it under the key lock. */
apr_status_t cs_store_quarantine(apr_pool_t *p, const cs_store_t *st,
                                 const char *path, const char **dst);

/* Open this node's copy of path for serving.  APR_ENOENT when there is no
 * regular file there (a symlink counts as none); APR_EEXIST when key is
 * given and the file is the copy of another key (another URL maps onto the
 * same file).  *version is 0 for a file without our attributes (never
 * written by the module). */
apr_status_t cs_store_open(apr_pool_t *p, const char *path, const char *key,
                           apr_int32_t flags, apr_file_t **f,
                           apr_finfo_t *fi, apr_uint64_t *version,
                           char sha256[CS_SHA256_HEX_LEN + 1]);

/* cs_store_open() in its two steps: open (no symlinks) and fstat of a
 * regular file, then the attributes of the opened file. */
apr_status_t cs_store_open_file(apr_pool_t *p, const char *path,
                                apr_int32_t flags, apr_file_t **f,
                                apr_finfo_t *fi);
apr_status_t cs_store_read_meta(apr_file_t *f, const char *key,
                                apr_uint64_t *version,
                                char sha256[CS_SHA256_HEX_LEN + 1]);

/* Start a temp file in st's state dir (removed with p unless installed). */
apr_status_t cs_store_tmp_create(apr_pool_t *p, const cs_store_t *st,
                                 const char *prefix, cs_tmp_t **t);
/* Append bytes (hashed on the way). */
apr_status_t cs_store_tmp_write(cs_tmp_t *t, const char *buf,
                                apr_size_t len);
/* Append len bytes of f from offset from (len -1: up to its end). */
apr_status_t cs_store_tmp_append_file(cs_tmp_t *t, apr_file_t *f,
                                      apr_off_t from, apr_off_t len);
/* Append every byte written to src so far. */
apr_status_t cs_store_tmp_append_tmp(cs_tmp_t *t, cs_tmp_t *src);
/* The hex SHA-256 of the first len bytes written to t (APR_EOF: fewer
 * were written); what is written after them does not change. */
apr_status_t cs_store_tmp_prefix_sha(apr_pool_t *p, cs_tmp_t *t,
                                     apr_uint64_t len,
                                     char sha256[CS_SHA256_HEX_LEN + 1]);
/* Size and hex SHA-256 of everything written so far (once, at the end). */
void cs_store_tmp_digest(cs_tmp_t *t, apr_uint64_t *size,
                         char sha256[CS_SHA256_HEX_LEN + 1]);
/* Flush the data, set xattrs and mtime from e, fsync. */
apr_status_t cs_store_tmp_seal(cs_tmp_t *t, const char *key,
                               const cs_entry_t *e);
/* Create the missing parent directories of path (inside st's root)
 * without following symlinks.  CS_STORE_EUNSAFE for a path outside the
 * root or through a symlink, APR_ENOTDIR when a parent is a file, EISDIR
 * when path itself is a directory that holds files (one that holds only
 * empty directories, as a removed collection leaves behind, is removed),
 * or what mkdir said (ENOSPC...). */
apr_status_t cs_store_make_parents(apr_pool_t *p, const cs_store_t *st,
                                   const char *path);
/* Atomically rename the sealed temp file to path and fsync the directory
 * (the _unsynced form: no fsync of the directory, for a rename made
 * durable later by a syncfs() of the state directory's file system,
 * which path is on as rename() requires: a fetched copy, holders.h). */
apr_status_t cs_store_install(cs_tmp_t *t, const char *path);
apr_status_t cs_store_install_unsynced(cs_tmp_t *t, const char *path);
/* Remove path (a missing file is not an error) and fsync its directory. */
apr_status_t cs_store_remove(apr_pool_t *p, const char *path);

/* Write a small file durably: data goes to a temp file in st's state dir
 * (named PREFIX-PID-..., so a crash leaves nothing the next start does not
 * sweep), is fsynced and renamed to dst, and dst's directory is fsynced.
 * spare (may be NULL): a file of the module's to take over as that temp
 * file (renamed, then overwritten), where it is still there; else one is
 * made.  On failure nothing is left behind. */
apr_status_t cs_store_put_small(apr_pool_t *p, const cs_store_t *st,
                                const char *prefix, const char *dst,
                                const char *spare, const char *data,
                                apr_size_t len);
/* The same without either fsync, for a batch of them made durable at
 * once by cs_store_sync_fs(): one syncfs() of the file system they are
 * on (measured: an fsync of each file and its directory cost 0.6 ms a
 * file, even when the journal had committed them already). */
apr_status_t cs_store_put_small_unsynced(apr_pool_t *p, const cs_store_t *st,
                                         const char *prefix, const char *dst,
                                         const char *data, apr_size_t len);
/* syncfs() of the file system path is on (*dev: its device, may be
 * NULL), or of the one f is on. */
apr_status_t cs_store_sync_fs(const char *path, apr_uint64_t *dev);
apr_status_t cs_store_sync_fs_of(apr_file_t *f);

/* A MOVE of this node's copy (SPEC section 8): relabel the open copy f
 * as version e of key (its bytes and mtime stay), then rename it from
 * its old path to its new one (whose parents cs_store_make_parents()
 * made).  Neither is fsynced: cs_store_sync_dir() of each directory
 * concerned once after a batch (on ext4 that commits the journal with
 * every rename and attribute before it). */
apr_status_t cs_store_relabel(apr_pool_t *p, apr_file_t *f, const char *key,
                              const cs_entry_t *e);
apr_status_t cs_store_rename(const char *from, const char *to);
/* Walk the tree below dir (rel: its path below where the walk started,
 * "" there; ROOT/.clusterstorage is skipped at the top) depth first,
 * each directory's entries in byte order with '/' before every other byte,
 * without following symbolic links, from after *cursor (a rel path; ""
 * from the start).  visit is called with every entry that is not a
 * directory (sb from lstat): it returns CS_WALK_ON (the cursor moves to
 * it), CS_WALK_PAUSE (the cursor moves to it and the walk stops) or
 * CS_WALK_AGAIN (the walk stops before it: the next walk visits it
 * again).  Returns 1 when stopped, 0 at the end of the tree.  cursor has
 * room for cursor_size bytes (a longer path is never a cursor). */
typedef enum { CS_WALK_ON, CS_WALK_PAUSE, CS_WALK_AGAIN } cs_walk_t;
typedef cs_walk_t (*cs_visit_fn)(void *baton, apr_pool_t *p,
                                 const char *path, const char *rel,
                                 const struct stat *sb);
int cs_store_walk(apr_pool_t *p, const char *dir, const char *rel,
                  char *cursor, apr_size_t cursor_size, cs_visit_fn visit,
                  void *baton);

/* Adoption (admin.h): make the open file f, already in its place, this
 * node's copy of version e of key: its attributes, its mtime set to e's
 * (what cs_store_intact() checks), fsynced; its bytes stay.  _unlabel
 * takes the attributes off again (a commit that did not happen).
 * _unsynced leaves the fsync to the caller (cs_store_sync_file(), or
 * cs_store_sync_fs_of() once for a whole batch). */
apr_status_t cs_store_label_in_place(apr_pool_t *p, apr_file_t *f,
                                     const char *key, const cs_entry_t *e);
apr_status_t cs_store_label_unsynced(apr_pool_t *p, apr_file_t *f,
                                     const char *key, const cs_entry_t *e);
apr_status_t cs_store_sync_file(apr_file_t *f);
apr_status_t cs_store_unlabel(apr_file_t *f);
/* fsync the directory dir (one that is gone meanwhile is no error). */
apr_status_t cs_store_sync_dir(const char *dir);
/* Remove dir (below st's root) if it holds only empty directories. */
void cs_store_prune(const cs_store_t *st, const char *dir);

/* Take the node-wide exclusive lock of key; released when p is cleaned up
 * or by cs_store_unlock_key(). */
apr_status_t cs_store_lock_key(apr_pool_t *p, const cs_store_t *st,
                               const char *key, apr_file_t **lock);
void cs_store_unlock_key(apr_file_t *lock);
/* The locks of two keys, taken in an order that cannot deadlock; *l2 is
 * NULL when both keys share one lock. */
apr_status_t cs_store_lock_keys(apr_pool_t *p, const cs_store_t *st,
                                const char *k1, const char *k2,
                                apr_file_t **l1, apr_file_t **l2);
/* The locks of all of keys[0..n) (a batch), each stripe once, in the
 * order cs_store_lock_keys() uses; released by cs_store_unlock_many()
 * (or when p is cleaned up). */
typedef struct cs_lockset_t cs_lockset_t;
apr_status_t cs_store_lock_many(apr_pool_t *p, const cs_store_t *st,
                                const char *const *keys, int n,
                                cs_lockset_t **out);
/* The same without waiting: busy[i] is set for each key whose lock
 * someone else holds (those keys are not locked); the others are. */
apr_status_t cs_store_trylock_many(apr_pool_t *p, const cs_store_t *st,
                                   const char *const *keys, int n,
                                   int *busy, cs_lockset_t **out);
void cs_store_unlock_many(cs_lockset_t *ls);

/* A node-wide lock of its own for one kind of work, by file name. */
apr_status_t cs_store_lock_named(apr_pool_t *p, const cs_store_t *st,
                                 const char *name, apr_file_t **lock);
/* The same without waiting: APR_EBUSY while someone else holds it. */
apr_status_t cs_store_trylock_named(apr_pool_t *p, const cs_store_t *st,
                                    const char *name, apr_file_t **lock);

/* Crash recovery of PUTs: a sealed temp file of a dead process holds a
 * version that may have been committed just before the crash.  decide()
 * says, from the registry, whether (key, version) is the current version
 * held by this node: 1 (and *relpath, the file below the root) to rename it
 * into place, 0 to discard it, -1 when the registry cannot tell yet (the
 * file is kept for a later try; APR_EAGAIN is returned). */
typedef int (*cs_recover_fn)(void *baton, const char *key,
                             apr_uint64_t version, const char **relpath);
apr_status_t cs_store_recover(apr_pool_t *p, const cs_store_t *st,
                              cs_recover_fn decide, void *baton,
                              int *recovered);

#endif /* CS_STORE_H */

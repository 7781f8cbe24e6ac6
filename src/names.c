/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * names.c - collections, dead properties and locks in the registry; see
 * names.h.  The tables are created with the others (registry.c).
 */
#include "names.h"

#include "apr_strings.h"

#include <stdlib.h>

/* Subtree bounds of key: [key/, key0). */
#define CS_BELOW "path >= CONCAT(%s, '/') AND path < CONCAT(%s, '0')"

static const cs_sql_t cs_q_dir = {
    "cs_n_dir", "SELECT mtime FROM cs_dirs WHERE path = %s" };
static const cs_sql_t cs_q_subdirs = {
    "cs_n_subdirs",
    "SELECT path, mtime FROM cs_dirs WHERE parent = %s ORDER BY path" };
static const cs_sql_t cs_q_files = {
    "cs_n_files",
    "SELECT path, version, size, sha256, mtime FROM cs_files"
    " WHERE parent = %s AND deleted = 0 AND version > 0 ORDER BY path" };
static const cs_sql_t cs_q_files_below = {
    "cs_n_files_below",
    "SELECT path FROM cs_files WHERE " CS_BELOW
    " AND deleted = 0 AND version > 0 ORDER BY path" };
static const cs_sql_t cs_q_mkcol = {
    "cs_n_mkcol",
    "INSERT IGNORE INTO cs_dirs (path, parent, mtime) VALUES (%s, %s, %s)" };
static const cs_sql_t cs_q_rmdirs = {
    "cs_n_rmdirs",
    "DELETE FROM cs_dirs WHERE path = %s OR (" CS_BELOW ")" };
static const cs_sql_t cs_q_copy_dirs = {
    "cs_n_copy_dirs",
    "INSERT IGNORE INTO cs_dirs (path, parent, mtime)"
    " SELECT CONCAT(%s, SUBSTRING(path, LENGTH(%s) + 1)),"
    " CONCAT(%s, SUBSTRING(parent, LENGTH(%s) + 1)), %s FROM cs_dirs"
    " WHERE " CS_BELOW };
static const cs_sql_t cs_q_props = {
    "cs_n_props",
    "SELECT ns, name, HEX(value) FROM cs_props WHERE path = %s"
    " ORDER BY ns, name" };
static const cs_sql_t cs_q_prop_set = {
    "cs_n_prop_set",
    "INSERT INTO cs_props (path, ns, name, value) VALUES (%s, %s, %s, %s)"
    " ON DUPLICATE KEY UPDATE value = VALUES(value)" };
static const cs_sql_t cs_q_prop_del = {
    "cs_n_prop_del",
    "DELETE FROM cs_props WHERE path = %s AND ns = %s AND name = %s" };
static const cs_sql_t cs_q_props_drop = {
    "cs_n_props_drop", "DELETE FROM cs_props WHERE path = %s" };
static const cs_sql_t cs_q_props_drop_below = {
    "cs_n_props_drop_below",
    "DELETE FROM cs_props WHERE path = %s OR (" CS_BELOW ")" };
static const cs_sql_t cs_q_props_copy = {
    "cs_n_props_copy",
    "INSERT INTO cs_props (path, ns, name, value)"
    " SELECT %s, ns, name, value FROM cs_props WHERE path = %s" };
static const cs_sql_t cs_q_props_copy_below = {
    "cs_n_props_copy_below",
    "INSERT INTO cs_props (path, ns, name, value)"
    " SELECT CONCAT(%s, SUBSTRING(path, LENGTH(%s) + 1)), ns, name, value"
    " FROM cs_props WHERE " CS_BELOW };
static const cs_sql_t cs_q_rmlocks = {
    "cs_n_rmlocks",
    "DELETE FROM cs_locks WHERE path = %s OR (" CS_BELOW ")" };

#define CS_LOCK_COLS "token, path, depth, scope, owner, auth_user, expires"
/* The same, the owner (a BLOB) as hex: see cs_unhex(). */
#define CS_LOCK_SEL "token, path, depth, scope, HEX(owner), auth_user, expires"
#define CS_LOCK_LIVE "(expires = 0 OR expires > UNIX_TIMESTAMP())"
static const cs_sql_t cs_q_locks = {
    "cs_n_locks",
    "SELECT " CS_LOCK_SEL " FROM cs_locks WHERE " CS_LOCK_LIVE
    " AND (path = %s OR (depth <> 0"
    " AND LEFT(%s, LENGTH(path) + 1) = CONCAT(path, '/')))" };
static const cs_sql_t cs_q_locks_tree = {
    "cs_n_locks_tree",
    "SELECT " CS_LOCK_SEL " FROM cs_locks WHERE " CS_LOCK_LIVE
    " AND (path = %s OR (" CS_BELOW ") OR (depth <> 0"
    " AND LEFT(%s, LENGTH(path) + 1) = CONCAT(path, '/')))" };
static const cs_sql_t cs_q_lock_get = {
    "cs_n_lock_get",
    "SELECT " CS_LOCK_SEL " FROM cs_locks WHERE token = %s AND "
    CS_LOCK_LIVE };
static const cs_sql_t cs_q_lock_add = {
    "cs_n_lock_add",
    "INSERT INTO cs_locks (" CS_LOCK_COLS ") VALUES (%s, %s, %s, %s, %s,"
    " %s, IF(%s = 0, 0, UNIX_TIMESTAMP() + %s))"
    " ON DUPLICATE KEY UPDATE expires = VALUES(expires)" };
static const cs_sql_t cs_q_lock_del = {
    "cs_n_lock_del", "DELETE FROM cs_locks WHERE token = %s" };
static const cs_sql_t cs_q_lock_refresh = {
    "cs_n_lock_refresh",
    "UPDATE cs_locks SET expires = IF(%s = 0, 0, UNIX_TIMESTAMP() + %s)"
    " WHERE token = %s" };
/* Expired locks are ignored by every query; this clears them away. */
static const cs_sql_t cs_q_lock_expire = {
    "cs_n_lock_expire",
    "DELETE FROM cs_locks WHERE expires <> 0"
    " AND expires <= UNIX_TIMESTAMP()" };

static const char *cs_i64(apr_pool_t *p, apr_int64_t v)
{
    return apr_psprintf(p, "%" APR_INT64_T_FMT, v);
}

apr_status_t cs_names_dir(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                          const char *key, int *exists, apr_int64_t *mtime)
{
    apr_array_header_t *rows;
    apr_status_t rv = cs_db_select(s, p, dbd, &cs_q_dir, 1, &rows, 1, &key);

    *exists = rv == APR_SUCCESS && rows->nelts > 0;
    *mtime = *exists ? apr_atoi64(APR_ARRAY_IDX(rows, 0, const char **)[0])
                     : 0;
    return rv;
}

apr_status_t cs_names_members(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                              const char *key, apr_array_header_t **out)
{
    apr_array_header_t *dirs, *files;
    apr_status_t rv;
    int i;

    *out = apr_array_make(p, 8, sizeof(cs_member_t));
    rv = cs_db_select(s, p, dbd, &cs_q_subdirs, 2, &dirs, 1, &key);
    if (rv == APR_SUCCESS) {
        rv = cs_db_select(s, p, dbd, &cs_q_files, 5, &files, 1, &key);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < dirs->nelts; i++) {
        const char **c = APR_ARRAY_IDX(dirs, i, const char **);
        cs_member_t *m = apr_array_push(*out);
        memset(m, 0, sizeof(*m));
        m->key = c[0];
        m->collection = 1;
        m->e.mtime = apr_atoi64(c[1]);
    }
    for (i = 0; i < files->nelts; i++) {
        const char **c = APR_ARRAY_IDX(files, i, const char **);
        cs_member_t *m = apr_array_push(*out);
        memset(m, 0, sizeof(*m));
        m->key = c[0];
        m->e.version = apr_strtoi64(c[1], NULL, 10);
        m->e.size = apr_strtoi64(c[2], NULL, 10);
        apr_cpystrn(m->e.sha256, c[3], sizeof(m->e.sha256));
        m->e.mtime = apr_atoi64(c[4]);
    }
    return APR_SUCCESS;
}

apr_status_t cs_names_files_below(server_rec *s, apr_pool_t *p,
                                  ap_dbd_t *dbd, const char *key,
                                  apr_array_header_t **out)
{
    const char *args[2] = { key, key };
    apr_array_header_t *rows;
    apr_status_t rv = cs_db_select(s, p, dbd, &cs_q_files_below, 1, &rows, 2,
                                   args);
    int i;

    *out = apr_array_make(p, rows->nelts, sizeof(const char *));
    for (i = 0; i < rows->nelts; i++) {
        APR_ARRAY_PUSH(*out, const char *) =
            APR_ARRAY_IDX(rows, i, const char **)[0];
    }
    return rv;
}

apr_status_t cs_names_mkcol(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                            const char *key, apr_int64_t mtime,
                            int *created)
{
    const char *args[3];
    int nrows = 0;
    apr_status_t rv;

    args[0] = key;
    args[1] = cs_key_parent(p, key);
    args[2] = cs_i64(p, mtime);
    rv = cs_db_run(s, p, dbd, &cs_q_mkcol, &nrows, 3, args);
    *created = rv == APR_SUCCESS && nrows > 0;
    return rv;
}

apr_status_t cs_names_rmcol(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                            const char *key)
{
    const char *args[3] = { key, key, key };
    apr_status_t rv = cs_db_run(s, p, dbd, &cs_q_rmdirs, NULL, 3, args);

    if (rv == APR_SUCCESS) {
        rv = cs_db_run(s, p, dbd, &cs_q_props_drop_below, NULL, 3, args);
    }
    if (rv == APR_SUCCESS) {
        rv = cs_db_run(s, p, dbd, &cs_q_rmlocks, NULL, 3, args);
    }
    return rv;
}

apr_status_t cs_names_copy_dirs(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                                const char *src, const char *dst,
                                apr_int64_t mtime)
{
    const char *args[7];
    int created;
    apr_status_t rv = cs_names_mkcol(s, p, dbd, dst, mtime, &created);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    args[0] = dst;
    args[1] = src;
    args[2] = dst;
    args[3] = src;
    args[4] = cs_i64(p, mtime);
    args[5] = src;
    args[6] = src;
    return cs_db_run(s, p, dbd, &cs_q_copy_dirs, NULL, 7, args);
}

/* apr_dbd_mysql does not end a BLOB's bytes with a NUL: values are read
 * as hex (HEX() above) and turned back here. */
static const char *cs_unhex(apr_pool_t *p, const char *hex)
{
    apr_size_t n = strlen(hex) / 2, i;
    char *out = apr_palloc(p, n + 1);

    for (i = 0; i < n; i++) {
        char b[3] = { hex[2 * i], hex[2 * i + 1], 0 };
        out[i] = (char)strtol(b, NULL, 16);
    }
    out[n] = '\0';
    return out;
}

apr_status_t cs_names_props(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                            const char *key, apr_array_header_t **out)
{
    apr_array_header_t *rows;
    apr_status_t rv = cs_db_select(s, p, dbd, &cs_q_props, 3, &rows, 1, &key);
    int i;

    *out = apr_array_make(p, rows->nelts, sizeof(cs_prop_t));
    for (i = 0; i < rows->nelts; i++) {
        const char **c = APR_ARRAY_IDX(rows, i, const char **);
        cs_prop_t *pr = apr_array_push(*out);
        pr->ns = c[0];
        pr->name = c[1];
        pr->value = cs_unhex(p, c[2]);
    }
    return rv;
}

apr_status_t cs_names_prop_set(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                               const char *key, const cs_prop_t *prop)
{
    const char *args[4] = { key, prop->ns, prop->name, prop->value };

    return cs_db_run(s, p, dbd, &cs_q_prop_set, NULL, 4, args);
}

apr_status_t cs_names_prop_del(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                               const char *key, const char *ns,
                               const char *name)
{
    const char *args[3] = { key, ns, name };

    return cs_db_run(s, p, dbd, &cs_q_prop_del, NULL, 3, args);
}

apr_status_t cs_names_props_drop(server_rec *s, apr_pool_t *p,
                                 ap_dbd_t *dbd, const char *key, int depth)
{
    const char *args[3] = { key, key, key };

    return depth ? cs_db_run(s, p, dbd, &cs_q_props_drop_below, NULL, 3, args)
                 : cs_db_run(s, p, dbd, &cs_q_props_drop, NULL, 1, args);
}

apr_status_t cs_names_props_copy(server_rec *s, apr_pool_t *p,
                                 ap_dbd_t *dbd, const char *src,
                                 const char *dst, int depth)
{
    const char *args[4];
    apr_status_t rv = cs_names_props_drop(s, p, dbd, dst, depth);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    args[0] = dst;
    args[1] = src;
    rv = cs_db_run(s, p, dbd, &cs_q_props_copy, NULL, 2, args);
    if (rv == APR_SUCCESS && depth) {
        args[0] = dst;
        args[1] = src;
        args[2] = src;
        args[3] = src;
        rv = cs_db_run(s, p, dbd, &cs_q_props_copy_below, NULL, 4, args);
    }
    return rv;
}

static void cs_row_to_lock(apr_pool_t *p, const char **c, cs_lock_t *l)
{
    l->token = c[0];
    l->key = c[1];
    l->depth = atoi(c[2]);
    l->shared = atoi(c[3]) != 0;
    l->owner = cs_unhex(p, c[4]);
    l->auth_user = c[5];
    l->expires = apr_atoi64(c[6]);
}

static apr_status_t cs_lock_rows(server_rec *s, apr_pool_t *p,
                                 ap_dbd_t *dbd, const cs_sql_t *q, int nargs,
                                 const char **args, apr_array_header_t **out)
{
    apr_array_header_t *rows;
    apr_status_t rv = cs_db_select(s, p, dbd, q, 7, &rows, nargs, args);
    int i;

    *out = apr_array_make(p, rows->nelts, sizeof(cs_lock_t));
    for (i = 0; i < rows->nelts; i++) {
        cs_row_to_lock(p, APR_ARRAY_IDX(rows, i, const char **),
                       apr_array_push(*out));
    }
    return rv;
}

apr_status_t cs_names_locks(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                            const char *key, apr_array_header_t **out)
{
    const char *args[2] = { key, key };

    return cs_lock_rows(s, p, dbd, &cs_q_locks, 2, args, out);
}

apr_status_t cs_names_locks_tree(server_rec *s, apr_pool_t *p,
                                 ap_dbd_t *dbd, const char *key,
                                 apr_array_header_t **out)
{
    const char *args[4] = { key, key, key, key };

    return cs_lock_rows(s, p, dbd, &cs_q_locks_tree, 4, args, out);
}

apr_status_t cs_names_lock_get(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                               const char *token, cs_lock_t *lock,
                               int *found)
{
    apr_array_header_t *rows;
    apr_status_t rv = cs_db_select(s, p, dbd, &cs_q_lock_get, 7, &rows, 1,
                                   &token);

    *found = rv == APR_SUCCESS && rows->nelts > 0;
    if (*found) {
        cs_row_to_lock(p, APR_ARRAY_IDX(rows, 0, const char **), lock);
    }
    return rv;
}

apr_status_t cs_names_lock_add(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                               const cs_lock_t *lock, apr_int64_t ttl)
{
    const char *args[8];

    /* Now and then clear expired rows away (they are ignored anyway). */
    cs_db_run(s, p, dbd, &cs_q_lock_expire, NULL, 0, NULL);
    args[0] = lock->token;
    args[1] = lock->key;
    args[2] = lock->depth ? "1" : "0";
    args[3] = lock->shared ? "1" : "0";
    args[4] = lock->owner ? lock->owner : "";
    args[5] = lock->auth_user ? lock->auth_user : "";
    args[6] = cs_i64(p, ttl);
    args[7] = args[6];
    return cs_db_run(s, p, dbd, &cs_q_lock_add, NULL, 8, args);
}

apr_status_t cs_names_lock_del(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                               const char *token)
{
    return cs_db_run(s, p, dbd, &cs_q_lock_del, NULL, 1, &token);
}

apr_status_t cs_names_lock_refresh(server_rec *s, apr_pool_t *p,
                                   ap_dbd_t *dbd, const char *token,
                                   apr_int64_t ttl)
{
    const char *args[3];

    args[0] = cs_i64(p, ttl);
    args[1] = args[0];
    args[2] = token;
    return cs_db_run(s, p, dbd, &cs_q_lock_refresh, NULL, 3, args);
}

/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * registry.c - MariaDB through mod_dbd, memcached in front; see registry.h.
 */
#include "registry.h"
#include "cache.h"
#include "crypto.h"
#include "dbconn.h"
#include "mcache.h"

#include "http_protocol.h"
#include "apr_atomic.h"
#include "apr_dbd.h"
#include "apr_strings.h"
#include "mod_dbd.h"

#include <stdlib.h>
#include <sys/uio.h>

#define CS_STR_(x) #x
#define CS_STR(x) CS_STR_(x)
/* SQL: is the node whose cs_nodes columns have prefix t (e.g. "n.") up?
 * Computed with the database's clock, so nodes' clocks never disagree
 * about it (CS_ALIVE_PERIODS). */
#define CS_SQL_ALIVE(t) \
    "(UNIX_TIMESTAMP() - " t "heartbeat <= " CS_STR(CS_ALIVE_PERIODS) \
    " * " t "period)"

/* SQL, ending an insert into cs_replicas: a holder row only ever moves
 * forward in version (a registration that read an older current version
 * before it waited for the row lock must not overwrite the newer row a
 * writer committed meanwhile; stored_at first: assignments run left to
 * right). */
#define CS_SQL_REPLICA_UPSERT \
    " ON DUPLICATE KEY UPDATE stored_at =" \
    " IF(VALUES(version) >= cs_replicas.version, VALUES(stored_at)," \
    " cs_replicas.stored_at)," \
    " version = GREATEST(cs_replicas.version, VALUES(version))"

/* SQL: does the node's copy count towards ClusterStorageReplicas?  Up
 * and not draining. */
#define CS_SQL_KEEPS(t) "(" CS_SQL_ALIVE(t) " AND " t "draining = 0)"

/* SQL, after FROM: of one page of node %s's holder rows after path %s, the
 * current versions with fewer than %s copies that count (admin.h). */
#define CS_SQL_DRAIN_SHORT \
    " (SELECT path, version FROM cs_replicas WHERE node = %s AND path > %s" \
    "  ORDER BY path LIMIT " CS_STR(CS_REPAIR_PAGE) ") pg" \
    " JOIN cs_files f ON f.path = pg.path AND f.version = pg.version" \
    " WHERE f.deleted = 0" \
    " AND (SELECT COUNT(*) FROM cs_replicas r JOIN cs_nodes n" \
    "      ON n.name = r.node WHERE r.path = f.path" \
    "      AND r.version = f.version AND " CS_SQL_KEEPS("n.") ") < %s"

/* SQL: the parent collection of the key in column c ("" below "/"). */
#define CS_SQL_PARENT(c) \
    "LEFT(" c ", LENGTH(" c ") - LENGTH(SUBSTRING_INDEX(" c ", '/', -1))" \
    " - 1)"

/* The DDL, also shipped as conf/schema.sql.  Keys are VARBINARY so that
 * the database never re-interprets their bytes; 2048 + 64 bytes fits
 * InnoDB's 3072-byte index limit. */
static const char *const cs_schema[] = {
    "CREATE TABLE IF NOT EXISTS cs_files ("
    " path VARBINARY(2048) NOT NULL,"
    " version BIGINT UNSIGNED NOT NULL,"
    " size BIGINT UNSIGNED NOT NULL DEFAULT 0,"
    " sha256 CHAR(64) CHARACTER SET ascii NOT NULL DEFAULT '',"
    " mtime BIGINT NOT NULL DEFAULT 0,"
    " deleted TINYINT(1) NOT NULL DEFAULT 0,"
    " relpath VARBINARY(2048) NOT NULL DEFAULT '',"
    " parent VARBINARY(2048) NOT NULL DEFAULT '',"
    " acked TINYINT(1) NOT NULL DEFAULT 1,"
    " PRIMARY KEY (path),"
    " KEY cs_files_parent (parent)"
    ") ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS cs_replicas ("
    " path VARBINARY(2048) NOT NULL,"
    " node VARCHAR(64) CHARACTER SET ascii NOT NULL,"
    " version BIGINT UNSIGNED NOT NULL,"
    " stored_at BIGINT NOT NULL,"
    " PRIMARY KEY (path, node),"
    " KEY cs_replicas_node (node)"
    ") ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS cs_nodes ("
    " name VARCHAR(64) CHARACTER SET ascii NOT NULL,"
    " url VARCHAR(255) NOT NULL,"
    " heartbeat BIGINT NOT NULL,"
    " period INT NOT NULL,"
    " lease INT NOT NULL DEFAULT 0,"
    " started BIGINT NOT NULL,"
    " PRIMARY KEY (name)"
    ") ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS cs_invalidations ("
    " node VARCHAR(64) CHARACTER SET ascii NOT NULL,"
    " path VARBINARY(2048) NOT NULL,"
    " version BIGINT UNSIGNED NOT NULL,"
    " PRIMARY KEY (node, path)"
    ") ENGINE=InnoDB",
    /* The namespace (names.c): collections, dead properties, locks. */
    "CREATE TABLE IF NOT EXISTS cs_dirs ("
    " path VARBINARY(2048) NOT NULL,"
    " parent VARBINARY(2048) NOT NULL,"
    " mtime BIGINT NOT NULL,"
    " PRIMARY KEY (path),"
    " KEY cs_dirs_parent (parent)"
    ") ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS cs_props ("
    " path VARBINARY(2048) NOT NULL,"
    " ns VARBINARY(768) NOT NULL,"
    " name VARBINARY(255) NOT NULL,"
    " value MEDIUMBLOB NOT NULL,"
    " PRIMARY KEY (path, ns, name)"
    ") ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS cs_locks ("
    " token CHAR(36) CHARACTER SET ascii NOT NULL,"
    " path VARBINARY(2048) NOT NULL,"
    " depth TINYINT NOT NULL,"
    " scope TINYINT NOT NULL,"
    " owner BLOB NOT NULL,"
    " auth_user VARBINARY(255) NOT NULL DEFAULT '',"
    " expires BIGINT NOT NULL,"
    " PRIMARY KEY (token),"
    " KEY cs_locks_path (path)"
    ") ENGINE=InnoDB",
    /* MOVEs each node has still to apply to its own copies (move.c):
     * written in the MOVE's transaction, one row per node. */
    "CREATE TABLE IF NOT EXISTS cs_moves ("
    " seq BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,"
    " node VARCHAR(64) CHARACTER SET ascii NOT NULL,"
    " src VARBINARY(2048) NOT NULL,"
    " dst VARBINARY(2048) NOT NULL,"
    " src_rel VARBINARY(2048) NOT NULL,"
    " dst_rel VARBINARY(2048) NOT NULL,"
    " tree TINYINT(1) NOT NULL,"
    " PRIMARY KEY (seq),"
    " KEY cs_moves_node (node, seq)"
    ") ENGINE=InnoDB",
    /* Turns on a Galera cluster, whose GET_LOCK is one member's: a row per
     * turn held, with its holder and the end of its lease (ms). */
    "CREATE TABLE IF NOT EXISTS cs_turns ("
    " name VARCHAR(64) CHARACTER SET ascii NOT NULL,"
    " holder VARCHAR(160) CHARACTER SET ascii NOT NULL,"
    " expires BIGINT NOT NULL,"
    " PRIMARY KEY (name)"
    ") ENGINE=InnoDB",
    /* A registry from before collections: each file row learns its
     * parent, and every directory that holds a live file becomes a
     * collection (both are no-ops once done). */
    "ALTER TABLE cs_files"
    " ADD COLUMN IF NOT EXISTS parent VARBINARY(2048) NOT NULL DEFAULT '',"
    " ADD INDEX IF NOT EXISTS cs_files_parent (parent)",
    "UPDATE cs_files SET parent = LEFT(path, LENGTH(path)"
    " - LENGTH(SUBSTRING_INDEX(path, '/', -1)) - 1)"
    " WHERE parent = '' AND LOCATE('/', path, 2) > 0",
    /* A registry from before acknowledgements: every version in it was
     * answered (a no-op once done). */
    "ALTER TABLE cs_files"
    " ADD COLUMN IF NOT EXISTS acked TINYINT(1) NOT NULL DEFAULT 1",
    /* Draining nodes (admin.h): serve, take no new copies, and their
     * copies do not count towards ClusterStorageReplicas. */
    "ALTER TABLE cs_nodes"
    " ADD COLUMN IF NOT EXISTS draining TINYINT(1) NOT NULL DEFAULT 0",
    "INSERT IGNORE INTO cs_dirs (path, parent, mtime)"
    " WITH RECURSIVE a (p) AS ("
    "  SELECT DISTINCT parent FROM cs_files"
    "  WHERE parent <> '' AND deleted = 0 AND version > 0"
    "  UNION SELECT LEFT(p, LENGTH(p)"
    "  - LENGTH(SUBSTRING_INDEX(p, '/', -1)) - 1) FROM a"
    "  WHERE LOCATE('/', p, 2) > 0)"
    " SELECT p, LEFT(p, LENGTH(p)"
    " - LENGTH(SUBSTRING_INDEX(p, '/', -1)) - 1), 0 FROM a",
    NULL
};

typedef enum {
    CS_ST_GET,
    CS_ST_PLACEHOLDER,
    CS_ST_CREATE,
    CS_ST_LOCKROW,
    CS_ST_UPSERT,
    CS_ST_ACK,
    CS_ST_UNACKED,
    CS_ST_ANCESTORS,
    CS_ST_DROP_REPLICAS,
    CS_ST_ADD_REPLICA,
    CS_ST_HEARTBEAT,
    CS_ST_HOLDERS,
    CS_ST_GET_HOLDERS,
    CS_ST_ADD_REPLICA_IF_CURRENT,
    CS_ST_NODES,
    CS_ST_UNDER,
    CS_ST_PAGE_END,
    CS_ST_INV_ADD,
    CS_ST_INV_LIST,
    CS_ST_INV_DEL,
    CS_ST_INV_PENDING,
    CS_ST_RECOVER,
    CS_ST_NO_LEASE,
    CS_ST_DROP_MY_REPLICA,
    CS_ST_NOW,
    CS_ST_DRAIN_SET,
    CS_ST_DRAIN_LEFT,
    CS_ST_FORGET_REPLICAS,
    CS_ST_FORGET_NODE,
    CS_ST_DRAIN_UNDER,
    CS_ST_COUNT
} cs_stmt_id;

#define CS_ENTRY_COLS "version, size, sha256, mtime, deleted"

/* MySQL/MariaDB's error number for a duplicate key (what apr_dbd_mysql
 * returns from a failed statement). */
#define CS_ER_DUP_ENTRY 1062
/* ... for a variable the server does not have (MySQL: no wsrep_on). */
#define CS_ER_UNKNOWN_SYSTEM_VARIABLE 1193

static const cs_sql_t cs_stmts[CS_ST_COUNT] = {
    { "cs_get",
      "SELECT " CS_ENTRY_COLS " FROM cs_files WHERE path = %s" },
    /* Gives a missing key a "never stored" row to lock, so concurrent first
     * writers queue on one record lock instead of deadlocking on gaps. */
    { "cs_placeholder",
      "INSERT INTO cs_files (path, version, size, sha256, mtime, deleted)"
      " VALUES (%s, 0, 0, '', 0, 0)"
      " ON DUPLICATE KEY UPDATE version = version" },
    /* A first PUT of a key writes its row at once.  A concurrent first
     * writer makes it fail (duplicate key): the transaction runs again,
     * the placeholder way. */
    { "cs_create",
      "INSERT INTO cs_files (path, version, size, sha256, mtime, deleted,"
      " relpath, parent, acked) VALUES (%s, 1, %s, %s, %s, 0, %s, %s, 0)" },
    { "cs_lockrow",
      "SELECT " CS_ENTRY_COLS " FROM cs_files WHERE path = %s FOR UPDATE" },
    { "cs_upsert",
      "UPDATE cs_files SET version = %s, size = %s, sha256 = %s,"
      " mtime = %s, deleted = %s, relpath = %s, parent = %s,"
      " acked = deleted WHERE path = %s" },
    /* The writer answered (write.h): the version is acknowledged. */
    { "cs_ack",
      "UPDATE cs_files SET acked = 1 WHERE path = %s AND version = %s" },
    /* A version committed and not acknowledged (its writer has not
     * answered, or died before it did)? */
    { "cs_unacked",
      "SELECT COUNT(*) FROM cs_files WHERE path = %s AND version = %s"
      " AND acked = 0 AND deleted = 0" },
    /* A key's first version (or one after a tombstone) makes its parent
     * directories collections (SPEC section 8), in one statement. */
    { "cs_ancestors",
      "INSERT IGNORE INTO cs_dirs (path, parent, mtime)"
      " WITH RECURSIVE a (p) AS (SELECT " CS_SQL_PARENT("%s")
      "  UNION ALL SELECT " CS_SQL_PARENT("p") " FROM a"
      "  WHERE LOCATE('/', p, 2) > 0)"
      " SELECT p, " CS_SQL_PARENT("p") ", %s FROM a WHERE p <> ''" },
    { "cs_drop_replicas",
      "DELETE FROM cs_replicas WHERE path = %s" },
    { "cs_add_replica",
      "INSERT INTO cs_replicas (path, node, version, stored_at)"
      " VALUES (%s, %s, %s, UNIX_TIMESTAMP())" CS_SQL_REPLICA_UPSERT },
    { "cs_heartbeat",
      "INSERT INTO cs_nodes (name, url, heartbeat, period, lease, started)"
      " VALUES (%s, %s, UNIX_TIMESTAMP(), %s, %s, UNIX_TIMESTAMP())"
      " ON DUPLICATE KEY UPDATE url = VALUES(url),"
      " heartbeat = VALUES(heartbeat), period = VALUES(period),"
      " lease = VALUES(lease)" },
    { "cs_holders",
      "SELECT n.name, n.url, " CS_SQL_ALIVE("n.")
      " FROM cs_replicas r JOIN cs_nodes n ON n.name = r.node"
      " WHERE r.path = %s AND r.version = %s" },
    /* The entry and its holders in one round trip (a GET about to fetch):
     * one row per holder, or one row with NULL node columns. */
    { "cs_get_holders",
      "SELECT f.version, f.size, f.sha256, f.mtime, f.deleted, n.name, n.url, "
      CS_SQL_ALIVE("n.")
      " FROM cs_files f LEFT JOIN (cs_replicas r JOIN cs_nodes n"
      "  ON n.name = r.node) ON r.path = f.path AND r.version = f.version"
      " WHERE f.path = %s" },
    /* Register a fetched copy only if it is still the current version, in
     * one statement (a consistent read of cs_files under READ COMMITTED,
     * no lock taken). */
    { "cs_add_replica_if_current",
      "INSERT INTO cs_replicas (path, node, version, stored_at)"
      " SELECT path, %s, version, UNIX_TIMESTAMP() FROM cs_files"
      " WHERE path = %s AND version = %s AND deleted = 0"
      CS_SQL_REPLICA_UPSERT },
    { "cs_nodes",
      "SELECT name, url, " CS_SQL_ALIVE("") ","
      " UNIX_TIMESTAMP() - heartbeat, period, lease, draining FROM cs_nodes"
      " ORDER BY name" },
    /* Repair (replicate.h): among one page of a node's holder rows (a
     * node that died, or this one), the keys whose current version this
     * node holds too, that have fewer live holders than wanted, and for
     * which this node is the first live holder by name (so one holder
     * repairs, not all of them).  A page is CS_REPAIR_PAGE rows of the
     * (node, path) index: each statement reads that much at most, however
     * large the registry. */
    { "cs_under",
      "SELECT f.path, f.relpath FROM"
      " (SELECT path, version FROM cs_replicas WHERE node = %s AND path > %s"
      "  ORDER BY path LIMIT " CS_STR(CS_REPAIR_PAGE) ") pg"
      " JOIN cs_files f ON f.path = pg.path AND f.version = pg.version"
      " JOIN cs_replicas me ON me.path = f.path AND me.version = f.version"
      "  AND me.node = %s"
      " WHERE f.deleted = 0"
      " AND (SELECT COUNT(*) FROM cs_replicas r JOIN cs_nodes n"
      "      ON n.name = r.node WHERE r.path = f.path"
      "      AND r.version = f.version"
      "      AND " CS_SQL_KEEPS("n.") ") < %s"
      " AND NOT EXISTS (SELECT 1 FROM cs_replicas r2 JOIN cs_nodes n2"
      "      ON n2.name = r2.node WHERE r2.path = f.path"
      "      AND r2.version = f.version AND r2.node < me.node"
      "      AND " CS_SQL_ALIVE("n2.") ")" },
    /* The last path of that page ("" past the end). */
    { "cs_page_end",
      "SELECT COALESCE(MAX(path), '') FROM"
      " (SELECT path FROM cs_replicas WHERE node = %s AND path > %s"
      "  ORDER BY path LIMIT " CS_STR(CS_REPAIR_PAGE) ") pg" },
    /* Invalidations a writer could not deliver (cache.h, point 2). */
    { "cs_inv_add",
      "INSERT INTO cs_invalidations (node, path, version) VALUES (%s, %s, %s)"
      " ON DUPLICATE KEY UPDATE version = GREATEST(version, VALUES(version))" },
    { "cs_inv_list",
      "SELECT path, version FROM cs_invalidations WHERE node = %s" },
    { "cs_inv_del",
      "DELETE FROM cs_invalidations WHERE node = %s AND path = %s"
      " AND version <= %s" },
    { "cs_inv_pending",
      "SELECT COUNT(*) FROM cs_invalidations WHERE node = %s AND path = %s" },
    /* Is (key, version) current and registered as held by this node? */
    { "cs_recover",
      "SELECT f.relpath FROM cs_files f JOIN cs_replicas r"
      " ON r.path = f.path AND r.version = f.version AND r.node = %s"
      " WHERE f.path = %s AND f.version = %s AND f.deleted = 0" },
    { "cs_no_lease",
      "UPDATE cs_nodes SET lease = 0 WHERE name = %s" },
    /* This node's copy of a version turned out damaged (quarantined). */
    { "cs_drop_my_replica",
      "DELETE FROM cs_replicas WHERE path = %s AND node = %s"
      " AND version = %s" },
    /* The database's clock, for this node's skew (heartbeat). */
    { "cs_now",
      "SELECT UNIX_TIMESTAMP(NOW(6))" },
    /* Draining (admin.h). */
    { "cs_drain_set",
      "UPDATE cs_nodes SET draining = %s WHERE name = %s" },
    /* Of one page of a draining node's holder rows: the current versions
     * that have fewer copies elsewhere than wanted, and their bytes. */
    { "cs_drain_left",
      "SELECT COUNT(*), COALESCE(SUM(f.size), 0) FROM" CS_SQL_DRAIN_SHORT },
    /* Forgetting a retired node: its holder rows a batch at a time, then
     * its row. */
    { "cs_forget_replicas",
      "DELETE FROM cs_replicas WHERE node = %s LIMIT 1000" },
    { "cs_forget_node",
      "DELETE FROM cs_nodes WHERE name = %s AND draining = 1 AND NOT "
      CS_SQL_ALIVE("") },
    /* The same for a draining node's own pages (admin.h), which it
     * copies itself: every key of the page short of copies elsewhere. */
    { "cs_drain_under",
      "SELECT f.path, f.relpath FROM" CS_SQL_DRAIN_SHORT },
};

/* Set once per process after the DDL ran successfully. */
static volatile apr_uint32_t cs_schema_ready;

int cs_registry_have_dbd(void)
{
    return cs_dbconn_have_dbd();
}

/* ------------------------------------------------------------------ */
/* Database helpers                                                   */
/* ------------------------------------------------------------------ */

static const char *cs_db_error(ap_dbd_t *dbd, int rv)
{
    static __thread char buf[320];
    const char *msg = apr_dbd_error(dbd->driver, dbd->handle, rv);

    apr_snprintf(buf, sizeof(buf), "error %d%s%s", rv,
                 msg && *msg ? ": " : "", msg && *msg ? msg : "");
    return buf;
}

static apr_status_t cs_db_schema(server_rec *s, ap_dbd_t *dbd)
{
    int i, nrows, rv;

    if (apr_atomic_read32(&cs_schema_ready)) {
        return APR_SUCCESS;
    }
    for (i = 0; cs_schema[i]; i++) {
        rv = apr_dbd_query(dbd->driver, dbd->handle, &nrows, cs_schema[i]);
        if (rv != 0) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, CSLOG(101)
                         "cannot create the registry tables: %s",
                         cs_db_error(dbd, rv));
            return APR_EGENERAL;
        }
    }
    apr_atomic_set32(&cs_schema_ready, 1);
    return APR_SUCCESS;
}

/* Our statements on one connection: each in its own subpool of the
 * connection's pool, so that forgetting it also closes it on the server
 * (a leak there ends at max_prepared_stmt_count). */
typedef struct {
    apr_pool_t *pool;
    apr_dbd_prepared_t *stmt;
} cs_prepared_t;

#define CS_SESSION_LABEL "cs_session"

/* The database's error number of the last failed call on this thread,
 * and when that call began. */
static __thread int cs_db_errno;
static __thread apr_time_t cs_db_t0;

/* Deadlock, lock wait timeout or a lost race for a new row: the
 * transaction may simply be retried (the statements are fine). */
static int cs_db_retryable(int e)
{
    return e == 1213 || e == 1205 || e == CS_ER_DUP_ENTRY;
}

/* Marks a connection (in its `prepared` hash) to a Galera member. */
#define CS_GALERA_LABEL "\001cs-galera"

static int cs_db_is_galera(ap_dbd_t *dbd)
{
    return apr_hash_get(dbd->prepared, CS_GALERA_LABEL,
                        APR_HASH_KEY_STRING) != NULL;
}

/* A session on a Galera member (wsrep_on) reads causally: each read waits
 * until the member has applied every write the cluster committed before
 * it (wsrep_sync_wait = 1), so a registry read through one member sees
 * what a writer committed through another.  A server without Galera
 * (no such variable, or wsrep off) is left as it is.  0 or the error. */
static int cs_db_session_galera(server_rec *s, ap_dbd_t *dbd)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    const char *on = NULL;
    int nrows, rv;

    apr_hash_set(dbd->prepared, CS_GALERA_LABEL, APR_HASH_KEY_STRING, NULL);
    rv = apr_dbd_select(dbd->driver, dbd->pool, dbd->handle, &res,
                        "SELECT @@wsrep_on", 0);
    if (rv == CS_ER_UNKNOWN_SYSTEM_VARIABLE) {
        return 0;               /* not MariaDB with Galera built in */
    }
    if (rv != 0) {
        return rv;
    }
    while (apr_dbd_get_row(dbd->driver, dbd->pool, res, &row, -1) == 0) {
        on = apr_dbd_get_entry(dbd->driver, row, 0);
        on = on ? apr_pstrdup(dbd->pool, on) : NULL;
    }
    if (!on || strcmp(on, "1") != 0) {
        return 0;
    }
    rv = apr_dbd_query(dbd->driver, dbd->handle, &nrows,
                       "SET SESSION wsrep_sync_wait = 1");
    if (rv == 0) {
        apr_hash_set(dbd->prepared, CS_GALERA_LABEL, APR_HASH_KEY_STRING,
                     dbd);
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, CSLOG(128)
                     "database connection to a Galera member: causal reads "
                     "(wsrep_sync_wait = 1), turns in cs_turns");
    }
    return rv;
}

/* First use of a connection: our transactions lock rows, not gaps
 * (concurrent writers of different keys must not deadlock).  0 or the
 * error (logged, in cs_db_errno). */
static int cs_db_session(server_rec *s, ap_dbd_t *dbd)
{
    int rv, nrows;

    if (!apr_hash_get(dbd->prepared, CS_SESSION_LABEL, APR_HASH_KEY_STRING)) {
        /* A row lock is waited for less long than the connection's read
         * timeout (dbconn.h), so that a busy row is a retry, not a
         * database that stopped answering. */
        long wait = (long)apr_time_sec(cs_sconf(s)->db_timeout) - 1;
        rv = apr_dbd_query(dbd->driver, dbd->handle, &nrows,
                           "SET SESSION TRANSACTION ISOLATION LEVEL "
                           "READ COMMITTED");
        if (rv == 0) {
            rv = apr_dbd_query(dbd->driver, dbd->handle, &nrows,
                               apr_psprintf(dbd->pool, "SET SESSION "
                                            "innodb_lock_wait_timeout = %ld",
                                            wait > 1 ? wait : 1));
        }
        if (rv == 0) {
            rv = cs_db_session_galera(s, dbd);
        }
        if (rv != 0) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, CSLOG(116)
                         "cannot set the session's isolation level, lock "
                         "wait and causal reads: %s",
                         cs_db_error(dbd, rv));
            cs_db_errno = rv;
            return rv;
        }
        apr_hash_set(dbd->prepared, CS_SESSION_LABEL, APR_HASH_KEY_STRING,
                     dbd);
    }
    return 0;
}

/* The prepared statement `id` on this connection, preparing it on first use.
 * Statements live in the connection's pool (mod_dbd destroys it with the
 * connection), so a reconnect re-prepares them. */
static apr_dbd_prepared_t *cs_db_stmt(server_rec *s, ap_dbd_t *dbd,
                                      const cs_sql_t *q)
{
    cs_prepared_t *ps;
    apr_dbd_prepared_t *stmt = NULL;
    apr_pool_t *sub;
    int rv;

    cs_db_t0 = apr_time_now();  /* the statement is run right after */
    ps = apr_hash_get(dbd->prepared, q->label, APR_HASH_KEY_STRING);
    if (ps) {
        return ps->stmt;
    }
    if (cs_db_session(s, dbd) != 0) {
        return NULL;
    }
    apr_pool_create(&sub, dbd->pool);
    rv = apr_dbd_prepare(dbd->driver, sub, dbd->handle, q->sql,
                         q->label, &stmt);
    /* Tables missing (first start)?  Create them once and try again; a
     * database user without CREATE works as long as they exist. */
    if ((rv != 0 || !stmt) && !apr_atomic_read32(&cs_schema_ready)
        && cs_db_schema(s, dbd) == APR_SUCCESS) {
        stmt = NULL;
        rv = apr_dbd_prepare(dbd->driver, sub, dbd->handle, q->sql,
                             q->label, &stmt);
    }
    if (rv != 0 || !stmt) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, CSLOG(102)
                     "cannot prepare statement %s: %s",
                     q->label, cs_db_error(dbd, rv));
        apr_pool_destroy(sub);
        cs_db_errno = rv ? rv : 2006;
        return NULL;
    }
    ps = apr_palloc(sub, sizeof(*ps));
    ps->pool = sub;
    ps->stmt = stmt;
    apr_hash_set(dbd->prepared, q->label, APR_HASH_KEY_STRING, ps);
    return stmt;
}

static apr_dbd_prepared_t *cs_stmt(server_rec *s, ap_dbd_t *dbd,
                                   cs_stmt_id id)
{
    return cs_db_stmt(s, dbd, &cs_stmts[id]);
}

/* After the server lost our statements (restart, lost connection with
 * auto-reconnect): close what is left and prepare them again next time. */
static void cs_forget_stmts(ap_dbd_t *dbd)
{
    apr_hash_index_t *hi;
    const char *ours[128];
    int i, n = 0;

    /* Every statement of this module (registry.c's and names.c's): their
     * labels start with "cs_" and their values are cs_prepared_t. */
    for (hi = apr_hash_first(NULL, dbd->prepared); hi;
         hi = apr_hash_next(hi)) {
        const void *k;
        apr_hash_this(hi, &k, NULL, NULL);
        if (strncmp(k, "cs_", 3) == 0 && strcmp(k, CS_SESSION_LABEL) != 0
            && n < 128) {
            ours[n++] = k;
        }
    }
    for (i = 0; i < n; i++) {
        const char *label = ours[i];
        cs_prepared_t *ps = apr_hash_get(dbd->prepared, label,
                                         APR_HASH_KEY_STRING);
        apr_hash_set(dbd->prepared, label, APR_HASH_KEY_STRING, NULL);
        apr_pool_destroy(ps->pool);
    }
    apr_hash_set(dbd->prepared, CS_SESSION_LABEL, APR_HASH_KEY_STRING, NULL);
}

/* After a failed call: unless it was a deadlock or lock timeout, close and
 * forget this connection's statements; they are prepared afresh on next
 * use (after a database restart the server no longer knows them, and the
 * driver's error numbers for that vary). */
static void cs_db_failed(server_rec *s, ap_dbd_t *dbd, int rv)
{
    cs_db_errno = rv ? rv : 2013;
    cs_dbconn_failed(s, cs_db_errno, apr_time_now() - cs_db_t0);
    if (!cs_db_retryable(rv)) {
        cs_forget_stmts(dbd);
    }
}

/* An entry from the five columns of CS_ENTRY_COLS (as strings). */
static int cs_cols_to_entry(const char *const *v, cs_entry_t *e)
{
    uint64_t n;

    memset(e, 0, sizeof(*e));
    if (cs_parse_u64(v[0], strlen(v[0]), &e->version) != 0
        || cs_parse_u64(v[1], strlen(v[1]), &e->size) != 0
        || cs_parse_u64(v[3], strlen(v[3]), &n) != 0
        || n > (uint64_t)INT64_MAX
        || (v[4][0] != '0' && v[4][0] != '1') || v[4][1]) {
        return -1;
    }
    e->mtime = (int64_t)n;
    e->deleted = v[4][0] == '1';
    if (v[2][0]) {
        if (!cs_is_sha256_hex(v[2], strlen(v[2]))) {
            return -1;
        }
        memcpy(e->sha256, v[2], CS_SHA256_HEX_LEN + 1);
    }
    if (e->version == 0) {
        memset(e, 0, sizeof(*e));   /* a placeholder: never stored */
    }
    return 0;
}

/* Set while a write transaction runs on this thread: statements are not
 * retried inside it (the transaction as a whole is). */
static __thread int cs_in_txn;

/* Run a SELECT and collect every row as an array of ncols strings. */
static apr_status_t cs_db_rows_once(server_rec *s, apr_pool_t *p,
                                    ap_dbd_t *dbd, const cs_sql_t *q,
                                    int ncols,
                                    apr_array_header_t **out, int nargs,
                                    const char **args)
{
    apr_dbd_prepared_t *stmt = cs_db_stmt(s, dbd, q);
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    int rv, i;

    *out = apr_array_make(p, 4, sizeof(const char **));
    if (!stmt) {
        return APR_EGENERAL;
    }
    rv = apr_dbd_pselect(dbd->driver, p, dbd->handle, &res, stmt, 0, nargs,
                         args);
    if (rv != 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, CSLOG(103)
                     "registry lookup %s failed: %s",
                     q->label, cs_db_error(dbd, rv));
        cs_db_failed(s, dbd, rv);
        return APR_EGENERAL;
    }
    while ((rv = apr_dbd_get_row(dbd->driver, p, res, &row, -1)) == 0) {
        const char **cols = apr_pcalloc(p, ncols * sizeof(char *));
        for (i = 0; i < ncols; i++) {
            const char *v = apr_dbd_get_entry(dbd->driver, row, i);
            cols[i] = apr_pstrdup(p, v ? v : "");
        }
        APR_ARRAY_PUSH(*out, const char **) = cols;
    }
    if (rv != -1) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, CSLOG(105)
                     "reading rows of %s failed: %s", q->label,
                     cs_db_error(dbd, rv));
        cs_db_failed(s, dbd, rv);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* A SELECT that fails is tried once more on re-prepared statements (a
 * connection the driver made again has lost its server-side statements),
 * unless the database just stopped answering (dbconn.h). */
apr_status_t cs_db_select(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                          const cs_sql_t *q, int ncols,
                          apr_array_header_t **out, int nargs,
                          const char **args)
{
    apr_status_t rv = cs_db_rows_once(s, p, dbd, q, ncols, out, nargs,
                                      args);

    if (rv != APR_SUCCESS && !cs_in_txn && !cs_dbconn_down(s)) {
        rv = cs_db_rows_once(s, p, dbd, q, ncols, out, nargs, args);
    }
    return rv;
}

static apr_status_t cs_db_rows(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                               cs_stmt_id id, int ncols,
                               apr_array_header_t **out, int nargs,
                               const char **args)
{
    return cs_db_select(s, p, dbd, &cs_stmts[id], ncols, out, nargs, args);
}

/* The entry in the first of rows whose first five columns are
 * CS_ENTRY_COLS (no row: never stored). */
static apr_status_t cs_rows_entry(server_rec *s, const char *key,
                                  apr_array_header_t *rows, cs_entry_t *e)
{
    memset(e, 0, sizeof(*e));
    if (rows->nelts > 0
        && cs_cols_to_entry(APR_ARRAY_IDX(rows, 0, const char **), e) != 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, CSLOG(104)
                     "registry row for %s is malformed", key);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* Run an entry SELECT (CS_ST_GET or CS_ST_LOCKROW). */
static apr_status_t cs_db_select_entry(server_rec *s, apr_pool_t *p,
                                       ap_dbd_t *dbd, cs_stmt_id id,
                                       const char *key, cs_entry_t *e)
{
    apr_array_header_t *rows;
    apr_status_t rv = cs_db_rows(s, p, dbd, id, 5, &rows, 1, &key);

    if (rv != APR_SUCCESS) {
        memset(e, 0, sizeof(*e));
        return rv;
    }
    return cs_rows_entry(s, key, rows, e);
}

apr_status_t cs_db_run(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                       const cs_sql_t *q, int *nrows, int n,
                       const char **args)
{
    apr_dbd_prepared_t *stmt;
    int rv = 0, dummy, attempt;

    /* Every statement run outside a transaction is idempotent (upserts,
     * deletes by key), so one retry on re-prepared statements is safe. */
    for (attempt = 0; attempt < (cs_in_txn ? 1 : 2)
                      && (attempt == 0 || !cs_dbconn_down(s)); attempt++) {
        if (!(stmt = cs_db_stmt(s, dbd, q))) {
            continue;
        }
        rv = apr_dbd_pquery(dbd->driver, p, dbd->handle,
                            nrows ? nrows : &dummy, stmt, n, args);
        if (rv == 0) {
            return APR_SUCCESS;
        }
        /* A first writer that lost the race for a new key's row is
         * expected (its transaction runs again); anything else is not. */
        ap_log_error(APLOG_MARK, q == &cs_stmts[CS_ST_CREATE] && rv == CS_ER_DUP_ENTRY
                                 ? APLOG_DEBUG
                                 : attempt || cs_in_txn ? APLOG_ERR
                                                        : APLOG_INFO,
                     0, s, CSLOG(106) "registry statement %s failed: %s",
                     q->label, cs_db_error(dbd, rv));
        cs_db_failed(s, dbd, rv);
    }
    return APR_EGENERAL;
}

static apr_status_t cs_db_exec_args(server_rec *s, apr_pool_t *p,
                                    ap_dbd_t *dbd, cs_stmt_id id, int *nrows,
                                    int n, const char **args)
{
    return cs_db_run(s, p, dbd, &cs_stmts[id], nrows, n, args);
}

static apr_status_t cs_db_exec(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                               cs_stmt_id id, int *nrows, ...)
{
    const char *args[8];
    const char *a;
    va_list ap;
    int n = 0;

    va_start(ap, nrows);
    while ((a = va_arg(ap, const char *)) != NULL && n < 8) {
        args[n++] = a;
    }
    va_end(ap);
    return cs_db_exec_args(s, p, dbd, id, nrows, n, args);
}

/* The transaction statements are sent as they are, not through
 * apr_dbd_transaction_start/end(): those cost four round trips (SET
 * autocommit=0, COMMIT, and SET autocommit=1 again, besides the COMMIT
 * below), these two. */
apr_status_t cs_db_begin(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd)
{
    int rc, nrows;

    (void)p;
    cs_db_errno = 0;
    /* The session's isolation level applies from the next transaction
     * on: it is set before this one starts (a MOVE prepares its
     * statements inside its transaction). */
    if ((rc = cs_db_session(s, dbd)) != 0) {
        cs_db_failed(s, dbd, rc);
        return APR_EGENERAL;
    }
    cs_db_t0 = apr_time_now();
    rc = apr_dbd_query(dbd->driver, dbd->handle, &nrows,
                       "START TRANSACTION");
    if (rc != 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, CSLOG(108)
                     "cannot start a registry transaction: %s",
                     cs_db_error(dbd, rc));
        cs_db_failed(s, dbd, rc);
        return APR_EGENERAL;
    }
    cs_in_txn = 1;
    return APR_SUCCESS;
}

/* A commit that failed on a conflict is retried (info); others are
 * errors. */
#define CS_COMMIT_LEVEL(rc) (cs_db_retryable(rc) ? APLOG_INFO : APLOG_ERR)

/* End the transaction: commit it (commit 1) or roll it back.  A failed
 * COMMIT carries the server's error number (Galera reports a
 * certification conflict there, as 1213).  0 or the error. */
static int cs_db_finish(ap_dbd_t *dbd, int commit)
{
    int rc = 0, nrows;

    cs_db_t0 = apr_time_now();
    if (commit) {
        rc = apr_dbd_query(dbd->driver, dbd->handle, &nrows, "COMMIT");
    }
    if (!commit || rc != 0) {
        /* A failed COMMIT may leave the transaction open: the
         * connection goes back to mod_dbd with none. */
        apr_dbd_query(dbd->driver, dbd->handle, &nrows, "ROLLBACK");
    }
    return rc;
}

apr_status_t cs_db_end(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                       int commit, int *retryable)
{
    int rc;

    cs_in_txn = 0;
    *retryable = cs_db_errno == 0 || cs_db_retryable(cs_db_errno);
    (void)p;
    rc = cs_db_finish(dbd, commit);
    if (rc != 0 && commit) {
        ap_log_error(APLOG_MARK, CS_COMMIT_LEVEL(rc), 0, s, CSLOG(086)
                     "registry commit failed: %s", cs_db_error(dbd, rc));
        cs_db_failed(s, dbd, rc);
        *retryable = cs_db_retryable(rc);
        return APR_EGENERAL;
    }
    return commit ? APR_SUCCESS : APR_EGENERAL;
}

static const cs_sql_t cs_q_turn = {
    "cs_turn", "SELECT GET_LOCK(%s, %s)" };
static const cs_sql_t cs_q_turn_end = {
    "cs_turn_end", "SELECT RELEASE_LOCK(%s)" };

/* On Galera, whose GET_LOCK is one member's (a turn taken through one
 * member does not stop a taker through another): a row in cs_turns.  It
 * is taken when it is missing or its lease ended; two takers through
 * different members conflict at the commit and one of them loses (the
 * member retries it once, then the module).  A holder that died is
 * outlived by its lease. */
#define CS_DB_NOW_MS "CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)"
static const cs_sql_t cs_q_turn_take = {
    "cs_turn_take",
    "INSERT INTO cs_turns (name, holder, expires)"
    " VALUES (%s, %s, " CS_DB_NOW_MS " + %s)"
    " ON DUPLICATE KEY UPDATE"
    " holder = IF(expires < " CS_DB_NOW_MS ", VALUES(holder), holder),"
    " expires = IF(holder = VALUES(holder), VALUES(expires), expires)" };
static const cs_sql_t cs_q_turn_mine = {
    "cs_turn_mine",
    "SELECT COUNT(*) FROM cs_turns WHERE name = %s AND holder = %s" };
static const cs_sql_t cs_q_turn_give = {
    "cs_turn_give", "DELETE FROM cs_turns WHERE name = %s AND holder = %s" };

/* How long a turn in cs_turns outlives a holder that never gave it back. */
#define CS_TURN_LEASE_MS "30000"
/* How often a taker asks again while another holds it. */
#define CS_TURN_POLL apr_time_from_msec(20)

/* The name of key's turn: MariaDB's lock names have at most 64 chars. */
static const char *cs_turn_name(apr_pool_t *p, const char *key)
{
    char hex[CS_SHA256_HEX_LEN + 1];

    cs_sha256_hex(key, strlen(key), hex);
    hex[48] = '\0';
    return apr_pstrcat(p, "cs_turn_", hex, NULL);
}

/* This request's holder name for cs_turns (node, process, thread, time),
 * kept with the request so that the end gives back what it took. */
static const char *cs_turn_holder(request_rec *r, const char *name,
                                  int make)
{
    const char *ukey = apr_pstrcat(r->pool, "clusterstorage-", name, NULL);
    const char *holder = NULL;

    apr_pool_userdata_get((void **)&holder, ukey, r->pool);
    if (!holder && make) {
        holder = apr_psprintf(r->pool, "%s/%" APR_PID_T_FMT "/%lx/%"
                              APR_TIME_T_FMT, cs_sconf(r->server)->node_name,
                              getpid(), (unsigned long)apr_os_thread_current(),
                              apr_time_now());
        apr_pool_userdata_set(holder, ukey, NULL, r->pool);
    }
    return holder;
}

static apr_status_t cs_turn_galera(request_rec *r, ap_dbd_t *dbd,
                                   const char *name, int seconds)
{
    apr_time_t deadline = apr_time_now()
                          + apr_time_from_sec(seconds > 0 ? seconds : 1);
    const char *args[3];
    apr_array_header_t *rows;

    args[0] = name;
    args[1] = cs_turn_holder(r, name, 1);
    args[2] = CS_TURN_LEASE_MS;
    for (;;) {
        if (cs_db_run(r->server, r->pool, dbd, &cs_q_turn_take, NULL, 3,
                      args) != APR_SUCCESS
            && !cs_db_retryable(cs_db_errno)) {
            return APR_EGENERAL;
        }
        if (cs_db_select(r->server, r->pool, dbd, &cs_q_turn_mine, 1, &rows,
                         2, args) != APR_SUCCESS || rows->nelts != 1) {
            return APR_EGENERAL;
        }
        if (strcmp(APR_ARRAY_IDX(rows, 0, const char **)[0], "0") != 0) {
            return APR_SUCCESS;
        }
        if (apr_time_now() + CS_TURN_POLL > deadline) {
            return APR_TIMEUP;
        }
        apr_sleep(CS_TURN_POLL);
    }
}

apr_status_t cs_registry_turn(request_rec *r, const char *key, int seconds)
{
    ap_dbd_t *dbd = cs_registry_acquire(r);
    apr_array_header_t *rows;
    const char *args[2];
    apr_status_t rv;
    int waited;

    if (!dbd) {
        return APR_ECONNREFUSED;
    }
    args[0] = cs_turn_name(r->pool, key);
    /* The session (and whether it is on Galera) is set up with the first
     * statement on the connection. */
    if (!cs_db_stmt(r->server, dbd, &cs_q_turn)) {
        return APR_EGENERAL;
    }
    if (cs_db_is_galera(dbd)) {
        return cs_turn_galera(r, dbd, args[0], seconds);
    }
    /* A second at a time: the server's wait stays within the
     * connection's read timeout (dbconn.h, at least 2 s). */
    args[1] = "1";
    for (waited = 0; waited < (seconds > 0 ? seconds : 1); waited++) {
        rv = cs_db_select(r->server, r->pool, dbd, &cs_q_turn, 1, &rows, 2,
                          args);
        if (rv != APR_SUCCESS || rows->nelts != 1) {
            return APR_EGENERAL;
        }
        if (strcmp(APR_ARRAY_IDX(rows, 0, const char **)[0], "1") == 0) {
            return APR_SUCCESS;
        }
    }
    return APR_TIMEUP;
}

void cs_registry_turn_end(request_rec *r, const char *key)
{
    ap_dbd_t *dbd = cs_registry_acquire(r);
    apr_array_header_t *rows;
    const char *args[2];

    if (!dbd) {
        return;
    }
    args[0] = cs_turn_name(r->pool, key);
    if (cs_db_is_galera(dbd)) {
        if ((args[1] = cs_turn_holder(r, args[0], 0)) != NULL) {
            cs_db_run(r->server, r->pool, dbd, &cs_q_turn_give, NULL, 2,
                      args);
        }
        return;
    }
    cs_db_select(r->server, r->pool, dbd, &cs_q_turn_end, 1, &rows, 1, args);
}

const char *cs_key_parent(apr_pool_t *p, const char *key)
{
    const char *slash = strrchr(key, '/');

    return slash && slash > key ? apr_pstrmemdup(p, key, slash - key) : "";
}

apr_status_t cs_registry_child_init(apr_pool_t *p, server_rec *s)
{
    return cs_mc_child_init(p, s);
}

/* ------------------------------------------------------------------ */
/* Lookups                                                            */
/* ------------------------------------------------------------------ */

/* The entry from the database, and its holders too when asked. */
static apr_status_t cs_get_db(request_rec *r, const char *key, cs_entry_t *e,
                              apr_array_header_t **holders)
{
    cs_server_conf *sc = cs_sconf(r->server);
    apr_uint64_t epoch = cs_cache_epoch(sc->cache);
    ap_dbd_t *dbd = cs_registry_acquire(r);
    apr_status_t rv;

    memset(e, 0, sizeof(*e));
    if (holders) {
        *holders = NULL;
    }
    if (!dbd) {
        CS_COUNT(sc, registry_errors, 1);
        return APR_ECONNREFUSED;
    }
    rv = holders ? cs_registry_entry_holders(r->server, r->pool, dbd, key, e,
                                             holders)
                 : cs_db_select_entry(r->server, r->pool, dbd, CS_ST_GET, key,
                                      e);
    if (rv == APR_SUCCESS) {
        cs_cache_put(sc->cache, key, e, epoch);
    }
    else {
        CS_COUNT(sc, registry_errors, 1);
    }
    return rv;
}

apr_status_t cs_registry_get_db(request_rec *r, const char *key,
                                cs_entry_t *e)
{
    return cs_get_db(r, key, e, NULL);
}

apr_status_t cs_registry_get_db_holders(request_rec *r, const char *key,
                                        cs_entry_t *e,
                                        apr_array_header_t **holders)
{
    return cs_get_db(r, key, e, holders);
}

apr_status_t cs_registry_get(request_rec *r, const char *key, cs_entry_t *e,
                             cs_local_t *local)
{
    cs_server_conf *sc = cs_sconf(r->server);
    char mckey[CS_MC_KEY_LEN + 1];
    apr_uint64_t epoch;
    apr_status_t rv;

    /* The hit path: this node's own cache, no network (cache.h). */
    memset(local, 0, sizeof(*local));
    if (cs_cache_get(sc->cache, key, e, local)) {
        apr_table_setn(r->notes, CS_NOTE_LOOKUP, "cache");
        return APR_SUCCESS;
    }
    epoch = cs_cache_epoch(sc->cache);
    if (sc->mc) {
        if (cs_mc_get(r, sc, key, mckey, e) == APR_SUCCESS) {
            CS_COUNT(sc, mc_hits, 1);
            cs_cache_put(sc->cache, key, e, epoch);
            apr_table_setn(r->notes, CS_NOTE_LOOKUP, "memcached");
            return APR_SUCCESS;
        }
        CS_COUNT(sc, mc_misses, 1);
    }
    rv = cs_registry_get_db(r, key, e);
    if (rv == APR_SUCCESS) {
        apr_table_setn(r->notes, CS_NOTE_LOOKUP, "database");
        if (sc->mc) {
            cs_mc_add(r, sc, key, mckey, e);
        }
    }
    return rv;
}

/* ------------------------------------------------------------------ */
/* Writes                                                             */
/* ------------------------------------------------------------------ */

static const char *cs_u64(apr_pool_t *p, apr_uint64_t v)
{
    return apr_psprintf(p, "%" APR_UINT64_T_FMT, v);
}

/* End a write transaction: commit it when status is OK, else roll it
 * back.  A certification conflict (Galera) or a deadlock at the commit:
 * nothing was written, and *retry says the transaction may run again;
 * any other failure may have committed: not run again.  The status. */
static int cs_write_commit(request_rec *r, ap_dbd_t *dbd, int status,
                           const char *what, int *retry)
{
    int rc = cs_db_finish(dbd, status == OK);

    if (rc != 0 && status == OK) {
        ap_log_rerror(APLOG_MARK, CS_COMMIT_LEVEL(rc), 0, r, CSLOG(109)
                      "registry commit for %s failed: %s", what,
                      cs_db_error(dbd, rc));
        cs_db_failed(r->server, dbd, rc);
        *retry = cs_db_retryable(rc);
        status = HTTP_SERVICE_UNAVAILABLE;
    }
    return status;
}

/* One write transaction: lock the key's row, ask the precondition, write
 * the new entry (and this node's replica row unless it is a tombstone),
 * let the caller prepare, commit.  Returns OK, an HTTP status, or 503. */
static int cs_write_txn_once(request_rec *r, const char *key,
                             const char *relpath, cs_entry_t *next,
                             int tombstone, const cs_write_ops_t *ops,
                             cs_entry_t *cur, int attempt, int *retry)
{
    cs_server_conf *sc = cs_sconf(r->server);
    ap_dbd_t *dbd = cs_registry_acquire(r);
    apr_status_t rv;
    int status = OK, prepared = 0;
    /* The version's time by the database's clock (as this node measured
     * it), so that every node's Last-Modified is a sane one. */
    apr_time_t now = apr_time_now() + cs_clock_skew(sc);
    const char *parent = cs_key_parent(r->pool, key);

    if (!dbd) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    /* Make sure statements exist before the transaction starts. */
    if (!cs_stmt(r->server, dbd, CS_ST_PLACEHOLDER)
        || !cs_stmt(r->server, dbd, CS_ST_CREATE)
        || !cs_stmt(r->server, dbd, CS_ST_LOCKROW)
        || !cs_stmt(r->server, dbd, CS_ST_UPSERT)
        || !cs_stmt(r->server, dbd, CS_ST_ANCESTORS)
        || !cs_stmt(r->server, dbd, CS_ST_DROP_REPLICAS)
        || !cs_stmt(r->server, dbd, CS_ST_ADD_REPLICA)) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    *retry = 0;
    if (cs_db_begin(r->server, r->pool, dbd) != APR_SUCCESS) {
        *retry = 1;
        return HTTP_SERVICE_UNAVAILABLE;
    }
    /* First attempt: lock the key's row if there is one (READ COMMITTED
     * takes no gap locks), and insert it if there is none.  Later attempts
     * lock a placeholder row first, so concurrent first writers of one key
     * queue on it. */
    rv = APR_SUCCESS;
    if (attempt > 0) {
        rv = cs_db_exec(r->server, r->pool, dbd, CS_ST_PLACEHOLDER, NULL, key,
                        NULL);
    }
    if (rv == APR_SUCCESS) {
        rv = cs_db_select_entry(r->server, r->pool, dbd, CS_ST_LOCKROW, key,
                                cur);
    }
    if (rv != APR_SUCCESS) {
        *retry = 1;     /* nothing happened yet: try a fresh transaction */
        status = HTTP_SERVICE_UNAVAILABLE;
        goto done;
    }
    if (ops->precondition
        && (status = ops->precondition(r, cur, ops->baton)) != OK) {
        goto done;
    }
    if (tombstone && (cur->version == 0 || cur->deleted)) {
        status = HTTP_NOT_FOUND;
        goto done;
    }
    next->version = cur->version + 1;
    next->mtime = ops->mtime && !tombstone ? ops->mtime
                  : now > cur->mtime ? now : cur->mtime + 1;
    next->deleted = tombstone;
    if (attempt == 0 && cur->version == 0) {
        rv = cs_db_exec(r->server, r->pool, dbd, CS_ST_CREATE, NULL, key,
                        cs_u64(r->pool, next->size), next->sha256,
                        apr_psprintf(r->pool, "%" APR_INT64_T_FMT,
                                     next->mtime),
                        relpath, parent, NULL);
    }
    else {
        rv = cs_db_exec(r->server, r->pool, dbd, CS_ST_UPSERT, NULL,
                        cs_u64(r->pool, next->version),
                        cs_u64(r->pool, next->size),
                        next->sha256,
                        apr_psprintf(r->pool, "%" APR_INT64_T_FMT,
                                     next->mtime),
                        tombstone ? "1" : "0", relpath, parent, key, NULL);
        if (rv == APR_SUCCESS) {
            rv = cs_db_exec(r->server, r->pool, dbd, CS_ST_DROP_REPLICAS,
                            NULL, key, NULL);
        }
    }
    if (rv == APR_SUCCESS && !tombstone
        && (cur->version == 0 || cur->deleted)) {
        rv = cs_db_exec(r->server, r->pool, dbd, CS_ST_ANCESTORS, NULL, key,
                        key, key, apr_psprintf(r->pool, "%" APR_INT64_T_FMT,
                                               next->mtime), NULL);
    }
    if (rv == APR_SUCCESS && !tombstone) {
        rv = cs_db_exec(r->server, r->pool, dbd, CS_ST_ADD_REPLICA, NULL, key,
                        sc->node_name, cs_u64(r->pool, next->version), NULL);
    }
    if (rv != APR_SUCCESS) {
        status = HTTP_SERVICE_UNAVAILABLE;
        goto done;
    }
    if (ops->prepare) {
        rv = ops->prepare(r, next, ops->baton);
        if (rv != APR_SUCCESS) {
            status = HTTP_INTERNAL_SERVER_ERROR;
            goto done;
        }
        prepared = 1;
    }

done:
    cs_in_txn = 0;
    /* A database failure before the commit (a deadlock, statements the
     * server lost in a restart, ...): the transaction is rolled back and
     * may run again on fresh statements (abort() undoes prepare()). */
    if (status == HTTP_SERVICE_UNAVAILABLE) {
        *retry = 1;
    }
    status = cs_write_commit(r, dbd, status, key, retry);
    if (status != OK && prepared && ops->abort) {
        ops->abort(r, next, ops->baton);
    }
    if (status == OK) {
        cs_mc_set(r, sc, key, next);
    }
    return status;
}

#define CS_WRITE_ROUNDS 8

/* Up to 2 ms per round lost, different for each request. */
static apr_interval_time_t cs_jitter(request_rec *r, int attempt)
{
    apr_uint64_t x = (apr_uint64_t)apr_time_now()
                     ^ ((apr_uint64_t)(uintptr_t)r << 7);

    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 32;
    return (apr_interval_time_t)(x % (apr_uint64_t)(attempt * 2000));
}

static int cs_write_txn(request_rec *r, const char *key, const char *relpath,
                        cs_entry_t *next, int tombstone,
                        const cs_write_ops_t *ops, cs_entry_t *cur)
{
    int retry = 0, attempt;
    int status = cs_write_txn_once(r, key, relpath, next, tombstone, ops,
                                   cur, 0, &retry);

    /* Writers of one key through different Galera members meet only at
     * the commit, where all but one lose: a lost round costs a commit, so
     * a few more rounds than on one server, spread a little in time. */
    for (attempt = 1; status != OK && retry && attempt < CS_WRITE_ROUNDS
                      && !cs_dbconn_down(r->server); attempt++) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, CSLOG(115)
                      "retrying the registry transaction of %s (attempt %d)",
                      key, attempt + 1);
        if (attempt > 1) {
            apr_sleep(cs_jitter(r, attempt));
        }
        status = cs_write_txn_once(r, key, relpath, next, tombstone, ops,
                                   cur, attempt, &retry);
    }
    return status;
}

int cs_registry_put(request_rec *r, const char *key, const char *relpath,
                    apr_uint64_t size,
                    const char *sha256, const cs_write_ops_t *ops,
                    cs_entry_t *out, int *created)
{
    cs_entry_t cur;
    int status;

    memset(out, 0, sizeof(*out));
    out->size = size;
    apr_cpystrn(out->sha256, sha256, sizeof(out->sha256));
    status = cs_write_txn(r, key, relpath, out, 0, ops, &cur);
    *created = (cur.version == 0 || cur.deleted);
    return status;
}

/* A statement built for one batch (its number of rows varies, so it is
 * not prepared): its text, the literals escaped by the driver. */
static const char *cs_sql_str(apr_pool_t *p, ap_dbd_t *dbd, const char *v)
{
    return apr_pstrcat(p, "'", apr_dbd_escape(dbd->driver, p, v, dbd->handle),
                       "'", NULL);
}

static apr_status_t cs_db_text(server_rec *s, ap_dbd_t *dbd,
                               const char *label, const char *sql)
{
    int nrows, rc;

    rc = apr_dbd_query(dbd->driver, dbd->handle, &nrows, sql);
    if (rc != 0) {
        ap_log_error(APLOG_MARK, rc == CS_ER_DUP_ENTRY ? APLOG_DEBUG
                                                       : APLOG_ERR,
                     0, s, CSLOG(150) "registry statement %s of an adopted batch failed: %s",
                     label, cs_db_error(dbd, rc));
        cs_db_failed(s, dbd, rc);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* Lock the rows of the batch's keys that exist; each such key is found
 * (with its entry), the others not. */
static apr_status_t cs_batch_lock(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                                  cs_batch_key_t *keys, int n)
{
    apr_hash_t *byname = apr_hash_make(p);
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    struct iovec *v = apr_palloc(p, sizeof(*v) * (2 * n + 2));
    const char *sql;
    int i, rc;

    v[0].iov_base = "SELECT path, " CS_ENTRY_COLS " FROM cs_files"
                    " WHERE path IN (";
    v[0].iov_len = strlen(v[0].iov_base);
    for (i = 0; i < n; i++) {
        const char *q = cs_sql_str(p, dbd, keys[i].key);
        v[2 * i + 1].iov_base = (void *)(i ? "," : "");
        v[2 * i + 1].iov_len = i ? 1 : 0;
        v[2 * i + 2].iov_base = (void *)q;
        v[2 * i + 2].iov_len = strlen(q);
        keys[i].found = 0;
        memset(&keys[i].e, 0, sizeof(keys[i].e));
        apr_hash_set(byname, keys[i].key, APR_HASH_KEY_STRING, &keys[i]);
    }
    v[2 * n + 1].iov_base = ") FOR UPDATE";
    v[2 * n + 1].iov_len = strlen(v[2 * n + 1].iov_base);
    sql = apr_pstrcatv(p, v, 2 * n + 2, NULL);
    rc = apr_dbd_select(dbd->driver, p, dbd->handle, &res, sql, 0);
    if (rc != 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, CSLOG(151)
                     "registry lookup of an adopted batch failed: %s",
                     cs_db_error(dbd, rc));
        cs_db_failed(s, dbd, rc);
        return APR_EGENERAL;
    }
    while ((rc = apr_dbd_get_row(dbd->driver, p, res, &row, -1)) == 0) {
        const char *cols[5], *path = apr_dbd_get_entry(dbd->driver, row, 0);
        cs_batch_key_t *k = path ? apr_hash_get(byname, path,
                                                APR_HASH_KEY_STRING) : NULL;
        for (i = 0; i < 5; i++) {
            const char *c = apr_dbd_get_entry(dbd->driver, row, i + 1);
            cols[i] = c ? c : "";
        }
        if (k && cs_cols_to_entry(cols, &k->e) == 0) {
            k->found = k->e.version > 0;
        }
    }
    if (rc != -1) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, CSLOG(152)
                     "reading the rows of an adopted batch failed: %s",
                     cs_db_error(dbd, rc));
        cs_db_failed(s, dbd, rc);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* The new keys' rows: their files, this node as holder of each, one
 * statement each; the collections once per directory. */
static apr_status_t cs_batch_write(request_rec *r, ap_dbd_t *dbd,
                                   cs_batch_key_t *keys, int n)
{
    cs_server_conf *sc = cs_sconf(r->server);
    const char *node = cs_sql_str(r->pool, dbd, sc->node_name);
    struct iovec *f = apr_palloc(r->pool, sizeof(*f) * (n + 2));
    struct iovec *h = apr_palloc(r->pool, sizeof(*h) * (n + 2));
    const char *parent, *last_parent = NULL;
    apr_status_t rv = APR_SUCCESS;
    int i, m = 0;

    f[0].iov_base = "INSERT INTO cs_files (path, version, size, sha256,"
                    " mtime, deleted, relpath, parent, acked) VALUES ";
    h[0].iov_base = "INSERT INTO cs_replicas (path, node, version,"
                    " stored_at) VALUES ";
    for (i = 0; i < n; i++) {
        cs_batch_key_t *k = &keys[i];
        const char *q;
        if (k->found) {
            continue;
        }
        parent = cs_key_parent(r->pool, k->key);
        q = cs_sql_str(r->pool, dbd, k->key);
        k->e.version = 1;
        k->e.size = k->size;
        apr_cpystrn(k->e.sha256, k->sha256, sizeof(k->e.sha256));
        k->e.mtime = k->mtime;
        k->e.deleted = 0;
        f[m + 1].iov_base = apr_psprintf(
            r->pool, "%s(%s, 1, %" APR_UINT64_T_FMT ", %s, %" APR_INT64_T_FMT
            ", 0, %s, %s, 1)", m ? "," : "", q, k->size,
            cs_sql_str(r->pool, dbd, k->sha256), k->mtime,
            cs_sql_str(r->pool, dbd, k->relpath),
            cs_sql_str(r->pool, dbd, parent));
        h[m + 1].iov_base = apr_psprintf(r->pool,
                                         "%s(%s, %s, 1, UNIX_TIMESTAMP())",
                                         m ? "," : "", q, node);
        m++;
        /* The keys of a directory share their collections. */
        if (!last_parent || strcmp(parent, last_parent) != 0) {
            rv = cs_db_exec(r->server, r->pool, dbd, CS_ST_ANCESTORS, NULL,
                            k->key, k->key, k->key,
                            apr_psprintf(r->pool, "%" APR_INT64_T_FMT,
                                         k->mtime), NULL);
            last_parent = parent;
            if (rv != APR_SUCCESS) {
                return rv;
            }
        }
    }
    if (m == 0) {
        return APR_SUCCESS;
    }
    h[m + 1].iov_base = CS_SQL_REPLICA_UPSERT;
    for (i = 0; i <= m + 1; i++) {
        if (i <= m) {
            f[i].iov_len = strlen(f[i].iov_base);
        }
        h[i].iov_len = strlen(h[i].iov_base);
    }
    /* A key with a row but no version (a writer's placeholder) makes the
     * insert fail as a duplicate: the batch is then done key by key. */
    rv = cs_db_text(r->server, dbd, "cs_batch_files",
                    apr_pstrcatv(r->pool, f, m + 1, NULL));
    if (rv == APR_SUCCESS) {
        rv = cs_db_text(r->server, dbd, "cs_batch_holders",
                        apr_pstrcatv(r->pool, h, m + 2, NULL));
    }
    return rv;
}

/* One round of cs_registry_create_batch(): *retry set when nothing was
 * written and another round may succeed. */
static int cs_create_batch_once(request_rec *r, cs_batch_key_t *keys, int n,
                                const cs_batch_ops_t *ops, int *retry)
{
    ap_dbd_t *dbd = cs_registry_acquire(r);
    apr_status_t rv;
    int i, status = OK, prepared = 0, written = 0;

    *retry = 0;
    if (!dbd || !cs_stmt(r->server, dbd, CS_ST_ANCESTORS)) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if (cs_db_begin(r->server, r->pool, dbd) != APR_SUCCESS) {
        *retry = 1;
        return HTTP_SERVICE_UNAVAILABLE;
    }
    rv = cs_batch_lock(r->server, r->pool, dbd, keys, n);
    if (rv == APR_SUCCESS) {
        rv = cs_batch_write(r, dbd, keys, n);
    }
    for (i = 0; i < n; i++) {
        written += !keys[i].found;
    }
    if (rv != APR_SUCCESS) {
        status = cs_db_errno == CS_ER_DUP_ENTRY ? HTTP_CONFLICT
                                                : HTTP_SERVICE_UNAVAILABLE;
        *retry = status == HTTP_SERVICE_UNAVAILABLE
                 && cs_db_retryable(cs_db_errno);
    }
    else if (written > 0 && ops->prepare) {
        if ((rv = ops->prepare(r, keys, n, ops->baton)) != APR_SUCCESS) {
            status = HTTP_INTERNAL_SERVER_ERROR;
        }
        prepared = 1;
    }
    cs_in_txn = 0;
    status = cs_write_commit(r, dbd, status,
                             apr_psprintf(r->pool, "%s and %d other key(s)",
                                          keys[0].key, n - 1), retry);
    if (status != OK && prepared && ops->abort) {
        ops->abort(r, keys, n, ops->baton);
    }
    return status;
}

int cs_registry_create_batch(request_rec *r, cs_batch_key_t *keys, int n,
                             const cs_batch_ops_t *ops)
{
    cs_server_conf *sc = cs_sconf(r->server);
    const char **mkeys;
    cs_entry_t *ents;
    int retry = 0, attempt, status, i, m = 0;

    status = cs_create_batch_once(r, keys, n, ops, &retry);
    for (attempt = 1; status != OK && retry && attempt < CS_WRITE_ROUNDS
                      && !cs_dbconn_down(r->server); attempt++) {
        apr_sleep(cs_jitter(r, attempt));
        status = cs_create_batch_once(r, keys, n, ops, &retry);
    }
    if (status != OK) {
        return status;
    }
    /* memcached may hold "never stored" for them (a reader's). */
    mkeys = apr_palloc(r->pool, sizeof(*mkeys) * n);
    ents = apr_palloc(r->pool, sizeof(*ents) * n);
    for (i = 0; i < n; i++) {
        if (!keys[i].found) {
            mkeys[m] = keys[i].key;
            ents[m++] = keys[i].e;
        }
    }
    if (m > 0) {
        cs_mc_set_many(r, sc, m, mkeys, ents);
    }
    return OK;
}

apr_status_t cs_registry_ack(request_rec *r, const char *key,
                             apr_uint64_t version)
{
    ap_dbd_t *dbd = cs_registry_acquire(r);

    if (!dbd) {
        return APR_ECONNREFUSED;
    }
    return cs_db_exec(r->server, r->pool, dbd, CS_ST_ACK, NULL, key,
                      cs_u64(r->pool, version), NULL);
}

apr_status_t cs_registry_unacked(request_rec *r, const char *key,
                                 apr_uint64_t version, int *unacked)
{
    ap_dbd_t *dbd = cs_registry_acquire(r);
    apr_array_header_t *rows;
    const char *args[2];
    apr_status_t rv;

    *unacked = 0;
    if (!dbd) {
        return APR_ECONNREFUSED;
    }
    args[0] = key;
    args[1] = cs_u64(r->pool, version);
    rv = cs_db_rows(r->server, r->pool, dbd, CS_ST_UNACKED, 1, &rows, 2,
                    args);
    *unacked = rv == APR_SUCCESS && rows->nelts
               && strcmp(APR_ARRAY_IDX(rows, 0, const char **)[0], "0") != 0;
    return rv;
}

int cs_registry_delete(request_rec *r, const char *key,
                       const cs_write_ops_t *ops, cs_entry_t *out)
{
    cs_entry_t cur;

    memset(out, 0, sizeof(*out));
    return cs_write_txn(r, key, "", out, 1, ops, &cur);
}

/* ------------------------------------------------------------------ */
/* Background                                                         */
/* ------------------------------------------------------------------ */

apr_status_t cs_registry_ensure_schema(server_rec *s, apr_pool_t *p)
{
    ap_dbd_t *dbd = cs_dbconn_open(p, s);
    apr_status_t rv;

    if (!dbd) {
        return APR_ECONNREFUSED;
    }
    /* Preparing a statement creates the tables only if they are missing
     * (or migrates them: the newest columns and tables are in these
     * statements), so a database user without CREATE works once they
     * exist. */
    rv = cs_stmt(s, dbd, CS_ST_GET) && cs_stmt(s, dbd, CS_ST_CREATE)
         && cs_stmt(s, dbd, CS_ST_ANCESTORS) ? APR_SUCCESS : APR_EGENERAL;
    cs_dbconn_close(s, dbd);
    return rv;
}

static void cs_apply_invalidation(void *baton, const char *key)
{
    cs_cache_invalidate(baton, key);
}

/* "SECONDS.MICROS" as apr_time_t; -1 when malformed. */
static apr_time_t cs_db_time(const char *v)
{
    const char *dot = strchr(v, '.');
    uint64_t sec, us = 0;
    size_t n = dot ? (size_t)(dot - v) : strlen(v);

    if (cs_parse_u64(v, n, &sec) != 0 || sec > 100000000000ULL) {
        return -1;
    }
    if (dot) {
        const char *d = dot + 1;
        int i;
        for (i = 0; i < 6; i++) {
            us *= 10;
            if (*d >= '0' && *d <= '9') {
                us += (uint64_t)(*d++ - '0');
            }
        }
    }
    return (apr_time_t)(sec * APR_USEC_PER_SEC + us);
}

apr_status_t cs_registry_clock_skew(server_rec *s, apr_pool_t *p,
                                    apr_interval_time_t *skew)
{
    ap_dbd_t *dbd = cs_dbconn_open(p, s);
    apr_array_header_t *rows;
    apr_time_t t0, t1, db;
    apr_status_t rv;

    if (!dbd) {
        return APR_ECONNREFUSED;
    }
    t0 = apr_time_now();
    rv = cs_db_rows(s, p, dbd, CS_ST_NOW, 1, &rows, 0, NULL);
    t1 = apr_time_now();
    cs_dbconn_close(s, dbd);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (rows->nelts != 1
        || (db = cs_db_time(APR_ARRAY_IDX(rows, 0, const char **)[0])) < 0) {
        return APR_EGENERAL;
    }
    *skew = db - (t0 + (t1 - t0) / 2);
    return APR_SUCCESS;
}

apr_status_t cs_registry_heartbeat(server_rec *s, apr_pool_t *p)
{
    cs_server_conf *sc = cs_sconf(s);
    ap_dbd_t *dbd = cs_dbconn_open(p, s);
    apr_status_t rv;
    /* Whole seconds, rounded up: the database compares in seconds. */
    apr_int64_t period = (sc->heartbeat + APR_USEC_PER_SEC - 1)
                         / APR_USEC_PER_SEC;
    apr_int64_t lease = (CS_LEASE_PERIODS * sc->heartbeat
                         + APR_USEC_PER_SEC - 1) / APR_USEC_PER_SEC;

    if (!dbd) {
        return APR_ECONNREFUSED;
    }
    if (period < 1) {
        period = 1;
    }
    rv = cs_db_exec(s, p, dbd, CS_ST_HEARTBEAT, NULL, sc->node_name,
                    sc->node_url, apr_psprintf(p, "%" APR_INT64_T_FMT, period),
                    /* how long this node may trust its cache (cache.h) */
                    apr_psprintf(p, "%" APR_INT64_T_FMT,
                                 sc->cache ? lease : 0), NULL);
    /* Then the invalidations nobody could deliver to this node: applied
     * before the caller extends the cache lease. */
    if (rv == APR_SUCCESS) {
        rv = cs_registry_inv_apply(s, p, dbd, cs_apply_invalidation,
                                   sc->cache);
    }
    cs_dbconn_close(s, dbd);
    return rv;
}

/* ------------------------------------------------------------------ */
/* Cluster queries (holders, members, repair)                         */
/* ------------------------------------------------------------------ */

ap_dbd_t *cs_registry_acquire(request_rec *r)
{
    ap_dbd_t *dbd = cs_dbconn_acquire(r);

    if (!dbd) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, CSLOG(107)
                      "no database connection for the registry");
    }
    return dbd;
}

ap_dbd_t *cs_registry_open(server_rec *s, apr_pool_t *p)
{
    return cs_dbconn_open(p, s);
}

void cs_registry_close(server_rec *s, ap_dbd_t *dbd)
{
    if (dbd) {
        cs_dbconn_close(s, dbd);
    }
}

apr_status_t cs_registry_entry(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                               const char *key, cs_entry_t *e)
{
    return cs_db_select_entry(s, p, dbd, CS_ST_GET, key, e);
}

static apr_array_header_t *cs_rows_to_nodes(apr_pool_t *p,
                                            apr_array_header_t *rows,
                                            int with_age)
{
    apr_array_header_t *out = apr_array_make(p, rows->nelts,
                                             sizeof(cs_node_t));
    int i;

    for (i = 0; i < rows->nelts; i++) {
        const char **cols = APR_ARRAY_IDX(rows, i, const char **);
        cs_node_t *n = apr_array_push(out);
        n->name = cols[0];
        n->url = cols[1];
        n->alive = cols[2][0] == '1';
        n->age = with_age ? apr_atoi64(cols[3]) : 0;
        n->period = with_age ? atoi(cols[4]) : 0;
        n->lease = with_age ? atoi(cols[5]) : 0;
        n->draining = with_age && cols[6][0] == '1';
    }
    return out;
}

apr_status_t cs_registry_holders(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                                 const char *key, apr_uint64_t version,
                                 apr_array_header_t **out)
{
    const char *args[2];
    apr_array_header_t *rows;
    apr_status_t rv;

    args[0] = key;
    args[1] = cs_u64(p, version);
    rv = cs_db_rows(s, p, dbd, CS_ST_HOLDERS, 3, &rows, 2, args);
    *out = cs_rows_to_nodes(p, rows, 0);
    return rv;
}

apr_status_t cs_registry_entry_holders(server_rec *s, apr_pool_t *p,
                                       ap_dbd_t *dbd, const char *key,
                                       cs_entry_t *e,
                                       apr_array_header_t **holders)
{
    apr_array_header_t *rows;
    apr_status_t rv;
    int i;

    *holders = NULL;
    memset(e, 0, sizeof(*e));
    rv = cs_db_rows(s, p, dbd, CS_ST_GET_HOLDERS, 8, &rows, 1, &key);
    if (rv == APR_SUCCESS) {
        rv = cs_rows_entry(s, key, rows, e);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *holders = apr_array_make(p, rows->nelts, sizeof(cs_node_t));
    for (i = 0; i < rows->nelts; i++) {
        const char **cols = APR_ARRAY_IDX(rows, i, const char **);
        if (cols[5][0]) {
            cs_node_t *n = apr_array_push(*holders);
            memset(n, 0, sizeof(*n));
            n->name = cols[5];
            n->url = cols[6];
            n->alive = cols[7][0] == '1';
        }
    }
    return APR_SUCCESS;
}

apr_status_t cs_registry_nodes(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                               apr_array_header_t **out)
{
    apr_array_header_t *rows;
    apr_status_t rv = cs_db_rows(s, p, dbd, CS_ST_NODES, 7, &rows, 0, NULL);

    *out = cs_rows_to_nodes(p, rows, 1);
    return rv;
}

apr_status_t cs_registry_add_replica(server_rec *s, apr_pool_t *p,
                                     ap_dbd_t *dbd, const char *key,
                                     apr_uint64_t version, int *added)
{
    cs_server_conf *sc = cs_sconf(s);
    int nrows = 0;
    apr_status_t rv;

    rv = cs_db_exec(s, p, dbd, CS_ST_ADD_REPLICA_IF_CURRENT, &nrows,
                    sc->node_name, key, cs_u64(p, version), NULL);
    if (added) {
        *added = rv == APR_SUCCESS && nrows > 0;
        if (rv == APR_SUCCESS && nrows == 0) {
            /* 0 rows: superseded, or the very same row written in the
             * same second (no change); only the first is "not added". */
            const char *rel = NULL;
            rv = cs_registry_held_relpath(s, p, dbd, key, version, &rel);
            *added = rv == APR_SUCCESS && rel != NULL;
        }
    }
    return rv;
}

apr_status_t cs_registry_add_replicas(server_rec *s, apr_pool_t *p,
                                      ap_dbd_t *dbd, const char *const *keys,
                                      const apr_uint64_t *versions, int n,
                                      const char **why)
{
    cs_server_conf *sc = cs_sconf(s);
    struct iovec *v;
    int i, nrows, rc;

    if (n <= 0) {
        return APR_SUCCESS;
    }
    v = apr_palloc(p, sizeof(*v) * (n + 2));
    v[0].iov_base = apr_pstrcat(
        p, "INSERT INTO cs_replicas (path, node, version, stored_at)"
        " SELECT path, ", cs_sql_str(p, dbd, sc->node_name), ", version,"
        " UNIX_TIMESTAMP() FROM cs_files WHERE deleted = 0 AND (", NULL);
    for (i = 0; i < n; i++) {
        v[i + 1].iov_base = apr_psprintf(p, "%s(path = %s AND version = %"
                                         APR_UINT64_T_FMT ")",
                                         i ? " OR " : "",
                                         cs_sql_str(p, dbd, keys[i]),
                                         versions[i]);
    }
    v[n + 1].iov_base = ")" CS_SQL_REPLICA_UPSERT;
    for (i = 0; i < n + 2; i++) {
        v[i].iov_len = strlen(v[i].iov_base);
    }
    cs_db_errno = 0;
    cs_db_t0 = apr_time_now();
    if ((rc = cs_db_session(s, dbd)) == 0) {
        rc = apr_dbd_query(dbd->driver, dbd->handle, &nrows,
                           apr_pstrcatv(p, v, n + 2, NULL));
    }
    if (rc != 0) {
        *why = apr_pstrdup(p, cs_db_error(dbd, rc));
        cs_db_failed(s, dbd, rc);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

apr_status_t cs_registry_under_replicated(server_rec *s, apr_pool_t *p,
                                          ap_dbd_t *dbd, const char *node,
                                          const char *after, int draining,
                                          apr_array_header_t **keys,
                                          const char **next)
{
    cs_server_conf *sc = cs_sconf(s);
    apr_array_header_t *rows;
    const char *args[4];
    apr_status_t rv;

    args[0] = node;
    args[1] = after;
    args[2] = sc->node_name;
    args[3] = apr_itoa(p, sc->replicas);
    if (draining) {
        args[2] = args[3];
        rv = cs_db_rows(s, p, dbd, CS_ST_DRAIN_UNDER, 2, keys, 3, args);
    }
    else {
        rv = cs_db_rows(s, p, dbd, CS_ST_UNDER, 2, keys, 4, args);
    }
    if (rv == APR_SUCCESS) {
        rv = cs_db_rows(s, p, dbd, CS_ST_PAGE_END, 1, &rows, 2, args);
    }
    *next = rv == APR_SUCCESS && rows->nelts
            ? APR_ARRAY_IDX(rows, 0, const char **)[0] : "";
    return rv;
}

apr_status_t cs_registry_set_draining(server_rec *s, apr_pool_t *p,
                                      ap_dbd_t *dbd, const char *node,
                                      int on, int *found)
{
    apr_array_header_t *nodes;
    apr_status_t rv;
    int i;

    *found = 0;
    if ((rv = cs_registry_nodes(s, p, dbd, &nodes)) != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < nodes->nelts; i++) {
        *found |= strcmp(APR_ARRAY_IDX(nodes, i, cs_node_t).name, node) == 0;
    }
    if (!*found) {
        return APR_SUCCESS;
    }
    return cs_db_exec(s, p, dbd, CS_ST_DRAIN_SET, NULL, on ? "1" : "0", node,
                      NULL);
}

apr_status_t cs_registry_drain_left(server_rec *s, apr_pool_t *p,
                                    ap_dbd_t *dbd, const char *node,
                                    const char *after, apr_int64_t *keys,
                                    apr_int64_t *bytes, const char **next)
{
    apr_array_header_t *rows;
    const char *args[3];
    apr_status_t rv;

    args[0] = node;
    args[1] = after;
    args[2] = apr_itoa(p, cs_sconf(s)->replicas);
    *keys = *bytes = 0;
    *next = "";
    rv = cs_db_rows(s, p, dbd, CS_ST_DRAIN_LEFT, 2, &rows, 3, args);
    if (rv == APR_SUCCESS && rows->nelts) {
        *keys = apr_atoi64(APR_ARRAY_IDX(rows, 0, const char **)[0]);
        *bytes = apr_atoi64(APR_ARRAY_IDX(rows, 0, const char **)[1]);
        rv = cs_db_rows(s, p, dbd, CS_ST_PAGE_END, 1, &rows, 2, args);
        if (rv == APR_SUCCESS && rows->nelts) {
            *next = APR_ARRAY_IDX(rows, 0, const char **)[0];
        }
    }
    return rv;
}

apr_status_t cs_registry_forget(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                                const char *node, int *gone)
{
    apr_status_t rv;
    int nrows = 0;

    *gone = 0;
    do {
        rv = cs_db_exec(s, p, dbd, CS_ST_FORGET_REPLICAS, &nrows, node, NULL);
    } while (rv == APR_SUCCESS && nrows > 0);
    if (rv == APR_SUCCESS) {
        rv = cs_db_exec(s, p, dbd, CS_ST_FORGET_NODE, &nrows, node, NULL);
        *gone = rv == APR_SUCCESS && nrows > 0;
    }
    return rv;
}

/* ------------------------------------------------------------------ */
/* Undelivered cache invalidations                                    */
/* ------------------------------------------------------------------ */

apr_status_t cs_registry_inv_add(server_rec *s, apr_pool_t *p, ap_dbd_t *dbd,
                                 const char *node, const char *key,
                                 apr_uint64_t version)
{
    return cs_db_exec(s, p, dbd, CS_ST_INV_ADD, NULL, node, key,
                      cs_u64(p, version), NULL);
}

apr_status_t cs_registry_inv_pending(server_rec *s, apr_pool_t *p,
                                     ap_dbd_t *dbd, const char *node,
                                     const char *key, int *pending)
{
    const char *args[2];
    apr_array_header_t *rows;
    apr_status_t rv;

    args[0] = node;
    args[1] = key;
    rv = cs_db_rows(s, p, dbd, CS_ST_INV_PENDING, 1, &rows, 2, args);
    *pending = rv != APR_SUCCESS || (rows->nelts
               && atoi(APR_ARRAY_IDX(rows, 0, const char **)[0]) > 0);
    return rv;
}

apr_status_t cs_registry_inv_apply(server_rec *s, apr_pool_t *p,
                                   ap_dbd_t *dbd,
                                   void (*apply)(void *baton,
                                                 const char *key),
                                   void *baton)
{
    cs_server_conf *sc = cs_sconf(s);
    const char *args[1];
    apr_array_header_t *rows;
    apr_status_t rv;
    int i;

    args[0] = sc->node_name;
    rv = cs_db_rows(s, p, dbd, CS_ST_INV_LIST, 2, &rows, 1, args);
    for (i = 0; rv == APR_SUCCESS && i < rows->nelts; i++) {
        const char **row = APR_ARRAY_IDX(rows, i, const char **);
        apply(baton, row[0]);
        rv = cs_db_exec(s, p, dbd, CS_ST_INV_DEL, NULL, sc->node_name,
                        row[0], row[1], NULL);
    }
    return rv;
}

apr_status_t cs_registry_held_relpath(server_rec *s, apr_pool_t *p,
                                      ap_dbd_t *dbd, const char *key,
                                      apr_uint64_t version,
                                      const char **relpath)
{
    cs_server_conf *sc = cs_sconf(s);
    const char *args[3];
    apr_array_header_t *rows;
    apr_status_t rv;

    args[0] = sc->node_name;
    args[1] = key;
    args[2] = cs_u64(p, version);
    rv = cs_db_rows(s, p, dbd, CS_ST_RECOVER, 1, &rows, 3, args);
    *relpath = (rv == APR_SUCCESS && rows->nelts)
               ? APR_ARRAY_IDX(rows, 0, const char **)[0] : NULL;
    return rv;
}

apr_status_t cs_registry_drop_lease(server_rec *s, apr_pool_t *p)
{
    cs_server_conf *sc = cs_sconf(s);
    ap_dbd_t *dbd = cs_dbconn_open(p, s);
    apr_status_t rv;

    if (!dbd) {
        return APR_ECONNREFUSED;
    }
    rv = cs_db_exec(s, p, dbd, CS_ST_NO_LEASE, NULL, sc->node_name, NULL);
    cs_dbconn_close(s, dbd);
    return rv;
}

apr_status_t cs_registry_drop_replica(server_rec *s, apr_pool_t *p,
                                      ap_dbd_t *dbd, const char *key,
                                      apr_uint64_t version)
{
    return cs_db_exec(s, p, dbd, CS_ST_DROP_MY_REPLICA, NULL, key,
                      cs_sconf(s)->node_name, cs_u64(p, version), NULL);
}


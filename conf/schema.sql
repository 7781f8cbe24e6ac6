-- mod_clusterstorage registry schema (MySQL / MariaDB, InnoDB).
--
-- You do not need to run this file: every node creates these tables itself
-- (CREATE TABLE IF NOT EXISTS) the first time it reaches the database.  It
-- is here for DBAs who prefer to create the schema by hand and give the
-- nodes' database user fewer rights.  It is the same DDL as cs_schema[] in
-- registry.c; keep the two identical.
--
--   cs_files     one row per key: the current version (and whether its
--                writer answered: acked), size, SHA-256,
--                modification time (microseconds), tombstone flag, and
--                the file's path below ClusterStorageRoot (relpath)
--                and its parent collection
--   cs_replicas  which node holds which version of a key
--   cs_nodes     membership: each node's URL, last heartbeat and period
--   cs_dirs      collections (WebDAV and the parents of stored keys)
--   cs_props     WebDAV dead properties
--   cs_locks     WebDAV locks
--   cs_moves     MOVEs each node has still to apply to its copies
--
-- Keys are VARBINARY so that the database never re-interprets their bytes;
-- 2048 + 64 bytes fits InnoDB's 3072-byte index limit.
--
-- Usage:  mariadb clusterstorage < conf/schema.sql
-- (scripts/check-schema.sh checks that this file and registry.c agree.)

CREATE TABLE IF NOT EXISTS cs_files (
    path VARBINARY(2048) NOT NULL,
    version BIGINT UNSIGNED NOT NULL,
    size BIGINT UNSIGNED NOT NULL DEFAULT 0,
    sha256 CHAR(64) CHARACTER SET ascii NOT NULL DEFAULT '',
    mtime BIGINT NOT NULL DEFAULT 0,
    deleted TINYINT(1) NOT NULL DEFAULT 0,
    relpath VARBINARY(2048) NOT NULL DEFAULT '',
    parent VARBINARY(2048) NOT NULL DEFAULT '',
    acked TINYINT(1) NOT NULL DEFAULT 1,
    PRIMARY KEY (path),
    KEY cs_files_parent (parent)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS cs_replicas (
    path VARBINARY(2048) NOT NULL,
    node VARCHAR(64) CHARACTER SET ascii NOT NULL,
    version BIGINT UNSIGNED NOT NULL,
    stored_at BIGINT NOT NULL,
    PRIMARY KEY (path, node),
    KEY cs_replicas_node (node)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS cs_nodes (
    name VARCHAR(64) CHARACTER SET ascii NOT NULL,
    url VARCHAR(255) NOT NULL,
    heartbeat BIGINT NOT NULL,
    period INT NOT NULL,
    lease INT NOT NULL DEFAULT 0,
    started BIGINT NOT NULL,
    PRIMARY KEY (name)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS cs_invalidations (
    node VARCHAR(64) CHARACTER SET ascii NOT NULL,
    path VARBINARY(2048) NOT NULL,
    version BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (node, path)
) ENGINE=InnoDB;

-- The namespace (WebDAV, SPEC section 8): collections, dead properties,
-- locks.
CREATE TABLE IF NOT EXISTS cs_dirs (
    path VARBINARY(2048) NOT NULL,
    parent VARBINARY(2048) NOT NULL,
    mtime BIGINT NOT NULL,
    PRIMARY KEY (path),
    KEY cs_dirs_parent (parent)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS cs_props (
    path VARBINARY(2048) NOT NULL,
    ns VARBINARY(768) NOT NULL,
    name VARBINARY(255) NOT NULL,
    value MEDIUMBLOB NOT NULL,
    PRIMARY KEY (path, ns, name)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS cs_locks (
    token CHAR(36) CHARACTER SET ascii NOT NULL,
    path VARBINARY(2048) NOT NULL,
    depth TINYINT NOT NULL,
    scope TINYINT NOT NULL,
    owner BLOB NOT NULL,
    auth_user VARBINARY(255) NOT NULL DEFAULT '',
    expires BIGINT NOT NULL,
    PRIMARY KEY (token),
    KEY cs_locks_path (path)
) ENGINE=InnoDB;

-- MOVEs each node has still to apply to its own copies: written in the
-- MOVE's transaction, one row per node.
CREATE TABLE IF NOT EXISTS cs_moves (
    seq BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    node VARCHAR(64) CHARACTER SET ascii NOT NULL,
    src VARBINARY(2048) NOT NULL,
    dst VARBINARY(2048) NOT NULL,
    src_rel VARBINARY(2048) NOT NULL,
    dst_rel VARBINARY(2048) NOT NULL,
    tree TINYINT(1) NOT NULL,
    PRIMARY KEY (seq),
    KEY cs_moves_node (node, seq)
) ENGINE=InnoDB;

-- Turns on a Galera cluster, whose GET_LOCK is one member's: a row per
-- turn held, with its holder and the end of its lease (ms).
CREATE TABLE IF NOT EXISTS cs_turns (
    name VARCHAR(64) CHARACTER SET ascii NOT NULL,
    holder VARCHAR(160) CHARACTER SET ascii NOT NULL,
    expires BIGINT NOT NULL,
    PRIMARY KEY (name)
) ENGINE=InnoDB;

-- A registry from before collections: each file row learns its parent,
-- and every directory that holds a live file becomes a collection (both
-- are no-ops once done).
ALTER TABLE cs_files
    ADD COLUMN IF NOT EXISTS parent VARBINARY(2048) NOT NULL DEFAULT '',
    ADD INDEX IF NOT EXISTS cs_files_parent (parent);

UPDATE cs_files SET parent = LEFT(path, LENGTH(path) - LENGTH(SUBSTRING_INDEX(path, '/', -1)) - 1)
    WHERE parent = '' AND LOCATE('/', path, 2) > 0;

-- A registry from before acknowledgements: every version in it was
-- answered (a no-op once done).
ALTER TABLE cs_files
    ADD COLUMN IF NOT EXISTS acked TINYINT(1) NOT NULL DEFAULT 1;

-- Draining nodes: serve, take no new copies, and their copies do not
-- count towards ClusterStorageReplicas.
ALTER TABLE cs_nodes
    ADD COLUMN IF NOT EXISTS draining TINYINT(1) NOT NULL DEFAULT 0;

INSERT IGNORE INTO cs_dirs (path, parent, mtime)
    WITH RECURSIVE a (p) AS (
        SELECT DISTINCT parent FROM cs_files
        WHERE parent <> '' AND deleted = 0 AND version > 0
        UNION SELECT LEFT(p, LENGTH(p) - LENGTH(SUBSTRING_INDEX(p, '/', -1)) - 1) FROM a
        WHERE LOCATE('/', p, 2) > 0)
    SELECT p, LEFT(p, LENGTH(p) - LENGTH(SUBSTRING_INDEX(p, '/', -1)) - 1), 0 FROM a;

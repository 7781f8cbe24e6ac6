-- mod_clusterstorage registry schema (MySQL / MariaDB, InnoDB).
--
-- You do not need to run this file: every node creates these tables itself
-- (CREATE TABLE IF NOT EXISTS) the first time it reaches the database.  It
-- is here for DBAs who prefer to create the schema by hand and give the
-- nodes' database user fewer rights.  It is the same DDL as cs_schema[] in
-- registry.c; keep the two identical.
--
--   cs_files     one row per key: the current version, size, SHA-256,
--                modification time (microseconds), tombstone flag, and
--                the file's path below ClusterStorageRoot (relpath)
--   cs_replicas  which node holds which version of a key
--   cs_nodes     membership: each node's URL, last heartbeat and period
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
    PRIMARY KEY (path)
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

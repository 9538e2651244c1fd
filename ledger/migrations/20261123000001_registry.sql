-- The bidder registry. Written in SQL that PostgreSQL and SQLite both accept,
-- so one migration and one set of queries serve both backends.
CREATE TABLE bidders (
    name TEXT PRIMARY KEY,
    -- The bidder's settings as JSON (the same shape as a config-file entry):
    -- new settings need no migration, and both backends store text alike.
    spec TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One row, bumped in the same transaction as every change: replicas poll it
-- and reload the bidders only when it moved. Version 0 means never seeded.
CREATE TABLE registry_version (
    id INTEGER PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO registry_version (id, version) VALUES (1, 0);

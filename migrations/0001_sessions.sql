-- Sessions agents opened through the bridge, the calls they rejected, and the request-id
-- high-water mark: what the platform cannot tell a restarted bridge. Times are milliseconds
-- since the Unix epoch. Portable SQL: the same file migrates SQLite and PostgreSQL.
CREATE TABLE sessions (
    username    TEXT    PRIMARY KEY,
    agent       TEXT    NOT NULL,
    max_calls   BIGINT  NOT NULL,
    proven      TEXT,
    orphaned_at BIGINT,
    updated_at  BIGINT  NOT NULL
);

CREATE TABLE rejected_calls (
    call_id     BIGINT  PRIMARY KEY,
    rejected_at BIGINT  NOT NULL
);
CREATE INDEX rejected_calls_by_time ON rejected_calls (rejected_at);

CREATE TABLE request_ids (
    id          BIGINT  PRIMARY KEY,
    high_water  BIGINT  NOT NULL
);

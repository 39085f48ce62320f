-- The private session ids (socket.io `pid`) UI sockets were given, as SHA-256 hex, each bound
-- to the session it may take back on a reconnect. Deleted with the session.
CREATE TABLE session_pids (
    pid_key     TEXT    PRIMARY KEY,
    username    TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX session_pids_by_username ON session_pids (username);

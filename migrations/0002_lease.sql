-- Which of a pair of bridges sharing one database is active: the holder of the row named
-- 'active', until expires_at (milliseconds since the Unix epoch, by the database's clock).
-- epoch grows by one at every change of holder.
CREATE TABLE lease (
    name        TEXT    PRIMARY KEY,
    holder      TEXT    NOT NULL,
    epoch       BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL
);

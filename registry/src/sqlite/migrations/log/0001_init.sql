-- The event log (registry.db): the only authority. Rows are appended, never updated or
-- deleted. Every commit is fsync'd before a write is acknowledged.
CREATE TABLE events (
    seq            INTEGER PRIMARY KEY,
    created_at     INTEGER NOT NULL,           -- milliseconds since the Unix epoch
    event_type     TEXT    NOT NULL,
    subject_kind   TEXT    NOT NULL,
    subject_id     TEXT    NOT NULL,
    actor          TEXT    NOT NULL,
    access_key     TEXT,
    request_id     TEXT,
    source_addr    TEXT,
    user_agent     TEXT,
    payload        BLOB    NOT NULL,           -- canonical JSON
    payload_digest BLOB    NOT NULL,           -- BLAKE3(payload)
    prev_hash      BLOB    NOT NULL,
    hash           BLOB    NOT NULL
);
-- No secondary index: an append touches only the end of this table, which keeps the
-- fsync'd write of a group commit small and sequential. Lookups by subject live in the views.


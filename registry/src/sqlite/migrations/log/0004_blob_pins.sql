-- Blobs that a write placed again after gc deleted them, which gc must not mark until the write
-- has recorded its event (registry::deletions). Neither chain nor view: like blob_deletions,
-- gc's own bookkeeping.
CREATE TABLE blob_pins (
    pin       INTEGER PRIMARY KEY,
    blob      TEXT NOT NULL,
    pinned_at INTEGER NOT NULL                 -- registry clock, milliseconds since the epoch
);
CREATE INDEX blob_pins_by_blob ON blob_pins (blob);

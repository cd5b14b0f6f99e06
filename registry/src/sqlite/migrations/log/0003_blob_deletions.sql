-- Blob deletions that gc and writes agree on under the writer (registry::deletions). Neither
-- chain nor view: gc's own bookkeeping, which replay neither needs nor rebuilds.
CREATE TABLE blob_deletions (
    blob     TEXT PRIMARY KEY,
    released INTEGER                           -- the epoch its deletion ended; NULL while gc deletes it
) WITHOUT ROWID;

-- One row: how many deletion batches have ended (`epoch`), and up to which epoch ended
-- deletions are no longer remembered blob by blob (`forgotten`).
CREATE TABLE deletion_epoch (
    id        INTEGER PRIMARY KEY CHECK (id = 0),
    epoch     INTEGER NOT NULL,
    forgotten INTEGER NOT NULL
);
INSERT INTO deletion_epoch (id, epoch, forgotten) VALUES (0, 0, 0);

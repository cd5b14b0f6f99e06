-- Sealed packages (`v1.package.finalized`), one row each. Every write and delete checks
-- whether its key lies under one of these prefixes, so they are looked up by bucket.
CREATE TABLE packages (
    name                TEXT PRIMARY KEY,
    bucket              TEXT    NOT NULL,
    prefix              TEXT    NOT NULL,
    manifest_key        TEXT    NOT NULL,
    manifest_version_id TEXT    NOT NULL,
    manifest_blake3     TEXT    NOT NULL,      -- hex BLAKE3 of the manifest's bytes
    members             INTEGER NOT NULL,
    bytes               INTEGER NOT NULL,
    sealed_seq          INTEGER NOT NULL,      -- the v1.package.finalized event
    sealed_at           INTEGER NOT NULL,
    actor               TEXT    NOT NULL
) WITHOUT ROWID;
CREATE INDEX packages_by_bucket ON packages (bucket, prefix);

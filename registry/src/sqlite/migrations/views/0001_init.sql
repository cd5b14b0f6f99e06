-- The views (registry.views.db): everything here is derived from the log. `replay`
-- empties and rebuilds it; after a crash the writer catches it up from `views_state`.
-- Commits here are not fsync'd: the log is, and it is committed first.

CREATE TABLE views_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    applied_seq INTEGER NOT NULL               -- the last event applied to these views
);
INSERT INTO views_state (id, applied_seq) VALUES (1, 0);

-- Every event by its subject, for an object's or a bucket's history.
CREATE TABLE event_subjects (
    subject_id TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    PRIMARY KEY (subject_id, seq)
) WITHOUT ROWID;


CREATE TABLE buckets (
    name                TEXT PRIMARY KEY,
    created_seq         INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    region              TEXT    NOT NULL,
    owner               TEXT    NOT NULL,
    versioning          TEXT,                  -- NULL (never enabled), 'Enabled', 'Suspended'
    object_lock_enabled INTEGER NOT NULL,
    default_retention   TEXT,                  -- JSON
    lifecycle           TEXT                   -- JSON
) WITHOUT ROWID;

CREATE TABLE object_versions (
    seq              INTEGER PRIMARY KEY,      -- the event that created it; orders versions
    bucket           TEXT    NOT NULL,
    key              TEXT    NOT NULL,
    version_id       TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    is_latest        INTEGER NOT NULL,
    is_delete_marker INTEGER NOT NULL,
    size             INTEGER NOT NULL,
    etag             TEXT    NOT NULL,
    blake3           TEXT    NOT NULL,
    content          TEXT    NOT NULL,         -- JSON of ObjectContent
    origin           TEXT    NOT NULL,         -- JSON of Origin
    actor            TEXT    NOT NULL,
    retention_mode   TEXT,
    retain_until     INTEGER,
    legal_hold       INTEGER NOT NULL
);
-- Keyed by the creating event's sequence, rows are appended in order; these two indexes
-- answer "this version of this key" and "the current version of each key, in key order".
CREATE UNIQUE INDEX object_versions_by_id ON object_versions (bucket, key, version_id);
CREATE INDEX object_versions_latest ON object_versions (bucket, key) WHERE is_latest = 1;

CREATE TABLE multipart_uploads (
    upload_id   TEXT PRIMARY KEY,
    bucket      TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    created_seq INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    initiator   TEXT    NOT NULL,
    template    TEXT    NOT NULL              -- JSON of MultipartCreated
) WITHOUT ROWID;
CREATE INDEX multipart_uploads_by_key ON multipart_uploads (bucket, key, created_seq);

CREATE TABLE multipart_parts (
    upload_id   TEXT    NOT NULL,
    part_number INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    etag        TEXT    NOT NULL,
    part        TEXT    NOT NULL,              -- JSON of BlobPart
    PRIMARY KEY (upload_id, part_number)
) WITHOUT ROWID;

CREATE TABLE retrievals (
    seq         INTEGER PRIMARY KEY,
    created_at  INTEGER NOT NULL,
    bucket      TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    version_id  TEXT    NOT NULL,
    method      TEXT    NOT NULL,
    bytes       INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    source_addr TEXT,
    user_agent  TEXT,
    request_id  TEXT
);
CREATE INDEX retrievals_by_object ON retrievals (bucket, key, seq);

-- Blobs referenced by versions and by parts of uploads in progress, with a count, so gc can
-- tell in one lookup whether a blob is still needed.
CREATE TABLE blob_refs (
    blob  TEXT PRIMARY KEY,
    refs  INTEGER NOT NULL
) WITHOUT ROWID;

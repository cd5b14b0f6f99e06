-- Buckets' default encryption (`v1.bucket.encryption.set`), as the event's JSON rule: read
-- by every write that asks for no encryption of its own, and by GetBucketEncryption.
CREATE TABLE bucket_encryption (
    bucket   TEXT PRIMARY KEY,
    rule     TEXT NOT NULL,
    set_seq  INTEGER NOT NULL
) WITHOUT ROWID;

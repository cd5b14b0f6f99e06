-- Bucket policies (`v1.bucket.policy.set`), the document as its owner wrote it. Every
-- request to a bucket reads its row, so it is keyed by bucket alone.
CREATE TABLE bucket_policies (
    bucket   TEXT PRIMARY KEY,
    policy   TEXT    NOT NULL,
    set_seq  INTEGER NOT NULL                   -- the v1.bucket.policy.set event
) WITHOUT ROWID;

-- Buckets' tags (`v1.bucket.tagging.set`), as the event's JSON map: read whole by
-- GetBucketTagging.
CREATE TABLE bucket_tags (
    bucket   TEXT PRIMARY KEY,
    tags     TEXT NOT NULL,
    set_seq  INTEGER NOT NULL
) WITHOUT ROWID;

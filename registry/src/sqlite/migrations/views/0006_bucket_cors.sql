-- Buckets' CORS rules (`v1.bucket.cors.set`), as the event's JSON: read whole when a
-- browser's request (one with an `Origin` header) reaches the bucket.
CREATE TABLE bucket_cors (
    bucket   TEXT PRIMARY KEY,
    rules    TEXT NOT NULL,
    set_seq  INTEGER NOT NULL
) WITHOUT ROWID;

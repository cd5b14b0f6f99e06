-- Buckets' object ownership (`v1.bucket.ownership.set` / `.deleted`): no row is
-- BucketOwnerEnforced, a NULL ownership is controls deleted (ACLs enabled).
CREATE TABLE bucket_ownership (
    bucket     TEXT PRIMARY KEY,
    ownership  TEXT,
    set_seq    INTEGER NOT NULL
) WITHOUT ROWID;

-- Buckets' ACL grants besides the owner's full control (`v1.bucket.acl.set`), as the event's
-- JSON.
CREATE TABLE bucket_acls (
    bucket   TEXT PRIMARY KEY,
    grants   TEXT NOT NULL,
    set_seq  INTEGER NOT NULL
) WITHOUT ROWID;

-- Buckets' public access blocks (`v1.bucket.public_access_block.set`): the four settings,
-- read with the bucket's policy on every request to it.
CREATE TABLE bucket_public_access_blocks (
    bucket                   TEXT PRIMARY KEY,
    block_public_acls        INTEGER NOT NULL,
    ignore_public_acls       INTEGER NOT NULL,
    block_public_policy      INTEGER NOT NULL,
    restrict_public_buckets  INTEGER NOT NULL,
    set_seq                  INTEGER NOT NULL
) WITHOUT ROWID;

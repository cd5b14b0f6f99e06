-- Object versions' ACL grants besides the bucket owner's full control (`v1.object.acl.set`),
-- by the version's row; deleting the version deletes them.
CREATE TABLE object_acls (
    version_seq  INTEGER PRIMARY KEY,
    grants       TEXT    NOT NULL,
    set_seq      INTEGER NOT NULL
);

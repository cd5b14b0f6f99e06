-- The account that owns an object version when it is not the bucket's owner
-- (`v1.object.acl.set`'s `owner`): another account's write under `ObjectWriter`, or under
-- `BucketOwnerPreferred` without `bucket-owner-full-control`. NULL: the bucket's owner.
ALTER TABLE object_acls ADD COLUMN owner TEXT;

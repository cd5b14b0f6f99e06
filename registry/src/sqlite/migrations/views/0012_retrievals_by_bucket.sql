-- Read records of a bucket in sequence order (the registry API's `bucket` filter without a
-- key): without it, each page sorted every record of the bucket found through
-- `retrievals_by_object`, which is ordered by key first.
CREATE INDEX retrievals_by_bucket ON retrievals (bucket, seq);

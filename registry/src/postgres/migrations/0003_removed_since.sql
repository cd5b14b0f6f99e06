-- The latest removal's stamp, read with the head: a removal by a batch that appended no event
-- is stamped past the last event, where no catch-up looks; the next batch of every gateway
-- finds it here and drops its copies before it appends events of its own.
ALTER TABLE registry_head ADD COLUMN removed_since bigint NOT NULL DEFAULT 0;

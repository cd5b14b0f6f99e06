-- Bytes of small objects (the gateway's storage.inline_max_bytes), inserted in the same
-- transaction as the event that records their version, so such a write is durable with the
-- group commit's one fsync. Not part of the chain and not a view: a row is named by the
-- BLAKE3 of its bytes (verify re-hashes it), and gc deletes rows no version references, which
-- the append-only events table could never do.
CREATE TABLE inline_blobs (
    digest BLOB PRIMARY KEY,                   -- BLAKE3(bytes), 32 bytes
    bytes  BLOB NOT NULL
);

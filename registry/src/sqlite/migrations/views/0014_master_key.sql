-- The master key the gateways sharing the registry wrap SSE-S3 data keys with
-- (`v1.encryption.master_key.set`): one row, the newest record.
CREATE TABLE master_key (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    key_id   TEXT NOT NULL,
    set_seq  INTEGER NOT NULL
);

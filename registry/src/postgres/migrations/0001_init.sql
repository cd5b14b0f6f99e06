-- The registry's authority on PostgreSQL: the chain and the tables beside it. Each gateway
-- keeps a replica of the log and its views in a local SQLite registry, caught up from here.

-- One row: what the next event's sequence is and what it chains from. A batch takes it
-- FOR UPDATE, so batches of all gateways are serialised and sequences are gapless and become
-- visible in order; there is no SQL sequence (a rolled-back nextval would leave a gap).
CREATE TABLE registry_head (
    id        smallint PRIMARY KEY CHECK (id = 0),
    next_seq  bigint   NOT NULL,
    head_hash bytea    NOT NULL
);
INSERT INTO registry_head (id, next_seq, head_hash) VALUES (0, 1, '\x0000000000000000000000000000000000000000000000000000000000000000');

-- The event log: the same columns, canonical bytes and hashes as on SQLite. Rows are
-- appended, never updated or deleted.
CREATE TABLE events (
    seq            bigint PRIMARY KEY,
    created_at     bigint NOT NULL,
    event_type     text   NOT NULL,
    subject_kind   text   NOT NULL,
    subject_id     text   NOT NULL,
    actor          text   NOT NULL,
    access_key     text,
    request_id     text,
    source_addr    text,
    user_agent     text,
    payload        bytea  NOT NULL,
    payload_digest bytea  NOT NULL,
    prev_hash      bytea  NOT NULL,
    hash           bytea  NOT NULL
);

-- Small objects' bytes and access keys' secrets. `since` is the first sequence of the batch
-- that stored the row: a gateway catching up copies the rows of the batches it lacks.
CREATE TABLE inline_blobs (
    digest bytea  PRIMARY KEY,
    bytes  bytea  NOT NULL,
    since  bigint NOT NULL
);
CREATE INDEX inline_blobs_since ON inline_blobs (since);
CREATE TABLE access_key_secrets (
    access_key text   PRIMARY KEY,
    secret     text   NOT NULL,
    since      bigint NOT NULL
);
CREATE INDEX access_key_secrets_since ON access_key_secrets (since);

-- gc's bookkeeping (registry::deletions), shared so that every gateway's writes and the one
-- running gc agree.
CREATE TABLE blob_deletions (
    blob     text PRIMARY KEY,
    released bigint
);
CREATE TABLE deletion_epoch (
    id        smallint PRIMARY KEY CHECK (id = 0),
    epoch     bigint NOT NULL,
    forgotten bigint NOT NULL
);
INSERT INTO deletion_epoch (id, epoch, forgotten) VALUES (0, 0, 0);
CREATE TABLE blob_pins (
    pin       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    blob      text   NOT NULL,
    pinned_at bigint NOT NULL
);
CREATE INDEX blob_pins_by_blob ON blob_pins (blob);

-- Rewritten by readiness checks: a commit that writes a row proves the server takes writes.
CREATE TABLE commit_probe (
    id smallint PRIMARY KEY CHECK (id = 0),
    at bigint   NOT NULL
);
INSERT INTO commit_probe (id, at) VALUES (0, 0);

-- The secret of each access key created by the registry (`v1.access_key.created`), which
-- the gateway needs to check signatures. Beside the log, not in it: an event is never
-- allowed to carry a secret. Removed with its key. The root key's secret is in the
-- configuration, not here.
CREATE TABLE access_key_secrets (
    access_key  TEXT PRIMARY KEY,
    secret      TEXT NOT NULL
) WITHOUT ROWID;

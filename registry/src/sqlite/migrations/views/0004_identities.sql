-- Accounts, their users, access keys and users' inline policies (`v1.account.*`,
-- `v1.user.*`, `v1.access_key.*`). Secrets are not here: they are kept beside the log.
CREATE TABLE accounts (
    name         TEXT PRIMARY KEY,
    id           TEXT    NOT NULL UNIQUE,          -- 12 digits
    created_seq  INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE users (
    account      TEXT    NOT NULL,
    name         TEXT    NOT NULL,                 -- `root` is the account's root user
    created_seq  INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,                 -- ms since the epoch, the event's time
    PRIMARY KEY (account, name)
) WITHOUT ROWID;

-- A deleted key keeps its row (`deleted_seq` set), so that the events it signed still
-- name their user and account.
CREATE TABLE access_keys (
    access_key   TEXT PRIMARY KEY,
    account      TEXT    NOT NULL,
    user         TEXT    NOT NULL,
    status       TEXT    NOT NULL,                 -- Active | Inactive
    created_seq  INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    deleted_seq  INTEGER
) WITHOUT ROWID;
CREATE INDEX access_keys_by_user ON access_keys (account, user);

CREATE TABLE user_policies (
    account      TEXT    NOT NULL,
    user         TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    policy       TEXT    NOT NULL,
    set_seq      INTEGER NOT NULL,
    PRIMARY KEY (account, user, name)
) WITHOUT ROWID;

-- Inline bytes gc removed, stamped like the rows they removed: a gateway catching up drops its
-- copies of them, so a deleted object's bytes do not stay in the other gateways' replicas.
CREATE TABLE inline_removals (
    digest bytea  NOT NULL,
    since  bigint NOT NULL
);
CREATE INDEX inline_removals_since ON inline_removals (since);

-- One row that readiness checks rewrite to learn whether a commit that writes a page still
-- succeeds (an empty transaction commits even on a full disk). Neither chain nor view.
CREATE TABLE commit_probe (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    at INTEGER NOT NULL                        -- registry clock of the last probe, milliseconds
);
INSERT INTO commit_probe (id, at) VALUES (0, 0);

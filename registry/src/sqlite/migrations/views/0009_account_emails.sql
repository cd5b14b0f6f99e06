-- Accounts' email addresses (`v1.account.created`'s `email`), by which ACLs grant to them:
-- in lower case, at most one account each.
ALTER TABLE accounts ADD COLUMN email TEXT;
CREATE UNIQUE INDEX accounts_by_email ON accounts (email) WHERE email IS NOT NULL;

-- Budgets and leases (sqlite). Amounts are integer micros.
--
-- An account is a bidder (`seat`) or one of its campaigns (`seat/cid`).
-- `lock_seq` is bumped by every lease grant first, so grants for one
-- account are serialized (row lock in PostgreSQL, write lock in SQLite).
CREATE TABLE IF NOT EXISTS budget_accounts (
    account      TEXT   NOT NULL PRIMARY KEY,
    bidder       TEXT   NOT NULL,
    cid          TEXT,
    daily_micros INTEGER,          -- NULL: no daily limit
    total_micros INTEGER,          -- NULL: no total limit
    updated_ms   INTEGER NOT NULL,
    lock_seq     INTEGER NOT NULL DEFAULT 0
);

-- A lease: budget an exchange instance may award for one account and day.
-- Outstanding (committed, not yet debited) = granted - debited. The ledger
-- adds to debited in the transaction that records the debit; an expired or
-- released lease is cut back to what its instance awarded.
CREATE TABLE IF NOT EXISTS budget_leases (
    account        TEXT   NOT NULL,
    instance       TEXT   NOT NULL,
    day            TEXT   NOT NULL,
    granted_micros INTEGER NOT NULL DEFAULT 0,
    awarded_micros INTEGER NOT NULL DEFAULT 0,
    debited_micros INTEGER NOT NULL DEFAULT 0,
    expires_ms     INTEGER NOT NULL,
    PRIMARY KEY (account, instance, day)
);

-- Traceability: which request and which exchange instance a debit came from.
ALTER TABLE debits ADD COLUMN request_id TEXT;
ALTER TABLE debits ADD COLUMN exchange_instance TEXT;

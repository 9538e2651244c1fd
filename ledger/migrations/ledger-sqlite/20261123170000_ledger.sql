-- Ledger tables (SQLite). Debits are keyed by (auction, imp): a replayed
-- or duplicated event cannot debit twice. Amounts are integer micros.
CREATE TABLE IF NOT EXISTS debits (
    auction_id    TEXT   NOT NULL,
    imp_id        TEXT   NOT NULL,
    account       TEXT   NOT NULL,
    seat          TEXT   NOT NULL,
    cid           TEXT,
    amount_micros INTEGER NOT NULL,
    currency      TEXT   NOT NULL,
    event_ts      INTEGER NOT NULL,
    PRIMARY KEY (auction_id, imp_id)
);

-- Spend per account and UTC day, updated in the same transaction as debits.
CREATE TABLE IF NOT EXISTS account_spend (
    account      TEXT   NOT NULL,
    day          TEXT   NOT NULL,
    spent_micros INTEGER NOT NULL,
    PRIMARY KEY (account, day)
);

-- The consumer's position, committed with the debits it covers.
CREATE TABLE IF NOT EXISTS ledger_offsets (
    topic       TEXT    NOT NULL,
    "partition" INTEGER NOT NULL,
    next_offset INTEGER  NOT NULL,
    PRIMARY KEY (topic, "partition")
);

-- Offsets are scoped to the log they were read from: the embedded (in
-- memory) cluster starts again at offset 0 with a new random epoch, and
-- offsets of another epoch are ignored. Real brokers use ''.
ALTER TABLE ledger_offsets ADD COLUMN log_epoch TEXT NOT NULL DEFAULT '';

-- The currency a budget is kept in; wins in another currency are not
-- awarded from it (there are no conversion rates).
ALTER TABLE budget_accounts ADD COLUMN currency TEXT NOT NULL DEFAULT 'USD';

-- SQLite turns an integer sum that overflows into a REAL and stores it:
-- money columns refuse anything but integers, as PostgreSQL's BIGINT does,
-- so the ledger sees the refusal and dead-letters the event at fault.
CREATE TRIGGER IF NOT EXISTS debits_amount_integer BEFORE INSERT ON debits
WHEN typeof(NEW.amount_micros) <> 'integer'
BEGIN SELECT RAISE(ABORT, 'debits.amount_micros: integer out of range'); END;

CREATE TRIGGER IF NOT EXISTS account_spend_integer_insert BEFORE INSERT ON account_spend
WHEN typeof(NEW.spent_micros) <> 'integer'
BEGIN SELECT RAISE(ABORT, 'account_spend.spent_micros: integer out of range'); END;

CREATE TRIGGER IF NOT EXISTS account_spend_integer_update BEFORE UPDATE ON account_spend
WHEN typeof(NEW.spent_micros) <> 'integer'
BEGIN SELECT RAISE(ABORT, 'account_spend.spent_micros: integer out of range'); END;

CREATE TRIGGER IF NOT EXISTS budget_leases_integer_insert BEFORE INSERT ON budget_leases
WHEN typeof(NEW.granted_micros) <> 'integer' OR typeof(NEW.awarded_micros) <> 'integer'
    OR typeof(NEW.debited_micros) <> 'integer'
BEGIN SELECT RAISE(ABORT, 'budget_leases: integer out of range'); END;

CREATE TRIGGER IF NOT EXISTS budget_leases_integer_update BEFORE UPDATE ON budget_leases
WHEN typeof(NEW.granted_micros) <> 'integer' OR typeof(NEW.awarded_micros) <> 'integer'
    OR typeof(NEW.debited_micros) <> 'integer'
BEGIN SELECT RAISE(ABORT, 'budget_leases: integer out of range'); END;

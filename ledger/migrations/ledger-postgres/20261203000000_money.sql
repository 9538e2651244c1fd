-- Offsets are scoped to the log they were read from: the embedded (in
-- memory) cluster starts again at offset 0 with a new random epoch, and
-- offsets of another epoch are ignored. Real brokers use ''.
ALTER TABLE ledger_offsets ADD COLUMN IF NOT EXISTS log_epoch TEXT NOT NULL DEFAULT '';

-- The currency a budget is kept in; wins in another currency are not
-- awarded from it (there are no conversion rates).
ALTER TABLE budget_accounts ADD COLUMN IF NOT EXISTS currency TEXT NOT NULL DEFAULT 'USD';

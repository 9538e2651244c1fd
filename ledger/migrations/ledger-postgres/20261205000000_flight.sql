-- A budget's flight and pacing: no win is awarded from it before start_ms
-- or from end_ms on (ms since the epoch, UTC; NULL: open), and an 'even'
-- budget is spent along a straight line over each day (daily limit) and
-- over its flight (total limit) instead of as fast as wins come ('asap').
ALTER TABLE budget_accounts ADD COLUMN IF NOT EXISTS start_ms BIGINT;
ALTER TABLE budget_accounts ADD COLUMN IF NOT EXISTS end_ms BIGINT;
ALTER TABLE budget_accounts ADD COLUMN IF NOT EXISTS pacing TEXT NOT NULL DEFAULT 'asap';

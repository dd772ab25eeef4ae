-- When the recovery sweep may offer an unfinished transaction again. Each sweep
-- offers the due ones, oldest first, and moves them back: a transaction that cannot
-- finish (a participant that never acknowledges) goes to the back of the line
-- instead of holding the front of every sweep, so newer ones always get their turn.
ALTER TABLE transactions ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now();
DROP INDEX transactions_unfinished;
CREATE INDEX transactions_due ON transactions (next_attempt_at) WHERE state IN ('preparing', 'committing', 'aborting');

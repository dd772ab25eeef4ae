-- Why a saga is parked, apart from why it compensates: `reason` is the first refusal
-- (what the cancelled order says) and must survive a parking and its resumption.
ALTER TABLE sagas ADD COLUMN parked_reason text;
UPDATE sagas SET parked_reason = reason WHERE status = 'parked';
UPDATE sagas SET reason = NULL WHERE status = 'parked' AND NOT parked_compensating;
COMMENT ON COLUMN sagas.reason IS 'Why it is compensating or was cancelled: the first refusal, kept through parking';
COMMENT ON COLUMN sagas.parked_reason IS 'Why it is parked; cleared when it resumes';

-- The participant a parked saga waits for when it is parked for lack of an answer
-- (not for a refusal): when that participant recovers, the saga is due at once.
ALTER TABLE sagas ADD COLUMN parked_on text;
CREATE INDEX sagas_parked_on ON sagas (parked_on) WHERE status = 'parked';

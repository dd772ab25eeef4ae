-- Why a saga is parked, apart from why it compensates: `reason` is the first refusal
-- (what the cancelled order says) and must survive a parking and its resumption.
ALTER TABLE sagas ADD COLUMN parked_reason text;
UPDATE sagas SET parked_reason = reason WHERE status = 'parked';
UPDATE sagas SET reason = NULL WHERE status = 'parked' AND NOT parked_compensating;
COMMENT ON COLUMN sagas.reason IS 'Why it is compensating or was cancelled: the first refusal, kept through parking';
COMMENT ON COLUMN sagas.parked_reason IS 'Why it is parked; cleared when it resumes';

-- The saga log as a history (GET /sagas/{id}/history): one row per thing that
-- happened to a saga, written by the same statement as the log change it records, so
-- the history never says more or less than the log.
CREATE TYPE saga_event_kind AS ENUM (
    'saga_started', 'resumed', 'step_started', 'step_ended',
    'compensation_started', 'compensation_ended', 'status_changed'
);
CREATE TYPE attempt_outcome AS ENUM ('succeeded', 'refused', 'unknown', 'not_sent', 'in_flight');

CREATE TABLE saga_events (
    saga_id     uuid            NOT NULL REFERENCES sagas (id),
    seq         bigint          GENERATED ALWAYS AS IDENTITY,
    -- The statement's own time: two events of one transaction are told apart.
    at          timestamptz     NOT NULL DEFAULT clock_timestamp(),
    kind        saga_event_kind NOT NULL,
    -- Attempts: the step, its attempt number, what came of it and how long it took.
    step        text,
    attempt     integer,
    outcome     attempt_outcome,
    status_code smallint,
    -- An attempt's error, or why the status changed (a refusal, a parking).
    detail      text,
    duration_ms double precision,
    -- status_changed: the new status; resumed: the status it was resumed from.
    status      saga_status,
    -- status_changed to parked: the participant it waits for.
    participant text,
    PRIMARY KEY (saga_id, seq)
);

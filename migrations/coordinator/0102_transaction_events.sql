-- The coordinator's log as a history (GET /transactions/{id}/history): one row per
-- thing that happened to a transaction, written by the same statement as the log
-- change it records.
CREATE TYPE tx_event_kind AS ENUM (
    'logged', 'resumed', 'vote', 'decision_logged', 'phase_two_attempt', 'finished'
);

CREATE TABLE tx_events (
    transaction_id uuid          NOT NULL REFERENCES transactions (id),
    seq            bigint        GENERATED ALWAYS AS IDENTITY,
    at             timestamptz   NOT NULL DEFAULT clock_timestamp(),
    kind           tx_event_kind NOT NULL,
    -- vote, phase_two_attempt: whose.
    participant    text,
    vote           tx_vote,
    -- phase_two_attempt: its round, and whether the participant acknowledged.
    attempt        integer,
    acknowledged   boolean,
    decision       tx_decision,
    -- resumed: the state it was resumed in; finished: the final state.
    state          tx_state,
    -- Why: a vote's detail, the decision's reason, a phase-two attempt's error.
    detail         text,
    duration_ms    double precision,
    PRIMARY KEY (transaction_id, seq)
);

-- The coordinator's log. The decision column is the commit point: once it is
-- written, the transaction commits (or aborts) everywhere, whatever else crashes.
-- No decision logged means abort (presumed abort).
CREATE TYPE tx_state AS ENUM ('preparing', 'committing', 'aborting', 'committed', 'aborted');
CREATE TYPE tx_decision AS ENUM ('commit', 'abort');
CREATE TYPE tx_vote AS ENUM ('pending', 'yes', 'no', 'timeout');
CREATE TYPE tx_outcome AS ENUM ('pending', 'committed', 'aborted');

CREATE TABLE transactions (
    id           uuid        PRIMARY KEY,
    order_id     uuid        NOT NULL UNIQUE,
    -- The checkout's idempotency scope and key: a retried checkout finds its transaction.
    checkout_key text        NOT NULL UNIQUE,
    state        tx_state    NOT NULL DEFAULT 'preparing',
    decision     tx_decision,
    reason       text,
    request      jsonb       NOT NULL,
    traceparent  text,
    baggage      text,
    -- The coordinator process that began it; another one finding it undecided
    -- presumes abort.
    started_by   uuid        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    decided_at   timestamptz,
    completed_at timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((decision IS NULL) = (state = 'preparing'))
);
CREATE INDEX transactions_unfinished ON transactions (created_at) WHERE state IN ('preparing', 'committing', 'aborting');
CREATE INDEX transactions_newest ON transactions (created_at DESC);

CREATE TABLE tx_participants (
    transaction_id  uuid        NOT NULL REFERENCES transactions (id),
    position        smallint    NOT NULL,
    name            text        NOT NULL,
    vote            tx_vote     NOT NULL DEFAULT 'pending',
    outcome         tx_outcome  NOT NULL DEFAULT 'pending',
    detail          text,
    phase2_attempts integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (transaction_id, position)
);

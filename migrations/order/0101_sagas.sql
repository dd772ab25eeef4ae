-- The checkout saga's durable log: one row per saga, one per step. Written before
-- each attempt and after each outcome, so a restarted orchestrator resumes from it.
CREATE TYPE saga_status AS ENUM ('running', 'compensating', 'parked', 'confirmed', 'cancelled');
CREATE TYPE step_status AS ENUM ('pending', 'running', 'succeeded', 'failed', 'compensating', 'compensated');

CREATE TABLE sagas (
    id              uuid        PRIMARY KEY,
    order_id        uuid        NOT NULL UNIQUE,
    -- The checkout's idempotency scope and key: a retried checkout finds its saga.
    checkout_key    text        NOT NULL UNIQUE,
    status          saga_status NOT NULL DEFAULT 'running',
    -- Why it was cancelled, or why it is parked.
    reason          text,
    -- Whether a parked saga was parked while compensating (it resumes compensating).
    parked_compensating boolean NOT NULL DEFAULT false,
    -- customer_email, payment_token, items with prices, total_cents.
    request         jsonb       NOT NULL,
    -- The checkout's trace context and baggage: resumed work continues the trace.
    traceparent     text,
    baggage         text,
    -- A parked saga is retried by the recovery actor from then on.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sagas_unfinished ON sagas (next_attempt_at) WHERE status IN ('running', 'compensating', 'parked');

CREATE TABLE saga_steps (
    saga_id               uuid        NOT NULL REFERENCES sagas (id),
    position              smallint    NOT NULL,
    step                  text        NOT NULL,
    status                step_status NOT NULL DEFAULT 'pending',
    attempts              integer     NOT NULL DEFAULT 0,
    compensation_attempts integer     NOT NULL DEFAULT 0,
    last_error            text,
    updated_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (saga_id, position)
);

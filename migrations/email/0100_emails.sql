-- The outbox: one row per email, delivered at least once by the dispatcher actor.
-- UNIQUE (order_id, kind) makes "exactly one confirmation per order" a database rule.
CREATE TYPE email_state AS ENUM ('pending', 'delivered', 'failed');

CREATE TABLE emails (
    id              uuid        PRIMARY KEY,
    order_id        uuid        NOT NULL,
    kind            text        NOT NULL DEFAULT 'order_confirmation',
    recipient       text        NOT NULL,
    subject         text        NOT NULL,
    body            text        NOT NULL,
    state           email_state NOT NULL DEFAULT 'pending',
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- A dispatcher holds a claimed email until then (no transaction spans SMTP).
    locked_until    timestamptz,
    delivered_at    timestamptz,
    -- The enqueuing request's trace, so delivery joins the checkout's trace.
    traceparent     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (order_id, kind)
);

CREATE INDEX emails_due ON emails (next_attempt_at) WHERE state = 'pending';

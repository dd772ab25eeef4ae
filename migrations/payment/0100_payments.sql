-- Charges and refunds. The database itself guarantees that an order has at most one
-- successful charge and that refunds never exceed what was charged.
CREATE TYPE charge_state AS ENUM ('succeeded', 'declined');

CREATE TABLE charges (
    id             uuid         PRIMARY KEY,
    order_id       uuid         NOT NULL,
    amount_cents   bigint       NOT NULL CHECK (amount_cents > 0),
    token          text         NOT NULL,
    state          charge_state NOT NULL,
    decline_code   text,
    refunded_cents bigint       NOT NULL DEFAULT 0,
    created_at     timestamptz  NOT NULL DEFAULT now(),
    CHECK (refunded_cents >= 0 AND refunded_cents <= amount_cents),
    CHECK ((state = 'declined') = (decline_code IS NOT NULL)),
    CHECK (state = 'succeeded' OR refunded_cents = 0)
);
CREATE UNIQUE INDEX charges_one_success_per_order ON charges (order_id) WHERE state = 'succeeded';
CREATE INDEX charges_order ON charges (order_id);

-- A refund with null_compensation = true was asked for before any charge existed: it
-- is recorded so that a charge arriving later is refused.
CREATE TABLE refunds (
    id                uuid        PRIMARY KEY,
    order_id          uuid        NOT NULL,
    charge_id         uuid        REFERENCES charges (id),
    amount_cents      bigint      NOT NULL CHECK (amount_cents >= 0),
    null_compensation boolean     NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (null_compensation = (charge_id IS NULL)),
    CHECK (null_compensation OR amount_cents > 0)
);
CREATE INDEX refunds_order ON refunds (order_id);

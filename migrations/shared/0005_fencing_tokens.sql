-- Fencing tokens: per caller scope and holder (a saga's or a 2PC transaction's id),
-- the highest epoch any call of that holder carried. Checked and raised in the same
-- transaction as the call's work; a lower epoch is refused (409 stale-fencing-token)
-- with nothing done. Purged with the idempotency keys, after the same retention.
CREATE TABLE fencing_tokens (
    scope      text        NOT NULL,
    holder     text        NOT NULL,
    epoch      bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, holder)
);
CREATE INDEX fencing_tokens_updated ON fencing_tokens (updated_at);

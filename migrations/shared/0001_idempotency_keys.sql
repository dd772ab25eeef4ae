-- Idempotency keys, in every service's database (see shared/src/idempotency).
CREATE TYPE idempotency_state AS ENUM ('in_flight', 'completed');

CREATE TABLE idempotency_keys (
    -- The service, plus a hash of the client's identity where the request has one.
    scope            text              NOT NULL,
    key              text              NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    -- SHA-256 of method, path and canonical body.
    fingerprint      bytea             NOT NULL,
    state            idempotency_state NOT NULL,
    -- Proves which request holds an in-flight claim.
    lease_token      uuid              NOT NULL,
    -- An in-flight claim is honoured until then; afterwards a retry may take over.
    locked_until     timestamptz,
    response_status  smallint,
    response_headers jsonb,
    response_body    bytea,
    created_at       timestamptz       NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    PRIMARY KEY (scope, key),
    CHECK ((state = 'completed') = (response_status IS NOT NULL))
);

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

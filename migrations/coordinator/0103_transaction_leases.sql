-- Replicas: each 2PC transaction is driven by at most one coordinator process at a
-- time, the holder of its lease, as sagas are (see the order service's migration
-- 0106). Every log write is conditional on the holder's epoch and renews the lease;
-- the epoch goes to every participant call as its fencing token. A replica that
-- takes over an undecided transaction it did not start logs abort before telling
-- anyone (presumed abort, made final): the paused holder that wakes up cannot log
-- commit over it.
ALTER TABLE transactions
    ADD COLUMN owner            text,
    ADD COLUMN epoch            bigint NOT NULL DEFAULT 0,
    ADD COLUMN lease_expires_at timestamptz;

ALTER TABLE tx_events
    ADD COLUMN epoch bigint,
    ADD COLUMN owner text;
ALTER TYPE tx_event_kind ADD VALUE 'lease_lost';

-- The live replicas: each one's heartbeat, written by its recovery sweep.
CREATE TABLE replicas (
    id           text        PRIMARY KEY,
    url          text        NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now()
);

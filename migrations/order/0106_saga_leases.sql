-- Replicas: each saga is driven by at most one orchestrator process at a time, the
-- holder of its lease. A replica takes a saga (free, its own, or expired) by a
-- conditional update that raises the epoch; every log write it makes is conditional
-- on that epoch and renews the lease; a write that finds a newer epoch means the
-- lease was lost. The epoch goes to every participant call as its fencing token.
ALTER TABLE sagas
    ADD COLUMN owner            text,
    ADD COLUMN epoch            bigint NOT NULL DEFAULT 0,
    ADD COLUMN lease_expires_at timestamptz;

-- Which epoch (and replica) wrote each event: a `resumed` event by another replica
-- is a takeover; `lease_lost` is a replica standing down after it found a newer epoch.
ALTER TABLE saga_events
    ADD COLUMN epoch bigint,
    ADD COLUMN owner text;
ALTER TYPE saga_event_kind ADD VALUE 'lease_lost';

-- The live replicas: each one's heartbeat, written by its recovery sweep.
CREATE TABLE replicas (
    id           text        PRIMARY KEY,
    url          text        NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now()
);

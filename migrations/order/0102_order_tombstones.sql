-- A cancellation that arrived before its order was created (null compensation):
-- recorded so that the late creation is refused.
CREATE TABLE order_tombstones (
    order_id   uuid        PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);

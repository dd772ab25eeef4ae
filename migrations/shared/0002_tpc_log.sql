-- Two-phase commit, participant side: one row per global transaction id, written
-- inside the prepared transaction. After COMMIT PREPARED it exists; after ROLLBACK
-- PREPARED it never did. So a repeated commit or abort can tell what happened.
CREATE TABLE tpc_log (
    gid            text        PRIMARY KEY,
    transaction_id uuid        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

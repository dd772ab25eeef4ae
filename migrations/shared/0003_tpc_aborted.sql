-- An abort that arrived before its prepare: a prepare arriving later votes no
-- instead of holding locks for a transaction that is already over.
CREATE TABLE tpc_aborted (
    gid        text        PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);

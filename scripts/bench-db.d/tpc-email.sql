-- One participant of a 2PC checkout: the email service's prepare and commit, as
-- services/email/src/tpc.rs (routes::enqueue, the outbox row) and shared/src/tpc.rs issue them:
-- BEGIN; the id claimed in tpc_log; the participant's work; PREPARE TRANSACTION; then
-- COMMIT PREPARED. The four participants' scripts run as
-- one mix (equal weights), so a pgbench transaction is one prepared transaction.
-- Ids made once per transaction, time-ordered like Uuid::now_v7(); the SKU is one
-- of SKU-001..SKU-011, as in loadgen's uniform mix. The global
-- transaction id of PREPARE TRANSACTION cannot be a parameter: @GID@ is replaced per
-- pgbench process (one client each), and each commits before preparing again.
SELECT i.*, 'txlab_' || replace(tx_id::text, '-', '') || '_email' AS gid
FROM (SELECT bench_uuid() AS tx_id, bench_uuid() AS order_id, bench_uuid() AS row_id,
             'SKU-' || lpad((1 + floor(random() * 11))::int::text, 3, '0') AS sku) i \gset
-- shared::tpc::prepare_detached · is_prepared, is_committed, is_aborted (autocommit)
SELECT EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE gid = :gid AND database = current_database());
SELECT EXISTS (SELECT 1 FROM tpc_log WHERE gid = :gid);
SELECT EXISTS (SELECT 1 FROM tpc_aborted WHERE gid = :gid);
BEGIN;
-- prepare_in_transaction
SET LOCAL lock_timeout = '2s';
-- bound_by_deadline: what is left of the coordinator's vote timeout
SET LOCAL statement_timeout = 2900;
-- the id claimed first (the barrier against an overtaking abort), then the tombstone looked for
INSERT INTO tpc_log (gid, transaction_id) VALUES (:gid, :tx_id) ON CONFLICT DO NOTHING;
SELECT EXISTS (SELECT 1 FROM tpc_aborted WHERE gid = :gid);
-- bound_by_deadline: what is left of the coordinator's vote timeout
SET LOCAL statement_timeout = 2900;
-- routes::enqueue · db::insert_email
INSERT INTO emails (id, order_id, recipient, subject, body, traceparent)
VALUES (:row_id, :order_id, 'load1@example.com', 'Your order ' || :order_id::text || ' is confirmed',
        E'Hello,\n\nthank you for your order ' || :order_id::text || E'.\nTotal: $21.00\n\nIt is confirmed and on its way.\n\n-- txlab\n',
        '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')
ON CONFLICT (order_id, kind) DO NOTHING
RETURNING id, order_id, kind, recipient, subject, body, state, attempts, last_error, next_attempt_at, delivered_at, traceparent, created_at;
-- bound_by_deadline: what is left of the coordinator's vote timeout
SET LOCAL statement_timeout = 2900;
PREPARE TRANSACTION '@GID@_email';
-- vote yes only if Postgres holds it · is_prepared
SELECT EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE gid = :gid AND database = current_database());
-- phase two, POST /tpc/{gid}/commit · shared::tpc::finish: is_prepared, COMMIT PREPARED, is_committed
SELECT EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE gid = :gid AND database = current_database());
COMMIT PREPARED '@GID@_email';
SELECT EXISTS (SELECT 1 FROM tpc_log WHERE gid = :gid);

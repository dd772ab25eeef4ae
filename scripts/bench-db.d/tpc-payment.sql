-- One participant of a 2PC checkout: the payment service's prepare and commit, as
-- services/payment/src/tpc.rs (routes::charge) and shared/src/tpc.rs issue them:
-- BEGIN; the id claimed in tpc_log; the participant's work; PREPARE TRANSACTION; then
-- COMMIT PREPARED. The four participants' scripts run as
-- one mix (equal weights), so a pgbench transaction is one prepared transaction.
-- Ids made once per transaction, time-ordered like Uuid::now_v7(); the SKU is one
-- of SKU-001..SKU-011, as in loadgen's uniform mix. The global
-- transaction id of PREPARE TRANSACTION cannot be a parameter: @GID@ is replaced per
-- pgbench process (one client each), and each commits before preparing again.
SELECT i.*, 'txlab_' || replace(tx_id::text, '-', '') || '_payment' AS gid
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
-- routes::charge · db::lock_order, db::fetch_refunds, db::fetch_successful_charge, db::insert_charge
SELECT pg_advisory_xact_lock(hashtextextended(:order_id::text, 0));
SELECT id, order_id, charge_id, amount_cents, null_compensation, created_at FROM refunds WHERE order_id = :order_id ORDER BY created_at, id;
SELECT id, order_id, amount_cents, state, decline_code, refunded_cents, created_at FROM charges WHERE order_id = :order_id AND state = 'succeeded';
INSERT INTO charges (id, order_id, amount_cents, token, state, decline_code)
VALUES (:row_id, :order_id, 2100, 'tok_visa', 'succeeded', NULL)
RETURNING id, order_id, amount_cents, state, decline_code, refunded_cents, created_at;
-- bound_by_deadline: what is left of the coordinator's vote timeout
SET LOCAL statement_timeout = 2900;
PREPARE TRANSACTION '@GID@_payment';
-- vote yes only if Postgres holds it · is_prepared
SELECT EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE gid = :gid AND database = current_database());
-- phase two, POST /tpc/{gid}/commit · shared::tpc::finish: is_prepared, COMMIT PREPARED, is_committed
SELECT EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE gid = :gid AND database = current_database());
COMMIT PREPARED '@GID@_payment';
SELECT EXISTS (SELECT 1 FROM tpc_log WHERE gid = :gid);

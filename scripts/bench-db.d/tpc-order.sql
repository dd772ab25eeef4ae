-- One participant of a 2PC checkout: the order service's prepare and commit, as
-- services/order/src/tpc.rs (routes::create, then confirmed) and shared/src/tpc.rs issue them:
-- BEGIN; the id claimed in tpc_log; the participant's work; PREPARE TRANSACTION; then
-- COMMIT PREPARED. The four participants' scripts run as
-- one mix (equal weights), so a pgbench transaction is one prepared transaction.
-- Ids made once per transaction, time-ordered like Uuid::now_v7(); the SKU is one
-- of SKU-001..SKU-011, as in loadgen's uniform mix. The global
-- transaction id of PREPARE TRANSACTION cannot be a parameter: @GID@ is replaced per
-- pgbench process (one client each), and each commits before preparing again.
SELECT i.*, 'txlab_' || replace(tx_id::text, '-', '') || '_order' AS gid
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
-- routes::create · db::fetch_order_tombstone, db::insert_order; then db::update_order_status (confirmed)
SELECT EXISTS (SELECT 1 FROM order_tombstones WHERE order_id = :order_id);
INSERT INTO orders (id, customer_email, total_cents, payment_token, trace_id)
VALUES (:order_id, 'load1@example.com', 2100, 'tok_visa', '4bf92f3577b34da6a3ce929d0e0e4736') ON CONFLICT (id) DO NOTHING
RETURNING id, customer_email, status, reason, total_cents, payment_token, trace_id, created_at, updated_at;
INSERT INTO order_lines (order_id, sku, quantity, unit_price_cents)
SELECT :order_id, * FROM unnest(ARRAY[:sku::text], ARRAY[1]::int[], ARRAY[2100]::bigint[]);
UPDATE orders SET status = 'confirmed', reason = NULL, updated_at = now() WHERE id = :order_id
RETURNING id, customer_email, status, reason, total_cents, payment_token, trace_id, created_at, updated_at;
-- bound_by_deadline: what is left of the coordinator's vote timeout
SET LOCAL statement_timeout = 2900;
PREPARE TRANSACTION '@GID@_order';
-- vote yes only if Postgres holds it · is_prepared
SELECT EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE gid = :gid AND database = current_database());
-- phase two, POST /tpc/{gid}/commit · shared::tpc::finish: is_prepared, COMMIT PREPARED, is_committed
SELECT EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE gid = :gid AND database = current_database());
COMMIT PREPARED '@GID@_order';
SELECT EXISTS (SELECT 1 FROM tpc_log WHERE gid = :gid);

-- One participant of a 2PC checkout: the inventory service's prepare and commit, as
-- services/inventory/src/tpc.rs (routes::reserve, then sold) and shared/src/tpc.rs issue them:
-- BEGIN; the id claimed in tpc_log; the participant's work; PREPARE TRANSACTION; then
-- COMMIT PREPARED. The four participants' scripts run as
-- one mix (equal weights), so a pgbench transaction is one prepared transaction.
-- Ids made once per transaction, time-ordered like Uuid::now_v7(); the SKU is one
-- of SKU-001..SKU-011, as in loadgen's uniform mix. The global
-- transaction id of PREPARE TRANSACTION cannot be a parameter: @GID@ is replaced per
-- pgbench process (one client each), and each commits before preparing again.
SELECT i.*, 'txlab_' || replace(tx_id::text, '-', '') || '_inventory' AS gid
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
-- routes::reserve · db::fetch_reservation (locked), db::lock_products, db::insert_reservation, db::insert_reservation_lines
SET LOCAL lock_timeout = '1500ms';
SELECT order_id, state, null_compensation FROM reservations WHERE order_id = :order_id FOR UPDATE;
SELECT sku, available FROM products WHERE sku = ANY(ARRAY[:sku::text]) ORDER BY sku FOR UPDATE;
INSERT INTO reservations (order_id, state, null_compensation) VALUES (:order_id, 'held', false) ON CONFLICT (order_id) DO NOTHING;
WITH lines AS (SELECT * FROM unnest(ARRAY[:sku::text], ARRAY[1]::int[]) AS l(sku, quantity)),
     moved AS (UPDATE products p SET available = p.available - l.quantity, reserved = p.reserved + l.quantity
               FROM lines l WHERE p.sku = l.sku)
INSERT INTO reservation_lines (order_id, sku, quantity) SELECT :order_id, sku, quantity FROM lines;
-- db::update_reservation_state (committed: reserved → sold)
UPDATE products p SET sold = p.sold + l.quantity, reserved = p.reserved - l.quantity
FROM reservation_lines l WHERE l.order_id = :order_id AND p.sku = l.sku;
UPDATE reservations SET state = 'committed', updated_at = now() WHERE order_id = :order_id;
-- bound_by_deadline: what is left of the coordinator's vote timeout
SET LOCAL statement_timeout = 2900;
PREPARE TRANSACTION '@GID@_inventory';
-- vote yes only if Postgres holds it · is_prepared
SELECT EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE gid = :gid AND database = current_database());
-- phase two, POST /tpc/{gid}/commit · shared::tpc::finish: is_prepared, COMMIT PREPARED, is_committed
SELECT EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE gid = :gid AND database = current_database());
COMMIT PREPARED '@GID@_inventory';
SELECT EXISTS (SELECT 1 FROM tpc_log WHERE gid = :gid);

-- The order participant's own work inside its 2PC prepare, as services/order/src/tpc.rs (orders::create, then confirmed)
-- issues it; tpc-prepare.sql puts it in its place.
-- order  orders::create · db::fetch_order_tombstone, db::insert_order; then db::update_order_status (confirmed)
SELECT EXISTS (SELECT 1 FROM order_tombstones WHERE order_id = :order_id);
INSERT INTO orders (id, customer_email, total_cents, payment_token, trace_id)
VALUES (:order_id, 'load1@example.com', 2100, 'tok_visa', '4bf92f3577b34da6a3ce929d0e0e4736') ON CONFLICT (id) DO NOTHING
RETURNING id, customer_email, status, reason, total_cents, payment_token, trace_id, created_at, updated_at;
INSERT INTO order_lines (order_id, sku, quantity, unit_price_cents)
SELECT :order_id, * FROM unnest(ARRAY[:sku::text], ARRAY[1]::int[], ARRAY[2100]::bigint[]);
UPDATE orders SET status = 'confirmed', reason = NULL, updated_at = now() WHERE id = :order_id
RETURNING id, customer_email, status, reason, total_cents, payment_token, trace_id, created_at, updated_at;

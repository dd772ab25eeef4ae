-- The inventory participant's own work inside its 2PC prepare, as services/inventory/src/tpc.rs (stock::reserve, then sold)
-- issues it; tpc-prepare.sql puts it in its place.
-- inventory  stock::reserve · db::fetch_reservation (locked), db::lock_products, db::insert_reservation, db::insert_reservation_lines
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

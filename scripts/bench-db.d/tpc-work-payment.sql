-- The payment participant's own work inside its 2PC prepare, as services/payment/src/tpc.rs (charges::charge)
-- issues it; tpc-prepare.sql puts it in its place.
-- payment  charges::charge · db::lock_order, db::fetch_refunds, db::fetch_successful_charge, db::insert_charge
SELECT pg_advisory_xact_lock(hashtextextended(:order_id::text, 0));
SELECT id, order_id, charge_id, amount_cents, null_compensation, created_at FROM refunds WHERE order_id = :order_id ORDER BY created_at, id;
SELECT id, order_id, amount_cents, state, decline_code, refunded_cents, created_at FROM charges WHERE order_id = :order_id AND state = 'succeeded';
INSERT INTO charges (id, order_id, amount_cents, token, state, decline_code)
VALUES (:row_id, :order_id, 2100, 'tok_visa', 'succeeded', NULL)
RETURNING id, order_id, amount_cents, state, decline_code, refunded_cents, created_at;

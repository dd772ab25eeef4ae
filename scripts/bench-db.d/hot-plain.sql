-- One hot row, plain transactions: the inventory service's stock statements
-- (stock::reserve's db::lock_products, then the stock move) on a single product
-- that every transaction touches, committed at once. Compare hot-prepared.sql.
BEGIN;
-- The 2PC prepare's lock wait bound, kept in the plain run too: the two hot runs differ only by the prepare.
-- shared  participant::prepare_in_transaction
SET LOCAL lock_timeout = '2s';
-- inventory  stock::reserve · db::lock_products (then the stock move, bench-only: see tests/tests/bench_sql.rs)
SELECT sku, available FROM products WHERE sku = ANY(ARRAY['BENCH-HOT']) ORDER BY sku FOR UPDATE;
UPDATE products SET available = available - 1, sold = sold + 1 WHERE sku = 'BENCH-HOT';
COMMIT;

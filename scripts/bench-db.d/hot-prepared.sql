-- The same hot row, 2PC-style: the same statements, then PREPARE TRANSACTION and
-- COMMIT PREPARED, so the row stays locked across the prepare's flush and until the
-- commit (with no coordinator round trip in between: the database's best case).
-- @GID@ is replaced per pgbench process (one client each).
BEGIN;
-- shared  participant::prepare_in_transaction (the 2PC prepare's lock wait bound)
SET LOCAL lock_timeout = '2s';
-- inventory  stock::reserve · db::lock_products (then the stock move, bench-only: see tests/tests/bench_sql.rs)
SELECT sku, available FROM products WHERE sku = ANY(ARRAY['BENCH-HOT']) ORDER BY sku FOR UPDATE;
UPDATE products SET available = available - 1, sold = sold + 1 WHERE sku = 'BENCH-HOT';
PREPARE TRANSACTION '@GID@_hot';
COMMIT PREPARED '@GID@_hot';

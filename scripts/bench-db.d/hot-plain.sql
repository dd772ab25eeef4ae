-- One hot row, plain transactions: the inventory service's stock statements
-- (routes::reserve's db::lock_products, then the stock move) on a single product
-- that every transaction touches, committed at once. Compare hot-prepared.sql.
BEGIN;
SET LOCAL lock_timeout = '2s';
SELECT sku, available FROM products WHERE sku = ANY(ARRAY['BENCH-HOT']) ORDER BY sku FOR UPDATE;
UPDATE products SET available = available - 1, sold = sold + 1 WHERE sku = 'BENCH-HOT';
COMMIT;

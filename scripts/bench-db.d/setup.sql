-- After every service's migrations (applied in order into one scratch database):
-- what the pgbench scripts need besides the services' own schema.

-- Time-ordered ids, like Uuid::now_v7() in the services (milliseconds, then random).
CREATE FUNCTION bench_uuid() RETURNS uuid LANGUAGE sql VOLATILE AS $$
    SELECT (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
            || '7' || substr(md5(random()::text), 1, 19))::uuid
$$;

-- Stock that never runs out during a run (the invariant stocked = available +
-- reserved + sold still holds), and the hot row of hot-*.sql.
UPDATE products SET available = 1000000000, stocked = 1000000000 + reserved + sold;
INSERT INTO products (sku, name, price_cents, available, stocked)
VALUES ('BENCH-HOT', 'The hot row', 100, 2000000000, 2000000000);

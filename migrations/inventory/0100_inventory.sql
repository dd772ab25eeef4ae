-- The catalogue and its stock. `stocked` counts every unit ever put on the shelf, so
-- the conservation invariant (stocked = available + reserved + sold) is enforced by
-- the database itself, and no counter can go negative.
CREATE TABLE products (
    sku         text    PRIMARY KEY CHECK (sku ~ '^[A-Z0-9-]{1,32}$'),
    name        text    NOT NULL,
    price_cents bigint  NOT NULL CHECK (price_cents > 0),
    available   integer NOT NULL CHECK (available >= 0),
    reserved    integer NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    sold        integer NOT NULL DEFAULT 0 CHECK (sold >= 0),
    stocked     integer NOT NULL,
    CHECK (stocked = available + reserved + sold)
);

CREATE TYPE reservation_state AS ENUM ('held', 'committed', 'released');

-- One reservation per order. A release that arrives before any reservation leaves a
-- 'released' row with null_compensation = true, so a late reservation is refused.
CREATE TABLE reservations (
    order_id          uuid              PRIMARY KEY,
    state             reservation_state NOT NULL,
    null_compensation boolean           NOT NULL DEFAULT false,
    created_at        timestamptz       NOT NULL DEFAULT now(),
    updated_at        timestamptz       NOT NULL DEFAULT now()
);

CREATE TABLE reservation_lines (
    order_id uuid    NOT NULL REFERENCES reservations (order_id),
    sku      text    NOT NULL REFERENCES products (sku),
    quantity integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, sku)
);

INSERT INTO products (sku, name, price_cents, available, stocked) VALUES
    ('SKU-001', 'Espresso beans, 1 kg',        2100, 500, 500),
    ('SKU-002', 'Pour-over kettle',            4900, 200, 200),
    ('SKU-003', 'Ceramic dripper',             2400, 300, 300),
    ('SKU-004', 'Paper filters, 100',           650, 1000, 1000),
    ('SKU-005', 'Hand grinder',                8900, 150, 150),
    ('SKU-006', 'Digital scale',               3500, 250, 250),
    ('SKU-007', 'Milk frother',                2900, 200, 200),
    ('SKU-008', 'Double-wall glass, pair',     1800, 400, 400),
    ('SKU-009', 'Cold brew jar',               2700, 180, 180),
    ('SKU-010', 'Descaling tablets',            900, 800, 800),
    ('SKU-011', 'Travel mug',                  2200, 350, 350),
    ('SKU-012', 'Limited roast, numbered bag', 3900,   5,   5);

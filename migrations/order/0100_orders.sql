-- Orders. An order is created pending and ends confirmed or cancelled, never both:
-- the transition rules live in order-service's domain and are checked in SQL too.
CREATE TYPE order_status AS ENUM ('pending', 'confirmed', 'cancelled');

CREATE TABLE orders (
    id             uuid         PRIMARY KEY,
    customer_email text         NOT NULL,
    status         order_status NOT NULL DEFAULT 'pending',
    reason         text,
    total_cents    bigint       NOT NULL CHECK (total_cents > 0),
    payment_token  text         NOT NULL,
    -- The checkout's trace, for users to paste into Jaeger.
    trace_id       text,
    created_at     timestamptz  NOT NULL DEFAULT now(),
    updated_at     timestamptz  NOT NULL DEFAULT now(),
    CHECK ((status = 'cancelled') = (reason IS NOT NULL))
);
CREATE INDEX orders_newest ON orders (created_at DESC, id DESC);
CREATE INDEX orders_status_newest ON orders (status, created_at DESC);

CREATE TABLE order_lines (
    order_id         uuid    NOT NULL REFERENCES orders (id),
    sku              text    NOT NULL,
    quantity         integer NOT NULL CHECK (quantity > 0),
    unit_price_cents bigint  NOT NULL CHECK (unit_price_cents > 0),
    PRIMARY KEY (order_id, sku)
);

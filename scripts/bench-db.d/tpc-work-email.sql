-- The email participant's own work inside its 2PC prepare, as services/email/src/tpc.rs (outbox::enqueue, the outbox row)
-- issues it; tpc-prepare.sql puts it in its place.
-- email  outbox::enqueue · db::insert_email
INSERT INTO emails (id, order_id, recipient, subject, body, traceparent)
VALUES (:row_id, :order_id, 'load1@example.com', 'Your order ' || :order_id::text || ' is confirmed',
        E'Hello,\n\nthank you for your order ' || :order_id::text || E'.\nTotal: $21.00\n\nIt is confirmed and on its way.\n\n-- txlab\n',
        '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')
ON CONFLICT (order_id, kind) DO NOTHING
RETURNING id, order_id, kind, recipient, subject, body, state, attempts, last_error, next_attempt_at, delivered_at, traceparent, created_at;

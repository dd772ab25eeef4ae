-- One saga checkout whose card is declined (tok_chargeDeclined, one checkout in ten
-- in loadgen's mix), transaction for transaction, as the services issue it: the
-- same start as saga-confirmed.sql, a declined charge, then the three
-- compensations, newest first. Every statement names the
-- function it mirrors. All schemas live in one scratch database here; the services
-- use one database each on the same cluster.
--
-- Ids are made once per checkout, time-ordered like Uuid::now_v7() in the services;
-- the SKU is one of SKU-001..SKU-011, as in loadgen's uniform mix.
-- The step keys are `{saga_id}:{step}`, as the engine makes them.
SELECT i.*, 'order:' || checkout_key AS checkout_scoped,
       saga_id || ':' || 'create_order' AS key_create_order, saga_id || ':' || 'reserve_inventory' AS key_reserve_inventory,
       saga_id || ':' || 'charge_payment' AS key_charge_payment, saga_id || ':' || 'commit_inventory' AS key_commit_inventory,
       saga_id || ':' || 'confirm_order' AS key_confirm_order, saga_id || ':' || 'send_email' AS key_send_email,
       saga_id || ':' || 'charge_payment' || ':' || 'compensation' AS key_refund,
       saga_id || ':' || 'reserve_inventory' || ':' || 'compensation' AS key_release,
       saga_id || ':' || 'create_order' || ':' || 'compensation' AS key_cancel
FROM (SELECT bench_uuid() AS order_id, bench_uuid() AS saga_id, bench_uuid() AS charge_id,
             bench_uuid() AS email_id, gen_random_uuid() AS checkout_key, gen_random_uuid() AS lease,
             'SKU-' || lpad((1 + floor(random() * 11))::int::text, 3, '0') AS sku) i \gset

-- order  POST /checkout · IdempotencyStore::claim (the idempotency claim, autocommit)
INSERT INTO idempotency_keys (scope, key, fingerprint, state, lease_token, locked_until)
VALUES ('order', :checkout_key, sha256(:checkout_key::bytea), 'in_flight', :lease, now() + make_interval(secs => 10000 / 1000.0))
ON CONFLICT (scope, key) DO NOTHING;
-- order  checkout · log::fetch_saga_ids_by_key
SELECT id, order_id FROM sagas WHERE checkout_key = :checkout_scoped;
-- inventory  GET /inventory/{sku} (price_checkout) · db::fetch_product
SELECT sku, name, price_cents, available, reserved, sold, stocked FROM products WHERE sku = :sku;
-- order  log::insert_saga
BEGIN;
WITH saga AS (
    INSERT INTO sagas (id, order_id, checkout_key, request, traceparent, baggage, owner, lease_expires_at)
    VALUES (:saga_id, :order_id, :checkout_scoped,
            '{"customer_email":"load1@example.com","payment_token":"tok_chargeDeclined","items":[{"sku":"SKU-001","quantity":1,"unit_price_cents":2100}],"total_cents":2100}',
            '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', NULL, 'order-1-bench', now() + make_interval(secs => 5))
    ON CONFLICT (checkout_key) DO NOTHING RETURNING id, order_id),
started AS (INSERT INTO saga_events (saga_id, kind) SELECT id, 'saga_started' FROM saga)
SELECT id, order_id FROM saga;
INSERT INTO saga_steps (saga_id, position, step)
SELECT :saga_id, (ordinality - 1)::smallint, step
FROM unnest(ARRAY['create_order','reserve_inventory','charge_payment','commit_inventory','confirm_order','send_email']) WITH ORDINALITY AS s(step, ordinality);
COMMIT;
-- order  Engine::run · log::take_saga
WITH old AS (SELECT id, order_id, status, reason, parked_reason, parked_compensating, parked_on, request, traceparent, baggage, checkout_key, owner, epoch, lease_expires_at
             FROM sagas WHERE id = :saga_id FOR UPDATE),
taken AS (
    UPDATE sagas s SET owner = 'order-1-bench', epoch = old.epoch + 1, lease_expires_at = now() + make_interval(secs => 5)
    FROM old
    WHERE s.id = old.id AND old.status IN ('running', 'compensating', 'parked')
      AND (old.owner IS NULL OR old.owner = 'order-1-bench' OR old.lease_expires_at IS NULL OR old.lease_expires_at <= now())
    RETURNING s.epoch)
SELECT old.*, (SELECT epoch FROM taken) AS taken_epoch FROM old;
SELECT status, attempts, compensation_attempts, last_error FROM saga_steps WHERE saga_id = :saga_id ORDER BY position;

-- step 0 create_order ---------------------------------------------------------
-- order  Engine::drive · log::update_step (before the attempt)
WITH lease AS (
    UPDATE sagas SET lease_expires_at = now() + make_interval(secs => 5)
    WHERE id = :saga_id AND (NOT true OR epoch = 1) RETURNING id),
step AS (
    UPDATE saga_steps SET status = 'running', attempts = 1, compensation_attempts = 0, last_error = NULL, updated_at = now()
    WHERE saga_id = (SELECT id FROM lease) AND position = 0 RETURNING saga_id, step)
INSERT INTO saga_events (saga_id, kind, step, attempt, outcome, status_code, detail, duration_ms, epoch, owner)
SELECT saga_id, 'step_started', step, 1, NULL, NULL, NULL, NULL, 1, 'order-1-bench' FROM step;
-- order  POST /orders · IdempotencyStore::claim (the idempotency claim)
INSERT INTO idempotency_keys (scope, key, fingerprint, state, lease_token, locked_until)
VALUES ('order', :key_create_order, sha256(:saga_id::bytea), 'in_flight', :lease, now() + make_interval(secs => 10000 / 1000.0))
ON CONFLICT (scope, key) DO NOTHING;
BEGIN;
-- shared  store::check_fence (the call's Fencing-Token, checked in its unit of work)
INSERT INTO fencing_tokens (scope, holder, epoch) VALUES ('bench', :saga_id::text, 1)
ON CONFLICT (scope, holder) DO UPDATE SET epoch = EXCLUDED.epoch, updated_at = now()
WHERE fencing_tokens.epoch <= EXCLUDED.epoch
RETURNING epoch;
-- order  orders::create · db::fetch_order_tombstone, db::insert_order
SELECT EXISTS (SELECT 1 FROM order_tombstones WHERE order_id = :order_id);
INSERT INTO orders (id, customer_email, total_cents, payment_token, trace_id)
VALUES (:order_id, 'load1@example.com', 2100, 'tok_chargeDeclined', '4bf92f3577b34da6a3ce929d0e0e4736') ON CONFLICT (id) DO NOTHING
RETURNING id, customer_email, status, reason, total_cents, payment_token, trace_id, created_at, updated_at;
INSERT INTO order_lines (order_id, sku, quantity, unit_price_cents)
SELECT :order_id, * FROM unnest(ARRAY[:sku::text], ARRAY[1]::int[], ARRAY[2100]::bigint[]);
-- view::load_existing
SELECT id FROM sagas WHERE order_id = :order_id;
SELECT id, order_id, status, reason, parked_reason, parked_compensating, parked_on, request, traceparent, baggage, checkout_key, owner, epoch, lease_expires_at FROM sagas WHERE id = :saga_id;
SELECT status, attempts, compensation_attempts, last_error FROM saga_steps WHERE saga_id = :saga_id ORDER BY position;
SELECT id, customer_email, status, reason, total_cents, payment_token, trace_id, created_at, updated_at FROM orders WHERE id = :order_id;
SELECT sku, quantity, unit_price_cents FROM order_lines WHERE order_id = :order_id ORDER BY sku;
-- IdempotencyStore::complete, then the unit of work commits
UPDATE idempotency_keys SET state = 'completed', locked_until = NULL, completed_at = now(),
       response_status = 201, response_headers = '[["content-type","application/json"]]', response_body = convert_to(repeat('x', @BODY_ORDER@), 'UTF8')
WHERE scope = 'order' AND key = :key_create_order AND lease_token = :lease AND state = 'in_flight';
COMMIT;
-- order  log::update_step (after the outcome)
WITH lease AS (
    UPDATE sagas SET lease_expires_at = now() + make_interval(secs => 5)
    WHERE id = :saga_id AND (NOT true OR epoch = 1) RETURNING id),
step AS (
    UPDATE saga_steps SET status = 'succeeded', attempts = 1, compensation_attempts = 0, last_error = NULL, updated_at = now()
    WHERE saga_id = (SELECT id FROM lease) AND position = 0 RETURNING saga_id, step)
INSERT INTO saga_events (saga_id, kind, step, attempt, outcome, status_code, detail, duration_ms, epoch, owner)
SELECT saga_id, 'step_ended', step, 1, 'succeeded', 201, NULL, 12.5, 1, 'order-1-bench' FROM step;

-- step 1 reserve_inventory ----------------------------------------------------
-- order  Engine::drive · log::update_step
WITH lease AS (
    UPDATE sagas SET lease_expires_at = now() + make_interval(secs => 5)
    WHERE id = :saga_id AND (NOT true OR epoch = 1) RETURNING id),
step AS (
    UPDATE saga_steps SET status = 'running', attempts = 1, compensation_attempts = 0, last_error = NULL, updated_at = now()
    WHERE saga_id = (SELECT id FROM lease) AND position = 1 RETURNING saga_id, step)
INSERT INTO saga_events (saga_id, kind, step, attempt, outcome, status_code, detail, duration_ms, epoch, owner)
SELECT saga_id, 'step_started', step, 1, NULL, NULL, NULL, NULL, 1, 'order-1-bench' FROM step;
-- inventory  POST /reservations · IdempotencyStore::claim (the idempotency claim)
INSERT INTO idempotency_keys (scope, key, fingerprint, state, lease_token, locked_until)
VALUES ('inventory', :key_reserve_inventory, sha256(:saga_id::bytea), 'in_flight', :lease, now() + make_interval(secs => 10000 / 1000.0))
ON CONFLICT (scope, key) DO NOTHING;
BEGIN;
-- shared  store::check_fence (the call's Fencing-Token, checked in its unit of work)
INSERT INTO fencing_tokens (scope, holder, epoch) VALUES ('bench', :saga_id::text, 1)
ON CONFLICT (scope, holder) DO UPDATE SET epoch = EXCLUDED.epoch, updated_at = now()
WHERE fencing_tokens.epoch <= EXCLUDED.epoch
RETURNING epoch;
-- inventory  stock::reserve · db::fetch_reservation (locked), db::lock_products, db::insert_reservation, db::insert_reservation_lines
SET LOCAL lock_timeout = '1500ms';
SELECT order_id, state, null_compensation FROM reservations WHERE order_id = :order_id FOR UPDATE;
SELECT sku, available FROM products WHERE sku = ANY(ARRAY[:sku::text]) ORDER BY sku FOR UPDATE;
INSERT INTO reservations (order_id, state, null_compensation) VALUES (:order_id, 'held', false) ON CONFLICT (order_id) DO NOTHING;
WITH lines AS (SELECT * FROM unnest(ARRAY[:sku::text], ARRAY[1]::int[]) AS l(sku, quantity)),
     moved AS (UPDATE products p SET available = p.available - l.quantity, reserved = p.reserved + l.quantity
               FROM lines l WHERE p.sku = l.sku)
INSERT INTO reservation_lines (order_id, sku, quantity) SELECT :order_id, sku, quantity FROM lines;
-- stock::reservation · db::fetch_reservation_lines
SELECT sku, quantity FROM reservation_lines WHERE order_id = :order_id ORDER BY sku;
-- inventory  IdempotencyStore::complete (the answer stored in the unit of work)
UPDATE idempotency_keys SET state = 'completed', locked_until = NULL, completed_at = now(),
       response_status = 201, response_headers = '[["content-type","application/json"]]', response_body = convert_to(repeat('x', @BODY_INVENTORY@), 'UTF8')
WHERE scope = 'inventory' AND key = :key_reserve_inventory AND lease_token = :lease AND state = 'in_flight';
COMMIT;
-- order  Engine::drive · log::update_step
WITH lease AS (
    UPDATE sagas SET lease_expires_at = now() + make_interval(secs => 5)
    WHERE id = :saga_id AND (NOT true OR epoch = 1) RETURNING id),
step AS (
    UPDATE saga_steps SET status = 'succeeded', attempts = 1, compensation_attempts = 0, last_error = NULL, updated_at = now()
    WHERE saga_id = (SELECT id FROM lease) AND position = 1 RETURNING saga_id, step)
INSERT INTO saga_events (saga_id, kind, step, attempt, outcome, status_code, detail, duration_ms, epoch, owner)
SELECT saga_id, 'step_ended', step, 1, 'succeeded', 201, NULL, 12.5, 1, 'order-1-bench' FROM step;

-- step 2 charge_payment (the pivot), declined ----------------------------------
-- order  Engine::drive · log::update_step
WITH lease AS (
    UPDATE sagas SET lease_expires_at = now() + make_interval(secs => 5)
    WHERE id = :saga_id AND (NOT true OR epoch = 1) RETURNING id),
step AS (
    UPDATE saga_steps SET status = 'running', attempts = 1, compensation_attempts = 0, last_error = NULL, updated_at = now()
    WHERE saga_id = (SELECT id FROM lease) AND position = 2 RETURNING saga_id, step)
INSERT INTO saga_events (saga_id, kind, step, attempt, outcome, status_code, detail, duration_ms, epoch, owner)
SELECT saga_id, 'step_started', step, 1, NULL, NULL, NULL, NULL, 1, 'order-1-bench' FROM step;
-- payment  POST /charges · IdempotencyStore::claim (the idempotency claim)
INSERT INTO idempotency_keys (scope, key, fingerprint, state, lease_token, locked_until)
VALUES ('payment', :key_charge_payment, sha256(:saga_id::bytea), 'in_flight', :lease, now() + make_interval(secs => 10000 / 1000.0))
ON CONFLICT (scope, key) DO NOTHING;
BEGIN;
-- shared  store::check_fence (the call's Fencing-Token, checked in its unit of work)
INSERT INTO fencing_tokens (scope, holder, epoch) VALUES ('bench', :saga_id::text, 1)
ON CONFLICT (scope, holder) DO UPDATE SET epoch = EXCLUDED.epoch, updated_at = now()
WHERE fencing_tokens.epoch <= EXCLUDED.epoch
RETURNING epoch;
-- payment  charges::charge · db::lock_order, db::fetch_refunds, db::fetch_successful_charge, db::insert_charge (declined)
SELECT pg_advisory_xact_lock(hashtextextended(:order_id::text, 0));
SELECT id, order_id, charge_id, amount_cents, null_compensation, created_at FROM refunds WHERE order_id = :order_id ORDER BY created_at, id;
SELECT id, order_id, amount_cents, state, decline_code, refunded_cents, created_at FROM charges WHERE order_id = :order_id AND state = 'succeeded';
INSERT INTO charges (id, order_id, amount_cents, token, state, decline_code)
VALUES (:charge_id, :order_id, 2100, 'tok_chargeDeclined', 'declined', 'card_declined')
RETURNING id, order_id, amount_cents, state, decline_code, refunded_cents, created_at;
-- payment  IdempotencyStore::complete (a 402 is a business outcome: stored, and the declined charge commits with it)
UPDATE idempotency_keys SET state = 'completed', locked_until = NULL, completed_at = now(),
       response_status = 402, response_headers = '[["content-type","application/json"]]', response_body = convert_to(repeat('x', @BODY_DECLINE@), 'UTF8')
WHERE scope = 'payment' AND key = :key_charge_payment AND lease_token = :lease AND state = 'in_flight';
COMMIT;
-- order  Engine::drive · log::update_step
WITH lease AS (
    UPDATE sagas SET lease_expires_at = now() + make_interval(secs => 5)
    WHERE id = :saga_id AND (NOT true OR epoch = 1) RETURNING id),
step AS (
    UPDATE saga_steps SET status = 'failed', attempts = 1, compensation_attempts = 0, last_error = '402 payment-declined: the card was declined: card_declined', updated_at = now()
    WHERE saga_id = (SELECT id FROM lease) AND position = 2 RETURNING saga_id, step)
INSERT INTO saga_events (saga_id, kind, step, attempt, outcome, status_code, detail, duration_ms, epoch, owner)
SELECT saga_id, 'step_ended', step, 1, 'refused', 402, '402 payment-declined: the card was declined: card_declined', 12.5, 1, 'order-1-bench' FROM step;
-- order  log::update_saga (running → compensating)
WITH saga AS (
    UPDATE sagas SET status = 'compensating', reason = '402 payment-declined: the card was declined: card_declined', parked_reason = NULL,
           parked_compensating = false, parked_on = NULL, next_attempt_at = now() + make_interval(secs => 0), updated_at = now(),
           lease_expires_at = CASE WHEN false THEN now() ELSE now() + make_interval(secs => 5) END
    WHERE id = :saga_id AND (NOT true OR epoch = 1) RETURNING id)
INSERT INTO saga_events (saga_id, kind, status, detail, participant, epoch, owner)
SELECT id, 'status_changed', 'compensating', '402 payment-declined: the card was declined: card_declined', NULL, 1, 'order-1-bench' FROM saga;

-- compensate step 2: POST /refunds (nothing was charged: a null compensation) ----
-- order  Engine::drive · log::update_step
WITH lease AS (
    UPDATE sagas SET lease_expires_at = now() + make_interval(secs => 5)
    WHERE id = :saga_id AND (NOT true OR epoch = 1) RETURNING id),
step AS (
    UPDATE saga_steps SET status = 'compensating', attempts = 1, compensation_attempts = 1, last_error = '402 payment-declined: the card was declined: card_declined', updated_at = now()
    WHERE saga_id = (SELECT id FROM lease) AND position = 2 RETURNING saga_id, step)
INSERT INTO saga_events (saga_id, kind, step, attempt, outcome, status_code, detail, duration_ms, epoch, owner)
SELECT saga_id, 'compensation_started', step, 1, NULL, NULL, NULL, NULL, 1, 'order-1-bench' FROM step;
-- payment  IdempotencyStore::claim (the idempotency claim)
INSERT INTO idempotency_keys (scope, key, fingerprint, state, lease_token, locked_until)
VALUES ('payment', :key_refund, sha256(:saga_id::bytea), 'in_flight', :lease, now() + make_interval(secs => 10000 / 1000.0))
ON CONFLICT (scope, key) DO NOTHING;
BEGIN;
-- shared  store::check_fence (the call's Fencing-Token, checked in its unit of work)
INSERT INTO fencing_tokens (scope, holder, epoch) VALUES ('bench', :saga_id::text, 1)
ON CONFLICT (scope, holder) DO UPDATE SET epoch = EXCLUDED.epoch, updated_at = now()
WHERE fencing_tokens.epoch <= EXCLUDED.epoch
RETURNING epoch;
-- payment  charges::refund · db::lock_order, db::fetch_successful_charge, db::fetch_refunds, db::insert_refund
SELECT pg_advisory_xact_lock(hashtextextended(:order_id::text, 0));
SELECT id, order_id, amount_cents, state, decline_code, refunded_cents, created_at FROM charges WHERE order_id = :order_id AND state = 'succeeded';
SELECT id, order_id, charge_id, amount_cents, null_compensation, created_at FROM refunds WHERE order_id = :order_id ORDER BY created_at, id;
INSERT INTO refunds (id, order_id, charge_id, amount_cents, null_compensation)
VALUES (:email_id, :order_id, NULL, 0, true)
RETURNING id, order_id, charge_id, amount_cents, null_compensation, created_at;
-- payment  IdempotencyStore::complete (the answer stored in the unit of work)
UPDATE idempotency_keys SET state = 'completed', locked_until = NULL, completed_at = now(),
       response_status = 200, response_headers = '[["content-type","application/json"]]', response_body = convert_to(repeat('x', @BODY_PAYMENT@), 'UTF8')
WHERE scope = 'payment' AND key = :key_refund AND lease_token = :lease AND state = 'in_flight';
COMMIT;
-- order  Engine::drive · log::update_step
WITH lease AS (
    UPDATE sagas SET lease_expires_at = now() + make_interval(secs => 5)
    WHERE id = :saga_id AND (NOT true OR epoch = 1) RETURNING id),
step AS (
    UPDATE saga_steps SET status = 'compensated', attempts = 1, compensation_attempts = 1, last_error = '402 payment-declined: the card was declined: card_declined', updated_at = now()
    WHERE saga_id = (SELECT id FROM lease) AND position = 2 RETURNING saga_id, step)
INSERT INTO saga_events (saga_id, kind, step, attempt, outcome, status_code, detail, duration_ms, epoch, owner)
SELECT saga_id, 'compensation_ended', step, 1, 'succeeded', 200, NULL, 12.5, 1, 'order-1-bench' FROM step;

-- compensate step 1: POST /reservations/{id}/release ---------------------------
-- order  Engine::drive · log::update_step
WITH lease AS (
    UPDATE sagas SET lease_expires_at = now() + make_interval(secs => 5)
    WHERE id = :saga_id AND (NOT true OR epoch = 1) RETURNING id),
step AS (
    UPDATE saga_steps SET status = 'compensating', attempts = 1, compensation_attempts = 1, last_error = NULL, updated_at = now()
    WHERE saga_id = (SELECT id FROM lease) AND position = 1 RETURNING saga_id, step)
INSERT INTO saga_events (saga_id, kind, step, attempt, outcome, status_code, detail, duration_ms, epoch, owner)
SELECT saga_id, 'compensation_started', step, 1, NULL, NULL, NULL, NULL, 1, 'order-1-bench' FROM step;
-- inventory  IdempotencyStore::claim (the idempotency claim)
INSERT INTO idempotency_keys (scope, key, fingerprint, state, lease_token, locked_until)
VALUES ('inventory', :key_release, sha256(:saga_id::bytea), 'in_flight', :lease, now() + make_interval(secs => 10000 / 1000.0))
ON CONFLICT (scope, key) DO NOTHING;
BEGIN;
-- shared  store::check_fence (the call's Fencing-Token, checked in its unit of work)
INSERT INTO fencing_tokens (scope, holder, epoch) VALUES ('bench', :saga_id::text, 1)
ON CONFLICT (scope, holder) DO UPDATE SET epoch = EXCLUDED.epoch, updated_at = now()
WHERE fencing_tokens.epoch <= EXCLUDED.epoch
RETURNING epoch;
-- inventory  stock::release · db::insert_reservation (conflicts: it exists), db::fetch_reservation (locked),
-- db::update_reservation_state (released), db::fetch_reservation_lines
INSERT INTO reservations (order_id, state, null_compensation) VALUES (:order_id, 'released', true) ON CONFLICT (order_id) DO NOTHING;
SELECT order_id, state, null_compensation FROM reservations WHERE order_id = :order_id FOR UPDATE;
UPDATE products p SET available = p.available + l.quantity, reserved = p.reserved - l.quantity
FROM reservation_lines l WHERE l.order_id = :order_id AND p.sku = l.sku;
UPDATE reservations SET state = 'released', updated_at = now() WHERE order_id = :order_id;
SELECT sku, quantity FROM reservation_lines WHERE order_id = :order_id ORDER BY sku;
-- inventory  IdempotencyStore::complete (the answer stored in the unit of work)
UPDATE idempotency_keys SET state = 'completed', locked_until = NULL, completed_at = now(),
       response_status = 200, response_headers = '[["content-type","application/json"]]', response_body = convert_to(repeat('x', @BODY_INVENTORY@), 'UTF8')
WHERE scope = 'inventory' AND key = :key_release AND lease_token = :lease AND state = 'in_flight';
COMMIT;
-- order  Engine::drive · log::update_step
WITH lease AS (
    UPDATE sagas SET lease_expires_at = now() + make_interval(secs => 5)
    WHERE id = :saga_id AND (NOT true OR epoch = 1) RETURNING id),
step AS (
    UPDATE saga_steps SET status = 'compensated', attempts = 1, compensation_attempts = 1, last_error = NULL, updated_at = now()
    WHERE saga_id = (SELECT id FROM lease) AND position = 1 RETURNING saga_id, step)
INSERT INTO saga_events (saga_id, kind, step, attempt, outcome, status_code, detail, duration_ms, epoch, owner)
SELECT saga_id, 'compensation_ended', step, 1, 'succeeded', 200, NULL, 12.5, 1, 'order-1-bench' FROM step;

-- compensate step 0: POST /orders/{id}/cancel -----------------------------------
-- order  Engine::drive · log::update_step
WITH lease AS (
    UPDATE sagas SET lease_expires_at = now() + make_interval(secs => 5)
    WHERE id = :saga_id AND (NOT true OR epoch = 1) RETURNING id),
step AS (
    UPDATE saga_steps SET status = 'compensating', attempts = 1, compensation_attempts = 1, last_error = NULL, updated_at = now()
    WHERE saga_id = (SELECT id FROM lease) AND position = 0 RETURNING saga_id, step)
INSERT INTO saga_events (saga_id, kind, step, attempt, outcome, status_code, detail, duration_ms, epoch, owner)
SELECT saga_id, 'compensation_started', step, 1, NULL, NULL, NULL, NULL, 1, 'order-1-bench' FROM step;
-- order  IdempotencyStore::claim (the idempotency claim)
INSERT INTO idempotency_keys (scope, key, fingerprint, state, lease_token, locked_until)
VALUES ('order', :key_cancel, sha256(:saga_id::bytea), 'in_flight', :lease, now() + make_interval(secs => 10000 / 1000.0))
ON CONFLICT (scope, key) DO NOTHING;
BEGIN;
-- shared  store::check_fence (the call's Fencing-Token, checked in its unit of work)
INSERT INTO fencing_tokens (scope, holder, epoch) VALUES ('bench', :saga_id::text, 1)
ON CONFLICT (scope, holder) DO UPDATE SET epoch = EXCLUDED.epoch, updated_at = now()
WHERE fencing_tokens.epoch <= EXCLUDED.epoch
RETURNING epoch;
-- order  orders::transition · db::fetch_order (locked), db::update_order_status (cancelled), view::load_existing
SELECT id, customer_email, status, reason, total_cents, payment_token, trace_id, created_at, updated_at FROM orders WHERE id = :order_id FOR UPDATE;
UPDATE orders SET status = 'cancelled', reason = '402 payment-declined: the card was declined: card_declined', updated_at = now() WHERE id = :order_id
RETURNING id, customer_email, status, reason, total_cents, payment_token, trace_id, created_at, updated_at;
SELECT id FROM sagas WHERE order_id = :order_id;
SELECT id, order_id, status, reason, parked_reason, parked_compensating, parked_on, request, traceparent, baggage, checkout_key, owner, epoch, lease_expires_at FROM sagas WHERE id = :saga_id;
SELECT status, attempts, compensation_attempts, last_error FROM saga_steps WHERE saga_id = :saga_id ORDER BY position;
SELECT id, customer_email, status, reason, total_cents, payment_token, trace_id, created_at, updated_at FROM orders WHERE id = :order_id;
SELECT sku, quantity, unit_price_cents FROM order_lines WHERE order_id = :order_id ORDER BY sku;
-- order  IdempotencyStore::complete (the answer stored in the unit of work)
UPDATE idempotency_keys SET state = 'completed', locked_until = NULL, completed_at = now(),
       response_status = 200, response_headers = '[["content-type","application/json"]]', response_body = convert_to(repeat('x', @BODY_ORDER@), 'UTF8')
WHERE scope = 'order' AND key = :key_cancel AND lease_token = :lease AND state = 'in_flight';
COMMIT;
-- order  Engine::drive · log::update_step
WITH lease AS (
    UPDATE sagas SET lease_expires_at = now() + make_interval(secs => 5)
    WHERE id = :saga_id AND (NOT true OR epoch = 1) RETURNING id),
step AS (
    UPDATE saga_steps SET status = 'compensated', attempts = 1, compensation_attempts = 1, last_error = NULL, updated_at = now()
    WHERE saga_id = (SELECT id FROM lease) AND position = 0 RETURNING saga_id, step)
INSERT INTO saga_events (saga_id, kind, step, attempt, outcome, status_code, detail, duration_ms, epoch, owner)
SELECT saga_id, 'compensation_ended', step, 1, 'succeeded', 200, NULL, 12.5, 1, 'order-1-bench' FROM step;

-- the end -----------------------------------------------------------------------
-- order  log::update_saga (compensating → cancelled)
WITH saga AS (
    UPDATE sagas SET status = 'cancelled', reason = '402 payment-declined: the card was declined: card_declined', parked_reason = NULL,
           parked_compensating = false, parked_on = NULL, next_attempt_at = now() + make_interval(secs => 0), updated_at = now(),
           lease_expires_at = CASE WHEN true THEN now() ELSE now() + make_interval(secs => 5) END
    WHERE id = :saga_id AND (NOT true OR epoch = 1) RETURNING id)
INSERT INTO saga_events (saga_id, kind, status, detail, participant, epoch, owner)
SELECT id, 'status_changed', 'cancelled', '402 payment-declined: the card was declined: card_declined', NULL, 1, 'order-1-bench' FROM saga;
-- order  checkout · view::load_existing (autocommit reads on one connection)
SELECT id FROM sagas WHERE order_id = :order_id;
SELECT id, order_id, status, reason, parked_reason, parked_compensating, parked_on, request, traceparent, baggage, checkout_key, owner, epoch, lease_expires_at FROM sagas WHERE id = :saga_id;
SELECT status, attempts, compensation_attempts, last_error FROM saga_steps WHERE saga_id = :saga_id ORDER BY position;
SELECT id, customer_email, status, reason, total_cents, payment_token, trace_id, created_at, updated_at FROM orders WHERE id = :order_id;
SELECT sku, quantity, unit_price_cents FROM order_lines WHERE order_id = :order_id ORDER BY sku;
-- order  checkout · IdempotencyStore::complete (the checkout's stored answer: an idempotency commit without a unit of work)
BEGIN;
UPDATE idempotency_keys SET state = 'completed', locked_until = NULL, completed_at = now(),
       response_status = 201, response_headers = '[["content-type","application/json"]]', response_body = convert_to(repeat('x', @BODY_CHECKOUT@), 'UTF8')
WHERE scope = 'order' AND key = :checkout_key AND lease_token = :lease AND state = 'in_flight';
COMMIT;

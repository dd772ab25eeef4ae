-- The email dispatcher delivering one confirmation (after the checkout answered;
-- appended to saga-confirmed.sql for throughput). The dispatcher claims every due
-- email in one statement per poll; here each checkout claims its own.
-- email  dispatcher · db::claim_due_emails
UPDATE emails SET locked_until = now() + make_interval(secs => 60)
WHERE id IN (SELECT id FROM emails
             WHERE state = 'pending' AND next_attempt_at <= now()
               AND (locked_until IS NULL OR locked_until < now()) AND id = :email_id
             ORDER BY next_attempt_at LIMIT 100
             FOR UPDATE SKIP LOCKED)
RETURNING id, order_id, kind, recipient, subject, body, state, attempts, last_error, next_attempt_at, delivered_at, traceparent, created_at;
-- email  dispatcher · db::update_email_delivered
UPDATE emails SET state = 'delivered', attempts = attempts + 1, delivered_at = now(),
       locked_until = NULL, last_error = NULL WHERE id = :email_id;

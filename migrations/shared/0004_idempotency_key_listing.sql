-- GET /admin/idempotency-keys: the keys with a prefix (a saga's or a transaction's
-- id), read a page at a time from this index, with how often each stored response was
-- replayed.
ALTER TABLE idempotency_keys ADD COLUMN replays integer NOT NULL DEFAULT 0;
CREATE INDEX idempotency_keys_by_key ON idempotency_keys (key text_pattern_ops, scope text_pattern_ops);

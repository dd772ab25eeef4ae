-- One participant of a 2PC checkout, prepare and commit, as shared/participant/src/lib.rs issues
-- them: BEGIN; the id claimed in tpc_log; the participant's own work (the statements
-- of tpc-work-<participant>.sql, put in at @WORK@); PREPARE TRANSACTION; then COMMIT
-- PREPARED. scripts/bench-db makes one script per participant from this one
-- (@PARTICIPANT@) and runs the four as one mix (equal weights), so a pgbench
-- transaction is one prepared transaction. Ids made once per transaction,
-- time-ordered like Uuid::now_v7(); the SKU is one of SKU-001..SKU-011, as in
-- loadgen's uniform mix. The global transaction id of PREPARE TRANSACTION cannot be a
-- parameter: @GID@ is replaced per pgbench process (one client each), and each
-- commits before preparing again.
SELECT i.*, 'txlab_' || replace(tx_id::text, '-', '') || '_@PARTICIPANT@' AS gid
FROM (SELECT bench_uuid() AS tx_id, bench_uuid() AS order_id, bench_uuid() AS row_id,
             'SKU-' || lpad((1 + floor(random() * 11))::int::text, 3, '0') AS sku) i \gset
-- shared  participant::prepare_detached · participant::is_prepared, participant::is_committed, participant::is_aborted (autocommit)
SELECT EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE gid = :gid AND database = current_database());
SELECT EXISTS (SELECT 1 FROM tpc_log WHERE gid = :gid);
SELECT EXISTS (SELECT 1 FROM tpc_aborted WHERE gid = :gid);
BEGIN;
-- shared  participant::prepare_in_transaction (the lock wait bound)
SET LOCAL lock_timeout = '2s';
-- shared  participant::bound_by_deadline (what is left of the coordinator's vote timeout)
SET LOCAL statement_timeout = 2900;
-- shared  participant::prepare_in_transaction · participant::insert_claim (the id claimed first, the barrier against an overtaking abort),
-- participant::is_aborted (then the tombstone looked for)
INSERT INTO tpc_log (gid, transaction_id) VALUES (:gid, :tx_id) ON CONFLICT DO NOTHING;
SELECT EXISTS (SELECT 1 FROM tpc_aborted WHERE gid = :gid);
-- shared  participant::bound_by_deadline (what is left of the coordinator's vote timeout)
SET LOCAL statement_timeout = 2900;
-- @WORK@
-- shared  participant::bound_by_deadline (what is left of the coordinator's vote timeout)
SET LOCAL statement_timeout = 2900;
PREPARE TRANSACTION '@GID@_@PARTICIPANT@';
-- shared  participant::prepare_detached · participant::is_prepared (vote yes only if Postgres holds it)
SELECT EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE gid = :gid AND database = current_database());
-- shared  phase two, POST /tpc/{gid}/commit · participant::finish (COMMIT PREPARED), participant::is_committed
COMMIT PREPARED '@GID@_@PARTICIPANT@';
SELECT EXISTS (SELECT 1 FROM tpc_log WHERE gid = :gid);

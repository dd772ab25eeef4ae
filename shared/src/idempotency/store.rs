//! The `idempotency_keys` table: claims with a lease, stored responses, release, purge.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The state of a key; a Postgres enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "idempotency_state", rename_all = "snake_case")]
pub enum KeyState {
    /// Claimed by a request that has not finished; guarded by `locked_until`.
    InFlight,
    /// Finished; the stored response is replayed.
    Completed,
}

/// A request's hold on a key, proven by its lease token.
#[derive(Debug, Clone)]
pub struct Claim {
    pub scope: String,
    pub key: String,
    pub token: Uuid,
}

/// A response as stored: replayed byte for byte.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What trying to claim a key found.
#[derive(Debug)]
pub enum ClaimOutcome {
    Claimed(Claim),
    Completed(StoredResponse),
    FingerprintMismatch,
    InFlight { retry_after: Duration },
}

#[derive(sqlx::FromRow)]
struct ExistingKey {
    fingerprint: Vec<u8>,
    state: KeyState,
    lease_remaining_ms: Option<f64>,
    response_status: Option<i16>,
    response_headers: Option<sqlx::types::Json<Vec<(String, String)>>>,
    response_body: Option<Vec<u8>>,
}

/// The store of one service's keys (app data).
#[derive(Debug, Clone)]
pub struct IdempotencyStore {
    pub pool: PgPool,
    /// The service's name: keys are scoped per service (and client identity).
    pub service: &'static str,
    pub lease: Duration,
    /// `FENCING`: whether a call's `Fencing-Token` is checked.
    pub fencing: bool,
}

impl IdempotencyStore {
    #[tracing::instrument(name = "idempotency.claim", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "INSERT"))]
    pub async fn claim(&self, scope: &str, key: &str, fingerprint: &[u8]) -> Result<ClaimOutcome, sqlx::Error> {
        let lease_ms = self.lease.as_millis() as f64;
        // A claim can vanish between the INSERT and the SELECT (released after an
        // error); try again a few times before calling it in flight.
        for _ in 0..3 {
            let token = Uuid::new_v4();
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (scope, key, fingerprint, state, lease_token, locked_until)
                 VALUES ($1, $2, $3, 'in_flight', $4, now() + make_interval(secs => $5 / 1000.0))
                 ON CONFLICT (scope, key) DO NOTHING",
            )
            .bind(scope)
            .bind(key)
            .bind(fingerprint)
            .bind(token)
            .bind(lease_ms)
            .execute(&self.pool)
            .await?
            .rows_affected();
            let claim = Claim {
                scope: scope.to_owned(),
                key: key.to_owned(),
                token,
            };
            if inserted == 1 {
                return Ok(ClaimOutcome::Claimed(claim));
            }
            // A retry of a completed request is answered from the stored response:
            // counted as a replay by the same statement.
            let existing: Option<ExistingKey> = sqlx::query_as(
                "WITH replayed AS (
                     UPDATE idempotency_keys SET replays = replays + 1
                     WHERE scope = $1 AND key = $2 AND state = 'completed' AND fingerprint = $3)
                 SELECT fingerprint, state,
                        (extract(epoch FROM (locked_until - now())) * 1000)::float8 AS lease_remaining_ms,
                        response_status, response_headers, response_body
                 FROM idempotency_keys WHERE scope = $1 AND key = $2",
            )
            .bind(scope)
            .bind(key)
            .bind(fingerprint)
            .fetch_optional(&self.pool)
            .await?;
            let Some(existing) = existing else { continue };
            if existing.fingerprint != fingerprint {
                return Ok(ClaimOutcome::FingerprintMismatch);
            }
            match existing.state {
                KeyState::Completed => {
                    return Ok(ClaimOutcome::Completed(StoredResponse {
                        status: existing.response_status.unwrap_or(500) as u16,
                        headers: existing.response_headers.map(|h| h.0).unwrap_or_default(),
                        body: existing.response_body.unwrap_or_default(),
                    }));
                }
                KeyState::InFlight => {
                    let remaining = existing.lease_remaining_ms.unwrap_or(0.0);
                    if remaining > 0.0 {
                        return Ok(ClaimOutcome::InFlight {
                            retry_after: Duration::from_millis(remaining as u64),
                        });
                    }
                    // The holder's lease ran out (it crashed or hangs): take over.
                    let taken = sqlx::query(
                        "UPDATE idempotency_keys
                         SET lease_token = $3, locked_until = now() + make_interval(secs => $4 / 1000.0)
                         WHERE scope = $1 AND key = $2 AND state = 'in_flight' AND locked_until <= now()",
                    )
                    .bind(scope)
                    .bind(key)
                    .bind(token)
                    .bind(lease_ms)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                    if taken == 1 {
                        tracing::info!(key, "took over an in-flight key whose lease had expired");
                        return Ok(ClaimOutcome::Claimed(claim));
                    }
                    return Ok(ClaimOutcome::InFlight {
                        retry_after: Duration::from_secs(1),
                    });
                }
            }
        }
        Ok(ClaimOutcome::InFlight {
            retry_after: Duration::from_secs(1),
        })
    }

    /// Stores the response inside the business transaction. `false` means the lease
    /// was lost to another request: the caller must roll back.
    #[tracing::instrument(name = "idempotency.complete", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "UPDATE"))]
    pub async fn complete(
        &self,
        tx: &mut PgConnection,
        claim: &Claim,
        response: &StoredResponse,
    ) -> Result<bool, sqlx::Error> {
        let updated = sqlx::query(
            "UPDATE idempotency_keys
             SET state = 'completed', locked_until = NULL, completed_at = now(),
                 response_status = $4, response_headers = $5, response_body = $6
             WHERE scope = $1 AND key = $2 AND lease_token = $3 AND state = 'in_flight'",
        )
        .bind(&claim.scope)
        .bind(&claim.key)
        .bind(claim.token)
        .bind(response.status as i16)
        .bind(sqlx::types::Json(&response.headers))
        .bind(&response.body)
        .execute(tx)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    /// Gives a key back after a failure that rolled back, so a retry may execute.
    #[tracing::instrument(name = "idempotency.release", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "DELETE"))]
    pub async fn release(&self, claim: &Claim) -> Result<(), sqlx::Error> {
        sqlx::query(
            "DELETE FROM idempotency_keys
             WHERE scope = $1 AND key = $2 AND lease_token = $3 AND state = 'in_flight'",
        )
        .bind(&claim.scope)
        .bind(&claim.key)
        .bind(claim.token)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// A key as the admin listing shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ListedKey {
    pub scope: String,
    pub key: String,
    pub state: KeyState,
    pub replays: i32,
    pub response_status: Option<i16>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub completed_at: Option<chrono::DateTime<chrono::Utc>>,
    pub locked_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// A page of the keys that start with `prefix`, in (key, scope) order, after
/// `after`, from the `idempotency_keys_by_key` index. Keys are printable ASCII, so
/// every key with the prefix sorts below the prefix followed by DEL.
#[tracing::instrument(name = "idempotency.list", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn list_keys(
    pool: &PgPool,
    prefix: &str,
    after: Option<(&str, &str)>,
    limit: i64,
) -> Result<Vec<ListedKey>, sqlx::Error> {
    let (after_key, after_scope) = after.unzip();
    sqlx::query_as(
        "SELECT scope, key, state, replays, response_status, created_at, completed_at, locked_until
         FROM idempotency_keys
         WHERE key ~>=~ $1 AND key ~<~ $2
           AND ($3::text IS NULL OR key ~>~ $3 OR (key = $3 AND scope ~>~ $4))
         ORDER BY key USING ~<~, scope USING ~<~
         LIMIT $5",
    )
    .bind(prefix)
    .bind(format!("{prefix}\u{7f}"))
    .bind(after_key)
    .bind(after_scope)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// What checking a call's fencing token found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fence {
    /// The epoch is the highest seen for its holder (now recorded); the row stays
    /// locked until the transaction ends, so calls of one holder go one at a time.
    Current,
    /// A higher epoch was seen before: the caller lost its lease.
    Stale { highest: i64 },
}

/// Checks a call's fencing token and raises the holder's highest epoch to it, in the
/// caller's transaction (the one its work is done in).
#[tracing::instrument(name = "fencing.check", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "INSERT"))]
pub async fn check_fence(conn: &mut PgConnection, scope: &str, holder: &str, epoch: i64) -> Result<Fence, sqlx::Error> {
    let raised: Option<i64> = sqlx::query_scalar(
        "INSERT INTO fencing_tokens (scope, holder, epoch) VALUES ($1, $2, $3)
         ON CONFLICT (scope, holder) DO UPDATE SET epoch = EXCLUDED.epoch, updated_at = now()
         WHERE fencing_tokens.epoch <= EXCLUDED.epoch
         RETURNING epoch",
    )
    .bind(scope)
    .bind(holder)
    .bind(epoch)
    .fetch_optional(&mut *conn)
    .await?;
    if raised.is_some() {
        return Ok(Fence::Current);
    }
    // Refused: the row holds a higher epoch (and is locked by this transaction now).
    let highest: i64 = sqlx::query_scalar("SELECT epoch FROM fencing_tokens WHERE scope = $1 AND holder = $2")
        .bind(scope)
        .bind(holder)
        .fetch_one(conn)
        .await?;
    Ok(Fence::Stale { highest })
}

/// The highest epoch seen for a holder, without raising it (for calls whose work
/// cannot share a transaction with the check: `COMMIT PREPARED`, say).
#[tracing::instrument(name = "fencing.read", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn highest_epoch(conn: &mut PgConnection, scope: &str, holder: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT epoch FROM fencing_tokens WHERE scope = $1 AND holder = $2")
        .bind(scope)
        .bind(holder)
        .fetch_optional(conn)
        .await
}

/// Deletes keys older than `retention`, at most `batch` rows per statement, until
/// none are left. Returns how many were deleted.
#[tracing::instrument(name = "idempotency.purge", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "DELETE"))]
pub async fn purge_expired(pool: &PgPool, retention: Duration, batch: i64) -> Result<u64, sqlx::Error> {
    let keys = delete_in_batches(
        pool,
        "DELETE FROM idempotency_keys WHERE ctid IN (
             SELECT ctid FROM idempotency_keys
             WHERE created_at < now() - make_interval(secs => $1)
             LIMIT $2)",
        retention,
        batch,
    )
    .await?;
    // Fencing tokens go with the keys: a holder quiet for this long is finished.
    let tokens = delete_in_batches(
        pool,
        "DELETE FROM fencing_tokens WHERE ctid IN (
             SELECT ctid FROM fencing_tokens
             WHERE updated_at < now() - make_interval(secs => $1)
             LIMIT $2)",
        retention,
        batch,
    )
    .await?;
    Ok(keys + tokens)
}

/// Runs a `DELETE` of at most `$2` rows older than `$1` seconds until it deletes
/// fewer than that; returns how many it deleted.
async fn delete_in_batches(
    pool: &PgPool,
    sql: &'static str,
    retention: Duration,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let deleted = sqlx::query(sql)
            .bind(retention.as_secs_f64())
            .bind(batch)
            .execute(pool)
            .await?
            .rows_affected();
        total += deleted;
        if deleted < batch as u64 {
            return Ok(total);
        }
    }
}

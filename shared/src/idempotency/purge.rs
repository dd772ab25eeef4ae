//! The purge actor: deletes expired idempotency keys in batches, on an interval.

use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseFuture, WrapFuture};
use sqlx::PgPool;
use tracing::Instrument;

use super::store::purge_expired;

pub struct IdempotencyPurger {
    pool: PgPool,
    /// Keys older than this are deleted.
    retention: Duration,
    /// Time between purges.
    interval: Duration,
    /// Rows per DELETE, so a large backlog never holds one long lock.
    batch: i64,
    /// True while a purge runs; an overlapping tick is skipped.
    running: bool,
}

impl IdempotencyPurger {
    pub fn new(pool: PgPool, retention: Duration, interval: Duration) -> Self {
        IdempotencyPurger {
            pool,
            retention,
            interval,
            batch: 1000,
            running: false,
        }
    }
}

impl Actor for IdempotencyPurger {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.interval, |purger, ctx| {
            if purger.running {
                return;
            }
            purger.running = true;
            let (pool, retention, batch) = (purger.pool.clone(), purger.retention, purger.batch);
            let span = tracing::info_span!("actor.idempotency_purger.tick");
            let purge = async move { purge_expired(&pool, retention, batch).await }.instrument(span);
            ctx.spawn(purge.into_actor(purger).map(|outcome, purger, _| {
                purger.running = false;
                match outcome {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "purged expired idempotency keys"),
                    Err(e) => tracing::warn!(error = %e, "purging idempotency keys failed"),
                }
            }));
        });
    }
}

/// Purge now and say how many keys were deleted (operators, tests).
#[derive(Message)]
#[rtype(result = "Result<u64, sqlx::Error>")]
pub struct PurgeNow;

impl Handler<PurgeNow> for IdempotencyPurger {
    type Result = ResponseFuture<Result<u64, sqlx::Error>>;

    fn handle(&mut self, _: PurgeNow, _: &mut Self::Context) -> Self::Result {
        let (pool, retention, batch) = (self.pool.clone(), self.retention, self.batch);
        Box::pin(
            async move { purge_expired(&pool, retention, batch).await }
                .instrument(tracing::info_span!("actor.idempotency_purger.purge_now")),
        )
    }
}

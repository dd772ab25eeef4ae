//! Resolving in-doubt transactions: a participant that prepared and never heard the
//! decision asks the coordinator (presumed abort when it has no record).

use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, WrapFuture};
use api::{Decision, TransactionView};
use base::Problem;
use client::http_client::{CallOutcome, HttpClient};
use sqlx::PgPool;
use tracing::Instrument;

use crate::{Gid, fetch_prepared, finish};

/// Asks the coordinator what became of transactions prepared here longer than
/// `after` ago, and finishes them: committed → COMMIT PREPARED; aborted, or unknown
/// to the coordinator (presumed abort) → ROLLBACK PREPARED; undecided, or the
/// coordinator unreachable → left in doubt, locks held, until the next look.
pub struct TpcResolver {
    pool: PgPool,
    client: HttpClient,
    coordinator: String,
    after: Duration,
    interval: Duration,
    busy: bool,
}

impl TpcResolver {
    pub fn new(pool: PgPool, client: HttpClient, coordinator: String, after: Duration, interval: Duration) -> Self {
        TpcResolver {
            pool,
            client,
            coordinator,
            after,
            interval,
            busy: false,
        }
    }
}

impl Actor for TpcResolver {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.interval, |resolver, ctx| {
            if resolver.busy {
                return;
            }
            resolver.busy = true;
            let (pool, client, coordinator, after) = (
                resolver.pool.clone(),
                resolver.client.clone(),
                resolver.coordinator.clone(),
                resolver.after,
            );
            let work = resolve_in_doubt(pool, client, coordinator, after)
                .instrument(tracing::info_span!("actor.tpc_resolver.tick"));
            ctx.spawn(work.into_actor(resolver).map(|(), resolver, _| resolver.busy = false));
        });
    }
}

async fn resolve_in_doubt(pool: PgPool, client: HttpClient, coordinator: String, after: Duration) {
    let prepared = match fetch_prepared(&pool, after).await {
        Ok(prepared) => prepared,
        Err(e) => return tracing::warn!(error = %e, "listing prepared transactions failed"),
    };
    for tx in prepared {
        let Ok(gid) = Gid::parse(&tx.gid) else { continue };
        let url = format!("{coordinator}/transactions/{}", gid.transaction_id);
        let outcome: CallOutcome<TransactionView> =
            CallOutcome::of(client.get(&url, Duration::from_secs(2)).send().await).await;
        let decision = match outcome {
            CallOutcome::Succeeded(tx) => tx.decision,
            // Presumed abort: no record of it means no commit was ever decided.
            CallOutcome::Refused { status: 404, .. } => Some(Decision::Abort),
            other => {
                tracing::warn!(gid = %tx.gid, age_seconds = tx.age_seconds, outcome = %other.describe(),
                    "in doubt: the coordinator cannot say yet; locks stay held");
                None
            }
        };
        let Some(decision) = decision else { continue };
        let finished = match pool.acquire().await {
            Ok(mut conn) => finish(&mut conn, &gid, decision).await.map(|_| ()),
            Err(e) => Err(Problem::from(e)),
        };
        match finished {
            Ok(()) => {
                tracing::info!(gid = %tx.gid, %decision, "resolved an in-doubt transaction by asking the coordinator")
            }
            Err(e) => tracing::warn!(gid = %tx.gid, error = %e, "resolving an in-doubt transaction failed"),
        }
    }
}

/// Starts the resolver with the service's settings (`TPC_IN_DOUBT_AFTER_SECS`,
/// `TPC_RESOLVE_INTERVAL_SECS`, `COORDINATOR_URL`).
pub fn start_resolver(settings: &base::config::Settings, pool: PgPool, client: HttpClient) -> anyhow::Result<()> {
    TpcResolver::new(
        pool,
        client,
        settings.peers.coordinator.clone(),
        settings.tpc.in_doubt_after,
        settings.tpc.resolve_interval,
    )
    .start();
    Ok(())
}

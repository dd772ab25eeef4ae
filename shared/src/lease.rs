//! Leases on durable jobs (a saga, a 2PC transaction) for replicas of one service
//! on one database: each job is driven by the holder of its lease, whose epoch —
//! raised by every replica that takes the job — guards every write it makes to the
//! job's log and goes to every participant call as its fencing token.
//!
//! The log's own statements take and renew a lease (see the order service's
//! `saga::log` and the coordinator's `tpc::log`); what they share is here: who this
//! replica is, what a held lease is, the heartbeat while a job waits, and how a
//! replica that lost a lease says so.

use std::{future::Future, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use api::headers::FencingToken;
use base::config::{ReplicaSettings, Service};
use uuid::Uuid;

/// This process as a replica: its id is new at every start.
#[derive(Debug, Clone)]
pub struct Replica {
    /// `<service>-<pid>-<6 hex>`.
    pub id: String,
    pub lease_ttl: Duration,
    /// `FENCING`: whether writes check the epoch and calls carry it.
    pub fencing: bool,
}

impl Replica {
    pub fn new(service: Service, settings: &ReplicaSettings) -> Replica {
        let id = format!(
            "{}-{}-{}",
            service.name(),
            std::process::id(),
            &Uuid::new_v4().simple().to_string()[..6]
        );
        tracing::info!(replica = %id, lease_ttl_ms = settings.lease_ttl.as_millis() as u64, fencing = settings.fencing, "replica");
        Replica {
            id,
            lease_ttl: settings.lease_ttl,
            fencing: settings.fencing,
        }
    }
}

/// Where a run of a job left it.
#[derive(Debug, Clone)]
pub enum RunOutcome<S> {
    /// Where the job stopped: its state (final, parked, ...).
    Stopped(S),
    /// Another replica holds its lease: it is driven there.
    HeldElsewhere { owner: String },
    /// This replica's lease was taken over while it drove the job (it was paused,
    /// say): it stood down, and the new holder goes on.
    LeaseLost { epoch: i64 },
}

impl<S: std::fmt::Display> std::fmt::Display for RunOutcome<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunOutcome::Stopped(state) => write!(f, "{state}"),
            RunOutcome::HeldElsewhere { owner } => write!(f, "held by {owner}"),
            RunOutcome::LeaseLost { epoch } => write!(f, "lease of epoch {epoch} lost"),
        }
    }
}

/// A replica's hold on one job: every write to the job's log is conditional on its
/// epoch (with fencing on) and renews it for `ttl`; participant calls carry the
/// epoch as their fencing token.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The job: a saga's or a transaction's id.
    pub holder: Uuid,
    pub owner: String,
    pub epoch: i64,
    pub ttl: Duration,
    /// `FENCING`: whether writes check the epoch. Off, a paused replica that wakes
    /// up writes over the new holder's log (to show what fencing prevents).
    pub fenced: bool,
}

impl Lease {
    pub fn new(holder: Uuid, epoch: i64, replica: &Replica) -> Lease {
        Lease {
            holder,
            owner: replica.id.clone(),
            epoch,
            ttl: replica.lease_ttl,
            fenced: replica.fencing,
        }
    }

    pub fn ttl_secs(&self) -> f64 {
        self.ttl.as_secs_f64()
    }

    /// The `Fencing-Token` of its calls; none with fencing off.
    pub fn fencing_token(&self) -> Option<FencingToken> {
        self.fenced.then(|| FencingToken {
            holder: self.holder.to_string(),
            epoch: self.epoch,
        })
    }

    /// Runs `work` while renewing the lease every third of its TTL (a heartbeat,
    /// only while the work lasts that long). `None`: the lease was taken over
    /// meanwhile (`renew` said so), and the work was dropped.
    pub async fn holding<T, R>(&self, renew: impl Fn() -> R, work: impl Future<Output = T>) -> Option<T>
    where
        R: Future<Output = Result<bool, sqlx::Error>>,
    {
        let every = self.ttl / 3;
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return Some(done),
                _ = beat.tick() => match renew().await {
                    Ok(true) => {}
                    Ok(false) => return None,
                    // The next write (or beat) tells whether the lease survived.
                    Err(e) => tracing::warn!(error = %e, "renewing a lease failed"),
                },
            }
        }
    }

    /// The lease is gone: a span event (`event`, e.g. `saga.lease_lost`) and a log
    /// line saying so. The caller records
    /// it in the job's history and drives the job no further.
    pub fn lost(&self, event: &'static str, why: &str) {
        use base::telemetry::{KeyValue, span_event};
        span_event(
            &tracing::Span::current(),
            event,
            vec![
                KeyValue::new("lease.holder", self.holder.to_string()),
                KeyValue::new("lease.epoch", self.epoch),
                KeyValue::new("lease.owner", self.owner.clone()),
                KeyValue::new("reason", why.to_owned()),
            ],
        );
        tracing::warn!(event, job.id = %self.holder, lease.epoch = self.epoch, reason = why, "lease lost; standing down");
    }
}

/// The jobs a registry of replicas counts: a table with `owner`, `lease_expires_at`,
/// `created_at` and `id`, and the condition that a row is unfinished.
#[derive(Debug, Clone, Copy)]
pub struct Jobs {
    pub table: &'static str,
    pub unfinished: &'static str,
}

/// The order service's sagas.
pub const SAGAS: Jobs = Jobs {
    table: "sagas",
    unfinished: "status IN ('running', 'compensating', 'parked')",
};

/// The coordinator's transactions.
pub const TRANSACTIONS: Jobs = Jobs {
    table: "transactions",
    unfinished: "state IN ('preparing', 'committing', 'aborting')",
};

/// Renews a lease, as a heartbeat while its holder waits (a slow call, votes, a
/// backoff). Returns whether the lease is still this replica's (with fencing off,
/// always).
#[tracing::instrument(name = "db.renew_lease", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "UPDATE"))]
pub async fn renew(pool: &PgPool, jobs: Jobs, lease: &Lease) -> Result<bool, sqlx::Error> {
    let renewed = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {} SET lease_expires_at = now() + make_interval(secs => $2)
         WHERE id = $1 AND (NOT $3 OR epoch = $4)",
        jobs.table
    )))
    .bind(lease.holder)
    .bind(lease.ttl_secs())
    .bind(lease.fenced)
    .bind(lease.epoch)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(renewed == 1)
}

/// A replica's heartbeat in the registry of replicas (`replicas`, written by each of
/// its recovery sweeps).
#[tracing::instrument(name = "db.upsert_replica", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "INSERT"))]
pub async fn beat(pool: &PgPool, replica: &str, url: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO replicas (id, url) VALUES ($1, $2)
         ON CONFLICT (id) DO UPDATE SET last_seen_at = now(), url = EXCLUDED.url",
    )
    .bind(replica)
    .bind(url)
    .execute(pool)
    .await?;
    Ok(())
}

/// A replica with the jobs it holds.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReplicaRow {
    pub id: String,
    pub url: String,
    pub started_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub live: bool,
    pub holding: i64,
    pub job_ids: Vec<Uuid>,
}

/// The replicas seen within `forget_after`, live ones (seen within `live_within`)
/// first, with the unfinished jobs whose live lease each holds (at most 20 ids).
#[tracing::instrument(name = "db.list_replicas", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn list_replicas(
    pool: &PgPool,
    jobs: Jobs,
    live_within: Duration,
    forget_after: Duration,
) -> Result<Vec<ReplicaRow>, sqlx::Error> {
    let Jobs { table, unfinished } = jobs;
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT r.id, r.url, r.started_at, r.last_seen_at,
                r.last_seen_at > now() - make_interval(secs => $1) AS live,
                coalesce(h.holding, 0) AS holding, coalesce(h.job_ids, '{{}}') AS job_ids
         FROM replicas r
         LEFT JOIN LATERAL (
             SELECT count(*) AS holding, (array_agg(j.id ORDER BY j.created_at))[1:20] AS job_ids
             FROM {table} j
             WHERE j.owner = r.id AND j.{unfinished} AND j.lease_expires_at > now()
         ) h ON true
         WHERE r.last_seen_at > now() - make_interval(secs => $2)
         ORDER BY live DESC, r.started_at"
    )))
    .bind(live_within.as_secs_f64())
    .bind(forget_after.as_secs_f64())
    .fetch_all(pool)
    .await
}

/// `GET /admin/replicas`: the registry, as the API shows it, from the replica `this`.
pub async fn replicas_view(pool: &PgPool, jobs: Jobs, this: &Replica) -> Result<api::ReplicaList, sqlx::Error> {
    let live_within = (this.lease_ttl * 3).max(Duration::from_secs(10));
    let rows = list_replicas(pool, jobs, live_within, Duration::from_secs(3600)).await?;
    Ok(api::ReplicaList {
        this: this.id.clone(),
        replicas: rows
            .into_iter()
            .map(|r| api::ReplicaView {
                id: r.id,
                url: r.url,
                started_at: r.started_at,
                last_seen_at: r.last_seen_at,
                live: r.live,
                holding: r.holding,
                job_ids: r.job_ids,
            })
            .collect(),
    })
}

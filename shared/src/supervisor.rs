//! Long-running, durable jobs (a saga, a two-phase-commit transaction) as actors:
//! a [`Supervisor`] starts one runner actor per job id (never two for the same id)
//! and tells waiting requests when it stops; a [`Sweeper`] periodically hands it
//! the jobs a log says are unfinished, so work left by a crash is resumed.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, MessageResult, WrapFuture,
};
use sqlx::PgPool;
use tokio::sync::oneshot;
use tracing::Instrument;
use uuid::Uuid;

pub type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// The work a supervisor runs: everything is in the job's log, so running a job
/// again after a crash resumes it. Returns a one-word account of where it stopped.
pub trait Job: 'static {
    /// For spans and logs, e.g. `saga`.
    const KIND: &'static str;
    /// Where a run left the job (its state, as the API spells it), for the log.
    type Outcome: std::fmt::Display;
    fn run(self: Arc<Self>, id: Uuid) -> LocalBoxFuture<anyhow::Result<Self::Outcome>>;
}

/// How many jobs a supervisor is running, readable from outside the actor (the
/// load shedder reads it).
#[derive(Debug, Clone, Default)]
pub struct RunningGauge(Arc<AtomicUsize>);

impl RunningGauge {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, running: usize) {
        self.0.store(running, Ordering::Relaxed);
    }
}

/// Bounds on a supervisor: jobs running at once (more are left to the sweeper,
/// which offers them again once there is room) and messages in its mailbox.
#[derive(Debug, Clone, Copy)]
pub struct JobLimits {
    pub max_running: usize,
    pub mailbox_capacity: usize,
}

impl JobLimits {
    /// For the supervisor of checkouts (sagas, 2PC transactions): with load shedding
    /// on, no more run at once than checkouts are admitted for; the mailbox is
    /// bounded either way.
    pub fn for_checkouts(settings: &base::config::resilience::ResilienceSettings) -> Self {
        JobLimits {
            max_running: settings.shedding.map_or(usize::MAX, |s| s.max_running),
            mailbox_capacity: settings.mailbox_capacity,
        }
    }

    pub const UNBOUNDED: JobLimits = JobLimits {
        max_running: usize::MAX,
        mailbox_capacity: 1024,
    };
}

pub struct Supervisor<J: Job> {
    job: Arc<J>,
    /// Running jobs and the requests waiting for each to stop.
    running: HashMap<Uuid, Vec<oneshot::Sender<()>>>,
    limits: JobLimits,
    gauge: RunningGauge,
}

impl<J: Job> Supervisor<J> {
    pub fn new(job: Arc<J>) -> Self {
        Self::bounded(job, JobLimits::UNBOUNDED)
    }

    pub fn bounded(job: Arc<J>, limits: JobLimits) -> Self {
        Supervisor {
            job,
            running: HashMap::new(),
            limits,
            gauge: RunningGauge::default(),
        }
    }

    /// The count of running jobs, kept up to date by the actor.
    pub fn gauge(&self) -> RunningGauge {
        self.gauge.clone()
    }
}

impl<J: Job> Actor for Supervisor<J> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.limits.mailbox_capacity);
    }
}

/// Start (or resume) a job unless it is already running here.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RunJob(pub Uuid);

impl<J: Job> Handler<RunJob> for Supervisor<J> {
    type Result = ();

    fn handle(&mut self, RunJob(id): RunJob, ctx: &mut Self::Context) {
        let _span = tracing::info_span!("actor.supervisor.run", job.kind = J::KIND, job.id = %id).entered();
        if self.running.contains_key(&id) {
            return;
        }
        if self.running.len() >= self.limits.max_running {
            client::resilience::span_event("job_deferred", Vec::new());
            tracing::warn!(
                resilience.decision = "job_deferred",
                job.kind = J::KIND,
                job.id = %id,
                running = self.running.len(),
                "at the limit of running jobs; the sweeper will start this one when there is room"
            );
            return;
        }
        self.running.insert(id, Vec::new());
        self.gauge.set(self.running.len());
        Runner {
            id,
            job: Arc::clone(&self.job),
            supervisor: ctx.address(),
        }
        .start();
    }
}

/// A receiver that resolves when the job stops (at once if it is not running).
#[derive(Message)]
#[rtype(result = "oneshot::Receiver<()>")]
pub struct WatchJob(pub Uuid);

impl<J: Job> Handler<WatchJob> for Supervisor<J> {
    type Result = MessageResult<WatchJob>;

    fn handle(&mut self, WatchJob(id): WatchJob, _: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        match self.running.get_mut(&id) {
            Some(watchers) => watchers.push(tx),
            None => {
                let _ = tx.send(());
            }
        }
        MessageResult(rx)
    }
}

/// Starts (or resumes) job `id` and waits until it stops or `deadline` passes,
/// whichever comes first; the job goes on either way. A full mailbox does not
/// wait: the job is in its log, and the sweeper starts it later. Under a caller's
/// deadline (`Request-Timeout-Ms`), the wait ends a little before it, so the caller
/// gets the 202 rather than nothing.
pub async fn run_and_wait<J: Job>(
    supervisor: &Addr<Supervisor<J>>,
    id: Uuid,
    deadline: Duration,
) -> Result<(), actix::MailboxError> {
    let deadline = match client::resilience::deadline::remaining() {
        Some(left) => deadline.min(left.saturating_sub(Duration::from_millis(100))),
        None => deadline,
    };
    if let Err(actix::prelude::SendError::Full(_)) = supervisor.try_send(RunJob(id)) {
        client::resilience::span_event("job_deferred", Vec::new());
        tracing::warn!(
            resilience.decision = "job_deferred",
            job.kind = J::KIND,
            job.id = %id,
            "supervisor mailbox full; the sweeper will start this job"
        );
        return Ok(());
    }
    let waited = tokio::time::timeout(deadline, async {
        let stopped = supervisor.send(WatchJob(id)).await?;
        let _ = stopped.await;
        Ok::<_, actix::MailboxError>(())
    })
    .await;
    match waited {
        Ok(Err(e)) => Err(e),
        Ok(Ok(())) | Err(_) => Ok(()),
    }
}

/// How many jobs are running here.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct RunningJobs;

impl<J: Job> Handler<RunningJobs> for Supervisor<J> {
    type Result = usize;

    fn handle(&mut self, _: RunningJobs, _: &mut Self::Context) -> usize {
        self.running.len()
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct JobStopped {
    id: Uuid,
    outcome: Result<String, String>,
}

impl<J: Job> Handler<JobStopped> for Supervisor<J> {
    type Result = ();

    fn handle(&mut self, msg: JobStopped, _: &mut Self::Context) {
        let _span = tracing::info_span!("actor.supervisor.stopped", job.kind = J::KIND, job.id = %msg.id).entered();
        match &msg.outcome {
            Ok(state) => tracing::info!(job.kind = J::KIND, job.id = %msg.id, %state, "job stopped"),
            // Its log still says where it was; the sweeper resumes it.
            Err(e) => {
                tracing::warn!(job.kind = J::KIND, job.id = %msg.id, error = %e, "job interrupted; it will be resumed")
            }
        }
        for watcher in self.running.remove(&msg.id).unwrap_or_default() {
            let _ = watcher.send(());
        }
        self.gauge.set(self.running.len());
    }
}

/// One running job.
struct Runner<J: Job> {
    id: Uuid,
    job: Arc<J>,
    supervisor: Addr<Supervisor<J>>,
}

impl<J: Job> Actor for Runner<J> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let run = Arc::clone(&self.job).run(self.id);
        ctx.spawn(run.into_actor(self).map(|outcome, runner, ctx| {
            runner.supervisor.do_send(JobStopped {
                id: runner.id,
                outcome: outcome.map(|o| o.to_string()).map_err(|e| format!("{e:#}")),
            });
            ctx.stop();
        }));
    }
}

/// Finds unfinished jobs that are due, and makes each one it returns not due again
/// for the given time: a job offered and not finished (still running here, deferred,
/// or one that cannot finish) goes to the back of the line, so a sweep's limit is
/// never held by the same stuck jobs and every due job is offered in turn.
pub type FindDue = Box<dyn Fn(PgPool, Duration) -> LocalBoxFuture<Result<Vec<Uuid>, sqlx::Error>>>;

/// A job offered by a sweep is offered again after this many sweeps at the soonest.
const SWEEPS_BEFORE_REOFFER: u32 = 5;

/// At start-up and then every `interval`, hands the supervisor every job `find_due`
/// returns; the supervisor ignores those already running.
pub struct Sweeper<J: Job> {
    pool: PgPool,
    supervisor: Addr<Supervisor<J>>,
    interval: Duration,
    find_due: FindDue,
    /// True while a sweep runs; overlapping ticks are skipped.
    sweeping: bool,
}

impl<J: Job> Sweeper<J> {
    pub fn new(
        pool: PgPool,
        supervisor: Addr<Supervisor<J>>,
        interval: Duration,
        find_due: impl Fn(PgPool, Duration) -> LocalBoxFuture<Result<Vec<Uuid>, sqlx::Error>> + 'static,
    ) -> Self {
        Sweeper {
            pool,
            supervisor,
            interval,
            find_due: Box::new(find_due),
            sweeping: false,
        }
    }

    fn sweep(&mut self, ctx: &mut Context<Self>) {
        if self.sweeping {
            return;
        }
        self.sweeping = true;
        let find = (self.find_due)(self.pool.clone(), self.interval * SWEEPS_BEFORE_REOFFER)
            .instrument(tracing::info_span!("actor.sweeper.sweep", job.kind = J::KIND));
        ctx.spawn(find.into_actor(self).map(|due, sweeper, _| {
            sweeper.sweeping = false;
            match due {
                // A full mailbox drops the rest of this sweep; the next one offers them again.
                Ok(due) => {
                    for id in due {
                        if sweeper.supervisor.try_send(RunJob(id)).is_err() {
                            break;
                        }
                    }
                }
                Err(e) => tracing::warn!(job.kind = J::KIND, error = %e, "looking for unfinished jobs failed"),
            }
        }));
    }
}

impl<J: Job> Actor for Sweeper<J> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.sweep(ctx);
        ctx.run_interval(self.interval, |sweeper, ctx| sweeper.sweep(ctx));
    }
}

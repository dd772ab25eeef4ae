//! The recovery actor: at start-up and then periodically, hands every unfinished
//! saga that is due (left running by a crash, or parked and waited out) to the
//! manager, which resumes it from its log unless it is already running.

use std::time::Duration;

use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context, WrapFuture};
use sqlx::PgPool;
use tracing::Instrument;

use super::{
    actor::{RunSaga, SagaManager},
    log,
};

pub struct SagaRecovery {
    pool: PgPool,
    manager: Addr<SagaManager>,
    interval: Duration,
    /// True while a sweep runs; overlapping ticks are skipped.
    sweeping: bool,
}

impl SagaRecovery {
    pub fn new(pool: PgPool, manager: Addr<SagaManager>, interval: Duration) -> Self {
        SagaRecovery {
            pool,
            manager,
            interval,
            sweeping: false,
        }
    }

    fn sweep(&mut self, ctx: &mut Context<Self>) {
        if self.sweeping {
            return;
        }
        self.sweeping = true;
        let pool = self.pool.clone();
        let find = async move { log::fetch_due_sagas(&pool, 100).await }
            .instrument(tracing::info_span!("actor.saga_recovery.sweep"));
        ctx.spawn(find.into_actor(self).map(|due, recovery, _| {
            recovery.sweeping = false;
            match due {
                Ok(due) => {
                    for saga_id in due {
                        recovery.manager.do_send(RunSaga { saga_id });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "looking for unfinished sagas failed"),
            }
        }));
    }
}

impl Actor for SagaRecovery {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.sweep(ctx);
        ctx.run_interval(self.interval, |recovery, ctx| recovery.sweep(ctx));
    }
}

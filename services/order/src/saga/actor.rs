//! The actors: a manager that supervises one runner actor per running saga (never
//! two for the same saga), and tells waiting requests when a saga stops.

use std::{collections::HashMap, sync::Arc};

use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, MessageResult, WrapFuture};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::{engine::Engine, state::SagaStatus};

pub struct SagaManager {
    engine: Arc<Engine>,
    /// Running sagas and the requests waiting for each to stop.
    running: HashMap<Uuid, Vec<oneshot::Sender<()>>>,
}

impl SagaManager {
    pub fn new(engine: Arc<Engine>) -> Self {
        SagaManager {
            engine,
            running: HashMap::new(),
        }
    }
}

impl Actor for SagaManager {
    type Context = Context<Self>;
}

/// Start (or resume) a saga unless it is already running here.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RunSaga {
    pub saga_id: Uuid,
}

impl Handler<RunSaga> for SagaManager {
    type Result = ();

    fn handle(&mut self, msg: RunSaga, ctx: &mut Self::Context) {
        let _span = tracing::info_span!("actor.saga_manager.run", saga.id = %msg.saga_id).entered();
        if self.running.contains_key(&msg.saga_id) {
            return;
        }
        self.running.insert(msg.saga_id, Vec::new());
        SagaRunner {
            saga_id: msg.saga_id,
            engine: Arc::clone(&self.engine),
            manager: ctx.address(),
        }
        .start();
    }
}

/// A receiver that resolves when the saga stops (at once if it is not running).
#[derive(Message)]
#[rtype(result = "oneshot::Receiver<()>")]
pub struct WatchSaga {
    pub saga_id: Uuid,
}

impl Handler<WatchSaga> for SagaManager {
    type Result = MessageResult<WatchSaga>;

    fn handle(&mut self, msg: WatchSaga, _: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        match self.running.get_mut(&msg.saga_id) {
            Some(watchers) => watchers.push(tx),
            None => {
                let _ = tx.send(());
            }
        }
        MessageResult(rx)
    }
}

/// How many sagas are running here (for health and tests).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct RunningSagas;

impl Handler<RunningSagas> for SagaManager {
    type Result = usize;

    fn handle(&mut self, _: RunningSagas, _: &mut Self::Context) -> usize {
        self.running.len()
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct SagaStopped {
    saga_id: Uuid,
    outcome: Result<SagaStatus, String>,
}

impl Handler<SagaStopped> for SagaManager {
    type Result = ();

    fn handle(&mut self, msg: SagaStopped, _: &mut Self::Context) {
        let _span = tracing::info_span!("actor.saga_manager.stopped", saga.id = %msg.saga_id).entered();
        match &msg.outcome {
            Ok(status) => tracing::info!(saga.id = %msg.saga_id, ?status, "saga stopped"),
            // The log still says where it was; the recovery actor picks it up again.
            Err(e) => tracing::warn!(saga.id = %msg.saga_id, error = %e, "saga interrupted; recovery will resume it"),
        }
        for watcher in self.running.remove(&msg.saga_id).unwrap_or_default() {
            let _ = watcher.send(());
        }
    }
}

/// One running saga.
struct SagaRunner {
    saga_id: Uuid,
    engine: Arc<Engine>,
    manager: Addr<SagaManager>,
}

impl Actor for SagaRunner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let (engine, saga_id) = (Arc::clone(&self.engine), self.saga_id);
        let run = async move { engine.run(saga_id).await };
        ctx.spawn(run.into_actor(self).map(|outcome, runner, ctx| {
            runner.manager.do_send(SagaStopped {
                saga_id: runner.saga_id,
                outcome: outcome.map_err(|e| format!("{e:#}")),
            });
            actix::ActorContext::stop(ctx);
        }));
    }
}

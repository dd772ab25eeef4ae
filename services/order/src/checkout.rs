//! `POST /checkout`: validate, price from inventory, log the saga, run it, and
//! answer 201 with the final state when it is reached within the deadline, or 202
//! with `Location` while it is still going.

use std::{sync::Arc, time::Duration};

use actix::Addr;
use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use shared::{
    Problem,
    domain::{CheckoutRequest, price_checkout},
    idempotency::ClaimedKey,
    supervisor::{RunJob, Supervisor, WatchJob},
    telemetry::current_traceparent,
    web::json,
};
use sqlx::PgPool;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    domain::OrderStatus,
    saga::{
        engine::Engine,
        log::{self, NewSaga},
    },
};

/// How long `POST /checkout` waits for the saga before answering 202.
#[derive(Debug, Clone, Copy)]
pub struct CheckoutDeadline(pub Duration);

#[tracing::instrument(name = "checkout", skip_all, fields(order.id, saga.id))]
pub async fn checkout(
    req: HttpRequest,
    key: ClaimedKey,
    body: web::Json<CheckoutRequest>,
    pool: web::Data<PgPool>,
    engine: web::Data<Arc<Engine>>,
    manager: web::Data<Addr<Supervisor<Engine>>>,
    deadline: web::Data<CheckoutDeadline>,
) -> Result<HttpResponse, Problem> {
    let checkout_key = format!("{}:{}", key.scope, key.key);
    let saga_id = match log::fetch_saga_id_by_key(&pool, &checkout_key).await? {
        // A retry of a checkout that already started (its answer was never stored,
        // e.g. the orchestrator crashed): the same saga, never a second one.
        Some(saga_id) => saga_id,
        None => {
            let priced = price_checkout(&body, &engine.client, &engine.participants.inventory).await?;
            let baggage = req.headers().get("baggage").and_then(|v| v.to_str().ok());
            log::insert_saga(
                &pool,
                NewSaga {
                    checkout_key: &checkout_key,
                    request: &priced,
                    traceparent: current_traceparent().as_deref(),
                    baggage,
                },
            )
            .await?
        }
    };
    let span = tracing::Span::current();
    span.record("saga.id", tracing::field::display(saga_id));
    manager.do_send(RunJob(saga_id));
    let stopped = manager
        .send(WatchJob(saga_id))
        .await
        .map_err(|e| Problem::internal(anyhow::anyhow!("saga manager: {e}")))?;
    let _ = tokio::time::timeout(deadline.0, stopped).await;

    let mut conn = pool.acquire().await?;
    let saga = log::fetch_saga(&mut conn, saga_id)
        .await?
        .ok_or_else(|| Problem::internal(anyhow::anyhow!("saga {saga_id} vanished")))?;
    span.record("order.id", tracing::field::display(saga.order_id));
    span.set_attribute("order.id", saga.order_id.to_string());
    let view = crate::view::load(&mut conn, saga.order_id)
        .await?
        .ok_or_else(|| Problem::internal(anyhow::anyhow!("order view missing")))?;
    if view.status == OrderStatus::Pending {
        let mut response = json(StatusCode::ACCEPTED, &view)?;
        response.headers_mut().insert(
            actix_web::http::header::LOCATION,
            actix_web::http::header::HeaderValue::from_str(&format!("/orders/{}", saga.order_id))
                .map_err(Problem::internal)?,
        );
        Ok(response)
    } else {
        json(StatusCode::CREATED, &view)
    }
}

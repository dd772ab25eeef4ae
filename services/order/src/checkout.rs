//! `POST /checkout`: validate, price from inventory, log the saga, run it, and
//! answer 201 with the final state when it is reached within the deadline, or 202
//! with `Location` while it is still going.

use std::{sync::Arc, time::Duration};

use actix::Addr;
use actix_web::{HttpRequest, HttpResponse, web};
use api::CheckoutRequest;
use base::{Problem, telemetry::current_traceparent};
use shared::{
    domain::price_checkout,
    idempotency::ClaimedKey,
    supervisor::{Supervisor, run_and_wait},
    web::{accepted, created, prefers_async},
};
use sqlx::PgPool;

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

/// Checks out as an orchestrated saga: validates, prices from the inventory, logs the
/// saga and runs it. Answers with the final state when the saga ends within
/// `CHECKOUT_DEADLINE_MS`, else 202 with `Location` to follow.
#[utoipa::path(post, path = "/checkout", tag = "checkout", request_body = CheckoutRequest,
    params(("Idempotency-Key" = inline(String), Header, description = "Required: the checkout's identity; a retry with the same key and body is answered the same, and never runs a second saga", min_length = 1, max_length = 255, pattern = r"^[\x20-\x7E]+$"),
        ("Prefer" = Option<String>, Header, description = "`respond-async`: answer 202 with `Location` as soon as the saga is logged, without waiting for it")),
    responses(
        (status = 201, description = "The saga ended: `confirmed`, or `cancelled` with `reason` (its compensations done)", body = crate::view::OrderView),
        (status = 202, description = "Still running after the deadline: follow `Location`", body = crate::view::OrderView,
            headers(("Location" = String, description = "`/orders/{order_id}`"))),
        (status = 400, description = "Invalid: every reason in `errors`; or `Idempotency-Key` missing or malformed"),
        (status = 409, description = "The first request with this key is still being processed"),
        (status = 422, description = "A SKU the catalogue does not have (`unknown-sku`), or the key reused with another body"),
        (status = 503, description = "The inventory (pricing) is unavailable, or the service is overloaded: nothing was done"),
    ))]
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
    let saga = match log::fetch_saga_ids_by_key(&pool, &checkout_key).await? {
        // A retry of a checkout that already started (its answer was never stored,
        // e.g. the orchestrator crashed): the same saga, never a second one.
        Some(saga) => saga,
        None => {
            let priced = price_checkout(&body, &engine.client, &engine.participants.inventory).await?;
            let baggage = req.headers().get(api::headers::BAGGAGE).and_then(|v| v.to_str().ok());
            log::insert_saga(
                &pool,
                NewSaga {
                    replica: &engine.replica,
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
    span.record("saga.id", tracing::field::display(saga.id));
    span.record("order.id", tracing::field::display(saga.order_id));
    let deadline = if prefers_async(&req) {
        Duration::ZERO
    } else {
        deadline.0
    };
    run_and_wait(&manager, saga.id, deadline)
        .await
        .map_err(|e| Problem::internal(anyhow::anyhow!("saga supervisor: {e}")))?;
    let view = crate::view::load_existing(&mut *pool.acquire().await?, saga.order_id).await?;
    if view.status == OrderStatus::Pending {
        accepted(&view, &format!("/orders/{}", saga.order_id))
    } else {
        created(&view)
    }
}

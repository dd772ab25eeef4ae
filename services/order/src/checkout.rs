//! `POST /checkout`: validate, price from inventory, log the saga, run it, and
//! answer 201 with the final state when it is reached within the deadline, or 202
//! with `Location` while it is still going.

use std::{sync::Arc, time::Duration};

use actix::Addr;
use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use serde::Deserialize;
use shared::{
    ErrorCode, Problem,
    domain::{EmailAddress, LineItemRequest, LineItems, PaymentToken, invalid},
    http_client::CallOutcome,
    idempotency::ClaimedKey,
    telemetry::current_traceparent,
    web::json,
};
use sqlx::PgPool;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    domain::OrderStatus,
    saga::{
        actor::{RunSaga, SagaManager, WatchSaga},
        engine::Engine,
        log::{self, NewSaga, PricedCheckout, PricedItem},
    },
};

/// How long `POST /checkout` waits for the saga before answering 202.
#[derive(Debug, Clone, Copy)]
pub struct CheckoutDeadline(pub Duration);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    customer_email: String,
    items: Vec<LineItemRequest>,
    payment_token: String,
}

#[tracing::instrument(name = "checkout", skip_all, fields(order.id, saga.id))]
pub async fn checkout(
    req: HttpRequest,
    key: ClaimedKey,
    body: web::Json<CheckoutRequest>,
    pool: web::Data<PgPool>,
    engine: web::Data<Arc<Engine>>,
    manager: web::Data<Addr<SagaManager>>,
    deadline: web::Data<CheckoutDeadline>,
) -> Result<HttpResponse, Problem> {
    let checkout_key = format!("{}:{}", key.scope, key.key);
    let saga_id = match log::fetch_saga_id_by_key(&pool, &checkout_key).await? {
        // A retry of a checkout that already started (its answer was never stored,
        // e.g. the orchestrator crashed): the same saga, never a second one.
        Some(saga_id) => saga_id,
        None => {
            let priced = validate_and_price(&body, &engine).await?;
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
    manager.do_send(RunSaga { saga_id });
    let stopped = manager
        .send(WatchSaga { saga_id })
        .await
        .map_err(|e| Problem::internal(anyhow::anyhow!("saga manager: {e}")))?;
    let _ = tokio::time::timeout(deadline.0, stopped).await;

    let saga = log::fetch_saga(&pool, saga_id)
        .await?
        .ok_or_else(|| Problem::internal(anyhow::anyhow!("saga {saga_id} vanished")))?;
    span.record("order.id", tracing::field::display(saga.order_id));
    span.set_attribute("order.id", saga.order_id.to_string());
    let view = crate::view::load(&pool, saga.order_id)
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

async fn validate_and_price(body: &CheckoutRequest, engine: &Engine) -> Result<PricedCheckout, Problem> {
    let mut errors = Vec::new();
    let email = EmailAddress::parse(&body.customer_email).map_err(|e| errors.push(format!("customer_email: {e}")));
    let token = PaymentToken::parse(&body.payment_token).map_err(|e| errors.push(format!("payment_token: {e}")));
    let items = LineItems::parse(&body.items).map_err(|p| errors.push(p.detail));
    let (Ok(email), Ok(token), Ok(items)) = (email, token, items) else {
        return Err(invalid(errors));
    };
    let lookups = items.iter().map(|line| async move {
        let url = format!("{}/inventory/{}", engine.participants.inventory, line.sku.as_str());
        let outcome = CallOutcome::of(engine.client.get(&url, Duration::from_secs(2)).send().await).await;
        (line, outcome)
    });
    let mut priced = Vec::new();
    for (line, outcome) in futures_util::future::join_all(lookups).await {
        match outcome {
            CallOutcome::Succeeded(product) => {
                let price = product["price_cents"].as_i64().ok_or_else(|| {
                    Problem::internal(anyhow::anyhow!("inventory sent no price for {}", line.sku.as_str()))
                })?;
                priced.push(PricedItem {
                    sku: line.sku.as_str().to_owned(),
                    quantity: line.quantity.get(),
                    unit_price_cents: price,
                });
            }
            CallOutcome::Refused { status: 422 | 404, .. } => {
                return Err(Problem::new(
                    ErrorCode::UnknownSku,
                    format!("the catalogue has no {}", line.sku.as_str()),
                )
                .with_extension("sku", line.sku.as_str()));
            }
            other => {
                return Err(Problem::new(
                    ErrorCode::ServiceUnavailable,
                    format!("pricing {} failed: {}", line.sku.as_str(), other.describe()),
                )
                .with_retry_after(1));
            }
        }
    }
    let total_cents = priced.iter().map(|i| i64::from(i.quantity) * i.unit_price_cents).sum();
    Ok(PricedCheckout {
        customer_email: email.as_str().to_owned(),
        payment_token: token.as_str().to_owned(),
        items: priced,
        total_cents,
    })
}

//! Order HTTP handlers.

use actix_web::{HttpResponse, web};
use api::{CancelOrder, CreateOrder, LineItemRequest, NoFields};
use serde::Deserialize;
use shared::{
    ErrorCode, Problem,
    domain::{EmailAddress, LineItems, PaymentToken, invalid},
    idempotency::{Idempotency, UnitOfWork},
    telemetry::current_trace_id,
    web::{OptionalJson, checkout, created, mutation, mutation_and_read, ok},
};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{
    db::{self, NewOrder},
    domain::{OrderEvent, OrderStatus, Transition},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(checkout(
        "/checkout",
        web::post().to(crate::checkout::checkout),
        "order.checkout",
    ))
    .service(mutation_and_read(
        "/orders",
        web::post().to(create_order),
        "order.create",
        Idempotency::optional(),
        Some(web::get().to(list_orders)),
    ))
    .service(mutation(
        "/orders/{order_id}/confirm",
        web::post().to(confirm_order),
        "order.confirm",
        Idempotency::optional(),
    ))
    .service(mutation(
        "/orders/{order_id}/cancel",
        web::post().to(cancel_order),
        "order.cancel",
        Idempotency::optional(),
    ))
    .service(web::resource("/orders/{order_id}").route(web::get().to(show_order)));
}

/// Creates a pending order with priced lines. A repeat with the same id answers
/// with the existing order.
async fn create_order(mut uow: UnitOfWork, body: web::Json<CreateOrder>) -> Result<HttpResponse, Problem> {
    let tx = uow.tx().await?;
    let (id, is_new) = create(tx, &body).await?;
    let view = crate::view::load_existing(tx, id).await?;
    if is_new { created(&view) } else { ok(&view) }
}

/// Validates and inserts a pending order; `(id, is_new)`. Refused after the order's
/// cancellation (a creation arriving after its compensation).
pub async fn create(conn: &mut PgConnection, body: &CreateOrder) -> Result<(Uuid, bool), Problem> {
    let mut errors = Vec::new();
    let email = EmailAddress::parse(&body.customer_email).map_err(|e| errors.push(format!("customer_email: {e}")));
    let token = PaymentToken::parse(&body.payment_token).map_err(|e| errors.push(format!("payment_token: {e}")));
    let requests: Vec<LineItemRequest> = body
        .items
        .iter()
        .map(|l| LineItemRequest {
            sku: l.sku.clone(),
            quantity: l.quantity,
        })
        .collect();
    let items = LineItems::parse(&requests).map_err(|p| errors.push(p.detail));
    if let Some(bad) = body
        .items
        .iter()
        .find(|l| !(1..=100_000_000).contains(&l.unit_price_cents))
    {
        errors.push(format!("{}: unit_price_cents out of range", bad.sku));
    }
    let (Ok(email), Ok(token), Ok(items)) = (email, token, items) else {
        return Err(invalid(errors));
    };
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    let prices: Vec<i64> = items
        .iter()
        .map(|line| {
            body.items
                .iter()
                .find(|l| l.sku == line.sku.as_str())
                .map(|l| l.unit_price_cents)
                .unwrap_or_default()
        })
        .collect();
    let id = body.order_id.unwrap_or_else(Uuid::now_v7);
    if db::fetch_order_tombstone(conn, id).await? {
        return Err(Problem::new(
            ErrorCode::ActionAfterCompensation,
            format!("order {id} was cancelled before it was created; the late creation is refused"),
        ));
    }
    let trace_id = current_trace_id();
    let inserted = db::insert_order(
        conn,
        NewOrder {
            id,
            customer_email: email.as_str(),
            payment_token: token.as_str(),
            trace_id: trace_id.as_deref(),
            skus: &items.skus(),
            quantities: &items.quantities(),
            unit_prices: &prices,
        },
    )
    .await?;
    Ok((id, inserted.is_some()))
}

async fn confirm_order(
    _: OptionalJson<NoFields>,
    uow: UnitOfWork,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, Problem> {
    transition(uow, id.into_inner(), OrderEvent::Confirm, None).await
}

async fn cancel_order(
    OptionalJson(body): OptionalJson<CancelOrder>,
    uow: UnitOfWork,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, Problem> {
    let reason = body.and_then(|b| b.reason).unwrap_or_else(|| "cancelled".to_owned());
    if reason.is_empty() || reason.len() > 500 {
        return Err(Problem::invalid("reason must be 1 to 500 characters"));
    }
    transition(uow, id.into_inner(), OrderEvent::Cancel, Some(reason)).await
}

#[tracing::instrument(skip(uow, reason), fields(order.id = %id))]
async fn transition(
    mut uow: UnitOfWork,
    id: Uuid,
    event: OrderEvent,
    reason: Option<String>,
) -> Result<HttpResponse, Problem> {
    let tx = uow.tx().await?;
    let Some(order) = db::fetch_order(tx, id, true).await? else {
        if event == OrderEvent::Cancel {
            db::insert_order_tombstone(tx, id).await?;
            tracing::info!("null compensation: cancelled an order that was never created");
            return ok(
                &serde_json::json!({ "order_id": id, "status": OrderStatus::Cancelled, "null_compensation": true }),
            );
        }
        return Err(Problem::not_found(format!("no order {id}")));
    };
    match order.status.apply(event) {
        Transition::AlreadyThere => ok(&crate::view::load_existing(tx, id).await?),
        Transition::Refused => Err(Problem::new(
            ErrorCode::Conflict,
            format!(
                "order {id} is {}; it cannot be {}",
                order.status,
                if event == OrderEvent::Confirm {
                    "confirmed"
                } else {
                    "cancelled"
                }
            ),
        )),
        Transition::To(status) => {
            db::update_order_status(tx, id, status, reason.as_deref()).await?;
            ok(&crate::view::load_existing(tx, id).await?)
        }
    }
}

async fn show_order(pool: web::Data<PgPool>, id: web::Path<Uuid>) -> Result<HttpResponse, Problem> {
    // One snapshot for the order, its lines and its saga.
    let mut snapshot = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *snapshot)
        .await?;
    let view = crate::view::load(&mut snapshot, *id).await?;
    snapshot.commit().await?;
    match view {
        Some(view) => ok(&view),
        None => Err(Problem::not_found(format!("no order {}", *id))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrdersQuery {
    status: Option<String>,
    limit: Option<i64>,
    /// The last `order_id` of the previous page.
    before: Option<Uuid>,
}

async fn list_orders(pool: web::Data<PgPool>, query: web::Query<OrdersQuery>) -> Result<HttpResponse, Problem> {
    let status =
        match query.status.as_deref() {
            None => None,
            Some(raw) => Some(OrderStatus::parse(raw).ok_or_else(|| {
                Problem::invalid(format!("status must be pending, confirmed or cancelled, got {raw:?}"))
            })?),
        };
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Problem::invalid(format!(
            "limit must be between 1 and 500, got {limit}"
        )));
    }
    let orders = db::fetch_orders(&pool, status, query.before, limit).await?;
    ok(&serde_json::json!({ "orders": orders }))
}

//! Order HTTP handlers.

use actix_web::{HttpResponse, web};
use api::{CancelOrder, CreateOrder, LineItemRequest, NoFields};
use serde::{Deserialize, Serialize};
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
    view::OrderView,
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

/// Creates a pending order with priced lines (the saga's first step). A repeat with
/// the same id answers with the existing order.
#[utoipa::path(post, path = "/orders", tag = "orders", request_body = CreateOrder,
    responses(
        (status = 201, description = "Created, pending", body = OrderView),
        (status = 200, description = "An order with this id existed already: it", body = OrderView),
        (status = 409, description = "The order was cancelled before it was created (`action-after-compensation`)"),
    ))]
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

/// Confirms a pending order (the saga's last step). Confirming a confirmed order
/// changes nothing.
#[utoipa::path(post, path = "/orders/{order_id}/confirm", tag = "orders", params(("order_id" = Uuid, Path, description = "The order")),
    request_body = Option<NoFields>,
    responses(
        (status = 200, description = "Confirmed", body = OrderView),
        (status = 409, description = "The order is cancelled"),
    ))]
async fn confirm_order(
    _: OptionalJson<NoFields>,
    uow: UnitOfWork,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, Problem> {
    transition(uow, id.into_inner(), OrderEvent::Confirm, None).await
}

/// Cancels an order (the compensation of its creation). Cancelling an order never
/// created records that, so a late creation is refused (null compensation).
#[utoipa::path(post, path = "/orders/{order_id}/cancel", tag = "orders", params(("order_id" = Uuid, Path, description = "The order")),
    request_body = Option<CancelOrder>,
    responses(
        (status = 200, description = "Cancelled; for an order never created, `{ order_id, status, null_compensation }`", body = CancelAnswer),
        (status = 409, description = "The order is confirmed"),
    ))]
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
            return ok(&NeverCreated {
                order_id: id,
                status: OrderStatus::Cancelled,
                null_compensation: true,
            });
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

/// An order, and its saga's steps when it came from a checkout.
#[utoipa::path(get, path = "/orders/{order_id}", tag = "orders", params(("order_id" = Uuid, Path, description = "The order")),
    responses((status = 200, description = "The order", body = OrderView)))]
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct OrdersQuery {
    /// Only orders in this status.
    #[param(value_type = Option<OrderStatus>)]
    status: Option<String>,
    /// 1–500; 50 when absent.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// The last `order_id` of the previous page.
    before: Option<Uuid>,
}

/// `GET /orders`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct OrderList {
    orders: Vec<db::OrderSummary>,
}

/// What cancelling answers: the order, or, for an order never created, the record
/// that it was cancelled first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum CancelAnswer {
    Order(Box<OrderView>),
    NeverCreated(NeverCreated),
}

/// The null compensation: an order cancelled before it was ever created.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct NeverCreated {
    order_id: Uuid,
    status: OrderStatus,
    null_compensation: bool,
}

/// Orders, newest first.
#[utoipa::path(get, path = "/orders", tag = "orders", params(OrdersQuery),
    responses((status = 200, description = "A page of orders", body = OrderList)))]

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
    ok(&OrderList { orders })
}

/// The order service's own endpoints, for its OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    crate::checkout::checkout,
    create_order,
    list_orders,
    show_order,
    confirm_order,
    cancel_order
))]
pub struct Api;

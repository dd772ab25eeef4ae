//! Order's HTTP handlers: they parse, call [`crate::orders`] (or the saga, for
//! `/checkout`) and render.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use api::{CancelAnswer, CancelOrder, CreateOrder, NoFields, OrderList, SagaCounts, SagaHistory, SagaList, SagaStatus};
use base::Problem;
use serde::Deserialize;
use shared::{
    idempotency::{Idempotency, UnitOfWork},
    routing::{checkout, mutation, mutation_and_read},
    web::{OptionalJson, created, ok},
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    db,
    domain::{OrderEvent, OrderStatus},
    orders::{self, Transitioned},
    saga::log::SagaFilter,
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
    .service(web::resource("/orders/{order_id}").route(web::get().to(show_order)))
    .service(web::resource("/sagas").route(web::get().to(list_sagas)))
    .service(web::resource("/sagas/counts").route(web::get().to(count_sagas)))
    .service(web::resource("/sagas/{saga_id}/history").route(web::get().to(saga_history)));
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
    let (id, is_new) = orders::create(tx, &body).await?;
    let view = crate::view::load_existing(tx, id).await?;
    if is_new { created(&view) } else { ok(&view) }
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

/// The order as a transition left it, or, for a cancel of an order never created,
/// the record of that.
async fn transition(
    mut uow: UnitOfWork,
    id: Uuid,
    event: OrderEvent,
    reason: Option<String>,
) -> Result<HttpResponse, Problem> {
    match orders::transition(uow.tx().await?, id, event, reason).await? {
        Transitioned::Order(view) => ok(&view),
        Transitioned::NeverCreated(record) => ok(&record),
    }
}

/// An order, and its saga's steps when it came from a checkout.
#[utoipa::path(get, path = "/orders/{order_id}", tag = "orders", params(("order_id" = Uuid, Path, description = "The order")),
    responses((status = 200, description = "The order", body = OrderView)))]
async fn show_order(pool: web::Data<PgPool>, id: web::Path<Uuid>) -> Result<HttpResponse, Problem> {
    match crate::view::load_consistent(&pool, *id).await? {
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

/// Orders, newest first.
#[utoipa::path(get, path = "/orders", tag = "orders", params(OrdersQuery),
    responses((status = 200, description = "A page of orders", body = OrderList)))]

async fn list_orders(pool: web::Data<PgPool>, query: web::Query<OrdersQuery>) -> Result<HttpResponse, Problem> {
    let status =
        match query.status.as_deref() {
            None => None,
            Some(raw) => Some(raw.parse::<OrderStatus>().map_err(|_| {
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SagasQuery {
    /// Only sagas in this status.
    #[param(value_type = Option<SagaStatus>)]
    state: Option<String>,
    /// `true`: only unfinished sagas with a step or a compensation past its first
    /// attempt; `false`: only the others.
    retrying: Option<bool>,
    /// Only sagas started at least this many seconds ago.
    #[param(minimum = 0, maximum = 315_360_000)]
    older_than_secs: Option<i64>,
    /// 1–500; 50 when absent.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<Uuid>,
}

/// Sagas, newest first: which are running, retrying, compensating, parked, or stuck
/// for longer than a while.
#[utoipa::path(get, path = "/sagas", tag = "sagas", params(SagasQuery),
    responses((status = 200, description = "A page of sagas", body = SagaList)))]
async fn list_sagas(pool: web::Data<PgPool>, query: web::Query<SagasQuery>) -> Result<HttpResponse, Problem> {
    let status = match query.state.as_deref() {
        None => None,
        Some(raw) => Some(raw.parse::<SagaStatus>().map_err(Problem::invalid)?),
    };
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Problem::invalid(format!(
            "limit must be between 1 and 500, got {limit}"
        )));
    }
    let older_than = match query.older_than_secs {
        None => None,
        Some(secs @ 0..=315_360_000) => Some(Duration::from_secs(secs.unsigned_abs())),
        Some(secs) => {
            return Err(Problem::invalid(format!(
                "older_than_secs must be between 0 and 315360000, got {secs}"
            )));
        }
    };
    let filter = SagaFilter {
        status,
        retrying: query.retrying,
        older_than,
        after: query.cursor,
    };
    ok(&crate::view::sagas(&pool, &filter, limit).await?)
}

/// How many sagas are in each status, and how many unfinished ones are retrying.
#[utoipa::path(get, path = "/sagas/counts", tag = "sagas",
    responses((status = 200, description = "Sagas by status", body = SagaCounts)))]
async fn count_sagas(pool: web::Data<PgPool>) -> Result<HttpResponse, Problem> {
    ok(&crate::saga::log::count_sagas(&pool).await?)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// 1–1000; 200 when absent.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(minimum = 0)]
    cursor: Option<i64>,
}

/// A saga's log as events, oldest first: each attempt started and ended (its outcome,
/// status code, error and duration), compensations, status changes (parking with its
/// reason), resumptions after a restart or out of parking.
#[utoipa::path(get, path = "/sagas/{saga_id}/history", tag = "sagas",
    params(("saga_id" = Uuid, Path, description = "The saga"), HistoryQuery),
    responses((status = 200, description = "A page of the saga's history", body = SagaHistory)))]
async fn saga_history(
    pool: web::Data<PgPool>,
    id: web::Path<Uuid>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, Problem> {
    let limit = query.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::invalid(format!(
            "limit must be between 1 and 1000, got {limit}"
        )));
    }
    if let Some(cursor) = query.cursor.filter(|c| *c < 0) {
        return Err(Problem::invalid(format!("cursor must not be negative, got {cursor}")));
    }
    match crate::view::history(&pool, *id, query.cursor, limit).await? {
        Some(history) => ok(&history),
        None => Err(Problem::not_found(format!("no saga {}", *id))),
    }
}

/// The order service's own endpoints, for its OpenAPI document.
/// `/admin/...` routes of the orchestrator (the scope adds the guard).
pub fn admin_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/replicas").route(web::get().to(list_replicas)));
}

/// The orchestrator replicas on this database — each one's heartbeat (every recovery
/// sweep) and the unfinished sagas whose live lease it holds; replicas not seen for an
/// hour are left out.
#[utoipa::path(get, path = "/admin/replicas", tag = "sagas",
    responses((status = 200, description = "The replicas, live ones first", body = api::ReplicaList)))]
async fn list_replicas(
    engine: web::Data<std::sync::Arc<crate::saga::engine::Engine>>,
) -> Result<HttpResponse, Problem> {
    ok(&shared::lease::replicas_view(&engine.pool, shared::lease::SAGAS, &engine.replica).await?)
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_replicas,
    crate::checkout::checkout,
    create_order,
    list_orders,
    show_order,
    confirm_order,
    cancel_order,
    list_sagas,
    count_sagas,
    saga_history
))]
pub struct Api;

//! The coordinator's HTTP API: the checkout by two-phase commit, and its log.

use std::{sync::Arc, time::Duration};

use actix::Addr;
use actix_web::{HttpRequest, HttpResponse, web};
use api::{
    CheckoutRequest, TransactionCounts, TransactionFilter, TransactionHistory, TransactionList, TransactionView,
};
use base::Problem;
use serde::Deserialize;
use shared::{
    idempotency::ClaimedKey,
    supervisor::Supervisor,
    web::{accepted, created, ok},
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{tpc::protocol::Coordinator, transactions};

/// How long `POST /checkout` waits for the decision before answering 202.
#[derive(Debug, Clone, Copy)]
pub struct CheckoutDeadline(pub Duration);

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(shared::routing::checkout(
        "/checkout",
        web::post().to(checkout),
        "coordinator.checkout",
    ))
    .service(web::resource("/transactions").route(web::get().to(list_transactions)))
    .service(web::resource("/transactions/counts").route(web::get().to(count_transactions)))
    .service(web::resource("/transactions/{id}").route(web::get().to(show_transaction)))
    .service(web::resource("/transactions/{id}/history").route(web::get().to(transaction_history)));
}

/// `POST /checkout`: validate, price, log the transaction, run the protocol, and
/// answer 201 once it is decided and every participant has been told once (202 with
/// `Location` if the deadline passes first).
#[utoipa::path(post, path = "/checkout", tag = "checkout", request_body = CheckoutRequest,
    params(("Idempotency-Key" = inline(String), Header, description = "Required: the checkout's identity; a retry with the same key and body is answered the same, and never starts a second transaction", min_length = 1, max_length = 255, pattern = r"^[\x20-\x7E]+$"),
        ("Prefer" = Option<String>, Header, description = "`respond-async`: answer 202 with `Location` as soon as the transaction is logged, without waiting for its decision")),
    responses(
        (status = 201, description = "Decided (`committed`, or `aborted` with `reason`), every participant told once", body = TransactionView),
        (status = 202, description = "Not decided within the deadline: follow `Location`", body = TransactionView,
            headers(("Location" = String, description = "`/transactions/{id}`"))),
        (status = 400, description = "Invalid: every reason in `errors`; or `Idempotency-Key` missing or malformed"),
        (status = 409, description = "The first request with this key is still being processed"),
        (status = 422, description = "A SKU the catalogue does not have (`unknown-sku`), or the key reused with another body"),
        (status = 503, description = "The inventory (pricing) is unavailable, or the service is overloaded: nothing was done"),
    ))]
#[tracing::instrument(name = "checkout", skip_all, fields(tx.id, order.id))]
#[allow(clippy::too_many_arguments)]
async fn checkout(
    req: HttpRequest,
    key: ClaimedKey,
    body: web::Json<CheckoutRequest>,
    pool: web::Data<PgPool>,
    coordinator: web::Data<Arc<Coordinator>>,
    supervisor: web::Data<Addr<Supervisor<Coordinator>>>,
    deadline: web::Data<CheckoutDeadline>,
) -> Result<HttpResponse, Problem> {
    let checkout_key = format!("{}:{}", key.scope, key.key);
    let baggage = req.headers().get(api::headers::BAGGAGE).and_then(|v| v.to_str().ok());
    let id = transactions::find_or_log(&pool, &coordinator, &checkout_key, &body, baggage).await?;
    tracing::Span::current().record("tx.id", tracing::field::display(id));
    let deadline = if shared::web::prefers_async(&req) {
        Duration::ZERO
    } else {
        deadline.0
    };
    transactions::run_until_answerable(&coordinator, &supervisor, id, deadline).await?;
    let view = transactions::load(&mut *pool.acquire().await?, id).await?;
    tracing::Span::current().record("order.id", tracing::field::display(view.order_id));
    if view.decision.is_some() {
        created(&view)
    } else {
        accepted(&view, &format!("/transactions/{id}"))
    }
}

/// A transaction as it stands.
#[utoipa::path(get, path = "/transactions/{id}", tag = "transactions",
    params(("id" = Uuid, Path, description = "The transaction")),
    responses((status = 200, description = "The transaction", body = TransactionView)))]
async fn show_transaction(pool: web::Data<PgPool>, id: web::Path<Uuid>) -> Result<HttpResponse, Problem> {
    ok(&transactions::load(&mut *pool.acquire().await?, *id).await?)
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

/// A transaction's log as events, oldest first: logged, each vote (or its timeout),
/// the decision logged (the commit point), each phase-two attempt, resumption after
/// a restart, the final state.
#[utoipa::path(get, path = "/transactions/{id}/history", tag = "transactions",
    params(("id" = Uuid, Path, description = "The transaction"), HistoryQuery),
    responses((status = 200, description = "A page of the transaction's history", body = TransactionHistory)))]
async fn transaction_history(
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
    ok(&transactions::history(&mut *pool.acquire().await?, *id, query.cursor, limit).await?)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct TransactionsQuery {
    /// `in_doubt` (unfinished, with a participant that has or may have prepared and
    /// not heard the decision), or a state.
    #[param(pattern = "^(in_doubt|preparing|committing|aborting|committed|aborted)$")]
    state: Option<String>,
    /// 1–500; 50 when absent.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// The last `transaction_id` of the previous page.
    before: Option<Uuid>,
    /// Only the transaction of this order (the checkout's `order_id`).
    order_id: Option<Uuid>,
    /// Only transactions started at least this many seconds ago.
    #[param(minimum = 0, maximum = 315_360_000)]
    older_than_secs: Option<i64>,
}

/// How many transactions are in each state, and how many unfinished ones are in doubt.
#[utoipa::path(get, path = "/transactions/counts", tag = "transactions",
    responses((status = 200, description = "Transactions by state", body = TransactionCounts)))]
async fn count_transactions(pool: web::Data<PgPool>) -> Result<HttpResponse, Problem> {
    ok(&crate::tpc::log::count_transactions(&pool).await?)
}

/// Transactions, newest first.
#[utoipa::path(get, path = "/transactions", tag = "transactions", params(TransactionsQuery),
    responses((status = 200, description = "A page of transactions", body = TransactionList)))]
async fn list_transactions(
    pool: web::Data<PgPool>,
    query: web::Query<TransactionsQuery>,
) -> Result<HttpResponse, Problem> {
    let filter = match query.state.as_deref() {
        Some(raw) => Some(raw.parse::<TransactionFilter>().map_err(Problem::invalid)?),
        None => None,
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
    if let Some(order_id) = query.order_id {
        let id = crate::tpc::log::fetch_transaction_id_by_order(&pool, order_id).await?;
        let mut conn = pool.acquire().await?;
        let transactions = match id {
            Some(id) => vec![transactions::load(&mut conn, id).await?],
            None => Vec::new(),
        };
        let wanted = |view: &TransactionView| filter.is_none_or(|f| f.matches(view));
        return ok(&TransactionList {
            transactions: transactions.into_iter().filter(wanted).collect(),
        });
    }
    ok(&TransactionList {
        transactions: transactions::list(&pool, filter, query.before, older_than, limit).await?,
    })
}

/// The coordinator's own endpoints, for its OpenAPI document.
/// `/admin/...` routes of the coordinator (the scope adds the guard).
pub fn admin_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/replicas").route(web::get().to(list_replicas)));
}

/// The coordinator replicas on this database — each one's heartbeat (every recovery
/// sweep) and the unfinished transactions whose live lease it holds; replicas not
/// seen for an hour are left out.
#[utoipa::path(get, path = "/admin/replicas", tag = "transactions",
    responses((status = 200, description = "The replicas, live ones first", body = api::ReplicaList)))]
async fn list_replicas(coordinator: web::Data<Arc<Coordinator>>) -> Result<HttpResponse, Problem> {
    ok(&shared::lease::replicas_view(&coordinator.pool, shared::lease::TRANSACTIONS, &coordinator.replica).await?)
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_replicas,
    checkout,
    list_transactions,
    count_transactions,
    show_transaction,
    transaction_history
))]
pub struct Api;

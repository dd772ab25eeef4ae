//! Inventory HTTP handlers.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use api::{NoFields, ReserveStock};
use serde::{Deserialize, Serialize};
use shared::{
    ErrorCode, Problem,
    domain::{LineItems, Sku},
    idempotency::{Idempotency, UnitOfWork},
    web::{OptionalJson, created, mutation, ok},
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::{self, ReservationLine, ReservationState};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/inventory").route(web::get().to(list_inventory)))
        .service(web::resource("/inventory/{sku}").route(web::get().to(show_inventory)))
        .service(mutation(
            "/reservations",
            web::post().to(reserve_stock),
            "inventory.reserve",
            Idempotency::optional(),
        ))
        .service(mutation(
            "/reservations/{order_id}/release",
            web::post().to(release_reservation),
            "inventory.release",
            Idempotency::optional(),
        ))
        .service(mutation(
            "/reservations/{order_id}/commit",
            web::post().to(commit_reservation),
            "inventory.commit_reservation",
            Idempotency::optional(),
        ))
        .service(web::resource("/reservations/{order_id}").route(web::get().to(show_reservation)));
}

pub fn admin_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(mutation(
        "/inventory/{sku}",
        web::put().to(set_stock),
        "inventory.restock",
        Idempotency::optional(),
    ));
}

/// `GET /inventory`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Catalogue {
    items: Vec<db::Product>,
}

/// The catalogue: every SKU, its price and its stock.
#[utoipa::path(get, path = "/inventory", tag = "inventory",
    responses((status = 200, description = "The catalogue", body = Catalogue)))]
async fn list_inventory(pool: web::Data<PgPool>) -> Result<HttpResponse, Problem> {
    let items = db::fetch_products(&pool).await?;
    ok(&Catalogue { items })
}

fn parse_sku(raw: &str) -> Result<Sku, Problem> {
    Sku::parse(raw).map_err(Problem::invalid)
}

/// One SKU of the catalogue.
#[utoipa::path(get, path = "/inventory/{sku}", tag = "inventory", params(("sku" = String, Path, pattern = r"^[A-Z0-9-]{1,32}$", description = "A SKU, e.g. `SKU-001`")),
    responses(
        (status = 200, description = "The SKU", body = db::Product),
        (status = 422, description = "The catalogue has no such SKU (`unknown-sku`)"),
    ))]
async fn show_inventory(pool: web::Data<PgPool>, sku: web::Path<String>) -> Result<HttpResponse, Problem> {
    let sku = parse_sku(&sku)?;
    match db::fetch_product(&pool, sku.as_str()).await? {
        Some(product) => ok(&product),
        None => Err(unknown_sku(sku.as_str())),
    }
}

fn unknown_sku(sku: &str) -> Problem {
    Problem::new(ErrorCode::UnknownSku, format!("the catalogue has no {sku}")).with_extension("sku", sku)
}

/// `PUT /admin/inventory/{sku}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SetStock {
    /// The shelf stock; `stocked` moves with it.
    #[schema(minimum = 0, maximum = 1_000_000)]
    available: i64,
}

/// Sets a SKU's shelf stock.
#[utoipa::path(put, path = "/admin/inventory/{sku}", tag = "inventory", params(("sku" = String, Path, pattern = r"^[A-Z0-9-]{1,32}$", description = "A SKU, e.g. `SKU-001`")), request_body = SetStock,
    responses(
        (status = 200, description = "The SKU with its new stock", body = db::Product),
        (status = 422, description = "The catalogue has no such SKU (`unknown-sku`)"),
    ))]
async fn set_stock(
    mut uow: UnitOfWork,
    sku: web::Path<String>,
    body: web::Json<SetStock>,
) -> Result<HttpResponse, Problem> {
    let sku = parse_sku(&sku)?;
    let available = i32::try_from(body.available)
        .ok()
        .filter(|n| (0..=1_000_000).contains(n))
        .ok_or_else(|| {
            Problem::invalid(format!(
                "available must be between 0 and 1000000, got {}",
                body.available
            ))
        })?;
    match db::update_available(uow.tx().await?, sku.as_str(), available).await? {
        Some(product) => ok(&product),
        None => Err(unknown_sku(sku.as_str())),
    }
}

/// A line the shelf cannot fill: an `insufficient-stock` problem lists them in
/// `shortages`.
#[derive(Debug, Serialize)]
struct Shortage<'a> {
    sku: &'a str,
    requested: i32,
    available: i32,
}

/// An order's reservation and its lines.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Reservation {
    order_id: Uuid,
    state: ReservationState,
    /// True when this reservation was released before it was ever made.
    null_compensation: bool,
    lines: Vec<ReservationLine>,
}

async fn reservation(conn: &mut sqlx::PgConnection, row: db::ReservationRow) -> Result<Reservation, Problem> {
    Ok(Reservation {
        order_id: row.order_id,
        state: row.state,
        null_compensation: row.null_compensation,
        lines: db::fetch_reservation_lines(conn, row.order_id).await?,
    })
}

/// Reserves every line or none. A repeated reservation for the order answers with the
/// existing one (no second effect); one after the order's release is refused.
#[utoipa::path(post, path = "/reservations", tag = "reservations", request_body = ReserveStock,
    responses(
        (status = 201, description = "Reserved", body = Reservation),
        (status = 200, description = "The order's reservation existed already: it", body = Reservation),
        (status = 409, description = "The order's reservation was released already (`action-after-compensation`)"),
        (status = 422, description = "A SKU the catalogue does not have, or not enough stock (`insufficient-stock`, with what is available)"),
        (status = 423, description = "The stock rows are locked by another transaction (an in-doubt 2PC, say): nothing was done, retry"),
    ))]
#[tracing::instrument(skip_all, fields(order.id = %body.order_id))]
async fn reserve_stock(mut uow: UnitOfWork, body: web::Json<ReserveStock>) -> Result<HttpResponse, Problem> {
    let items = LineItems::parse(&body.items)?;
    let tx = uow.tx().await?;
    match reserve(tx, body.order_id, &items).await? {
        Reserved::New => {
            let row = db::ReservationRow {
                order_id: body.order_id,
                state: ReservationState::Held,
                null_compensation: false,
            };
            created(&reservation(tx, row).await?)
        }
        Reserved::Existing(existing) => existing_reservation(tx, existing).await,
    }
}

/// What [`reserve`] did.
pub enum Reserved {
    /// Held the stock for the order.
    New,
    /// The order already had a reservation; nothing changed.
    Existing(db::ReservationRow),
}

/// Holds every line's stock for the order, or none of it: rows are locked in SKU
/// order, so concurrent reservations queue instead of overselling or deadlocking.
/// Waiting for locks held by an in-doubt 2PC transaction gives up after 1.5 s (423),
/// before the saga's 2 s step timeout, so the caller learns why.
pub async fn reserve(conn: &mut sqlx::PgConnection, order_id: Uuid, items: &LineItems) -> Result<Reserved, Problem> {
    sqlx::query("SET LOCAL lock_timeout = '1500ms'")
        .execute(&mut *conn)
        .await?;
    if let Some(existing) = db::fetch_reservation(conn, order_id, true).await.map_err(locked)? {
        return Ok(Reserved::Existing(existing));
    }
    let (skus, quantities) = (items.skus(), items.quantities());
    let available: HashMap<String, i32> = db::lock_products(conn, &skus)
        .await
        .map_err(locked)?
        .into_iter()
        .collect();
    if let Some(missing) = skus.iter().find(|sku| !available.contains_key(*sku)) {
        return Err(unknown_sku(missing));
    }
    let short: Vec<Shortage> = skus
        .iter()
        .zip(&quantities)
        .map(|(sku, requested)| Shortage {
            sku,
            requested: *requested,
            available: available.get(sku).copied().unwrap_or(0),
        })
        .filter(|line| line.available < line.requested)
        .collect();
    if !short.is_empty() {
        return Err(Problem::new(
            ErrorCode::InsufficientStock,
            "not enough stock for every line; nothing was reserved",
        )
        .with_extension("shortages", serde_json::to_value(&short).map_err(Problem::internal)?));
    }
    if !db::insert_reservation(conn, order_id, ReservationState::Held, false).await? {
        // A concurrent request for the same order got there first.
        let existing = db::fetch_reservation(conn, order_id, true).await?;
        return existing
            .map(Reserved::Existing)
            .ok_or_else(|| Problem::internal(anyhow::anyhow!("reservation vanished")));
    }
    db::insert_reservation_lines(conn, order_id, &skus, &quantities).await?;
    Ok(Reserved::New)
}

/// A lock wait that timed out: the rows are held by another transaction.
fn locked(e: sqlx::Error) -> Problem {
    if shared::db::is_lock_timeout(&e) {
        Problem::new(
            ErrorCode::RowsLocked,
            "the stock rows are locked by another transaction (an in-doubt two-phase commit holds them); retry later",
        )
        .with_retry_after(1)
    } else {
        Problem::from(e)
    }
}

async fn existing_reservation(
    tx: &mut sqlx::PgConnection,
    existing: db::ReservationRow,
) -> Result<HttpResponse, Problem> {
    match existing.state {
        ReservationState::Released => Err(Problem::new(
            ErrorCode::ActionAfterCompensation,
            format!(
                "order {} was already released; a reservation arriving after its release is refused",
                existing.order_id
            ),
        )),
        ReservationState::Held | ReservationState::Committed => ok(&reservation(tx, existing).await?),
    }
}

/// Compensation: gives the stock back. Releasing an order that never reserved
/// succeeds as a recorded no-op (null compensation).
#[utoipa::path(post, path = "/reservations/{order_id}/release", tag = "reservations", params(("order_id" = Uuid, Path, description = "The order the reservation is for")),
    request_body = Option<NoFields>,
    responses(
        (status = 200, description = "Released (or the null compensation)", body = Reservation),
        (status = 409, description = "The reservation was committed already"),
        (status = 423, description = "The stock rows are locked by another transaction: nothing was done, retry"),
    ))]
#[tracing::instrument(skip_all, fields(order.id = %order_id))]
async fn release_reservation(
    _: OptionalJson<NoFields>,
    mut uow: UnitOfWork,
    order_id: web::Path<Uuid>,
) -> Result<HttpResponse, Problem> {
    let order_id = order_id.into_inner();
    let tx = uow.tx().await?;
    if db::insert_reservation(tx, order_id, ReservationState::Released, true).await? {
        tracing::info!("null compensation: released an order that had no reservation");
        let row = db::ReservationRow {
            order_id,
            state: ReservationState::Released,
            null_compensation: true,
        };
        return ok(&reservation(tx, row).await?);
    }
    let row = db::fetch_reservation(tx, order_id, true)
        .await?
        .ok_or_else(|| Problem::internal(anyhow::anyhow!("reservation vanished")))?;
    match row.state {
        ReservationState::Released => ok(&reservation(tx, row).await?),
        ReservationState::Committed => Err(Problem::new(
            ErrorCode::Conflict,
            format!("order {order_id}'s reservation is committed (sold); it cannot be released"),
        )),
        ReservationState::Held => {
            db::update_reservation_state(tx, order_id, ReservationState::Released).await?;
            let row = db::ReservationRow {
                state: ReservationState::Released,
                ..row
            };
            ok(&reservation(tx, row).await?)
        }
    }
}

/// Turns held stock into sold stock, once.
#[utoipa::path(post, path = "/reservations/{order_id}/commit", tag = "reservations", params(("order_id" = Uuid, Path, description = "The order the reservation is for")),
    request_body = Option<NoFields>,
    responses(
        (status = 200, description = "Committed", body = Reservation),
        (status = 409, description = "No reservation for the order, or it was released"),
        (status = 423, description = "The stock rows are locked by another transaction: nothing was done, retry"),
    ))]
#[tracing::instrument(skip_all, fields(order.id = %order_id))]
async fn commit_reservation(
    _: OptionalJson<NoFields>,
    mut uow: UnitOfWork,
    order_id: web::Path<Uuid>,
) -> Result<HttpResponse, Problem> {
    let order_id = order_id.into_inner();
    let tx = uow.tx().await?;
    let Some(row) = db::fetch_reservation(tx, order_id, true).await? else {
        return Err(Problem::new(
            ErrorCode::Conflict,
            format!("order {order_id} has no reservation to commit"),
        ));
    };
    match row.state {
        ReservationState::Committed => ok(&reservation(tx, row).await?),
        ReservationState::Released => Err(Problem::new(
            ErrorCode::Conflict,
            format!("order {order_id}'s reservation was released; it cannot be committed"),
        )),
        ReservationState::Held => {
            db::update_reservation_state(tx, order_id, ReservationState::Committed).await?;
            let row = db::ReservationRow {
                state: ReservationState::Committed,
                ..row
            };
            ok(&reservation(tx, row).await?)
        }
    }
}

/// An order's reservation.
#[utoipa::path(get, path = "/reservations/{order_id}", tag = "reservations", params(("order_id" = Uuid, Path, description = "The order the reservation is for")),
    responses((status = 200, description = "The reservation", body = Reservation)))]
async fn show_reservation(pool: web::Data<PgPool>, order_id: web::Path<Uuid>) -> Result<HttpResponse, Problem> {
    let mut conn = pool.acquire().await?;
    match db::fetch_reservation(&mut conn, *order_id, false).await? {
        Some(row) => ok(&reservation(&mut conn, row).await?),
        None => Err(Problem::not_found(format!("order {} has no reservation", *order_id))),
    }
}

/// The inventory service's own endpoints, for its OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_inventory,
    show_inventory,
    reserve_stock,
    release_reservation,
    commit_reservation,
    show_reservation,
    set_stock
))]
pub struct Api;

//! Inventory's HTTP handlers: they parse, call [`crate::stock`] and render.

use actix_web::{HttpResponse, web};
use api::{Catalogue, NoFields, ReserveStock, SetStock};
use base::Problem;
use shared::{
    domain::{LineItems, Sku},
    idempotency::{Idempotency, UnitOfWork},
    routing::mutation,
    web::{OptionalJson, created, ok},
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    db,
    stock::{self, Reservation},
};

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
        None => Err(stock::unknown_sku(sku.as_str())),
    }
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
    ok(&stock::set_available(uow.tx().await?, &sku, body.available).await?)
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
    match stock::reserve_for(uow.tx().await?, body.order_id, &items).await? {
        (reservation, true) => created(&reservation),
        (reservation, false) => ok(&reservation),
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
    ok(&stock::release(uow.tx().await?, order_id.into_inner()).await?)
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
    ok(&stock::commit(uow.tx().await?, order_id.into_inner()).await?)
}

/// An order's reservation.
#[utoipa::path(get, path = "/reservations/{order_id}", tag = "reservations", params(("order_id" = Uuid, Path, description = "The order the reservation is for")),
    responses((status = 200, description = "The reservation", body = Reservation)))]
async fn show_reservation(pool: web::Data<PgPool>, order_id: web::Path<Uuid>) -> Result<HttpResponse, Problem> {
    let mut conn = pool.acquire().await?;
    match db::fetch_reservation(&mut conn, *order_id, false).await? {
        Some(row) => ok(&stock::reservation(&mut conn, row).await?),
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

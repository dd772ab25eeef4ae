//! Inventory's part in a two-phase-commit checkout: the order's stock, sold outright
//! (`available → sold`), inside the transaction that is prepared. Its row locks are
//! held until the coordinator's decision arrives.

use api::{LineItemRequest, Participant, ReserveStock, StockSold};
use base::{ErrorCode, Problem};
use participant::TpcWork;
use shared::domain::LineItems;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    db::{self, ReservationState},
    stock::{Reserved, reserve},
};

pub struct InventoryTpc;

impl TpcWork for InventoryTpc {
    const PARTICIPANT: Participant = Participant::Inventory;
    const PREPARE_OPERATION: &'static str = "inventory.prepare";
    const COMMIT_OPERATION: &'static str = "inventory.commit";
    const ABORT_OPERATION: &'static str = "inventory.abort";
    type Payload = ReserveStock;
    type Detail = StockSold;

    /// The SKUs whose stock it changed: their rows stay locked until the decision.
    async fn held_rows(conn: &mut PgConnection, xid: &str) -> Result<Vec<String>, sqlx::Error> {
        db::fetch_skus_held_by(conn, xid).await
    }

    async fn prepare(&self, conn: &mut PgConnection, _: Uuid, payload: ReserveStock) -> Result<StockSold, Problem> {
        let items = LineItems::parse(&payload.items)?;
        match reserve(conn, payload.order_id, &items).await? {
            Reserved::Existing(_) => Err(Problem::new(
                ErrorCode::Conflict,
                format!("order {} already has a reservation", payload.order_id),
            )),
            Reserved::New => {
                db::update_reservation_state(conn, payload.order_id, ReservationState::Committed).await?;
                Ok(StockSold {
                    order_id: payload.order_id,
                    sold: items
                        .iter()
                        .map(|line| LineItemRequest {
                            sku: line.sku.as_str().to_owned(),
                            quantity: i64::from(line.quantity.get()),
                        })
                        .collect(),
                })
            }
        }
    }
}

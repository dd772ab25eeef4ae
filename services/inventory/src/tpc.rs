//! Inventory's part in a two-phase-commit checkout: the order's stock, sold outright
//! (`available → sold`), inside the transaction that is prepared. Its row locks are
//! held until the coordinator's decision arrives.

use api::ReserveStock;
use shared::{ErrorCode, Problem, domain::LineItems, tpc::TpcWork};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    db::{self, ReservationState},
    routes::{Reserved, reserve},
};

pub struct InventoryTpc;

impl TpcWork for InventoryTpc {
    const PARTICIPANT: &'static str = "inventory";
    const PREPARE_OPERATION: &'static str = "inventory.prepare";
    const COMMIT_OPERATION: &'static str = "inventory.commit";
    const ABORT_OPERATION: &'static str = "inventory.abort";
    type Payload = ReserveStock;

    async fn prepare(
        &self,
        conn: &mut PgConnection,
        _: Uuid,
        payload: ReserveStock,
    ) -> Result<serde_json::Value, Problem> {
        let items = LineItems::parse(&payload.items)?;
        match reserve(conn, payload.order_id, &items).await? {
            Reserved::Existing(_) => Err(Problem::new(
                ErrorCode::Conflict,
                format!("order {} already has a reservation", payload.order_id),
            )),
            Reserved::New => {
                db::update_reservation_state(conn, payload.order_id, ReservationState::Committed).await?;
                Ok(serde_json::json!({ "order_id": payload.order_id, "sold": items }))
            }
        }
    }
}

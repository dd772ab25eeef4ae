//! The order service's part in a two-phase-commit checkout: the order, created and
//! confirmed inside the transaction that is prepared.

use api::{CreateOrder, OrderPrepared, Participant};
use base::{ErrorCode, Problem};
use participant::TpcWork;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{db, domain::OrderStatus, orders::create};

pub struct OrderTpc;

impl TpcWork for OrderTpc {
    const PARTICIPANT: Participant = Participant::Order;
    const PREPARE_OPERATION: &'static str = "order.prepare";
    const COMMIT_OPERATION: &'static str = "order.commit";
    const ABORT_OPERATION: &'static str = "order.abort";
    type Payload = CreateOrder;
    type Detail = OrderPrepared;

    async fn prepare(&self, conn: &mut PgConnection, _: Uuid, request: CreateOrder) -> Result<OrderPrepared, Problem> {
        let (id, is_new) = create(conn, &request).await?;
        if !is_new {
            return Err(Problem::new(ErrorCode::Conflict, format!("order {id} already exists")));
        }
        db::update_order_status(conn, id, OrderStatus::Confirmed, None).await?;
        Ok(OrderPrepared {
            order_id: id,
            status: OrderStatus::Confirmed,
        })
    }
}

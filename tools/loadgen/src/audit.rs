//! The consistency auditor: the brief's invariants, checked through the services'
//! read APIs after any run with any fault mix.
//!
//! - stock: `stocked = available + reserved + sold`, nothing negative, and no more
//!   stock held than pending orders account for;
//! - a confirmed order has exactly one successful charge for its total, a committed
//!   reservation and exactly one confirmation email, delivered;
//! - a cancelled order has net charge 0, no held stock and no email;
//! - no order is charged twice; refunds never exceed charges;
//! - nothing stays unfinished past the window unless visibly parked;
//! - no prepared transaction is left at any participant.

use std::{collections::HashMap, time::Duration};

use anyhow::Context as _;
use api::{
    Catalogue, Email, EmailState, Emails, OrderList, OrderStatus, OrderSummary, OrderView, Participant, Payments,
    PreparedList, Product, Reservation, ReservationState, SagaStatus, TransactionList, TransactionState,
};
use futures_util::{StreamExt, stream};
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct Endpoints {
    pub order: String,
    pub inventory: String,
    pub payment: String,
    pub email: String,
    pub coordinator: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AuditSettings {
    pub endpoints: Endpoints,
    /// How long the auditor waits for running sagas and transactions to finish.
    pub settle: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub invariant: &'static str,
    pub order_id: Option<String>,
    pub trace_id: Option<String>,
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VIOLATION {}: order {} (trace {}): {}",
            self.invariant,
            self.order_id.as_deref().unwrap_or("-"),
            self.trace_id.as_deref().unwrap_or("-"),
            self.detail
        )
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditReport {
    pub orders: usize,
    pub confirmed: usize,
    pub cancelled: usize,
    /// Pending with a parked saga: visibly waiting for the recovery actor.
    pub parked: usize,
    pub transactions: usize,
    pub violations: Vec<Violation>,
}

impl AuditReport {
    pub fn summary(&self) -> String {
        format!(
            "audited {} orders ({} confirmed, {} cancelled, {} parked) and {} 2PC transactions: {} violations",
            self.orders,
            self.confirmed,
            self.cancelled,
            self.parked,
            self.transactions,
            self.violations.len()
        )
    }
}

struct Api {
    client: reqwest::Client,
}

impl Api {
    /// The answer's status, and its body as `T` when the status is 200.
    async fn get<T: DeserializeOwned>(&self, url: &str) -> anyhow::Result<(u16, Option<T>)> {
        let response = self.client.get(url).send().await?;
        let status = response.status().as_u16();
        if status != 200 {
            return Ok((status, None));
        }
        let body = response
            .json()
            .await
            .with_context(|| format!("GET {url}: an unexpected body"))?;
        Ok((status, Some(body)))
    }

    /// A body that must be there.
    async fn json<T: DeserializeOwned>(&self, url: &str) -> anyhow::Result<T> {
        let response = self.client.get(url).send().await?;
        let status = response.status();
        if status != 200 {
            let body = response.text().await.unwrap_or_default();
            anyhow::bail!("GET {url}: {status} {body}");
        }
        response
            .json()
            .await
            .with_context(|| format!("GET {url}: an unexpected body"))
    }

    /// Every page of a newest-first listing with a `before` cursor.
    async fn all<P: DeserializeOwned, T>(
        &self,
        base: &str,
        items: impl Fn(P) -> Vec<T>,
        id: impl Fn(&T) -> Uuid,
    ) -> anyhow::Result<Vec<T>> {
        let mut all = Vec::new();
        let mut before: Option<Uuid> = None;
        loop {
            let cursor = before.map(|b| format!("&before={b}")).unwrap_or_default();
            let page = items(self.json(&format!("{base}limit=500{cursor}")).await?);
            let done = page.len() < 500;
            before = page.last().map(&id);
            all.extend(page);
            if done || before.is_none() {
                return Ok(all);
            }
        }
    }

    async fn orders(&self, base: &str) -> anyhow::Result<Vec<OrderSummary>> {
        self.all(base, |list: OrderList| list.orders, |o| o.order_id).await
    }
}

pub async fn audit(settings: &AuditSettings) -> anyhow::Result<AuditReport> {
    let api = Api {
        client: reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?,
    };
    let e = &settings.endpoints;
    settle(&api, e, settings.settle).await?;

    let mut report = AuditReport::default();
    let summaries = api.orders(&format!("{}/orders?", e.order)).await?;
    report.orders = summaries.len();
    let checked: Vec<anyhow::Result<(OrderView, Vec<Violation>)>> = stream::iter(summaries)
        .map(|summary| check_order(&api, e, summary.order_id))
        .buffer_unordered(16)
        .collect()
        .await;
    let mut held_by_pending: HashMap<String, i64> = HashMap::new();
    for result in checked {
        let (order, violations) = result?;
        report.violations.extend(violations);
        match order.status {
            OrderStatus::Confirmed => report.confirmed += 1,
            OrderStatus::Cancelled => report.cancelled += 1,
            OrderStatus::Pending => {
                report.parked += usize::from(is_parked(&order));
                for item in &order.items {
                    *held_by_pending.entry(item.sku.clone()).or_default() += i64::from(item.quantity);
                }
            }
        }
    }
    report.violations.extend(check_stock(&api, e, &held_by_pending).await?);
    if let Some(coordinator) = &e.coordinator {
        let transactions = api
            .all(
                &format!("{coordinator}/transactions?"),
                |list: TransactionList| list.transactions,
                |tx| tx.transaction_id,
            )
            .await?;
        report.transactions = transactions.len();
        for tx in transactions {
            if !tx.state.is_final() {
                report.violations.push(Violation {
                    invariant: "2pc-finished",
                    order_id: Some(tx.order_id.to_string()),
                    trace_id: tx.trace_id.clone(),
                    detail: format!("transaction {} is still {}", tx.transaction_id, tx.state),
                });
            }
        }
    }
    for (name, url) in [
        (Participant::Order, &e.order),
        (Participant::Inventory, &e.inventory),
        (Participant::Payment, &e.payment),
        (Participant::Email, &e.email),
    ] {
        let prepared: PreparedList = api.json(&format!("{url}/tpc/prepared")).await?;
        for held in prepared.prepared {
            report.violations.push(Violation {
                invariant: "no-prepared-left",
                order_id: None,
                trace_id: None,
                detail: format!(
                    "{name} still holds prepared transaction {} (prepared {:.1} s ago)",
                    held.gid, held.age_seconds
                ),
            });
        }
    }
    Ok(report)
}

fn is_parked(order: &OrderView) -> bool {
    order.saga.as_ref().is_some_and(|s| s.status == SagaStatus::Parked)
}

/// Waits until no saga is running (pending orders are parked, if any) and no 2PC
/// transaction is unfinished, or `settle` has passed.
async fn settle(api: &Api, e: &Endpoints, settle: Duration) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + settle;
    loop {
        let pending = api.orders(&format!("{}/orders?status=pending&", e.order)).await?;
        let mut running = 0;
        for order in &pending {
            let (_, view) = api
                .get::<OrderView>(&format!("{}/orders/{}", e.order, order.order_id))
                .await?;
            running += usize::from(!view.is_some_and(|v| is_parked(&v)));
        }
        let mut unfinished = 0;
        if let Some(coordinator) = &e.coordinator {
            for state in [
                TransactionState::Preparing,
                TransactionState::Committing,
                TransactionState::Aborting,
            ] {
                let listed: TransactionList = api
                    .json(&format!("{coordinator}/transactions?state={state}&limit=500"))
                    .await?;
                unfinished += listed.transactions.len();
            }
        }
        if (running == 0 && unfinished == 0) || std::time::Instant::now() > deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn check_order(api: &Api, e: &Endpoints, id: Uuid) -> anyhow::Result<(OrderView, Vec<Violation>)> {
    let order: OrderView = api.json(&format!("{}/orders/{id}", e.order)).await?;
    let payments: Payments = api.json(&format!("{}/payments?order_id={id}", e.payment)).await?;
    let (_, reservation) = api
        .get::<Reservation>(&format!("{}/reservations/{id}", e.inventory))
        .await?;
    let emails = settled_emails(api, e, id, order.status == OrderStatus::Confirmed).await?;
    let mut violations = Vec::new();
    let mut violation = |invariant: &'static str, detail: String| {
        violations.push(Violation {
            invariant,
            order_id: Some(id.to_string()),
            trace_id: order.trace_id.clone(),
            detail,
        })
    };
    let succeeded = payments.succeeded().count();
    let (charged, refunded, net) = (payments.charged_cents, payments.refunded_cents, payments.net_cents);
    if succeeded > 1 {
        violation("charged-once", format!("{succeeded} successful charges"));
    }
    if refunded > charged {
        violation("refunds-within-charges", format!("refunded {refunded} of {charged}"));
    }
    let reservation_state = reservation.map(|r| r.state);
    match order.status {
        OrderStatus::Confirmed => {
            if succeeded != 1 || net != order.total_cents {
                violation(
                    "confirmed-charged",
                    format!("{succeeded} charges, net {net}, total {}", order.total_cents),
                );
            }
            if reservation_state != Some(ReservationState::Committed) {
                violation(
                    "confirmed-stock-committed",
                    format!("reservation is {}", shown(reservation_state)),
                );
            }
            if emails.len() != 1 || emails[0].state != EmailState::Delivered {
                let states: Vec<String> = emails.iter().map(|m| m.state.to_string()).collect();
                violation("confirmed-one-email", format!("emails: {states:?}"));
            }
        }
        OrderStatus::Cancelled => {
            if net != 0 {
                violation("cancelled-net-zero", format!("net charge {net}"));
            }
            if matches!(
                reservation_state,
                Some(ReservationState::Held | ReservationState::Committed)
            ) {
                violation(
                    "cancelled-no-stock",
                    format!("reservation is {}", shown(reservation_state)),
                );
            }
            if !emails.is_empty() {
                violation("cancelled-no-email", format!("{} emails", emails.len()));
            }
        }
        OrderStatus::Pending => {
            if !is_parked(&order) {
                let saga = order.saga.as_ref().map(|s| s.status);
                violation("finished-or-parked", format!("order is pending, saga {}", shown(saga)));
            }
        }
    }
    Ok((order, violations))
}

/// A status that may be absent, by its API name.
fn shown<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "none".to_owned(), |v| v.to_string())
}

/// The order's emails; a confirmation still in the outbox is given up to 10 s to be
/// delivered (delivery happens after the saga, at least once) before it counts.
async fn settled_emails(api: &Api, e: &Endpoints, id: Uuid, confirmed: bool) -> anyhow::Result<Vec<Email>> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let emails: Emails = api.json(&format!("{}/emails?order_id={id}", e.email)).await?;
        let waiting = confirmed && emails.emails.iter().any(|m| m.state == EmailState::Pending);
        if !waiting || std::time::Instant::now() > deadline {
            return Ok(emails.emails);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn check_stock(
    api: &Api,
    e: &Endpoints,
    held_by_pending: &HashMap<String, i64>,
) -> anyhow::Result<Vec<Violation>> {
    let catalogue: Catalogue = api.json(&format!("{}/inventory", e.inventory)).await?;
    let mut violations = Vec::new();
    for item in catalogue.items {
        let Product {
            sku,
            available,
            reserved,
            sold,
            stocked,
            ..
        } = &item;
        let mut bad = |detail: String| {
            violations.push(Violation {
                invariant: "stock-conserved",
                order_id: None,
                trace_id: None,
                detail: format!("{sku}: {detail}"),
            })
        };
        if *available < 0 || *reserved < 0 || *sold < 0 {
            bad(format!("negative counter: {item:?}"));
        }
        if *stocked != available + reserved + sold {
            bad(format!("stocked {stocked} != available + reserved + sold: {item:?}"));
        }
        let accounted = held_by_pending.get(sku).copied().unwrap_or_default();
        if i64::from(*reserved) > accounted {
            bad(format!(
                "{reserved} reserved but pending orders account for {accounted}"
            ));
        }
    }
    Ok(violations)
}

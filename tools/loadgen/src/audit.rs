//! The consistency auditor: the brief's invariants (`api::invariants`), checked
//! through the services' read APIs after any run with any fault mix.
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
pub use api::invariants::Violation;
use api::{
    Catalogue, Email, EmailState, Emails, OrderList, OrderStatus, OrderSummary, OrderView, Participant, Payments,
    PreparedList, Reservation, TransactionList, TransactionState,
    invariants::{CheckoutFacts, check_checkout, check_stock as check_stock_of, is_parked},
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
    let violations = check_checkout(CheckoutFacts {
        order: &order,
        payments: &payments,
        reservation: reservation.as_ref(),
        emails: &emails,
    });
    Ok((order, violations))
}

/// How long a confirmation still in the outbox is given to be delivered before it
/// counts: longer than the email dispatcher's claim lease (60 s), since an email
/// claimed by a dispatcher that was killed before sending is sent again only once its
/// lease ends. Only a pending email is waited for.
const EMAIL_GRACE: Duration = Duration::from_secs(65);

/// The order's emails, a confirmation still in the outbox given [`EMAIL_GRACE`] to be
/// delivered (delivery happens after the saga, at least once).
async fn settled_emails(api: &Api, e: &Endpoints, id: Uuid, confirmed: bool) -> anyhow::Result<Vec<Email>> {
    let deadline = std::time::Instant::now() + EMAIL_GRACE;
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
    Ok(catalogue
        .items
        .iter()
        .flat_map(|item| check_stock_of(item, held_by_pending.get(&item.sku).copied().unwrap_or_default()))
        .collect())
}

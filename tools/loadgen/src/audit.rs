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

use futures_util::{StreamExt, stream};
use serde::Serialize;
use serde_json::Value;

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
    async fn get(&self, url: &str) -> anyhow::Result<(u16, Value)> {
        let response = self.client.get(url).send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    async fn json(&self, url: &str) -> anyhow::Result<Value> {
        match self.get(url).await? {
            (200, body) => Ok(body),
            (status, body) => anyhow::bail!("GET {url}: {status} {body}"),
        }
    }

    /// Every page of a newest-first listing with a `before` cursor.
    async fn all(&self, base: &str, key: &str, id: &str) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let cursor = before.as_ref().map(|b| format!("&before={b}")).unwrap_or_default();
            let page = self.json(&format!("{base}limit=500{cursor}")).await?;
            let page = page[key].as_array().cloned().unwrap_or_default();
            let done = page.len() < 500;
            before = page.last().and_then(|i| i[id].as_str()).map(str::to_owned);
            items.extend(page);
            if done || before.is_none() {
                return Ok(items);
            }
        }
    }
}

pub async fn audit(settings: &AuditSettings) -> anyhow::Result<AuditReport> {
    let api = Api {
        client: reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?,
    };
    let e = &settings.endpoints;
    settle(&api, e, settings.settle).await?;

    let mut report = AuditReport::default();
    let summaries = api.all(&format!("{}/orders?", e.order), "orders", "order_id").await?;
    report.orders = summaries.len();
    let checked: Vec<anyhow::Result<(Value, Vec<Violation>)>> = stream::iter(summaries)
        .map(|summary| check_order(&api, e, summary))
        .buffer_unordered(16)
        .collect()
        .await;
    let mut held_by_pending: HashMap<String, i64> = HashMap::new();
    for result in checked {
        let (order, violations) = result?;
        report.violations.extend(violations);
        match order["status"].as_str() {
            Some("confirmed") => report.confirmed += 1,
            Some("cancelled") => report.cancelled += 1,
            _ => {
                report.parked += usize::from(order["saga"]["status"] == "parked");
                for item in order["items"].as_array().into_iter().flatten() {
                    *held_by_pending
                        .entry(item["sku"].as_str().unwrap_or_default().to_owned())
                        .or_default() += item["quantity"].as_i64().unwrap_or_default();
                }
            }
        }
    }
    report.violations.extend(check_stock(&api, e, &held_by_pending).await?);
    if let Some(coordinator) = &e.coordinator {
        let transactions = api
            .all(
                &format!("{coordinator}/transactions?"),
                "transactions",
                "transaction_id",
            )
            .await?;
        report.transactions = transactions.len();
        for tx in transactions {
            if !matches!(tx["state"].as_str(), Some("committed" | "aborted")) {
                report.violations.push(Violation {
                    invariant: "2pc-finished",
                    order_id: tx["order_id"].as_str().map(str::to_owned),
                    trace_id: tx["trace_id"].as_str().map(str::to_owned),
                    detail: format!("transaction {} is still {}", tx["transaction_id"], tx["state"]),
                });
            }
        }
    }
    for (name, url) in [
        ("order", &e.order),
        ("inventory", &e.inventory),
        ("payment", &e.payment),
        ("email", &e.email),
    ] {
        let prepared = api.json(&format!("{url}/tpc/prepared")).await?;
        for held in prepared["prepared"].as_array().into_iter().flatten() {
            report.violations.push(Violation {
                invariant: "no-prepared-left",
                order_id: None,
                trace_id: None,
                detail: format!("{name} still holds prepared transaction {held}"),
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
        let pending = api
            .all(&format!("{}/orders?status=pending&", e.order), "orders", "order_id")
            .await?;
        let mut running = 0;
        for order in &pending {
            let id = order["order_id"].as_str().unwrap_or_default();
            let (_, view) = api.get(&format!("{}/orders/{id}", e.order)).await?;
            running += usize::from(view["saga"]["status"] != "parked");
        }
        let mut unfinished = 0;
        if let Some(coordinator) = &e.coordinator {
            for state in ["preparing", "committing", "aborting"] {
                let listed = api
                    .json(&format!("{coordinator}/transactions?state={state}&limit=500"))
                    .await?;
                unfinished += listed["transactions"].as_array().map(Vec::len).unwrap_or(0);
            }
        }
        if (running == 0 && unfinished == 0) || std::time::Instant::now() > deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn check_order(api: &Api, e: &Endpoints, summary: Value) -> anyhow::Result<(Value, Vec<Violation>)> {
    let id = summary["order_id"].as_str().unwrap_or_default().to_owned();
    let order = api.json(&format!("{}/orders/{id}", e.order)).await?;
    let payments = api.json(&format!("{}/payments?order_id={id}", e.payment)).await?;
    let (reservation_status, reservation) = api.get(&format!("{}/reservations/{id}", e.inventory)).await?;
    let emails = settled_emails(api, e, &id, order["status"] == "confirmed").await?;
    let trace_id = order["trace_id"].as_str().map(str::to_owned);
    let mut violations = Vec::new();
    let mut violation = |invariant: &'static str, detail: String| {
        violations.push(Violation {
            invariant,
            order_id: Some(id.clone()),
            trace_id: trace_id.clone(),
            detail,
        })
    };
    let succeeded = payments["charges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["state"] == "succeeded")
        .count();
    let (charged, refunded, net) = (
        payments["charged_cents"].as_i64().unwrap_or_default(),
        payments["refunded_cents"].as_i64().unwrap_or_default(),
        payments["net_cents"].as_i64().unwrap_or_default(),
    );
    if succeeded > 1 {
        violation("charged-once", format!("{succeeded} successful charges"));
    }
    if refunded > charged {
        violation("refunds-within-charges", format!("refunded {refunded} of {charged}"));
    }
    let reservation_state =
        (reservation_status == 200).then(|| reservation["state"].as_str().unwrap_or_default().to_owned());
    match order["status"].as_str() {
        Some("confirmed") => {
            if succeeded != 1 || net != order["total_cents"].as_i64().unwrap_or(-1) {
                violation(
                    "confirmed-charged",
                    format!("{succeeded} charges, net {net}, total {}", order["total_cents"]),
                );
            }
            if reservation_state.as_deref() != Some("committed") {
                violation(
                    "confirmed-stock-committed",
                    format!("reservation is {reservation_state:?}"),
                );
            }
            if emails.len() != 1 || emails[0]["state"] != "delivered" {
                let states: Vec<&Value> = emails.iter().map(|m| &m["state"]).collect();
                violation("confirmed-one-email", format!("emails: {states:?}"));
            }
        }
        Some("cancelled") => {
            if net != 0 {
                violation("cancelled-net-zero", format!("net charge {net}"));
            }
            if reservation_state.as_deref() == Some("held") || reservation_state.as_deref() == Some("committed") {
                violation("cancelled-no-stock", format!("reservation is {reservation_state:?}"));
            }
            if !emails.is_empty() {
                violation("cancelled-no-email", format!("{} emails", emails.len()));
            }
        }
        other => {
            if order["saga"]["status"] != "parked" {
                violation(
                    "finished-or-parked",
                    format!("order is {other:?}, saga {}", order["saga"]["status"]),
                );
            }
        }
    }
    Ok((order, violations))
}

/// The order's emails; a confirmation still in the outbox is given up to 10 s to be
/// delivered (delivery happens after the saga, at least once) before it counts.
async fn settled_emails(api: &Api, e: &Endpoints, id: &str, confirmed: bool) -> anyhow::Result<Vec<Value>> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let emails = api.json(&format!("{}/emails?order_id={id}", e.email)).await?;
        let emails = emails["emails"].as_array().cloned().unwrap_or_default();
        let waiting = confirmed && emails.iter().any(|m| m["state"] == "pending");
        if !waiting || std::time::Instant::now() > deadline {
            return Ok(emails);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn check_stock(
    api: &Api,
    e: &Endpoints,
    held_by_pending: &HashMap<String, i64>,
) -> anyhow::Result<Vec<Violation>> {
    let catalogue = api.json(&format!("{}/inventory", e.inventory)).await?;
    let mut violations = Vec::new();
    for item in catalogue["items"].as_array().into_iter().flatten() {
        let n = |k: &str| item[k].as_i64().unwrap_or(-1);
        let sku = item["sku"].as_str().unwrap_or_default();
        let mut bad = |detail: String| {
            violations.push(Violation {
                invariant: "stock-conserved",
                order_id: None,
                trace_id: None,
                detail: format!("{sku}: {detail}"),
            })
        };
        if n("available") < 0 || n("reserved") < 0 || n("sold") < 0 {
            bad(format!("negative counter: {item}"));
        }
        if n("stocked") != n("available") + n("reserved") + n("sold") {
            bad(format!(
                "stocked {} != available + reserved + sold: {item}",
                n("stocked")
            ));
        }
        let accounted = held_by_pending.get(sku).copied().unwrap_or_default();
        if n("reserved") > accounted {
            bad(format!(
                "{} reserved but pending orders account for {accounted}",
                n("reserved")
            ));
        }
    }
    Ok(violations)
}

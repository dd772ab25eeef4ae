//! Driving checkouts.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use api::{
    CheckoutRequest, ErrorCode, LineItemRequest, OrderStatus, OrderView, ProblemBody, TransactionStatus,
    TransactionView,
};
use futures_util::{StreamExt, stream};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Saga,
    #[serde(rename = "2pc")]
    TwoPhase,
}

#[derive(Debug, Clone)]
pub enum Mode {
    /// A fixed arrival rate, whatever the system does (per second).
    Open { rate: f64 },
    /// This many clients, each sending the next request when the last one answered.
    Closed { clients: usize },
}

#[derive(Debug, Clone)]
pub enum Skus {
    /// Spread over the catalogue's first `count` SKUs.
    Uniform { count: usize },
    /// Every checkout buys this one SKU: maximal contention.
    Hot(String),
}

/// A fault put in a request's baggage with some probability, e.g.
/// `payment.charge=error:0.1`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultMix {
    pub operation: String,
    pub kind: String,
    pub probability: f64,
}

impl std::str::FromStr for FaultMix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (operation, rest) = s.split_once('=').ok_or("expected operation=kind[:probability]")?;
        let parts: Vec<&str> = rest.split(':').collect();
        // `delay_ms` carries its own number: delay_ms:<n>[:probability].
        let kind_parts = if parts[0] == "delay_ms" { 2 } else { 1 };
        if parts.len() < kind_parts || parts.len() > kind_parts + 1 {
            return Err(format!("cannot read {rest:?} as kind[:probability]"));
        }
        let kind = parts[..kind_parts].join(":");
        let probability: f64 = match parts.get(kind_parts) {
            Some(p) => p.parse().map_err(|_| format!("{p:?} is not a probability"))?,
            None => 1.0,
        };
        if !(0.0..=1.0).contains(&probability) {
            return Err(format!("probability {probability} is not between 0 and 1"));
        }
        Ok(FaultMix {
            operation: operation.to_owned(),
            kind,
            probability,
        })
    }
}

#[derive(Debug, Clone)]
pub struct LoadSettings {
    /// The order service (saga) or the coordinator (2PC): one URL, or one per
    /// replica; checkout i goes to the (i mod n)-th.
    pub urls: Vec<String>,
    pub protocol: Protocol,
    pub mode: Mode,
    pub requests: usize,
    pub skus: Skus,
    pub faults: Vec<FaultMix>,
    pub timeout: Duration,
    pub progress: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcomes {
    /// Confirmed (saga) or committed (2PC).
    pub succeeded: u64,
    /// Cancelled (saga) or aborted (2PC).
    pub cancelled: u64,
    /// Answered 202: still running when the request's deadline passed.
    pub pending: u64,
    /// Refused at once by load shedding (503 `overloaded`); nothing was written.
    pub shed: u64,
    /// No usable answer (another error status, connection failure, timeout).
    pub failed: u64,
    /// Why the failed ones failed: `no answer: connection refused`, `no answer:
    /// timed out`, or the status and problem type (`500 internal`).
    pub failures: BTreeMap<String, u64>,
}

impl Outcomes {
    /// Adds another run's outcomes to these.
    pub fn add(&mut self, other: &Outcomes) {
        self.succeeded += other.succeeded;
        self.cancelled += other.cancelled;
        self.pending += other.pending;
        self.shed += other.shed;
        self.failed += other.failed;
        for (why, n) in &other.failures {
            *self.failures.entry(why.clone()).or_default() += n;
        }
    }

    fn fail(&mut self, why: String) {
        self.failed += 1;
        *self.failures.entry(why).or_default() += 1;
    }
}

/// Why a request got no usable answer, in a few words that group alike failures.
fn failure(answer: &Result<(u16, Option<Answer>), reqwest::Error>) -> String {
    match answer {
        Err(e) if e.is_timeout() => "no answer: timed out".to_owned(),
        Err(e) if e.is_connect() => "no answer: connection refused".to_owned(),
        Err(_) => "no answer: connection closed".to_owned(),
        Ok((status, Some(Answer::Problem(problem)))) => {
            format!("{status} {}", problem.kind.rsplit(':').next().unwrap_or_default())
        }
        Ok((status, _)) => format!("{status} (no problem body)"),
    }
}

/// What a checkout answers: the coordinator's transaction, the saga's order, or a
/// problem.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Answer {
    Transaction(Box<TransactionView>),
    Order(Box<OrderView>),
    Problem(ProblemBody),
}

/// How the checkout ended, if it did: succeeded (confirmed, committed), cancelled
/// (cancelled, aborted), or `None` while it is still pending.
fn decided(answer: &Answer) -> Option<(Uuid, Option<bool>)> {
    match answer {
        Answer::Order(order) => Some((
            order.order_id,
            match order.status {
                OrderStatus::Confirmed => Some(true),
                OrderStatus::Cancelled => Some(false),
                OrderStatus::Pending => None,
            },
        )),
        Answer::Transaction(tx) => Some((
            tx.order_id,
            match tx.status {
                TransactionStatus::Committed => Some(true),
                TransactionStatus::Aborted => Some(false),
                TransactionStatus::Pending => None,
            },
        )),
        Answer::Problem(_) => None,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub protocol: Protocol,
    pub mode: String,
    pub requests: usize,
    pub seconds: f64,
    pub throughput_per_second: f64,
    pub latency_ms: Latency,
    pub outcomes: Outcomes,
    /// Order ids of every answered checkout, for the auditor.
    #[serde(skip)]
    pub order_ids: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Report {
    pub fn table(&self) -> String {
        let o = &self.outcomes;
        format!(
            "{:<5} {:<16} {:>6} req {:>7.1} s {:>8.1}/s  p50 {:>7.1} ms  p90 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms  \
             ok {} cancelled {} pending {} shed {} failed {}",
            match self.protocol {
                Protocol::Saga => "saga",
                Protocol::TwoPhase => "2pc",
            },
            self.mode,
            self.requests,
            self.seconds,
            self.throughput_per_second,
            self.latency_ms.p50,
            self.latency_ms.p90,
            self.latency_ms.p99,
            self.latency_ms.max,
            o.succeeded,
            o.cancelled,
            o.pending,
            o.shed,
            o.failed
        ) + &o
            .failures
            .iter()
            .map(|(why, n)| format!("\n      failed {n:>6}  {why}"))
            .collect::<String>()
    }
}

struct Shared {
    histogram: Histogram<u64>,
    outcomes: Outcomes,
    order_ids: Vec<String>,
}

pub async fn run(settings: &LoadSettings) -> anyhow::Result<Report> {
    anyhow::ensure!(!settings.urls.is_empty(), "no URL to send checkouts to");
    let client = reqwest::Client::builder().timeout(settings.timeout).build()?;
    let shared = Arc::new(Mutex::new(Shared {
        histogram: Histogram::new_with_bounds(1, 120_000_000, 3)?,
        outcomes: Outcomes::default(),
        order_ids: Vec::new(),
    }));
    let bar = if settings.progress {
        indicatif::ProgressBar::new(settings.requests as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let started = Instant::now();
    match settings.mode {
        Mode::Open { rate } => {
            let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
            let mut tasks = Vec::with_capacity(settings.requests);
            for i in 0..settings.requests {
                let intended = started + interval.mul_f64(i as f64);
                tokio::time::sleep_until(intended.into()).await;
                let (client, shared, settings, bar) = (client.clone(), shared.clone(), settings.clone(), bar.clone());
                tasks.push(tokio::spawn(async move {
                    one_checkout(&client, &settings, i, intended, &shared).await;
                    bar.inc(1);
                }));
            }
            for task in tasks {
                let _ = task.await;
            }
        }
        Mode::Closed { clients } => {
            stream::iter(0..settings.requests)
                .for_each_concurrent(clients.max(1), |i| {
                    let (client, shared, bar) = (&client, &shared, &bar);
                    async move {
                        one_checkout(client, settings, i, Instant::now(), shared).await;
                        bar.inc(1);
                    }
                })
                .await;
        }
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let shared = shared.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let ms = |q: f64| shared.histogram.value_at_quantile(q) as f64 / 1000.0;
    Ok(Report {
        protocol: settings.protocol,
        mode: match settings.mode {
            Mode::Open { rate } => format!("open {rate}/s"),
            Mode::Closed { clients } => format!("closed {clients}"),
        },
        requests: settings.requests,
        seconds,
        throughput_per_second: settings.requests as f64 / seconds,
        latency_ms: Latency {
            p50: ms(0.5),
            p90: ms(0.9),
            p99: ms(0.99),
            max: shared.histogram.max() as f64 / 1000.0,
        },
        outcomes: shared.outcomes.clone(),
        order_ids: shared.order_ids.clone(),
    })
}

fn body(settings: &LoadSettings, i: usize) -> CheckoutRequest {
    let sku = match &settings.skus {
        Skus::Hot(sku) => sku.clone(),
        Skus::Uniform { count } => format!("SKU-{:03}", 1 + (rand::random::<u64>() as usize + i) % (*count).max(1)),
    };
    let token = if rand::random::<f64>() < 0.1 {
        "tok_chargeDeclined"
    } else {
        "tok_visa"
    };
    CheckoutRequest {
        customer_email: format!("load{i}@example.com"),
        items: vec![LineItemRequest { sku, quantity: 1 }],
        payment_token: token.to_owned(),
    }
}

fn baggage(faults: &[FaultMix]) -> Option<String> {
    let members: Vec<String> = faults
        .iter()
        .filter(|f| rand::random::<f64>() < f.probability)
        .map(|f| format!("fault.{}={}", f.operation, f.kind))
        .collect();
    (!members.is_empty()).then(|| members.join(","))
}

async fn one_checkout(
    client: &reqwest::Client,
    settings: &LoadSettings,
    i: usize,
    intended: Instant,
    shared: &Mutex<Shared>,
) {
    let mut request = client
        .post(format!("{}/checkout", settings.urls[i % settings.urls.len()]))
        .header(api::headers::IDEMPOTENCY_KEY, uuid::Uuid::new_v4().to_string())
        .json(&body(settings, i));
    if let Some(baggage) = baggage(&settings.faults) {
        request = request.header(api::headers::BAGGAGE, baggage);
    }
    let answer = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            Ok((status, response.json::<Answer>().await.ok()))
        }
        Err(e) => Err(e),
    };
    let latency = intended.elapsed().as_micros() as u64;
    let Ok(mut shared) = shared.lock() else { return };
    let _ = shared.histogram.record(latency.max(1));
    let checkout = match &answer {
        Ok((201 | 202, Some(body))) => decided(body),
        _ => None,
    };
    match (&answer, checkout) {
        (_, Some((order_id, outcome))) => {
            shared.order_ids.push(order_id.to_string());
            match outcome {
                Some(true) => shared.outcomes.succeeded += 1,
                Some(false) => shared.outcomes.cancelled += 1,
                None => shared.outcomes.pending += 1,
            }
        }
        (Ok((503, Some(Answer::Problem(problem)))), None) if problem.code() == Some(ErrorCode::Overloaded) => {
            shared.outcomes.shed += 1
        }
        _ => shared.outcomes.fail(failure(&answer)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_mixes_parse() {
        let mix: FaultMix = "payment.charge=error:0.1".parse().unwrap();
        assert_eq!(
            (mix.operation.as_str(), mix.kind.as_str(), mix.probability),
            ("payment.charge", "error", 0.1)
        );
        let delay: FaultMix = "inventory.reserve=delay_ms:200".parse().unwrap();
        assert_eq!((delay.kind.as_str(), delay.probability), ("delay_ms:200", 1.0));
        let delay: FaultMix = "inventory.reserve=delay_ms:200:0.5".parse().unwrap();
        assert_eq!((delay.kind.as_str(), delay.probability), ("delay_ms:200", 0.5));
        assert!("payment.charge".parse::<FaultMix>().is_err());
        assert!("payment.charge=error:2".parse::<FaultMix>().is_err());
    }
}

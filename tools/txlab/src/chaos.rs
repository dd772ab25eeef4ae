//! `txlab chaos`: both protocols under load and a fault mix while every service is
//! killed (SIGKILL) and frozen (SIGSTOP) at random instants; then everything is let
//! settle and every invariant is audited. Exits non-zero on any violation, or on
//! anything left unfinished (a parked saga included).
//!
//! ```text
//! start the platform ─► load: saga + 2PC, open loop, faults in the baggage ─┐
//!                       duplicate storms: one key sent five times at once   │ meanwhile
//!                       chaos: kill / freeze a random service, restart it   │
//!                       crashes (a `crash` fault): restarted at once ───────┘
//! stop the load ─► restart what is down ─► wait until nothing is unfinished
//!                ─► `loadgen audit` ─► times to a final state, from the logs
//! ```

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use base::config::Service;
use clap::Parser;
use loadgen::{
    audit::{AuditSettings, Endpoints, audit},
    load::{FaultMix, LoadSettings, Mode, Outcomes, Protocol, Skus, run},
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Serialize;
use sqlx::{Connection, PgConnection};

use crate::platform::{Platform, PlatformSettings};

#[derive(Debug, Parser)]
#[command(
    name = "txlab chaos",
    about = "Both protocols under load and faults while every service is killed (SIGKILL) and frozen \
             (SIGSTOP) at random instants; then every invariant is audited. Exits 1 on any violation \
             or anything left unfinished."
)]
struct ChaosArgs {
    /// Chaos events (kills and freezes), one every --min-gap-ms..--max-gap-ms.
    #[arg(long, default_value_t = 20)]
    events: u32,
    /// Checkouts per second, per protocol.
    #[arg(long, default_value_t = 8.0)]
    rate: f64,
    /// Seed of the schedule (which service, what, when); random when absent.
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, default_value_t = 500)]
    min_gap_ms: u64,
    #[arg(long, default_value_t = 3000)]
    max_gap_ms: u64,
    /// The share of events that freeze (SIGSTOP, 1-5 s) rather than kill.
    #[arg(long, default_value_t = 0.25)]
    freeze_share: f64,
    /// How long everything may take to finish once the load stops.
    #[arg(long, default_value_t = 180)]
    settle_secs: u64,
    /// Where the order service listens; the others follow [default: TXLAB_PORT_BASE, or 9280,
    /// or the next free ones].
    #[arg(long)]
    port_base: Option<u16>,
    /// PostgreSQL's port [default: TXLAB_PG_PORT, or 54330, or a free one].
    #[arg(long)]
    pg_port: Option<u16>,
    /// Writes the report as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Which service each event hits: the orchestrator and the coordinator most, as they
/// hold the protocols' state.
const TARGETS: [(Service, u32); 5] = [
    (Service::Order, 35),
    (Service::Coordinator, 35),
    (Service::Inventory, 10),
    (Service::Payment, 10),
    (Service::Email, 10),
];

/// The faults the load carries (in its baggage), crashes among them: a service that
/// aborts itself is started again by the chaos loop, like one that was killed.
const FAULTS: &[&str] = &[
    "payment.charge=lost_response:0.05",
    "inventory.reserve=timeout:0.02",
    "email.send=error:0.05",
    "payment.prepare=timeout:0.02",
    "order.confirm=crash:0.004",
    "payment.charge=crash:0.004",
    "coordinator.vote=crash:0.003",
    "coordinator.decide=crash:0.003",
    "coordinator.finish=crash:0.003",
    "inventory.commit=crash:0.003",
];

/// The environment every service runs with: the defaults, except recovery that looks
/// a little more often, so a run settles sooner.
const ENV: &[(&str, &str)] = &[
    ("RUST_LOG", "warn"),
    ("SAGA_RECOVERY_INTERVAL_MS", "500"),
    ("TPC_RECOVERY_INTERVAL_MS", "500"),
    ("SAGA_PARK_RETRY_SECS", "5"),
    ("TPC_RESOLVE_INTERVAL_SECS", "2"),
];

#[derive(Debug, Default, Serialize)]
struct Report {
    seed: u64,
    seconds: f64,
    kills: BTreeMap<&'static str, u32>,
    freezes: BTreeMap<&'static str, u32>,
    /// Services that aborted themselves (a `crash` fault) and were started again.
    crashes: BTreeMap<&'static str, u32>,
    saga: Outcomes,
    two_phase: Outcomes,
    /// Storms of one checkout sent five times at once with one key.
    duplicate_storms: u64,
    sagas: Finality,
    transactions: Finality,
    /// Why sagas were cancelled and 2PC transactions aborted, by kind (see
    /// [`kind_of`]), from their logs.
    saga_cancellations: BTreeMap<String, u64>,
    tpc_aborts: BTreeMap<String, u64>,
    audit: String,
    violations: Vec<String>,
}

/// How long the checkouts took to reach a final state (from their log).
#[derive(Debug, Default, Serialize)]
struct Finality {
    total: u64,
    /// Not final when the run ended (parked sagas included).
    unfinished: u64,
    p50_secs: f64,
    p99_secs: f64,
    max_secs: f64,
}

pub async fn main(args: &[String]) -> anyhow::Result<()> {
    let args = match ChaosArgs::try_parse_from(std::iter::once("txlab chaos".to_owned()).chain(args.iter().cloned())) {
        Ok(args) => args,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            e.print()?;
            return Ok(());
        }
        Err(e) => anyhow::bail!("{e}"),
    };
    let seed = args.seed.unwrap_or_else(rand::random);
    println!(
        "chaos: seed {seed}, {} events, {} checkouts/s per protocol",
        args.events, args.rate
    );
    let settings = PlatformSettings {
        // Asked-for ports are used as given; the defaults move if something else
        // holds them (a platform or a test cluster left running).
        port_base: match args.port_base {
            Some(base) => base,
            None => crate::platform::free_port_base_like(crate::env_number("TXLAB_PORT_BASE", 9280))?,
        },
        pg_port: match args.pg_port {
            Some(port) => port,
            None => crate::platform::free_port_like(crate::env_number("TXLAB_PG_PORT", 54330))?,
        },
        state: crate::platform::bin_dir()?.join("txlab-chaos"),
        keep_data: false,
        env: ENV.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        traces_to_console: false,
        replicas: 1,
    };
    let mut platform = Platform::start(settings).await?;
    let logs = platform.logs();
    let outcome = campaign(&mut platform, &args, seed).await;
    platform.stop().await;
    let report = outcome?;
    print(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let unfinished = report.sagas.unfinished + report.transactions.unfinished;
    if !report.violations.is_empty() || unfinished > 0 {
        anyhow::bail!(
            "{} violations, {unfinished} checkouts left unfinished (logs in {})",
            report.violations.len(),
            logs.display()
        );
    }
    Ok(())
}

async fn campaign(platform: &mut Platform, args: &ChaosArgs, seed: u64) -> anyhow::Result<Report> {
    let started = Instant::now();
    let mut report = Report {
        seed,
        ..Report::default()
    };
    let urls: BTreeMap<Service, String> = Service::ALL
        .into_iter()
        .map(|s| (s, platform.settings.url_of(s)))
        .collect();
    let url = |s: Service| urls[&s].clone();
    stock_up(&url(Service::Inventory)).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let load = |protocol, target: String| {
        let stop = Arc::clone(&stop);
        let rate = args.rate;
        tokio::spawn(async move { load_until(protocol, target, rate, &stop).await })
    };
    let saga_load = load(Protocol::Saga, url(Service::Order));
    let tpc_load = load(Protocol::TwoPhase, url(Service::Coordinator));
    let storms = Arc::new(AtomicU64::new(0));
    let storm = tokio::spawn(storms_until(
        [url(Service::Order), url(Service::Coordinator)],
        Arc::clone(&stop),
        Arc::clone(&storms),
    ));

    let mut rng = StdRng::seed_from_u64(seed);
    for event in 1..=args.events {
        let gap = Duration::from_millis(rng.random_range(args.min_gap_ms..=args.max_gap_ms.max(args.min_gap_ms)));
        watch(platform, &mut report, gap).await?;
        let service = pick(&mut rng);
        if rng.random_bool(args.freeze_share.clamp(0.0, 1.0)) {
            let frozen = Duration::from_millis(rng.random_range(1000..=5000));
            println!(
                "  event {event:>3}: freeze {} for {} ms",
                service.binary(),
                frozen.as_millis()
            );
            platform.freeze(service);
            *report.freezes.entry(service.name()).or_default() += 1;
            tokio::time::sleep(frozen).await;
            platform.thaw(service);
        } else {
            // Now and then the coordinator stays down long enough for participants
            // to hold prepared transactions in doubt and ask about them.
            let down = if service == Service::Coordinator && rng.random_bool(0.15) {
                Duration::from_millis(rng.random_range(5000..=10_000))
            } else {
                Duration::from_millis(rng.random_range(0..=1500))
            };
            println!(
                "  event {event:>3}: kill {} (down {} ms)",
                service.binary(),
                down.as_millis()
            );
            platform.kill(service).await;
            *report.kills.entry(service.name()).or_default() += 1;
            watch(platform, &mut report, down).await?;
            let crashes = platform.restart_through_crashes((service, 0)).await?;
            if crashes > 0 {
                *report.crashes.entry(service.name()).or_default() += crashes;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    // The load stops after its current batch; crash faults may still strike meanwhile.
    let (saga, two_phase) = loop {
        watch(platform, &mut report, Duration::from_millis(500)).await?;
        if saga_load.is_finished() && tpc_load.is_finished() {
            break (saga_load.await??, tpc_load.await??);
        }
    };
    let _ = storm.await;
    report.saga = saga;
    report.two_phase = two_phase;
    report.duplicate_storms = storms.load(Ordering::Relaxed);
    println!(
        "  chaos over after {:.0} s; letting everything finish",
        started.elapsed().as_secs_f64()
    );

    let orders = platform
        .database_url(Service::Order)
        .context("the order service has a database")?;
    let coordinator = platform
        .database_url(Service::Coordinator)
        .context("the coordinator has a database")?;
    let deadline = Instant::now() + Duration::from_secs(args.settle_secs);
    while unfinished(&orders, &coordinator).await? > 0 && Instant::now() < deadline {
        watch(platform, &mut report, Duration::from_secs(1)).await?;
    }
    let audited = audit(&AuditSettings {
        endpoints: Endpoints {
            order: url(Service::Order),
            inventory: url(Service::Inventory),
            payment: url(Service::Payment),
            email: url(Service::Email),
            coordinator: Some(url(Service::Coordinator)),
        },
        settle: Duration::from_secs(30),
    })
    .await?;
    report.audit = audited.summary();
    report.violations = audited.violations.iter().map(ToString::to_string).collect();
    report.sagas = finality(
        &orders,
        "SELECT status IN ('confirmed', 'cancelled'), extract(epoch FROM updated_at - created_at)::float8 FROM sagas",
    )
    .await?;
    report.transactions = finality(
        &coordinator,
        "SELECT state IN ('committed', 'aborted'), extract(epoch FROM completed_at - created_at)::float8 FROM transactions",
    )
    .await?;
    report.saga_cancellations = reasons(&orders, "SELECT reason FROM sagas WHERE status = 'cancelled'").await?;
    report.tpc_aborts = reasons(&coordinator, "SELECT reason FROM transactions WHERE decision = 'abort'").await?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Waits `how_long`, starting again at once any service that exited by itself.
async fn watch(platform: &mut Platform, report: &mut Report, how_long: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + how_long;
    loop {
        for (instance, status) in platform.exited() {
            let name = crate::platform::instance_name(instance);
            // A crash fault aborts the process; any other exit is a failure of its own.
            if !crate::platform::is_abort(status) {
                anyhow::bail!(
                    "{name} exited ({status}); see the logs in {}",
                    platform.logs().display()
                );
            }
            println!("  {name} aborted itself ({status}); starting it again");
            let more = platform.restart_through_crashes(instance).await?;
            *report.crashes.entry(instance.0.name()).or_default() += 1 + more;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        tokio::time::sleep(left.min(Duration::from_millis(200))).await;
    }
}

fn pick(rng: &mut StdRng) -> Service {
    let total: u32 = TARGETS.iter().map(|(_, w)| w).sum();
    let mut roll = rng.random_range(0..total);
    for (service, weight) in TARGETS {
        if roll < weight {
            return service;
        }
        roll -= weight;
    }
    Service::Order
}

/// Plenty of stock on the SKUs the load buys, so that most checkouts get to the
/// interesting part.
async fn stock_up(inventory: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    for i in 1..=8 {
        let status = client
            .put(format!("{inventory}/admin/inventory/SKU-{i:03}"))
            .json(&api::SetStock { available: 100_000 })
            .send()
            .await?
            .status();
        anyhow::ensure!(status.is_success(), "stocking SKU-{i:03}: {status}");
    }
    Ok(())
}

/// Open-loop load in batches of about five seconds until `stop`.
async fn load_until(protocol: Protocol, url: String, rate: f64, stop: &AtomicBool) -> anyhow::Result<Outcomes> {
    let faults: Vec<FaultMix> = FAULTS
        .iter()
        .map(|f| f.parse().map_err(|e: String| anyhow::anyhow!(e)))
        .collect::<anyhow::Result<_>>()?;
    let mut total = Outcomes::default();
    while !stop.load(Ordering::Relaxed) {
        let report = run(&LoadSettings {
            urls: vec![url.clone()],
            protocol,
            mode: Mode::Open { rate },
            requests: (rate * 5.0).ceil().max(1.0) as usize,
            skus: Skus::Uniform { count: 8 },
            faults: faults.clone(),
            timeout: Duration::from_secs(30),
            progress: false,
        })
        .await?;
        total.add(&report.outcomes);
    }
    Ok(total)
}

/// Every two seconds, one checkout sent five times at once with the same key (to the
/// saga or the coordinator, in turn), and once more a second later: whatever is
/// killed meanwhile, it must be one checkout.
async fn storms_until(urls: [String; 2], stop: Arc<AtomicBool>, storms: Arc<AtomicU64>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default();
    let mut turn = 0usize;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let url = format!("{}/checkout", urls[turn % 2]);
        turn += 1;
        let key = uuid::Uuid::new_v4().to_string();
        let body = api::CheckoutRequest {
            customer_email: format!("storm{turn}@example.com"),
            items: vec![api::LineItemRequest {
                sku: format!("SKU-{:03}", 1 + turn % 8),
                quantity: 1,
            }],
            payment_token: "tok_visa".to_owned(),
        };
        let send = || {
            client
                .post(&url)
                .header(api::headers::IDEMPOTENCY_KEY, &key)
                .json(&body)
                .send()
        };
        let _ = futures_util::future::join_all((0..5).map(|_| send())).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = send().await;
        storms.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sagas and transactions not final yet, straight from their logs.
async fn unfinished(orders: &str, coordinator: &str) -> anyhow::Result<i64> {
    let count = |url: String, sql: &'static str| async move {
        let mut db = PgConnection::connect(&url).await?;
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut db).await?;
        db.close().await?;
        anyhow::Ok(n)
    };
    let sagas = count(
        orders.to_owned(),
        "SELECT count(*) FROM sagas WHERE status NOT IN ('confirmed', 'cancelled')",
    )
    .await?;
    let transactions = count(
        coordinator.to_owned(),
        "SELECT count(*) FROM transactions WHERE state NOT IN ('committed', 'aborted')",
    )
    .await?;
    Ok(sagas + transactions)
}

/// `sql` yields (final?, seconds from logged to final).
async fn finality(url: &str, sql: &'static str) -> anyhow::Result<Finality> {
    let mut db = PgConnection::connect(url).await?;
    let rows: Vec<(bool, Option<f64>)> = sqlx::query_as(sql).fetch_all(&mut db).await?;
    db.close().await?;
    let mut secs: Vec<f64> = rows.iter().filter(|(done, _)| *done).filter_map(|(_, s)| *s).collect();
    secs.sort_by(f64::total_cmp);
    let at = |q: f64| {
        secs.get(((secs.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0.0)
    };
    Ok(Finality {
        total: rows.len() as u64,
        unfinished: rows.iter().filter(|(done, _)| !done).count() as u64,
        p50_secs: at(0.5),
        p99_secs: at(0.99),
        max_secs: secs.last().copied().unwrap_or(0.0),
    })
}

/// The reasons the query returns, counted by kind.
async fn reasons(url: &str, sql: &'static str) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut db = PgConnection::connect(url).await?;
    let rows: Vec<(Option<String>,)> = sqlx::query_as(sql).fetch_all(&mut db).await?;
    db.close().await?;
    let mut kinds = BTreeMap::new();
    for (reason,) in rows {
        *kinds.entry(kind_of(reason.as_deref().unwrap_or("(none)"))).or_default() += 1;
    }
    Ok(kinds)
}

/// A reason's kind, what alike reasons share: its first clause and the first few
/// words of the next (`charge_payment: 402 payment-declined`, `payment voted no:
/// not sent: circuit open`), without the ids, timings and details that follow.
fn kind_of(reason: &str) -> String {
    let words = |s: &str, n: usize| {
        s.split_whitespace()
            .take(n)
            .collect::<Vec<_>>()
            .join(" ")
            .trim_end_matches([';', ',', '(', '.'])
            .to_owned()
    };
    let mut clauses = reason.split(": ");
    let first = clauses.next().unwrap_or_default();
    if first.starts_with("presumed abort") {
        return "presumed abort".to_owned();
    }
    let Some(second) = clauses.next() else {
        return words(first, 4);
    };
    let mut kind = format!("{first}: {}", words(second, 4));
    if matches!(second, "not sent" | "outcome unknown")
        && let Some(third) = clauses.next()
    {
        kind = format!("{kind}: {}", words(third, 2));
    }
    kind
}

fn print(report: &Report) {
    let counts = |m: &BTreeMap<&str, u32>| {
        let all: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v}")).collect();
        if all.is_empty() {
            "none".to_owned()
        } else {
            all.join(", ")
        }
    };
    let outcomes = |o: &Outcomes| {
        format!(
            "succeeded {} cancelled {} pending {} shed {} failed {}",
            o.succeeded, o.cancelled, o.pending, o.shed, o.failed
        )
    };
    let finality = |f: &Finality| {
        format!(
            "{} logged, {} unfinished; to a final state p50 {:.2} s, p99 {:.2} s, max {:.2} s",
            f.total, f.unfinished, f.p50_secs, f.p99_secs, f.max_secs
        )
    };
    println!("\nchaos report (seed {}, {:.0} s)", report.seed, report.seconds);
    println!("  kills         {}", counts(&report.kills));
    println!("  freezes       {}", counts(&report.freezes));
    println!("  crash faults  {}", counts(&report.crashes));
    println!("  saga load     {}", outcomes(&report.saga));
    println!("  2pc load      {}", outcomes(&report.two_phase));
    println!("  dup. storms   {} (5 + 1 copies each)", report.duplicate_storms);
    println!("  sagas         {}", finality(&report.sagas));
    println!("  transactions  {}", finality(&report.transactions));
    let by_count = |m: &BTreeMap<String, u64>| {
        let mut all: Vec<(&String, &u64)> = m.iter().collect();
        all.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        all.iter()
            .map(|(k, v)| format!("\n      {v:>6}  {k}"))
            .collect::<String>()
    };
    println!("  saga load failed, by why:{}", by_count(&report.saga.failures));
    println!("  2pc load failed, by why:{}", by_count(&report.two_phase.failures));
    println!("  sagas cancelled, by reason:{}", by_count(&report.saga_cancellations));
    println!("  2pc aborted, by reason:{}", by_count(&report.tpc_aborts));
    println!("  audit         {}", report.audit);
    for violation in &report.violations {
        println!("  {violation}");
    }
}

#[cfg(test)]
mod tests {
    use super::kind_of;

    #[test]
    fn reasons_are_grouped_by_their_kind() {
        for (reason, kind) in [
            (
                "charge_payment: 402 payment-declined: the card was declined: card_declined",
                "charge_payment: 402 payment-declined",
            ),
            (
                "payment voted no: not sent: circuit open for payment; next trial in 4876 ms",
                "payment voted no: not sent: circuit open",
            ),
            (
                "inventory voted no: outcome unknown: 423: the stock rows are locked",
                "inventory voted no: outcome unknown: 423",
            ),
            (
                "presumed abort: the coordinator that began it logged no decision (it stopped, or lost its lease)",
                "presumed abort",
            ),
            (
                "overload-protection: reserve_inventory was held back 5 times in a row",
                "overload-protection: reserve_inventory was held back",
            ),
        ] {
            assert_eq!(kind_of(reason), kind, "{reason}");
        }
    }
}

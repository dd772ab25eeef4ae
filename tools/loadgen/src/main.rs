//! `loadgen run …` drives checkouts; `loadgen audit …` checks the invariants;
//! `loadgen idempotency …` and `loadgen otlp-sink …` serve `scripts/bench-db`.
#![allow(clippy::print_stdout)]

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand, ValueEnum};
use loadgen::{
    audit::{AuditSettings, Endpoints, audit},
    idempotency::{IdempotencySettings, measure},
    load::{FaultMix, LoadSettings, Mode, Protocol, Skus, run},
};

#[derive(Parser)]
#[command(about = "Load and consistency checks for txlab")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Target {
    Saga,
    #[value(name = "2pc")]
    TwoPhase,
}

#[derive(Subcommand)]
enum Command {
    /// Send checkouts and report throughput, latency and outcomes.
    Run {
        #[arg(long, value_enum, default_value = "saga")]
        target: Target,
        /// Base URL; defaults to the order service (saga) or the coordinator (2PC).
        /// Repeat it for several replicas: checkouts go to each in turn.
        #[arg(long = "url")]
        urls: Vec<String>,
        /// Open loop: this many arrivals per second (latency corrected for coordinated omission).
        #[arg(long, conflicts_with = "clients")]
        rate: Option<f64>,
        /// Closed loop: this many concurrent clients.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        #[arg(long, default_value_t = 200)]
        requests: usize,
        /// Every checkout buys this SKU (contention); otherwise spread over SKU-001..SKU-011.
        #[arg(long)]
        hot_sku: Option<String>,
        /// operation=kind[:probability], put in baggage, e.g. payment.charge=error:0.1 (repeatable).
        #[arg(long = "fault")]
        faults: Vec<FaultMix>,
        #[arg(long, default_value_t = 30)]
        timeout_secs: u64,
        /// Also write the report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Saga and 2PC back to back: same mix, same faults, interleaved repetitions.
    Compare {
        /// The order service (repeatable: replicas in turn); 127.0.0.1:8080 by default.
        #[arg(long = "saga-url")]
        saga_urls: Vec<String>,
        /// The coordinator (repeatable); 127.0.0.1:8084 by default.
        #[arg(long = "tpc-url")]
        tpc_urls: Vec<String>,
        /// Open loop at this rate; closed loop with --clients otherwise.
        #[arg(long, conflicts_with = "clients")]
        rate: Option<f64>,
        #[arg(long, default_value_t = 8)]
        clients: usize,
        #[arg(long, default_value_t = 200)]
        requests: usize,
        #[arg(long, default_value_t = 3)]
        repetitions: usize,
        #[arg(long)]
        hot_sku: Option<String>,
        #[arg(long = "fault")]
        faults: Vec<FaultMix>,
        /// Write the chart here.
        #[arg(long)]
        svg: Option<PathBuf>,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Check every invariant; exit non-zero on any violation.
    Audit {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        order_url: String,
        #[arg(long, default_value = "http://127.0.0.1:8081")]
        inventory_url: String,
        #[arg(long, default_value = "http://127.0.0.1:8082")]
        payment_url: String,
        #[arg(long, default_value = "http://127.0.0.1:8083")]
        email_url: String,
        /// Also check the coordinator's transactions (empty to skip).
        #[arg(long, default_value = "http://127.0.0.1:8084")]
        coordinator_url: String,
        /// How long to wait for running work to finish first.
        #[arg(long, default_value_t = 60)]
        settle_secs: u64,
    },
    /// POST /charges with and without Idempotency-Key, and replays against first calls.
    Idempotency {
        #[arg(long, default_value = "http://127.0.0.1:8082")]
        url: String,
        /// Charges per throughput run (four runs, alternating without and with keys).
        #[arg(long, default_value_t = 500)]
        requests: usize,
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// First calls and as many replays, one at a time.
        #[arg(long, default_value_t = 300)]
        latency_samples: usize,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Accept OTLP/gRPC trace exports and count them; prints the count on SIGTERM or Ctrl-C.
    OtlpSink {
        #[arg(long, default_value = "127.0.0.1:4317")]
        listen: SocketAddr,
    },
}

/// The load's shape, as the command line gives it, for either protocol.
struct Shape {
    rate: Option<f64>,
    clients: usize,
    requests: usize,
    hot_sku: Option<String>,
    faults: Vec<FaultMix>,
    timeout: Duration,
}

impl Shape {
    fn settings(&self, urls: Vec<String>, protocol: Protocol) -> LoadSettings {
        LoadSettings {
            urls,
            protocol,
            mode: match self.rate {
                Some(rate) => Mode::Open { rate },
                None => Mode::Closed { clients: self.clients },
            },
            requests: self.requests,
            skus: self
                .hot_sku
                .clone()
                .map(Skus::Hot)
                .unwrap_or(Skus::Uniform { count: 11 }),
            faults: self.faults.clone(),
            timeout: self.timeout,
            progress: true,
        }
    }
}

/// The URLs given, or the default one.
fn or_default(urls: Vec<String>, default: &str) -> Vec<String> {
    if urls.is_empty() {
        vec![default.to_owned()]
    } else {
        urls
    }
}

/// Writes each requested output; a failure is reported and ends the run with an error.
fn write_files<const N: usize>(outputs: [Option<(PathBuf, Vec<u8>)>; N]) -> ExitCode {
    for (path, bytes) in outputs.into_iter().flatten() {
        if let Err(e) = std::fs::write(&path, bytes) {
            eprintln!("loadgen: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn pretty_json(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec_pretty(value).unwrap_or_default()
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run {
            target,
            urls,
            rate,
            clients,
            requests,
            hot_sku,
            faults,
            timeout_secs,
            json,
        } => {
            let protocol = match target {
                Target::Saga => Protocol::Saga,
                Target::TwoPhase => Protocol::TwoPhase,
            };
            let urls = or_default(
                urls,
                match protocol {
                    Protocol::Saga => "http://127.0.0.1:8080",
                    Protocol::TwoPhase => "http://127.0.0.1:8084",
                },
            );
            let shape = Shape {
                rate,
                clients,
                requests,
                hot_sku,
                faults,
                timeout: Duration::from_secs(timeout_secs),
            };
            let settings = shape.settings(urls, protocol);
            match run(&settings).await {
                Ok(report) => {
                    println!("{}", report.table());
                    write_files([json.map(|p| (p, pretty_json(&report)))])
                }
                Err(e) => {
                    eprintln!("loadgen: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Compare {
            saga_urls,
            tpc_urls,
            rate,
            clients,
            requests,
            repetitions,
            hot_sku,
            faults,
            svg,
            json,
        } => {
            let settings = |urls: Vec<String>, protocol: Protocol| LoadSettings {
                urls,
                protocol,
                mode: match rate {
                    Some(rate) => Mode::Open { rate },
                    None => Mode::Closed { clients },
                },
                requests,
                skus: hot_sku.clone().map(Skus::Hot).unwrap_or(Skus::Uniform { count: 11 }),
                faults: faults.clone(),
                timeout: Duration::from_secs(30),
                progress: true,
            };
            let (saga, tpc) = (
                settings(or_default(saga_urls, "http://127.0.0.1:8080"), Protocol::Saga),
                settings(or_default(tpc_urls, "http://127.0.0.1:8084"), Protocol::TwoPhase),
            );
            match loadgen::compare::compare(&saga, &tpc, repetitions).await {
                Ok(comparison) => {
                    for report in &comparison.repetitions {
                        println!("{}", report.table());
                    }
                    println!("{}", comparison.table());
                    let title = format!(
                        "saga vs 2PC, {requests} checkouts x {repetitions}, {}",
                        hot_sku
                            .as_deref()
                            .map(|s| format!("hot {s}"))
                            .unwrap_or_else(|| "uniform SKUs".into())
                    );
                    write_files([
                        svg.map(|p| (p, comparison.svg(&title).into_bytes())),
                        json.map(|p| (p, pretty_json(&comparison))),
                    ])
                }
                Err(e) => {
                    eprintln!("loadgen: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Idempotency {
            url,
            requests,
            clients,
            latency_samples,
            json,
        } => {
            let settings = IdempotencySettings {
                url,
                requests,
                clients,
                latency_samples,
            };
            match measure(&settings).await {
                Ok(report) => {
                    println!("{}", report.table());
                    write_files([json.map(|p| (p, pretty_json(&report)))])
                }
                Err(e) => {
                    eprintln!("loadgen: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::OtlpSink { listen } => {
            let stop = async {
                let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => term,
                    Err(_) => return std::future::pending().await,
                };
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            };
            eprintln!("otlp-sink: listening on {listen} (OTLP/gRPC)");
            match loadgen::otlp_sink::serve(listen, stop).await {
                Ok(counts) => {
                    println!("{}", counts.summary());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("loadgen: otlp-sink: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Audit {
            order_url,
            inventory_url,
            payment_url,
            email_url,
            coordinator_url,
            settle_secs,
        } => {
            let settings = AuditSettings {
                endpoints: Endpoints {
                    order: order_url,
                    inventory: inventory_url,
                    payment: payment_url,
                    email: email_url,
                    coordinator: (!coordinator_url.is_empty()).then_some(coordinator_url),
                },
                settle: Duration::from_secs(settle_secs),
            };
            match audit(&settings).await {
                Ok(report) => {
                    for violation in &report.violations {
                        println!("{violation}");
                    }
                    println!("{}", report.summary());
                    if report.violations.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("loadgen: audit failed: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

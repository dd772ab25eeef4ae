//! `txlab up`: the whole platform on loopback without Docker. Starts a throwaway
//! PostgreSQL cluster (under `target/txlab-native`), creates each service's database,
//! starts every service binary found next to this one, waits until each is ready,
//! prints where everything is, and stops it all on Ctrl-C.

// A command-line tool: talking to the user on stdout is its job.
#![allow(clippy::print_stdout)]

use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use shared::{
    config::Service,
    pgcluster::{ClusterOptions, PgCluster},
};
use sqlx::{Connection, PgConnection};
use tokio::process::{Child, Command};

const USAGE: &str = "usage: txlab up [--keep-data]\n\n\
  Starts PostgreSQL and every txlab service on 127.0.0.1 (ports 8080-8084),\n\
  waits until all are ready and stops everything on Ctrl-C.\n\
  TXLAB_PG_PORT (54320) moves PostgreSQL and TXLAB_PORT_BASE (8080) the services\n\
  (a second platform beside the first); --keep-data keeps the databases\n\
  between runs (otherwise each run starts from an empty cluster).";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("up") => up(args.iter().any(|a| a == "--keep-data")).await,
        _ => {
            eprintln!("{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("txlab: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

struct Running {
    service: Service,
    child: Child,
}

async fn up(keep_data: bool) -> anyhow::Result<()> {
    let bin_dir = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .context("locating the service binaries")?;
    let services: Vec<Service> = Service::ALL
        .into_iter()
        .filter(|s| bin_dir.join(s.binary()).is_file())
        .collect();
    if services.is_empty() {
        bail!(
            "no service binaries in {}; run `cargo build --workspace --bins` first",
            bin_dir.display()
        );
    }
    let port: u16 = std::env::var("TXLAB_PG_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(54320);
    // A platform on other ports keeps its data apart too.
    let state = match port_base() {
        8080 => bin_dir.join("txlab-native"),
        base => bin_dir.join(format!("txlab-native-{base}")),
    };
    let cluster_dir = state.join("pg");
    let cluster = PgCluster::new(&cluster_dir, port)?;
    if cluster.is_running() {
        cluster.stop().ok();
    }
    if !keep_data && cluster_dir.exists() {
        std::fs::remove_dir_all(&cluster_dir).with_context(|| format!("removing {}", cluster_dir.display()))?;
    }
    println!("starting PostgreSQL on 127.0.0.1:{port} ({})", cluster_dir.display());
    cluster.init(&ClusterOptions::default())?;
    cluster.start()?;
    let result = run_services(&cluster, &services, &bin_dir, &state.join("logs")).await;
    println!("stopping PostgreSQL");
    cluster.stop().ok();
    result
}

async fn run_services(cluster: &PgCluster, services: &[Service], bin_dir: &Path, logs: &Path) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(&cluster.url("postgres")).await?;
    for service in services {
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(service.database())
            .fetch_one(&mut admin)
            .await?;
        if !exists {
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {}", service.database())))
                .execute(&mut admin)
                .await?;
        }
    }
    admin.close().await?;
    std::fs::create_dir_all(logs)?;

    let mut running = Vec::new();
    for &service in services {
        match spawn(service, cluster, bin_dir, logs) {
            Ok(child) => running.push(Running { service, child }),
            Err(e) => {
                stop_all(&mut running).await;
                return Err(e);
            }
        }
    }
    let ready = wait_until_ready(&mut running).await;
    if let Err(e) = ready {
        stop_all(&mut running).await;
        return Err(e.context(format!("see the logs in {}", logs.display())));
    }
    print_welcome(services, logs);

    let outcome = tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        exited = first_exit(&mut running) => Err(exited),
    };
    println!("\nstopping the services");
    stop_all(&mut running).await;
    outcome
}

/// `TXLAB_PORT_BASE`: where the order service listens; the others follow it.
fn port_base() -> u16 {
    std::env::var("TXLAB_PORT_BASE")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080)
}

fn port_of(service: Service) -> u16 {
    port_base() + (service.default_port() - Service::Order.default_port())
}

fn spawn(service: Service, cluster: &PgCluster, bin_dir: &Path, logs: &Path) -> anyhow::Result<Child> {
    let log = std::fs::File::create(logs.join(format!("{}.log", service.binary())))?;
    let mut command = Command::new(bin_dir.join(service.binary()));
    command
        .env("BIND_ADDR", format!("127.0.0.1:{}", port_of(service)))
        .env("DATABASE_URL", cluster.url(service.database()))
        .env(
            "FAULT_INJECTION",
            std::env::var("FAULT_INJECTION").unwrap_or_else(|_| "on".into()),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    for peer in Service::ALL {
        command.env(peer.url_variable(), format!("http://127.0.0.1:{}", port_of(peer)));
    }
    command
        .spawn()
        .with_context(|| format!("starting {}", service.binary()))
}

async fn wait_until_ready(running: &mut [Running]) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    for entry in running.iter_mut() {
        let url = format!("http://127.0.0.1:{}/health/ready", port_of(entry.service));
        loop {
            if let Some(status) = entry.child.try_wait()? {
                bail!("{} exited ({status}) before it was ready", entry.service.binary());
            }
            let ready = client.get(&url).timeout(Duration::from_secs(1)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                println!(
                    "  {:<18} ready on http://127.0.0.1:{}",
                    entry.service.binary(),
                    port_of(entry.service)
                );
                break;
            }
            if Instant::now() > deadline {
                bail!("{} was not ready within 90 s", entry.service.binary());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

async fn first_exit(running: &mut [Running]) -> anyhow::Error {
    loop {
        for entry in running.iter_mut() {
            if let Ok(Some(status)) = entry.child.try_wait() {
                return anyhow::anyhow!("{} exited unexpectedly ({status})", entry.service.binary());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// SIGTERM, then up to 10 s for a graceful stop (spans flushed), then SIGKILL.
async fn stop_all(running: &mut Vec<Running>) {
    for entry in running.iter() {
        if let Some(pid) = entry.child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
    }
    for entry in running.iter_mut() {
        if tokio::time::timeout(Duration::from_secs(10), entry.child.wait())
            .await
            .is_err()
        {
            let _ = entry.child.kill().await;
        }
    }
    running.clear();
}

fn print_welcome(services: &[Service], logs: &Path) {
    let has = |s: Service| services.contains(&s);
    println!("\ntxlab is up. Logs: {}", logs.display());
    let key = "-H \"Idempotency-Key: $(cat /proc/sys/kernel/random/uuid)\"";
    let body = |token: &str| {
        format!(
            "'{{\"customer_email\":\"ada@example.com\",\"items\":[{{\"sku\":\"SKU-001\",\"quantity\":2}}],\"payment_token\":\"{token}\"}}'"
        )
    };
    if has(Service::Order) {
        println!("\nA checkout by saga, one declined, and one whose charge answer is lost:");
        for (token, extra) in [
            ("tok_visa", ""),
            ("tok_chargeDeclined", ""),
            ("tok_visa", " -H 'baggage: fault.payment.charge=lost_response'"),
        ] {
            println!(
                "  curl -s -X POST http://127.0.0.1:{}/checkout -H 'Content-Type: application/json' {key}{extra} -d {}",
                port_of(Service::Order),
                body(token)
            );
        }
        println!(
            "  curl -s 'http://127.0.0.1:{}/orders?limit=5'",
            port_of(Service::Order)
        );
    }
    if has(Service::Coordinator) {
        println!("\nThe same checkout by two-phase commit:");
        println!(
            "  curl -s -X POST http://127.0.0.1:{}/checkout -H 'Content-Type: application/json' {key} -d {}",
            port_of(Service::Coordinator),
            body("tok_visa")
        );
    }
    if has(Service::Inventory) {
        println!(
            "  curl -s http://127.0.0.1:{}/inventory/SKU-001",
            port_of(Service::Inventory)
        );
    }
    println!("\nPress Ctrl-C to stop everything.");
}

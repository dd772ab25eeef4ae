//! `txlab up`: the whole platform on loopback without Docker. Starts a throwaway
//! PostgreSQL cluster (under `target/txlab-native`), creates each service's database,
//! starts every service binary found next to this one (the console too), waits until
//! each is ready, prints where everything is, starts again a service that exits by
//! itself, and stops it all on Ctrl-C.

// A command-line tool: talking to the user on stdout is its job.
#![allow(clippy::print_stdout)]

use std::path::Path;

use base::config::Service;

mod chaos;
mod platform;

use platform::{Platform, PlatformSettings};

const USAGE: &str = "usage: txlab up [--keep-data] [--replicas N]\n\
  \x20      txlab chaos [--help]\n\n\
  up     Starts PostgreSQL and every txlab service on 127.0.0.1 (ports 8080-8084, the\n\
  \x20      console on 8090),\n\
  \x20      waits until all are ready, starts again a service that crashes, and stops\n\
  \x20      everything on Ctrl-C.\n\
  \x20      TXLAB_PG_PORT (54320) moves PostgreSQL and TXLAB_PORT_BASE (8080) the services\n\
  \x20      (a second platform beside the first); --keep-data keeps the databases\n\
  \x20      between runs (otherwise each run starts from an empty cluster); --replicas N\n\
  \x20      runs N order services and N coordinators on the same databases (replica k\n\
  \x20      on the first one's port + 100·k).\n\
  chaos  Runs both protocols under a fault mix while killing and freezing every\n\
  \x20      service at random instants, then audits every invariant (see `txlab chaos --help`).";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let wants_help = args.iter().any(|a| a == "--help" || a == "-h");
    let outcome = match args.first().map(String::as_str) {
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            return std::process::ExitCode::SUCCESS;
        }
        Some("up") if wants_help => {
            println!("{USAGE}");
            return std::process::ExitCode::SUCCESS;
        }
        Some("up") => match UpArgs::parse(&args[1..]) {
            Ok(up_args) => up(up_args).await,
            Err(e) => {
                eprintln!("txlab up: {e}\n\n{USAGE}");
                return std::process::ExitCode::from(2);
            }
        },
        Some("chaos") => chaos::main(&args[1..]).await,
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

/// A number from the environment, or the default.
fn env_number<T: std::str::FromStr>(variable: &str, default: T) -> T {
    std::env::var(variable)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `txlab up`'s flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct UpArgs {
    keep_data: bool,
    replicas: u16,
}

impl UpArgs {
    fn parse(args: &[String]) -> Result<UpArgs, String> {
        let mut parsed = UpArgs {
            keep_data: false,
            replicas: 1,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--keep-data" => parsed.keep_data = true,
                "--replicas" => {
                    let n = args.next().ok_or("--replicas needs a number")?;
                    parsed.replicas = n
                        .parse()
                        .ok()
                        .filter(|n| (1..=9).contains(n))
                        .ok_or_else(|| format!("--replicas takes 1 to 9, got {n:?}"))?;
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(parsed)
    }
}

async fn up(UpArgs { keep_data, replicas }: UpArgs) -> anyhow::Result<()> {
    let port_base = env_number("TXLAB_PORT_BASE", 8080);
    let bin_dir = platform::bin_dir()?;
    // A platform on other ports keeps its data apart too.
    let state = match port_base {
        8080 => bin_dir.join("txlab-native"),
        base => bin_dir.join(format!("txlab-native-{base}")),
    };
    let mut platform = Platform::start(PlatformSettings {
        port_base,
        pg_port: env_number("TXLAB_PG_PORT", 54320),
        state,
        keep_data,
        env: Vec::new(),
        // Without an OTLP endpoint of the user's, the console keeps the traces.
        traces_to_console: std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_err(),
        replicas,
    })
    .await?;
    print_welcome(&platform.services, &platform.settings, &platform.logs());
    if replicas > 1 {
        println!("\nReplicas, on the same databases (GET /admin/replicas on any shows who holds what):");
        for instance in platform.settings.instances(&platform.services) {
            if instance.1 > 0 {
                println!(
                    "  {:<18} {}",
                    platform::instance_name(instance),
                    platform.settings.url_of_instance(instance)
                );
            }
        }
    }
    // A service that exits by itself (a `crash` fault, say) is started again, as
    // compose's `restart: unless-stopped` does.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let outcome = loop {
        tokio::select! {
            _ = &mut ctrl_c => break Ok(()),
            (instance, status) = platform.first_exit() => {
                let name = platform::instance_name(instance);
                println!("\n{name} exited ({status}); starting it again");
                match platform.restart_through_crashes(instance).await {
                    Ok(_) => println!("  {name} is ready again"),
                    Err(e) => break Err(e.context(format!("{name} could not be started again"))),
                }
            }
        }
    };
    println!("\nstopping the services");
    platform.stop().await;
    outcome
}

fn print_welcome(services: &[Service], settings: &PlatformSettings, logs: &Path) {
    let port_of = |s: Service| settings.port_of(s);
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
    if has(Service::Console) {
        println!(
            "\nThe lab console, every checkout's X-ray: http://127.0.0.1:{}/",
            port_of(Service::Console)
        );
        if settings.traces_to_console {
            println!("  (the services send their traces to it: each X-ray shows its checkout's trace)");
        }
    }
    println!("\nPress Ctrl-C to stop everything.");
}

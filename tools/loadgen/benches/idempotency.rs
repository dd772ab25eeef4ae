//! What the idempotency mechanism costs, measured on real charges against real
//! PostgreSQL (the test cluster), with the payment service in this process: the same
//! measurement `loadgen idempotency` makes on a live one (throughput with keys vs
//! without, and the latency of a replay vs the first call), reported as ratios since
//! absolute numbers depend on the machine.
//!
//! `cargo bench -p loadgen --bench idempotency [-- <requests> <concurrency>]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use base::config::Service;
use loadgen::idempotency::{IdempotencySettings, measure};
use testing::TestApp;

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let requests = args.first().copied().unwrap_or(2000);
    let concurrency = args.get(1).copied().unwrap_or(16);
    actix_rt::System::new().block_on(run(requests, concurrency));
}

async fn run(requests: usize, concurrency: usize) {
    let app = TestApp::spawn(
        Service::Payment,
        |s| s.log_filter = "warn".into(),
        |settings| {
            payment_service::startup::build_with(
                settings,
                payment_service::startup::PaymentSettings {
                    funds_limit_cents: 10_000,
                },
            )
        },
    )
    .await;
    let settings = IdempotencySettings {
        url: app.address.clone(),
        requests,
        clients: concurrency,
        latency_samples: requests.min(500),
    };
    let report = measure(&settings).await.expect("the measurement runs");
    assert_eq!(report.unexpected, 0, "every charge answered as it should");
    println!("{}", report.table());
}

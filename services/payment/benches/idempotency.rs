//! What the idempotency mechanism costs, measured on real charges against real
//! PostgreSQL (the test cluster): throughput with keys vs without, and the latency
//! of a replay vs the first call. Reported as ratios, since absolute numbers depend
//! on the machine.
//!
//! `cargo bench -p payment-service --bench idempotency [-- <requests> <concurrency>]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use serde_json::json;
use shared::{config::Service, testing::TestApp};
use uuid::Uuid;

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
    // Warm up connections and caches.
    charge_all(&app, &keys(200, "warm"), concurrency).await;

    let without = charge_all(&app, &vec![None; requests], concurrency).await;
    let keyed_keys = keys(requests, "bench");
    let with = charge_all(&app, &keyed_keys, concurrency).await;

    // Latency, one request at a time: first calls, then replays of the same keys.
    let sample = keys(requests.min(500), "latency");
    let orders: Vec<Uuid> = sample.iter().map(|_| Uuid::new_v4()).collect();
    let mut first = Vec::new();
    let mut replay = Vec::new();
    for (key, order) in sample.iter().zip(&orders) {
        first.push(timed_charge(&app, key.as_deref(), *order).await);
    }
    for (key, order) in sample.iter().zip(&orders) {
        replay.push(timed_charge(&app, key.as_deref(), *order).await);
    }

    let throughput = |(n, elapsed): (usize, Duration)| n as f64 / elapsed.as_secs_f64();
    let (t_without, t_with) = (throughput(without), throughput(with));
    let (p50_first, p50_replay) = (percentile(&mut first, 0.5), percentile(&mut replay, 0.5));
    let (p99_first, p99_replay) = (percentile(&mut first, 0.99), percentile(&mut replay, 0.99));
    println!("idempotency overhead on POST /charges ({requests} requests, {concurrency} concurrent)");
    println!("  throughput without keys   {t_without:>10.0} req/s");
    println!("  throughput with keys      {t_with:>10.0} req/s");
    println!("  with / without            {:>10.2}", t_with / t_without);
    println!(
        "  first call p50 / p99      {:>10.2} / {:.2} ms",
        ms(p50_first),
        ms(p99_first)
    );
    println!(
        "  replay p50 / p99          {:>10.2} / {:.2} ms",
        ms(p50_replay),
        ms(p99_replay)
    );
    println!(
        "  replay p50 / first p50    {:>10.2}",
        p50_replay.as_secs_f64() / p50_first.as_secs_f64()
    );
}

fn keys(n: usize, prefix: &str) -> Vec<Option<String>> {
    (0..n)
        .map(|i| Some(format!("{prefix}-{i}-{}", Uuid::new_v4())))
        .collect()
}

async fn charge_all(app: &TestApp, keys: &[Option<String>], concurrency: usize) -> (usize, Duration) {
    let started = Instant::now();
    let done = stream::iter(keys.iter().cloned())
        .map(|key| async move { timed_charge(app, key.as_deref(), Uuid::new_v4()).await })
        .buffer_unordered(concurrency)
        .count()
        .await;
    (done, started.elapsed())
}

async fn timed_charge(app: &TestApp, key: Option<&str>, order: Uuid) -> Duration {
    let body = json!({ "order_id": order, "amount_cents": 4200, "payment_token": "tok_visa" });
    let started = Instant::now();
    let response = app.post("/charges", &body, key).await;
    assert!(response.status().is_success(), "{}", response.status());
    response.bytes().await.unwrap();
    started.elapsed()
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

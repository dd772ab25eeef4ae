//! What idempotency keys cost on a live payment service: `POST /charges` with and
//! without `Idempotency-Key` (closed loop, the runs alternated A-B-B-A so that drift
//! cancels), then the latency of a replay against the first call with the same key
//! (one request at a time). The endpoint takes requests without a key
//! (`Idempotency::optional()`), so the two differ only in the key's claim and stored
//! response.

use std::time::{Duration, Instant};

use api::ChargeRequest;
use futures_util::{StreamExt, stream};
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct IdempotencySettings {
    /// The payment service.
    pub url: String,
    /// Charges per throughput run (four runs: without, with, with, without).
    pub requests: usize,
    pub clients: usize,
    /// First calls, then as many replays, one at a time.
    pub latency_samples: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct IdempotencyReport {
    pub requests_per_run: usize,
    pub clients: usize,
    pub throughput_without_key: f64,
    pub throughput_with_key: f64,
    /// with ÷ without.
    pub throughput_ratio: f64,
    pub first_call_p50_ms: f64,
    pub first_call_p99_ms: f64,
    pub replay_p50_ms: f64,
    pub replay_p99_ms: f64,
    /// replay p50 ÷ first call p50.
    pub replay_ratio: f64,
    /// Answers that were not 2xx (a first call) or not a replay (a repeat); should be 0.
    pub unexpected: u64,
}

impl IdempotencyReport {
    pub fn table(&self) -> String {
        format!(
            "POST /charges, {} per run, {} clients: without key {:.1}/s, with key {:.1}/s (ratio {:.2}); \
             one at a time: first call p50 {:.2} ms p99 {:.2} ms, replay p50 {:.2} ms p99 {:.2} ms (ratio {:.2}); \
             unexpected answers {}",
            self.requests_per_run,
            self.clients,
            self.throughput_without_key,
            self.throughput_with_key,
            self.throughput_ratio,
            self.first_call_p50_ms,
            self.first_call_p99_ms,
            self.replay_p50_ms,
            self.replay_p99_ms,
            self.replay_ratio,
            self.unexpected
        )
    }
}

/// One charge; `Ok(latency)` when the answer was what a first call (or, with
/// `replay`, a replay) should get.
async fn charge(
    client: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    order: Uuid,
    replay: bool,
) -> Result<Duration, Duration> {
    let body = ChargeRequest {
        order_id: order,
        amount_cents: 4200,
        payment_token: "tok_visa".to_owned(),
    };
    let mut request = client.post(format!("{url}/charges")).json(&body);
    if let Some(key) = key {
        request = request.header(api::headers::IDEMPOTENCY_KEY, key);
    }
    let started = Instant::now();
    let answer = request.send().await;
    let good = match answer {
        Ok(response) => {
            let replayed = response.headers().contains_key("idempotent-replayed");
            let success = response.status().is_success();
            let read = response.bytes().await.is_ok();
            read && success && replayed == replay
        }
        Err(_) => false,
    };
    let elapsed = started.elapsed();
    if good { Ok(elapsed) } else { Err(elapsed) }
}

/// Charges `n` new orders with `clients` in flight; `(seconds, unexpected answers)`.
async fn closed_loop(client: &reqwest::Client, settings: &IdempotencySettings, keyed: bool) -> (f64, u64) {
    let started = Instant::now();
    let bad = stream::iter(0..settings.requests)
        .map(|_| async move {
            let key = keyed.then(|| Uuid::new_v4().to_string());
            charge(client, &settings.url, key.as_deref(), Uuid::new_v4(), false).await
        })
        .buffer_unordered(settings.clients.max(1))
        .filter(|r| std::future::ready(r.is_err()))
        .count()
        .await;
    (started.elapsed().as_secs_f64(), bad as u64)
}

fn percentile(samples: &mut [Duration], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0
}

pub async fn measure(settings: &IdempotencySettings) -> anyhow::Result<IdempotencyReport> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let mut unexpected = 0;
    // Warm up connections and the service's caches.
    for _ in 0..50 {
        let key = Uuid::new_v4().to_string();
        let _ = charge(&client, &settings.url, Some(&key), Uuid::new_v4(), false).await;
    }
    let (mut without, mut with) = (0.0, 0.0);
    for keyed in [false, true, true, false] {
        let (seconds, bad) = closed_loop(&client, settings, keyed).await;
        unexpected += bad;
        if keyed {
            with += seconds;
        } else {
            without += seconds;
        }
    }
    let runs = 2.0 * settings.requests as f64;
    let sample: Vec<(String, Uuid)> = (0..settings.latency_samples)
        .map(|_| (Uuid::new_v4().to_string(), Uuid::new_v4()))
        .collect();
    let (mut first, mut replay) = (Vec::new(), Vec::new());
    for replaying in [false, true] {
        for (key, order) in &sample {
            let outcome = charge(&client, &settings.url, Some(key), *order, replaying).await;
            if outcome.is_err() {
                unexpected += 1;
            }
            let latency = outcome.unwrap_or_else(|e| e);
            if replaying {
                replay.push(latency);
            } else {
                first.push(latency);
            }
        }
    }
    let (throughput_without_key, throughput_with_key) = (runs / without, runs / with);
    let (first_call_p50_ms, replay_p50_ms) = (percentile(&mut first, 0.5), percentile(&mut replay, 0.5));
    Ok(IdempotencyReport {
        requests_per_run: settings.requests,
        clients: settings.clients,
        throughput_without_key,
        throughput_with_key,
        throughput_ratio: throughput_with_key / throughput_without_key,
        first_call_p50_ms,
        first_call_p99_ms: percentile(&mut first, 0.99),
        replay_p50_ms,
        replay_p99_ms: percentile(&mut replay, 0.99),
        replay_ratio: replay_p50_ms / first_call_p50_ms,
        unexpected,
    })
}

//! `txlab up` for real: PostgreSQL and every service binary beside this one, the
//! console among them, ready and printed; Ctrl-C stops it all. Needs the workspace's
//! binaries built (`scripts/test` builds them first).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// A base with the services' ports free above it (8080–8084 and 8090, moved; and
/// the second order service's and coordinator's, 100 above theirs).
fn free_base() -> u16 {
    let offsets = [0, 1, 2, 3, 4, 10, 100, 104];
    (0..500)
        .map(|i| 21_000 + ((std::process::id() as u16 % 200) + i) * 20)
        .find(|base| {
            offsets
                .iter()
                .all(|o| TcpListener::bind(("127.0.0.1", base + o)).is_ok())
        })
        .expect("free ports")
}

/// Runs `txlab <args>` on free ports until it prints "Press Ctrl-C"; returns the
/// process, its port base and what it printed.
fn up(args: &[&str]) -> (Child, u16, String) {
    let base = free_base();
    let pg = TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_txlab"))
        .args(args)
        .env("TXLAB_PORT_BASE", base.to_string())
        .env("TXLAB_PG_PORT", pg.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (lines, read) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    // Read until txlab exits, also once nobody listens: a closed pipe would fail
    // its last lines (and it).
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut printed = Vec::new();
    while !printed.iter().any(|l: &String| l.contains("Press Ctrl-C")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match read.recv_timeout(left) {
            Ok(line) => printed.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("txlab up did not come up: {printed:#?}");
            }
        }
    }
    (child, base, printed.join("\n"))
}

/// Ctrl-C (SIGINT): everything stops, and `txlab up` exits with success.
fn ctrl_c(mut child: Child) {
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let stopped = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(60),
            "txlab up did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn up_starts_every_service_and_the_console_and_ctrl_c_stops_them() {
    let console = std::path::Path::new(env!("CARGO_BIN_EXE_txlab")).with_file_name("console");
    assert!(
        console.exists(),
        "build the binaries first (cargo build --workspace --bins)"
    );
    let (child, base, text) = up(&["up"]);
    let console_url = format!("http://127.0.0.1:{}/", base + 10);
    assert!(
        text.contains(&format!("console            ready on http://127.0.0.1:{}", base + 10)),
        "{text}"
    );
    assert!(
        text.contains(&format!("The lab console, every checkout's X-ray: {console_url}")),
        "{text}"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let page = runtime.block_on(async {
        let response = reqwest::get(&console_url).await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    });
    assert!(
        page.contains("id=\"sagas\"") && page.contains("id=\"transactions\""),
        "{page}"
    );
    assert!(!page.contains("is down"), "every service answers the console: {page}");
    assert!(text.contains("the services send their traces to it"), "{text}");

    // No Jaeger here: the services export to the console, whose X-ray draws the trace.
    let xray = runtime.block_on(async {
        let checkout: serde_json::Value = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{base}/checkout"))
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .json(&serde_json::json!({
                "customer_email": "ada@example.com",
                "items": [{ "sku": "SKU-001", "quantity": 1 }],
                "payment_token": "tok_visa",
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(checkout["status"], "confirmed", "{checkout}");
        let xray = format!("{console_url}checkouts/{}", checkout["order_id"].as_str().unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let page = reqwest::get(&xray).await.unwrap().text().await.unwrap();
            if page.contains("class=\"waterfall\"") && page.contains("saga.step charge_payment") {
                return page;
            }
            assert!(Instant::now() < deadline, "no trace on the X-ray: {page}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    assert!(xray.contains("spans from the console"), "{xray}");

    ctrl_c(child);
    // Its cluster and logs, kept for --keep-data, are this test's to remove.
    let state = std::path::Path::new(env!("CARGO_BIN_EXE_txlab")).with_file_name(format!("txlab-native-{base}"));
    std::fs::remove_dir_all(&state).unwrap();
}

#[test]
fn up_with_replicas_runs_two_orchestrators_and_two_coordinators_on_the_same_databases() {
    let (child, base, text) = up(&["up", "--replicas", "2"]);
    for (name, port) in [("order-service-1", base + 100), ("coordinator-1", base + 104)] {
        assert!(
            text.contains(&format!("{name:<18} ready on http://127.0.0.1:{port}")),
            "{text}"
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // A checkout sent to the second orchestrator, read back from the first.
        let checkout: serde_json::Value = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/checkout", base + 100))
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .json(&serde_json::json!({
                "customer_email": "ada@example.com",
                "items": [{ "sku": "SKU-002", "quantity": 1 }],
                "payment_token": "tok_visa",
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(checkout["status"], "confirmed", "{checkout}");
        let order: serde_json::Value = reqwest::get(format!(
            "http://127.0.0.1:{base}/orders/{}",
            checkout["order_id"].as_str().unwrap()
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(order["status"], "confirmed", "{order}");
        for port in [base, base + 4] {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let listed: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/admin/replicas"))
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let live = listed["replicas"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|r| r["live"] == true)
                    .count();
                if live == 2 {
                    break;
                }
                assert!(Instant::now() < deadline, "two live replicas behind :{port}: {listed}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    });
    ctrl_c(child);
}

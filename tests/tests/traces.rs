//! Traces that tell the story: every service exports to an OTLP receiver built on
//! `opentelemetry-proto` (gRPC, and `http/protobuf` for the payment service), and the
//! tests check the shape of what arrives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base::config::Service;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::Value;
use testing::eventually;
use txlab_tests::{
    Platform, checkout_body, new_key,
    otlp::{OtlpReceiver, Span, TraceShape},
};

/// Every service exporting to `receiver`: gRPC, but HTTP/protobuf for the payment service.
async fn traced_platform(receiver: &OtlpReceiver) -> Platform {
    let (grpc, http) = (receiver.grpc_endpoint(), receiver.http_endpoint());
    let mut env: Vec<(Service, &str, &str)> = Vec::new();
    for service in [Service::Order, Service::Inventory, Service::Email, Service::Coordinator] {
        env.push((service, "OTEL_EXPORTER_OTLP_ENDPOINT", grpc.as_str()));
        env.push((service, "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"));
    }
    env.push((Service::Payment, "OTEL_EXPORTER_OTLP_ENDPOINT", http.as_str()));
    env.push((Service::Payment, "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"));
    // The env strings are copied into each process's environment at start.
    Platform::start_processes(&env).await
}

async fn checkout_with(platform: &Platform, url: &str, body: &Value, headers: &[(&str, &str)]) -> Value {
    let mut request = platform
        .order
        .client
        .post(url)
        .json(body)
        .header("Idempotency-Key", new_key());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap().json().await.unwrap()
}

fn server_spans<'a>(spans: &'a [Span], service: &str) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|s| s.service == service && s.kind == SpanKind::Server)
        .collect()
}

/// Every server span that is not where the trace entered is the child of a client span.
fn assert_client_parents_server(spans: &[Span], entry: &[&str]) {
    for server in spans.iter().filter(|s| {
        s.kind == SpanKind::Server && !s.parent_span_id.is_empty() && !entry.contains(&s.parent_span_id.as_str())
    }) {
        let parent = spans.by_id(&server.parent_span_id);
        let parent = parent.unwrap_or_else(|| panic!("{} {} has no parent in the trace", server.service, server.name));
        assert_eq!(
            parent.kind,
            SpanKind::Client,
            "{} is parented by {}",
            server.name,
            parent.name
        );
    }
}

/// Waits until the trace has `what` and no span is missing its parent: spans are
/// exported as they end, so an incomplete trace has orphans until its last spans
/// (the request's, the saga's) arrive. A span that never ends fails this.
async fn complete(
    receiver: &OtlpReceiver,
    trace_id: &str,
    entry: &[&str],
    what: &str,
    check: impl Fn(&[Span]) -> bool,
) -> Vec<Span> {
    receiver
        .wait_for(trace_id, &format!("{what}, with every parent present"), |spans| {
            check(spans) && spans.orphans(entry).is_empty()
        })
        .await
}

fn assert_well_formed(spans: &[Span], allowed_parents: &[&str]) {
    let orphans: Vec<String> = spans
        .orphans(allowed_parents)
        .iter()
        .map(|s| format!("{}:{}", s.service, s.name))
        .collect();
    assert!(orphans.is_empty(), "orphan spans: {orphans:?}");
    for span in spans {
        assert!(
            span.end_unix_nano >= span.start_unix_nano && span.end_unix_nano > 0,
            "unended: {}",
            span.name
        );
    }
}

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[actix_web::test]
async fn a_saga_checkout_is_one_trace_across_every_service_and_joins_the_callers() {
    let receiver = OtlpReceiver::start().await;
    let platform = traced_platform(&receiver).await;
    let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let order = checkout_with(
        &platform,
        &platform.order.url("/checkout"),
        &checkout_body("SKU-001", 1, "tok_visa"),
        &[("traceparent", &traceparent), ("baggage", "tenant=acme")],
    )
    .await;
    assert_eq!(order["status"], "confirmed", "{order}");
    assert_eq!(
        order["trace_id"], CALLER_TRACE,
        "the checkout joined the caller's trace"
    );

    let spans = complete(
        &receiver,
        CALLER_TRACE,
        &[CALLER_SPAN],
        "the email's delivery",
        |spans| !spans.named("email.deliver").is_empty(),
    )
    .await;
    let services = spans.services();
    for service in ["order-service", "inventory-service", "payment-service", "email-service"] {
        assert!(services.contains(&service.to_owned()), "{service} in {services:?}");
        assert!(!server_spans(&spans, service).is_empty(), "{service} has a server span");
    }
    let saga = spans.named("saga.checkout");
    assert_eq!(saga.len(), 1);
    // Telemetry speaks the API's values, never Rust's Debug spelling.
    assert_eq!(saga[0].attr("saga.outcome"), Some("confirmed"));
    assert_eq!(saga[0].attr("saga.resumed_from"), None, "a new saga resumes nothing");
    for step in [
        "create_order",
        "reserve_inventory",
        "charge_payment",
        "commit_inventory",
        "confirm_order",
        "send_email",
    ] {
        let step_spans = spans.named(&format!("saga.step {step}"));
        assert_eq!(step_spans.len(), 1, "{step}");
        assert!(spans.descends_from(step_spans[0], saga[0]), "{step} is under the saga");
        assert_eq!(step_spans[0].attr("saga.step"), Some(step));
        assert_eq!(step_spans[0].attr("saga.attempt"), Some("1"));
        assert_eq!(step_spans[0].attr("order.id"), order["order_id"].as_str());
    }
    assert_client_parents_server(&spans, &[CALLER_SPAN]);
    assert_well_formed(&spans, &[CALLER_SPAN]);
    // The baggage reached every hop.
    for server in spans.iter().filter(|s| s.kind == SpanKind::Server) {
        assert_eq!(
            server.attr("http.request.header.baggage"),
            Some("tenant=acme"),
            "{} {}",
            server.service,
            server.name
        );
    }
    // Database work shows up as client spans of PostgreSQL.
    let db = spans
        .iter()
        .find(|s| s.name == "db.insert_charge")
        .expect("a database span");
    assert_eq!(db.attr("db.system"), Some("postgresql"));
    assert_eq!(db.kind, SpanKind::Client);
}

#[actix_web::test]
async fn a_declined_checkout_shows_its_compensations_and_no_email() {
    let receiver = OtlpReceiver::start().await;
    let platform = traced_platform(&receiver).await;
    let order = checkout_with(
        &platform,
        &platform.order.url("/checkout"),
        &checkout_body("SKU-002", 1, "tok_chargeDeclined"),
        &[],
    )
    .await;
    assert_eq!(order["status"], "cancelled", "{order}");
    let trace_id = order["trace_id"].as_str().unwrap();
    let spans = complete(&receiver, trace_id, &[], "every compensation", |spans| {
        !spans.named("saga.compensate create_order").is_empty()
    })
    .await;
    let saga = spans.named("saga.checkout")[0];
    for step in ["charge_payment", "reserve_inventory", "create_order"] {
        let compensation = spans.named(&format!("saga.compensate {step}"));
        assert_eq!(compensation.len(), 1, "{step}");
        assert!(
            spans.descends_from(compensation[0], saga),
            "{step}'s compensation is under the saga"
        );
        assert_eq!(compensation[0].attr("saga.compensation"), Some("true"));
    }
    assert!(
        server_spans(&spans, "email-service").is_empty(),
        "no email for a cancelled order"
    );
    assert!(spans.named("email.deliver").is_empty());
    assert_client_parents_server(&spans, &[]);
    assert_well_formed(&spans, &[]);
}

#[actix_web::test]
async fn each_retry_is_a_span_of_its_own_and_the_injected_fault_is_marked() {
    let receiver = OtlpReceiver::start().await;
    let platform = traced_platform(&receiver).await;
    let order = checkout_with(
        &platform,
        &platform.order.url("/checkout"),
        &checkout_body("SKU-003", 1, "tok_visa"),
        &[("baggage", "fault.payment.charge=error")],
    )
    .await;
    assert_eq!(order["status"], "confirmed", "{order}");
    let trace_id = order["trace_id"].as_str().unwrap();
    let spans = complete(&receiver, trace_id, &[], "two charge attempts", |spans| {
        spans.named("saga.step charge_payment").len() == 2
    })
    .await;
    let mut attempts: Vec<&str> = spans
        .named("saga.step charge_payment")
        .iter()
        .filter_map(|s| s.attr("saga.attempt"))
        .collect();
    attempts.sort();
    assert_eq!(attempts, vec!["1", "2"]);
    let faulted = spans
        .iter()
        .find(|s| s.service == "payment-service" && s.attr("fault.injected").is_some())
        .expect("the payment service marked the injected fault");
    assert_eq!(faulted.attr("fault.injected"), Some("payment.charge=error"));
    assert!(faulted.events.iter().any(|e| e == "fault.injected"));
    assert_well_formed(&spans, &[]);
}

#[actix_web::test]
async fn work_resumed_after_a_crash_continues_the_checkout_trace() {
    let receiver = OtlpReceiver::start().await;
    let mut platform = traced_platform(&receiver).await;
    let request = platform
        .order
        .client
        .post(platform.order.url("/checkout"))
        .json(&checkout_body("SKU-004", 1, "tok_visa"))
        .header("Idempotency-Key", new_key())
        .header("baggage", "fault.order.confirm=crash");
    tokio::spawn(async move {
        let _ = request.send().await;
    });
    platform.processes().wait_until_exited(Service::Order).await;
    let order_id: uuid::Uuid = sqlx::query_scalar("SELECT order_id FROM sagas LIMIT 1")
        .fetch_one(&platform.order.pool)
        .await
        .unwrap();
    let traceparent: String = sqlx::query_scalar("SELECT traceparent FROM sagas LIMIT 1")
        .fetch_one(&platform.order.pool)
        .await
        .unwrap();
    let trace_id = traceparent.split('-').nth(1).unwrap().to_owned();
    platform.processes().restart(Service::Order).await;
    let order = platform.settled(&order_id.to_string()).await;
    assert_eq!(order["status"], "confirmed");
    assert_eq!(order["trace_id"], trace_id.as_str());
    let spans = receiver
        .wait_for(&trace_id, "the resumed saga's span and its email step", |spans| {
            !spans.named("saga.step send_email").is_empty()
                && spans
                    .named("saga.checkout")
                    .iter()
                    .any(|s| s.attr("saga.resumed_from").is_some())
        })
        .await;
    let resumed = spans
        .named("saga.checkout")
        .into_iter()
        .find(|s| s.attr("saga.resumed_from") == Some("running"))
        .expect("the resumed saga's span: it was running when the process died");
    assert_eq!(resumed.trace_id, trace_id, "resumed work keeps the original trace id");
    assert!(
        spans
            .iter()
            .any(|s| s.name == "saga.step confirm_order" && s.attr("saga.attempt") == Some("2"))
    );
}

#[actix_web::test]
async fn a_two_phase_commit_shows_its_phases_votes_and_decision() {
    let receiver = OtlpReceiver::start().await;
    let platform = traced_platform(&receiver).await;
    let committed = checkout_with(
        &platform,
        &platform.coordinator.url("/checkout"),
        &checkout_body("SKU-005", 1, "tok_visa"),
        &[],
    )
    .await;
    assert_eq!(committed["status"], "committed", "{committed}");
    let trace_id = committed["trace_id"].as_str().unwrap();
    let spans = complete(&receiver, trace_id, &[], "every commit", |spans| {
        ["order", "inventory", "payment", "email"]
            .iter()
            .all(|p| !spans.named(&format!("tpc.commit {p}")).is_empty())
    })
    .await;
    let tx = spans.named("tpc.checkout")[0];
    assert_eq!(tx.attr("tx.decision"), Some("commit"));
    assert_eq!(tx.attr("tx.state"), Some("committed"));
    for participant in ["order", "inventory", "payment", "email"] {
        let vote = spans.named(&format!("tpc.prepare {participant}"));
        assert_eq!(vote.len(), 1, "{participant}");
        assert_eq!(vote[0].attr("tx.vote"), Some("yes"));
        assert_eq!(vote[0].attr("tx.phase"), Some("prepare"));
        assert!(spans.descends_from(vote[0], tx));
        let commit = spans.named(&format!("tpc.commit {participant}"));
        assert_eq!(commit[0].attr("tx.phase"), Some("commit"));
    }
    let decision = spans.named("tpc.decision");
    assert_eq!(decision.len(), 1);
    assert_eq!(decision[0].attr("tx.decision"), Some("commit"));
    assert_eq!(decision[0].attr("tx.id"), committed["transaction_id"].as_str());
    assert_client_parents_server(&spans, &[]);
    assert_well_formed(&spans, &[]);

    let aborted = checkout_with(
        &platform,
        &platform.coordinator.url("/checkout"),
        &checkout_body("SKU-006", 1, "tok_chargeDeclined"),
        &[],
    )
    .await;
    assert_eq!(aborted["status"], "aborted", "{aborted}");
    let spans = complete(
        &receiver,
        aborted["trace_id"].as_str().unwrap(),
        &[],
        "every abort",
        |spans| {
            ["order", "inventory", "payment", "email"]
                .iter()
                .all(|p| !spans.named(&format!("tpc.abort {p}")).is_empty())
        },
    )
    .await;
    assert_eq!(spans.named("tpc.prepare payment")[0].attr("tx.vote"), Some("no"));
    assert_eq!(spans.named("tpc.decision")[0].attr("tx.decision"), Some("abort"));
    assert_well_formed(&spans, &[]);
}

#[actix_web::test]
async fn a_collector_that_never_answers_does_not_hold_up_a_checkout() {
    // It accepts connections and then says nothing, the worst kind of down.
    let black_hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", black_hole.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = black_hole.accept().await {
            held.push(socket);
        }
    });
    let env: Vec<(Service, &str, &str)> = [
        Service::Order,
        Service::Inventory,
        Service::Payment,
        Service::Email,
        Service::Coordinator,
    ]
    .into_iter()
    .map(|s| (s, "OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()))
    .collect();
    let platform = Platform::start_processes(&env).await;
    for sku in ["SKU-007", "SKU-008", "SKU-009"] {
        let (status, _, order) = platform
            .checkout(&checkout_body(sku, 1, "tok_visa"), &new_key(), None)
            .await;
        assert_eq!(status, 201, "answered within the deadline: {order}");
        assert_eq!(order["status"], "confirmed");
    }
}

#[actix_web::test]
async fn a_graceful_stop_flushes_every_span() {
    let receiver = OtlpReceiver::start().await;
    let mut platform = traced_platform(&receiver).await;
    let response = platform.inventory.get("/inventory/SKU-010").await;
    let trace_id = response.headers()["traceresponse"]
        .to_str()
        .unwrap()
        .split('-')
        .nth(1)
        .unwrap()
        .to_owned();
    // Stopped at once: the batch would only have gone out half a second later.
    platform.processes().terminate(Service::Inventory).await;
    let flushed = eventually(Duration::from_secs(5), || async {
        receiver
            .trace(&trace_id)
            .iter()
            .any(|s| s.service == "inventory-service" && s.kind == SpanKind::Server)
            .then_some(())
    })
    .await;
    assert!(
        flushed.is_some(),
        "the request's span was exported before the process ended"
    );
}

#[actix_web::test]
async fn resilience_decisions_are_events_on_the_calls_they_concern() {
    let receiver = OtlpReceiver::start().await;
    let (grpc, http) = (receiver.grpc_endpoint(), receiver.http_endpoint());
    let mut env: Vec<(Service, &str, &str)> = vec![
        (Service::Order, "BREAKER_FAILURE_THRESHOLD", "2"),
        (Service::Order, "BREAKER_COOL_DOWN_MS", "1000"),
        (Service::Payment, "OTEL_EXPORTER_OTLP_ENDPOINT", http.as_str()),
        (Service::Payment, "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    ];
    for service in [Service::Order, Service::Inventory, Service::Email, Service::Coordinator] {
        env.push((service, "OTEL_EXPORTER_OTLP_ENDPOINT", grpc.as_str()));
    }
    let platform = Platform::start_processes(&env).await;
    txlab_tests::fault_rule(&platform.payment, "payment.charge", "error").await;
    let order = checkout_with(
        &platform,
        &platform.order.url("/checkout"),
        &checkout_body("SKU-005", 1, "tok_visa"),
        &[],
    )
    .await;
    assert_eq!(order["status"], "cancelled", "{order}");
    let trace_id = order["trace_id"].as_str().unwrap();
    let has = |spans: &[Span], event: &str| spans.iter().any(|s| s.events.iter().any(|e| e == event));
    let spans = complete(&receiver, trace_id, &[], "the breaker's decisions", |spans| {
        has(spans, "resilience.breaker_opened") && has(spans, "resilience.short_circuited")
    })
    .await;
    // Both on the order service's client spans for the charge: the second failed
    // attempt opened the breaker, the third was never sent.
    for event in ["resilience.breaker_opened", "resilience.short_circuited"] {
        let span = spans.iter().find(|s| s.events.iter().any(|e| e == event)).unwrap();
        assert_eq!(
            (span.service.as_str(), span.kind),
            ("order-service", SpanKind::Client),
            "{event}"
        );
        let parent = spans.by_id(&span.parent_span_id).unwrap();
        assert_eq!(parent.name, "saga.step charge_payment", "{event}");
    }
    assert_well_formed(&spans, &[]);
}

#[actix_web::test]
async fn a_retry_denied_by_the_budget_and_a_shed_checkout_are_events_too() {
    let receiver = OtlpReceiver::start().await;
    let grpc = receiver.grpc_endpoint();
    let mut env: Vec<(Service, &str, &str)> = vec![
        // No retry is ever within the budget, and one checkout at a time is admitted.
        (Service::Order, "CIRCUIT_BREAKER", "off"),
        (Service::Order, "RETRY_BUDGET_RATIO", "0"),
        (Service::Order, "RETRY_BUDGET_MIN_PER_SEC", "0"),
        (Service::Order, "CHECKOUT_MAX_IN_FLIGHT", "1"),
    ];
    for service in [
        Service::Order,
        Service::Inventory,
        Service::Payment,
        Service::Email,
        Service::Coordinator,
    ] {
        env.push((service, "OTEL_EXPORTER_OTLP_ENDPOINT", grpc.as_str()));
    }
    let platform = Platform::start_processes(&env).await;
    let has = |spans: &[Span], event: &str| spans.iter().any(|s| s.events.iter().any(|e| e == event));

    // The charge fails once; its retry is denied, on the charge's client span.
    txlab_tests::fault_rule(&platform.payment, "payment.charge", "error").await;
    let order = checkout_with(
        &platform,
        &platform.order.url("/checkout"),
        &checkout_body("SKU-006", 1, "tok_visa"),
        &[],
    )
    .await;
    assert_eq!(order["status"], "cancelled", "{order}");
    let spans = complete(
        &receiver,
        order["trace_id"].as_str().unwrap(),
        &[],
        "the denied retry",
        |spans| has(spans, "resilience.retry_denied"),
    )
    .await;
    let denied = spans
        .iter()
        .find(|s| s.events.iter().any(|e| e == "resilience.retry_denied"))
        .unwrap();
    assert_eq!(
        (denied.service.as_str(), denied.kind),
        ("order-service", SpanKind::Client)
    );
    assert_eq!(
        spans.by_id(&denied.parent_span_id).unwrap().name,
        "saga.step charge_payment"
    );

    // While one checkout is in flight, the next is shed: an event on its own request.
    let slow = platform
        .order
        .client
        .post(platform.order.url("/checkout"))
        .json(&checkout_body("SKU-006", 1, "tok_visa"))
        .header("Idempotency-Key", new_key())
        .header("baggage", "fault.inventory.reserve=delay_ms:1500");
    let slow = actix_rt::spawn(slow.send());
    let in_flight = eventually(Duration::from_secs(5), || async {
        let view = txlab_tests::resilience(&platform.order).await;
        (view.load_shedding.and_then(|s| s.in_flight) == Some(1)).then_some(())
    })
    .await;
    assert!(in_flight.is_some(), "the first checkout is in flight");
    let shed = platform
        .order
        .send(
            platform
                .order
                .client
                .post(platform.order.url("/checkout"))
                .json(&checkout_body("SKU-006", 1, "tok_visa"))
                .header("Idempotency-Key", new_key()),
        )
        .await;
    let (status, problem) = testing::problem(shed).await;
    assert_eq!(status, 503, "{problem}");
    let spans = receiver
        .wait_for(problem["trace_id"].as_str().unwrap(), "the shed checkout", |spans| {
            has(spans, "resilience.shed")
        })
        .await;
    let shed = spans
        .iter()
        .find(|s| s.events.iter().any(|e| e == "resilience.shed"))
        .unwrap();
    assert_eq!((shed.service.as_str(), shed.kind), ("order-service", SpanKind::Server));
    slow.await.unwrap().unwrap();

    // Each decision is also a log line of the order service, with its trace id.
    let log_dir = platform.processes.as_ref().unwrap().log_dir().to_owned();
    let logged = |decision: &str, trace_id: &str| {
        std::fs::read_to_string(log_dir.join("order-service.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .any(|line| line["fields"]["resilience.decision"] == decision && line["trace_id"] == trace_id)
    };
    assert!(logged("retry_denied", order["trace_id"].as_str().unwrap()));
    assert!(logged("shed", problem["trace_id"].as_str().unwrap()));
}

#[actix_web::test]
async fn a_takeover_and_a_stale_fencing_token_are_in_the_checkout_trace() {
    let receiver = OtlpReceiver::start().await;
    let mut env: Vec<(Service, &str, &str)> = Vec::new();
    let grpc = receiver.grpc_endpoint();
    for service in [
        Service::Order,
        Service::Inventory,
        Service::Payment,
        Service::Email,
        Service::Coordinator,
    ] {
        env.push((service, "OTEL_EXPORTER_OTLP_ENDPOINT", grpc.as_str()));
        env.push((service, "SAGA_LEASE_TTL_MS", "1000"));
    }
    let mut platform = Platform::start_processes(&env).await;
    platform.processes().add_replica(Service::Order).await;
    // Replica 0 is paused between the charge's answer (a decline) and writing it down,
    // past its lease: replica 1 takes the saga over and confirms it.
    let order = checkout_with(
        &platform,
        &platform.order.url("/checkout"),
        &checkout_body("SKU-005", 1, "tok_visa"),
        &[(
            "baggage",
            "fault.payment.charge=decline,fault.order.step.charge_payment=pause_ms:4000",
        )],
    )
    .await;
    let order = platform.settled(order["order_id"].as_str().unwrap()).await;
    assert_eq!(order["status"], "confirmed", "{order}");
    let trace_id = order["trace_id"].as_str().unwrap().to_owned();
    let saga_id = order["saga"]["saga_id"].as_str().unwrap().to_owned();
    let spans = receiver
        .wait_for(&trace_id, "both holders' saga spans", |spans| {
            spans.named("saga.checkout").len() >= 2
                && spans
                    .named("saga.checkout")
                    .iter()
                    .any(|s| s.events.iter().any(|e| e == "saga.lease_lost"))
        })
        .await;
    let runs = spans.named("saga.checkout");
    let first = runs
        .iter()
        .find(|s| s.attr("saga.epoch") == Some("1"))
        .expect("epoch 1");
    let second = runs
        .iter()
        .find(|s| s.attr("saga.epoch") == Some("2"))
        .expect("epoch 2");
    assert_eq!(
        second.attr("saga.taken_over_from"),
        first.attr("saga.owner"),
        "the takeover names the replica it took over from"
    );
    assert_ne!(first.attr("saga.owner"), second.attr("saga.owner"));
    assert!(first.events.iter().any(|e| e == "saga.lease_lost"), "{first:?}");
    assert!(first.events.iter().any(|e| e == "fault.injected"), "{first:?}");

    // A call with the stale epoch, in the same trace: refused, and the refusal is an
    // event on the participant's span.
    let refund = platform
        .payment
        .client
        .post(platform.payment.url("/refunds"))
        .json(&serde_json::json!({ "order_id": order["order_id"] }))
        .header("Idempotency-Key", format!("{saga_id}:charge_payment:compensation"))
        .header("Fencing-Token", format!("{saga_id}:1"))
        .header("traceparent", format!("00-{trace_id}-{CALLER_SPAN}-01"));
    assert_eq!(platform.payment.send(refund).await.status(), 409);
    receiver
        .wait_for(&trace_id, "the refusal's event", |spans| {
            spans
                .iter()
                .any(|s| s.service == "payment-service" && s.events.iter().any(|e| e == "fencing.stale_token_refused"))
        })
        .await;
}

//! The contract at its edges, on every service: health answers name a trace like every
//! other answer, every validation problem lists its errors, a wrong method on a known
//! path is 405 with `Allow`, and the HTTP codec's own limit is where the README says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::Method;
use serde_json::Value;
use testing::{TestApp, problem};
use txlab_tests::Platform;

#[actix_web::test]
async fn health_answers_carry_a_trace_id_and_a_traceresponse() {
    let platform = Platform::start().await;
    for (name, app) in platform.apps() {
        for path in ["/health/live", "/health/ready"] {
            let response = app.get(path).await;
            assert_eq!(response.status(), 200, "{name} {path}");
            let traceresponse = response.headers()["traceresponse"].to_str().unwrap().to_owned();
            let body: Value = response.json().await.unwrap();
            let trace_id = body["trace_id"]
                .as_str()
                .unwrap_or_else(|| panic!("{name} {path}: {body}"));
            assert_eq!(trace_id.len(), 32, "{name} {path}: {body}");
            assert_eq!(
                traceresponse.split('-').nth(1),
                Some(trace_id),
                "{name} {path}: {traceresponse}"
            );
            assert!(
                traceresponse.ends_with("-00"),
                "polled constantly, never sampled: {traceresponse}"
            );
        }
    }
}

#[actix_web::test]
async fn every_invalid_request_problem_lists_its_errors() {
    let platform = Platform::start().await;
    let order_id = uuid::Uuid::new_v4();
    let cases: Vec<(&TestApp, Method, String, Option<Value>)> = vec![
        (&platform.order, Method::GET, "/orders?limit=abc".into(), None),
        (&platform.order, Method::GET, "/orders?limit=0".into(), None),
        (&platform.order, Method::GET, "/orders?status=lost".into(), None),
        (&platform.order, Method::GET, "/orders/not-a-uuid".into(), None),
        (
            &platform.coordinator,
            Method::GET,
            "/transactions?state=bogus".into(),
            None,
        ),
        (
            &platform.coordinator,
            Method::GET,
            "/transactions?limit=9999".into(),
            None,
        ),
        (&platform.coordinator, Method::GET, "/transactions/42".into(), None),
        (&platform.inventory, Method::GET, "/reservations/42".into(), None),
        (&platform.payment, Method::GET, "/payments?order_id=42".into(), None),
        (&platform.email, Method::GET, "/emails?order_id=42".into(), None),
        (
            &platform.payment,
            Method::POST,
            "/tpc/not-a-gid/commit".into(),
            Some(serde_json::json!({})),
        ),
        (
            &platform.inventory,
            Method::POST,
            "/tpc/not-a-gid/abort".into(),
            Some(serde_json::json!({})),
        ),
        (
            &platform.payment,
            Method::POST,
            "/refunds".into(),
            Some(serde_json::json!({ "order_id": order_id, "amount_cents": -5 })),
        ),
        (
            &platform.inventory,
            Method::PUT,
            "/admin/inventory/SKU-001".into(),
            Some(serde_json::json!({ "available": -1 })),
        ),
    ];
    for (app, method, path, body) in cases {
        let mut request = app.client.request(method.clone(), app.url(&path));
        if let Some(body) = &body {
            request = request.json(body);
        }
        let (status, problem) = problem(app.send(request).await).await;
        assert_eq!(status, 400, "{method} {path}: {problem}");
        if problem["type"] == "urn:txlab:problem:invalid-request" {
            let errors = problem["errors"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path}: {problem}"));
            assert!(!errors.is_empty(), "{method} {path}: {problem}");
        }
    }
}

#[actix_web::test]
async fn a_wrong_method_on_a_known_path_is_405_with_allow() {
    let platform = Platform::start().await;
    let id = uuid::Uuid::new_v4();
    let gid = format!("txlab_{}_payment", id.simple());
    let cases: Vec<(&TestApp, Method, String, &str)> = vec![
        (&platform.order, Method::PUT, "/checkout".into(), "POST"),
        (&platform.order, Method::GET, "/checkout".into(), "POST"),
        (&platform.coordinator, Method::DELETE, "/checkout".into(), "POST"),
        (&platform.order, Method::POST, format!("/orders/{id}"), "GET"),
        (&platform.order, Method::GET, format!("/orders/{id}/cancel"), "POST"),
        (&platform.order, Method::DELETE, "/orders".into(), "POST, GET"),
        (&platform.inventory, Method::POST, "/inventory/SKU-001".into(), "GET"),
        (&platform.payment, Method::GET, format!("/tpc/{gid}/commit"), "POST"),
        (&platform.payment, Method::POST, "/payments".into(), "GET"),
        (&platform.email, Method::DELETE, "/health/live".into(), "GET"),
        (
            &platform.email,
            Method::PATCH,
            "/admin/faults".into(),
            "GET, PUT, DELETE",
        ),
        (&platform.coordinator, Method::PUT, "/admin/resilience".into(), "GET"),
    ];
    for (app, method, path, allowed) in cases {
        let response = app.send(app.client.request(method.clone(), app.url(&path))).await;
        let allow = response
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let (status, problem) = problem(response).await;
        assert_eq!(status, 405, "{method} {path}: {problem}");
        assert_eq!(problem["type"], "urn:txlab:problem:method-not-allowed", "{problem}");
        let mut got: Vec<&str> = allow.split(',').map(str::trim).collect();
        let mut want: Vec<&str> = allowed.split(',').map(str::trim).collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "{method} {path}: Allow {allow}");
    }
    let (status, problem) = problem(platform.order.get("/no-such-path").await).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (404, Some("urn:txlab:problem:not-found"))
    );
}

/// More header fields than the HTTP codec takes (96) is refused by it, before any
/// txlab code runs: 431 with an empty body, as the README documents.
#[actix_web::test]
async fn the_codecs_header_limit_is_where_the_readme_says() {
    let platform = Platform::start().await;
    let app = &platform.order;
    let with_headers = |n: usize| {
        let mut request = app.client.get(app.url("/health/live"));
        for i in 0..n {
            request = request.header(format!("x-extra-{i}"), "v");
        }
        request
    };
    let fine = with_headers(80).send().await.unwrap();
    assert_eq!(fine.status(), 200);
    let refused = with_headers(100).send().await.unwrap();
    assert_eq!(refused.status(), 431);
    assert!(refused.text().await.unwrap().is_empty());
}

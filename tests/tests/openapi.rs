//! Every service's OpenAPI document (`GET /openapi.json`) and interactive docs
//! (`GET /docs`): the document covers every route the service serves and nothing it
//! does not, every operation carries the shared headers and problem+json answers, and
//! the docs page renders in a real browser with no network beyond the service.
//! (schemathesis, run by `scripts/fuzz-api`, checks the answers against it.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use serde_json::Value;
use testing::TestApp;
use txlab_tests::Platform;

const PARTICIPANT: &[&str] = &[
    "post /tpc/{gid}/prepare",
    "post /tpc/{gid}/commit",
    "post /tpc/{gid}/abort",
    "get /tpc/prepared",
];

const PLATFORM: &[&str] = &[
    "get /health/live",
    "get /health/ready",
    "get /admin/faults",
    "put /admin/faults",
    "delete /admin/faults",
    "get /admin/resilience",
    "get /admin/idempotency-keys",
];

/// What each service serves, as the README lists it.
fn served(service: &str) -> BTreeSet<String> {
    let own: &[&str] = match service {
        "order" => &[
            "post /checkout",
            "post /orders",
            "get /orders",
            "get /orders/{order_id}",
            "post /orders/{order_id}/confirm",
            "post /orders/{order_id}/cancel",
            "get /sagas",
            "get /sagas/counts",
            "get /sagas/{saga_id}/history",
            "get /admin/replicas",
        ],
        "inventory" => &[
            "get /inventory",
            "get /inventory/{sku}",
            "put /admin/inventory/{sku}",
            "post /reservations",
            "get /reservations/{order_id}",
            "post /reservations/{order_id}/release",
            "post /reservations/{order_id}/commit",
        ],
        "payment" => &["post /charges", "post /refunds", "get /payments"],
        "email" => &["post /emails", "get /emails"],
        "coordinator" => &[
            "post /checkout",
            "get /transactions",
            "get /transactions/counts",
            "get /transactions/{id}",
            "get /transactions/{id}/history",
            "get /admin/replicas",
        ],
        other => panic!("{other}"),
    };
    let participant = if service == "coordinator" { &[][..] } else { PARTICIPANT };
    own.iter()
        .chain(participant)
        .chain(PLATFORM)
        .map(|s| (*s).to_owned())
        .collect()
}

async fn document(app: &TestApp) -> Value {
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                found.push((method.clone(), path.clone(), operation));
            }
        }
    }
    found
}

/// Every `$ref` in `value`.
fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => found.push(target),
                    _ => refs(value, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
        _ => {}
    }
}

#[actix_web::test]
async fn every_service_documents_exactly_the_routes_it_serves() {
    let platform = Platform::start().await;
    for (name, app) in platform.apps() {
        let doc = document(app).await;
        assert_eq!(doc["openapi"], "3.1.0", "{name}");
        assert!(doc["info"]["title"].as_str().unwrap().starts_with("txlab "), "{name}");
        let documented: BTreeSet<String> = operations(&doc).iter().map(|(m, p, _)| format!("{m} {p}")).collect();
        assert_eq!(documented, served(name), "{name}: documented vs served");

        // Each documented route is routed: never the catch-all 404 "no route".
        for (method, path, _) in operations(&doc) {
            let concrete = path
                .replace("{order_id}", "0190a7f0-0000-7000-8000-000000000000")
                .replace("{id}", "0190a7f0-0000-7000-8000-000000000000")
                .replace("{sku}", "SKU-001")
                .replace("{gid}", "not-a-gid");
            let request = app
                .client
                .request(method.to_uppercase().parse().unwrap(), app.url(&concrete))
                .header("Content-Type", "application/json")
                .body("null");
            let response = request.send().await.unwrap();
            let status = response.status();
            let body = response.text().await.unwrap();
            assert!(
                !body.contains("no route for"),
                "{name}: {method} {path} is documented but not served: {status} {body}"
            );
        }

        // Every reference resolves.
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty(), "{name}");
        for target in found {
            let pointer = target.strip_prefix('#').expect("a local reference");
            assert!(doc.pointer(pointer).is_some(), "{name}: {target} does not resolve");
        }
    }
}

#[actix_web::test]
async fn every_operation_names_the_shared_headers_and_its_problem_answers() {
    let platform = Platform::start().await;
    for (name, app) in platform.apps() {
        let doc = document(app).await;
        for (method, path, operation) in operations(&doc) {
            let at = format!("{name}: {method} {path}");
            let headers: BTreeSet<&str> = operation["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "header")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            for header in ["traceparent", "baggage", "Request-Timeout-Ms"] {
                assert!(headers.contains(header), "{at}: {header} in {headers:?}");
            }
            let writes = method != "get";
            let keyed = writes && !path.starts_with("/tpc/") && path != "/admin/faults";
            assert_eq!(headers.contains("Idempotency-Key"), keyed, "{at}");
            let responses = operation["responses"].as_object().unwrap();
            for status in ["500", "503", "504"] {
                assert!(responses.contains_key(status), "{at}: {status}");
            }
            if path.starts_with("/admin/") {
                assert!(responses.contains_key("401"), "{at}");
                assert_eq!(operation["security"][0]["admin_token"], serde_json::json!([]), "{at}");
            }
            if operation.get("requestBody").is_some() {
                for status in ["400", "413", "415"] {
                    assert!(responses.contains_key(status), "{at}: {status}");
                }
            }
            for (status, response) in responses {
                assert!(response["headers"]["traceresponse"].is_object(), "{at} {status}");
                let content = response["content"].as_object();
                if status.starts_with('4') || status.starts_with('5') {
                    let content = content.unwrap_or_else(|| panic!("{at} {status}: no body"));
                    assert_eq!(
                        content.keys().collect::<Vec<_>>(),
                        ["application/problem+json"],
                        "{at} {status}"
                    );
                    assert_eq!(
                        content["application/problem+json"]["schema"]["$ref"], "#/components/schemas/Problem",
                        "{at} {status}"
                    );
                } else if status != "204" {
                    assert!(
                        content.is_some_and(|c| c.contains_key("application/json")),
                        "{at} {status}"
                    );
                }
            }
        }
    }
    // The documented constraints are the ones the services enforce.
    let doc = document(&platform.order).await;
    let schemas = &doc["components"]["schemas"];
    let line = &schemas["LineItemRequest"]["properties"];
    assert_eq!(line["quantity"]["minimum"], 1);
    assert_eq!(line["quantity"]["maximum"], 1000);
    assert_eq!(
        schemas["CheckoutRequest"]["properties"]["customer_email"]["format"],
        "email"
    );
    assert_eq!(schemas["CheckoutRequest"]["properties"]["items"]["maxItems"], 50);
    assert_eq!(schemas["CheckoutRequest"]["additionalProperties"], false);
    let checkout = &doc["paths"]["/checkout"]["post"];
    let key = checkout["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Idempotency-Key")
        .unwrap();
    assert_eq!(key["required"], true);
    assert_eq!(key["schema"]["maxLength"], 255);
}

#[actix_web::test]
async fn the_docs_page_and_its_assets_come_from_the_service_itself() {
    let platform = Platform::start().await;
    for (name, app) in platform.apps() {
        let page = app.get("/docs").await;
        assert_eq!(page.status(), 200, "{name}");
        assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
        let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(csp.contains("default-src 'self'"), "{csp}");
        let html = page.text().await.unwrap();
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{name}: {html}"
        );
        for (asset, kind) in [
            ("/docs/swagger-ui-bundle.js", "text/javascript"),
            ("/docs/swagger-ui.css", "text/css"),
            ("/docs/init.js", "text/javascript"),
        ] {
            let response = app.get(asset).await;
            assert_eq!(response.status(), 200, "{name} {asset}");
            let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
            assert!(content_type.starts_with(kind), "{name} {asset}: {content_type}");
            assert!(response.bytes().await.unwrap().len() > 100, "{name} {asset}");
        }
    }
}

/// Headless Chromium loads `/docs` with every host but loopback unresolvable: the
/// page renders the operations from `/openapi.json` with nothing from the internet.
#[actix_web::test]
async fn the_docs_render_offline_in_a_real_browser() {
    let platform = Platform::start().await;
    let chromium = testing::chromium().expect("Chromium (scripts/test installs Debian's chromium)");
    for (name, app) in [("order", &platform.order), ("payment", &platform.payment)] {
        let (chromium, url) = (chromium.clone(), app.url("/docs"));
        let dom = tokio::task::spawn_blocking(move || testing::render_in_chromium(&chromium, &url))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(dom.contains("swagger-ui"), "{name}: {dom}");
        let (title, path) = if name == "order" {
            ("txlab order-service", "/checkout")
        } else {
            ("txlab payment-service", "/charges")
        };
        assert!(dom.contains(title), "{name}: the document's title is rendered");
        assert!(
            dom.contains(&format!("data-path=\"{path}\"")),
            "{name}: the operation {path} is rendered"
        );
        assert!(dom.contains("opblock-tag"), "{name}: operations are grouped by tag");
    }
}

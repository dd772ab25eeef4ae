//! The lab console in a real browser (headless Chromium over WebDriver), over every
//! service in this process. Each page's screenshot is saved under
//! `target/console-screenshots/` for a person to look at.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use api::{OrderView, TransactionList, TransactionView};
use serde_json::json;
use testing::{eventually, problem};
use txlab_tests::{Platform, browser::Browser, checkout_body, new_key, view};

const XSS_KEY: &str = "<img src=x onerror=alert(1)>";

#[actix_web::test]
async fn the_overview_lists_fresh_checkouts_and_the_xray_shows_each_steps_story() {
    let platform = Platform::start().await;
    let console = platform.console().await;
    let (_, _, confirmed) = platform
        .checkout(&checkout_body("SKU-002", 1, "tok_visa"), &new_key(), None)
        .await;
    let confirmed = view::<OrderView>(&confirmed);
    // A user's key is shown on the page, as text.
    let (_, _, declined) = platform
        .checkout(&checkout_body("SKU-003", 1, "tok_chargeDeclined"), XSS_KEY, None)
        .await;
    let declined = view::<OrderView>(&declined);
    let (_, _, committed) = platform
        .checkout_2pc(&checkout_body("SKU-004", 1, "tok_visa"), &new_key(), None)
        .await;
    let committed = view::<TransactionView>(&committed);
    platform.finished(&committed.transaction_id.to_string()).await;

    let browser = Browser::start().await;
    browser.goto(&console.url("/")).await;
    let links = |column: &'static str| {
        let browser = &browser;
        async move {
            let selector = format!("#{column} table a[href^='/checkouts/']");
            let hrefs = browser
                .run(
                    "return Array.from(document.querySelectorAll(arguments[0])).map(a => a.getAttribute('href'));",
                    json!([selector]),
                )
                .await;
            serde_json::from_value::<Vec<String>>(hrefs).unwrap()
        }
    };
    assert_eq!(
        links("sagas").await,
        [
            format!("/checkouts/{}", declined.order_id),
            format!("/checkouts/{}", confirmed.order_id)
        ],
        "newest first"
    );
    assert_eq!(
        links("transactions").await,
        [format!("/checkouts/{}", committed.order_id)]
    );
    let counts = browser.texts("#sagas .counts a").await;
    assert!(counts.contains(&"confirmed 1".to_owned()), "{counts:?}");
    assert!(counts.contains(&"cancelled 1".to_owned()), "{counts:?}");
    browser.screenshot("overview").await;

    // The confirmed saga: six steps, each succeeded, each a bar on the timeline.
    browser
        .click(&format!("#sagas a[href='/checkouts/{}']", confirmed.order_id))
        .await;
    browser
        .wait_until(
            "the X-ray",
            "return document.querySelectorAll('tr.step').length === 6;",
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(
        browser.texts("tr.step td:nth-child(2)").await,
        vec!["succeeded"; 6],
        "every step succeeded"
    );
    let bars = browser
        .run(
            "return document.querySelectorAll('svg.timeline rect.bar').length;",
            json!([]),
        )
        .await;
    assert_eq!(bars, 6, "one attempt each");
    assert_eq!(browser.texts(".pivot").await, ["◆ pivot"]);
    let trace = browser
        .run(
            "return document.querySelector('a.trace').getAttribute('href');",
            json!([]),
        )
        .await;
    assert_eq!(
        trace.as_str().unwrap(),
        format!(
            "http://127.0.0.1:16686/trace/{}",
            confirmed.trace_id.as_deref().unwrap()
        )
    );
    let verdict = browser.texts(".verdict").await;
    assert!(
        verdict.len() == 1 && verdict[0].starts_with("consistent: confirmed")
            || verdict[0].contains("still in the outbox"),
        "{verdict:?}"
    );
    browser.screenshot("xray-saga-confirmed").await;

    // The declined one: three compensations, newest first; the key is text.
    browser
        .goto(&console.url(&format!("/checkouts/{}", declined.order_id)))
        .await;
    let compensated = browser
        .run(
            "return Array.from(document.querySelectorAll('ol.compensations li')).map(li => li.dataset.step);",
            json!([]),
        )
        .await;
    assert_eq!(
        compensated,
        json!(["charge_payment", "reserve_inventory", "create_order"])
    );
    assert_eq!(browser.texts(".checkout-key").await, [format!("order:{XSS_KEY}")]);
    let images = browser
        .run("return document.querySelectorAll('img').length;", json!([]))
        .await;
    assert_eq!(images, 0, "the key was not turned into an element");
    assert_eq!(browser.alert().await, None, "no script ran");
    assert_eq!(
        browser.texts(".verdict").await,
        ["consistent: cancelled, 0 successful charge(s), net 0.00, no stock held, no email"]
    );
    browser.screenshot("xray-saga-declined").await;

    // The 2PC one: every participant voted yes and committed; nothing is held.
    browser
        .goto(&console.url(&format!("/checkouts/{}", committed.order_id)))
        .await;
    assert_eq!(
        browser.texts("tr.participant td:nth-child(3)").await,
        vec!["committed"; 4]
    );
    assert_eq!(browser.texts(".released").await.len(), 1);
    let commit_point = browser.texts("svg.timeline .commit-point text").await;
    assert_eq!(commit_point, ["decision: commit (commit point)"]);
    browser.screenshot("xray-2pc-committed").await;
}

#[actix_web::test]
async fn a_2pc_checkout_held_in_doubt_shows_its_sku_locked_then_released() {
    let platform = Platform::start().await;
    let console = platform.console().await;
    let checkout = platform.checkout_2pc_in_background(
        &checkout_body("SKU-007", 1, "tok_visa"),
        &new_key(),
        "fault.coordinator.vote=delay_ms:10000",
    );
    let in_doubt = eventually(Duration::from_secs(10), || async {
        let list: TransactionList = platform
            .coordinator
            .get("/transactions?state=in_doubt")
            .await
            .json()
            .await
            .unwrap();
        list.transactions.into_iter().next()
    })
    .await
    .expect("the transaction is in doubt");

    let browser = Browser::start().await;
    browser
        .goto(&console.url(&format!("/checkouts/{}", in_doubt.order_id)))
        .await;
    browser
        .wait_until(
            "the inventory's locked SKU",
            "const rows = document.querySelector(\".held[data-participant='inventory'] .rows\"); \
             return !!rows && rows.textContent.includes('SKU-007');",
            Duration::from_secs(20),
        )
        .await;
    browser.screenshot("xray-2pc-in-doubt").await;

    // A saga checkout of the same SKU meets the held row and waits: the Blocking page
    // shows who holds it and who waits.
    let waiting = platform
        .order
        .send(
            platform
                .order
                .client
                .post(platform.order.url("/checkout"))
                .header("Idempotency-Key", new_key())
                .header("Prefer", "respond-async")
                .json(&checkout_body("SKU-007", 1, "tok_visa")),
        )
        .await;
    assert_eq!(waiting.status(), 202);
    let waiting = view::<OrderView>(&waiting.json().await.unwrap());
    browser.goto(&console.url("/blocking")).await;
    browser
        .wait_until(
            "the holder and its waiter",
            &format!(
                "const holder = document.querySelector(\"tr.holder[data-participant='inventory'] .rows\"); \
                 return !!holder && holder.textContent.includes('SKU-007') \
                     && !!document.querySelector(\"tr.waiter a[href='/checkouts/{}']\");",
                waiting.order_id
            ),
            Duration::from_secs(20),
        )
        .await;
    browser.screenshot("blocking").await;
    browser
        .goto(&console.url(&format!("/checkouts/{}", in_doubt.order_id)))
        .await;
    // The page follows the transaction by itself: the decision comes, the locks go.
    browser
        .wait_until(
            "the locks released",
            "return !!document.querySelector('.released') && !document.body.dataset.refreshMs;",
            Duration::from_secs(30),
        )
        .await;
    assert!(browser.texts(".held").await.is_empty());
    browser.screenshot("xray-2pc-released").await;
    checkout.await.unwrap();
    // The waiter gave up before its pivot (cancelled, the locked rows its reason) or
    // went on once the row was free: either way final and consistent.
    let waited = platform.settled(&waiting.order_id.to_string()).await;
    let ended = waited["status"].as_str().unwrap();
    assert!(
        ended == "confirmed" || ended == "cancelled" && waited["reason"].as_str().unwrap().contains("locked"),
        "{waited}"
    );
    platform.assert_consistent(&waited).await;
}

#[actix_web::test]
async fn a_service_that_is_down_shows_as_down_and_bad_input_is_refused() {
    let platform = Platform::start().await;
    let console = platform
        .console_with(|s| s.peers.coordinator = testing::unreachable_url())
        .await;
    let (status, body) = console.page("/").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("the coordinator is down"), "{body}");
    assert!(body.contains("id=\"sagas\""), "{body}");

    let response = console.client.get(console.url("/")).send().await.unwrap();
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );

    // An order nobody knows, while the coordinator cannot be asked: shown as unknown
    // for now, and the page keeps trying.
    let (status, body) = console.page(&format!("/checkouts/{}", uuid::Uuid::now_v7())).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("the coordinator is down") && body.contains("data-refresh-ms"),
        "{body}"
    );

    let everyone = platform.console().await;
    let (status, body) = everyone.page(&format!("/checkouts/{}", uuid::Uuid::now_v7())).await;
    assert_eq!(status, 404, "{body}");

    for bad in [
        "/?saga_state=stuck",
        "/?tx_state=maybe",
        "/?older_than_secs=-1",
        "/?colour=red",
        "/checkouts/nope",
    ] {
        let (status, body) = problem(console.client.get(console.url(bad)).send().await.unwrap()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

/// A form post's body, as a browser sends it.
fn posted(request: reqwest::RequestBuilder, fields: &[(&str, String)]) -> reqwest::RequestBuilder {
    let encode = |raw: &str| -> String {
        raw.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    request
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body.join("&"))
}

/// The form token a console page carries.
fn form_token(page: &str) -> String {
    let at = page.find("name=\"form_token\" value=\"").expect("a form token") + "name=\"form_token\" value=\"".len();
    page[at..at + 32].to_owned()
}

#[actix_web::test]
async fn a_fault_rule_set_on_the_page_takes_effect_and_a_scenario_clicked_tells_its_story() {
    let platform = Platform::start().await;
    let console = platform.console().await;
    let browser = Browser::start().await;

    // A rule added on the Faults page: the payment declines every charge.
    browser.goto(&console.url("/faults")).await;
    browser
        .run(
            "const form = document.querySelector('#payment form.add-rule'); \
             form.operation.value = 'payment.charge'; form.kind.value = 'decline'; \
             form.querySelector('button').click(); return true;",
            json!([]),
        )
        .await;
    browser
        .wait_until(
            "the rule on the page",
            "const rule = document.querySelector('#payment tr.rule'); \
             return !!rule && rule.textContent.includes('payment.charge') && rule.textContent.includes('decline');",
            Duration::from_secs(20),
        )
        .await;
    browser.screenshot("faults").await;
    let (_, _, declined) = platform
        .checkout(&checkout_body("SKU-005", 1, "tok_visa"), &new_key(), None)
        .await;
    assert_eq!(declined["status"], "cancelled", "the rule took effect: {declined}");
    browser.click("#payment tr.rule button").await;
    browser
        .wait_until(
            "the rule removed",
            "return !!document.querySelector('#payment .rules.empty');",
            Duration::from_secs(20),
        )
        .await;
    let (_, _, confirmed) = platform
        .checkout(&checkout_body("SKU-005", 1, "tok_visa"), &new_key(), None)
        .await;
    assert_eq!(confirmed["status"], "confirmed", "and its removal too: {confirmed}");

    // A scenario clicked: the lost response, charged once, its replay on the key.
    browser.goto(&console.url("/scenarios")).await;
    browser.screenshot("scenarios").await;
    browser.click("form[action='/scenarios/lost-response'] button").await;
    browser
        .wait_until(
            "the lost response's X-ray, finished",
            "const step = document.querySelector(\"tr.step[data-step='charge_payment']\"); \
             return location.pathname.startsWith('/checkouts/') && !!step \
                 && step.textContent.includes('1 replay') && !document.body.dataset.refreshMs;",
            Duration::from_secs(30),
        )
        .await;
    let path = browser.run("return location.pathname;", json!([])).await;
    let order_id = path.as_str().unwrap().trim_start_matches("/checkouts/").to_owned();
    let order = platform.settled(&order_id).await;
    assert_eq!(order["status"], "confirmed", "{order}");
    let payments = platform.payments(&order_id).await;
    assert_eq!(
        payments["charges"].as_array().unwrap().len(),
        1,
        "charged once: {payments}"
    );
    assert_eq!(payments["net_cents"], order["total_cents"]);
    platform.assert_consistent(&order).await;
    browser.screenshot("xray-lost-response").await;
}

#[actix_web::test]
async fn actions_refuse_other_sites_and_want_the_admin_token_when_one_is_set() {
    let platform = Platform::start().await;
    let console = platform.console_with(|s| s.admin_token = Some("s3 cret;".into())).await;
    let (_, page) = console.page("/faults").await;
    assert!(page.contains("href=\"/signin\""), "{page}");
    let token = form_token(&page);
    let add = |form: Vec<(&'static str, String)>, origin: Option<&'static str>, cookie: Option<String>| {
        let mut request = posted(console.client.post(console.url("/faults/payment")), &form);
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        if let Some(cookie) = cookie {
            request = request.header("Cookie", cookie);
        }
        async move { problem(request.send().await.unwrap()).await }
    };
    let rule = |token: &str| {
        vec![
            ("form_token", token.to_owned()),
            ("operation", "payment.charge".to_owned()),
            ("kind", "error".to_owned()),
            ("probability", "1".to_owned()),
        ]
    };
    let (status, body) = add(rule("0".repeat(32).as_str()), None, None).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (403, Some("urn:txlab:problem:forbidden")),
        "{body}"
    );
    let (status, body) = add(rule(&token), Some("http://evil.example"), None).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = add(rule(&token), None, None).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (401, Some("urn:txlab:problem:unauthorized")),
        "{body}"
    );

    // Signed in, the same action goes through (and only a right token signs in).
    let sign_in = |secret: &'static str| {
        posted(
            console.client.post(console.url("/signin")),
            &[("form_token", token.clone()), ("token", secret.to_owned())],
        )
        .send()
    };
    assert_eq!(sign_in("guess").await.unwrap().status(), 401);
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed = posted(
        no_redirects.post(console.url("/signin")),
        &[("form_token", token.clone()), ("token", "s3 cret;".to_owned())],
    )
    .send()
    .await
    .unwrap();
    assert_eq!(signed.status(), 303);
    let cookie = signed.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let response = posted(
        no_redirects
            .post(console.url("/faults/payment"))
            .header("Cookie", cookie.clone())
            .header("Origin", console.address.clone()),
        &rule(&token),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 303, "{:?}", response.text().await);
    let rules: api::faults::FaultsView = platform.payment.get("/admin/faults").await.json().await.unwrap();
    assert_eq!(rules.rules.len(), 1, "{rules:?}");

    // Bad input is refused with a problem, and nothing changes.
    let mut bad = rule(&token);
    bad[2].1 = "explode".into();
    let (status, body) = add(bad, None, Some(cookie)).await;
    assert_eq!(status, 400, "{body}");
    let rules: api::faults::FaultsView = platform.payment.get("/admin/faults").await.json().await.unwrap();
    assert_eq!(rules.rules.len(), 1, "{rules:?}");
}

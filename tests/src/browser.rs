//! A real browser for the console's tests: Debian's Chromium, headless, driven by
//! `chromedriver` over the W3C WebDriver protocol (plain HTTP and JSON). Only
//! loopback resolves, so a page that needs the internet shows it.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine as _;
use serde_json::{Value, json};

pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver_url: String,
    driver: Child,
    profile: PathBuf,
}

/// Where the screenshots go, for a person to look at.
pub fn screenshots_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("console-screenshots")
}

fn chromedriver() -> PathBuf {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("chromedriver (scripts/test installs Debian's chromium-driver)")
}

impl Browser {
    pub async fn start() -> Browser {
        let chromium = testing::chromium().expect("Chromium (scripts/test installs Debian's chromium)");
        let port = crate::free_port();
        let profile = std::env::temp_dir().join(format!("txlab-webdriver-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&profile).expect("a profile directory");
        let driver = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let driver_url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = http.get(format!("{driver_url}/status")).send().await;
            if let Ok(response) = ready
                && let Ok(status) = response.json::<Value>().await
                && status["value"]["ready"] == true
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver was not ready within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--window-size=1400,1100",
                    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                    format!("--user-data-dir={}", profile.join("profile").display()),
                ]
            }
        }}});
        let created: Value = http
            .post(format!("{driver_url}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("a WebDriver session")
            .json()
            .await
            .expect("a WebDriver answer");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Browser {
            http,
            session,
            driver_url,
            driver,
            profile,
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.driver_url, self.session);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"));
        answer["value"].clone()
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        let answer = self
            .command(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
        assert!(answer.is_null(), "navigating to {url}: {answer}");
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub async fn run(&self, script: &str, args: Value) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// The text of every element `selector` matches, in document order.
    pub async fn texts(&self, selector: &str) -> Vec<String> {
        let found = self
            .run(
                "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent.trim());",
                json!([selector]),
            )
            .await;
        serde_json::from_value(found.clone()).unwrap_or_else(|_| panic!("texts of {selector}: {found}"))
    }

    /// Clicks the first element `selector` matches.
    pub async fn click(&self, selector: &str) {
        let clicked = self
            .run(
                "const e = document.querySelector(arguments[0]); if (!e) return false; e.click(); return true;",
                json!([selector]),
            )
            .await;
        assert_eq!(clicked, true, "nothing matches {selector}");
    }

    /// Waits until `script` (a function body) returns true, for up to `timeout`.
    pub async fn wait_until(&self, what: &str, script: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.run(script, json!([])).await == true {
                return;
            }
            if Instant::now() >= deadline {
                // What the page showed instead, for whoever reads the failure.
                let name = format!("failed-{}", what.replace(|c: char| !c.is_ascii_alphanumeric(), "-"));
                self.screenshot(&name).await;
                let html = self.run("return document.documentElement.outerHTML;", json!([])).await;
                let _ = std::fs::write(
                    screenshots_dir().join(format!("{name}.html")),
                    html.as_str().unwrap_or_default(),
                );
                panic!("waited {timeout:?} for {what}: see target/console-screenshots/{name}.png and .html");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The text of an open alert, if a script opened one.
    pub async fn alert(&self) -> Option<String> {
        let url = format!("{}/session/{}/alert/text", self.driver_url, self.session);
        let answer: Value = self.http.get(url).send().await.ok()?.json().await.ok()?;
        answer["value"].as_str().map(str::to_owned)
    }

    /// Saves what the browser shows as `target/console-screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.command(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .expect("a base64 screenshot");
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).expect("the screenshots directory");
        std::fs::write(dir.join(format!("{name}.png")), bytes).expect("the screenshot is written");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session (Chromium with it), then the driver.
        let url = format!("{}/session/{}", self.driver_url, self.session);
        let http = self.http.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let _ = http.delete(url).timeout(Duration::from_secs(10)).send().await;
            });
            std::io::Result::Ok(())
        })
        .join();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

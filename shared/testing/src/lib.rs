//! Test support, named only in `[dev-dependencies]`: no service binary compiles it.
//!
//! - [`settings`] and [`init_telemetry`]: a service's settings and tracing for a test.
//! - [`TestDatabase`]: a fresh database per test on one shared PostgreSQL cluster.
//! - [`SmtpSink`]: an SMTP server that speaks real SMTP and keeps what it receives.
//! - [`TestApp`]: a service started in-process on port 0 with a fresh database.
//! - [`problem`], [`eventually`], [`count_prepared`]: reading problem+json answers;
//!   polling for a state; the transactions a database holds prepared.
//! - [`start_up_tests!`]: the start-up tests every service binary has.
//! - [`chromium`], [`render_in_chromium`]: a page as headless Chromium renders it,
//!   with every host but loopback unresolvable.
//!
//! The cluster is `TXLAB_TEST_DATABASE_URL` (a superuser URL) when set; otherwise one
//! is started from the machine's PostgreSQL binaries in `target/txlab-test-pg` on port
//! `TXLAB_TEST_PG_PORT` (by default one in 55000–55999 derived from the directory) and
//! shared by every test process through a file lock.

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use sqlx::{Connection, PgConnection, PgPool};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

use base::{
    config::{Env, Service, Settings},
    pgcluster::{ClusterOptions, PgCluster},
};

/// A service's settings for a test: the defaults, the given database, port 0, fault
/// injection on.
pub fn settings(service: Service, database_url: &str) -> Settings {
    let map = [
        ("DATABASE_URL", database_url),
        ("BIND_ADDR", "127.0.0.1:0"),
        ("FAULT_INJECTION", "on"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    match Settings::from_env(service, &Env::from_map(map)) {
        Ok(settings) => settings,
        Err(e) => panic!("test settings are valid: {e}"),
    }
}

/// Tracing for tests: trace ids on spans, no export, JSON logs to the test writer
/// (filtered by `TEST_LOG`, `warn` by default). Idempotent.
pub fn init_telemetry() {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::{
        EnvFilter, Layer as _, filter::LevelFilter, layer::SubscriberExt as _, util::SubscriberInitExt as _,
    };

    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        base::telemetry::install_propagator();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let tracer = provider.tracer("txlab-test");
        opentelemetry::global::set_tracer_provider(provider);
        let filter = EnvFilter::try_from_env("TEST_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
        let _ = tracing_subscriber::registry()
            .with(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(LevelFilter::INFO),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(base::telemetry::JsonLogFormat)
                    .with_test_writer()
                    .with_filter(filter),
            )
            .try_init();
    });
}

/// The superuser URL of the test cluster, starting it if needed.
pub fn cluster_admin_url() -> anyhow::Result<String> {
    if let Ok(url) = std::env::var("TXLAB_TEST_DATABASE_URL") {
        return Ok(url);
    }
    let dir = std::env::var_os("TXLAB_TEST_PG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/txlab-test-pg"));
    std::fs::create_dir_all(&dir)?;
    let dir = dir.canonicalize()?;
    let port = std::env::var("TXLAB_TEST_PG_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| port_for(&dir));
    let lock = std::fs::File::create(dir.with_extension("lock"))?;
    lock.lock()?;
    let cluster = PgCluster::new(&dir, port)?;
    let options = ClusterOptions {
        max_connections: 500,
        fsync: false,
    };
    cluster.init(&options)?;
    cluster.start()?;
    lock.unlock()?;
    Ok(cluster.url("postgres"))
}

/// A port in 55000–55999 derived from the cluster's directory, so two checkouts
/// testing at once do not meet on one port.
fn port_for(dir: &std::path::Path) -> u16 {
    let hash = dir
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
        });
    55_000 + (hash % 1000) as u16
}

/// A database of its own for one test, empty (migrations run when the app starts).
#[derive(Debug, Clone)]
pub struct TestDatabase {
    pub url: String,
    pub name: String,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        match Self::try_create().await {
            Ok(db) => db,
            Err(e) => panic!("cannot create a test database: {e:#}"),
        }
    }

    async fn try_create() -> anyhow::Result<TestDatabase> {
        let admin = tokio::task::spawn_blocking(cluster_admin_url).await??;
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&admin).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let base = admin.rsplit_once('/').map(|(base, _)| base).unwrap_or(&admin);
        Ok(TestDatabase {
            url: format!("{base}/{name}"),
            name,
        })
    }

    pub async fn pool(&self) -> PgPool {
        match PgPool::connect(&self.url).await {
            Ok(pool) => pool,
            Err(e) => panic!("cannot connect to {}: {e}", self.url),
        }
    }
}

/// A message the sink accepted.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

impl ReceivedMail {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.data.lines().take_while(|l| !l.is_empty()).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// An SMTP server on 127.0.0.1 that keeps what it receives. `refuse_next(n)` answers
/// the next `n` transactions with a transient `451`, as a struggling relay would;
/// `reject_recipients()` answers every recipient with a permanent `550`.
#[derive(Debug, Clone)]
pub struct SmtpSink {
    pub port: u16,
    messages: Arc<Mutex<Vec<ReceivedMail>>>,
    refusals: Arc<AtomicUsize>,
    rejecting: Arc<std::sync::atomic::AtomicBool>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("cannot bind the SMTP sink: {e}"),
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let sink = SmtpSink {
            port,
            messages: Arc::default(),
            refusals: Arc::default(),
            rejecting: Arc::default(),
        };
        let server = sink.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let session = server.clone();
                tokio::spawn(async move {
                    let _ = session.serve(socket).await;
                });
            }
        });
        sink
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.messages.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn refuse_next(&self, transactions: usize) {
        self.refusals.store(transactions, Ordering::SeqCst);
    }

    pub fn reject_recipients(&self) {
        self.rejecting.store(true, Ordering::SeqCst);
    }

    async fn serve(&self, socket: tokio::net::TcpStream) -> std::io::Result<()> {
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read);
        write.write_all(b"220 txlab-test-sink ESMTP\r\n").await?;
        let (mut from, mut to) = (String::new(), Vec::new());
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let command = line.trim_end().to_owned();
            let verb = command.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
            let reply: &[u8] = match verb.as_str() {
                "EHLO" => b"250-txlab-test-sink\r\n250 8BITMIME\r\n",
                "HELO" | "NOOP" => b"250 OK\r\n",
                "RSET" => {
                    from.clear();
                    to.clear();
                    b"250 OK\r\n"
                }
                "MAIL" => {
                    let refused = self
                        .refusals
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    if refused {
                        b"451 4.3.0 temporarily unavailable, try again later\r\n"
                    } else {
                        from = address(&command);
                        b"250 OK\r\n"
                    }
                }
                "RCPT" if self.rejecting.load(Ordering::SeqCst) => b"550 5.1.1 no such mailbox here\r\n",
                "RCPT" => {
                    to.push(address(&command));
                    b"250 OK\r\n"
                }
                "DATA" => {
                    write.write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n").await?;
                    let mut data = String::new();
                    loop {
                        line.clear();
                        if lines.read_line(&mut line).await? == 0 {
                            return Ok(());
                        }
                        if line == ".\r\n" || line == ".\n" {
                            break;
                        }
                        data.push_str(line.strip_prefix('.').unwrap_or(&line));
                    }
                    if let Ok(mut messages) = self.messages.lock() {
                        messages.push(ReceivedMail {
                            from: std::mem::take(&mut from),
                            to: std::mem::take(&mut to),
                            data: data.replace("\r\n", "\n"),
                        });
                    }
                    b"250 2.0.0 OK queued\r\n"
                }
                "QUIT" => {
                    write.write_all(b"221 bye\r\n").await?;
                    return Ok(());
                }
                _ => b"502 5.5.2 command not recognised\r\n",
            };
            write.write_all(reply).await?;
        }
    }
}

fn address(command: &str) -> String {
    command
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(addr, _)| addr.to_owned())
        .unwrap_or_default()
}

/// A base URL where nobody listens: a peer that is down. Port 1 (tcpmux) is below the
/// ephemeral range, so no service of a concurrently running test is ever given it — a
/// port bound for a moment and let go could be, and the "down" peer would answer.
pub fn unreachable_url() -> String {
    "http://127.0.0.1:1".to_owned()
}

/// A service started in-process on port 0 with a fresh database.
#[derive(Debug, Clone)]
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub pool: PgPool,
    pub db: TestDatabase,
    pub client: reqwest::Client,
}

impl TestApp {
    /// Builds and serves a service; `configure` may adjust the settings first.
    /// Call from an actix test (`#[actix_web::test]`): services start actors.
    pub async fn spawn<F, Fut>(service: Service, configure: impl FnOnce(&mut Settings), build: F) -> TestApp
    where
        F: FnOnce(Settings) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<shared::startup::Server>>,
    {
        use shared::startup::Application as _;
        init_telemetry();
        let db = TestDatabase::create().await;
        let mut settings = settings(service, &db.url);
        configure(&mut settings);
        let server = match build(settings).await {
            Ok(server) => server,
            Err(e) => panic!("the {service} service did not start: {e:#}"),
        };
        let (port, pool) = (server.port, server.pool.clone());
        actix_rt::spawn(server.run_until_stopped());
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            port,
            pool,
            db,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.send(self.client.get(self.url(path))).await
    }

    pub async fn post(&self, path: &str, body: &impl serde::Serialize, key: Option<&str>) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(key) = key {
            request = request.header(api::headers::IDEMPOTENCY_KEY, key);
        }
        self.send(request).await
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> reqwest::Response {
        match request.send().await {
            Ok(response) => response,
            Err(e) => panic!("request to {} failed: {e}", self.address),
        }
    }

    /// A count from the service's own database, for "nothing was written" checks.
    pub async fn count(&self, table: &'static str) -> i64 {
        let sql = format!("SELECT count(*) FROM {table}");
        match sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&self.pool).await {
            Ok(n) => n,
            Err(e) => panic!("counting {table}: {e}"),
        }
    }
}

/// Reads a response as problem+json, checking the media type and the RFC 9457 members.
pub async fn problem(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(content_type, "application/problem+json", "status {status}, body {text}");
    let body: serde_json::Value = match serde_json::from_str(&text) {
        Ok(body) => body,
        Err(e) => panic!("problem body is not JSON ({e}): {text}"),
    };
    for member in ["type", "title", "status", "detail", "trace_id"] {
        assert!(body.get(member).is_some(), "problem lacks {member}: {body}");
    }
    let problem: api::ProblemBody =
        serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("not a problem body ({e}): {body}"));
    assert_eq!(problem.status, status, "{body}");
    assert!(problem.code().is_some(), "a type of the error-code table: {body}");
    (status, body)
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `timeout`.
pub async fn eventually<T, F, Fut>(timeout: std::time::Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Runs a service binary with a broken environment and checks that it stops with a
/// non-zero exit and exactly one line on stderr naming `variable` (no panic, no
/// backtrace). `env` is the whole environment the process sees.
pub fn assert_start_up_fails_naming(binary: &str, env: &[(&str, &str)], variable: &str) {
    let mut command = std::process::Command::new(binary);
    command.env_clear().envs(env.iter().copied()).env("RUST_LOG", "off");
    let child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(e) => panic!("cannot run {binary}: {e}"),
    };
    let output = match child.wait_with_output() {
        Ok(output) => output,
        Err(e) => panic!("waiting for {binary}: {e}"),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{binary} started anyway with {env:?}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected, got: {stderr}");
    assert!(lines[0].contains(variable), "the line names {variable}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The start-up tests every service binary has: a missing, unreachable or
/// non-Postgres `DATABASE_URL`, and an invalid setting, each end start-up with one
/// line naming the variable. Expands in the service's own test crate, where
/// `CARGO_BIN_EXE_<binary>` is known.
#[macro_export]
macro_rules! start_up_tests {
    ($binary:literal) => {
        const BINARY: &str = env!(concat!("CARGO_BIN_EXE_", $binary));

        #[test]
        fn a_missing_database_url_is_named() {
            $crate::assert_start_up_fails_naming(BINARY, &[("BIND_ADDR", "127.0.0.1:0")], "DATABASE_URL");
        }

        #[test]
        fn an_unreachable_database_url_is_named() {
            let env = [
                ("BIND_ADDR", "127.0.0.1:0"),
                ("DATABASE_URL", "postgres://txlab:secret@127.0.0.1:1/nowhere"),
            ];
            $crate::assert_start_up_fails_naming(BINARY, &env, "DATABASE_URL");
        }

        #[test]
        fn a_database_url_that_is_not_postgres_is_named() {
            let env = [
                ("BIND_ADDR", "127.0.0.1:0"),
                ("DATABASE_URL", "mysql://localhost/shop"),
            ];
            $crate::assert_start_up_fails_naming(BINARY, &env, "DATABASE_URL");
        }

        #[test]
        fn an_invalid_setting_is_named() {
            let env = [
                ("DATABASE_URL", "postgres://localhost/x"),
                ("FAULT_INJECTION", "sometimes"),
            ];
            $crate::assert_start_up_fails_naming(BINARY, &env, "FAULT_INJECTION");
        }
    };
}

/// Debian's Chromium, if installed (`scripts/test` installs it).
pub fn chromium() -> Option<std::path::PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|path| path.exists())
}

/// The DOM of `url` once headless Chromium has run its scripts (up to 20 s of virtual
/// time). Every host name but loopback's fails to resolve and background networking
/// is off, so a page that needs the internet renders without it, visibly.
pub fn render_in_chromium(chromium: &std::path::Path, url: &str) -> anyhow::Result<String> {
    use anyhow::Context as _;
    let profile = std::env::temp_dir().join(format!("txlab-chromium-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&profile)?;
    // Into files, not pipes: a DOM larger than a pipe's buffer would block Chromium
    // until someone reads it.
    let (dom_path, log_path) = (profile.join("dom.html"), profile.join("chromium.log"));
    let mut child = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--virtual-time-budget=20000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.join("profile").display()))
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&dom_path)?)
        .stderr(std::fs::File::create(&log_path)?)
        .spawn()
        .with_context(|| format!("starting {}", chromium.display()))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let dom = std::fs::read_to_string(&dom_path).unwrap_or_default();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&profile);
    match status {
        None => anyhow::bail!("Chromium did not finish rendering {url} within 90 s: {log}"),
        Some(status) if !status.success() => anyhow::bail!("Chromium failed on {url} ({status}): {log}"),
        Some(_) => Ok(dom),
    }
}

/// Transactions left prepared in the database at `url`: one never finished would hold
/// its locks forever, so tests assert there are none left.
pub async fn count_prepared(url: &str) -> Result<i64, sqlx::Error> {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let n = sqlx::query_scalar("SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(n)
}

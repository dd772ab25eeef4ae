//! The platform as processes on loopback: a throwaway PostgreSQL cluster with a
//! database per service, and every service binary found next to this one, each of
//! which can be killed (SIGKILL), frozen (SIGSTOP), thawed and started again.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use base::{
    config::Service,
    pgcluster::{ClusterOptions, PgCluster},
};
use sqlx::{Connection, PgConnection};
use tokio::process::{Child, Command};

/// Where the platform runs and what its services get.
#[derive(Debug, Clone)]
pub struct PlatformSettings {
    /// Where the order service listens; the others follow it (`TXLAB_PORT_BASE`).
    pub port_base: u16,
    /// PostgreSQL's port (`TXLAB_PG_PORT`).
    pub pg_port: u16,
    /// The cluster's data and the services' logs.
    pub state: PathBuf,
    /// Keep the databases of the last run instead of starting empty.
    pub keep_data: bool,
    /// Environment every service gets, beyond its address, database and peers.
    pub env: Vec<(String, String)>,
    /// The services export their traces to the console (OTLP/HTTP), which keeps the
    /// latest for its X-ray pages: a trace view without Jaeger.
    pub traces_to_console: bool,
    /// Processes of the order service and of the coordinator (`--replicas`): the
    /// first on the service's port, replica k on that port + 100·k.
    pub replicas: u16,
}

/// One process of a service: replica 0 of every service, more of the order service
/// and the coordinator with `--replicas`.
pub type Instance = (Service, u16);

/// The services that run as several replicas with `--replicas`.
pub const REPLICATED: [Service; 2] = [Service::Order, Service::Coordinator];

/// The name of an instance, for logs and messages: `order-service`, `order-service-1`.
pub fn instance_name((service, replica): Instance) -> String {
    match replica {
        0 => service.binary().to_owned(),
        k => format!("{}-{k}", service.binary()),
    }
}

impl PlatformSettings {
    pub fn port_of(&self, service: Service) -> u16 {
        self.port_base + (service.default_port() - Service::Order.default_port())
    }

    pub fn url_of(&self, service: Service) -> String {
        format!("http://127.0.0.1:{}", self.port_of(service))
    }

    pub fn port_of_instance(&self, (service, replica): Instance) -> u16 {
        self.port_of(service) + 100 * replica
    }

    pub fn url_of_instance(&self, instance: Instance) -> String {
        format!("http://127.0.0.1:{}", self.port_of_instance(instance))
    }

    /// Every process to run of these services, replicas included.
    pub fn instances(&self, services: &[Service]) -> Vec<Instance> {
        let mut instances: Vec<Instance> = services.iter().map(|s| (*s, 0)).collect();
        for k in 1..self.replicas.max(1) {
            instances.extend(REPLICATED.iter().filter(|s| services.contains(s)).map(|s| (*s, k)));
        }
        instances
    }
}

pub struct Platform {
    pub settings: PlatformSettings,
    pub services: Vec<Service>,
    cluster: PgCluster,
    bin_dir: PathBuf,
    children: BTreeMap<Instance, Child>,
}

/// The directory of this binary, where `cargo build --workspace --bins` puts the
/// service binaries too.
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .context("locating the service binaries")
}

/// Whether the process has ended by aborting itself (SIGABRT), as a `crash` fault
/// does, rather than being killed or failing.
pub fn aborted_itself(child: &mut Child) -> bool {
    matches!(child.try_wait(), Ok(Some(status)) if is_abort(status))
}

/// Whether an exit status is that of a process that aborted itself (SIGABRT).
pub fn is_abort(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    const SIGABRT: i32 = 6;
    status.signal() == Some(SIGABRT)
}

/// Whether nothing listens on `127.0.0.1:port`.
pub fn is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// `wanted` when it is free, else a port the system has free now.
pub fn free_port_like(wanted: u16) -> anyhow::Result<u16> {
    if is_free(wanted) {
        return Ok(wanted);
    }
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// `wanted` when the services' ports from it are free (the four after it, and the
/// console's ten above it), else the first base above it, in steps of twenty, that is.
pub fn free_port_base_like(wanted: u16) -> anyhow::Result<u16> {
    let offsets: Vec<u16> = Service::ALL
        .iter()
        .map(|s| s.default_port() - Service::Order.default_port())
        .collect();
    (0..200)
        .map(|step| wanted.saturating_add(step * 20))
        .find(|base| offsets.iter().all(|offset| is_free(base.saturating_add(*offset))))
        .with_context(|| format!("no free ports for the services above {wanted}"))
}

impl Platform {
    /// Starts PostgreSQL, creates the databases, starts every service and waits
    /// until each is ready. Stops what it started if any of it fails.
    pub async fn start(settings: PlatformSettings) -> anyhow::Result<Platform> {
        let bin_dir = bin_dir()?;
        let services: Vec<Service> = Service::ALL
            .into_iter()
            .filter(|s| bin_dir.join(s.binary()).is_file())
            .collect();
        if services.is_empty() {
            bail!(
                "no service binaries in {}; run `cargo build --workspace --bins` first",
                bin_dir.display()
            );
        }
        let busy: Vec<u16> = std::iter::once(settings.pg_port)
            .chain(
                settings
                    .instances(&services)
                    .into_iter()
                    .map(|i| settings.port_of_instance(i)),
            )
            .filter(|port| !is_free(*port))
            .collect();
        if !busy.is_empty() {
            bail!(
                "port(s) {busy:?} on 127.0.0.1 are in use by another process; \
                 move the platform with TXLAB_PORT_BASE and TXLAB_PG_PORT"
            );
        }
        let cluster_dir = settings.state.join("pg");
        let cluster = PgCluster::new(&cluster_dir, settings.pg_port)?;
        if cluster.is_running() {
            cluster.stop().ok();
        }
        if !settings.keep_data && cluster_dir.exists() {
            std::fs::remove_dir_all(&cluster_dir).with_context(|| format!("removing {}", cluster_dir.display()))?;
        }
        println!(
            "starting PostgreSQL on 127.0.0.1:{} ({})",
            settings.pg_port,
            cluster_dir.display()
        );
        cluster.init(&ClusterOptions::default())?;
        cluster.start()?;
        let mut platform = Platform {
            settings,
            services,
            cluster,
            bin_dir,
            children: BTreeMap::new(),
        };
        if let Err(e) = platform.start_services().await {
            platform.stop().await;
            return Err(e);
        }
        Ok(platform)
    }

    pub fn logs(&self) -> PathBuf {
        self.settings.state.join("logs")
    }

    /// A superuser URL of the service's own database (the console has none).
    pub fn database_url(&self, service: Service) -> Option<String> {
        service.database().map(|database| self.cluster.url(database))
    }

    async fn start_services(&mut self) -> anyhow::Result<()> {
        let mut admin = PgConnection::connect(&self.cluster.url("postgres")).await?;
        for database in self.services.iter().filter_map(|s| s.database()) {
            let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(database)
                .fetch_one(&mut admin)
                .await?;
            if !exists {
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
                    .execute(&mut admin)
                    .await?;
            }
        }
        admin.close().await?;
        std::fs::create_dir_all(self.logs())?;
        let instances = self.settings.instances(&self.services);
        for instance in instances.clone() {
            self.spawn(instance)?;
        }
        for instance in instances {
            self.wait_ready(instance)
                .await
                .map_err(|e| e.context(format!("see the logs in {}", self.logs().display())))?;
            println!(
                "  {:<18} ready on {}",
                instance_name(instance),
                self.settings.url_of_instance(instance)
            );
        }
        Ok(())
    }

    fn spawn(&mut self, instance: Instance) -> anyhow::Result<()> {
        let service = instance.0;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs().join(format!("{}.log", instance_name(instance))))?;
        let mut command = Command::new(self.bin_dir.join(service.binary()));
        command
            .env(
                "BIND_ADDR",
                format!("127.0.0.1:{}", self.settings.port_of_instance(instance)),
            )
            .env(
                "FAULT_INJECTION",
                std::env::var("FAULT_INJECTION").unwrap_or_else(|_| "on".into()),
            )
            .envs(self.settings.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        if let Some(url) = self.database_url(service) {
            command.env("DATABASE_URL", url);
        }
        if self.settings.traces_to_console && service != Service::Console && self.services.contains(&Service::Console) {
            command
                .env("OTEL_EXPORTER_OTLP_ENDPOINT", self.settings.url_of(Service::Console))
                .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
        }
        for peer in Service::ALL {
            command.env(peer.url_variable(), self.settings.url_of(peer));
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", instance_name(instance)))?;
        self.children.insert(instance, child);
        Ok(())
    }

    async fn wait_ready(&mut self, instance: Instance) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(90);
        let url = format!("{}/health/ready", self.settings.url_of_instance(instance));
        loop {
            if let Some(child) = self.children.get_mut(&instance)
                && let Some(status) = child.try_wait()?
            {
                bail!("{} exited ({status}) before it was ready", instance_name(instance));
            }
            let ready = client.get(&url).timeout(Duration::from_secs(1)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} was not ready within 90 s", instance_name(instance));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The first process found to have exited, with how.
    pub async fn first_exit(&mut self) -> (Instance, ExitStatus) {
        loop {
            if let Some(exited) = self.exited().into_iter().next() {
                return exited;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Services that exited by themselves (a `crash` fault, say), with how; they
    /// are no longer counted as running.
    pub fn exited(&mut self) -> Vec<(Instance, ExitStatus)> {
        let gone: Vec<(Instance, ExitStatus)> = self
            .children
            .iter_mut()
            .filter_map(|(instance, child)| match child.try_wait() {
                Ok(Some(status)) => Some((*instance, status)),
                _ => None,
            })
            .collect();
        for (instance, _) in &gone {
            self.children.remove(instance);
        }
        gone
    }

    /// SIGKILL to a service's first process: no shutdown, no flush, exactly like a crash.
    pub async fn kill(&mut self, service: Service) {
        self.kill_instance((service, 0)).await;
    }

    pub async fn kill_instance(&mut self, instance: Instance) {
        if let Some(mut child) = self.children.remove(&instance) {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Starts a process that is not running and waits until it is ready.
    pub async fn restart(&mut self, instance: Instance) -> anyhow::Result<()> {
        self.kill_instance(instance).await;
        self.spawn(instance)?;
        self.wait_ready(instance).await
    }

    /// Like [`Platform::restart`], but a service that aborts itself while starting
    /// (a `crash` fault met by work it resumed before it was ready) is started again,
    /// up to five times. Returns how many times it aborted.
    pub async fn restart_through_crashes(&mut self, instance: Instance) -> anyhow::Result<u32> {
        let mut crashes = 0;
        loop {
            match self.restart(instance).await {
                Ok(()) => return Ok(crashes),
                Err(e) if crashes < 5 && self.children.get_mut(&instance).is_some_and(aborted_itself) => {
                    crashes += 1;
                    println!(
                        "  {} aborted itself while starting ({e}); starting it again",
                        instance_name(instance)
                    );
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// SIGSTOP: the process stops mid-whatever, without knowing it (a GC pause, a VM
    /// migration), its connections open.
    pub fn freeze(&self, service: Service) {
        self.signal(service, "-STOP");
    }

    /// SIGCONT: it goes on where it stopped.
    pub fn thaw(&self, service: Service) {
        self.signal(service, "-CONT");
    }

    fn signal(&self, service: Service, signal: &str) {
        self.signal_instance((service, 0), signal);
    }

    fn signal_instance(&self, instance: Instance, signal: &str) {
        if let Some(pid) = self.children.get(&instance).and_then(Child::id) {
            let _ = std::process::Command::new("kill")
                .arg(signal)
                .arg(pid.to_string())
                .status();
        }
    }

    /// SIGTERM to every service, up to 10 s each for a graceful stop (spans
    /// flushed), then SIGKILL; then PostgreSQL.
    pub async fn stop(mut self) {
        for instance in self.children.keys() {
            self.signal_instance(*instance, "-CONT");
            self.signal_instance(*instance, "-TERM");
        }
        for child in self.children.values_mut() {
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        self.children.clear();
        println!("stopping PostgreSQL");
        self.cluster.stop().ok();
    }
}

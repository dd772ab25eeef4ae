//! The platform as real processes: the service binaries from `target/`, each on a
//! port of its own and a fresh database, so a test can SIGKILL one and start it again.

use std::{
    collections::HashMap,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use base::config::Service;
use testing::{SmtpSink, TestApp, TestDatabase};
use tokio::process::{Child, Command};

use crate::Platform;

pub struct Processes {
    bin_dir: PathBuf,
    logs: PathBuf,
    /// Each service's processes: replica 0 on the service's port, more replicas
    /// (`add_replica`) on ports of their own, all on the service's database.
    children: HashMap<(Service, usize), Child>,
    envs: HashMap<Service, Vec<(String, String)>>,
    ports: HashMap<(Service, usize), u16>,
}

/// Where `cargo build --workspace --bins` put the service binaries.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/debug/deps/<test> → target/debug
    let dir = exe.parent().and_then(|p| p.parent()).expect("target dir").to_path_buf();
    for service in [
        Service::Order,
        Service::Inventory,
        Service::Payment,
        Service::Email,
        Service::Coordinator,
    ] {
        assert!(
            dir.join(service.binary()).is_file(),
            "{} is missing in {}: run `cargo build --workspace --bins` first (scripts/test does)",
            service.binary(),
            dir.display()
        );
    }
    dir
}

use crate::free_port;

impl Processes {
    pub fn log_dir(&self) -> &std::path::Path {
        &self.logs
    }

    fn spawn(&mut self, service: Service) {
        self.spawn_replica(service, 0);
    }

    fn spawn_replica(&mut self, service: Service, replica: usize) {
        let name = match replica {
            0 => service.binary().to_owned(),
            n => format!("{}-{n}", service.binary()),
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{name}.log")))
            .expect("log file");
        let port = self.ports[&(service, replica)];
        let child = Command::new(self.bin_dir.join(service.binary()))
            .env_clear()
            .envs(self.envs[&service].iter().map(|(k, v)| (k, v)))
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        self.children.insert((service, replica), child);
    }

    async fn wait_ready(&mut self, service: Service) {
        self.wait_replica_ready(service, 0).await;
    }

    async fn wait_replica_ready(&mut self, service: Service, replica: usize) {
        let url = format!("http://127.0.0.1:{}/health/ready", self.ports[&(service, replica)]);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self
                .children
                .get_mut(&(service, replica))
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("{} exited ({status}); see {}", service.binary(), self.logs.display());
            }
            if reqwest::get(&url).await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready; see {}",
                service.binary(),
                self.logs.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts another replica of `service` on a port of its own, on the same
    /// database and settings; returns its number (the first replica is 0).
    pub async fn add_replica(&mut self, service: Service) -> usize {
        let replica = (1..)
            .find(|n| !self.ports.contains_key(&(service, *n)))
            .expect("a free number");
        self.ports.insert((service, replica), crate::free_port());
        self.spawn_replica(service, replica);
        self.wait_replica_ready(service, replica).await;
        replica
    }

    /// The base URL of a replica of `service`.
    pub fn replica_url(&self, service: Service, replica: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[&(service, replica)])
    }

    /// SIGKILL: no shutdown, no flush, exactly like a crash.
    pub async fn kill(&mut self, service: Service) {
        self.kill_replica(service, 0).await;
    }

    pub async fn kill_replica(&mut self, service: Service, replica: usize) {
        if let Some(mut child) = self.children.remove(&(service, replica)) {
            child.start_kill().expect("SIGKILL");
            let _ = child.wait().await;
        }
    }

    /// SIGKILLs a replica and starts it again (a new process: a new replica id).
    pub async fn restart_replica(&mut self, service: Service, replica: usize) {
        self.kill_replica(service, replica).await;
        self.spawn_replica(service, replica);
        self.wait_replica_ready(service, replica).await;
    }

    /// `SIGSTOP` (`stop`) or `SIGCONT` (`!stop`) to a replica: frozen, it does
    /// nothing — answers nothing, renews no lease — until continued, unaware that
    /// time passed.
    pub fn signal_replica(&mut self, service: Service, replica: usize, stop: bool) {
        let pid = self.children[&(service, replica)].id().expect("running");
        let status = std::process::Command::new("kill")
            .arg(if stop { "-STOP" } else { "-CONT" })
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{} {pid}", if stop { "STOP" } else { "CONT" });
    }

    /// SIGTERM: a graceful stop (requests drained, spans flushed); waits for the exit.
    pub async fn terminate(&mut self, service: Service) {
        if let Some(mut child) = self.children.remove(&(service, 0)) {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status();
            }
            let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
        }
    }

    pub async fn restart(&mut self, service: Service) {
        self.kill(service).await;
        self.spawn(service);
        self.wait_ready(service).await;
    }

    /// Waits up to 20 s for the service's process to end by itself (a `crash` fault).
    pub async fn wait_until_exited(&mut self, service: Service) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.has_exited(service) {
            assert!(Instant::now() < deadline, "{} should have exited", service.binary());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the service's process is gone (it crashed itself, say).
    pub fn has_exited(&mut self, service: Service) -> bool {
        match self.children.get_mut(&(service, 0)) {
            Some(child) => child.try_wait().ok().flatten().is_some(),
            None => true,
        }
    }
}

impl Platform {
    /// Every service as its own process. `extra` adds environment per service.
    pub async fn start_processes(extra: &[(Service, &str, &str)]) -> Platform {
        testing::init_telemetry();
        let smtp = SmtpSink::start().await;
        let services = [
            Service::Inventory,
            Service::Payment,
            Service::Email,
            Service::Order,
            Service::Coordinator,
        ];
        let ports: HashMap<Service, u16> = services.iter().map(|s| (*s, free_port())).collect();
        let mut databases = HashMap::new();
        for service in services {
            databases.insert(service, TestDatabase::create().await);
        }
        let logs = std::env::temp_dir().join(format!("txlab-e2e-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&logs).expect("log dir");
        let mut envs = HashMap::new();
        for service in services {
            let mut env = vec![
                ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
                ("DATABASE_URL".to_owned(), databases[&service].url.clone()),
                ("FAULT_INJECTION".to_owned(), "on".to_owned()),
                ("FAULT_TIMEOUT_WAIT_MS".to_owned(), "3500".to_owned()),
                ("RUST_LOG".to_owned(), "info".to_owned()),
                ("SMTP_URL".to_owned(), smtp.url()),
                ("EMAIL_POLL_INTERVAL_MS".to_owned(), "50".to_owned()),
                ("EMAIL_RETRY_BASE_MS".to_owned(), "50".to_owned()),
                ("SAGA_RECOVERY_INTERVAL_MS".to_owned(), "200".to_owned()),
                ("SAGA_PARK_RETRY_SECS".to_owned(), "0.5".to_owned()),
                ("CHECKOUT_DEADLINE_MS".to_owned(), "15000".to_owned()),
                ("IDEMPOTENCY_LEASE_SECS".to_owned(), "2".to_owned()),
                ("TPC_IN_DOUBT_AFTER_SECS".to_owned(), "1".to_owned()),
                ("TPC_RESOLVE_INTERVAL_SECS".to_owned(), "0.3".to_owned()),
                ("TPC_RECOVERY_INTERVAL_MS".to_owned(), "200".to_owned()),
                // A killed replica's sagas are taken over this long after its last write.
                ("SAGA_LEASE_TTL_MS".to_owned(), "1500".to_owned()),
            ];
            for peer in services {
                env.push((
                    peer.url_variable().to_owned(),
                    format!("http://127.0.0.1:{}", ports[&peer]),
                ));
            }
            for (s, key, value) in extra {
                if *s == service {
                    env.push(((*key).to_owned(), (*value).to_owned()));
                }
            }
            envs.insert(service, env);
        }
        let mut processes = Processes {
            bin_dir: bin_dir(),
            logs,
            children: HashMap::new(),
            envs,
            ports: ports.iter().map(|(service, port)| ((*service, 0), *port)).collect(),
        };
        for service in services {
            processes.spawn(service);
        }
        for service in services {
            processes.wait_ready(service).await;
        }
        let mut apps = HashMap::new();
        for service in services {
            let db = databases.remove(&service).expect("database");
            apps.insert(
                service,
                TestApp {
                    address: format!("http://127.0.0.1:{}", ports[&service]),
                    port: ports[&service],
                    pool: db.pool().await,
                    db,
                    client: reqwest::Client::new(),
                },
            );
        }
        let mut take = |s: Service| apps.remove(&s).expect("app");
        Platform {
            coordinator: take(Service::Coordinator),
            order: take(Service::Order),
            inventory: take(Service::Inventory),
            payment: take(Service::Payment),
            email: take(Service::Email),
            smtp,
            processes: Some(processes),
        }
    }

    pub fn processes(&mut self) -> &mut Processes {
        self.processes.as_mut().expect("started with start_processes")
    }
}

//! A throwaway PostgreSQL cluster from the machine's own binaries: for the native
//! launcher and for tests. Finds `initdb`/`pg_ctl` on `PATH` or in
//! `/usr/lib/postgresql/*/bin`; as root, runs them as the `postgres` user (initdb
//! refuses root). Sets `max_prepared_transactions` for two-phase commit, as high as
//! `max_connections` (PostgreSQL's advice when prepared transactions are used).

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

/// A cluster in `dir` listening on `127.0.0.1:port`, trusting local connections.
#[derive(Debug, Clone)]
pub struct PgCluster {
    pub dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
}

/// Tuning for a cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub max_connections: u32,
    /// Off for tests: durability against power loss is not what they test.
    pub fsync: bool,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            max_connections: 300,
            fsync: true,
        }
    }
}

/// Where `initdb` and `pg_ctl` are, or what to install.
pub fn find_binaries() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return Ok(dir);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => Ok(bin),
        None => bail!(
            "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin; \
             install them, e.g. `apt-get install postgresql` on Debian/Ubuntu"
        ),
    }
}

fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|uids| uids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

impl PgCluster {
    pub fn new(dir: impl Into<PathBuf>, port: u16) -> anyhow::Result<Self> {
        Ok(PgCluster {
            dir: dir.into(),
            port,
            bin: find_binaries()?,
        })
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        if running_as_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(exe);
            cmd
        } else {
            Command::new(exe)
        }
    }

    /// Initialises the cluster if it has no data directory yet.
    pub fn init(&self, options: &ClusterOptions) -> anyhow::Result<()> {
        if self.data_dir().join("PG_VERSION").is_file() {
            return Ok(());
        }
        fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        if running_as_root() {
            run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&self.dir))?;
        }
        run(self
            .command("initdb")
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale", "-D"])
            .arg(self.data_dir()))?;
        let conf = format!(
            "\n# txlab (the port is given at start)\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{dir}'\n\
             max_prepared_transactions = {max}\nmax_connections = {max}\nfsync = {fsync}\n\
             synchronous_commit = {fsync}\nfull_page_writes = {fsync}\nshared_buffers = '128MB'\n",
            dir = self.dir.display(),
            max = options.max_connections,
            fsync = if options.fsync { "on" } else { "off" },
        );
        let conf_path = self.data_dir().join("postgresql.conf");
        let mut current = fs::read_to_string(&conf_path)?;
        current.push_str(&conf);
        fs::write(&conf_path, current)?;
        Ok(())
    }

    /// Whether this cluster's server runs (on whatever port).
    pub fn is_running(&self) -> bool {
        self.data_dir().join("postmaster.pid").is_file()
            && self
                .command("pg_ctl")
                .arg("status")
                .arg("-D")
                .arg(self.data_dir())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
    }

    fn accepts_connections(&self) -> bool {
        std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], self.port)),
            Duration::from_millis(200),
        )
        .is_ok()
    }

    /// The port the running server listens on (line 4 of `postmaster.pid`).
    fn running_port(&self) -> Option<u16> {
        fs::read_to_string(self.data_dir().join("postmaster.pid"))
            .ok()?
            .lines()
            .nth(3)?
            .trim()
            .parse()
            .ok()
    }

    /// Starts the server on `port` (restarting it if it runs on another) and waits
    /// until it accepts connections.
    pub fn start(&self) -> anyhow::Result<()> {
        if self.is_running() {
            if self.running_port() == Some(self.port) {
                return Ok(());
            }
            self.stop()?;
        }
        let log = self.dir.join("postgres.log");
        run(self
            .command("pg_ctl")
            .args(["-w", "-t", "60", "-D"])
            .arg(self.data_dir())
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(format!("-p {}", self.port))
            .arg("start"))
        .with_context(|| {
            format!(
                "starting PostgreSQL on port {}; the end of {}:\n{}",
                self.port,
                log.display(),
                tail(&log, 20)
            )
        })?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.accepts_connections() {
            if Instant::now() > deadline {
                bail!("PostgreSQL did not accept connections on port {}", self.port);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    pub fn stop(&self) -> anyhow::Result<()> {
        run(self
            .command("pg_ctl")
            .args(["-w", "-m", "fast", "-D"])
            .arg(self.data_dir())
            .arg("stop"))
    }

    /// A URL for `database` as the superuser.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The last `lines` lines of a log file, or why there are none.
fn tail(path: &Path, lines: usize) -> String {
    match fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read it: {e})"),
    }
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !output.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

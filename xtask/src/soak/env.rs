//! The soak's world: its own namespaces (`scripts/topology.sh` under a prefix of its own), its
//! own pin directory, database and loader daemon, and the clean-up that removes all of it.
//! The demo (`cargo xtask demo`) runs in a world of the same kind.

use std::{
    fs,
    net::{SocketAddr, TcpListener, TcpStream},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicI32, AtomicUsize, Ordering},
    },
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

/// The router name the soak's daemon uses in the database.
pub(crate) const ROUTER: &str = "soak";

/// Which database backend the soak runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum DbKind {
    /// An SQLite file; the outage moves it aside and back.
    Sqlite,
    /// A private PostgreSQL server (scripts/postgres.sh); the outage stops and starts it.
    Postgres,
}

/// The database and how to make it go away and come back.
pub(crate) enum Database {
    /// SQLite file `path`; away = renamed to `path.away`.
    Sqlite { path: PathBuf },
    /// PostgreSQL data directory and port.
    Postgres { dir: PathBuf, port: u16 },
}

impl Database {
    /// Makes the database unreachable.
    pub(crate) fn go_away(&self) -> Result<()> {
        match self {
            // Only the main file: the loader's own test does the same, and an open connection
            // keeps its -wal/-shm (by file descriptor), so moving it back is a clean restore.
            Self::Sqlite { path } => fs::rename(path, away(path))
                .with_context(|| format!("moving {} aside", path.display())),
            Self::Postgres { dir, .. } => pg(&["halt", &dir.to_string_lossy()]).map(drop),
        }
    }

    /// Brings it back.
    pub(crate) fn come_back(&self) -> Result<()> {
        match self {
            Self::Sqlite { path } => fs::rename(away(path), path)
                .with_context(|| format!("moving {} back", path.display())),
            Self::Postgres { dir, port } => {
                pg(&["resume", &dir.to_string_lossy(), &port.to_string()]).map(drop)
            }
        }
    }

    /// What "away" means, for the report.
    pub(crate) fn fault_name(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => "SQLite file moved aside (mv) and back",
            Self::Postgres { .. } => "PostgreSQL server stopped (pg_ctl stop -m fast) and started",
        }
    }
}

fn away(path: &Path) -> PathBuf {
    path.with_extension("db.away")
}

fn pg(args: &[&str]) -> Result<String> {
    let out = Command::new("bash")
        .arg(crate::root().join("scripts/postgres.sh"))
        .args(args)
        .output()
        .context("running scripts/postgres.sh")?;
    if !out.status.success() {
        bail!(
            "scripts/postgres.sh {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Names, paths and the daemon of one soak run.
pub(crate) struct Env {
    /// Namespace/interface prefix ("sk" + pid in hex): namespaces `P-client`, `P-hub`,
    /// `P-service`, hub interfaces `Phc` and `Phs`.
    pub(crate) prefix: String,
    /// The loader binary.
    pub(crate) bin: PathBuf,
    /// Scratch directory: database, state, logs.
    pub(crate) work: PathBuf,
    /// An empty configuration file, so that a host's /etc/sdn/sdn.toml cannot change the soak.
    pub(crate) config: PathBuf,
    /// Pin directory on bpffs (the soak's own).
    pub(crate) pin_dir: PathBuf,
    /// Database URL.
    pub(crate) url: String,
    /// The database.
    pub(crate) db: Database,
    /// The daemon's HTTP address.
    pub(crate) http: SocketAddr,
    /// The daemon's router name in the database.
    pub(crate) router: String,
    /// Extra `run` arguments (intervals, guard).
    pub(crate) run_args: Vec<String>,
    /// The running daemon.
    child: Mutex<Option<Child>>,
    /// Its pid (0: none), also read by the clean-up.
    pid: Arc<AtomicI32>,
    runs: AtomicUsize,
}

impl Env {
    /// The client namespace.
    pub(crate) fn client_ns(&self) -> String {
        format!("{}-client", self.prefix)
    }

    /// The service namespace.
    pub(crate) fn service_ns(&self) -> String {
        format!("{}-service", self.prefix)
    }

    /// A loader command with the soak's configuration file.
    pub(crate) fn loader(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--config").arg(&self.config);
        c
    }

    /// Runs a loader command that must succeed; returns stdout.
    pub(crate) fn loader_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.loader().args(args).output()?;
        if !out.status.success() {
            bail!(
                "sdn-loader {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts `sdn-loader run --db` on the hub; returns its log file.
    pub(crate) fn spawn_loader(&self) -> Result<PathBuf> {
        let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        let log = self.work.join(format!("loader-{n:03}.log"));
        let f = fs::File::create(&log)?;
        let hub = format!("{}-hub", self.prefix);
        let (hc, hs) = (format!("{}hc", self.prefix), format!("{}hs", self.prefix));
        let child = self
            .loader()
            .args(["run", "--db", &self.url, "--netns", &hub])
            .args(["--iface", &hc, "--iface", &hs, "--router", &self.router])
            .arg("--pin-dir")
            .arg(&self.pin_dir)
            .arg("--state-dir")
            .arg(self.work.join("state"))
            .args(["--listen", &self.http.to_string()])
            .args(&self.run_args)
            // The collector's passes too (debug), to place KPI figures on the timeline.
            .env("SDN_LOG", "info,sqlx=warn,sdn_loader::kpi=debug")
            .stdin(Stdio::null())
            .stdout(f.try_clone()?)
            .stderr(f)
            // Its own process group: a Ctrl-C of the soak must not stop the daemon under test
            // (the soak stops it itself, and counts an unexpected exit as a failure).
            .process_group(0)
            .spawn()
            .context("starting sdn-loader run")?;
        self.pid
            .store(i32::try_from(child.id()).unwrap_or(0), Ordering::SeqCst);
        *self.child.lock().map_err(|_| anyhow::anyhow!("poisoned"))? = Some(child);
        Ok(log)
    }

    /// The running daemon's pid.
    pub(crate) fn daemon_pid(&self) -> Option<i32> {
        Some(self.pid.load(Ordering::SeqCst)).filter(|&p| p > 0)
    }

    /// kill -9 of the daemon (the pinned data plane stays).
    pub(crate) fn kill9(&self) -> Result<()> {
        let mut g = self.child.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        if let Some(mut c) = g.take() {
            c.kill()?;
            c.wait()?;
        }
        self.pid.store(0, Ordering::SeqCst);
        Ok(())
    }

    /// SIGTERM and wait (the collector makes its last pass); returns whether it exited 0.
    pub(crate) fn stop_loader(&self) -> Result<bool> {
        let mut g = self.child.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        let Some(mut c) = g.take() else {
            return Ok(false);
        };
        let pid = i32::try_from(c.id()).unwrap_or(0);
        // SAFETY: signalling our own child, which has not been waited for (still ours).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let t0 = Instant::now();
        let status = loop {
            if let Some(s) = c.try_wait()? {
                break s;
            }
            if t0.elapsed() > Duration::from_secs(30) {
                c.kill()?;
                break c.wait()?;
            }
            sleep(Duration::from_millis(20));
        };
        self.pid.store(0, Ordering::SeqCst);
        Ok(status.success())
    }

    /// Why no daemon is running, if none is: it exited by itself (it should never), or a
    /// restart failed to start one.
    pub(crate) fn loader_exited(&self) -> Option<String> {
        let mut g = self.child.lock().ok()?;
        let Some(c) = g.as_mut() else {
            return Some("no daemon running".to_owned());
        };
        match c.try_wait() {
            Ok(Some(s)) => Some(s.to_string()),
            _ => None,
        }
    }

    /// Waits until the daemon's HTTP server accepts connections.
    pub(crate) fn wait_http(&self, limit: Duration) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if TcpStream::connect_timeout(&self.http, Duration::from_millis(200)).is_ok() {
                return true;
            }
            sleep(Duration::from_millis(20));
        }
        false
    }

    /// Waits until both hub interfaces have a pinned link.
    pub(crate) fn wait_attached(&self, limit: Duration) -> bool {
        let links = self.pin_dir.join("links");
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if ["hc", "hs"]
                .iter()
                .all(|s| links.join(format!("{}{s}", self.prefix)).exists())
            {
                return true;
            }
            sleep(Duration::from_millis(20));
        }
        false
    }
}

/// Where a world lives and what it is called.
pub(crate) struct Place {
    /// Namespace/interface prefix.
    pub(crate) prefix: String,
    /// Pin directory on bpffs.
    pub(crate) pin_dir: PathBuf,
    /// Scratch directory: database, state, logs.
    pub(crate) work: PathBuf,
    /// Keep the scratch directory when the world is torn down.
    pub(crate) keep_work: bool,
    /// The daemon's router name.
    pub(crate) router: String,
}

impl Place {
    /// The soak's: prefix `sk` + this process's id, a temporary work directory unless `keep`.
    pub(crate) fn soak(keep: Option<&Path>) -> Self {
        let prefix = format!("sk{:x}", std::process::id());
        Self {
            work: keep.map_or_else(
                || std::env::temp_dir().join(format!("sdn-soak-{prefix}")),
                Path::to_path_buf,
            ),
            pin_dir: PathBuf::from(format!("/sys/fs/bpf/{prefix}")),
            keep_work: keep.is_some(),
            router: ROUTER.to_owned(),
            prefix,
        }
    }
}

/// Builds the topology and an empty database; the returned [`Teardown`] removes everything.
pub(crate) fn create(
    bin: PathBuf,
    kind: DbKind,
    place: Place,
    run_args: Vec<String>,
) -> Result<(Env, Teardown)> {
    let Place {
        prefix,
        pin_dir,
        work,
        keep_work,
        router,
    } = place;
    let pid = Arc::new(AtomicI32::new(0));
    let pg_dir = work.join("pg");
    let teardown = Teardown {
        bin: bin.clone(),
        prefix: prefix.clone(),
        pin_dir,
        work: work.clone(),
        keep: keep_work,
        pid: pid.clone(),
        postgres: (kind == DbKind::Postgres).then(|| pg_dir.clone()),
    };
    let _ = fs::remove_dir_all(&teardown.pin_dir);
    if !keep_work {
        let _ = fs::remove_dir_all(&work);
    }
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let config = work.join("sdn.toml");
    // So that a host's /etc/sdn/sdn.toml cannot change the world.
    fs::write(&config, "# this daemon: defaults and flags only\n")?;
    crate::run(
        Command::new("bash")
            .arg(crate::root().join("scripts/topology.sh"))
            .args(["up", &prefix])
            .stdout(Stdio::null()),
    )?;
    // One segment per packet: the endpoints' TCP counters then count frames on the wire.
    for (ns, dev) in [("client", "c0"), ("service", "s0")] {
        crate::run(Command::new("ip").args([
            "-n",
            &format!("{prefix}-{ns}"),
            "link",
            "set",
            "dev",
            &format!("{prefix}{dev}"),
            "gso_max_segs",
            "1",
        ]))?;
    }
    let (db, url) = match kind {
        DbKind::Sqlite => {
            let path = work.join("sdn.db");
            let _ = fs::remove_file(&path);
            let url = format!("sqlite://{}", path.display());
            (Database::Sqlite { path }, url)
        }
        DbKind::Postgres => {
            let port = free_port()?.port();
            let url = pg(&["start", &pg_dir.to_string_lossy(), &port.to_string()])?;
            (Database::Postgres { dir: pg_dir, port }, url)
        }
    };
    let env = Env {
        prefix,
        bin,
        config,
        pin_dir: teardown.pin_dir.clone(),
        url,
        db,
        http: free_port()?,
        router,
        run_args,
        child: Mutex::new(None),
        pid,
        runs: AtomicUsize::new(0),
        work,
    };
    env.loader_ok(&["db", "--db", &env.url, "init"])?;
    Ok((env, teardown))
}

impl Env {
    /// Imports `policy` (a policy file's text) under `request_id`; returns the loader's output.
    pub(crate) fn import(&self, policy: &str, request_id: &str, actor: &str) -> Result<String> {
        let policy_file = self.work.join("policy.toml");
        fs::write(&policy_file, policy)?;
        self.loader_ok(&[
            "db",
            "--db",
            &self.url,
            "--request-id",
            request_id,
            "--actor",
            actor,
            "import",
            &policy_file.to_string_lossy(),
        ])
    }
}

/// A free port on 127.0.0.1 for the daemon's HTTP server (or PostgreSQL).
fn free_port() -> Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

/// Removes what [`create`] made, also when the soak fails half-way: the daemon (by its pid,
/// our own child), the filter and pins, the namespaces, PostgreSQL, the scratch directory
/// (kept with `--keep-logs`).
pub(crate) struct Teardown {
    bin: PathBuf,
    prefix: String,
    pin_dir: PathBuf,
    work: PathBuf,
    keep: bool,
    pid: Arc<AtomicI32>,
    postgres: Option<PathBuf>,
}

impl Drop for Teardown {
    fn drop(&mut self) {
        let pid = self.pid.load(Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: the pid of the daemon this soak started (reset to 0 once reaped).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let hub = format!("{}-hub", self.prefix);
        let _ = Command::new(&self.bin)
            .args(["detach", "--netns", &hub])
            .args(["--iface", &format!("{}hc", self.prefix)])
            .args(["--iface", &format!("{}hs", self.prefix)])
            .arg("--pin-dir")
            .arg(&self.pin_dir)
            .arg("--purge")
            .output();
        let _ = fs::remove_dir_all(&self.pin_dir);
        let _ = Command::new("bash")
            .arg(crate::root().join("scripts/topology.sh"))
            .args(["down", &self.prefix])
            .output();
        if let Some(dir) = &self.postgres {
            let _ = pg(&["stop", &dir.to_string_lossy()]);
        }
        if !self.keep {
            let _ = fs::remove_dir_all(&self.work);
        }
    }
}

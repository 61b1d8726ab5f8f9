//! Running `sdn-loader` daemons in test topologies (`scripts/topology.sh` namespaces) and a
//! private PostgreSQL server: spawn, wait, ping through, read status; everything removed on
//! drop.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use super::netns::{LOADER, run_ok, workspace_root};

/// Runs the loader with `args`; panics with its output when it fails.
pub fn loader(args: &[&str]) -> String {
    run_ok(Command::new(&*LOADER).args(args))
}

/// Creates approved agreement `id` of `client` to `service` through the CLI.
pub fn create_agreement(url: &str, id: u32, client: &str, service: &str) {
    let id = id.to_string();
    loader(&[
        "db",
        "--db",
        url,
        "agreement",
        "create",
        &id,
        "--client",
        client,
        "--service",
        service,
        "--state",
        "approved",
    ]);
}

/// Waits until `f` holds, at most `limit`; returns how long it took.
pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        sleep(Duration::from_millis(20));
    }
    t0.elapsed()
}

/// One ping from the client namespace of topology `prefix` (from `src` when given).
pub fn ping_from(prefix: &str, src: Option<&str>, dst: &str) -> bool {
    let mut c = Command::new("ip");
    c.args([
        "netns",
        "exec",
        &format!("{prefix}-client"),
        "ping",
        "-c",
        "1",
        "-W",
        "1",
    ]);
    if let Some(s) = src {
        c.args(["-I", s]);
    }
    c.arg(dst)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `sdn-loader status --json` of the database at `url`.
pub fn status(url: &str) -> serde_json::Value {
    serde_json::from_str(&loader(&["status", "--db", url, "--json"])).unwrap()
}

/// The status row of `router`, or null.
pub fn router_status(url: &str, router: &str) -> serde_json::Value {
    status(url)["routers"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["router"] == router).cloned())
        .unwrap_or_default()
}

/// A client/hub/service topology (`scripts/topology.sh up PREFIX`) with a loader following
/// a database on the hub's two interfaces; torn down on drop (loader killed, filter
/// detached, pins purged, namespaces removed).
pub struct Hub {
    /// Topology prefix.
    pub prefix: String,
    /// Pin directory.
    pub pin_dir: PathBuf,
    /// Scratch directory (logs, state).
    pub dir: PathBuf,
    /// The running loader.
    pub child: Option<Child>,
    /// Extra arguments of every `run`.
    pub args: Vec<String>,
    /// Extra environment of every `run` (`NOTIFY_SOCKET`, say).
    pub env: Vec<(String, String)>,
    runs: usize,
}

impl Hub {
    /// For a test that needs root: `None` (the test skips, or fails under
    /// `SDN_REQUIRE_ROOT=1`) without it; else the topology `tag` + this process's id, with a
    /// fresh scratch directory that lasts as long as the returned `TempDir`.
    pub fn for_test(tag: &str) -> Option<(Self, tempfile::TempDir)> {
        if !crate::netns::root_or_skip() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let hub = Self::up(&format!("{tag}{:x}", std::process::id()), dir.path());
        Some((hub, dir))
    }

    /// Creates the topology `prefix` (nothing attached yet).
    pub fn up(prefix: &str, dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let hub = Self {
            prefix: prefix.to_owned(),
            pin_dir: PathBuf::from(format!("/sys/fs/bpf/{prefix}")),
            dir: dir.to_path_buf(),
            child: None,
            args: Vec::new(),
            env: Vec::new(),
            runs: 0,
        };
        run_ok(
            Command::new("bash")
                .arg(workspace_root().join("scripts/topology.sh"))
                .args(["up", prefix]),
        );
        hub
    }

    /// The hub's namespace.
    pub fn netns(&self) -> String {
        format!("{}-hub", self.prefix)
    }

    /// Starts `sdn-loader run --db url` as router `router`; returns the log file.
    pub fn spawn(&mut self, url: &str, router: &str) -> PathBuf {
        self.runs += 1;
        let log = self.dir.join(format!("run{}.log", self.runs));
        let f = std::fs::File::create(&log).unwrap();
        let (hc, hs) = (format!("{}hc", self.prefix), format!("{}hs", self.prefix));
        let child = Command::new(&*LOADER)
            .args(["run", "--db", url, "--netns", &self.netns()])
            .args([
                "--iface",
                &hc,
                "--iface",
                &hs,
                "--poll-ms",
                "50",
                "--router",
                router,
            ])
            .arg("--pin-dir")
            .arg(&self.pin_dir)
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        self.child = Some(child);
        log
    }

    /// Waits until the filter is attached to the hub's service side.
    pub fn wait_attached(&self) {
        let link = self
            .pin_dir
            .join("links")
            .join(format!("{}hs", self.prefix));
        wait_for("attach", Duration::from_secs(30), || link.exists());
    }

    /// kill -9 of the loader (the data plane stays).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `stats --json` forward packets of `agreement`.
    pub fn forward_packets(&self, agreement: u64) -> Option<u64> {
        let out = run_ok(
            Command::new(&*LOADER)
                .arg("stats")
                .arg("--pin-dir")
                .arg(&self.pin_dir)
                .arg("--json"),
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["agreements"]
            .as_array()?
            .iter()
            .find(|a| a["agreement"] == agreement)
            .and_then(|a| a["forward_packets"].as_u64())
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.kill();
        let _ = Command::new(&*LOADER)
            .args(["detach", "--netns", &self.netns()])
            .args(["--iface", &format!("{}hc", self.prefix)])
            .args(["--iface", &format!("{}hs", self.prefix)])
            .arg("--pin-dir")
            .arg(&self.pin_dir)
            .arg("--purge")
            .output();
        let _ = std::fs::remove_dir_all(&self.pin_dir);
        let _ = Command::new("bash")
            .arg(workspace_root().join("scripts/topology.sh"))
            .args(["down", &self.prefix])
            .output();
    }
}

/// A private PostgreSQL server (`scripts/postgres.sh`) on 127.0.0.1; stopped and removed on
/// drop.
pub struct Postgres {
    dir: PathBuf,
    port: u16,
    /// Its URL.
    pub url: String,
}

fn pg_script(args: &[&str]) -> String {
    run_ok(
        Command::new("bash")
            .arg(workspace_root().join("scripts/postgres.sh"))
            .args(args),
    )
}

impl Postgres {
    /// Creates and starts a server in `dir` on `port`.
    pub fn start(dir: &Path, port: u16) -> Self {
        let url = pg_script(&["start", dir.to_str().unwrap(), &port.to_string()])
            .trim()
            .to_owned();
        Self {
            dir: dir.to_path_buf(),
            port,
            url,
        }
    }

    /// Stops the server, keeping its data.
    pub fn halt(&self) {
        pg_script(&["halt", self.dir.to_str().unwrap()]);
    }

    /// Starts it again after [`Self::halt`].
    pub fn resume(&self) {
        pg_script(&["resume", self.dir.to_str().unwrap(), &self.port.to_string()]);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(workspace_root().join("scripts/postgres.sh"))
            .args(["stop", self.dir.to_str().unwrap_or_default()])
            .output();
    }
}

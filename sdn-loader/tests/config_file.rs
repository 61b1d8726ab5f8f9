//! Every command that reads the pin directory or the router name takes them from the
//! configuration file when no flag gives them (flags over file over defaults): `stats`, `log`,
//! `detach`, `kpi collect` and `kpi serve`. Before, they used the defaults (`/sys/fs/bpf/sdn`,
//! the host name) whatever the file said, so `detach --purge --config F` acted on another pin
//! directory than F's. Runs unprivileged: the configured pin directory does not exist, and
//! each command must name it.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test")]
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The loader binary built for this test run.
const LOADER: &str = env!("CARGO_BIN_EXE_sdn-loader");

/// A temporary directory with a database and a configuration file naming `router`, the
/// database and (when `with_pins`) a pin directory that does not exist.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    fn new(with_pins: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}", dir.path().join("sdn.db").display());
        let mut text = format!("router = \"hub-cfg\"\ndatabase = \"{db}\"\n");
        if with_pins {
            text += &format!("pin_dir = \"{}\"\n", dir.path().join("pins-ux-a").display());
        }
        let config = dir.path().join("sdn.toml");
        std::fs::write(&config, text).unwrap();
        let s = Self { dir, config };
        let out = s.loader(&["db", "init"]);
        assert!(out.status.success(), "{}", stderr(&out));
        s
    }

    fn pins(&self) -> PathBuf {
        self.dir.path().join("pins-ux-a")
    }

    fn loader(&self, args: &[&str]) -> Output {
        Command::new(LOADER)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The command failed, and its message names the configured pin directory, not the default.
fn names_the_configured_pins(what: &str, out: &Output, pins: &Path) {
    let err = stderr(out);
    assert!(!out.status.success(), "{what} succeeded: {err}");
    assert!(
        err.contains(&pins.display().to_string()),
        "{what} did not use the configured pin directory: {err}"
    );
    assert!(!err.contains("/sys/fs/bpf/sdn"), "{what}: {err}");
}

#[test]
fn stats_reads_the_configured_pin_directory() {
    let s = Setup::new(true);
    names_the_configured_pins("stats", &s.loader(&["stats"]), &s.pins());
}

#[test]
fn log_reads_the_configured_pin_directory() {
    let s = Setup::new(true);
    names_the_configured_pins("log", &s.loader(&["log", "--seconds", "1"]), &s.pins());
}

#[test]
fn detach_purges_the_configured_pin_directory_only() {
    let s = Setup::new(true);
    let out = s.loader(&["detach", "--iface", "sdncfg0", "--purge"]);
    // Nothing is attached there: it says so, naming the configured directory.
    names_the_configured_pins("detach", &out, &s.pins());
}

#[test]
fn kpi_collect_reads_the_configured_pin_directory() {
    let s = Setup::new(true);
    let out = s.loader(&["kpi", "collect", "--once"]);
    names_the_configured_pins("kpi collect", &out, &s.pins());
}

#[test]
fn kpi_serve_reads_the_configured_pin_directory() {
    let s = Setup::new(true);
    // A server that ignored the file would serve on without live counters: give it 20 s.
    let mut child = Command::new(LOADER)
        .arg("--config")
        .arg(&s.config)
        .args(["kpi", "serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kpi serve started serving instead of opening the configured pin directory");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    names_the_configured_pins("kpi serve", &out, &s.pins());
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The body of `/metrics` once the server answers 200.
fn metrics(addr: SocketAddr) -> Option<String> {
    match sdn_tests::http::get(addr, "/metrics", Duration::from_secs(5)) {
        Ok((200, body)) => Some(body),
        _ => None,
    }
}

#[test]
fn kpi_serve_exports_under_the_configured_router() {
    let s = Setup::new(false);
    // Sync state rows for the configured router and for the host name (the old default),
    // as the sync loops of two routers would write them: /metrics must show the first.
    let host = sdn_loader::config::hostname();
    let url = format!("sqlite://{}", s.dir.path().join("sdn.db").display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        for (name, state) in [("hub-cfg", "in-sync"), (host.as_str(), "failed")] {
            sqlx::query(
                "INSERT INTO routers (name, applied_revision, last_sync, state, seen_revision, checked_at, agreements) VALUES ($1, 1, '2026-05-05T10:00:00.000000Z', $2, 1, '2026-05-05T10:00:00.000000Z', 0)",
            )
            .bind(name)
            .bind(state)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;
    });
    let addr = free_port();
    let mut child = Command::new(LOADER)
        .arg("--config")
        .arg(&s.config)
        .args(["kpi", "serve", "--listen", &addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let text = loop {
        if let Some(t) = metrics(addr) {
            break t;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "kpi serve never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        text.contains("sdn_sync_state{router=\"hub-cfg\",state=\"in-sync\"} 1"),
        "{text}"
    );
    assert!(
        !text.contains(&format!("router=\"{host}\"")),
        "exported under the host name {host}"
    );
}

/// The daemon's HTTP and KPI settings live in the file too (`[http]`, `[kpi]`): `kpi serve`
/// listens where the file says; a flag still wins; a bad value is refused naming its key.
/// (Which per-agreement series are exported needs a running data plane: see the root tests.)
#[test]
fn http_and_kpi_settings_come_from_the_file() {
    let s = Setup::new(false);
    let addr = free_port();
    let text = std::fs::read_to_string(&s.config).unwrap()
        + &format!("\n[http]\nlisten = \"{addr}\"\n\n[kpi]\nmetrics_agreements = \"5\"\n");
    std::fs::write(&s.config, &text).unwrap();
    let serve = |extra: &[&str]| {
        Command::new(LOADER)
            .arg("--config")
            .arg(&s.config)
            .args(["kpi", "serve"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let answers = |addr: SocketAddr| {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            if metrics(addr).is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    };
    let mut child = serve(&[]);
    let served = answers(addr);
    let _ = child.kill();
    let _ = child.wait();
    assert!(served, "kpi serve did not listen on the file's {addr}");
    // The flag over the file: the flag's address answers, the file's does not.
    let other = free_port();
    let mut child = serve(&["--listen", &other.to_string()]);
    let (flag, file) = (answers(other), metrics(addr).is_some());
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        flag && !file,
        "--listen {other} should win over the file's {addr}"
    );
    // A bad value names its key, and nothing is served.
    std::fs::write(&s.config, text.replace("\"5\"", "\"some\"")).unwrap();
    let out = s.loader(&["kpi", "serve"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("kpi.metrics_agreements"),
        "{}",
        stderr(&out)
    );
}

/// `config check` passes a valid file (exit 0) and warns, in the chosen log format, about
/// doubtful settings; a wrong key or value exits 1 naming it.
#[test]
fn config_check_judges_the_file_and_logs_in_the_chosen_format() {
    let s = Setup::new(false);
    std::fs::write(
        &s.config,
        "router = \"hub-cfg\"\n[http]\nlisten = \"0.0.0.0:9640\"\n",
    )
    .unwrap();
    let out = s.loader(&["--log-format", "json", "config", "check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("valid (router hub-cfg"), "{stdout}");
    // Every line on stderr is one JSON object; the warnings name what they doubt.
    let events: Vec<serde_json::Value> = (stderr(&out).lines())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let warned = |needle: &str| {
        events.iter().any(|e| {
            e["level"] == "WARN" && e["message"].as_str().is_some_and(|m| m.contains(needle))
        })
    };
    assert!(warned("no `interfaces`"), "{events:?}");
    assert!(warned("beyond this host"), "{events:?}");
    assert!(
        events.iter().any(|e| e["listen"] == "0.0.0.0:9640"),
        "{events:?}"
    );

    // The same from the file's `log_format`, and the text format by default.
    std::fs::write(&s.config, "log_format = \"json\"\n").unwrap();
    let out = s.loader(&["config", "check"]);
    assert!(
        stderr(&out).lines().all(|l| l.starts_with('{')),
        "{}",
        stderr(&out)
    );
    let out = s.loader(&["--log-format", "text", "config", "check"]);
    assert!(stderr(&out).contains("WARN"), "{}", stderr(&out));
    assert!(!stderr(&out).contains('{'), "{}", stderr(&out));

    for (text, named) in [
        ("routr = \"x\"\n", "routr"),
        ("log_format = \"xml\"\n", "log_format"),
        ("[kpi]\nretention = \"weeks\"\n", "kpi.retention"),
    ] {
        std::fs::write(&s.config, text).unwrap();
        let out = s.loader(&["config", "check"]);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(stderr(&out).contains(named), "{text}: {}", stderr(&out));
    }
}

/// `config show` prints every setting in effect, flags over file over defaults, in the
/// file's format (it reads back as a valid file) with the database password masked.
#[test]
fn config_show_prints_the_merged_settings_without_the_password() {
    let s = Setup::new(false);
    std::fs::write(
        &s.config,
        "router = \"hub-cfg\"\ndatabase = \"postgres://sdn:hunter2@db.example/sdn\"\n[sync]\npoll_ms = 75\n",
    )
    .unwrap();
    let out = s.loader(&["config", "show", "--pin-dir", "/sys/fs/bpf/flag-pins"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!text.contains("hunter2"), "{text}");
    for line in [
        "router = \"hub-cfg\"",
        "database = \"postgres://sdn:***@db.example/sdn\"",
        "pin_dir = \"/sys/fs/bpf/flag-pins\"",
        "poll_ms = 75",
        "reconcile_s = 300",
        "listen = \"127.0.0.1:9640\"",
        "metrics_agreements = \"all\"",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from\n{text}"
        );
    }
    let out = s.loader(&["config", "show", "--router", "hub-flag"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("router = \"hub-flag\""), "{text}");
    // What it prints is a configuration file the loader accepts.
    std::fs::write(&s.config, &text).unwrap();
    let out = s.loader(&["config", "check"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A fleet's KPIs are told apart by router name: `kpi collect` and `kpi serve` warn when
/// neither a flag nor the file names the router, and say nothing when one does.
#[test]
fn kpi_commands_warn_when_no_router_is_named() {
    let s = Setup::new(true);
    let pins = s.pins();
    let collect = |config: &str, extra: &[&str]| {
        std::fs::write(&s.config, config).unwrap();
        let mut args = vec![
            "kpi",
            "collect",
            "--once",
            "--pin-dir",
            pins.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        stderr(&s.loader(&args))
    };
    let db = format!(
        "database = \"sqlite://{}\"\n",
        s.dir.path().join("sdn.db").display()
    );
    let unnamed = collect(&db, &[]);
    let host = sdn_loader::config::hostname();
    assert!(
        unnamed.contains(&format!("under the host name {host}")),
        "{unnamed}"
    );
    let named = collect(&format!("router = \"hub-cfg\"\n{db}"), &[]);
    assert!(!named.contains("under the host name"), "{named}");
    let flagged = collect(&db, &["--router", "hub-flag"]);
    assert!(!flagged.contains("under the host name"), "{flagged}");
}

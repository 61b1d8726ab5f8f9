//! `sdn-loader run --db`: the data plane follows the agreement database (SQLite here), each
//! revision applied atomically; a revoked agreement stops within the poll interval; after a
//! kill -9 of the loader and with the database gone, the data plane keeps the last policy and
//! its counters. Needs root (namespaces, XDP); only namespaces it creates, documentation
//! addresses, and cleanup on drop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use support::netns::{is_root, run_ok, workspace_root};

const LOADER: &str = env!("CARGO_BIN_EXE_sdn-loader");

struct Guard {
    prefix: String,
    pin_dir: PathBuf,
    tmp: PathBuf,
    child: Option<Child>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let hub = format!("{}-hub", self.prefix);
        let _ = Command::new(LOADER)
            .args([
                "detach",
                "--netns",
                &hub,
                "--iface",
                &format!("{}hc", self.prefix),
                "--iface",
                &format!("{}hs", self.prefix),
            ])
            .arg("--pin-dir")
            .arg(&self.pin_dir)
            .arg("--purge")
            .output();
        let _ = std::fs::remove_dir_all(&self.pin_dir);
        let _ = Command::new("bash")
            .arg(workspace_root().join("scripts/topology.sh"))
            .args(["down", &self.prefix])
            .output();
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

fn loader(args: &[&str]) -> String {
    run_ok(Command::new(LOADER).args(args))
}

fn ping(prefix: &str, dst: &str) -> bool {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("{prefix}-client"),
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            dst,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn forward_packets(pin_dir: &Path, agreement: u64) -> Option<u64> {
    let out = run_ok(
        Command::new(LOADER)
            .arg("stats")
            .arg("--pin-dir")
            .arg(pin_dir)
            .arg("--json"),
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["agreements"]
        .as_array()?
        .iter()
        .find(|a| a["agreement"] == agreement)
        .and_then(|a| a["forward_packets"].as_u64())
}

/// `sdn-loader run --db URL` on the hub's two interfaces, output to `log`.
fn spawn_run(url: &str, prefix: &str, pin_dir: &Path, log: &Path) -> Child {
    let hub = format!("{prefix}-hub");
    let (hc, hs) = (format!("{prefix}hc"), format!("{prefix}hs"));
    let log = std::fs::File::create(log).unwrap();
    Command::new(LOADER)
        .args([
            "run",
            "--db",
            url,
            "--netns",
            &hub,
            "--iface",
            &hc,
            "--iface",
            &hs,
            "--poll-ms",
            "50",
        ])
        .arg("--pin-dir")
        .arg(pin_dir)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
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

#[test]
fn follows_the_database_and_fails_static() {
    assert!(is_root(), "this test needs root");
    let prefix = format!("sy{:x}", std::process::id());
    let tmp = std::env::temp_dir().join(format!("sdn-{prefix}"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let mut g = Guard {
        pin_dir: PathBuf::from(format!("/sys/fs/bpf/{prefix}")),
        prefix: prefix.clone(),
        tmp: tmp.clone(),
        child: None,
    };
    let db_path = tmp.join("sdn.db");
    let url = format!("sqlite://{}", db_path.display());
    let policy = workspace_root().join("examples/demo-policy.toml");
    loader(&["db", "--db", &url, "import", policy.to_str().unwrap()]);
    run_ok(
        Command::new("bash")
            .arg(workspace_root().join("scripts/topology.sh"))
            .args(["up", &prefix]),
    );

    let hs = format!("{prefix}hs");
    g.child = Some(spawn_run(&url, &prefix, &g.pin_dir, &tmp.join("run.log")));
    wait_for("attach", Duration::from_secs(20), || {
        g.pin_dir.join("links").join(&hs).exists()
    });
    wait_for("an allowed ping", Duration::from_secs(5), || {
        ping(&prefix, "203.0.113.10")
    });
    assert!(
        !ping(&prefix, "203.0.113.20"),
        "pacs has no icmp endpoint: ping must drop"
    );

    // A change in the database takes effect without restarting anything.
    loader(&["db", "--db", &url, "agreement", "revoke", "1001"]);
    let took = wait_for("the revocation", Duration::from_secs(5), || {
        !ping(&prefix, "203.0.113.10")
    });
    eprintln!("revocation enforced {took:?} after the commit returned (ping-based, upper bound)");
    // A new agreement for the same client and service brings it back.
    loader(&[
        "db",
        "--db",
        &url,
        "agreement",
        "create",
        "1004",
        "--client",
        "ouh-clinic",
        "--service",
        "fmk",
        "--state",
        "approved",
    ]);
    wait_for("the new agreement", Duration::from_secs(5), || {
        ping(&prefix, "203.0.113.10")
    });
    let before = forward_packets(&g.pin_dir, 1004).expect("agreement 1004 in force");

    // kill -9 the loader and take the database away: the data plane keeps the last policy
    // and keeps counting.
    let mut c = g.child.take().unwrap();
    c.kill().unwrap();
    c.wait().unwrap();
    std::fs::rename(&db_path, tmp.join("gone.db")).unwrap();
    assert!(
        ping(&prefix, "203.0.113.10"),
        "the last policy must stay in force after the loader died"
    );
    assert!(!ping(&prefix, "203.0.113.20"));
    let after = forward_packets(&g.pin_dir, 1004).unwrap();
    assert!(after > before, "counters must go on: {before} -> {after}");

    // A restarted loader with the database still gone re-attaches to the pins and keeps the
    // policy in force (fail-static), counters not reset.
    g.child = Some(spawn_run(&url, &prefix, &g.pin_dir, &tmp.join("run2.log")));
    let run2 = tmp.join("run2.log");
    wait_for(
        "the restarted loader to report the database unreachable",
        Duration::from_secs(10),
        || {
            std::fs::read_to_string(&run2)
                .unwrap_or_default()
                .contains("unreachable")
        },
    );
    assert!(
        ping(&prefix, "203.0.113.10"),
        "restart without database must keep the policy"
    );
    assert!(
        forward_packets(&g.pin_dir, 1004).unwrap() > after,
        "counters must not be reset by a restart"
    );
    // The database comes back: the loader picks it up and syncs.
    std::fs::rename(tmp.join("gone.db"), &db_path).unwrap();
    loader(&["db", "--db", &url, "agreement", "revoke", "1004"]);
    wait_for(
        "the revocation after the database came back",
        Duration::from_secs(40),
        || !ping(&prefix, "203.0.113.10"),
    );
}

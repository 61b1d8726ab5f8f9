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
    let log_file = std::fs::File::create(log).unwrap();
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
            "--router",
            "sync-test",
            "--guard-active-hours",
            "1",
        ])
        .arg("--state-dir")
        .arg(log.parent().unwrap().join("state"))
        .arg("--pin-dir")
        .arg(pin_dir)
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
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

    // Revoking an agreement that just carried traffic: the blast-radius guard holds the
    // change, the policy in force stays, status and plan say why.
    loader(&["db", "--db", &url, "agreement", "revoke", "1001"]);
    wait_for(
        "the guard to hold revision 2",
        Duration::from_secs(5),
        || {
            let v: serde_json::Value =
                serde_json::from_str(&loader(&["status", "--db", &url, "--json"])).unwrap();
            v["routers"][0]["held_revision"] == 2 && v["routers"][0]["state"] == "held"
        },
    );
    assert!(
        ping(&prefix, "203.0.113.10"),
        "a held revision must leave the policy in force"
    );
    let state_dir = tmp.join("state");
    let plan: serde_json::Value = serde_json::from_str(&loader(&[
        "plan",
        "--db",
        &url,
        "--router",
        "sync-test",
        "--state-dir",
        state_dir.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(plan["guard"], "hold", "{plan}");
    assert_eq!(plan["removed"][0]["agreement"], 1001, "{plan}");
    assert!(
        plan["removed"][0]["packets_24h"].as_u64().unwrap() > 0,
        "plan must show the traffic 1001 carried: {plan}"
    );
    let status: serde_json::Value = serde_json::from_str(&loader(&[
        "status",
        "--db",
        &url,
        "--router",
        "sync-test",
        "--json",
    ]))
    .unwrap();
    let a1001 = status["agreements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agreement"] == 1001)
        .cloned()
        .unwrap();
    assert_eq!(a1001["state"], "held", "{status}");
    // Confirming releases it.
    loader(&["confirm", "2", "--db", &url, "--router", "sync-test"]);
    let took = wait_for("the confirmed revocation", Duration::from_secs(5), || {
        !ping(&prefix, "203.0.113.10")
    });
    eprintln!("confirmed revocation enforced {took:?} after confirm returned (ping-based)");
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
    // 1004 carried traffic before the restart (the activity kept in the database and the
    // policy kept in the state directory survive it): held again until confirmed.
    wait_for(
        "the guard to hold revision 4",
        Duration::from_secs(40),
        || {
            let v: serde_json::Value =
                serde_json::from_str(&loader(&["status", "--db", &url, "--json"])).unwrap();
            v["routers"][0]["held_revision"] == 4
        },
    );
    assert!(ping(&prefix, "203.0.113.10"), "held: 1004 must still pass");
    loader(&["confirm", "4", "--db", &url, "--all-routers"]);
    wait_for(
        "the revocation after the database came back",
        Duration::from_secs(40),
        || !ping(&prefix, "203.0.113.10"),
    );
}

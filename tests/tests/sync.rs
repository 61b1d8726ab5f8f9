//! `sdn-loader run --db`: the data plane follows the agreement database (SQLite here), each
//! revision applied atomically; a revoked agreement stops within the poll interval; after a
//! kill -9 of the loader and with the database gone, the data plane keeps the last policy and
//! its counters. Needs root (namespaces, XDP); only namespaces it creates, documentation
//! addresses, and cleanup on drop.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

use sdn_tests as support;

use std::time::Duration;

use support::daemon::{Hub, create_agreement, loader, ping_from, router_status, wait_for};
use support::netns::workspace_root;

fn ping(prefix: &str, dst: &str) -> bool {
    ping_from(prefix, None, dst)
}

#[test]
fn follows_the_database_and_fails_static() {
    let Some((mut g, dir)) = Hub::for_test("sy") else {
        return;
    };
    let prefix = g.prefix.clone();
    let tmp = dir.path().to_path_buf();
    g.args = vec!["--guard-active-hours".to_owned(), "1".to_owned()];
    let db_path = tmp.join("sdn.db");
    let url = format!("sqlite://{}", db_path.display());
    let policy = workspace_root().join("examples/demo-policy.toml");
    loader(&["db", "--db", &url, "import", policy.to_str().unwrap()]);
    let run1 = g.spawn(&url, "sync-test");
    g.wait_attached();
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
    let out = std::process::Command::new(&*support::netns::LOADER)
        .args(["plan", "--db", &url, "--router", "sync-test", "--state-dir"])
        .arg(&state_dir)
        .arg("--json")
        .output()
        .unwrap();
    // Exit 2: the guard holds the sync (README "Exit codes").
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["guard"], "hold", "{plan}");
    assert_eq!(plan["removed"][0]["agreement"], 1001, "{plan}");
    // The rule-level diff: every line that goes is 1001's, as many as the count says.
    let lines = plan["lines_removed"].as_array().unwrap();
    assert_eq!(lines.len() as u64, plan["rules_removed"].as_u64().unwrap());
    assert!(
        !lines.is_empty() && lines.iter().all(|l| l["agreement"] == 1001),
        "{plan}"
    );
    assert!(
        lines.iter().any(|l| l["endpoint"] == "203.0.113.10/32"
            && l["protocol"] == "tcp"
            && l["ports"] == "443"),
        "{plan}"
    );
    assert_eq!(plan["lines_added"], serde_json::json!([]), "{plan}");
    let text = std::process::Command::new(&*support::netns::LOADER)
        .args(["plan", "--db", &url, "--router", "sync-test", "--state-dir"])
        .arg(&state_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.lines()
            .any(|l| l.starts_with("- 1001 198.51.100.10/32 -> 203.0.113.10/32 tcp 443 vlan any")),
        "{text}"
    );
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
    create_agreement(&url, 1004, "ouh-clinic", "fmk");
    wait_for("the new agreement", Duration::from_secs(5), || {
        ping(&prefix, "203.0.113.10")
    });
    let before = g.forward_packets(1004).expect("agreement 1004 in force");
    // Each apply logged what it changed, by agreement id and name.
    let text = std::fs::read_to_string(&run1).unwrap();
    for line in [
        "revision 1 changes: gained ",
        "revision 2 changes: gained none; lost 1 (1001 ouh-clinic -> ",
        "revision 3 changes: gained 1 (1004 ouh-clinic -> ",
    ] {
        assert!(text.contains(line), "{line} missing from the log:\n{text}");
    }

    // kill -9 the loader and take the database away: the data plane keeps the last policy
    // and keeps counting.
    g.kill();
    std::fs::rename(&db_path, tmp.join("gone.db")).unwrap();
    assert!(
        ping(&prefix, "203.0.113.10"),
        "the last policy must stay in force after the loader died"
    );
    assert!(!ping(&prefix, "203.0.113.20"));
    let after = g.forward_packets(1004).unwrap();
    assert!(after > before, "counters must go on: {before} -> {after}");

    // A restarted loader with the database still gone re-attaches to the pins and keeps the
    // policy in force (fail-static), counters not reset.
    let run2 = g.spawn(&url, "sync-test");
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
        g.forward_packets(1004).unwrap() > after,
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

/// A revision whose policy does not fit the maps is refused whole: the policy in force stays,
/// the router's status says failed with the reason, and a later revision that fits is applied.
#[test]
fn a_policy_that_does_not_fit_is_refused_whole() {
    let Some((mut g, dir)) = Hub::for_test("sf") else {
        return;
    };
    let prefix = g.prefix.clone();
    // The demo needs 5 prefix entries; 12 leave room for it and a like-sized change only.
    g.args = vec!["--max-prefixes".to_owned(), "12".to_owned()];
    let url = format!("sqlite://{}", dir.path().join("sdn.db").display());
    let demo = workspace_root().join("examples/demo-policy.toml");
    loader(&["db", "--db", &url, "import", demo.to_str().unwrap()]);
    g.spawn(&url, "small");
    g.wait_attached();
    wait_for("an allowed ping", Duration::from_secs(5), || {
        ping(&prefix, "203.0.113.10")
    });

    // One revision adding a client with ten prefixes (and an agreement for it).
    let prefixes: Vec<String> = (0..10)
        .map(|i| format!("\"192.0.2.{}/28\"", i * 16))
        .collect();
    let bigger = format!(
        "{}\n[[client]]\nid = \"extra\"\norganisation = \"rsyd\"\nprefixes = [{}]\n\n\
         [[agreement]]\nid = 2001\nclient = \"extra\"\nservice = \"fmk\"\nstate = \"approved\"\n",
        std::fs::read_to_string(&demo).unwrap(),
        prefixes.join(", ")
    );
    let bigger_path = dir.path().join("bigger.toml");
    std::fs::write(&bigger_path, bigger).unwrap();
    loader(&["db", "--db", &url, "import", bigger_path.to_str().unwrap()]);
    wait_for("the refusal", Duration::from_secs(5), || {
        router_status(&url, "small")["state"] == "failed"
    });
    let r = router_status(&url, "small");
    let error = r["error"].as_str().unwrap_or_default().to_owned();
    assert!(
        error.contains("does not fit") && error.contains("PREFIXES"),
        "the error must say which map is full: {r}"
    );
    assert_eq!(
        r["applied_revision"], 1,
        "the old policy stays in force: {r}"
    );
    assert!(
        ping(&prefix, "203.0.113.10"),
        "the policy in force must keep working after a refused revision"
    );

    // Back to the demo (a new revision that fits): applied, in sync again.
    loader(&["db", "--db", &url, "import", demo.to_str().unwrap()]);
    wait_for("the next revision", Duration::from_secs(5), || {
        let r = router_status(&url, "small");
        r["state"] == "in-sync" && r["applied_revision"] == 3
    });
    assert!(ping(&prefix, "203.0.113.10"));
}

/// The loader owns its pin tree: a pin directory another user made first is refused before
/// anything is pinned. A configured interface whose link someone removed is an alarm in the
/// log, in the router's status and in `stats` (exit 2) until a restart attaches it again.
#[test]
fn the_pin_tree_is_owned_and_a_lost_link_is_an_alarm() {
    use std::os::unix::fs::PermissionsExt as _;
    let Some((mut g, dir)) = Hub::for_test("sp") else {
        return;
    };
    let prefix = g.prefix.clone();
    let url = format!("sqlite://{}", dir.path().join("sdn.db").display());
    let demo = workspace_root().join("examples/demo-policy.toml");
    loader(&["db", "--db", &url, "import", demo.to_str().unwrap()]);

    // As an unprivileged user could on a bpffs mounted 1777: the directory is theirs.
    std::fs::create_dir(&g.pin_dir).unwrap();
    std::fs::set_permissions(&g.pin_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&g.pin_dir, Some(65534), Some(65534)).unwrap();
    let log = g.spawn(&url, "owned");
    let status = g.child.as_mut().unwrap().wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !status.success(),
        "run must refuse a pin tree of uid 65534:\n{text}"
    );
    assert!(
        text.contains("is owned by uid 65534"),
        "the error must say who owns it:\n{text}"
    );
    assert_eq!(
        std::fs::read_dir(&g.pin_dir).unwrap().count(),
        0,
        "nothing may be pinned in a refused tree"
    );
    g.child = None;
    std::fs::remove_dir(&g.pin_dir).unwrap();

    let log = g.spawn(&url, "owned");
    g.wait_attached();
    let mode = std::fs::metadata(&g.pin_dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the loader makes its tree 0700");
    wait_for("in sync", Duration::from_secs(10), || {
        router_status(&url, "owned")["state"] == "in-sync"
    });

    // Someone with the right to (root here) unlinks one link: the filter is gone there.
    let hc = format!("{prefix}hc");
    std::fs::remove_file(g.pin_dir.join("links").join(&hc)).unwrap();
    wait_for("the alarm in the status", Duration::from_secs(10), || {
        router_status(&url, "owned")["state"] == "detached"
    });
    let r = router_status(&url, "owned");
    assert!(
        r["error"].as_str().unwrap_or_default().contains(&format!(
            "ALARM: interface {hc} is configured but has no sdn-filter program"
        )),
        "{r}"
    );
    let out = std::process::Command::new(&*support::netns::LOADER)
        .args(["stats", "--json", "--pin-dir"])
        .arg(&g.pin_dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "stats exits 2 on an alarm: {out:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ALARM"),
        "{out:?}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["alarms"].as_array().unwrap().len(), 1, "{v}");
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("ALARM: interface"),
        "the daemon logs the alarm"
    );

    // A restart attaches it again; the alarm ends.
    g.kill();
    g.spawn(&url, "owned");
    wait_for("the alarm to end", Duration::from_secs(20), || {
        router_status(&url, "owned")["state"] == "in-sync"
            && g.pin_dir.join("links").join(&hc).exists()
    });
    let out = std::process::Command::new(&*support::netns::LOADER)
        .args(["stats", "--pin-dir"])
        .arg(&g.pin_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

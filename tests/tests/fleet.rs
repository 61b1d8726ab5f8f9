//! A fleet on PostgreSQL: two hub routers (two topologies of namespaces) follow one private
//! PostgreSQL server, converge on every revision and report their status there; the server is
//! stopped mid-run (both keep enforcing, then catch up); a held revision is confirmed for the
//! whole fleet at once; and a loader is killed with -9 and restarted while traffic flows,
//! without losing a packet of an allowed flow or a count.
//!
//! Needs root, Debian's PostgreSQL (scripts/setup.sh), iproute2 and ping. Only namespaces it
//! creates, documentation addresses, and cleanup on drop.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

use sdn_tests as support;

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use support::daemon::{
    Hub, Postgres, create_agreement, loader, ping_from, router_status, status, wait_for,
};
use support::netns::workspace_root;

/// Both routers report `revision` applied and are in sync.
fn converged(url: &str, revision: u64) -> bool {
    ["hub-a", "hub-b"].iter().all(|r| {
        let s = router_status(url, r);
        s["applied_revision"] == revision && s["state"] == "in-sync"
    })
}

/// `count` pings 10 ms apart from the client of topology `prefix` to 203.0.113.10 (1001).
fn flood(prefix: &str, count: u32) -> std::process::Child {
    Command::new("ip")
        .args(["netns", "exec", &format!("{prefix}-client")])
        .args([
            "ping",
            "-q",
            "-c",
            &count.to_string(),
            "-i",
            "0.01",
            "-W",
            "1",
        ])
        .arg("203.0.113.10")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn revision(url: &str) -> u64 {
    loader(&["db", "--db", url, "revision"])
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn two_routers_on_one_postgres() {
    if !support::netns::root_or_skip() {
        return;
    }
    let pid = std::process::id();
    let dir = tempfile::tempdir().unwrap();
    // A port of its own: this test stops its server, other tests share another one.
    let pg = Postgres::start(&dir.path().join("pg"), 54340 + (pid % 50) as u16);
    let url = pg.url.clone();
    let demo = workspace_root().join("examples/demo-policy.toml");
    loader(&["db", "--db", &url, "import", demo.to_str().unwrap()]);

    let mut a = Hub::up(&format!("fa{pid:x}"), &dir.path().join("a"));
    let mut b = Hub::up(&format!("fb{pid:x}"), &dir.path().join("b"));
    for h in [&mut a, &mut b] {
        h.args = vec!["--guard-active-hours".to_owned(), "1".to_owned()];
    }
    a.spawn(&url, "hub-a");
    b.spawn(&url, "hub-b");
    a.wait_attached();
    b.wait_attached();
    wait_for(
        "both routers in sync at revision 1",
        Duration::from_secs(10),
        || converged(&url, 1),
    );
    for h in [&a, &b] {
        assert!(
            ping_from(&h.prefix, None, "203.0.113.10"),
            "1001 through {}",
            h.prefix
        );
        assert!(
            !ping_from(&h.prefix, Some("198.51.100.20"), "203.0.113.10"),
            "lab (1002 revoked) must not pass {}",
            h.prefix
        );
    }

    // A new agreement for the lab while 1001 carries a ping flood through hub B: both
    // routers enforce it (woken by NOTIFY), and not one packet of 1001 is dropped.
    let flood_b = flood(&b.prefix, 300);
    std::thread::sleep(Duration::from_millis(300));
    create_agreement(&url, 1006, "lab", "fmk");
    let rev = revision(&url);
    let took = wait_for(
        "both routers to apply the new agreement",
        Duration::from_secs(10),
        || converged(&url, rev),
    );
    eprintln!("two routers converged on revision {rev} {took:?} after the commit (status-based)");
    let out = flood_b.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("300 packets transmitted, 300 received"),
        "an untouched agreement must not lose a packet during a sync: {text}"
    );
    for h in [&a, &b] {
        assert!(
            ping_from(&h.prefix, Some("198.51.100.20"), "203.0.113.10"),
            "1006 through {}",
            h.prefix
        );
    }
    let s = status(&url);
    assert_eq!(s["routers"].as_array().unwrap().len(), 2, "{s}");
    assert_eq!(s["routers"][0]["provisioning"]["applied"], 3, "{s}");

    // The database stops: both routers keep the policy in force.
    pg.halt();
    std::thread::sleep(Duration::from_millis(500));
    for h in [&a, &b] {
        assert!(
            ping_from(&h.prefix, None, "203.0.113.10"),
            "fail-static {}",
            h.prefix
        );
        assert!(
            ping_from(&h.prefix, Some("198.51.100.20"), "203.0.113.10"),
            "fail-static 1006 {}",
            h.prefix
        );
        assert!(
            !ping_from(&h.prefix, None, "203.0.113.20"),
            "still denied {}",
            h.prefix
        );
    }
    pg.resume();
    // The lab's agreement carried traffic just now: revoking it is held on both routers, and
    // one confirmation for the whole fleet releases it.
    loader(&["db", "--db", &url, "agreement", "revoke", "1006"]);
    let held = revision(&url);
    wait_for(
        "both routers to hold the revocation",
        Duration::from_secs(60),
        || {
            ["hub-a", "hub-b"]
                .iter()
                .all(|r| router_status(&url, r)["held_revision"] == held)
        },
    );
    for h in [&a, &b] {
        assert!(
            ping_from(&h.prefix, Some("198.51.100.20"), "203.0.113.10"),
            "held: 1006 still passes {}",
            h.prefix
        );
    }
    loader(&["confirm", &held.to_string(), "--db", &url, "--all-routers"]);
    wait_for(
        "both routers to apply the confirmed revocation",
        Duration::from_secs(10),
        || converged(&url, held),
    );
    for h in [&a, &b] {
        assert!(
            !ping_from(&h.prefix, Some("198.51.100.20"), "203.0.113.10"),
            "1006 revoked on {}",
            h.prefix
        );
    }

    // kill -9 and restart under traffic: 400 pings 10 ms apart through hub A; the loader dies
    // and comes back in the middle; every ping is answered and counted.
    let before = a.forward_packets(1001).unwrap();
    let flood_a = flood(&a.prefix, 400);
    std::thread::sleep(Duration::from_millis(800));
    a.kill();
    std::thread::sleep(Duration::from_millis(300));
    a.spawn(&url, "hub-a");
    let out = flood_a.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("400 packets transmitted, 400 received"),
        "no allowed packet may be lost across kill -9 and restart: {text}"
    );
    wait_for(
        "the restarted router back in sync",
        Duration::from_secs(10),
        || converged(&url, held),
    );
    let after = a.forward_packets(1001).unwrap();
    assert!(
        after >= before + 400,
        "counters must go on across the restart: {before} -> {after}"
    );
}

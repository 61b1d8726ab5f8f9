//! `sdn-loader rules` reads the rules in force back from the running data plane's maps: for
//! the end-to-end policy and for one with nested client prefixes, IPv6, a VLAN agreement, an
//! endpoint prefix, a revoked agreement and an infrastructure entry, the decoded lines equal
//! the policy's own (agreements in force only); after a new policy is applied they follow
//! it; `--agreement` filters, and an agreement without rules is an error. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

use sdn_tests as support;

use std::process::Command;

use sdn_loader::tools::rules::{Line, from_policy};
use support::netns::{LOADER, Topology, root_or_skip, run_ok};

const E2E: &str = include_str!("../fixtures/end-to-end-policy.toml");
const NESTED: &str = include_str!("../fixtures/rules-nested-policy.toml");

/// What `rules --json` prints, as the lines' JSON.
fn rules_json(topo: &Topology, extra: &[&str]) -> serde_json::Value {
    let out = run_ok(
        Command::new(&*LOADER)
            .args(["rules", "--json", "--pin-dir"])
            .arg(&topo.pin_dir)
            .args(extra),
    );
    serde_json::from_str(&out).unwrap()
}

fn expected(policy: &str) -> serde_json::Value {
    let p = sdn_loader::policy::parse_toml(policy).unwrap();
    let today = chrono::Utc::now().date_naive();
    from_policy(&p, today).iter().map(Line::to_json).collect()
}

#[test]
fn the_rules_in_force_read_back_equal_the_policy() {
    if !root_or_skip() {
        return;
    }
    let topo = Topology::up("ru", E2E);
    let got = rules_json(&topo, &[]);
    assert_eq!(got, expected(E2E));
    // The demo's revoked agreement 1002 has no lines; 1001 has its TCP, UDP and ICMP ones.
    let lines = got.as_array().unwrap();
    assert!(lines.iter().all(|l| l["agreement"] != 1002));
    assert!(
        lines
            .iter()
            .any(|l| l["agreement"] == 1001 && l["protocol"] == "icmp")
    );

    // A new policy: the maps' new generation reads back as it.
    std::fs::write(&topo.policy, NESTED).unwrap();
    topo.attach();
    let got = rules_json(&topo, &[]);
    let want = expected(NESTED);
    assert_eq!(got, want);
    let text = |l: &serde_json::Value| l.to_string();
    let lines: Vec<String> = got.as_array().unwrap().iter().map(text).collect();
    assert!(
        lines.iter().any(|l| l.contains("\"vlan\":100")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("2001:db8:100::/48")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"client\":null") && l.contains("192.0.2.0/28")),
        "{lines:?}"
    );
    // The nested /32's own agreements are there; its derived copies of the /24's are not.
    let of = |a: u32| {
        got.as_array()
            .unwrap()
            .iter()
            .filter(|l| l["agreement"] == a)
            .count()
    };
    assert_eq!(
        (of(10), of(20), of(30), of(40), of(50)),
        (2, 1, 1, 0, 1),
        "{lines:?}"
    );

    // Overlapping agreements: clinic's 60 to web repeats what the region's 10 already gives
    // the clinic's /32. The kernel counts the overlap under the lowest id, so the lines read
    // back are the compiled policy's (decode_compiled), not the file's, and 60 has none.
    let overlapping = format!(
        "{NESTED}\n[[agreement]]\nid = 60\nclient = \"clinic\"\nservice = \"web\"\nstate = \"approved\"\n"
    );
    std::fs::write(&topo.policy, &overlapping).unwrap();
    topo.attach();
    let p = sdn_loader::policy::parse_toml(&overlapping).unwrap();
    let compiled = sdn_loader::compile::compile(&p, chrono::Utc::now().date_naive()).unwrap();
    let want: serde_json::Value = (sdn_loader::tools::rules::decode_compiled(&compiled).iter())
        .map(Line::to_json)
        .collect();
    assert_eq!(rules_json(&topo, &[]), want);
    assert!(
        want.as_array()
            .unwrap()
            .iter()
            .all(|l| l["agreement"] != 60),
        "{want}"
    );
    std::fs::write(&topo.policy, NESTED).unwrap();
    topo.attach();

    // The text form, one line per rule, and the filter.
    let out = run_ok(
        Command::new(&*LOADER)
            .args(["rules", "--pin-dir"])
            .arg(&topo.pin_dir)
            .args(["--agreement", "10"]),
    );
    assert!(
        out.lines()
            .any(|l| l
                == "agreement 10 198.51.100.0/24 -> 203.0.113.0/28 tcp 443,8000-8100 vlan any"),
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("agreement ")).count(),
        2,
        "{out}"
    );
    let out = Command::new(&*LOADER)
        .args(["rules", "--pin-dir"])
        .arg(&topo.pin_dir)
        .args(["--agreement", "40"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("agreement 40 has no rules in force"),
        "{out:?}"
    );
}

/// `--organisation` takes the names from the policy in force that the daemon keeps in its
/// state directory: the lines of the agreements where the organisation is the client's or
/// the service's; an unknown organisation, or no policy kept, is an error.
#[test]
fn rules_of_one_organisation_come_from_the_policy_in_force() {
    use support::daemon::{Hub, loader, router_status, wait_for};
    let Some((mut g, dir)) = Hub::for_test("ro") else {
        return;
    };
    let url = format!("sqlite://{}", dir.path().join("sdn.db").display());
    let policy = dir.path().join("nested.toml");
    std::fs::write(&policy, NESTED).unwrap();
    loader(&["db", "--db", &url, "import", policy.to_str().unwrap()]);
    g.spawn(&url, "rules-test");
    g.wait_attached();
    wait_for("in sync", std::time::Duration::from_secs(10), || {
        router_status(&url, "rules-test")["state"] == "in-sync"
    });
    let state = g.dir.join("state");
    let rules = |org: &str| {
        Command::new(&*LOADER)
            .args(["rules", "--json", "--pin-dir"])
            .arg(&g.pin_dir)
            .arg("--state-dir")
            .arg(&state)
            .args(["--organisation", org])
            .output()
            .unwrap()
    };
    // rsyd's clients have 10, 20, 30; other's partner 50; sds owns every service: all of
    // them. Never the infrastructure line.
    for (org, want) in [
        ("rsyd", vec![10, 20, 30]),
        ("other", vec![50]),
        ("sds", vec![10, 20, 30, 50]),
    ] {
        let out = rules(org);
        assert!(out.status.success(), "{out:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let ids: std::collections::BTreeSet<u64> = (v.as_array().unwrap().iter())
            .map(|l| l["agreement"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, want.into_iter().collect(), "{org}: {v}");
    }
    // explain without --policy: the policy in force, checked against the kernel's rules.
    let explain = |args: &[&str]| {
        Command::new(&*LOADER)
            .arg("explain")
            .args(args)
            .arg("--pin-dir")
            .arg(&g.pin_dir)
            .arg("--state-dir")
            .arg(&state)
            .output()
            .unwrap()
    };
    let out = explain(&[
        "198.51.100.10",
        "203.0.113.5",
        "tcp",
        "40000",
        "22",
        "--syn",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        text.starts_with("PASS") && text.contains("agreement: 20"),
        "{text}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("equal to the data plane's"),
        "{out:?}"
    );
    // From elsewhere in the region: only the revoked agreement 40 could have carried it.
    let out = explain(&[
        "198.51.100.50",
        "203.0.113.5",
        "tcp",
        "40000",
        "22",
        "--syn",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text.contains("not agreement 40 (region -> ssh, forward): it is revoked"),
        "{text}"
    );
    // A kept policy that is not what the kernel holds is refused, naming the difference.
    let (revision, kept) = sdn_loader::sync::state::load(&state).unwrap().unwrap();
    let other = dir.path().join("other-state");
    let e2e = sdn_loader::policy::parse_toml(E2E).unwrap();
    sdn_loader::sync::state::save(&other, revision, &e2e).unwrap();
    let out = Command::new(&*LOADER)
        .args([
            "explain",
            "198.51.100.10",
            "203.0.113.5",
            "tcp",
            "40000",
            "22",
            "--pin-dir",
        ])
        .arg(&g.pin_dir)
        .arg("--state-dir")
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not enforce the policy in force"),
        "{out:?}"
    );
    drop(kept);
    let out = rules("nosuch");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no organisation \"nosuch\""),
        "{out:?}"
    );
    let out = Command::new(&*LOADER)
        .args(["rules", "--pin-dir"])
        .arg(&g.pin_dir)
        .arg("--state-dir")
        .arg(dir.path().join("empty"))
        .args(["--organisation", "sds"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs the policy in force"),
        "{out:?}"
    );
}

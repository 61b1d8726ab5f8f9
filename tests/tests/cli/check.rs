//! `check` and `run` refusals: the demo policy, fixture counts, and a refused `run` leaves nothing behind.

use super::*;

#[test]
fn check_demo_policy() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo-policy.toml");
    let demo_arg = demo.to_str().unwrap();
    let run = sdn_loader(&["check", "--policy", demo_arg, "--date", DATE]).success();
    // The counts, as the library computes them for the same file and date.
    let p = sdn_loader::policy::load_file(&demo).unwrap();
    let c = sdn_loader::compile::compile(&p, date()).unwrap();
    for part in [
        format!("{} organisations", p.organisations.len()),
        format!("{} services", p.services.len()),
        format!("{} clients", p.clients.len()),
        format!("{} agreements", p.agreements.len()),
        format!("{} in force on {DATE}", c.agreements.len()),
        format!("{} prefix entries", c.prefixes.len()),
        format!("{} rule entries", c.rule_entries()),
    ] {
        assert!(
            run.stdout.contains(&part),
            "should say {part:?}: {}",
            run.show()
        );
    }
    // Without --date (today) it succeeds too.
    sdn_loader(&["check", "--policy", demo_arg]).success();
}

#[test]
fn check_counts_of_fixture() {
    let policy = TempFile::with(".toml", POLICY.as_bytes());
    let run = sdn_loader(&["check", "--policy", policy.arg(), "--date", DATE]).success();
    for part in [
        "2 organisations",
        "2 services",
        "2 clients",
        "3 agreements",
        &format!("(2 in force on {DATE})"),
    ] {
        assert!(
            run.stdout.contains(part),
            "should say {part:?}: {}",
            run.show()
        );
    }
    // JSON policies with the same structure are accepted as well.
    let value: toml::Value = toml::from_str(POLICY).unwrap();
    let json = TempFile::with(".json", serde_json::to_string(&value).unwrap().as_bytes());
    let run = sdn_loader(&["check", "--policy", json.arg(), "--date", DATE]).success();
    assert!(
        run.stdout.contains("3 agreements (2 in force"),
        "{}",
        run.show()
    );
}

#[test]
fn run_refuses_a_missing_interface_and_leaves_nothing_behind() {
    let policy = TempFile::with(".toml", POLICY.as_bytes());
    let pin_dir = format!("/sys/fs/bpf/sdn-cli-test-{}", std::process::id());
    let run = sdn_loader(&[
        "run",
        "--iface",
        "sdnnosuch0",
        "--policy",
        policy.arg(),
        "--pin-dir",
        &pin_dir,
    ])
    .failure();
    run.stderr_has(&["sdnnosuch0", "does not exist"]);
    assert!(
        !std::path::Path::new(&pin_dir).exists(),
        "a failed run left pins in {pin_dir}"
    );
}

#[test]
fn run_refuses_a_bad_policy_before_touching_anything() {
    let bad = POLICY.replace("198.51.100.0/24", "198.51.100.7/24");
    assert_ne!(bad, POLICY, "the test policy must contain 198.51.100.0/24");
    let policy = TempFile::with(".toml", bad.as_bytes());
    let pin_dir = format!("/sys/fs/bpf/sdn-cli-test-bad-{}", std::process::id());
    let run = sdn_loader(&[
        "run",
        "--iface",
        "sdnnosuch1",
        "--policy",
        policy.arg(),
        "--pin-dir",
        &pin_dir,
    ])
    .failure();
    run.stderr_has(&["198.51.100.7/24", "198.51.100.0/24"]);
    assert!(
        !std::path::Path::new(&pin_dir).exists(),
        "a refused policy left pins in {pin_dir}"
    );
}

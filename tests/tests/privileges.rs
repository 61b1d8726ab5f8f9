//! What a user without privileges is told: a database in a directory it may not write says
//! so at once, and `stats` says the pins are root's instead of "no running data plane".
//! Needs root (to make the files and become another user with `setpriv`).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test")]
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

use sdn_tests as support;

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use support::netns::{LOADER, outcome};
use support::target::sqlite_url;

/// Whether the loader succeeded with `args`, and its stderr.
fn loader_err(args: &[&str]) -> (bool, String) {
    outcome(Command::new(&*LOADER).args(args))
}

/// As an unprivileged user: a database in a directory it may not write says "read-only" or
/// "cannot open" at once; `stats` says the pins are root's, not that nothing runs.
#[test]
fn an_unprivileged_user_is_told_why() {
    if !support::netns::root_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("sdn.db");
    let url = sqlite_url(&path);
    let (ok, stderr) = loader_err(&["db", "--db", &url, "init"]);
    assert!(ok, "{stderr}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let as_nobody = |args: &[&str]| {
        outcome(
            Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&*LOADER)
                .args(args),
        )
    };
    let t0 = std::time::Instant::now();
    let (ok, stderr) = as_nobody(&["db", "--db", &url, "agreement", "list"]);
    assert!(!ok);
    assert!(
        stderr.contains("read-only") || stderr.contains("cannot open the file"),
        "{stderr}"
    );
    assert!(!stderr.contains("pool timed out"), "{stderr}");
    eprintln!("answered after {:?}", t0.elapsed());
    // The pin tree: root's, 0700.
    let pins = std::path::PathBuf::from(format!("/sys/fs/bpf/sdnfx{:x}", std::process::id()));
    std::fs::create_dir_all(&pins).unwrap();
    std::fs::set_permissions(&pins, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (ok, stderr) = as_nobody(&["stats", "--pin-dir", pins.to_str().unwrap()]);
    let _ = std::fs::remove_dir(&pins);
    assert!(!ok);
    assert!(stderr.contains("permission denied"), "{stderr}");
    assert!(stderr.contains("CAP_BPF"), "{stderr}");
    assert!(!stderr.contains("no running data plane"), "{stderr}");
}

/// The systemd unit's capabilities are enough: as root with the bounding set cut down to
/// CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON (`setpriv`, as `CapabilityBoundingSet=` does),
/// `run --db --once` loads, pins and attaches; without CAP_BPF the same run is refused with
/// the sentence that names the capabilities. On a veth pair this test creates in its own
/// name (no traffic is sent).
#[test]
fn the_units_capabilities_are_enough_and_less_is_refused_clearly() {
    if !support::netns::root_or_skip() {
        return;
    }
    let tag = format!("cap{:x}", std::process::id() & 0xffff);
    let (a, b) = (format!("{tag}a"), format!("{tag}b"));
    let ip = |args: &[&str]| outcome(Command::new("ip").args(args));
    let (ok, err) = ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
    assert!(ok, "{err}");
    for dev in [&a, &b] {
        assert!(ip(&["link", "set", dev, "up"]).0);
    }
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("sdn.db"));
    let demo = support::netns::workspace_root().join("examples/demo-policy.toml");
    let (ok, err) = loader_err(&["db", "--db", &url, "import", demo.to_str().unwrap()]);
    assert!(ok, "{err}");
    let pins = format!("/sys/fs/bpf/sdn{tag}");
    let run_with = |caps: &str| {
        outcome(
            Command::new("setpriv")
                .arg(format!("--bounding-set=-all,{caps}"))
                .arg(&*LOADER)
                .args([
                    "run",
                    "--db",
                    &url,
                    "--once",
                    "--iface",
                    &a,
                    "--pin-dir",
                    &pins,
                ])
                .arg("--state-dir")
                .arg(dir.path().join("state"))
                .args(["--listen", "off", "--kpi-interval", "0"]),
        )
    };
    let refused = run_with("+net_admin,+perfmon");
    let allowed = run_with("+bpf,+net_admin,+perfmon");
    let attached = std::path::Path::new(&pins).join("links").join(&a).exists();
    let _ = loader_err(&["detach", "--iface", &a, "--pin-dir", &pins, "--purge"]);
    let _ = ip(&["link", "del", &a]);
    let _ = std::fs::remove_dir_all(&pins);
    let (ok, err) = refused;
    assert!(!ok, "ran without CAP_BPF");
    assert!(err.contains("CAP_BPF"), "{err}");
    let (ok, err) = allowed;
    assert!(
        ok,
        "CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON should do: {err}"
    );
    assert!(attached, "no link pinned for {a}: {err}");
}

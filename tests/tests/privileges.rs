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

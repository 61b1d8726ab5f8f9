//! `sdn-loader run --db sqlite://FILE` when the file is deleted or replaced under it (a
//! restore by `mv`): the daemon says so (log, status, /metrics), keeps the policy in force
//! while nothing valid is there, and follows the new file once it is a database. Needs root
//! (namespaces, XDP); only namespaces it creates, documentation addresses, cleanup on drop.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

use sdn_tests as support;

use std::time::Duration;

use support::daemon::{Hub, loader, ping_from, router_status, wait_for};
use support::netns::workspace_root;

const LISTEN: &str = "127.0.0.1:9647";

fn metrics() -> Option<String> {
    let addr = LISTEN.parse().ok()?;
    support::http::get(addr, "/metrics", Duration::from_secs(10))
        .ok()
        .map(|(_, body)| body)
}

fn metric_line(name: &str) -> Option<String> {
    metrics()?
        .lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .map(str::to_owned)
}

/// [`wait_for`], printing the daemon's log when it does not happen.
fn wait_logged(what: &str, log: &std::path::Path, f: impl FnMut() -> bool) -> Duration {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(what, Duration::from_secs(10), f)
    }));
    r.unwrap_or_else(|e| {
        eprintln!("{}", std::fs::read_to_string(log).unwrap_or_default());
        std::panic::resume_unwind(e)
    })
}

#[test]
fn follows_a_replaced_database_file() {
    let Some((mut g, dir)) = Hub::for_test("sf") else {
        return;
    };
    let prefix = g.prefix.clone();
    let tmp = dir.path().to_path_buf();
    // The new file revokes an agreement that carried traffic: without the guard in the way,
    // the test sees the new file's content enforced.
    g.args = ["--no-guard", "--listen", LISTEN, "--kpi-interval", "1"]
        .map(str::to_owned)
        .to_vec();
    let db_path = tmp.join("sdn.db");
    let url = format!("sqlite://{}", db_path.display());
    let policy = workspace_root().join("examples/demo-policy.toml");
    let policy = policy.to_str().unwrap();
    loader(&["db", "--db", &url, "import", policy]);
    let log = g.spawn(&url, "files-test");
    g.wait_attached();
    let ping = || ping_from(&prefix, None, "203.0.113.10");
    wait_for("an allowed ping", Duration::from_secs(5), ping);

    // The restore to come, made beside: the same policy with agreement 1001 revoked.
    let new_path = tmp.join("restored.db");
    let new_url = format!("sqlite://{}", new_path.display());
    loader(&["db", "--db", &new_url, "import", policy]);
    loader(&["db", "--db", &new_url, "agreement", "revoke", "1001"]);

    // 1. The file vanishes: said at once, the policy in force stays.
    std::fs::remove_file(&db_path).unwrap();
    let _ = std::fs::remove_file(tmp.join("sdn.db-wal"));
    let _ = std::fs::remove_file(tmp.join("sdn.db-shm"));
    wait_for(
        "the log to say the file vanished",
        Duration::from_secs(5),
        || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("sdn.db vanished")),
    );
    assert!(
        ping(),
        "fail-static: the policy in force stays while no file is there"
    );
    wait_for(
        "/metrics to say the database is down",
        Duration::from_secs(5),
        || metric_line("sdn_database_up").is_some_and(|l| l.ends_with("} 0")),
    );

    // 2. An empty file there (a copy that failed) is not a database: still fail-static.
    std::fs::write(&db_path, b"").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        ping(),
        "an empty file must not be taken as a policy with no agreements"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("is empty (0 bytes)"), "{text}");
    assert_eq!(
        std::fs::metadata(&db_path).unwrap().len(),
        0,
        "the empty file is left alone"
    );

    // 3. The restore: the new file is followed, its content enforced.
    std::fs::rename(&new_path, &db_path).unwrap();
    let took = wait_logged("the restored file's revocation", &log, || !ping());
    eprintln!("restored file enforced {took:?} after the mv (ping-based)");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("following the new file"), "{text}");
    // The router's row is in the new file now.
    wait_for(
        "the status row in the new file",
        Duration::from_secs(5),
        || router_status(&url, "files-test")["state"] == "in-sync",
    );
    wait_for(
        "/metrics to count the reopen",
        Duration::from_secs(10),
        || {
            metric_line("sdn_database_up").is_some_and(|l| l.ends_with("} 1"))
                && metric_line("sdn_database_reopened_total").is_some_and(|l| l.ends_with("} 1"))
        },
    );

    // 4. A replacement while the daemon reads a live file (no vanishing in between).
    let again = tmp.join("again.db");
    let again_url = format!("sqlite://{}", again.display());
    loader(&["db", "--db", &again_url, "import", policy]);
    std::fs::rename(&again, &db_path).unwrap();
    wait_for(
        "the log to say the file was replaced",
        Duration::from_secs(5),
        || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("was replaced by another file")),
    );
    wait_logged("agreement 1001 back from the new file", &log, ping);
}

/// `run --db` on a database with no agreements refuses to enforce it (that would drop all
/// traffic), attaches nothing, and when stopped leaves no pinned maps behind.
#[test]
fn an_empty_database_is_refused_and_leaves_no_pins() {
    let Some((mut g, dir)) = Hub::for_test("se") else {
        return;
    };
    let prefix = g.prefix.clone();
    let tmp = dir.path().to_path_buf();
    g.args = ["--listen", "off", "--kpi-interval", "0"]
        .map(str::to_owned)
        .to_vec();
    let url = format!("sqlite://{}", tmp.join("new.db").display());
    loader(&["db", "--db", &url, "init"]);
    let log = g.spawn(&url, "empty-test");
    wait_for("the refusal in the log", Duration::from_secs(30), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("holds no agreements"))
    });
    assert!(
        !g.pin_dir.join("links").join(format!("{prefix}hs")).exists(),
        "nothing may be attached"
    );
    let maps = g.pin_dir.join("maps");
    assert!(
        std::fs::read_dir(&maps).is_ok_and(|d| d.count() > 0),
        "the maps are pinned while the run waits"
    );
    let child = g.child.take().unwrap();
    // SAFETY: signalling a child of this test.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("nothing was attached"), "{text}");
    let left: Vec<_> = std::fs::read_dir(&maps)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "pins left behind: {left:?}\n{text}");
    assert!(!g.pin_dir.join("prog").exists());
}

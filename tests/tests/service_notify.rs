//! The daemon's service notifications, heard the way systemd hears them: the test binds the
//! datagram socket named by `NOTIFY_SOCKET` (and sets `WATCHDOG_USEC`) for `sdn-loader run
//! --db`, as a `Type=notify` unit with `WatchdogSec=` does. This machine's PID 1 is not
//! systemd, so the protocol is checked here rather than under a real service manager.
//!
//! - `READY=1` comes once the filter is attached with the database's policy in force, never
//!   before, with a `STATUS=` line saying what it enforces; `/healthz` agrees.
//! - After a restart onto the running data plane while the database is gone, the daemon
//!   enforces the policy it had (fail-static) but is not ready, until the database is back
//!   and its policy has been checked: then `READY=1`.
//! - `WATCHDOG=1` keeps coming while the sync loop turns; `STOPPING=1` on SIGTERM.
//!
//! Needs root (namespaces, XDP); only namespaces it creates, documentation addresses.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

use sdn_tests as support;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use support::daemon::{Hub, loader};
use support::netns::workspace_root;

const LISTEN: &str = "127.0.0.1:9648";

/// The notifications received within `limit` (each datagram's lines), stopping early at
/// the first one that holds `until`.
fn hear(socket: &UnixDatagram, limit: Duration, until: Option<&str>) -> Vec<String> {
    let t0 = Instant::now();
    let mut heard = Vec::new();
    let mut buf = [0u8; 4096];
    while t0.elapsed() < limit {
        socket
            .set_read_timeout(Some(
                limit
                    .saturating_sub(t0.elapsed())
                    .max(Duration::from_millis(10)),
            ))
            .unwrap();
        let Ok(n) = socket.recv(&mut buf) else {
            continue;
        };
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        let done = until.is_some_and(|u| msg.lines().any(|l| l == u));
        heard.push(msg);
        if done {
            break;
        }
    }
    heard
}

fn holds(heard: &[String], line: &str) -> bool {
    heard.iter().any(|m| m.lines().any(|l| l == line))
}

fn count(heard: &[String], line: &str) -> usize {
    heard
        .iter()
        .filter(|m| m.lines().any(|l| l == line))
        .count()
}

fn healthz() -> Option<(u16, String)> {
    support::http::get(LISTEN.parse().unwrap(), "/healthz", Duration::from_secs(5)).ok()
}

#[test]
fn ready_after_the_first_sync_watchdog_while_running_stopping_at_the_end() {
    let Some((mut g, dir)) = Hub::for_test("nt") else {
        return;
    };
    let db_path = dir.path().join("sdn.db");
    let url = format!("sqlite://{}", db_path.display());
    let demo = workspace_root().join("examples/demo-policy.toml");
    loader(&["db", "--db", &url, "import", demo.to_str().unwrap()]);
    let sock_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&sock_path).unwrap();
    g.env = vec![
        (
            "NOTIFY_SOCKET".to_owned(),
            sock_path.to_string_lossy().into_owned(),
        ),
        ("WATCHDOG_USEC".to_owned(), "2000000".to_owned()),
    ];
    g.args = vec!["--listen".to_owned(), LISTEN.to_owned()];
    let link = g.pin_dir.join("links").join(format!("{}hs", g.prefix));

    // 1. A first start: ready once attached with the database's policy.
    let log = g.spawn(&url, "notify-test");
    let heard = hear(&socket, Duration::from_secs(30), Some("READY=1"));
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(holds(&heard, "READY=1"), "{heard:?}\n{}", text());
    assert!(link.exists(), "READY=1 came before the filter was attached");
    assert!(
        text().contains("applied revision 1"),
        "READY=1 came before the first sync:\n{}",
        text()
    );
    let ready = heard.iter().find(|m| m.contains("READY=1")).unwrap();
    assert!(
        ready.lines().any(|l| l.starts_with("STATUS=enforcing on ")),
        "{ready}"
    );
    // The watchdog: pinged at half of WATCHDOG_USEC at most, so about every second.
    let heard = hear(&socket, Duration::from_secs(3), None);
    let pings = count(&heard, "WATCHDOG=1");
    assert!((2..=4).contains(&pings), "{pings} pings in 3 s: {heard:?}");
    assert!(!holds(&heard, "READY=1"), "READY=1 is sent once");
    let t0 = Instant::now();
    let health = loop {
        if let Some(h) = healthz() {
            break h;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no HTTP server");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(health.0, 200, "{health:?}");
    assert!(health.1.contains("\"synced\""), "{health:?}");

    // 2. kill -9, the database taken away, a restart onto the running data plane: it
    // enforces what it had but is not ready.
    g.kill();
    std::fs::rename(&db_path, dir.path().join("gone.db")).unwrap();
    let log = g.spawn(&url, "notify-test");
    let heard = hear(&socket, Duration::from_secs(4), None);
    assert!(
        !holds(&heard, "READY=1"),
        "ready without a sync: {heard:?}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("unreachable"),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(link.exists(), "the filter stays attached meanwhile");

    // 3. The database comes back: its policy checked, the daemon is ready.
    std::fs::rename(dir.path().join("gone.db"), &db_path).unwrap();
    let heard = hear(&socket, Duration::from_secs(40), Some("READY=1"));
    assert!(
        holds(&heard, "READY=1"),
        "not ready after the database came back: {heard:?}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let t0 = Instant::now();
    while healthz().is_none_or(|h| h.0 != 200) {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "/healthz not 200: {:?}",
            healthz()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // 4. SIGTERM: STOPPING=1, and a clean exit.
    let mut child = g.child.take().unwrap();
    // SAFETY: sending SIGTERM to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let heard = hear(&socket, Duration::from_secs(20), Some("STOPPING=1"));
    assert!(holds(&heard, "STOPPING=1"), "{heard:?}");
    assert!(child.wait().unwrap().success());
}

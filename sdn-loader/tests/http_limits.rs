//! The HTTP server's connection cap and timeouts, against the real binary
//! (`sdn-loader kpi serve`) on the loopback.
//!
//! What is checked:
//! - with the loader's file limit at 1,024 (soft and hard, as in the report that found the
//!   defect) and 1,100 idle connections held open, `/metrics` still answers 200 with the
//!   database up, the server never holds more than its cap, and the idle connections it let
//!   go are counted as evicted;
//! - a client that trickles its headers (slowloris) is closed within the header timeout;
//! - a connection that sends nothing, and a keep-alive connection after its answer, are
//!   closed within the idle timeout;
//! - `/metrics` counts each cause.
//!
//! No root needed; only 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

use sdn_tests as support;

use std::{
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::unix::process::CommandExt as _,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use support::http::get;
use support::netns::{run_ok, workspace_root};

/// The loader binary built for this test run.
const LOADER: &str = env!("CARGO_BIN_EXE_sdn-loader");

/// `sdn-loader kpi serve` on a free loopback port; killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Starts the server with `args` after `serve`, its file limit set to `nofile` (soft and hard)
/// when given, and waits until it answers.
fn server(nofile: Option<u64>, args: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sdn.db").display());
    run_ok(
        Command::new(LOADER)
            .args(["db", "--db", &url, "import"])
            .arg(workspace_root().join("examples/demo-policy.toml")),
    );
    let addr = free_port();
    let mut cmd = Command::new(LOADER);
    cmd.args(["kpi", "--db", &url, "serve", "--listen", &addr.to_string()])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(n) = nofile {
        // SAFETY: setrlimit is async-signal-safe; it runs in the child before exec.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: n,
                    rlim_max: n,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    let child = cmd.spawn().unwrap();
    let s = Server {
        child,
        addr,
        _dir: dir,
    };
    let t0 = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "kpi serve did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    s
}

/// A line of `/metrics` without its `router` label (which every series carries).
fn without_router(line: &str) -> String {
    let Some(start) = line.find("router=\"") else {
        return line.to_owned();
    };
    let end = line[start + 8..]
        .find('"')
        .map_or(line.len(), |e| start + 8 + e + 1);
    match (&line[..start], &line[end..]) {
        (head, tail) if head.ends_with('{') && tail.starts_with('}') => {
            format!("{}{}", &head[..head.len() - 1], &tail[1..])
        }
        (head, tail) if head.ends_with(',') => format!("{}{tail}", &head[..head.len() - 1]),
        (head, tail) => format!("{head}{}", tail.strip_prefix(',').unwrap_or(tail)),
    }
}

/// A sample of `/metrics` (`name` with its labels as written but `router`, e.g.
/// `x{reason="a"}`).
fn sample(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .map(without_router)
        .find_map(|l| Some(l.strip_prefix(name)?.strip_prefix(' ')?.to_owned()))
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{metrics}"))
        .trim()
        .parse()
        .unwrap()
}

fn metrics(addr: SocketAddr) -> String {
    let (status, body) = get(addr, "/metrics", Duration::from_secs(5)).unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

/// How long until the server closes `s` (reads return end of file or an error), writing
/// `trickle` one byte every 300 ms meanwhile; `None` if still open after `limit`.
fn closed_within(s: &mut TcpStream, trickle: &[u8], limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut sent = 0;
    let mut buf = [0u8; 4096];
    while t0.elapsed() < limit {
        if sent < trickle.len() {
            if s.write_all(&trickle[sent..=sent]).is_err() {
                return Some(t0.elapsed());
            }
            sent += 1;
        }
        match s.read(&mut buf) {
            Ok(0) => return Some(t0.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(t0.elapsed()),
        }
    }
    None
}

/// Lets this test process hold `n` files (machines default to a soft limit of 1,024; root may
/// raise the hard limit too).
fn allow_files(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we pass.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim), 0);
        if lim.rlim_cur < n {
            let want = libc::rlimit {
                rlim_cur: n,
                rlim_max: lim.rlim_max.max(n),
            };
            assert_eq!(
                libc::setrlimit(libc::RLIMIT_NOFILE, &raw const want),
                0,
                "this test holds {n} connections; its file limit is {} (hard {}) and cannot be raised: {}",
                lim.rlim_cur,
                lim.rlim_max,
                std::io::Error::last_os_error()
            );
        }
    }
}

#[test]
fn idle_connections_beyond_the_file_limit_do_not_lock_out_a_scrape() {
    const IDLE: usize = 1_100;
    allow_files(4_096);
    let srv = server(Some(1_024), &["--http-max-connections", "256"]);
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let s = TcpStream::connect_timeout(&srv.addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("idle connection {i}: {e}"));
        idle.push(s);
    }
    // Every scrape answers, and the database is still reachable (its files are not starved).
    for i in 0..5 {
        let t0 = Instant::now();
        let (status, body) = get(srv.addr, "/metrics", Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("scrape {i} with {IDLE} idle connections open: {e}"));
        assert_eq!(status, 200, "{body}");
        assert_eq!(sample(&body, "sdn_database_up"), 1, "{body}");
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "scrape {i} took {:?}",
            t0.elapsed()
        );
        assert_eq!(sample(&body, "sdn_http_connections_max"), 256);
        assert!(sample(&body, "sdn_http_connections_open") <= 256, "{body}");
    }
    let body = metrics(srv.addr);
    let evicted = sample(
        &body,
        "sdn_http_connections_closed_total{reason=\"evicted\"}",
    );
    assert!(
        evicted >= (IDLE - 256) as u64,
        "{evicted} evicted of {IDLE} idle connections at a cap of 256"
    );
    assert!(sample(&body, "sdn_http_connections_accepted_total") >= IDLE as u64);
    // The connections the server let go are closed on its side.
    let mut buf = [0u8; 1];
    idle[0]
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    assert!(
        matches!(idle[0].read(&mut buf), Ok(0) | Err(_)),
        "the oldest idle connection is still open"
    );
}

#[test]
fn slow_headers_and_idle_connections_are_closed_within_their_timeouts() {
    let srv = server(
        None,
        &["--http-header-timeout", "2", "--http-idle-timeout", "3"],
    );
    let limit = Duration::from_secs(8);
    // Slowloris: a request's headers one byte at a time, never finished.
    let mut slow = TcpStream::connect(srv.addr).unwrap();
    let trickle =
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let t = closed_within(&mut slow, trickle, limit).expect("a slowloris client was never closed");
    assert!(
        t >= Duration::from_millis(1_500) && t < Duration::from_secs(4),
        "slow headers closed after {t:?} (header timeout 2 s)"
    );
    // A connection that sends nothing.
    let mut silent = TcpStream::connect(srv.addr).unwrap();
    let t = closed_within(&mut silent, b"", limit).expect("a silent connection was never closed");
    assert!(
        t >= Duration::from_millis(2_500) && t < Duration::from_secs(5),
        "a silent connection closed after {t:?} (idle timeout 3 s)"
    );
    // Keep-alive: one answered request, then nothing.
    let mut kept = TcpStream::connect(srv.addr).unwrap();
    kept.write_all(b"GET /api/v1/zabbix/discovery HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = [0u8; 12];
    kept.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let t = closed_within(&mut kept, b"", limit).expect("a keep-alive connection stayed open");
    assert!(
        t < Duration::from_secs(5),
        "an idle keep-alive connection closed after {t:?} (idle timeout 3 s)"
    );
    let body = metrics(srv.addr);
    let closed = |r: &str| {
        sample(
            &body,
            &format!("sdn_http_connections_closed_total{{reason=\"{r}\"}}"),
        )
    };
    assert_eq!(closed("header-timeout"), 1, "{body}");
    assert_eq!(closed("idle-timeout"), 2, "{body}");
    assert_eq!(closed("evicted"), 0, "{body}");
    assert_eq!(closed("rejected"), 0, "{body}");
}

#[test]
fn limits_refuse_zero() {
    let out = Command::new(LOADER)
        .args(["kpi", "serve", "--http-max-connections", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--http-max-connections"), "{err}");
}

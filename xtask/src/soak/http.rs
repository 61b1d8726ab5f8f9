//! Concurrent HTTP clients of the daemon: half ask for `/metrics`, half for `/api/v1/kpi`,
//! over keep-alive connections (reconnecting after an error), each request timed.

use std::{
    io::{self, BufRead as _, BufReader, Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle, sleep},
    time::{Duration, Instant},
};

use anyhow::Result;

use super::Clock;

/// The two routes asked for.
pub(crate) const PATHS: [&str; 2] = ["/metrics", "/api/v1/kpi?bucket=minute&by=agreement"];

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// 200.
    Ok,
    /// Another status.
    Status(u16),
    /// Connection refused (no server listening).
    Refused,
    /// Any other I/O error (reset, timeout, early end).
    Io(io::ErrorKind),
}

/// One request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sample {
    /// When it ended (soak seconds).
    pub(crate) t: f64,
    /// How long it took (ms).
    pub(crate) ms: f32,
    /// Index into [`PATHS`].
    pub(crate) path: u8,
    /// How it ended.
    pub(crate) outcome: Outcome,
}

/// What one client saw.
#[derive(Debug, Default)]
pub(crate) struct ClientResult {
    /// Every request.
    pub(crate) samples: Vec<Sample>,
    /// `sdn_sync_applied_revision` over time (client 0 only).
    pub(crate) applied: Vec<(f64, u64)>,
    /// The first answer that was not 200: time, status and the start of its body.
    pub(crate) first_error: Option<(f64, u16, String)>,
}

/// `GET path` on `conn` (opened to `addr` when `None`, and again after the server closes it):
/// the status and the body.
pub(crate) fn request(
    conn: &mut Option<BufReader<TcpStream>>,
    addr: SocketAddr,
    path: &str,
) -> io::Result<(u16, Vec<u8>)> {
    if conn.is_none() {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        s.set_nodelay(true)?;
        *conn = Some(BufReader::new(s));
    }
    let Some(r) = conn.as_mut() else {
        return Err(io::ErrorKind::NotConnected.into());
    };
    write!(r.get_mut(), "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n")?;
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad status line"))?;
    let (mut length, mut close) = (None, false);
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let h = line.trim_end().to_ascii_lowercase();
        if h.is_empty() {
            break;
        }
        if let Some(v) = h.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        } else if h == "connection: close" {
            close = true;
        }
    }
    let mut body = Vec::new();
    if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
        close = true;
    }
    if close {
        *conn = None;
    }
    Ok((status, body))
}

fn applied_revision(body: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text
        .lines()
        .find(|l| l.starts_with("sdn_sync_applied_revision"))?;
    line.split_whitespace()
        .last()?
        .parse::<f64>()
        .ok()
        .map(|v| v as u64)
}

/// Starts `n` clients against `addr`, each pausing `pause` between requests, until `stop`.
pub(crate) fn start(
    n: usize,
    addr: SocketAddr,
    pause: Duration,
    clock: Clock,
    stop: &Arc<AtomicBool>,
) -> Result<Vec<JoinHandle<ClientResult>>> {
    (0..n)
        .map(|i| {
            let stop = stop.clone();
            Ok(thread::Builder::new()
                .name(format!("http-{i}"))
                .stack_size(256 * 1024)
                .spawn(move || {
                    let mut r = ClientResult::default();
                    let mut conn = None;
                    let path = i % PATHS.len();
                    while !stop.load(Ordering::Relaxed) {
                        let t0 = Instant::now();
                        let res = request(&mut conn, addr, PATHS[path]);
                        let ms = t0.elapsed().as_secs_f32() * 1000.0;
                        let outcome = match &res {
                            Ok((200, body)) => {
                                if i == 0 {
                                    if let Some(a) = applied_revision(body) {
                                        r.applied.push((clock.t(), a));
                                    }
                                }
                                Outcome::Ok
                            }
                            Ok((s, body)) => {
                                if r.first_error.is_none() {
                                    let text = String::from_utf8_lossy(body);
                                    r.first_error =
                                        Some((clock.t(), *s, text.chars().take(300).collect()));
                                }
                                Outcome::Status(*s)
                            }
                            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                                Outcome::Refused
                            }
                            Err(e) => Outcome::Io(e.kind()),
                        };
                        if outcome != Outcome::Ok {
                            conn = None;
                        }
                        r.samples.push(Sample {
                            t: clock.t(),
                            ms,
                            path: path as u8,
                            outcome,
                        });
                        match outcome {
                            Outcome::Ok => sleep(pause),
                            _ => sleep(Duration::from_millis(50)),
                        }
                    }
                    r
                })?)
        })
        .collect()
}

/// The `p`-th percentile (0-100) of `v` (sorted here).
pub(crate) fn percentile(v: &mut [f32], p: f64) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f32::total_cmp);
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i.min(v.len() - 1)]
}

//! How the HTTP server holds its connections, so that no client can starve the loader.
//!
//! - At most [`Limits::max_connections`] connections are open at once, and never more than the
//!   process's file limit minus [`FD_RESERVE`] (kept for the database, the BPF maps and the
//!   sync). At the cap, a new connection takes the place of the oldest one that is not
//!   running a request (idle, or still sending its headers); when every slot runs a request,
//!   the new one gets `503` and is closed at once.
//! - A connection that has sent part of a request's headers is closed after
//!   [`Limits::header_timeout`] (slowloris); one that sends nothing, or nothing after its last
//!   answer, after [`Limits::idle_timeout`]; a request that runs longer than
//!   [`Limits::request_timeout`] is answered `503`.
//! - A failed accept (out of file descriptors, say) backs off instead of spinning.
//!
//! Every close is counted by cause in [`ConnStats`], which `/metrics` exports.

use std::{
    collections::HashMap,
    convert::Infallible,
    io,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU8, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{Router, body::Body, http::StatusCode, response::IntoResponse};
use hyper::{Request, body::Incoming, server::conn::http1};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Notify, Semaphore},
    time::Instant,
};
use tower::ServiceExt as _;

/// File descriptors kept free of HTTP connections: the database pool, the BPF objects and
/// maps, pins, logs and the sync loop's own files.
pub const FD_RESERVE: u64 = 128;

/// Connection limits of the HTTP server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Time allowed for a request's headers, from their first byte.
    pub header_timeout: Duration,
    /// Time a connection may stay open without a request.
    pub idle_timeout: Duration,
    /// Time a request may take to answer.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a connection was closed by the server (label values of
/// `sdn_http_connections_closed_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Its headers did not arrive within the header timeout.
    HeaderTimeout = 0,
    /// No request within the idle timeout.
    IdleTimeout = 1,
    /// Its place was given to a new connection at the cap.
    Evicted = 2,
    /// Refused at the cap with `503` (every slot was running a request).
    Rejected = 3,
}

impl CloseReason {
    /// Every reason, in label order.
    pub const ALL: [Self; 4] = [
        Self::HeaderTimeout,
        Self::IdleTimeout,
        Self::Evicted,
        Self::Rejected,
    ];

    /// The label value.
    pub const fn name(self) -> &'static str {
        match self {
            Self::HeaderTimeout => "header-timeout",
            Self::IdleTimeout => "idle-timeout",
            Self::Evicted => "evicted",
            Self::Rejected => "rejected",
        }
    }
}

/// Counters of the server's connections (shared with `/metrics`).
#[derive(Debug, Default)]
pub struct ConnStats {
    open: AtomicU64,
    limit: AtomicU64,
    accepted: AtomicU64,
    closed: [AtomicU64; 4],
    requests_timed_out: AtomicU64,
    accept_errors: AtomicU64,
}

/// A copy of [`ConnStats`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnCounts {
    /// Connections open now.
    pub open: u64,
    /// The cap in force (0 before the server started).
    pub limit: u64,
    /// Connections accepted since start.
    pub accepted: u64,
    /// Connections closed by the server, by [`CloseReason`] (index = reason).
    pub closed: [u64; 4],
    /// Requests answered `503` for taking longer than the request timeout.
    pub requests_timed_out: u64,
    /// Accepts that failed (file descriptors exhausted, say).
    pub accept_errors: u64,
}

impl ConnStats {
    /// The counters now.
    pub fn counts(&self) -> ConnCounts {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ConnCounts {
            open: get(&self.open),
            limit: get(&self.limit),
            accepted: get(&self.accepted),
            closed: CloseReason::ALL.map(|r| get(&self.closed[r as usize])),
            requests_timed_out: get(&self.requests_timed_out),
            accept_errors: get(&self.accept_errors),
        }
    }

    fn closed(&self, r: CloseReason) {
        self.closed[r as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Raises the soft limit on open files to the hard limit and returns the new soft limit (as
/// long-running servers do: the default soft limit of 1,024 is a relic).
///
/// # Errors
/// The `getrlimit`/`setrlimit` error.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    Ok(lim.rlim_cur)
}

/// The connection cap for a configured maximum and a soft file limit: the maximum, but never
/// more than the limit minus [`FD_RESERVE`], and at least one.
pub fn effective_cap(configured: usize, fd_limit: u64) -> usize {
    let room = usize::try_from(fd_limit.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX);
    configured.min(room).max(1)
}

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const BUSY: u8 = 2;
const EVICTING: u8 = 3;

/// One connection's phase, as the accept loop and its watchdog see it.
struct Conn {
    phase: AtomicU8,
    /// When the phase began, in milliseconds since the server started.
    since: AtomicU64,
    evict: Notify,
}

impl Conn {
    fn set(&self, phase: u8, epoch: Instant) {
        self.since.store(millis(epoch), Ordering::Relaxed);
        self.phase.store(phase, Ordering::Relaxed);
    }
}

fn millis(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The open connections, so the accept loop can pick one to evict.
#[derive(Default)]
struct Registry {
    next: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Registry {
    fn add(&self, c: Arc<Conn>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = self.conns.lock() {
            m.insert(id, c);
        }
        id
    }

    fn remove(&self, id: u64) {
        if let Ok(mut m) = self.conns.lock() {
            m.remove(&id);
        }
    }

    /// Asks the connection that has waited longest without running a request to close.
    fn evict_one(&self) -> bool {
        let Ok(m) = self.conns.lock() else {
            return false;
        };
        let victim = m
            .values()
            .filter(|c| matches!(c.phase.load(Ordering::Relaxed), IDLE | HEAD))
            .min_by_key(|c| c.since.load(Ordering::Relaxed));
        match victim {
            Some(c) => {
                c.phase.store(EVICTING, Ordering::Relaxed);
                c.evict.notify_one();
                true
            }
            None => false,
        }
    }

    fn evict_all(&self) {
        if let Ok(m) = self.conns.lock() {
            for c in m.values() {
                c.phase.store(EVICTING, Ordering::Relaxed);
                c.evict.notify_one();
            }
        }
    }
}

/// A socket that marks its connection as reading headers when a request's first bytes arrive.
struct Tracked {
    inner: TcpStream,
    conn: Arc<Conn>,
    epoch: Instant,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before
            && self
                .conn
                .phase
                .compare_exchange(IDLE, HEAD, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.conn.since.store(millis(self.epoch), Ordering::Relaxed);
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What the accept loop shares with every connection task.
struct Shared {
    router: Router,
    limits: Limits,
    stats: Arc<ConnStats>,
    registry: Registry,
    epoch: Instant,
}

/// The answer at the cap: written without waiting (the socket's buffer is empty), then closed.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
Retry-After: 1\r\nConnection: close\r\nContent-Length: 37\r\n\r\ntoo many connections, try again soon\n";

/// Accepts connections on `listener` and serves `router` on them within `limits` until `stop`
/// completes; then closes every connection.
///
/// # Errors
/// Never at present: accept failures are counted and backed off from.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stats: Arc<ConnStats>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let cap = match raise_fd_limit() {
        Ok(fds) => {
            let cap = effective_cap(limits.max_connections, fds);
            if cap < limits.max_connections {
                tracing::warn!(
                    "HTTP connections capped at {cap}, not {}: the file limit is {fds} and \
                     {FD_RESERVE} stay free for the database and the data plane",
                    limits.max_connections
                );
            }
            cap
        }
        Err(e) => {
            tracing::warn!("reading the file limit: {e}; HTTP connections capped at 64");
            limits.max_connections.min(64)
        }
    };
    stats.limit.store(cap as u64, Ordering::Relaxed);
    let slots = Arc::new(Semaphore::new(cap));
    let shared = Arc::new(Shared {
        router,
        limits,
        stats,
        registry: Registry::default(),
        epoch: Instant::now(),
    });
    tokio::pin!(stop);
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            () = &mut stop => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => {
                backoff = Duration::from_millis(10);
                s
            }
            Err(e) => {
                // EMFILE and the like: the connection stays queued; free a slot and wait
                // rather than spin on it.
                let n = shared.stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() || n == 0 {
                    tracing::warn!("HTTP accept failed ({e}); {} so far", n + 1);
                }
                if shared.registry.evict_one() {
                    shared.stats.closed(CloseReason::Evicted);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
        let permit = match Arc::clone(&slots).try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) if shared.registry.evict_one() => {
                shared.stats.closed(CloseReason::Evicted);
                // The evicted task gives its slot back as soon as it runs.
                tokio::time::timeout(Duration::from_secs(1), Arc::clone(&slots).acquire_owned())
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
            Err(_) => None,
        };
        let Some(permit) = permit else {
            shared.stats.closed(CloseReason::Rejected);
            let _ = stream.try_write(REFUSAL);
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            shared.stats.open.fetch_add(1, Ordering::Relaxed);
            handle(stream, &shared).await;
            shared.stats.open.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    // Stop: close every connection, then wait briefly for their tasks to finish.
    shared.registry.evict_all();
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        slots.acquire_many(u32::try_from(cap).unwrap_or(u32::MAX)),
    )
    .await;
    Ok(())
}

/// Serves one connection until it ends, times out or is evicted.
async fn handle(stream: TcpStream, shared: &Arc<Shared>) {
    let epoch = shared.epoch;
    let conn = Arc::new(Conn {
        phase: AtomicU8::new(IDLE),
        since: AtomicU64::new(millis(epoch)),
        evict: Notify::new(),
    });
    let id = shared.registry.add(Arc::clone(&conn));
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(Tracked {
        inner: stream,
        conn: Arc::clone(&conn),
        epoch,
    });
    let svc = {
        let (conn, shared) = (Arc::clone(&conn), Arc::clone(shared));
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let (conn, shared) = (Arc::clone(&conn), Arc::clone(&shared));
            async move {
                conn.set(BUSY, shared.epoch);
                let answer = tokio::time::timeout(
                    shared.limits.request_timeout,
                    shared.router.clone().oneshot(req.map(Body::new)),
                )
                .await;
                // The answer may still be on its way out; from here the idle timeout runs.
                let _ =
                    conn.phase
                        .compare_exchange(BUSY, IDLE, Ordering::Relaxed, Ordering::Relaxed);
                conn.since.store(millis(shared.epoch), Ordering::Relaxed);
                Ok::<_, Infallible>(match answer {
                    Ok(Ok(r)) => r,
                    Ok(Err(never)) => match never {},
                    Err(_) => {
                        shared
                            .stats
                            .requests_timed_out
                            .fetch_add(1, Ordering::Relaxed);
                        (StatusCode::SERVICE_UNAVAILABLE, "request timed out\n").into_response()
                    }
                })
            }
        })
    };
    let served = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, svc);
    tokio::pin!(served);
    let limits = shared.limits;
    loop {
        let since = Duration::from_millis(conn.since.load(Ordering::Relaxed));
        let phase = conn.phase.load(Ordering::Relaxed);
        let allowed = match phase {
            HEAD => limits.header_timeout,
            IDLE => limits.idle_timeout,
            // A running request is bounded by the request timeout inside the service.
            _ => limits.request_timeout + limits.idle_timeout,
        };
        let deadline = epoch + since + allowed;
        tokio::select! {
            r = &mut served => {
                if let Err(e) = r {
                    tracing::debug!("HTTP connection: {e}");
                }
                break;
            }
            () = conn.evict.notified() => break,
            () = tokio::time::sleep_until(deadline) => {
                // Still the same phase since the same moment: it timed out.
                let now_since = Duration::from_millis(conn.since.load(Ordering::Relaxed));
                if conn.phase.load(Ordering::Relaxed) == phase && now_since == since {
                    shared.stats.closed(if phase == HEAD {
                        CloseReason::HeaderTimeout
                    } else {
                        CloseReason::IdleTimeout
                    });
                    break;
                }
            }
        }
    }
    shared.registry.remove(id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_the_rest_of_the_loader() {
        assert_eq!(effective_cap(256, 1_024), 256);
        assert_eq!(effective_cap(2_000, 1_024), 1_024 - FD_RESERVE as usize);
        assert_eq!(effective_cap(256, 100), 1);
        assert_eq!(effective_cap(256, u64::MAX), 256);
    }

    #[test]
    fn close_reasons_have_distinct_names_in_index_order() {
        for (i, r) in CloseReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let mut names: Vec<_> = CloseReason::ALL.iter().map(|r| r.name()).collect();
        names.dedup();
        assert_eq!(names.len(), 4);
    }
}

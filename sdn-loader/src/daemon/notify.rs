//! systemd's service notifications (`Type=notify`): `READY=1` once the filter enforces a
//! policy from the database (never before it is attached), `STOPPING=1` when it stops
//! following, and the watchdog, kept alive by the sync loop itself so that a stuck loop is
//! restarted. Outside systemd (no `NOTIFY_SOCKET`) every call does nothing.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// Tells systemd the daemon is ready, with a status line (`systemctl status` shows it).
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells systemd the daemon is stopping.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

fn send(state: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::warn!("telling systemd {state:?}: {e}");
    }
}

/// The service watchdog (`WatchdogSec=`): pinged at half its interval at most.
#[derive(Debug)]
pub struct Watchdog {
    every: Option<Duration>,
    last: Option<Instant>,
}

impl Watchdog {
    /// The watchdog systemd asked for, if any: `WATCHDOG_USEC`, for this process when
    /// `WATCHDOG_PID` names it or is unset (as libsystemd's `sd_watchdog_enabled` reads them;
    /// the sd-notify crate's own check wants `WATCHDOG_PID` always).
    pub fn from_env() -> Self {
        let usec = (std::env::var("WATCHDOG_USEC").ok())
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|u| *u > 0);
        let ours = std::env::var("WATCHDOG_PID")
            .ok()
            .is_none_or(|p| p.parse::<u32>().ok() == Some(std::process::id()));
        let every = usec.filter(|_| ours).map(|u| Duration::from_micros(u / 2));
        Self { every, last: None }
    }

    /// Called by the loop on every turn: pings when half the interval has passed.
    pub fn alive(&mut self) {
        let Some(every) = self.every else { return };
        if self.last.is_none_or(|t| t.elapsed() >= every) {
            send(&[NotifyState::Watchdog]);
            self.last = Some(Instant::now());
        }
    }
}

/// Whether the daemon is ready: set once, by the first sync step that reaches the database
/// with a policy in force (applied, found current, or a newer revision held or refused while
/// the last good one stays), and never unset. `/healthz` answers
/// 503 until then, and systemd hears `READY=1` at that moment, with the status line given.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
    status: std::sync::Arc<str>,
}

impl Readiness {
    /// Not ready yet; `status` is the line systemd shows once it is.
    pub fn new(status: &str) -> Self {
        Self {
            ready: std::sync::Arc::default(),
            status: status.into(),
        }
    }

    /// Whether the first sync has succeeded.
    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Marks the daemon ready (the first call tells systemd).
    pub fn set(&self) {
        if !self.ready.swap(true, std::sync::atomic::Ordering::AcqRel) {
            ready(&self.status);
        }
    }
}

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
    /// The watchdog systemd asked for, if any (`WATCHDOG_USEC`).
    pub fn from_env() -> Self {
        let mut usec = 0;
        let every =
            sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2));
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

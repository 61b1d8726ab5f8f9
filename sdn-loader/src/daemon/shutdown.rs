//! One shutdown handle for the whole process: set by SIGINT or SIGTERM (or by the code that
//! owns it), seen by every loop and task that holds a clone.

use std::{
    io,
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::Notify;

/// A clonable "stop now" for loops (which ask [`Shutdown::is_triggered`] or sleep with
/// [`Shutdown::sleep_blocking`]) and tasks (which await [`Shutdown::triggered`] or sleep with
/// [`Shutdown::sleep`]).
#[derive(Clone, Debug, Default)]
pub struct Shutdown(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    triggered: AtomicBool,
    notify: Notify,
    /// For [`Shutdown::sleep_blocking`]: guards nothing but the wait.
    lock: Mutex<()>,
    woken: Condvar,
}

impl Shutdown {
    /// A handle that nothing has triggered yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A handle that SIGINT and SIGTERM trigger, through a task on `runtime`. From then on
    /// the signals no longer end the process: whoever holds the handle stops.
    pub fn on_signals(runtime: &tokio::runtime::Handle) -> io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let _entered = runtime.enter();
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let s = Self::new();
        let handle = s.clone();
        runtime.spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("SIGINT: stopping"),
                _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
            }
            handle.trigger();
        });
        Ok(s)
    }

    /// Asks everything that holds a clone to stop.
    pub fn trigger(&self) {
        {
            // Under the lock, so a blocking sleeper between its check and its wait is woken.
            let _held = self
                .0
                .lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.0.triggered.store(true, Ordering::SeqCst);
        }
        self.0.woken.notify_all();
        self.0.notify.notify_waiters();
    }

    /// Whether a stop was asked for.
    pub fn is_triggered(&self) -> bool {
        self.0.triggered.load(Ordering::SeqCst)
    }

    /// Returns once a stop is asked for (at once if it already was).
    pub async fn triggered(&self) {
        loop {
            // Registered before the check, so a trigger between the two is not missed.
            let notified = self.0.notify.notified();
            if self.is_triggered() {
                return;
            }
            notified.await;
        }
    }

    /// Blocks this thread for `d`, or less when a stop is asked for meanwhile; true when it
    /// was. It needs no runtime: the sync loop waits this way on its own thread, so a runtime
    /// worker busy with HTTP requests cannot delay its next look at the database.
    pub fn sleep_blocking(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        let mut held = self
            .0
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while !self.is_triggered() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            held = match self.0.woken.wait_timeout(held, left) {
                Ok((h, _)) => h,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }

    /// Sleeps for `d`, or less when a stop is asked for meanwhile; true when it was.
    pub async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(d) => self.is_triggered(),
            () = self.triggered() => true,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test")]

    use std::time::Instant;

    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_trigger_wakes_every_clone_and_cuts_a_sleep_short() {
        let rt = runtime();
        let s = Shutdown::new();
        let (a, b) = (s.clone(), s.clone());
        let waiter = rt.spawn(async move { a.triggered().await });
        let sleeper = rt.spawn(async move { b.sleep(Duration::from_secs(30)).await });
        std::thread::sleep(Duration::from_millis(50));
        assert!(!s.is_triggered());
        let t0 = Instant::now();
        s.trigger();
        rt.block_on(waiter).unwrap();
        assert!(rt.block_on(sleeper).unwrap());
        assert!(t0.elapsed() < Duration::from_secs(5));
        // Once triggered, it stays so.
        rt.block_on(s.triggered());
        assert!(rt.block_on(s.sleep(Duration::from_secs(30))));
    }

    #[test]
    fn a_trigger_cuts_a_blocking_sleep_short() {
        let s = Shutdown::new();
        let other = s.clone();
        let t0 = Instant::now();
        let sleeper = std::thread::spawn(move || other.sleep_blocking(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(50));
        s.trigger();
        assert!(sleeper.join().unwrap());
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert!(!Shutdown::new().sleep_blocking(Duration::from_millis(10)));
    }

    #[test]
    fn a_sleep_without_a_trigger_runs_out() {
        let rt = runtime();
        let s = Shutdown::new();
        assert!(!rt.block_on(s.sleep(Duration::from_millis(10))));
    }

    #[test]
    fn sigterm_triggers_instead_of_ending_the_process() {
        let rt = runtime();
        let s = Shutdown::on_signals(rt.handle()).unwrap();
        // SAFETY: raise only sends a signal to this process; tokio's handler is installed.
        assert_eq!(unsafe { libc::raise(libc::SIGTERM) }, 0);
        let woke = rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(5), s.triggered()).await });
        assert!(woke.is_ok(), "SIGTERM did not trigger the shutdown");
    }
}

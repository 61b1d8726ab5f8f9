//! Faults at seeded random moments: kill -9 and restart of the loader, the database going
//! away and coming back; and the operator who confirms what the blast-radius guard holds.
//! Each fault records its window, so that errors can be told apart from expected ones.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::{self, JoinHandle, sleep},
    time::{Duration, Instant},
};

use anyhow::{Result, anyhow};
use rand::{Rng as _, SeedableRng as _, rngs::StdRng};

use super::{Clock, Gate, env::Env, env::ROUTER};

/// One kill -9 and restart.
#[derive(Clone, Debug)]
pub(crate) struct Restart {
    /// When the loader was killed.
    pub(crate) killed: f64,
    /// When the new one was started.
    pub(crate) spawned: f64,
    /// When it had put its program into the pinned links again.
    pub(crate) attached: Option<f64>,
    /// When its HTTP server accepted connections.
    pub(crate) http_up: Option<f64>,
    /// Whether the database was away when it started.
    pub(crate) db_away: bool,
}

/// The fault windows and anything that went wrong while making faults.
#[derive(Debug, Default)]
pub(crate) struct Windows {
    /// Restarts.
    pub(crate) restarts: Vec<Restart>,
    /// Database outages (away, back).
    pub(crate) db_down: Vec<(f64, f64)>,
    /// Problems (a restart that did not come up, a rename that failed).
    pub(crate) problems: Vec<String>,
}

impl Windows {
    /// Whether `t` is within a loader-down window (kill until HTTP up again), `margin` s wide.
    pub(crate) fn loader_down(&self, t: f64, margin: f64) -> bool {
        self.loader_down_during(t, t, margin)
    }

    /// Whether [a, b] overlaps a loader-down window widened by `margin`.
    pub(crate) fn loader_down_during(&self, a: f64, b: f64, margin: f64) -> bool {
        self.restarts
            .iter()
            .any(|r| a <= r.http_up.unwrap_or(f64::MAX) + margin && b >= r.killed - margin)
    }

    /// Whether [a, b] overlaps a database outage widened by `margin`.
    pub(crate) fn db_away_during(&self, a: f64, b: f64, margin: f64) -> bool {
        self.db_down
            .iter()
            .any(|(x, y)| a <= y + margin && b >= x - margin)
    }

    /// Whether [a, b] overlaps a restart (kill to HTTP up) or an outage.
    pub(crate) fn overlaps(&self, a: f64, b: f64) -> bool {
        self.restarts
            .iter()
            .map(|r| (r.killed, r.http_up.unwrap_or(f64::MAX)))
            .chain(self.db_down.iter().copied())
            .any(|(x, y)| x <= b && a <= y)
    }

    /// Whether `t` is within a database outage, `margin` s wide.
    pub(crate) fn db_away(&self, t: f64, margin: f64) -> bool {
        self.db_away_during(t, t, margin)
    }
}

/// What the fault threads share.
pub(crate) struct FaultSetup {
    pub(crate) env: Arc<Env>,
    pub(crate) seed: u64,
    pub(crate) clock: Clock,
    pub(crate) gate: Arc<Gate>,
    pub(crate) over: Arc<AtomicBool>,
    pub(crate) count: Arc<AtomicU64>,
    pub(crate) windows: Arc<Mutex<Windows>>,
    pub(crate) db_away_now: Arc<AtomicBool>,
}

/// Sleeps `d` unless the run ends first; returns whether it is still on.
fn nap(d: Duration, over: &AtomicBool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < d {
        if over.load(Ordering::SeqCst) {
            return false;
        }
        sleep(Duration::from_millis(20).min(d.saturating_sub(t0.elapsed())));
    }
    !over.load(Ordering::SeqCst)
}

/// kill -9 every 4-15 s; the new loader starts at once (a third of the time) or after up to
/// 3 s.
pub(crate) fn killer(s: Arc<FaultSetup>) -> Result<JoinHandle<Result<()>>> {
    Ok(thread::Builder::new()
        .name("killer".into())
        .spawn(move || {
            let mut rng = StdRng::seed_from_u64(s.seed ^ 0x6b69_6c6c);
            let hs = format!("{}hs", s.env.prefix);
            loop {
                if !nap(Duration::from_millis(rng.gen_range(4000..15000)), &s.over)
                    || !s.gate.enter(&s.over)
                {
                    return Ok(());
                }
                let killed = s.clock.t();
                let r = (|| -> Result<Restart> {
                    s.env.kill9()?;
                    if rng.gen_range(0..3) != 0 {
                        sleep(Duration::from_millis(rng.gen_range(50..3000)));
                    }
                    let db_away = s.db_away_now.load(Ordering::SeqCst);
                    let log = s.env.spawn_loader()?;
                    let spawned = s.clock.t();
                    let mut attached = None;
                    let t0 = Instant::now();
                    let want = format!("existing link of {hs}");
                    while t0.elapsed() < Duration::from_secs(20) {
                        if std::fs::read_to_string(&log).is_ok_and(|l| l.contains(&want)) {
                            attached = Some(s.clock.t());
                            break;
                        }
                        sleep(Duration::from_millis(10));
                    }
                    // The HTTP server starts once the database is there (up to 5 s after).
                    let http_up = s
                        .env
                        .wait_http(Duration::from_secs(90))
                        .then(|| s.clock.t());
                    Ok(Restart {
                        killed,
                        spawned,
                        attached,
                        http_up,
                        db_away,
                    })
                })();
                s.gate.leave();
                s.count.fetch_add(1, Ordering::SeqCst);
                let mut w = s.windows.lock().map_err(|_| anyhow!("poisoned"))?;
                match r {
                    Ok(r) => {
                        if r.attached.is_none() {
                            w.problems.push(format!(
                                "restart at {killed:.1} s did not re-attach in 20 s"
                            ));
                        }
                        if r.http_up.is_none() {
                            w.problems
                                .push(format!("restart at {killed:.1} s: no HTTP within 90 s"));
                        }
                        w.restarts.push(r);
                    }
                    Err(e) => w.problems.push(format!("restart at {killed:.1} s: {e:#}")),
                }
            }
        })?)
}

/// The database away for 1-8 s, every 6-20 s.
pub(crate) fn outages(s: Arc<FaultSetup>) -> Result<JoinHandle<Result<()>>> {
    Ok(thread::Builder::new()
        .name("outages".into())
        .spawn(move || {
            let mut rng = StdRng::seed_from_u64(s.seed ^ 0x6462_6462);
            loop {
                if !nap(Duration::from_millis(rng.gen_range(6000..20000)), &s.over)
                    || !s.gate.enter(&s.over)
                {
                    return Ok(());
                }
                let away = s.clock.t();
                let r = s.env.db.go_away();
                if r.is_ok() {
                    s.db_away_now.store(true, Ordering::SeqCst);
                    // Not cut short by the end of the run: an outage always lasts its time.
                    sleep(Duration::from_millis(rng.gen_range(1000..8000)));
                }
                let back = s.env.db.come_back();
                s.db_away_now.store(false, Ordering::SeqCst);
                let t = s.clock.t();
                s.gate.leave();
                s.count.fetch_add(1, Ordering::SeqCst);
                let mut w = s.windows.lock().map_err(|_| anyhow!("poisoned"))?;
                match (r, back) {
                    (Ok(()), Ok(())) => w.db_down.push((away, t)),
                    (Err(e), _) | (Ok(()), Err(e)) => {
                        w.problems.push(format!("outage at {away:.1} s: {e:#}"));
                    }
                }
            }
        })?)
}

/// What the confirming operator saw.
#[derive(Debug, Default)]
pub(crate) struct GuardLog {
    /// Held revisions confirmed, with the time.
    pub(crate) confirmed: Vec<(u64, f64)>,
    /// Times the router said `failed` (a refused revision), with the error.
    pub(crate) failed: Vec<(f64, String)>,
    /// Times it said `detached` (an interface without the filter), with the alarm.
    pub(crate) detached: Vec<(f64, String)>,
    /// Status polls, and those that failed (database away).
    pub(crate) polls: u64,
    /// Failed polls.
    pub(crate) poll_errors: u64,
}

/// Polls `status` every 250 ms and confirms every held revision, until `stop`.
pub(crate) fn confirmer(
    env: Arc<Env>,
    clock: Clock,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<Result<GuardLog>>> {
    Ok(thread::Builder::new()
        .name("confirmer".into())
        .spawn(move || {
            let mut g = GuardLog::default();
            while !stop.load(Ordering::SeqCst) {
                g.polls += 1;
                let out =
                    env.loader_ok(&["status", "--db", &env.url, "--router", ROUTER, "--json"]);
                let v: Option<serde_json::Value> =
                    out.ok().and_then(|o| serde_json::from_str(&o).ok());
                let Some(r) = v.as_ref().map(|v| &v["routers"][0]) else {
                    g.poll_errors += 1;
                    sleep(Duration::from_millis(250));
                    continue;
                };
                let t = clock.t();
                let error = r["error"].as_str().unwrap_or_default().to_owned();
                match r["state"].as_str() {
                    Some("failed") if g.failed.last().is_none_or(|(_, e)| *e != error) => {
                        g.failed.push((t, error));
                    }
                    Some("detached") if g.detached.last().is_none_or(|(_, e)| *e != error) => {
                        g.detached.push((t, error));
                    }
                    _ => {}
                }
                if let Some(held) = r["held_revision"].as_u64() {
                    if g.confirmed.iter().all(|(n, _)| *n != held) {
                        let n = held.to_string();
                        if env
                            .loader_ok(&["confirm", &n, "--db", &env.url, "--router", ROUTER])
                            .is_ok()
                        {
                            g.confirmed.push((held, t));
                        }
                    }
                }
                sleep(Duration::from_millis(250));
            }
            Ok(g)
        })?)
}

//! Following the agreement database: a full sync, then every change by revision, applied
//! atomically in the data plane (each apply writes the other policy generation and switches).
//!
//! - Wake-up: the revision is polled (cheap on SQLite); PostgreSQL also wakes the loop at once
//!   through LISTEN/NOTIFY, every change notifying [`crate::db::REVISION_CHANNEL`].
//! - Blast-radius guard: a revision that would remove agreements that carried traffic
//!   recently, or too large a share of the rules, is held (logged, written to the router's
//!   status) until `sdn-loader confirm REVISION`; the policy in force stays.
//! - Fail-static: when the database cannot be read, the data plane keeps the last policy it
//!   was given; the loop retries with backoff and says how stale the policy in force is. A
//!   revision that cannot be applied (bad content, maps would overflow) is refused whole, and
//!   not retried until the revision changes; the old policy stays in force.
//! - Expiry is judged on the UTC date, so a new day re-applies the same revision.
//! - Status: the router's row and its per-agreement provisioning rows are written to the
//!   database after every outcome, so the fleet can be seen from one place.

pub mod activity;
pub mod plan;
pub mod state;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    time::{Duration, Instant},
};

use chrono::{DateTime, NaiveDate, Utc};

use self::{
    activity::Tracker,
    plan::{Plan, Rule, judge, rules},
};
use crate::{
    compile::compile,
    config::GuardConfig,
    daemon::Shutdown,
    dataplane::Dataplane,
    db::{Db, DbError, Provision, ProvisionState, RouterStatus},
    policy::InfraEntry,
};

/// How the loop behaves.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// How often the revision is checked.
    pub poll: Duration,
    /// How often the policy is re-applied even without a change (repairs drift).
    pub reconcile: Duration,
    /// Longest wait between retries while the database is unreachable.
    pub max_backoff: Duration,
    /// This router's name (its status rows in the database).
    pub router: String,
    /// The blast-radius guard.
    pub guard: GuardConfig,
    /// How often traffic activity is sampled from the counters.
    pub activity_every: Duration,
    /// Where the policy in force is kept for `plan` and for the guard after a restart.
    pub state_dir: Option<PathBuf>,
    /// This router's own infrastructure allow list, added to the database's.
    pub infrastructure: Vec<InfraEntry>,
    /// The pin tree whose configured interfaces are watched: one without a program attached
    /// is an alarm in the log and the router's status.
    pub pin_dir: Option<PathBuf>,
    /// Enforce a revision with no agreements at all (drops all traffic but the
    /// infrastructure allow list); refused otherwise.
    pub allow_empty: bool,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(50),
            reconcile: Duration::from_secs(300),
            max_backoff: Duration::from_secs(30),
            router: crate::config::hostname(),
            guard: GuardConfig::default(),
            activity_every: Duration::from_secs(60),
            state_dir: None,
            infrastructure: Vec::new(),
            pin_dir: None,
            allow_empty: false,
        }
    }
}

/// What the data plane enforces now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    /// Database revision.
    pub revision: u64,
    /// UTC date expiry was judged on.
    pub date: NaiveDate,
}

/// Outcome of one sync step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing changed.
    Unchanged,
    /// A revision was applied.
    Applied(Applied),
    /// A revision was refused (bad content or no room); the old policy stays.
    Refused {
        /// The refused revision.
        revision: u64,
        /// Why.
        error: String,
    },
    /// The guard holds a revision until it is confirmed; the old policy stays.
    Held {
        /// The held revision.
        revision: u64,
        /// Why.
        reasons: Vec<String>,
    },
}

/// Errors that stop a sync step without touching the data plane.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Reading the database failed.
    #[error("reading the agreement database")]
    Db(#[from] DbError),
}

/// An error and its causes on one line (`a: b: c`), for a refusal's reason.
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// The follower's memory between steps.
#[derive(Default)]
pub struct Follower {
    /// What is in force.
    pub applied: Option<Applied>,
    /// The rules in force (for the guard's plan); `None` before the first apply.
    rules: Option<BTreeSet<Rule>>,
    /// A refused revision (not retried until the revision changes).
    refused: Option<(u64, String)>,
    /// A held revision and why.
    held: Option<(u64, Vec<String>, Plan)>,
    /// Traffic activity.
    tracker: Tracker,
    /// Provisioning rows as last written.
    written: BTreeMap<u32, Provision>,
    /// When a revision last went in force.
    last_sync: Option<DateTime<Utc>>,
    /// Configured interfaces without a program (see [`crate::dataplane::pins::alarms`]).
    alarms: Vec<String>,
    /// The SQLite file was replaced and the policy in force still comes from the old one:
    /// what happened, for the status row.
    replaced: Option<String>,
    /// The next step applies the database whole, whatever its revision says (a new file).
    force_once: bool,
}

impl Follower {
    /// Starts from what an earlier run left: the policy in force (state directory) and the
    /// activity recorded in the database.
    pub async fn resume(db: &Db, opts: &SyncOptions) -> Self {
        let mut f = Self::default();
        if let Some(dir) = &opts.state_dir
            && let Ok(Some((revision, policy))) = state::load(dir)
        {
            f.rules = Some(rules(&policy, Utc::now().date_naive()));
            tracing::info!(revision, "the policy in force was revision {revision}");
        }
        if let Ok(rows) = db.provisioning(Some(&opts.router)).await {
            for (_, p) in rows {
                f.tracker.seed(p.agreement, p.traffic());
                f.written.insert(p.agreement, p);
            }
        }
        f
    }

    /// One step: reads the revision, and applies the database's policy when the revision or
    /// the date changed (or `force`), unless the guard holds it.
    ///
    /// # Errors
    /// [`SyncError::Db`] when the database cannot be read; the data plane is untouched.
    pub async fn step(
        &mut self,
        db: &Db,
        dp: &mut Dataplane,
        opts: &SyncOptions,
        force: bool,
    ) -> Result<Step, SyncError> {
        let today = Utc::now().date_naive();
        let revision = db.revision().await?;
        let current = self
            .applied
            .is_some_and(|a| a.revision == revision && a.date == today);
        let refused = self.refused.as_ref().is_some_and(|r| r.0 == revision);
        let held = self.held.as_ref().is_some_and(|h| h.0 == revision);
        let confirmed = held && db.confirmed(&opts.router, revision).await?;
        // After a replaced file, its content is applied whatever its revision number says.
        let force = force || std::mem::take(&mut self.force_once);
        if !force && (current || refused || (held && !confirmed)) {
            return Ok(Step::Unchanged);
        }
        let t0 = Instant::now();
        let (revision, policy) = match db.export_with_revision().await {
            // Content edited by other means that breaks the rules: refused like a policy that
            // does not compile, until the revision changes.
            Err(e @ DbError::InvalidContent { .. }) => {
                return Ok(self.refuse(revision, with_causes(&e)));
            }
            other => other?,
        };
        let t_export = t0.elapsed();
        if policy.agreements.is_empty() && !opts.allow_empty {
            return Ok(self.refuse(
                revision,
                "the database holds no agreements: enforcing it would drop all traffic but the \
                 infrastructure allow list (run with --allow-empty if that is meant)"
                    .to_owned(),
            ));
        }
        // The policy a revision gives this router: the database's, plus its own allow list.
        let policy = match policy.with_infrastructure(&opts.infrastructure) {
            Ok(p) => p,
            Err(e) => return Ok(self.refuse(revision, e.to_string())),
        };
        let compiled = match compile(&policy, today) {
            Ok(c) => c,
            Err(e) => return Ok(self.refuse(revision, e.to_string())),
        };
        let t_compile = t0.elapsed();
        let new_rules = rules(&policy, today);
        let plan = Plan::between(self.rules.as_ref().unwrap_or(&BTreeSet::new()), &new_rules);
        if self.rules.is_some() {
            if opts.guard.enabled && !plan.removed.is_empty() {
                // Traffic of the agreements that would lose access, up to this moment.
                self.sample_some(dp, &plan.removed);
            }
            let now = Utc::now();
            let reasons = judge(&plan, &self.tracker.all(now), &opts.guard, now);
            if !reasons.is_empty() && !db.confirmed(&opts.router, revision).await? {
                self.held = Some((revision, reasons.clone(), plan.clone()));
                return Ok(Step::Held { revision, reasons });
            }
        }
        let t_guard = t0.elapsed();
        if let Err(e) = dp.apply(&compiled) {
            return Ok(self.refuse(revision, e.to_string()));
        }
        tracing::debug!(
            ?t_export,
            ?t_compile,
            ?t_guard,
            t_apply = ?t0.elapsed(),
            "sync step timings (cumulative)"
        );
        if !plan.is_empty() {
            tracing::info!(
                revision,
                gained = plan.added.len(),
                lost = plan.removed.len(),
                changed = plan.changed.len(),
                "revision {revision} changes: {}",
                plan.describe(&policy, 20)
            );
        }
        if let Some(dir) = &opts.state_dir
            && let Err(e) = state::save(dir, revision, &policy)
        {
            tracing::warn!("cannot keep the policy in force in {}: {e}", dir.display());
        }
        let applied = Applied {
            revision,
            date: today,
        };
        self.applied = Some(applied);
        self.rules = Some(new_rules);
        self.refused = None;
        self.held = None;
        self.replaced = None;
        self.last_sync = Some(Utc::now());
        // Agreements new to the tracker start from their counters as they are now, right
        // after the apply, so that their first packets count as recent traffic.
        let fresh: Vec<u32> = dp
            .slots()
            .keys()
            .filter(|id| !self.tracker.knows(**id))
            .copied()
            .collect();
        if !fresh.is_empty() {
            self.sample_some(dp, &fresh);
        }
        Ok(Step::Applied(applied))
    }

    fn refuse(&mut self, revision: u64, error: String) -> Step {
        self.refused = Some((revision, error.clone()));
        Step::Refused { revision, error }
    }

    /// Samples the activity of some agreements.
    fn sample_some(&mut self, dp: &Dataplane, ids: &[u32]) {
        let slots: BTreeMap<u32, u32> = ids
            .iter()
            .filter_map(|id| dp.slots().get(id).map(|s| (*id, *s)))
            .collect();
        match dp.maps().counters_of(&slots) {
            Ok(c) => {
                self.tracker.sample(&c, Utc::now());
            }
            Err(e) => tracing::warn!("cannot read the counters for activity: {e}"),
        }
    }

    /// Samples traffic activity from the data plane's counters.
    pub fn sample_activity(&mut self, dp: &Dataplane) -> Vec<u32> {
        match dp.agreement_counters() {
            Ok(c) => self.tracker.sample(&c, Utc::now()),
            Err(e) => {
                tracing::warn!("cannot read the counters for activity: {e}");
                Vec::new()
            }
        }
    }

    /// The provisioning rows this router should have now.
    fn provisioning(&self, now: DateTime<Utc>) -> BTreeMap<u32, Provision> {
        let mut out = BTreeMap::new();
        let applied_rev = self.applied.map_or(0, |a| a.revision);
        let row = |id: u32, revision, state, error: Option<String>| {
            let t = self.tracker.traffic(id, now);
            Provision {
                agreement: id,
                revision,
                state,
                error,
                last_traffic_at: t.last.map(crate::db::time_text),
                packets_24h: t.packets_24h,
                bytes_24h: t.bytes_24h,
            }
        };
        if let Some(rules) = &self.rules {
            for id in rules.iter().map(|r| r.agreement) {
                out.entry(id)
                    .or_insert_with(|| row(id, applied_rev, ProvisionState::Applied, None));
            }
        }
        if let Some((revision, reasons, plan)) = &self.held {
            let why = reasons.join("; ");
            for &id in plan.removed.iter().chain(&plan.changed) {
                out.insert(
                    id,
                    row(id, *revision, ProvisionState::Held, Some(why.clone())),
                );
            }
            for &id in &plan.added {
                out.insert(
                    id,
                    row(
                        id,
                        *revision,
                        ProvisionState::Pending,
                        Some(format!("waits for held revision {revision}")),
                    ),
                );
            }
        }
        out
    }

    /// Continues on `db`, a new file at the path of the one the policy in force came from
    /// (`what` says what happened to the old one): the next step applies the new file's
    /// policy whole (through the guard), and the provisioning rows are the new file's.
    pub async fn reattach(&mut self, db: &Db, opts: &SyncOptions, what: String) {
        self.refused = None;
        self.held = None;
        self.replaced = Some(what);
        self.force_once = true;
        self.written.clear();
        if let Ok(rows) = db.provisioning(Some(&opts.router)).await {
            for (_, p) in rows {
                self.written.insert(p.agreement, p);
            }
        }
    }

    /// Looks at the configured interfaces of `opts.pin_dir`; logs when an alarm starts or ends.
    /// Returns whether anything changed (then the status row is due).
    pub fn check_interfaces(&mut self, opts: &SyncOptions) -> bool {
        let Some(dir) = &opts.pin_dir else {
            return false;
        };
        let now = crate::dataplane::pins::alarms(dir);
        if now == self.alarms {
            return false;
        }
        for a in now.iter().filter(|a| !self.alarms.contains(a)) {
            tracing::error!("{a}");
        }
        if now.is_empty() {
            tracing::info!("every configured interface has the filter attached again");
        }
        self.alarms = now;
        true
    }

    /// Writes this router's status row and the provisioning rows that changed.
    ///
    /// # Errors
    /// [`DbError`] from the writes.
    pub async fn write_status(
        &mut self,
        db: &Db,
        opts: &SyncOptions,
        seen: Option<u64>,
    ) -> Result<(), DbError> {
        let now = Utc::now();
        let (state, error) = if !self.alarms.is_empty() {
            // The worst news first: the filter is not enforcing somewhere.
            ("detached", Some(self.alarms.join("; ")))
        } else if let Some((_, reasons, _)) = &self.held {
            ("held", Some(reasons.join("; ")))
        } else if let Some((_, e)) = &self.refused {
            ("failed", Some(e.clone()))
        } else if let Some(what) = &self.replaced {
            ("replaced", Some(what.clone()))
        } else {
            ("in-sync", None)
        };
        let mut rows = self.provisioning(now);
        if let Some((revision, e)) = &self.refused {
            // The refused revision's error on every agreement it was meant to carry is noise;
            // the router row carries it, and each agreement keeps its applied state.
            for p in rows.values_mut() {
                if p.state == ProvisionState::Applied {
                    p.error = Some(format!("revision {revision} refused: {e}"));
                }
            }
        }
        let agreements = self
            .rules
            .as_ref()
            .map(|r| r.iter().map(|r| r.agreement).collect::<BTreeSet<_>>().len() as u64);
        db.write_router_status(&RouterStatus {
            name: opts.router.clone(),
            state: state.to_owned(),
            applied_revision: self.applied.map(|a| a.revision),
            last_sync: self.last_sync.map(crate::db::time_text),
            seen_revision: seen,
            held_revision: self.held.as_ref().map(|h| h.0),
            error,
            checked_at: Some(crate::db::time_text(now)),
            agreements,
        })
        .await?;
        let changed: Vec<Provision> = rows
            .values()
            .filter(|p| self.written.get(&p.agreement) != Some(p))
            .cloned()
            .collect();
        let removed: Vec<u32> = self
            .written
            .keys()
            .filter(|id| !rows.contains_key(id))
            .copied()
            .collect();
        db.write_provisioning(&opts.router, &changed, &removed)
            .await?;
        self.written = rows;
        Ok(())
    }
}

/// How often the daemon looks at its interfaces' links.
const IFACE_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Waits for a PostgreSQL notification of a new revision, at most `wait`, or for a shutdown.
/// Without a LISTEN connection (SQLite, or the connection lost) it is a plain poll interval,
/// slept on this thread (see [`Shutdown::sleep_blocking`]).
fn wait_for_change(
    rt: &tokio::runtime::Runtime,
    listener: &mut Option<sqlx::postgres::PgListener>,
    wait: Duration,
    shutdown: &Shutdown,
) {
    let Some(l) = listener else {
        shutdown.sleep_blocking(wait);
        return;
    };
    let lost = rt.block_on(async {
        tokio::select! {
            r = tokio::time::timeout(wait, l.recv()) => match r {
                Ok(Err(e)) => Some(e),
                _ => None,
            },
            () = shutdown.triggered() => None,
        }
    });
    if let Some(e) = lost {
        tracing::warn!("LISTEN connection lost ({e}); polling only");
        *listener = None;
    }
}

/// What [`follow`] follows, and how.
pub struct Follow<'a> {
    /// The agreement database.
    pub url: &'a str,
    /// Router name, intervals and the guard.
    pub opts: &'a SyncOptions,
    /// Return after the first successful sync instead of following on.
    pub once: bool,
    /// What an earlier call returned, to continue from.
    pub resume: Option<Follower>,
    /// Set by the first step that leaves the database's policy in force (`None`: nobody
    /// waits for it, as before the program is attached).
    pub ready: Option<crate::daemon::notify::Readiness>,
}

/// Follows the database until `shutdown` is triggered (or, with [`Follow::once`], after the
/// first successful sync). Never returns an error for database trouble: it keeps the policy
/// in force and retries. Returns the follower's memory, to continue with.
pub fn follow(
    rt: &tokio::runtime::Runtime,
    dp: &mut Dataplane,
    what: Follow<'_>,
    shutdown: &Shutdown,
) -> Option<Follower> {
    let Follow {
        url,
        opts,
        once,
        resume,
        ready,
    } = what;
    // The LISTEN connection and the pool clean up through tasks when dropped: keep the
    // runtime current for the whole loop.
    let _rt = rt.enter();
    let mut db: Option<Db> = None;
    let mut listener: Option<sqlx::postgres::PgListener> = None;
    let mut f: Option<Follower> = resume;
    let mut last_ok = Instant::now();
    let mut last_full = Instant::now();
    let mut last_activity: Option<Instant> = None;
    let mut backoff = opts.poll;
    let mut announced_hold: Option<u64> = None;
    let mut last_iface_check: Option<Instant> = None;
    // The SQLite file was found deleted or replaced: what happened (until a file is back).
    let mut file_gone: Option<String> = None;
    let mut watchdog = crate::daemon::notify::Watchdog::from_env();
    while !shutdown.is_triggered() {
        // Every turn of this loop (polls, backoffs and syncs alike) proves it is not stuck.
        watchdog.alive();
        if db.is_none() {
            match rt.block_on(Db::open_existing(url)) {
                Ok(d) => {
                    if d.backend() == crate::db::Backend::Postgres {
                        listener = rt.block_on(listen(url));
                    }
                    match (f.as_mut(), file_gone.take()) {
                        (None, _) => f = Some(rt.block_on(Follower::resume(&d, opts))),
                        (Some(fol), Some(what)) => {
                            tracing::warn!(
                                "{what}; following the new file at that path: its policy is applied whole, through the guard"
                            );
                            rt.block_on(fol.reattach(&d, opts, what));
                        }
                        (Some(_), None) => {}
                    }
                    db = Some(d);
                }
                Err(e) => {
                    tracing::warn!(
                        stale_s = last_ok.elapsed().as_secs(),
                        revision = f.as_ref().and_then(|f| f.applied).map(|a| a.revision),
                        "agreement database unreachable ({e}); keeping the policy in force, retrying in {:?}",
                        backoff
                    );
                    shutdown.sleep_blocking(backoff);
                    // A file put back at its path (a restore) is looked for every 2 s at most.
                    let most = if file_gone.is_some() {
                        opts.max_backoff.min(Duration::from_secs(2))
                    } else {
                        opts.max_backoff
                    };
                    backoff = (backoff * 2).min(most);
                    continue;
                }
            }
        }
        let (Some(handle), Some(fol)) = (db.as_ref(), f.as_mut()) else {
            continue;
        };
        let sample_due = last_activity.is_none_or(|t| t.elapsed() >= opts.activity_every);
        if sample_due {
            fol.sample_activity(dp);
            last_activity = Some(Instant::now());
        }
        let force = last_full.elapsed() >= opts.reconcile;
        let result = rt.block_on(fol.step(handle, dp, opts, force));
        let mut write = sample_due;
        if last_iface_check.is_none_or(|t| t.elapsed() >= IFACE_CHECK_EVERY) {
            write |= fol.check_interfaces(opts);
            last_iface_check = Some(Instant::now());
        }
        // Ready once a step has reached the database with a policy in force: applied or
        // found current, or a newer revision held by the guard or refused while the last
        // good one stays (a decision taken; waiting for it would fail the service's start
        // while the filter enforces correctly).
        if let Some(ready) = &ready
            && result.is_ok()
            && fol.applied.is_some()
        {
            ready.set();
        }
        match &result {
            Ok(Step::Unchanged) => {}
            Ok(Step::Applied(a)) => {
                tracing::info!(revision = a.revision, date = %a.date, "applied revision {} of the agreement database", a.revision);
                last_full = Instant::now();
                announced_hold = None;
                write = true;
            }
            Ok(Step::Refused { revision, error }) => {
                tracing::error!(
                    revision,
                    "revision {revision} refused, the policy in force stays: {error}"
                );
                last_full = Instant::now();
                write = true;
            }
            Ok(Step::Held { revision, reasons }) => {
                if announced_hold != Some(*revision) {
                    tracing::error!(
                        revision,
                        "ALARM: revision {revision} held by the blast-radius guard: {}; the policy in force stays until `sdn-loader confirm {revision}`",
                        reasons.join("; ")
                    );
                    announced_hold = Some(*revision);
                    write = true;
                }
                last_full = Instant::now();
            }
            Err(SyncError::Db(e @ DbError::FileChanged { .. })) => {
                let revision = fol.applied.map(|a| a.revision);
                let shown = revision.map_or_else(|| "none".to_owned(), |r| r.to_string());
                tracing::error!(
                    revision,
                    "ALARM: agreement database {e}; keeping the policy in force (revision {shown}), following the file at that path once it is a valid database"
                );
                file_gone = Some(format!(
                    "agreement database {e} at {}; the policy in force (revision {shown}) came from the old file",
                    crate::db::time_text(Utc::now())
                ));
                // Close the old file's connections before opening the path again: the last
                // to close checkpoints and removes the `-wal` beside the path, which the new
                // file would otherwise be read through. The KPI side closes its own within
                // half a second; wait for it.
                if let Some(old) = db.take() {
                    rt.block_on(old.close());
                }
                listener = None;
                shutdown.sleep_blocking(Duration::from_secs(1));
                continue;
            }
            Err(e) => {
                tracing::warn!(
                    stale_s = last_ok.elapsed().as_secs(),
                    "{e:#}: {}; keeping the policy in force, retrying in {backoff:?}",
                    std::error::Error::source(e)
                        .map(ToString::to_string)
                        .unwrap_or_default()
                );
                db = None;
                listener = None;
                shutdown.sleep_blocking(backoff);
                backoff = (backoff * 2).min(opts.max_backoff);
                continue;
            }
        }
        if write {
            let seen = rt.block_on(handle.revision()).ok();
            if let Err(e) = rt.block_on(fol.write_status(handle, opts, seen)) {
                tracing::warn!("cannot write the provisioning status: {e}");
            }
        }
        if once && matches!(result, Ok(Step::Applied(_))) {
            return f;
        }
        last_ok = Instant::now();
        backoff = opts.poll;
        // After a change, look again at once: another may have been committed meanwhile.
        if matches!(result, Ok(Step::Unchanged)) {
            wait_for_change(rt, &mut listener, opts.poll, shutdown);
        }
    }
    f
}

/// LISTEN on the revision channel (PostgreSQL), or `None` (then the loop polls only).
async fn listen(url: &str) -> Option<sqlx::postgres::PgListener> {
    let mut l = match sqlx::postgres::PgListener::connect(url).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("cannot LISTEN for changes ({e}); polling only");
            return None;
        }
    };
    match l.listen(crate::db::REVISION_CHANNEL).await {
        Ok(()) => Some(l),
        Err(e) => {
            tracing::warn!("cannot LISTEN for changes ({e}); polling only");
            None
        }
    }
}

//! Following the agreement database: a full sync, then every change by revision, applied
//! atomically in the data plane (each apply writes the other policy generation and switches).
//!
//! Fail-static: when the database cannot be read, the data plane keeps the last policy it was
//! given; the loop retries with backoff and says how stale the policy in force is. A revision
//! that cannot be applied (e.g. the maps would overflow) is refused whole, logged, and not
//! retried until the revision changes; the old policy stays in force. Expiry is judged on the
//! UTC date, so a new day re-applies the same revision.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use chrono::{NaiveDate, Utc};

use crate::{compile::compile, dataplane::Dataplane, db::Db};

/// How the loop behaves.
#[derive(Clone, Copy, Debug)]
pub struct SyncOptions {
    /// How often the revision is checked.
    pub poll: Duration,
    /// How often the policy is re-applied even without a change (repairs drift).
    pub reconcile: Duration,
    /// Longest wait between retries while the database is unreachable.
    pub max_backoff: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(100),
            reconcile: Duration::from_secs(300),
            max_backoff: Duration::from_secs(30),
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
}

/// Errors that stop a sync step without touching the data plane.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Reading the database failed.
    #[error("reading the agreement database")]
    Db(#[from] crate::db::DbError),
}

/// One step: reads the revision, and applies the database's policy when the revision or the
/// date changed (or `force`).
pub async fn step(
    db: &Db,
    dp: &mut Dataplane,
    last: Option<Applied>,
    refused: Option<u64>,
    force: bool,
) -> Result<Step, SyncError> {
    let today = Utc::now().date_naive();
    let revision = db.revision().await?;
    let current = last.is_some_and(|a| a.revision == revision && a.date == today);
    if !force && (current || refused == Some(revision)) {
        return Ok(Step::Unchanged);
    }
    let (revision, policy) = db.export_with_revision().await?;
    let compiled = match compile(&policy, today) {
        Ok(c) => c,
        Err(e) => {
            return Ok(Step::Refused {
                revision,
                error: e.to_string(),
            });
        }
    };
    match dp.apply(&compiled) {
        Ok(_) => Ok(Step::Applied(Applied {
            revision,
            date: today,
        })),
        Err(e) => Ok(Step::Refused {
            revision,
            error: e.to_string(),
        }),
    }
}

/// Follows the database until `stop` is set (or, with `once`, after the first successful
/// sync). Never returns an error for database trouble: it keeps the policy in force and
/// retries.
pub fn follow(
    rt: &tokio::runtime::Runtime,
    url: &str,
    dp: &mut Dataplane,
    opts: SyncOptions,
    stop: &AtomicBool,
    once: bool,
) {
    let mut db: Option<Db> = None;
    let mut last: Option<Applied> = None;
    let mut refused: Option<u64> = None;
    let mut last_ok = Instant::now();
    let mut last_full = Instant::now();
    let mut backoff = opts.poll;
    while !stop.load(Ordering::Relaxed) {
        if db.is_none() {
            match rt.block_on(Db::open_existing(url)) {
                Ok(d) => db = Some(d),
                Err(e) => {
                    tracing::warn!(
                        stale_s = last_ok.elapsed().as_secs(),
                        revision = last.map(|a| a.revision),
                        "agreement database unreachable ({e}); keeping the policy in force, retrying in {:?}",
                        backoff
                    );
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(opts.max_backoff);
                    continue;
                }
            }
        }
        let Some(handle) = db.as_ref() else { continue };
        let force = last_full.elapsed() >= opts.reconcile;
        match rt.block_on(step(handle, dp, last, refused, force)) {
            Ok(Step::Unchanged) => {}
            Ok(Step::Applied(a)) => {
                tracing::info!(revision = a.revision, date = %a.date, "applied revision {} of the agreement database", a.revision);
                last = Some(a);
                refused = None;
                last_full = Instant::now();
                if once {
                    return;
                }
            }
            Ok(Step::Refused { revision, error }) => {
                tracing::error!(
                    revision,
                    "revision {revision} refused, the policy in force stays: {error}"
                );
                refused = Some(revision);
                last_full = Instant::now();
            }
            Err(e) => {
                tracing::warn!(
                    stale_s = last_ok.elapsed().as_secs(),
                    "{e:#}: {}; keeping the policy in force, retrying in {backoff:?}",
                    std::error::Error::source(&e)
                        .map(ToString::to_string)
                        .unwrap_or_default()
                );
                db = None;
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(opts.max_backoff);
                continue;
            }
        }
        last_ok = Instant::now();
        backoff = opts.poll;
        std::thread::sleep(opts.poll);
    }
}

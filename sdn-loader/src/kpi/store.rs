//! The KPI tables (migration 0003): writing a pass in one transaction, baselines, and the
//! handle queries read through. SQL is portable between SQLite and PostgreSQL: `INSERT ...
//! ON CONFLICT (...) DO UPDATE` with `excluded.`, TEXT and BIGINT only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, AnyPool, Row as _};

use super::{KpiError, Resolution, Retention, Traffic, collect::Baseline, collect::Plan};
use super::{from_db, time_text, to_db};
use crate::db::Db;

/// One bound value.
#[derive(Clone, Debug)]
pub(crate) enum V {
    T(String),
    I(i64),
}

/// Rows per multi-row statement (well under SQLite's 32,766 parameters).
const PARAMS_PER_STATEMENT: usize = 4000;

/// `INSERT INTO table (cols) VALUES ... ON CONFLICT (keys) DO UPDATE SET` each of `sum`
/// columns to the old value plus the new, and each of `set` columns to the new value.
pub(crate) async fn upsert(
    conn: &mut AnyConnection,
    table: &str,
    cols: &[&str],
    keys: &[&str],
    sum: &[&str],
    set: &[&str],
    rows: &[Vec<V>],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let sqlite = conn.backend_name() == "SQLite";
    let mut updates: Vec<String> = sum
        .iter()
        .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
        .collect();
    updates.extend(set.iter().map(|c| format!("{c} = excluded.{c}")));
    let per = (PARAMS_PER_STATEMENT / cols.len()).max(1);
    for chunk in rows.chunks(per) {
        let mut values = String::new();
        let mut n = 0;
        for (i, row) in chunk.iter().enumerate() {
            values.push_str(if i == 0 { "(" } else { ", (" });
            for j in 0..row.len() {
                n += 1;
                if j > 0 {
                    values.push_str(", ");
                }
                if sqlite {
                    values.push('?');
                } else {
                    values.push_str(&format!("${n}"));
                }
            }
            values.push(')');
        }
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES {values} ON CONFLICT ({}) DO UPDATE SET {}",
            cols.join(", "),
            keys.join(", "),
            updates.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for row in chunk {
            for v in row {
                q = match v {
                    V::T(s) => q.bind(s.clone()),
                    V::I(i) => q.bind(*i),
                };
            }
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

const TRAFFIC_COLS: [&str; 9] = [
    "router",
    "resolution",
    "bucket",
    "agreement_id",
    "forward_packets",
    "forward_bytes",
    "reply_packets",
    "reply_bytes",
    "transactions",
];
const COUNTER_COLS: [&str; 5] = [
    "forward_packets",
    "forward_bytes",
    "reply_packets",
    "reply_bytes",
    "transactions",
];

fn traffic_vals(t: &Traffic) -> [V; 5] {
    [
        V::I(to_db(t.forward_packets)),
        V::I(to_db(t.forward_bytes)),
        V::I(to_db(t.reply_packets)),
        V::I(to_db(t.reply_bytes)),
        V::I(to_db(t.transactions)),
    ]
}

pub(crate) fn traffic_from_row(r: &sqlx::any::AnyRow, first: usize) -> Result<Traffic, KpiError> {
    Ok(Traffic {
        forward_packets: from_db(r.try_get(first)?),
        forward_bytes: from_db(r.try_get(first + 1)?),
        reply_packets: from_db(r.try_get(first + 2)?),
        reply_bytes: from_db(r.try_get(first + 3)?),
        transactions: from_db(r.try_get(first + 4)?),
    })
}

/// The KPI tables of one agreement database. Opened from a URL, it follows an SQLite file
/// that is replaced at its path (see [`KpiStore::refresh`]); clones share one handle.
#[derive(Clone, Debug)]
pub struct KpiStore {
    db: Arc<RwLock<Db>>,
    /// Where to reopen from (`None`: a handle given by the caller, never reopened).
    url: Option<Arc<str>>,
    /// How often the file was found replaced and reopened.
    reopened: Arc<AtomicU64>,
    /// One reopen at a time (a pass and a scrape may notice together).
    reopening: Arc<tokio::sync::Mutex<()>>,
}

impl KpiStore {
    /// Opens (and migrates) the database at `url`. An SQLite file must exist: the KPI side
    /// never creates an agreement database (a mistyped path, or a file moved away while the
    /// daemon runs, must not be replaced by an empty one).
    ///
    /// # Errors
    /// [`KpiError::Db`].
    pub async fn open(url: &str) -> Result<Self, KpiError> {
        let db = Db::open_existing(url).await?;
        let mut s = Self::from_db(&db);
        s.url = Some(url.into());
        Ok(s)
    }

    /// The KPI tables of an open database.
    pub fn from_db(db: &Db) -> Self {
        Self {
            db: Arc::new(RwLock::new(db.clone())),
            url: None,
            reopened: Arc::new(AtomicU64::new(0)),
            reopening: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// When the SQLite file was deleted or replaced at its path (a restore by `mv`), reopens
    /// the path, so that KPIs go to the file the agreements now come from. Returns whether
    /// it reopened.
    ///
    /// # Errors
    /// [`KpiError::Db`]: [`crate::db::DbError::FileChanged`] while nothing valid is there.
    pub async fn refresh(&self) -> Result<bool, KpiError> {
        // A handle closed by an earlier refresh whose reopen failed (the file was away) must be
        // reopened even when the file is back unchanged (moved aside and back: same inode).
        let db = self.db();
        if !db.is_closed() && db.file_change().is_none() {
            return Ok(false);
        }
        drop(db);
        let _one = self.reopening.lock().await;
        let current = self.db();
        let changed = if current.is_closed() {
            None
        } else {
            match current.check_file() {
                Ok(()) => return Ok(false),
                Err(changed) => Some(changed),
            }
        };
        let Some(url) = &self.url else {
            return Err(changed.map_or(
                KpiError::Corrupt("the KPI database was closed".into()),
                Into::into,
            ));
        };
        if changed.is_some() {
            // The old file's connections go first: the last one to close checkpoints and
            // removes the `-wal` beside the path, which the new file would otherwise be read
            // through.
            current.close().await;
        }
        let new = match Db::open_existing(url).await {
            Ok(new) => new,
            Err(e) => return Err(changed.map_or_else(|| e.into(), Into::into)),
        };
        if let Ok(mut slot) = self.db.write() {
            *slot = new;
        }
        self.reopened.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = changed {
            tracing::warn!("{c}: KPIs now read and write the file at that path");
        } else {
            tracing::warn!("the database file is back: KPIs read and write it again");
        }
        Ok(true)
    }

    /// Calls [`KpiStore::refresh`] twice a second until `shutdown`: a replaced file's
    /// connections are closed soon after it is replaced, whenever the next pass or scrape is.
    pub async fn watch(&self, shutdown: &crate::daemon::Shutdown) {
        while !shutdown.is_triggered() {
            let _ = self.refresh().await;
            shutdown.sleep(Duration::from_millis(500)).await;
        }
    }

    /// How often [`KpiStore::refresh`] reopened the database.
    pub fn reopened(&self) -> u64 {
        self.reopened.load(Ordering::Relaxed)
    }

    /// The agreement database (its own queries, e.g. the routers' status).
    pub(crate) fn db(&self) -> Db {
        match self.db.read() {
            Ok(d) => d.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The connection pool (queries).
    pub(crate) fn pool(&self) -> AnyPool {
        self.db().pool().clone()
    }

    /// The baseline stored for `router` (empty for a router never collected).
    ///
    /// # Errors
    /// [`KpiError::Sql`], [`KpiError::Corrupt`].
    pub async fn load_baseline(&self, router: &str) -> Result<Baseline, KpiError> {
        let mut b = Baseline::default();
        let rows = sqlx::query(
            "SELECT slot, agreement_id, forward_packets, forward_bytes, reply_packets, reply_bytes, transactions FROM kpi_slot_state WHERE router = $1",
        )
        .bind(router)
        .fetch_all(&self.pool())
        .await?;
        for r in &rows {
            let slot: i64 = r.try_get(0)?;
            let agreement: i64 = r.try_get(1)?;
            let (Ok(slot), Ok(agreement)) = (u32::try_from(slot), u32::try_from(agreement)) else {
                return Err(KpiError::Corrupt(format!(
                    "kpi_slot_state: slot {slot} / agreement {agreement} out of range"
                )));
            };
            b.slots.insert(slot, (agreement, traffic_from_row(r, 2)?));
        }
        let rows = sqlx::query("SELECT reason, packets FROM kpi_reason_state WHERE router = $1")
            .bind(router)
            .fetch_all(&self.pool())
            .await?;
        for r in &rows {
            b.reasons
                .insert(r.try_get::<String, _>(0)?, from_db(r.try_get(1)?));
        }
        Ok(b)
    }

    /// Writes one pass: deltas into the minute, hour and day buckets holding `now`, the new
    /// baselines, and the collector's row, in one transaction.
    ///
    /// # Errors
    /// [`KpiError::Sql`] (nothing written).
    pub async fn write_pass(
        &self,
        router: &str,
        now: DateTime<Utc>,
        plan: &Plan,
        agreements: usize,
        took: Duration,
    ) -> Result<(), KpiError> {
        let mut tx = self.pool().begin().await?;
        let mut traffic = Vec::new();
        let mut reasons = Vec::new();
        for res in Resolution::STORED {
            let bucket = time_text(res.floor(now));
            for (a, t) in &plan.traffic {
                let mut row = vec![
                    V::T(router.to_owned()),
                    V::T(res.name().to_owned()),
                    V::T(bucket.clone()),
                    V::I(i64::from(*a)),
                ];
                row.extend(traffic_vals(t));
                traffic.push(row);
            }
            for (name, n) in &plan.reasons {
                reasons.push(vec![
                    V::T(router.to_owned()),
                    V::T(res.name().to_owned()),
                    V::T(bucket.clone()),
                    V::T(name.clone()),
                    V::I(to_db(*n)),
                ]);
            }
        }
        let keys = ["resolution", "bucket", "router", "agreement_id"];
        upsert(
            &mut tx,
            "kpi_traffic",
            &TRAFFIC_COLS,
            &keys,
            &COUNTER_COLS,
            &[],
            &traffic,
        )
        .await?;
        upsert(
            &mut tx,
            "kpi_reasons",
            &["router", "resolution", "bucket", "reason", "packets"],
            &["resolution", "bucket", "router", "reason"],
            &["packets"],
            &[],
            &reasons,
        )
        .await?;
        // Baselines.
        for chunk in plan.drop_slots.chunks(500) {
            let list: Vec<String> = chunk.iter().map(u32::to_string).collect();
            sqlx::query(&format!(
                "DELETE FROM kpi_slot_state WHERE router = $1 AND slot IN ({})",
                list.join(", ")
            ))
            .bind(router)
            .execute(&mut *tx)
            .await?;
        }
        let state: Vec<Vec<V>> = plan
            .set_slots
            .iter()
            .map(|(slot, a, t)| {
                let mut row = vec![
                    V::T(router.to_owned()),
                    V::I(i64::from(*slot)),
                    V::I(i64::from(*a)),
                ];
                row.extend(traffic_vals(t));
                row
            })
            .collect();
        let mut set = vec!["agreement_id"];
        set.extend(COUNTER_COLS);
        let mut cols = vec!["router", "slot"];
        cols.extend(&set);
        upsert(
            &mut tx,
            "kpi_slot_state",
            &cols,
            &["router", "slot"],
            &[],
            &set,
            &state,
        )
        .await?;
        let rstate: Vec<Vec<V>> = plan
            .set_reasons
            .iter()
            .map(|(r, n)| vec![V::T(router.to_owned()), V::T(r.clone()), V::I(to_db(*n))])
            .collect();
        upsert(
            &mut tx,
            "kpi_reason_state",
            &["router", "reason", "packets"],
            &["router", "reason"],
            &[],
            &["packets"],
            &rstate,
        )
        .await?;
        upsert(
            &mut tx,
            "kpi_collector",
            &["router", "last_pass", "pass_us", "agreements", "passes"],
            &["router"],
            &["passes"],
            &["last_pass", "pass_us", "agreements"],
            &[vec![
                V::T(router.to_owned()),
                V::T(time_text(now)),
                V::I(i64::try_from(took.as_micros()).unwrap_or(i64::MAX)),
                V::I(i64::try_from(agreements).unwrap_or(i64::MAX)),
                V::I(1),
            ]],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes buckets older than the retention of their resolution.
    ///
    /// # Errors
    /// [`KpiError::Sql`].
    pub async fn apply_retention(
        &self,
        now: DateTime<Utc>,
        r: &Retention,
    ) -> Result<u64, KpiError> {
        let mut deleted = 0;
        for (res, keep) in [
            (Resolution::Minute, r.minutes),
            (Resolution::Hour, r.hours),
            (Resolution::Day, r.days),
        ] {
            let Some(keep) = keep else { continue };
            // Keep the bucket that holds the limit: a bucket goes only when all of it is old.
            let cutoff = time_text(res.floor(now - keep));
            for table in ["kpi_traffic", "kpi_reasons"] {
                deleted += sqlx::query(&format!(
                    "DELETE FROM {table} WHERE resolution = $1 AND bucket < $2"
                ))
                .bind(res.name())
                .bind(cutoff.clone())
                .execute(&self.pool())
                .await?
                .rows_affected();
            }
        }
        Ok(deleted)
    }
}

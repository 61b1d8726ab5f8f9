//! The KPI tables (migration 0003): writing a pass in one transaction, baselines, and the
//! handle queries read through. SQL is portable between SQLite and PostgreSQL: `INSERT ...
//! ON CONFLICT (...) DO UPDATE` with `excluded.`, TEXT and BIGINT only.

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

/// The KPI tables of one agreement database.
#[derive(Clone, Debug)]
pub struct KpiStore {
    db: Db,
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
        Ok(Self::from_db(&db))
    }

    /// The KPI tables of an open database.
    pub fn from_db(db: &Db) -> Self {
        Self { db: db.clone() }
    }

    /// The agreement database (its own queries, e.g. the routers' status).
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// The connection pool (queries).
    pub(crate) fn pool(&self) -> &AnyPool {
        self.db.pool()
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
        .fetch_all(self.pool())
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
            .fetch_all(self.pool())
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
                .execute(self.pool())
                .await?
                .rows_affected();
            }
        }
        Ok(deleted)
    }
}

//! Provisioning status: what each hub router enforces, written by that router's own loader so
//! that the whole fleet can be seen from one database, and the confirmations that release
//! revisions the blast-radius guard held. None of this bumps the revision: it describes the
//! agreements, it does not change them.

use chrono::Utc;

use super::{
    Db, DbError, audit,
    store::{self, Val},
};

/// Where a router stands with the database.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouterStatus {
    /// The router's name.
    pub name: String,
    /// `in-sync`, `held` (a revision waits for `confirm`), `failed` (the newest revision was
    /// refused) or `stale` (the database cannot be read; the last policy stays).
    pub state: String,
    /// The revision in force on the data plane.
    pub applied_revision: Option<u64>,
    /// When it went in force (UTC).
    pub last_sync: Option<String>,
    /// The newest revision the loader has read.
    pub seen_revision: Option<u64>,
    /// A revision waiting for `sdn-loader confirm`.
    pub held_revision: Option<u64>,
    /// Why the newest revision is held or failed.
    pub error: Option<String>,
    /// Last successful contact with the database (UTC).
    pub checked_at: Option<String>,
    /// Agreements in force.
    pub agreements: Option<u64>,
}

/// Per router and agreement: how far the agreement's newest definition has got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProvisionState {
    /// In force as the database says.
    Applied,
    /// Read but not yet in force.
    Pending,
    /// Part of a revision the blast-radius guard holds.
    Held,
    /// Part of a revision that was refused (see the error).
    Failed,
}

impl ProvisionState {
    /// The name stored and shown.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Pending => "pending",
            Self::Held => "held",
            Self::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn from_name(text: &str) -> Option<Self> {
        Some(match text {
            "applied" => Self::Applied,
            "pending" => Self::Pending,
            "held" => Self::Held,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// One agreement on one router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provision {
    /// Agreement id.
    pub agreement: u32,
    /// The revision the state refers to.
    pub revision: u64,
    /// The state.
    pub state: ProvisionState,
    /// Why it is held or failed.
    pub error: Option<String>,
    /// When the agreement last carried traffic on this router (UTC).
    pub last_traffic_at: Option<String>,
    /// Packets in the last 24 hours (both directions).
    pub packets_24h: u64,
    /// Bytes in the last 24 hours (both directions).
    pub bytes_24h: u64,
}

impl Provision {
    /// Its recent traffic, as the guard and `plan` judge it.
    pub fn traffic(&self) -> crate::sync::plan::Traffic {
        crate::sync::plan::Traffic {
            last: self
                .last_traffic_at
                .as_deref()
                .and_then(|t| super::parse_time(t).ok()),
            packets_24h: self.packets_24h,
            bytes_24h: self.bytes_24h,
        }
    }
}

const PROVISIONING_COLUMNS: &[&str] = &[
    "router",
    "agreement_id",
    "revision",
    "state",
    "error",
    "updated_at",
    "last_traffic_at",
    "packets_24h",
    "bytes_24h",
];

fn int(v: u64) -> Val {
    Val::Int(i64::try_from(v).unwrap_or(i64::MAX))
}

fn opt_int(v: Option<u64>) -> Val {
    Val::OptInt(v.map(|v| i64::try_from(v).unwrap_or(i64::MAX)))
}

fn unsigned(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

/// The current time as stored.
pub(crate) fn now_column() -> String {
    audit::time_column(Utc::now())
}

type RouterRow = (
    String,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

type ProvisionRow = (
    String,
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    i64,
    i64,
);

impl Db {
    /// Writes (replaces) one router's status row.
    ///
    /// # Errors
    /// [`DbError::Sql`].
    pub async fn write_router_status(&self, s: &RouterStatus) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM routers WHERE name = $1")
            .bind(s.name.as_str())
            .execute(&mut *tx)
            .await?;
        let row = vec![
            Val::Text(s.name.clone()),
            opt_int(s.applied_revision),
            Val::OptText(s.last_sync.clone()),
            Val::Text(s.state.clone()),
            opt_int(s.seen_revision),
            opt_int(s.held_revision),
            Val::OptText(s.error.clone()),
            Val::OptText(s.checked_at.clone()),
            opt_int(s.agreements),
        ];
        store::insert_rows(
            &mut tx,
            "routers",
            &[
                "name",
                "applied_revision",
                "last_sync",
                "state",
                "seen_revision",
                "held_revision",
                "error",
                "checked_at",
                "agreements",
            ],
            &[row],
            &mut |_| {},
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every router's status, sorted by name.
    ///
    /// # Errors
    /// [`DbError::Sql`].
    pub async fn router_statuses(&self) -> Result<Vec<RouterStatus>, DbError> {
        let rows: Vec<RouterRow> = sqlx::query_as(
            "SELECT name, state, applied_revision, last_sync, seen_revision, held_revision, \
             error, checked_at, agreements FROM routers ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| RouterStatus {
                name: r.0,
                state: r.1.unwrap_or_default(),
                applied_revision: unsigned(r.2),
                last_sync: r.3,
                seen_revision: unsigned(r.4),
                held_revision: unsigned(r.5),
                error: r.6,
                checked_at: r.7,
                agreements: unsigned(r.8),
            })
            .collect())
    }

    /// Replaces the rows of `router` for the agreements in `rows`, and deletes those in
    /// `removed`, in one transaction.
    ///
    /// # Errors
    /// [`DbError::Sql`].
    pub async fn write_provisioning(
        &self,
        router: &str,
        rows: &[Provision],
        removed: &[u32],
    ) -> Result<(), DbError> {
        if rows.is_empty() && removed.is_empty() {
            return Ok(());
        }
        let at = now_column();
        let mut tx = self.pool.begin().await?;
        let sqlite = tx.backend_name() == "SQLite";
        let ids: Vec<u32> = rows
            .iter()
            .map(|p| p.agreement)
            .chain(removed.iter().copied())
            .collect();
        for chunk in ids.chunks(500) {
            let list: Vec<String> = chunk.iter().map(u32::to_string).collect();
            // Ids are integers formatted here, never text from outside.
            let sql = format!(
                "DELETE FROM provisioning WHERE router = {} AND agreement_id IN ({})",
                if sqlite { "?" } else { "$1" },
                list.join(", ")
            );
            sqlx::query(&sql).bind(router).execute(&mut *tx).await?;
        }
        let values: Vec<Vec<Val>> = rows
            .iter()
            .map(|p| {
                vec![
                    Val::Text(router.to_owned()),
                    Val::Int(i64::from(p.agreement)),
                    int(p.revision),
                    Val::Text(p.state.name().to_owned()),
                    Val::OptText(p.error.clone()),
                    Val::Text(at.clone()),
                    Val::OptText(p.last_traffic_at.clone()),
                    int(p.packets_24h),
                    int(p.bytes_24h),
                ]
            })
            .collect();
        store::insert_rows(
            &mut tx,
            "provisioning",
            PROVISIONING_COLUMNS,
            &values,
            &mut |_| {},
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The provisioning rows of one router (or of all), as (router, row), sorted by router and
    /// agreement.
    ///
    /// # Errors
    /// [`DbError::Sql`].
    pub async fn provisioning(
        &self,
        router: Option<&str>,
    ) -> Result<Vec<(String, Provision)>, DbError> {
        const SELECT: &str = "SELECT router, agreement_id, revision, state, error, \
                              last_traffic_at, packets_24h, bytes_24h FROM provisioning";
        let rows: Vec<ProvisionRow> = match router {
            Some(r) => {
                sqlx::query_as(&format!(
                    "{SELECT} WHERE router = $1 ORDER BY router, agreement_id"
                ))
                .bind(r)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query_as(&format!("{SELECT} ORDER BY router, agreement_id"))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some((
                    r.0,
                    Provision {
                        agreement: u32::try_from(r.1).ok()?,
                        revision: u64::try_from(r.2).ok()?,
                        state: ProvisionState::from_name(&r.3)?,
                        error: r.4,
                        last_traffic_at: r.5,
                        packets_24h: u64::try_from(r.6).unwrap_or_default(),
                        bytes_24h: u64::try_from(r.7).unwrap_or_default(),
                    },
                ))
            })
            .collect())
    }

    /// Records that `actor` confirmed `revision` for `router` (`*`: every router).
    ///
    /// # Errors
    /// [`DbError::Sql`]; [`DbError::NoSuchRevision`] when the database has not reached it.
    pub async fn confirm(&self, router: &str, revision: u64, actor: &str) -> Result<(), DbError> {
        let current = self.revision().await?;
        if revision == 0 || revision > current {
            return Err(DbError::NoSuchRevision { revision, current });
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM confirmations WHERE router = $1 AND revision = $2")
            .bind(router)
            .bind(i64::try_from(revision).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        store::insert_rows(
            &mut tx,
            "confirmations",
            &["router", "revision", "actor", "at"],
            &[vec![
                Val::Text(router.to_owned()),
                int(revision),
                Val::Text(actor.to_owned()),
                Val::Text(now_column()),
            ]],
            &mut |_| {},
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether `revision` was confirmed for `router` (or for every router).
    ///
    /// # Errors
    /// [`DbError::Sql`].
    pub async fn confirmed(&self, router: &str, revision: u64) -> Result<bool, DbError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM confirmations WHERE (router = $1 OR router = '*') \
             AND revision = $2",
        )
        .bind(router)
        .bind(i64::try_from(revision).unwrap_or(i64::MAX))
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }
}

//! The audit log: one row per changed object, written in the change's transaction.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::Row as _;

use super::error::{DbError, ObjectKind};
use super::store::Val;
use super::{Db, Origin};

/// An audit row before it is written.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) action: &'static str,
    pub(crate) kind: ObjectKind,
    pub(crate) key: String,
    pub(crate) organisation: Option<String>,
    pub(crate) peer_organisation: Option<String>,
    pub(crate) before: Option<Value>,
    pub(crate) after: Option<Value>,
}

pub(crate) const COLUMNS: &[&str] = &[
    "revision",
    "seq",
    "at",
    "request_id",
    "actor",
    "action",
    "kind",
    "object_key",
    "organisation",
    "peer_organisation",
    "before_json",
    "after_json",
];

/// UTC, fixed width, so that text order is time order on both backends.
pub(crate) fn time_column(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub(crate) fn rows(rows: &[Row], revision: i64, at: &str, origin: &Origin) -> Vec<Vec<Val>> {
    rows.iter()
        .enumerate()
        .map(|(seq, r)| {
            vec![
                Val::Int(revision),
                Val::Int(seq as i64),
                Val::Text(at.to_owned()),
                Val::Text(origin.request_id.clone()),
                Val::Text(origin.actor.clone()),
                Val::Text(r.action.to_owned()),
                Val::Text(r.kind.name().to_owned()),
                Val::Text(r.key.clone()),
                Val::OptText(r.organisation.clone()),
                Val::OptText(r.peer_organisation.clone()),
                Val::OptText(r.before.as_ref().map(Value::to_string)),
                Val::OptText(r.after.as_ref().map(Value::to_string)),
            ]
        })
        .collect()
}

/// Parses a time filter: RFC 3339 (`2030-01-01T12:00:00Z`, `...+02:00`) or a date
/// (`2030-01-01`, meaning its midnight UTC).
///
/// # Errors
/// [`DbError::BadTime`].
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, DbError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| DbError::BadTime {
            text: text.to_owned(),
        })
}

/// Which audit rows to return; every field given must match.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Rows about objects of this organisation (for an agreement: the client's or the
    /// service's organisation).
    pub organisation: Option<String>,
    /// Rows about objects of this kind.
    pub kind: Option<ObjectKind>,
    /// Rows about the object with this key (id; name for a port alias).
    pub key: Option<String>,
    /// Rows made under this request id.
    pub request_id: Option<String>,
    /// Rows at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Rows before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only the newest this many rows.
    pub limit: Option<u32>,
}

/// One audit row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditEntry {
    /// The revision the change made.
    pub revision: u64,
    /// Number of the row within its revision.
    pub seq: u64,
    /// When (UTC, `YYYY-MM-DDTHH:MM:SS.ffffffZ`).
    pub at: String,
    /// The request id.
    pub request_id: String,
    /// Who.
    pub actor: String,
    /// `create`, `update`, `delete`, `move`, `approve`, `reject`, `revoke`, `add-endpoint`,
    /// `delete-endpoint`, `add-prefix`, `delete-prefix`, `import` (summary row).
    pub action: String,
    /// The object's kind (`organisation`, `port_alias`, `service`, ...; `policy` for the
    /// summary row of an import).
    pub kind: String,
    /// The object's id (empty for the summary row and infrastructure).
    pub key: String,
    /// The organisation the object belongs to (the client's, for an agreement).
    pub organisation: Option<String>,
    /// For an agreement: the service's organisation.
    pub peer_organisation: Option<String>,
    /// The object before (JSON, as in a JSON policy file); none when created.
    pub before: Option<Value>,
    /// The object after; none when deleted. For an import's summary row: the counts.
    pub after: Option<Value>,
}

impl Db {
    /// Audit rows matching `filter`, oldest first.
    ///
    /// # Errors
    /// [`DbError::Sql`].
    pub async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, DbError> {
        let mut clauses: Vec<String> = Vec::new();
        let mut values: Vec<String> = Vec::new();
        let param = |values: &mut Vec<String>, v: String| {
            values.push(v);
            format!("${}", values.len())
        };
        if let Some(org) = &filter.organisation {
            let a = param(&mut values, org.clone());
            let b = param(&mut values, org.clone());
            clauses.push(format!("(organisation = {a} OR peer_organisation = {b})"));
        }
        if let Some(kind) = filter.kind {
            let p = param(&mut values, kind.name().to_owned());
            clauses.push(format!("kind = {p}"));
        }
        if let Some(key) = &filter.key {
            let p = param(&mut values, key.clone());
            clauses.push(format!("object_key = {p}"));
        }
        if let Some(id) = &filter.request_id {
            let p = param(&mut values, id.clone());
            clauses.push(format!("request_id = {p}"));
        }
        if let Some(t) = filter.since {
            let p = param(&mut values, time_column(t));
            clauses.push(format!("at >= {p}"));
        }
        if let Some(t) = filter.until {
            let p = param(&mut values, time_column(t));
            clauses.push(format!("at < {p}"));
        }
        let mut sql = format!("SELECT {} FROM audit", COLUMNS.join(", "));
        if !clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&clauses.join(" AND "));
        }
        sql.push_str(" ORDER BY revision DESC, seq DESC");
        if let Some(limit) = filter.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let mut q = sqlx::query(&sql);
        for v in &values {
            q = q.bind(v.as_str());
        }
        let rows = q.fetch_all(&self.pool).await?;
        let json = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(AuditEntry {
                    revision: u64::try_from(r.try_get::<i64, _>(0)?).unwrap_or_default(),
                    seq: u64::try_from(r.try_get::<i64, _>(1)?).unwrap_or_default(),
                    at: r.try_get(2)?,
                    request_id: r.try_get(3)?,
                    actor: r.try_get(4)?,
                    action: r.try_get(5)?,
                    kind: r.try_get(6)?,
                    key: r.try_get(7)?,
                    organisation: r.try_get(8)?,
                    peer_organisation: r.try_get(9)?,
                    before: json(r.try_get(10)?),
                    after: json(r.try_get(11)?),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        out.reverse();
        Ok(out)
    }
}

//! Per-agreement traffic KPIs: a collector that turns the data plane's per-CPU
//! counters into per-bucket deltas in the agreement database, roll-up and retention, queries,
//! Prometheus metrics and an HTML report.
//!
//! # Counting rules (no loss, no double counting)
//! - The collector keeps a *baseline* per (router, counter slot): the agreement the slot held
//!   and the counter values last recorded. Each pass adds `now - baseline` to the buckets and
//!   stores the new baselines **in the same database transaction**, so a crash or restart
//!   between passes neither loses nor repeats an interval (the counters live in pinned maps
//!   and keep counting while the loader is down).
//! - A slot whose agreement changed since the last pass, or whose counters went down (maps
//!   recreated), is a fresh start: its baseline is zero. The data plane zeroes a slot before
//!   handing it to a new agreement, so a fresh slot holds only the new agreement's counts.
//! - An agreement that left the policy keeps its slot's counts until the collector has
//!   recorded them; the collector then zeroes the slot, and the data plane prefers clean
//!   (all-zero) free slots for new agreements. Only when no clean slot is free is a slot with
//!   uncollected counts reused (and those counts, at most one interval's, are lost).
//! - Without any baseline (the first pass ever for a router), everything counted so far goes
//!   into the first bucket.
//!
//! # Buckets and roll-up
//! A pass's deltas go into the bucket (minute, hour and day) holding the pass's time, all
//! three in the pass's transaction: the resolutions always agree on totals. Retention deletes
//! whole rows of one resolution older than its limit ([`Retention`]).

pub(crate) mod batch;
pub mod collect;
pub mod connections;
pub mod http;
pub mod metrics;
pub mod query;
pub mod report;
pub mod status_page;
pub mod store;

use chrono::{DateTime, Datelike as _, TimeZone as _, Timelike as _, Utc};
use serde::Serialize;

pub use collect::{Collector, PassReport};
pub use store::KpiStore;

/// Errors of the KPI subsystem.
#[derive(Debug, thiserror::Error)]
pub enum KpiError {
    /// A database statement failed.
    #[error("KPI database")]
    Sql(#[from] sqlx::Error),
    /// Opening the database failed.
    #[error("opening the KPI database")]
    Db(#[from] crate::db::DbError),
    /// Reading or writing the data plane's maps failed.
    #[error("reading the data plane's counters")]
    Dataplane(#[from] crate::dataplane::DataplaneError),
    /// A value in the database is not what the schema says.
    #[error("KPI database: {0}")]
    Corrupt(String),
    /// A query was not understood.
    #[error("{0}")]
    BadQuery(String),
    /// A query names something neither the agreement database nor the KPIs know.
    #[error("no {what} {name:?} in the agreement database or the KPIs")]
    Unknown {
        /// `agreement`, `service`, `client`, `organisation` or `router`.
        what: &'static str,
        /// The name (an agreement's id) as given.
        name: String,
    },
    /// Writing output failed.
    #[error("writing output")]
    Io(#[from] std::io::Error),
}

/// Traffic counters of one agreement over some time (or a delta between two readings).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    /// Packets to the service.
    pub forward_packets: u64,
    /// Bytes to the service.
    pub forward_bytes: u64,
    /// Packets from the service.
    pub reply_packets: u64,
    /// Bytes from the service.
    pub reply_bytes: u64,
    /// New flows.
    pub transactions: u64,
}

impl Traffic {
    /// All zero.
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    /// Bytes both ways.
    pub fn bytes(&self) -> u64 {
        self.forward_bytes.saturating_add(self.reply_bytes)
    }

    /// Packets both ways.
    pub fn packets(&self) -> u64 {
        self.forward_packets.saturating_add(self.reply_packets)
    }

    /// Field-by-field sum.
    pub fn add(&mut self, o: &Self) {
        self.forward_packets = self.forward_packets.saturating_add(o.forward_packets);
        self.forward_bytes = self.forward_bytes.saturating_add(o.forward_bytes);
        self.reply_packets = self.reply_packets.saturating_add(o.reply_packets);
        self.reply_bytes = self.reply_bytes.saturating_add(o.reply_bytes);
        self.transactions = self.transactions.saturating_add(o.transactions);
    }

    /// `self - base`, or `self` when any field went down (the counters were reset: a fresh
    /// start, so nothing is subtracted that was never added).
    #[must_use]
    pub fn since(&self, base: &Self) -> Self {
        let down = self.forward_packets < base.forward_packets
            || self.forward_bytes < base.forward_bytes
            || self.reply_packets < base.reply_packets
            || self.reply_bytes < base.reply_bytes
            || self.transactions < base.transactions;
        if down {
            return *self;
        }
        Self {
            forward_packets: self.forward_packets - base.forward_packets,
            forward_bytes: self.forward_bytes - base.forward_bytes,
            reply_packets: self.reply_packets - base.reply_packets,
            reply_bytes: self.reply_bytes - base.reply_bytes,
            transactions: self.transactions - base.transactions,
        }
    }
}

impl From<sdn_common::AgreementCounters> for Traffic {
    fn from(c: sdn_common::AgreementCounters) -> Self {
        Self {
            forward_packets: c.forward_packets,
            forward_bytes: c.forward_bytes,
            reply_packets: c.reply_packets,
            reply_bytes: c.reply_bytes,
            transactions: c.transactions,
        }
    }
}

/// A bucket size. Minutes, hours and days are stored; months are summed from days.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One UTC day.
    Day,
    /// One UTC calendar month (from day rows).
    Month,
}

impl Resolution {
    /// The stored resolutions.
    pub const STORED: [Self; 3] = [Self::Minute, Self::Hour, Self::Day];

    /// The name used in the database and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Month => "month",
        }
    }

    /// Parses `minute`, `hour`, `day` or `month`.
    ///
    /// # Errors
    /// [`KpiError::BadQuery`].
    pub fn parse(s: &str) -> Result<Self, KpiError> {
        match s {
            "minute" => Ok(Self::Minute),
            "hour" => Ok(Self::Hour),
            "day" => Ok(Self::Day),
            "month" => Ok(Self::Month),
            _ => Err(KpiError::BadQuery(format!(
                "unknown bucket size {s:?}: give minute, hour, day or month"
            ))),
        }
    }

    /// The start of the bucket after the one starting at `start`.
    pub fn next(self, start: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Self::Minute => start + chrono::Duration::minutes(1),
            Self::Hour => start + chrono::Duration::hours(1),
            Self::Day => start + chrono::Duration::days(1),
            Self::Month => start
                .checked_add_months(chrono::Months::new(1))
                .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC),
        }
    }

    /// The start of the bucket holding `t`.
    pub fn floor(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let d = t.date_naive();
        let (h, m) = match self {
            Self::Minute => (t.hour(), t.minute()),
            Self::Hour => (t.hour(), 0),
            Self::Day | Self::Month => (0, 0),
        };
        let day = if self == Self::Month {
            d.with_day(1).unwrap_or(d)
        } else {
            d
        };
        day.and_hms_opt(h, m, 0)
            .map_or(t, |n| Utc.from_utc_datetime(&n))
    }

    /// The resolution stored in the database that this one is read from.
    #[must_use]
    pub fn stored(self) -> Self {
        if self == Self::Month { Self::Day } else { self }
    }
}

/// How long each resolution is kept (`None`: forever).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Minute buckets.
    pub minutes: Option<chrono::Duration>,
    /// Hour buckets.
    pub hours: Option<chrono::Duration>,
    /// Day buckets.
    pub days: Option<chrono::Duration>,
}

impl Default for Retention {
    /// Minutes for 7 days, hours for a year, days forever.
    fn default() -> Self {
        Self {
            minutes: Some(chrono::Duration::days(7)),
            hours: Some(chrono::Duration::days(365)),
            days: None,
        }
    }
}

impl Retention {
    /// Parses `minutes=7d,hours=365d,days=forever` (any subset; the others keep their
    /// defaults). Durations are `N` followed by `d` (days) or `h` (hours), or `forever`.
    ///
    /// # Errors
    /// [`KpiError::BadQuery`] naming the part not understood.
    pub fn parse(s: &str) -> Result<Self, KpiError> {
        let mut r = Self::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || {
                KpiError::BadQuery(format!(
                    "retention {part:?}: write e.g. minutes=7d,hours=365d,days=forever"
                ))
            };
            let (what, value) = part.split_once('=').ok_or_else(bad)?;
            let keep = if value == "forever" {
                None
            } else if let Some(d) = value.strip_suffix('d') {
                Some(chrono::Duration::days(d.parse().map_err(|_| bad())?))
            } else if let Some(h) = value.strip_suffix('h') {
                Some(chrono::Duration::hours(h.parse().map_err(|_| bad())?))
            } else {
                return Err(bad());
            };
            match what {
                "minutes" => r.minutes = keep,
                "hours" => r.hours = keep,
                "days" => r.days = keep,
                _ => return Err(bad()),
            }
        }
        Ok(r)
    }
}

/// A time as stored: `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, fixed width, so text order is time
/// order).
pub fn time_text(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Parses a stored time (or an RFC 3339 time, or a `YYYY-MM-DD` date meaning its midnight
/// UTC, as typed on the command line).
///
/// # Errors
/// [`KpiError::BadQuery`].
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, KpiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        if let Some(n) = d.and_hms_opt(0, 0, 0) {
            return Ok(Utc.from_utc_datetime(&n));
        }
    }
    Err(KpiError::BadQuery(format!(
        "cannot read the time {s:?}: give YYYY-MM-DD or an RFC 3339 time such as 2026-11-22T10:00:00Z"
    )))
}

/// u64 counters are stored as BIGINT (i64): they saturate at i64::MAX, 9.2 EB, which no
/// agreement reaches.
pub(crate) fn to_db(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn from_db(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "a test fails by panicking with the cause"
    )]
    use super::*;

    #[test]
    fn since_subtracts_and_restarts_when_a_counter_goes_down() {
        let base = Traffic {
            forward_packets: 10,
            forward_bytes: 1000,
            reply_packets: 5,
            reply_bytes: 500,
            transactions: 2,
        };
        let now = Traffic {
            forward_packets: 15,
            forward_bytes: 1600,
            reply_packets: 5,
            reply_bytes: 700,
            transactions: 3,
        };
        assert_eq!(
            now.since(&base),
            Traffic {
                forward_packets: 5,
                forward_bytes: 600,
                reply_packets: 0,
                reply_bytes: 200,
                transactions: 1
            }
        );
        let reset = Traffic {
            forward_packets: 3,
            forward_bytes: 300,
            ..Default::default()
        };
        assert_eq!(reset.since(&base), reset);
    }

    #[test]
    fn retention_parses_and_keeps_defaults() {
        let r = Retention::parse("minutes=2d, days=3650d").unwrap();
        assert_eq!(r.minutes, Some(chrono::Duration::days(2)));
        assert_eq!(r.hours, Retention::default().hours);
        assert_eq!(r.days, Some(chrono::Duration::days(3650)));
        assert_eq!(Retention::parse("hours=forever").unwrap().hours, None);
        assert!(Retention::parse("weeks=2d").is_err());
        assert!(Retention::parse("minutes=7").is_err());
    }

    #[test]
    fn buckets_floor_to_their_start() {
        let t = parse_time("2026-11-22T23:47:31.5Z").unwrap();
        assert_eq!(
            time_text(Resolution::Minute.floor(t)),
            "2026-11-22T23:47:00.000000Z"
        );
        assert_eq!(
            time_text(Resolution::Hour.floor(t)),
            "2026-11-22T23:00:00.000000Z"
        );
        assert_eq!(
            time_text(Resolution::Day.floor(t)),
            "2026-11-22T00:00:00.000000Z"
        );
        assert_eq!(
            time_text(Resolution::Month.floor(t)),
            "2026-11-01T00:00:00.000000Z"
        );
    }
}

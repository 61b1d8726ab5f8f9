//! Prometheus text exposition (format 0.0.4) of the running data plane and the router's sync
//! state.
//!
//! - Per agreement: `sdn_agreement_{forward,reply}_{packets,bytes}_total` and
//!   `sdn_agreement_transactions_total`, with one label, `agreement`; its names come in a
//!   separate `sdn_agreement_info` series (value 1), so renaming a client does not start new
//!   counter series. The values are the data plane's own counters (summed over CPUs): they
//!   survive loader restarts; a re-added agreement starts again from zero, which Prometheus
//!   treats as a counter reset.
//! - Every series carries `router` (this router's name), and `sdn_build_info{version}` says
//!   which loader answers.
//! - Reasons: `sdn_drops_total{reason}` and `sdn_passes_total{reason}` (non-IP and
//!   infrastructure traffic are pass reasons: `non-ip`, `infrastructure`).
//! - Sync and provisioning state from the `routers` and `provisioning` tables.
//! - Cardinality guard ([`Cardinality`]): per-agreement series for all agreements, the top N
//!   by bytes, or none; `sdn_agreement_series_omitted` says how many were left out.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{KpiError, Traffic, parse_time, query::AgreementNames, store::KpiStore};
use crate::dataplane::Maps;
use crate::db::RouterStatus;

/// Which agreements get their own series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cardinality {
    /// Every agreement in force.
    All,
    /// The N agreements with the most bytes (both ways, since their counters started).
    Top(usize),
    /// None (only totals per reason, sync state).
    None,
}

impl Cardinality {
    /// Parses `all`, `none` or a number (top N).
    ///
    /// # Errors
    /// [`KpiError::BadQuery`].
    pub fn parse(s: &str) -> Result<Self, KpiError> {
        match s {
            "all" => Ok(Self::All),
            "none" => Ok(Self::None),
            n => n.parse().map(Self::Top).map_err(|_| {
                KpiError::BadQuery(format!(
                    "--metrics-agreements {s:?}: give all, none or a number (the top N by bytes)"
                ))
            }),
        }
    }
}

/// Everything one scrape shows.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// This router's name.
    pub router: String,
    /// Live counters of the agreements in force.
    pub agreements: Vec<(u32, Traffic)>,
    /// (reason, passes, packets) for every reason.
    pub reasons: Vec<(&'static str, bool, u64)>,
    /// Names of agreements (from the database).
    pub names: HashMap<u32, AgreementNames>,
    /// The database's revision.
    pub database_revision: Option<i64>,
    /// This router's sync row.
    pub sync: Option<RouterStatus>,
    /// Agreements per provisioning state, for this router.
    pub provisioning: Vec<(String, i64)>,
    /// Last KPI pass (time, duration in microseconds).
    pub collector: Option<(String, i64)>,
    /// Time of the scrape.
    pub now: DateTime<Utc>,
    /// The pin tree's interfaces and whether the filter is attached there.
    pub interfaces: Vec<crate::dataplane::pins::InterfaceHealth>,
    /// Whether the database could be read for this scrape (`None`: not tried).
    pub database_up: Option<bool>,
    /// How often the SQLite file was found replaced and reopened by this process.
    pub database_reopened: u64,
    /// The HTTP server's connections (`None`: not served over HTTP).
    pub http: Option<crate::kpi::connections::ConnCounts>,
}

/// Reads the data plane's counters into a snapshot.
///
/// # Errors
/// [`KpiError::Dataplane`].
pub fn read_dataplane(maps: &Maps, s: &mut Snapshot) -> Result<(), KpiError> {
    let slots = maps.slots_in_force()?;
    let upto = slots.values().copied().max().map_or(0, |m| m + 1);
    let counters = maps.slot_counters_upto(upto)?;
    s.agreements = slots
        .iter()
        .map(|(&a, &slot)| {
            (
                a,
                counters
                    .get(slot as usize)
                    .copied()
                    .map(Traffic::from)
                    .unwrap_or_default(),
            )
        })
        .collect();
    let reasons = maps.reason_counts()?;
    s.reasons = (0..sdn_common::reason::COUNT)
        .map(|r| {
            (
                sdn_common::reason::name(r),
                sdn_common::reason::passes(r),
                reasons.get(&r).copied().unwrap_or(0),
            )
        })
        .collect();
    Ok(())
}

/// Reads names, sync, provisioning and collector state for `router` from the database.
///
/// # Errors
/// [`KpiError::Sql`].
pub async fn read_database(store: &KpiStore, s: &mut Snapshot) -> Result<(), KpiError> {
    s.names = super::query::agreement_names(store).await?;
    s.database_revision = sqlx::query_scalar("SELECT value FROM revision WHERE id = 1")
        .fetch_optional(&store.pool())
        .await?;
    s.sync = store
        .db()
        .router_statuses()
        .await?
        .into_iter()
        .find(|r| r.name == s.router);
    let rows =
        sqlx::query("SELECT state, COUNT(*) FROM provisioning WHERE router = $1 GROUP BY state")
            .bind(s.router.clone())
            .fetch_all(&store.pool())
            .await?;
    s.provisioning = rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    s.provisioning.sort();
    let row = sqlx::query("SELECT last_pass, pass_us FROM kpi_collector WHERE router = $1")
        .bind(s.router.clone())
        .fetch_optional(&store.pool())
        .await?;
    s.collector = match row {
        Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
        None => None,
    };
    Ok(())
}

/// Escapes a label value (backslash, double quote, line feed).
fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn age(now: DateTime<Utc>, t: Option<&String>) -> Option<f64> {
    let t = parse_time(t?).ok()?;
    Some((now - t).num_milliseconds() as f64 / 1e3)
}

/// Every metric name [`render`] can emit (the Grafana dashboard test checks its queries
/// against this list).
pub const METRIC_NAMES: &[&str] = &[
    "sdn_build_info",
    "sdn_agreement_forward_packets_total",
    "sdn_agreement_forward_bytes_total",
    "sdn_agreement_reply_packets_total",
    "sdn_agreement_reply_bytes_total",
    "sdn_agreement_transactions_total",
    "sdn_agreement_info",
    "sdn_agreement_series_omitted",
    "sdn_agreements_in_force",
    "sdn_drops_total",
    "sdn_passes_total",
    "sdn_interface_attached",
    "sdn_database_revision",
    "sdn_database_up",
    "sdn_database_reopened_total",
    "sdn_sync_applied_revision",
    "sdn_sync_seen_revision",
    "sdn_sync_held_revision",
    "sdn_sync_held",
    "sdn_sync_failed",
    "sdn_sync_state",
    "sdn_sync_last_sync_age_seconds",
    "sdn_sync_last_check_age_seconds",
    "sdn_provisioning_agreements",
    "sdn_kpi_last_pass_age_seconds",
    "sdn_kpi_pass_duration_seconds",
    "sdn_http_connections_open",
    "sdn_http_connections_max",
    "sdn_http_connections_accepted_total",
    "sdn_http_connections_closed_total",
    "sdn_http_requests_timed_out_total",
    "sdn_http_accept_errors_total",
];

/// The agreements that get their own series under `c`, in id order (Zabbix discovery lists
/// the same).
pub fn shown(agreements: &[(u32, Traffic)], c: Cardinality) -> Vec<&(u32, Traffic)> {
    let mut shown: Vec<&(u32, Traffic)> = agreements.iter().collect();
    match c {
        Cardinality::All => {}
        Cardinality::None => shown.clear(),
        Cardinality::Top(n) => {
            shown.sort_by(|a, b| b.1.bytes().cmp(&a.1.bytes()).then(a.0.cmp(&b.0)));
            shown.truncate(n);
            shown.sort_by_key(|a| a.0);
        }
    }
    shown
}

/// A per-agreement counter family: name, help, and the field it shows.
type Family = (&'static str, &'static str, fn(&Traffic) -> u64);

/// Renders a snapshot in the Prometheus text format.
pub fn render(s: &Snapshot, c: Cardinality) -> String {
    let mut out = String::with_capacity(256 + s.agreements.len() * 600);
    // Every series carries the router's name, so that a fleet's dashboards can tell the
    // routers apart whatever the scrape configuration adds.
    let router = label(&s.router);
    family(
        &mut out,
        "sdn_build_info",
        "gauge",
        "The loader's version (value 1).",
    );
    let _ = writeln!(
        out,
        "sdn_build_info{{version=\"{}\",router=\"{router}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    let shown = shown(&s.agreements, c);
    let per: [Family; 5] = [
        (
            "sdn_agreement_forward_packets_total",
            "Packets to the service under the agreement.",
            |t| t.forward_packets,
        ),
        (
            "sdn_agreement_forward_bytes_total",
            "Bytes (whole frames) to the service under the agreement.",
            |t| t.forward_bytes,
        ),
        (
            "sdn_agreement_reply_packets_total",
            "Packets from the service under the agreement.",
            |t| t.reply_packets,
        ),
        (
            "sdn_agreement_reply_bytes_total",
            "Bytes (whole frames) from the service under the agreement.",
            |t| t.reply_bytes,
        ),
        (
            "sdn_agreement_transactions_total",
            "New flows under the agreement.",
            |t| t.transactions,
        ),
    ];
    for (name, help, get) in per {
        family(&mut out, name, "counter", help);
        for (a, t) in &shown {
            let _ = writeln!(
                out,
                "{name}{{agreement=\"{a}\",router=\"{router}\"}} {}",
                get(t)
            );
        }
    }
    family(
        &mut out,
        "sdn_agreement_info",
        "gauge",
        "Names of an agreement (value 1).",
    );
    let none = AgreementNames::default();
    for (a, _) in &shown {
        let n = s.names.get(a).unwrap_or(&none);
        let _ = writeln!(
            out,
            "sdn_agreement_info{{agreement=\"{a}\",client=\"{}\",service=\"{}\",client_organisation=\"{}\",service_organisation=\"{}\",router=\"{router}\"}} 1",
            label(&n.client),
            label(&n.service),
            label(&n.client_organisation),
            label(&n.service_organisation)
        );
    }
    family(
        &mut out,
        "sdn_agreement_series_omitted",
        "gauge",
        "Agreements in force left out of the per-agreement series by the cardinality guard.",
    );
    let _ = writeln!(
        out,
        "sdn_agreement_series_omitted{{router=\"{router}\"}} {}",
        s.agreements.len() - shown.len()
    );
    family(
        &mut out,
        "sdn_agreements_in_force",
        "gauge",
        "Agreements in the policy the data plane enforces.",
    );
    let _ = writeln!(
        out,
        "sdn_agreements_in_force{{router=\"{router}\"}} {}",
        s.agreements.len()
    );
    family(
        &mut out,
        "sdn_drops_total",
        "counter",
        "Dropped packets by reason.",
    );
    for (r, passes, n) in &s.reasons {
        if !passes {
            let _ = writeln!(
                out,
                "sdn_drops_total{{reason=\"{}\",router=\"{router}\"}} {n}",
                label(r)
            );
        }
    }
    family(
        &mut out,
        "sdn_passes_total",
        "counter",
        "Passed packets by reason (non-ip and infrastructure included).",
    );
    for (r, passes, n) in &s.reasons {
        if *passes {
            let _ = writeln!(
                out,
                "sdn_passes_total{{reason=\"{}\",router=\"{router}\"}} {n}",
                label(r)
            );
        }
    }
    family(
        &mut out,
        "sdn_interface_attached",
        "gauge",
        "1 when the filter is attached to the interface, 0 when a configured interface has no \
         program (the filter does not enforce there: alert on 0).",
    );
    for i in &s.interfaces {
        let _ = writeln!(
            out,
            "sdn_interface_attached{{interface=\"{}\",configured=\"{}\",router=\"{router}\"}} {}",
            label(&i.interface),
            i.configured,
            u8::from(i.attached)
        );
    }
    family(
        &mut out,
        "sdn_database_revision",
        "gauge",
        "Revision of the agreement database.",
    );
    if let Some(r) = s.database_revision {
        let _ = writeln!(out, "sdn_database_revision{{router=\"{router}\"}} {r}");
    }
    family(
        &mut out,
        "sdn_database_up",
        "gauge",
        "1 when the agreement database could be read for this scrape, 0 when it could not \
         (unreachable, or its file deleted or replaced by something that is not a database): \
         the data plane keeps the policy in force meanwhile.",
    );
    if let Some(up) = s.database_up {
        let _ = writeln!(
            out,
            "sdn_database_up{{router=\"{router}\"}} {}",
            u8::from(up)
        );
    }
    family(
        &mut out,
        "sdn_database_reopened_total",
        "counter",
        "Times the SQLite file was found deleted or replaced at its path and the new file \
         opened (a restore by mv).",
    );
    let _ = writeln!(
        out,
        "sdn_database_reopened_total{{router=\"{router}\"}} {}",
        s.database_reopened
    );
    render_http(&mut out, s.http.as_ref(), &router);
    let gauge = |out: &mut String, name: &str, help: &str, v: Option<f64>| {
        family(out, name, "gauge", help);
        if let Some(v) = v {
            let _ = writeln!(out, "{name}{{router=\"{router}\"}} {v}");
        }
    };
    let sync = s.sync.clone().unwrap_or_default();
    let f = |v: Option<u64>| v.map(|v| v as f64);
    gauge(
        &mut out,
        "sdn_sync_applied_revision",
        "Revision this router enforces.",
        f(sync.applied_revision),
    );
    gauge(
        &mut out,
        "sdn_sync_seen_revision",
        "Newest revision this router has read.",
        f(sync.seen_revision),
    );
    gauge(
        &mut out,
        "sdn_sync_held_revision",
        "Revision held for confirmation (absent when none).",
        f(sync.held_revision),
    );
    let known = s.sync.is_some();
    gauge(
        &mut out,
        "sdn_sync_held",
        "1 while a revision is held for confirmation.",
        known.then(|| f64::from(u8::from(sync.held_revision.is_some()))),
    );
    gauge(
        &mut out,
        "sdn_sync_failed",
        "1 while the newest revision failed to apply.",
        known.then(|| f64::from(u8::from(sync.state == "failed"))),
    );
    family(
        &mut out,
        "sdn_sync_state",
        "gauge",
        "The router's sync state (value 1).",
    );
    if !sync.state.is_empty() {
        let _ = writeln!(
            out,
            "sdn_sync_state{{router=\"{router}\",state=\"{}\"}} 1",
            label(&sync.state)
        );
    }
    gauge(
        &mut out,
        "sdn_sync_last_sync_age_seconds",
        "Seconds since the router last applied the database.",
        age(s.now, sync.last_sync.as_ref()),
    );
    gauge(
        &mut out,
        "sdn_sync_last_check_age_seconds",
        "Seconds since the router last reached the database.",
        age(s.now, sync.checked_at.as_ref()),
    );
    family(
        &mut out,
        "sdn_provisioning_agreements",
        "gauge",
        "Agreements per provisioning state on this router.",
    );
    for (st, n) in &s.provisioning {
        let _ = writeln!(
            out,
            "sdn_provisioning_agreements{{router=\"{router}\",state=\"{}\"}} {n}",
            label(st)
        );
    }
    let (pass_age, pass_s) = match &s.collector {
        Some((t, us)) => (age(s.now, Some(t)), Some(*us as f64 / 1e6)),
        None => (None, None),
    };
    gauge(
        &mut out,
        "sdn_kpi_last_pass_age_seconds",
        "Seconds since the KPI collector last wrote a pass.",
        pass_age,
    );
    gauge(
        &mut out,
        "sdn_kpi_pass_duration_seconds",
        "Time the last KPI pass took to read the data plane.",
        pass_s,
    );
    out
}

/// The HTTP server's connection families (no samples without a server).
fn render_http(out: &mut String, h: Option<&crate::kpi::connections::ConnCounts>, router: &str) {
    use crate::kpi::connections::CloseReason;
    let one = |out: &mut String, name: &str, kind: &str, help: &str, v: Option<u64>| {
        family(out, name, kind, help);
        if let Some(v) = v {
            let _ = writeln!(out, "{name}{{router=\"{router}\"}} {v}");
        }
    };
    one(
        out,
        "sdn_http_connections_open",
        "gauge",
        "HTTP connections open now.",
        h.map(|h| h.open),
    );
    one(
        out,
        "sdn_http_connections_max",
        "gauge",
        "The HTTP connection cap in force (--http-max-connections, bounded by the file limit).",
        h.map(|h| h.limit),
    );
    one(
        out,
        "sdn_http_connections_accepted_total",
        "counter",
        "HTTP connections accepted.",
        h.map(|h| h.accepted),
    );
    family(
        out,
        "sdn_http_connections_closed_total",
        "counter",
        "HTTP connections the server closed: header-timeout (slow headers), idle-timeout, \
         evicted (an idle one gave its place to a new one at the cap), rejected (503 at the cap).",
    );
    if let Some(h) = h {
        for r in CloseReason::ALL {
            let _ = writeln!(
                out,
                "sdn_http_connections_closed_total{{reason=\"{}\",router=\"{router}\"}} {}",
                r.name(),
                h.closed[r as usize]
            );
        }
    }
    one(
        out,
        "sdn_http_requests_timed_out_total",
        "counter",
        "HTTP requests answered 503 for running longer than --http-request-timeout.",
        h.map(|h| h.requests_timed_out),
    );
    one(
        out,
        "sdn_http_accept_errors_total",
        "counter",
        "Failed accepts (file descriptors exhausted, say): alert when it grows.",
        h.map(|h| h.accept_errors),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn the_guard_keeps_the_top_n_and_counts_the_rest() {
        let t = |b| Traffic {
            forward_bytes: b,
            ..Default::default()
        };
        let s = Snapshot {
            router: "hub-a".into(),
            agreements: vec![(1, t(10)), (2, t(30)), (3, t(20))],
            ..Default::default()
        };
        let text = render(&s, Cardinality::Top(2));
        assert!(
            text.contains("sdn_agreement_forward_bytes_total{agreement=\"2\",router=\"hub-a\"} 30")
        );
        assert!(
            text.contains("sdn_agreement_forward_bytes_total{agreement=\"3\",router=\"hub-a\"} 20")
        );
        assert!(!text.contains("agreement=\"1\""));
        assert!(text.contains("sdn_agreement_series_omitted{router=\"hub-a\"} 1\n"));
        let ids = |c| -> Vec<u32> { shown(&s.agreements, c).iter().map(|a| a.0).collect() };
        assert_eq!(ids(Cardinality::Top(2)), [2, 3]);
        let text = render(&s, Cardinality::None);
        assert!(!text.contains("agreement=\""));
        assert!(text.contains("sdn_agreement_series_omitted{router=\"hub-a\"} 3\n"));
        assert!(ids(Cardinality::None).is_empty());
        assert_eq!(ids(Cardinality::All), [1, 2, 3]);
        assert!(text.contains(&format!(
            "sdn_build_info{{version=\"{}\",router=\"hub-a\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
    }

    #[test]
    fn an_interface_without_the_filter_is_a_zero() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("sdn");
        crate::dataplane::pins::secure_tree(&dir).unwrap();
        crate::dataplane::pins::record_interface(&dir, "eth1").unwrap();
        let s = Snapshot {
            interfaces: crate::dataplane::pins::interface_health(&dir),
            ..Default::default()
        };
        let text = render(&s, Cardinality::All);
        assert!(
            text.contains(
                "sdn_interface_attached{interface=\"eth1\",configured=\"true\",router=\"\"} 0\n"
            ),
            "{text}"
        );
    }
}

//! The read-only status page at `/`: what this router enforces, whether it is in step with
//! the database, what it passes and drops, and its busiest agreements.
//!
//! One HTML document with its style and its one chart (inline SVG) inside: no scripts and
//! nothing fetched from elsewhere, so it works on a router's closed management network and
//! cannot be made to run anything. The browser reloads it every 30 seconds.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::{
    Traffic,
    metrics::Snapshot,
    query::KpiRow,
    report::{esc, human_bytes},
};
use crate::db::time_text;

/// How far back the pass and drop rates look.
pub const RATE_WINDOW_S: i64 = 300;
/// How far back the busiest agreements are ranked.
pub const TOP_WINDOW_H: i64 = 24;
/// How many agreements the chart shows.
pub const TOP_N: usize = 10;

/// What the page shows.
#[derive(Debug, Default)]
pub struct Page {
    /// The scrape's snapshot (sync state, reasons, names, live counters).
    pub snapshot: Snapshot,
    /// Whether the daemon has synced (`None`: not a daemon, `kpi serve`).
    pub ready: Option<bool>,
    /// Packets per reason over the last [`RATE_WINDOW_S`] seconds, from the KPI tables.
    pub recent: BTreeMap<String, u64>,
    /// The busiest agreements over the last [`TOP_WINDOW_H`] hours (rows of a KPI query).
    pub top: Vec<KpiRow>,
}

fn age_text(now: DateTime<Utc>, t: Option<&String>) -> String {
    match t.and_then(|t| super::parse_time(t).ok()) {
        Some(t) => format!("{} s ago", (now - t).num_seconds().max(0)),
        None => "never".to_owned(),
    }
}

/// Sums the rows of a KPI query per agreement, largest first, at most [`TOP_N`].
fn busiest(rows: &[KpiRow]) -> Vec<(String, Traffic)> {
    let mut sum: BTreeMap<&str, Traffic> = BTreeMap::new();
    for r in rows {
        let t = sum.entry(r.key.as_str()).or_default();
        t.forward_packets += r.traffic.forward_packets;
        t.forward_bytes += r.traffic.forward_bytes;
        t.reply_packets += r.traffic.reply_packets;
        t.reply_bytes += r.traffic.reply_bytes;
        t.transactions += r.traffic.transactions;
    }
    let mut v: Vec<(String, Traffic)> = sum.into_iter().map(|(k, t)| (k.to_owned(), t)).collect();
    v.sort_by(|a, b| b.1.bytes().cmp(&a.1.bytes()).then(a.0.cmp(&b.0)));
    v.truncate(TOP_N);
    v
}

/// The page's HTML.
pub fn render(p: &Page) -> String {
    let s = &p.snapshot;
    let sync = s.sync.clone().unwrap_or_default();
    let mut h = String::with_capacity(8192);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"30\">\
         <title>sdn-filter on {router}</title><style>\
         body{{font-family:sans-serif;margin:1.5em;color:#1a202c}}\
         table{{border-collapse:collapse;margin:.5em 0 1.5em}}\
         td,th{{border:1px solid #cbd5e0;padding:.25em .6em;text-align:left}}\
         td.n{{text-align:right;font-variant-numeric:tabular-nums}}\
         .ok{{color:#276749;font-weight:bold}}.bad{{color:#c53030;font-weight:bold}}\
         </style></head><body>\n<h1>sdn-filter on {router}</h1>\n\
         <p>sdn-loader {version}, {now} UTC; this page reloads every 30 s.</p>\n",
        router = esc(&s.router),
        version = env!("CARGO_PKG_VERSION"),
        now = time_text(s.now).get(..19).unwrap_or_default(),
    );
    // Sync state.
    let state_class = if sync.state == "in-sync" { "ok" } else { "bad" };
    let in_force = if s.agreements.is_empty() {
        sync.agreements.unwrap_or(0)
    } else {
        s.agreements.len() as u64
    };
    let rev = |r: Option<u64>| r.map_or_else(|| "none".to_owned(), |r| r.to_string());
    let _ = write!(
        h,
        "<h2>Policy</h2>\n<table id=\"sync\">\
         <tr><th>Agreements in force</th><td class=\"n\" id=\"in-force\">{in_force}</td></tr>\
         <tr><th>Sync state</th><td id=\"sync-state\" class=\"{state_class}\">{state}</td></tr>\
         <tr><th>Revision in force</th><td class=\"n\">{applied}</td></tr>\
         <tr><th>Newest revision read</th><td class=\"n\">{seen}</td></tr>\
         <tr><th>Held revision</th><td id=\"held\">{held}</td></tr>\
         <tr><th>Last applied</th><td>{last_sync}</td></tr>\
         <tr><th>Last reached the database</th><td>{checked}</td></tr>\
         <tr><th>Database</th><td class=\"{db_class}\">{db}</td></tr>",
        state = esc(if sync.state.is_empty() {
            "unknown"
        } else {
            &sync.state
        }),
        applied = rev(sync.applied_revision),
        seen = rev(sync.seen_revision),
        held = match (sync.held_revision, &sync.error) {
            (Some(r), Some(e)) => format!(
                "<span class=\"bad\">{r}</span>: {}; <code>sdn-loader confirm {r}</code> puts it in force",
                esc(e)
            ),
            (Some(r), None) => format!("<span class=\"bad\">{r}</span>"),
            (None, _) => "none".to_owned(),
        },
        last_sync = age_text(s.now, sync.last_sync.as_ref()),
        checked = age_text(s.now, sync.checked_at.as_ref()),
        db_class = if s.database_up == Some(false) {
            "bad"
        } else {
            "ok"
        },
        db = match s.database_up {
            Some(true) => "reachable",
            Some(false) => "unreachable: the policy in force stays",
            None => "not read",
        },
    );
    if let Some(ready) = p.ready {
        let _ = write!(
            h,
            "<tr><th>Daemon</th><td class=\"{}\">{}</td></tr>",
            if ready { "ok" } else { "bad" },
            if ready {
                "ready (synced since start)"
            } else {
                "starting: no sync has succeeded yet"
            }
        );
    }
    h.push_str("</table>\n");
    for i in s.interfaces.iter().filter(|i| i.configured && !i.attached) {
        let _ = writeln!(
            h,
            "<p class=\"bad\">Interface {} is configured but has no filter attached: it does not enforce.</p>",
            esc(&i.interface)
        );
    }
    // Pass and drop rates.
    let _ = write!(
        h,
        "<h2>Passes and drops</h2>\n<table id=\"reasons\"><tr><th>Reason</th><th>Verdict</th>\
         <th>Packets/s (last {} min)</th><th>Packets since start</th></tr>",
        RATE_WINDOW_S / 60
    );
    // Every reason that counted something, live (the data plane) or recently (the KPIs).
    for r in 0..sdn_common::reason::COUNT {
        let (reason, passes) = (sdn_common::reason::name(r), sdn_common::reason::passes(r));
        let total = (s.reasons.iter()).find(|x| x.0 == reason).map(|x| x.2);
        let recent = p.recent.get(reason).copied().unwrap_or(0);
        if total.unwrap_or(0) == 0 && recent == 0 {
            continue;
        }
        let _ = write!(
            h,
            "<tr id=\"reason-{reason}\"><td>{reason}</td><td class=\"{}\">{}</td><td class=\"n\">{:.1}</td><td class=\"n\">{}</td></tr>",
            if passes { "ok" } else { "bad" },
            if passes { "pass" } else { "drop" },
            recent as f64 / RATE_WINDOW_S as f64,
            total.map_or_else(|| "-".to_owned(), |t| t.to_string()),
        );
    }
    h.push_str("</table>\n");
    // The busiest agreements, as bars.
    let top = busiest(&p.top);
    let _ = writeln!(
        h,
        "<h2>Busiest agreements (last {TOP_WINDOW_H} h, bytes both ways)</h2>"
    );
    if top.is_empty() {
        h.push_str("<p id=\"no-traffic\">No agreement carried traffic in this time.</p>\n");
    } else {
        let most = top.first().map_or(1, |t| t.1.bytes().max(1));
        let (bar_w, row_h) = (420.0, 22);
        let height = top.len() * row_h + 4;
        let _ = write!(
            h,
            "<svg id=\"top\" width=\"900\" height=\"{height}\" role=\"img\" aria-label=\"busiest agreements\">"
        );
        for (i, (key, t)) in top.iter().enumerate() {
            let y = i * row_h + 2;
            let names = key
                .parse::<u32>()
                .ok()
                .and_then(|id| s.names.get(&id))
                .map(|n| format!(" {} \u{2192} {}", n.client, n.service))
                .unwrap_or_default();
            let w = (t.bytes() as f64 / most as f64 * bar_w).max(1.0);
            let _ = write!(
                h,
                "<text x=\"0\" y=\"{ty}\" font-size=\"13\">{label}</text>\
                 <rect class=\"bar\" x=\"330\" y=\"{y}\" width=\"{w:.1}\" height=\"{bh}\" fill=\"#2b6cb0\"/>\
                 <text x=\"{tx:.1}\" y=\"{ty}\" font-size=\"13\">{bytes}</text>",
                ty = y + 15,
                label = esc(&format!("{key}{names}")),
                bh = row_h - 6,
                tx = 336.0 + w,
                bytes = human_bytes(t.bytes()),
            );
        }
        h.push_str("</svg>\n");
    }
    h.push_str(
        "<p>Machine-readable: <a href=\"/metrics\">/metrics</a>, <a href=\"/api/v1/\">/api/v1/</a>, \
         <a href=\"/healthz\">/healthz</a>.</p>\n</body></html>\n",
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_bytes_are_readable() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500), "1.5 kB");
        assert_eq!(human_bytes(2_345_000_000), "2.3 GB");
    }

    #[test]
    fn the_busiest_are_summed_over_buckets_and_ranked() {
        let row = |key: &str, b| KpiRow {
            bucket: String::new(),
            key: key.to_owned(),
            traffic: Traffic {
                forward_bytes: b,
                ..Traffic::default()
            },
        };
        let rows = [row("1", 10), row("2", 15), row("1", 10)];
        let top = busiest(&rows);
        assert_eq!(
            top.iter()
                .map(|(k, t)| (k.as_str(), t.bytes()))
                .collect::<Vec<_>>(),
            [("1", 20), ("2", 15)]
        );
    }
}

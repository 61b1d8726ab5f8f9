//! `sdn-loader kpi report --html FILE`: one self-contained HTML page (inline CSS and SVG, no
//! scripts, no external resources) with traffic per agreement over time, the top agreements,
//! drops by reason, sync health and the monthly table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::{
    KpiError, Resolution, Traffic,
    query::{self, Group, Query, Rank},
    store::KpiStore,
};

/// Colours of the series (colour-blind safe palette, Okabe-Ito).
const COLOURS: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
];

/// Escapes text for HTML (element content and quoted attributes).
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Bytes with a unit (decimal: kB, MB, GB, TB).
pub fn human_bytes(b: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// A time as a reader wants it in a report: to the minute, UTC.
fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Every bucket start in `[from, to)`, idle ones included (so that a line drops to zero
/// across them instead of ramping over), at most `most`.
pub fn bucket_starts(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket: Resolution,
    most: usize,
) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut t = bucket.floor(from);
    while t < to && out.len() < most {
        out.push(t);
        t = bucket.next(t);
    }
    out
}

/// At most this many buckets are drawn (a week of minutes); a longer range is cut at its end.
const MOST_BUCKETS: usize = 7 * 24 * 60;

/// A line chart: one polyline per series over the shared x positions (bucket starts), with
/// a dot on every bucket that carried traffic, so that one busy bucket still shows.
fn line_chart(title: &str, buckets: &[DateTime<Utc>], series: &[(String, Vec<u64>)]) -> String {
    let (w, h, left, bottom, top, right) = (900.0, 300.0, 80.0, 40.0, 30.0, 170.0);
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let n = buckets.len().max(2) as f64;
    let x = |i: usize| left + (w - left - right) * i as f64 / (n - 1.0);
    let y = |v: u64| top + (h - top - bottom) * (1.0 - v as f64 / max);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<figure><figcaption>{}</figcaption><svg role="img" aria-label="{}" viewBox="0 0 {w} {h}" width="{w}" height="{h}">"#,
        esc(title),
        esc(title)
    );
    // Axes and grid.
    for k in 0..=4 {
        let v = (max * f64::from(k) / 4.0) as u64;
        let yy = y(v);
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end" font-size="11">{}</text>"##,
            w - right,
            left - 6.0,
            yy + 4.0,
            esc(&human_bytes(v))
        );
    }
    let step = (buckets.len() / 6).max(1);
    for (i, b) in buckets.iter().enumerate().step_by(step) {
        let label = b.format("%m-%d %H:%M").to_string();
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle" font-size="11">{}</text>"#,
            x(i),
            h - bottom + 16.0,
            esc(&label)
        );
    }
    for (k, (name, values)) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        for (i, v) in values.iter().enumerate().filter(|(_, v)| **v > 0) {
            let _ = write!(
                s,
                r#"<circle class="point" cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                x(i),
                y(*v)
            );
        }
        let ly = top + 16.0 * k as f64;
        let _ = write!(
            s,
            r#"<rect x="{}" y="{:.1}" width="12" height="12" fill="{colour}"/><text x="{}" y="{:.1}" font-size="12">{}</text>"#,
            w - right + 10.0,
            ly,
            w - right + 28.0,
            ly + 10.0,
            esc(name)
        );
    }
    s.push_str("</svg></figure>");
    s
}

/// A horizontal bar chart.
fn bar_chart(title: &str, bars: &[(String, u64, String)]) -> String {
    let (w, row, left) = (900.0, 24.0, 220.0);
    let h = 20.0 + row * bars.len().max(1) as f64;
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<figure><figcaption>{}</figcaption><svg role="img" aria-label="{}" viewBox="0 0 {w} {h}" width="{w}" height="{h}">"#,
        esc(title),
        esc(title)
    );
    if bars.is_empty() {
        s.push_str(r#"<text x="10" y="20" font-size="13">no data in this range</text>"#);
    }
    for (i, (name, v, label)) in bars.iter().enumerate() {
        let yy = 10.0 + row * i as f64;
        let bw = (w - left - 120.0) * (*v as f64) / max;
        let _ = write!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end" font-size="12">{}</text><rect x="{left}" y="{:.1}" width="{bw:.1}" height="{}" fill="{}"/><text x="{:.1}" y="{:.1}" font-size="12">{}</text>"#,
            left - 8.0,
            yy + 14.0,
            esc(name),
            yy + 2.0,
            row - 6.0,
            COLOURS[i % COLOURS.len()],
            left + bw + 6.0,
            yy + 14.0,
            esc(label)
        );
    }
    s.push_str("</svg></figure>");
    s
}

/// Builds the report page for `[from, to)` in `bucket`s.
///
/// # Errors
/// [`KpiError`].
pub async fn html(
    store: &KpiStore,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket: Resolution,
) -> Result<String, KpiError> {
    let q = Query {
        from,
        to,
        bucket,
        group: Group::Agreement,
        agreement: None,
        service: None,
        client: None,
        organisation: None,
        router: None,
        top: Some(8),
        rank: Rank::Bytes,
    };
    let top = query::run(store, &q).await?;
    let total = query::run(
        store,
        &Query {
            group: Group::Total,
            top: None,
            ..q.clone()
        },
    )
    .await?;
    let names = query::agreement_names(store).await?;
    // Buckets on the x axis: every bucket of the range, idle ones at zero.
    let buckets = bucket_starts(from, to, bucket, MOST_BUCKETS);
    let index: BTreeMap<DateTime<Utc>, usize> =
        buckets.iter().enumerate().map(|(i, b)| (*b, i)).collect();
    let mut per: BTreeMap<String, (Vec<u64>, Traffic)> = BTreeMap::new();
    for r in &top.rows {
        let e = per
            .entry(r.key.clone())
            .or_insert_with(|| (vec![0; buckets.len()], Traffic::default()));
        if let Some(&i) = super::parse_time(&r.bucket)
            .ok()
            .and_then(|b| index.get(&b))
        {
            e.0[i] += r.traffic.bytes();
        }
        e.1.add(&r.traffic);
    }
    let label = |key: &str| {
        key.parse::<u32>()
            .ok()
            .and_then(|id| names.get(&id))
            .map_or_else(
                || key.to_owned(),
                |n| format!("{key} {}→{}", n.client, n.service),
            )
    };
    let mut ranked: Vec<(String, Vec<u64>, Traffic)> =
        per.into_iter().map(|(k, (v, t))| (k, v, t)).collect();
    ranked.sort_by(|a, b| b.2.bytes().cmp(&a.2.bytes()).then(a.0.cmp(&b.0)));
    let series: Vec<(String, Vec<u64>)> = ranked
        .iter()
        .map(|(k, v, _)| (label(k), v.clone()))
        .collect();
    let bars: Vec<(String, u64, String)> = ranked
        .iter()
        .map(|(k, _, t)| {
            (
                label(k),
                t.bytes(),
                format!("{} · {} tx", human_bytes(t.bytes()), t.transactions),
            )
        })
        .collect();
    let reasons = query::reasons(store, from, to, bucket, None).await?;
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    for (_, r, n) in &reasons {
        *by_reason.entry(r.clone()).or_default() += n;
    }
    let drops: Vec<(String, u64, String)> = (0..sdn_common::reason::COUNT)
        .filter(|r| !sdn_common::reason::passes(*r))
        .map(sdn_common::reason::name)
        .filter_map(|r| {
            by_reason
                .get(r)
                .filter(|n| **n > 0)
                .map(|n| (r.to_owned(), *n, format!("{n} packets")))
        })
        .collect();
    let grand = total.rows.iter().fold(Traffic::default(), |mut a, r| {
        a.add(&r.traffic);
        a
    });
    let monthly = query::monthly(store, from, to, None).await?;
    let routers = store.db().router_statuses().await?;

    let mut page = String::new();
    let _ = write!(
        page,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>sdn-filter traffic report</title><style>
body{{font-family:system-ui,sans-serif;margin:24px;color:#222}} h1{{font-size:22px}} h2{{font-size:17px;margin-top:28px}}
figure{{margin:8px 0}} figcaption{{font-weight:600;margin-bottom:4px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}} th{{background:#f3f3f3}} td:first-child{{text-align:left}}
.summary span{{display:inline-block;margin-right:28px}}
</style></head><body><h1>sdn-filter traffic report</h1>
<p>{} to {} in {} buckets; generated {}.</p>
<p class="summary"><span><b>{}</b> both ways</span><span><b>{}</b> transactions</span><span><b>{}</b> packets</span></p>"#,
        esc(&when(from)),
        esc(&when(to)),
        bucket.name(),
        esc(&when(Utc::now())),
        esc(&human_bytes(grand.bytes())),
        grand.transactions,
        grand.packets()
    );
    page.push_str("<h2>Traffic per agreement over time (top 8 by bytes)</h2>");
    page.push_str(&line_chart("Bytes per bucket", &buckets, &series));
    page.push_str("<h2>Top agreements</h2>");
    page.push_str(&bar_chart("Bytes both ways, whole range", &bars));
    page.push_str("<h2>Drops by reason</h2>");
    page.push_str(&bar_chart("Dropped packets, whole range", &drops));
    page.push_str("<h2>Sync health</h2><table><tr><th>router</th><th>state</th><th>applied revision</th><th>held revision</th><th>last sync</th><th>last contact</th></tr>");
    let mut rows: Vec<[String; 6]> = Vec::new();
    for r in &routers {
        let opt_i = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        let opt_s = |v: &Option<String>| {
            (v.as_deref()).map_or_else(
                || "-".to_owned(),
                |t| super::parse_time(t).map_or_else(|_| t.to_owned(), when),
            )
        };
        // A row without a state (never written by this version) shows "-" as before.
        let state = if r.state.is_empty() {
            "-".to_owned()
        } else {
            r.state.clone()
        };
        rows.push([
            r.name.clone(),
            state,
            opt_i(r.applied_revision),
            opt_i(r.held_revision),
            opt_s(&r.last_sync),
            opt_s(&r.checked_at),
        ]);
    }
    rows.sort();
    if rows.is_empty() {
        page.push_str(r#"<tr><td colspan="6">no router has synced from this database</td></tr>"#);
    }
    for r in &rows {
        page.push_str("<tr>");
        for c in r {
            let _ = write!(page, "<td>{}</td>", esc(c));
        }
        page.push_str("</tr>");
    }
    page.push_str("</table><h2>Monthly traffic per organisation</h2><table><tr><th>month</th><th>organisation</th><th>as client</th><th>as service</th><th>transactions as client</th></tr>");
    // Bytes with a unit that fits each figure ("12.3 MB", not "0.000 GB").
    let gb = |v: f64| human_bytes((v * 1e9).round() as u64);
    for m in &monthly.months {
        for o in &m.organisations {
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(m.month.get(..7).unwrap_or(&m.month)),
                esc(&o.organisation),
                esc(&gb(o.as_client_gb)),
                esc(&gb(o.as_service_gb)),
                o.transactions
            );
        }
    }
    page.push_str("</table></body></html>\n");
    Ok(page)
}

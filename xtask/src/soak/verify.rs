//! The soak's checks and its figures table, from everything a run collected.

use std::{collections::BTreeMap, fmt::Write as _};

use serde_json::Value;

use super::{
    Check, PING4, PING6, SoakArgs, TCP,
    checkpoint::{Checkpoint, Counters},
    faults::{GuardLog, Windows},
    http::{self, ClientResult, Outcome as HttpOutcome},
    logs::Logs,
    ping::PingResult,
    traffic::{TcpResult, UNTAGGED_FRAME},
    vlan::TAGGED_FRAME,
    writers::{self, Agr, Outcome, Record},
};

/// Everything one run collected.
pub(crate) struct Collected {
    pub(crate) seed: u64,
    pub(crate) args: SoakArgs,
    pub(crate) fault_name: &'static str,
    pub(crate) load_s: f64,
    pub(crate) total_s: f64,
    pub(crate) stop_reason: &'static str,
    pub(crate) pings: Vec<PingResult>,
    pub(crate) tcp: TcpResult,
    /// Client and service namespace counters before and after the traffic.
    pub(crate) snmp_before: [BTreeMap<String, u64>; 2],
    pub(crate) snmp_after: [BTreeMap<String, u64>; 2],
    /// Probes that came through the filter per pool agreement: (untagged datagrams at the
    /// service, tagged frames at the tap).
    pub(crate) probes_through: BTreeMap<u32, (u64, u64)>,
    pub(crate) http: Vec<ClientResult>,
    pub(crate) records: Vec<Record>,
    pub(crate) initial: BTreeMap<u32, Agr>,
    pub(crate) last: BTreeMap<u32, Agr>,
    pub(crate) audit: Vec<Value>,
    pub(crate) revision: u64,
    /// `stats --json` after the traffic stopped.
    pub(crate) live: BTreeMap<u32, Counters>,
    /// KPI totals after the daemon's clean stop (its last collection pass).
    pub(crate) kpi: BTreeMap<u32, Counters>,
    /// `/metrics` after the traffic stopped.
    pub(crate) metrics: Option<BTreeMap<u32, Counters>>,
    pub(crate) clean_stop: bool,
    pub(crate) checkpoints: Vec<Checkpoint>,
    pub(crate) final_cp: Checkpoint,
    pub(crate) windows: Windows,
    pub(crate) guard: GuardLog,
    pub(crate) logs: Logs,
    pub(crate) guard_on: bool,
}

fn delta(c: &Collected, side: usize, name: &str) -> u64 {
    let get = |m: &BTreeMap<String, u64>| m.get(name).copied().unwrap_or(0);
    get(&c.snmp_after[side]).saturating_sub(get(&c.snmp_before[side]))
}

fn pct(v: &mut Vec<f64>, p: f64) -> f64 {
    let mut f: Vec<f32> = v.iter().map(|x| *x as f32).collect();
    v.clear();
    f64::from(http::percentile(&mut f, p))
}

/// The checks and the figures table.
#[allow(clippy::too_many_lines, reason = "one table, one check after another")]
pub(crate) fn evaluate(c: &Collected) -> (Vec<Check>, String) {
    let mut checks = Vec::new();
    let mut fig = String::new();
    let w = &c.windows;
    let _ = writeln!(
        fig,
        "\n== soak figures (seed {}; rerun with --seed {} --minutes {})",
        c.seed, c.seed, c.args.minutes
    );
    let row = |fig: &mut String, k: &str, v: String| {
        let _ = writeln!(fig, "  {k:<44} {v}");
    };
    row(
        &mut fig,
        "duration: load / whole run",
        format!(
            "{:.1} s / {:.1} s (load ended by {})",
            c.load_s, c.total_s, c.stop_reason
        ),
    );

    // Sentinel pings.
    for (p, (id, name)) in c.pings.iter().zip([(PING4, "IPv4"), (PING6, "IPv6")]) {
        let (mut restart, mut outage, mut other) = (0, 0, 0);
        for t in &p.lost_at {
            if w.loader_down(*t, 0.5) {
                restart += 1;
            } else if w.db_away(*t, 0.5) {
                outage += 1;
            } else {
                other += 1;
            }
        }
        row(
            &mut fig,
            &format!("ping {name} (agreement {id}), {} pps", c.args.ping_rate),
            format!(
                "sent {} received {} lost {} (in restart windows {restart}, in DB outages {outage}, elsewhere {other}); duplicates {}; longest gap {:.1} ms",
                p.sent,
                p.received,
                p.lost_at.len(),
                p.duplicates,
                p.max_gap_ms
            ),
        );
        checks.push(Check::new(
            &format!("sentinel ping {name}: no echo lost (restarts and outages included)"),
            p.lost_at.is_empty() && p.sent > 0,
            format!("{} of {} lost", p.lost_at.len(), p.sent),
        ));
        let counted = c.live.get(&id).copied().unwrap_or_default();
        let want = [
            p.sent,
            p.sent * p.frame_bytes,
            p.received + p.duplicates,
            (p.received + p.duplicates) * p.frame_bytes,
            1,
        ];
        checks.push(Check::new(
            &format!("agreement {id} counters = ping {name} packets and bytes, 1 transaction"),
            counted == want,
            format!("counted {counted:?}, sent/received {want:?}"),
        ));
    }

    // TCP.
    let t = &c.tcp;
    let segs = |side| delta(c, side, "Tcp.OutSegs") + delta(c, side, "Tcp.RetransSegs");
    let (c_out, s_out) = (segs(0), segs(1));
    let (c_in, s_in) = (delta(c, 0, "Tcp.InSegs"), delta(c, 1, "Tcp.InSegs"));
    let retrans = delta(c, 0, "Tcp.RetransSegs") + delta(c, 1, "Tcp.RetransSegs");
    row(
        &mut fig,
        &format!("TCP stream (agreement {TCP}), {} B/s", c.args.tcp_rate),
        format!(
            "sent {} B, received intact {} B, breaks {}, longest stall {:.0} ms",
            t.stream_sent,
            t.stream_received,
            t.stream_breaks.len(),
            t.stream_max_stall_ms
        ),
    );
    row(
        &mut fig,
        "TCP short transfers (16 KiB each)",
        format!("{} tried, {} failed", t.short_tried, t.short_failed.len()),
    );
    row(
        &mut fig,
        "TCP segments client->service / service->client",
        format!(
            "sent {c_out} received {s_in} / sent {s_out} received {c_in}; retransmissions {retrans}"
        ),
    );
    checks.push(Check::new(
        "sentinel TCP: every byte delivered, no connection broke or failed",
        t.stream_sent > 0
            && t.stream_sent == t.stream_received
            && t.stream_breaks.is_empty()
            && t.short_failed.is_empty(),
        format!(
            "stream {}/{} B, breaks {:?}, failed transfers {:?}",
            t.stream_received,
            t.stream_sent,
            t.stream_breaks.first(),
            t.short_failed.first()
        ),
    ));
    checks.push(Check::new(
        "sentinel TCP: no segment lost in the hub (each side received what the other sent)",
        c_out == s_in && s_out == c_in,
        format!("client sent {c_out}, service received {s_in}; service sent {s_out}, client received {c_in}"),
    ));
    let counted = c.live.get(&TCP).copied().unwrap_or_default();
    let (reused, unsure) = t.port_reuse();
    let (lo, hi) = (
        t.connections.saturating_sub(reused + unsure),
        t.connections.saturating_sub(reused),
    );
    checks.push(Check::new(
        &format!("agreement {TCP} counters = TCP segments each way, a transaction per new flow"),
        counted[0] == c_out && counted[2] == s_out && (lo..=hi).contains(&counted[4]),
        format!(
            "counted forward {} reply {} transactions {}; sent {c_out} / {s_out}; {} connections, \
             {reused} of them on a source port whose flow was still in the flow table ({unsure} at the 120 s edge)",
            counted[0], counted[2], counted[4], t.connections
        ),
    ));

    // KPIs and /metrics against the counters.
    let mut kpi_diff = Vec::new();
    for id in [PING4, PING6, TCP] {
        let (k, l) = (
            c.kpi.get(&id).copied().unwrap_or_default(),
            c.live.get(&id).copied().unwrap_or_default(),
        );
        if k != l {
            kpi_diff.push(format!("{id}: KPI {k:?} counters {l:?}"));
        }
    }
    checks.push(Check::new(
        "KPI totals = pinned counters for the sentinels (after the daemon's clean stop)",
        kpi_diff.is_empty() && c.clean_stop,
        if kpi_diff.is_empty() {
            format!(
                "3 agreements x 5 counters equal; clean stop {}",
                c.clean_stop
            )
        } else {
            kpi_diff.join("; ")
        },
    ));
    let mut pool_diff = Vec::new();
    for (id, (untagged, tagged)) in &c.probes_through {
        let k = c.kpi.get(id).copied().unwrap_or_default();
        let want = [
            untagged + tagged,
            untagged * UNTAGGED_FRAME + tagged * TAGGED_FRAME,
            0,
            0,
        ];
        if k[..4] != want {
            pool_diff.push(format!("{id}: KPI {:?}, probes through {want:?}", &k[..4]));
        }
    }
    let (untagged, tagged) = c
        .probes_through
        .values()
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    row(
        &mut fig,
        "pool probes through the filter",
        format!("{untagged} untagged (at the service), {tagged} tagged (at the tap)"),
    );
    checks.push(Check::new(
        "KPI totals of the pool agreements = probes through the filter (slots churned, restarts)",
        pool_diff.is_empty(),
        if pool_diff.is_empty() {
            format!(
                "{} agreements, {} probes",
                c.probes_through.len(),
                untagged + tagged
            )
        } else {
            pool_diff.join("; ")
        },
    ));
    let metrics_ok = c.metrics.as_ref().is_some_and(|m| {
        [PING4, PING6, TCP]
            .iter()
            .all(|id| m.get(id) == c.live.get(id))
    });
    checks.push(Check::new(
        "/metrics per-agreement series = pinned counters (sentinels)",
        metrics_ok,
        format!(
            "{:?}",
            c.metrics
                .as_ref()
                .map(|m| [PING4, PING6, TCP].map(|i| m.get(&i).copied()))
        ),
    ));

    // Changes.
    let count = |f: fn(&Outcome) -> bool| c.records.iter().filter(|r| f(&r.outcome)).count();
    let committed = count(|o| matches!(o, Outcome::Committed(_)));
    let nochange = count(|o| matches!(o, Outcome::NoChange(_)));
    let refused = count(|o| matches!(o, Outcome::Refused(_)));
    let unavailable = count(|o| matches!(o, Outcome::Unavailable(_)));
    let errors = count(|o| matches!(o, Outcome::Error(_)));
    let in_outage = |r: &Record| w.db_away_during(r.t_start, r.t_end, 0.5);
    let unexpected: Vec<String> = c
        .records
        .iter()
        .filter(|r| match &r.outcome {
            Outcome::Error(_) | Outcome::Unavailable(_) => !in_outage(r),
            _ => false,
        })
        .map(|r| format!("{} at {:.1} s: {:?}", r.request_id, r.t_start, r.outcome))
        .collect();
    row(
        &mut fig,
        &format!("changes by {} writers", c.args.writers),
        format!(
            "{} attempted: {committed} committed, {nochange} no change, {refused} refused by the lifecycle, {unavailable} database away, {errors} other errors",
            c.records.len()
        ),
    );
    for (what, f) in [
        (
            "  e.g. refused",
            (|o| matches!(o, Outcome::Refused(_))) as fn(&Outcome) -> bool,
        ),
        ("  e.g. database away", |o| {
            matches!(o, Outcome::Unavailable(_))
        }),
        ("  e.g. other error", |o| matches!(o, Outcome::Error(_))),
    ] {
        if let Some(m) = c
            .records
            .iter()
            .find(|r| f(&r.outcome))
            .and_then(|r| r.outcome.message())
        {
            row(&mut fig, what, m.chars().take(110).collect());
        }
    }
    row(
        &mut fig,
        "database revision at the end",
        format!("{} (1 = the import)", c.revision),
    );
    checks.push(Check::new(
        "writers: every failure falls in a database outage",
        unexpected.is_empty(),
        unexpected
            .first()
            .cloned()
            .unwrap_or_else(|| format!("{} failures, all in outages", unavailable + errors)),
    ));
    checks.extend(writers::verify(
        &c.records, &c.initial, &c.last, &c.audit, c.revision,
    ));

    // Enforcement.
    let (mut lat, mut clean) = (Vec::new(), Vec::new());
    let mut never = Vec::new();
    for r in &c.records {
        let Outcome::Committed(n) = r.outcome else {
            continue;
        };
        match c
            .logs
            .applied
            .iter()
            .find(|(t, a)| *a >= n && *t >= r.t_start - 0.05)
        {
            Some((t, _)) => {
                let l = (t - r.t_end).max(0.0);
                lat.push(l);
                // Clean: no hold, restart or outage between the commit and its enforcement.
                if !w.overlaps(r.t_start, *t)
                    && !c.logs.holds.iter().any(|(h, _)| *h >= r.t_start && h <= t)
                {
                    clean.push(l);
                }
            }
            None => never.push(n),
        }
    }
    for (what, v) in [
        ("commit -> enforced, every change", &lat),
        ("commit -> enforced, no hold/restart/outage", &clean),
    ] {
        let max = v.iter().copied().fold(0.0, f64::max);
        let (p50, p99) = (pct(&mut v.clone(), 50.0), pct(&mut v.clone(), 99.0));
        row(
            &mut fig,
            what,
            format!(
                "p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms over {} changes",
                p50 * 1000.0,
                p99 * 1000.0,
                max * 1000.0,
                v.len()
            ),
        );
    }
    checks.push(Check::new(
        "every committed revision was enforced (the daemon applied it or a later one)",
        never.is_empty() && c.logs.applied.last().map(|a| a.1) == Some(c.revision),
        format!(
            "not enforced: {never:?}; last applied {:?}, database {}",
            c.logs.applied.last(),
            c.revision
        ),
    ));
    let back: Vec<String> = c
        .logs
        .applied
        .windows(2)
        .filter(|p| p[1].1 < p[0].1)
        .map(|p| format!("r{} at {:.1} s after r{}", p[1].1, p[1].0, p[0].1))
        .collect();
    let http_back = c
        .http
        .iter()
        .flat_map(|h| h.applied.windows(2))
        .filter(|p| p[1].1 < p[0].1)
        .count();
    checks.push(Check::new(
        "the applied revision never went back (daemon logs, /metrics)",
        back.is_empty() && http_back == 0,
        format!(
            "{} applies; back in the logs: {back:?}; back in /metrics: {http_back}",
            c.logs.applied.len()
        ),
    ));
    let all_cp: Vec<&Checkpoint> = c.checkpoints.iter().chain([&c.final_cp]).collect();
    let bad_cp: Vec<String> = all_cp
        .iter()
        .filter(|cp| cp.settled.is_none() || !cp.mismatches.is_empty())
        .map(|cp| {
            format!(
                "at {:.1} s r{}: settled {:?}, {:?}",
                cp.t, cp.revision, cp.settled, cp.mismatches
            )
        })
        .collect();
    let settle: Vec<f64> = all_cp.iter().filter_map(|cp| cp.settled).collect();
    row(
        &mut fig,
        "checkpoints (writers and faults paused)",
        format!(
            "{}, probes {} ({} to pass), settle max {:.2} s, KPI lag of agreement 1 at checkpoints max {} packets",
            all_cp.len(),
            all_cp.iter().map(|cp| cp.probed).sum::<usize>(),
            all_cp.iter().map(|cp| cp.passing).sum::<usize>(),
            settle.iter().copied().fold(0.0, f64::max),
            all_cp.iter().map(|cp| cp.kpi_lag).max().unwrap_or(0)
        ),
    );
    checks.push(Check::new(
        "at every checkpoint the database's revision was in force and each pool agreement's probe matched its state",
        bad_cp.is_empty() && c.final_cp.revision == c.revision,
        bad_cp.first().cloned().unwrap_or_else(|| format!("{} checkpoints", all_cp.len())),
    ));
    let counter_errors: Vec<String> = all_cp
        .iter()
        .flat_map(|cp| {
            cp.counter_errors
                .iter()
                .map(move |e| format!("at {:.1} s r{}: {e}", cp.t, cp.revision))
        })
        .collect();
    checks.push(Check::new(
        "pool counters at checkpoints: each probe through counted to its agreement, no agreement holding counts not its own",
        counter_errors.is_empty(),
        counter_errors.first().cloned().map_or_else(
            || "every round exact".to_owned(),
            |e| format!("{e} (and {} more)", counter_errors.len() - 1),
        ),
    ));
    let ahead: Vec<&String> = all_cp.iter().flat_map(|cp| &cp.kpi_ahead).collect();
    checks.push(Check::new(
        "KPI totals never ahead of the counters at checkpoints (no double counting)",
        ahead.is_empty(),
        format!("{ahead:?}"),
    ));

    // Faults.
    let r = &w.restarts;
    let down: Vec<f64> = r
        .iter()
        .filter_map(|x| x.attached.map(|a| a - x.killed))
        .collect();
    row(
        &mut fig,
        "loader kill -9 and restart",
        format!(
            "{} ({} while the database was away), {} daemon runs; down (killed -> started) {:.1} s in all; killed -> re-attached max {:.2} s, killed -> HTTP up max {:.2} s",
            r.len(),
            r.iter().filter(|x| x.db_away).count(),
            c.logs.runs,
            r.iter().map(|x| x.spawned - x.killed).sum::<f64>(),
            down.iter().copied().fold(0.0, f64::max),
            r.iter()
                .filter_map(|x| x.http_up.map(|h| h - x.killed))
                .fold(0.0, f64::max)
        ),
    );
    let outage: Vec<f64> = w.db_down.iter().map(|(a, b)| b - a).collect();
    row(
        &mut fig,
        &format!("database outages ({})", c.fault_name),
        format!(
            "{}, {:.1} s in all, longest {:.1} s; daemon logged a failed database read {} times",
            outage.len(),
            outage.iter().sum::<f64>(),
            outage.iter().copied().fold(0.0, f64::max),
            c.logs.unreachable
        ),
    );
    checks.push(Check::new(
        "every fault was made and recovered from (restart re-attached and served HTTP)",
        w.problems.is_empty(),
        w.problems
            .first()
            .cloned()
            .unwrap_or_else(|| "no problems".into()),
    ));
    row(
        &mut fig,
        "guard",
        if c.guard_on {
            format!(
                "{} holds logged, {} confirmed by the soak; {} status polls ({} failed: database away)",
                c.logs.holds.len(),
                c.guard.confirmed.len(),
                c.guard.polls,
                c.guard.poll_errors
            )
        } else {
            "off (--no-guard)".into()
        },
    );
    checks.push(Check::new(
        "no refused revision, no detached interface, no other ALARM or panic in the daemon's logs",
        c.logs.bad.is_empty() && c.guard.failed.is_empty() && c.guard.detached.is_empty(),
        format!(
            "{:?} {:?} {:?}",
            c.logs.bad.first(),
            c.guard.failed.first(),
            c.guard.detached.first()
        ),
    ));

    // A vanished or replaced database file is an outage seen from the daemon: expected only
    // while the soak has the file moved aside (and a moment after, for the daemon to look).
    let stray: Vec<&(f64, String)> = c
        .logs
        .file_alarms
        .iter()
        .filter(|(t, _)| !w.db_away_during(*t, *t, 2.0))
        .collect();
    checks.push(Check::new(
        "database-file ALARMs (vanished, replaced) only during database outages",
        stray.is_empty(),
        stray.first().map_or_else(
            || format!("{} such ALARMs, all in outages", c.logs.file_alarms.len()),
            |(t, line)| format!("at {t:.1} s: {line}"),
        ),
    ));

    // HTTP.
    let mut total = 0;
    let (mut refused_restart, mut err_restart, mut err_outage, mut err_other) = (0, 0, 0, 0);
    let mut other_first = None;
    let mut ms: [Vec<f32>; 2] = [Vec::new(), Vec::new()];
    for s in c.http.iter().flat_map(|h| &h.samples) {
        total += 1;
        if s.outcome == HttpOutcome::Ok {
            ms[usize::from(s.path)].push(s.ms);
            continue;
        }
        // A request counts against a window it was in flight in (not only where it ended).
        let start = s.t - f64::from(s.ms) / 1000.0;
        if w.loader_down_during(start, s.t, 0.5) {
            if s.outcome == HttpOutcome::Refused {
                refused_restart += 1;
            } else {
                err_restart += 1;
            }
        } else if w.db_away_during(start, s.t, 1.0) {
            err_outage += 1;
        } else {
            err_other += 1;
            other_first.get_or_insert(format!("{:?} at {:.1} s", s.outcome, s.t));
        }
    }
    let ok = ms[0].len() + ms[1].len();
    row(
        &mut fig,
        &format!("HTTP, {} clients", c.args.http_clients),
        format!(
            "{total} requests ({:.0}/s), {ok} ok; in restart windows {refused_restart} refused + {err_restart} other; in DB outages {err_outage}; elsewhere {err_other}",
            f64::from(total) / c.load_s.max(1.0)
        ),
    );
    for (i, path) in http::PATHS.iter().enumerate() {
        let n = ms[i].len();
        let (p50, p99) = (
            http::percentile(&mut ms[i], 50.0),
            http::percentile(&mut ms[i], 99.0),
        );
        row(
            &mut fig,
            &format!("  {path}"),
            format!("{n} ok, p50 {p50:.1} ms, p99 {p99:.1} ms"),
        );
    }
    checks.push(Check::new(
        "HTTP: every failed request falls in a loader restart or a database outage",
        err_other == 0 && ok > 0,
        other_first.map_or_else(
            || format!("{ok} ok"),
            |o| {
                // The first non-200 answer of any client, with its body, for the cause.
                let body = c
                    .http
                    .iter()
                    .filter_map(|h| h.first_error.as_ref())
                    .min_by(|a, b| a.0.total_cmp(&b.0))
                    .map(|(t, s, b)| format!("; first non-200: {s} at {t:.1} s: {b}"))
                    .unwrap_or_default();
                format!("{o}{body}")
            },
        ),
    ));

    let passed = checks.iter().filter(|c| c.ok).count();
    row(
        &mut fig,
        "checks",
        format!("{passed} passed, {} failed", checks.len() - passed),
    );
    let _ = writeln!(fig, "\n== checks");
    for ch in &checks {
        let _ = writeln!(
            fig,
            "  {} {}\n       {}",
            if ch.ok { "PASS" } else { "FAIL" },
            ch.name,
            ch.detail
        );
    }
    (checks, fig)
}

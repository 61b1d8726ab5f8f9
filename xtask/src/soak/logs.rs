//! What the daemon said: its log files (applied revisions, holds, alarms) and one
//! `/metrics` answer.

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    path::Path,
    time::Duration,
};

use anyhow::Result;

use super::{Clock, checkpoint::Counters};

/// What the daemon's logs say.
#[derive(Debug, Default)]
pub(crate) struct Logs {
    /// Daemon runs (log files).
    pub(crate) runs: usize,
    /// `applied revision N`: (time, N), in time order.
    pub(crate) applied: Vec<(f64, u64)>,
    /// Revisions held by the guard (ALARM lines): (time, revision).
    pub(crate) holds: Vec<(f64, u64)>,
    /// Other ALARM lines, refused revisions, panics.
    pub(crate) bad: Vec<String>,
    /// "keeping the policy in force, retrying" lines (the database could not be read).
    pub(crate) unreachable: usize,
    /// ALARM lines about the database file vanishing or being replaced: (time, line). The
    /// soak's outages move the file aside, so these are expected inside an outage only.
    pub(crate) file_alarms: Vec<(f64, String)>,
}

/// Reads every `loader-*.log` of the run.
pub(crate) fn read_logs(work: &Path, clock: &Clock) -> Result<Logs> {
    let mut files: Vec<_> = std::fs::read_dir(work)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("loader-")
                    && std::path::Path::new(n)
                        .extension()
                        .is_some_and(|e| e == "log")
            })
        })
        .collect();
    files.sort();
    let mut l = Logs {
        runs: files.len(),
        ..Logs::default()
    };
    for f in files {
        for line in std::fs::read_to_string(&f)?.lines() {
            let t = line
                .split_whitespace()
                .next()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .map(|d| clock.at(d.with_timezone(&chrono::Utc)));
            let number_after = |word: &str| -> Option<u64> {
                line[line.find(word)? + word.len()..]
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            };
            if line.contains("of the agreement database") {
                if let (Some(t), Some(n)) = (t, number_after("applied revision")) {
                    l.applied.push((t, n));
                }
            } else if line.contains("held by the blast-radius guard") {
                if let (Some(t), Some(n)) = (t, number_after("ALARM: revision")) {
                    l.holds.push((t, n));
                }
            } else if line.contains("ALARM")
                && line.contains("keeping the policy in force")
                && (line.contains("vanished") || line.contains("replaced"))
            {
                l.unreachable += 1;
                l.file_alarms
                    .push((t.unwrap_or(f64::NAN), format!("{}: {line}", f.display())));
            } else if line.contains("ALARM")
                // The sync's refused-revision line; "Connection refused" in a database
                // error is an outage, counted below.
                || line.contains(" refused, the policy in force stays")
                || line.contains("panicked")
            {
                l.bad.push(format!("{}: {line}", f.display()));
            } else if line.contains("keeping the policy in force") {
                l.unreachable += 1;
            }
        }
    }
    l.applied.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(l)
}

/// The per-agreement series of one `/metrics` answer.
pub(crate) fn metrics_counters(addr: SocketAddr) -> Option<BTreeMap<u32, Counters>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let names = [
        "sdn_agreement_forward_packets_total",
        "sdn_agreement_forward_bytes_total",
        "sdn_agreement_reply_packets_total",
        "sdn_agreement_reply_bytes_total",
        "sdn_agreement_transactions_total",
    ];
    let mut m: BTreeMap<u32, Counters> = BTreeMap::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once("{agreement=\"") else {
            continue;
        };
        let Some(i) = names.iter().position(|n| *n == name) else {
            continue;
        };
        // `ID",router="R"} VALUE`: the id ends at its quote, the value follows the braces.
        let (Some((id, _)), Some((_, value))) = (rest.split_once('"'), rest.split_once("} "))
        else {
            continue;
        };
        if let (Ok(id), Ok(v)) = (id.parse::<u32>(), value.trim().parse::<f64>()) {
            m.entry(id).or_default()[i] = v as u64;
        }
    }
    Some(m)
}

/// The run's fault and checkpoint timeline (soak seconds), for `events.log`.
pub(crate) fn timeline(c: &super::verify::Collected) -> String {
    let mut ev: Vec<(f64, String)> = Vec::new();
    for r in &c.windows.restarts {
        ev.push((
            r.killed,
            format!(
                "kill -9; new loader at {:.2}, re-attached at {:?}, HTTP at {:?}{}",
                r.spawned,
                r.attached,
                r.http_up,
                if r.db_away { " (database away)" } else { "" }
            ),
        ));
    }
    for (a, b) in &c.windows.db_down {
        ev.push((*a, format!("database away until {b:.2} ({:.2} s)", b - a)));
    }
    for p in &c.windows.problems {
        ev.push((0.0, format!("fault problem: {p}")));
    }
    for cp in c.checkpoints.iter().chain([&c.final_cp]) {
        ev.push((
            cp.t,
            format!(
                "checkpoint: r{} in force after {:?} s; {} probes, {} to pass, mismatches {:?}; pool counters before {:?}; counter errors {:?}; TCP connections {}, transactions {}",
                cp.revision, cp.settled, cp.probed, cp.passing, cp.mismatches, cp.pool_before, cp.counter_errors,
                cp.tcp.0, cp.tcp.1
            ),
        ));
    }
    for (n, t) in &c.guard.confirmed {
        ev.push((*t, format!("confirmed held revision {n}")));
    }
    for (t, r) in &c.logs.applied {
        ev.push((*t, format!("applied r{r}")));
    }
    for (i, p) in c.pings.iter().enumerate() {
        for t in p.lost_at.iter().take(50) {
            ev.push((
                *t,
                format!("ping {} lost an echo sent here", ["IPv4", "IPv6"][i % 2]),
            ));
        }
    }
    ev.sort_by(|a, b| a.0.total_cmp(&b.0));
    ev.iter().map(|(t, e)| format!("{t:9.3} {e}\n")).collect()
}

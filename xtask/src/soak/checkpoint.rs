//! Checkpoints: writers and faults paused, the database's revision must come into force,
//! then every pool agreement is probed (untagged and tagged) and its verdicts compared with
//! its state; and the loader's counters, KPI totals and status as the soak reads them.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow};
use chrono::Utc;
use serde_json::Value;

use super::{
    Clock, Gate, PING4, PING6, TCP,
    env::{Env, ROUTER},
    faults, traffic, writers,
};

/// What a checkpoint found.
#[derive(Debug, Default, Clone)]
pub(crate) struct Checkpoint {
    pub(crate) t: f64,
    pub(crate) revision: u64,
    /// Seconds from pausing to the revision in force (None: not within the limit).
    pub(crate) settled: Option<f64>,
    pub(crate) probed: usize,
    /// Probes the database's state lets through.
    pub(crate) passing: usize,
    pub(crate) mismatches: Vec<String>,
    /// KPI totals ahead of the live counters (double counting).
    pub(crate) kpi_ahead: Vec<String>,
    /// Forward packets of the ping sentinel counted but not yet in the KPI tables.
    pub(crate) kpi_lag: u64,
    /// Pool counters that do not match the probes: a probe through the filter not counted
    /// to its agreement in this round, or an agreement holding more than its probes ever.
    pub(crate) counter_errors: Vec<String>,
    /// The pool agreements' forward packets before this round's probes (in force only).
    pub(crate) pool_before: BTreeMap<u32, u64>,
    /// TCP connections opened so far, and agreement 3's transactions (read after).
    pub(crate) tcp: (u64, u64),
}

/// Per-agreement counters: forward packets, forward bytes, reply packets, reply bytes,
/// transactions (the field names of `stats --json` and `kpi query --json`).
pub(crate) type Counters = [u64; 5];
pub(crate) const FIELDS: [&str; 5] = [
    "forward_packets",
    "forward_bytes",
    "reply_packets",
    "reply_bytes",
    "transactions",
];

pub(crate) fn counters_of(rows: &Value, key: &str) -> BTreeMap<u32, Counters> {
    let mut m: BTreeMap<u32, Counters> = BTreeMap::new();
    for r in rows.as_array().into_iter().flatten() {
        let id = r[key]
            .as_u64()
            .or_else(|| r[key].as_str().and_then(|s| s.parse().ok()))
            .and_then(|i| u32::try_from(i).ok());
        let Some(id) = id else { continue };
        let c = m.entry(id).or_default();
        for (i, f) in FIELDS.iter().enumerate() {
            c[i] += r[f].as_u64().unwrap_or(0);
        }
    }
    m
}

/// `stats --json` counters.
pub(crate) fn stats(env: &Env) -> Result<BTreeMap<u32, Counters>> {
    let out = env
        .loader()
        .args(["stats", "--json", "--pin-dir"])
        .arg(&env.pin_dir)
        .output()?;
    // Exit 2 is an alarm (an interface without the filter); the counters are still printed.
    let v: Value = serde_json::from_slice(&out.stdout).context("stats --json")?;
    Ok(counters_of(&v["agreements"], "agreement"))
}

/// KPI totals per agreement since the start of the soak's UTC day.
pub(crate) fn kpi_totals(env: &Env, clock: &Clock) -> Result<BTreeMap<u32, Counters>> {
    let from = clock.wall.format("%Y-%m-%d").to_string();
    let to = (Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let out = env.loader_ok(&[
        "kpi",
        "--db",
        &env.url,
        "query",
        "--json",
        "--bucket",
        "day",
        "--by",
        "agreement",
        "--from",
        &from,
        "--to",
        &to,
    ])?;
    let v: Value = serde_json::from_str(&out)?;
    Ok(counters_of(&v["rows"], "key"))
}

pub(crate) fn export(env: &Env) -> Result<Value> {
    Ok(serde_json::from_str(&env.loader_ok(&[
        "db", "--db", &env.url, "export", "--format", "json",
    ])?)?)
}

pub(crate) fn router_row(env: &Env) -> Option<Value> {
    let out = env
        .loader_ok(&["status", "--db", &env.url, "--router", ROUTER, "--json"])
        .ok()?;
    let v: Value = serde_json::from_str(&out).ok()?;
    Some(v["routers"][0].clone())
}

/// Shared by the main loop and the checkpoints.
pub(crate) struct Run {
    pub(crate) env: Arc<Env>,
    pub(crate) clock: Clock,
    pub(crate) gate: Arc<Gate>,
    pub(crate) probes: traffic::Probes,
    pub(crate) pool_ports: Vec<(u32, u16)>,
    pub(crate) windows: Arc<Mutex<faults::Windows>>,
    pub(crate) tokens: u64,
    /// Probes through the filter so far, per pool agreement.
    pub(crate) through: BTreeMap<u32, u64>,
    /// TCP connections opened so far.
    pub(crate) tcp_opened: Arc<std::sync::atomic::AtomicU64>,
}

impl Run {
    /// Pauses writers and faults, waits until the database's revision is in force, probes
    /// every pool agreement, compares KPI totals with the live counters.
    pub(crate) fn checkpoint(&mut self) -> Result<Checkpoint> {
        let t0 = Instant::now();
        let mut c = Checkpoint {
            t: self.clock.t(),
            ..Checkpoint::default()
        };
        if !self.gate.pause(Duration::from_secs(180)) {
            c.mismatches
                .push("writers and faults did not pause within 180 s".into());
        }
        let result = self.checkpoint_paused(&mut c, t0);
        self.gate.resume();
        result.map(|()| c)
    }

    fn checkpoint_paused(&mut self, c: &mut Checkpoint, t0: Instant) -> Result<()> {
        if let Some(status) = self.env.loader_exited() {
            self.windows
                .lock()
                .map_err(|_| anyhow!("poisoned"))?
                .problems
                .push(format!(
                    "the loader exited by itself ({status}) before {:.1} s",
                    c.t
                ));
            self.env.spawn_loader()?;
        }
        let revision = loop {
            match self
                .env
                .loader_ok(&["db", "--db", &self.env.url, "revision"])
            {
                Ok(r) => break r.trim().parse::<u64>()?,
                Err(e) if t0.elapsed() > Duration::from_secs(30) => return Err(e),
                Err(_) => sleep(Duration::from_millis(200)),
            }
        };
        c.revision = revision;
        // The daemon's database retry backs off to 30 s: allow for that and a hold.
        while t0.elapsed() < Duration::from_secs(90) {
            if router_row(&self.env).is_some_and(|r| {
                r["applied_revision"].as_u64() == Some(revision) && r["state"] == "in-sync"
            }) {
                c.settled = Some(t0.elapsed().as_secs_f64());
                break;
            }
            sleep(Duration::from_millis(100));
        }
        let agreements = writers::agreements_of(&export(&self.env)?)?;
        let today = Utc::now().format("%Y-%m-%d").to_string();
        self.tokens += 1;
        let ports: Vec<u16> = self.pool_ports.iter().map(|(_, p)| *p).collect();
        let before = stats(&self.env)?;
        let got = self.probes.round(self.tokens, &ports)?;
        for (id, port) in &self.pool_ports {
            for (v, tag) in traffic::VARIANTS.iter().enumerate() {
                let want = agreements.get(id).is_some_and(|a| a.passes(&today, *tag));
                let passed = got.contains(&(*port, v));
                c.probed += 1;
                if want {
                    c.passing += 1;
                }
                if want != passed {
                    c.mismatches.push(format!(
                        "agreement {id} ({:?}) at r{revision}: probe with VLAN {tag:?} {}",
                        agreements.get(id),
                        if passed { "passed" } else { "dropped" }
                    ));
                }
            }
        }
        // KPI first, counters second: the KPI tables may lag, never lead.
        let kpi = kpi_totals(&self.env, &self.clock)?;
        let opened = self.tcp_opened.load(std::sync::atomic::Ordering::SeqCst);
        let live = stats(&self.env)?;
        c.tcp = (opened, live.get(&TCP).map_or(0, |l| l[4]));
        // Only probes move the pool's counters, and nothing moves between the two reads but
        // this round's probes (writers paused): the growth is exactly what came through.
        for (id, port) in &self.pool_ports {
            let passed = got.iter().filter(|(p, _)| p == port).count() as u64;
            let fp = |m: &BTreeMap<u32, Counters>| m.get(id).map(|c| c[0]);
            let (b, a) = (fp(&before), fp(&live));
            if let Some(b) = b {
                c.pool_before.insert(*id, b);
            }
            let grown = a.unwrap_or(0).saturating_sub(b.unwrap_or(0));
            if grown != passed || a.is_none() != b.is_none() {
                c.counter_errors.push(format!(
                    "agreement {id}: counter {b:?} -> {a:?}, {passed} probes came through"
                ));
            }
            let ever = self.through.entry(*id).or_default();
            if b.is_some_and(|b| b > *ever) {
                c.counter_errors.push(format!(
                    "agreement {id}: counter {b:?} before the probes, but only {ever} of its probes ever came through"
                ));
            }
            *ever += passed;
        }
        for id in [PING4, PING6, TCP] {
            let (k, l) = (
                kpi.get(&id).copied().unwrap_or_default(),
                live.get(&id).copied(),
            );
            let Some(l) = l else { continue };
            if k.iter().zip(l).any(|(k, l)| *k > l) {
                c.kpi_ahead
                    .push(format!("agreement {id}: KPI {k:?} > counters {l:?}"));
            }
            if id == PING4 {
                c.kpi_lag = l[0].saturating_sub(k[0]);
            }
        }
        Ok(())
    }
}

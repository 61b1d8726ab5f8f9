//! Concurrent writers: each runs `sdn-loader db agreement ...` (lifecycle verbs, state, VLAN
//! and expiry edits) on the pool agreements and logs command, exit status and revision.
//! Afterwards the log is replayed on a model of the lifecycle and checked against the audit
//! log and the final database.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use anyhow::{Result, anyhow};
use rand::{Rng as _, SeedableRng as _, rngs::StdRng};
use serde_json::Value;

use super::{Check, Clock, Gate, env::Env};

/// A lifecycle verb (`db agreement VERB ID`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verb {
    Approve,
    Reject,
    Revoke,
    Request,
}

impl Verb {
    fn name(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
            Self::Revoke => "revoke",
            Self::Request => "request",
        }
    }

    /// docs/semantics.md "Agreement lifecycle": (from states, to state).
    fn rule(self) -> (&'static [&'static str], &'static str) {
        match self {
            Self::Approve => (&["requested"], "approved"),
            Self::Reject => (&["requested"], "rejected"),
            Self::Revoke => (&["approved"], "revoked"),
            Self::Request => (&["rejected", "revoked"], "requested"),
        }
    }
}

/// Whether the lifecycle has a transition `from` -> `to`.
fn allowed(from: &str, to: &str) -> bool {
    [Verb::Approve, Verb::Reject, Verb::Revoke, Verb::Request]
        .iter()
        .any(|v| v.rule().0.contains(&from) && v.rule().1 == to)
}

/// One change a writer asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Verb(Verb),
    State(&'static str),
    Vlan(Option<u64>),
    Expires(Option<String>),
}

impl Op {
    fn args(&self, id: u32) -> Vec<String> {
        let id = id.to_string();
        let mut a = vec!["agreement".to_owned()];
        match self {
            Self::Verb(v) => a.extend([v.name().to_owned(), id]),
            Self::State(s) => a.extend(["update".into(), id, "--state".into(), (*s).into()]),
            Self::Vlan(Some(v)) => a.extend(["update".into(), id, "--vlan".into(), v.to_string()]),
            Self::Vlan(None) => a.extend(["update".into(), id, "--any-vlan".into()]),
            Self::Expires(Some(d)) => {
                a.extend(["update".into(), id, "--expires".into(), d.clone()]);
            }
            Self::Expires(None) => a.extend(["update".into(), id, "--no-expiry".into()]),
        }
        a
    }

    /// The audit log's action for this change.
    fn action(&self) -> &'static str {
        match self {
            Self::Verb(v) => v.name(),
            _ => "update",
        }
    }

    /// The agreement after this change, or why the lifecycle refuses it.
    fn apply(&self, a: &Agr) -> Result<Agr, String> {
        let mut b = a.clone();
        match self {
            Self::Verb(v) => {
                let (from, to) = v.rule();
                if !from.contains(&a.state.as_str()) {
                    return Err(format!("{} from {}", v.name(), a.state));
                }
                to.clone_into(&mut b.state);
            }
            Self::State(s) => {
                if a.state != *s && !allowed(&a.state, s) {
                    return Err(format!("state {} -> {s}", a.state));
                }
                (*s).clone_into(&mut b.state);
            }
            Self::Vlan(v) => b.vlan = *v,
            Self::Expires(e) => b.expires.clone_from(e),
        }
        Ok(b)
    }
}

/// How a writer's command ended.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// Committed at this revision.
    Committed(u64),
    /// "no change: already so (the database is at revision N)".
    NoChange(u64),
    /// Refused by the lifecycle.
    Refused(String),
    /// The database was not there.
    Unavailable(String),
    /// Anything else.
    Error(String),
}

impl Outcome {
    /// The message of a command that did not succeed.
    pub(crate) fn message(&self) -> Option<&str> {
        match self {
            Self::Refused(m) | Self::Unavailable(m) | Self::Error(m) => Some(m),
            Self::Committed(_) | Self::NoChange(_) => None,
        }
    }
}

/// One command of one writer.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    pub(crate) agreement: u32,
    pub(crate) op: Op,
    pub(crate) request_id: String,
    pub(crate) t_start: f64,
    pub(crate) t_end: f64,
    pub(crate) outcome: Outcome,
}

pub(crate) fn classify(out: &std::process::Output) -> Outcome {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let number_after = |text: &str, word: &str| -> Option<u64> {
        let rest = &text[text.find(word)? + word.len()..];
        rest.trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    if out.status.success() {
        if stdout.starts_with("revision ") {
            if let Some(r) = number_after(&stdout, "revision") {
                return Outcome::Committed(r);
            }
        }
        if stdout.starts_with("no change") {
            if let Some(r) = number_after(&stdout, "at revision") {
                return Outcome::NoChange(r);
            }
        }
        return Outcome::Error(format!("unexpected output: {}", stdout.trim()));
    }
    // The error line (tracing warnings, e.g. a slow pool acquire, may come before it).
    let error = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("error: "))
        .unwrap_or(&stderr)
        .to_owned();
    let lower = error.to_lowercase();
    if [
        "does not exist",
        "unable to open",
        "connection refused",
        "connecting",
        "no such file",
        "terminating connection",
        "the database system is",
        "pool timed out",
        "broken pipe",
        "connection reset",
    ]
    .iter()
    .any(|w| lower.contains(w))
    {
        Outcome::Unavailable(error)
    } else if lower.starts_with("error: cannot ") && lower.contains("agreement") {
        Outcome::Refused(error)
    } else {
        Outcome::Error(stderr)
    }
}

/// What the writers share.
pub(crate) struct WriterSetup {
    pub(crate) env: Arc<Env>,
    pub(crate) pool: Vec<u32>,
    pub(crate) seed: u64,
    pub(crate) clock: Clock,
    pub(crate) gate: Arc<Gate>,
    pub(crate) over: Arc<AtomicBool>,
    pub(crate) attempted: Arc<AtomicU64>,
    /// Expiry dates to choose from: yesterday, today, tomorrow, far future.
    pub(crate) dates: Vec<String>,
}

/// Starts writer `w`.
pub(crate) fn spawn(w: usize, s: &Arc<WriterSetup>) -> Result<JoinHandle<Result<Vec<Record>>>> {
    let s = s.clone();
    Ok(thread::Builder::new()
        .name(format!("writer-{w}"))
        .spawn(move || {
            let mut rng = StdRng::seed_from_u64(
                s.seed ^ 0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(w as u64 + 1),
            );
            let mut log = String::new();
            let mut records = Vec::new();
            let mut n = 0u64;
            while !s.over.load(Ordering::SeqCst) {
                if !s.gate.enter(&s.over) {
                    break;
                }
                let id = s.pool[rng.gen_range(0..s.pool.len())];
                let op = match rng.gen_range(0..100) {
                    // Leaning towards approval, so that the probes find agreements in force.
                    0..=15 => Op::Verb(Verb::Approve),
                    16..=21 => Op::Verb(Verb::Reject),
                    22..=31 => Op::Verb(Verb::Revoke),
                    32..=47 => Op::Verb(Verb::Request),
                    48..=59 => Op::State(
                        ["requested", "approved", "rejected", "revoked"][rng.gen_range(0..4)],
                    ),
                    60..=79 => Op::Vlan([Some(100), Some(200), None][rng.gen_range(0..3)]),
                    _ => {
                        let i = rng.gen_range(0..=s.dates.len());
                        Op::Expires(s.dates.get(i).cloned())
                    }
                };
                n += 1;
                let request_id = format!("soak-w{w}-{n}");
                let args = op.args(id);
                let t_start = s.clock.t();
                let out = s
                    .env
                    .loader()
                    .args(["db", "--db", &s.env.url, "--actor", &format!("soak-w{w}")])
                    .args(["--request-id", &request_id])
                    .args(&args)
                    .output();
                let t_end = s.clock.t();
                s.gate.leave();
                s.attempted.fetch_add(1, Ordering::SeqCst);
                let outcome = match out {
                    Ok(o) => classify(&o),
                    Err(e) => Outcome::Error(format!("starting sdn-loader: {e}")),
                };
                let _ = writeln!(
                    log,
                    "{t_start:9.3} {t_end:9.3} {request_id} {} -> {outcome:?}",
                    args.join(" ")
                );
                records.push(Record {
                    agreement: id,
                    op,
                    request_id,
                    t_start,
                    t_end,
                    outcome,
                });
                thread::sleep(Duration::from_millis(rng.gen_range(0..150)));
            }
            std::fs::write(s.env.work.join(format!("writer-{w}.log")), log)?;
            Ok(records)
        })?)
}

/// An agreement's editable fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Agr {
    pub(crate) state: String,
    pub(crate) vlan: Option<u64>,
    pub(crate) expires: Option<String>,
}

impl Agr {
    fn of(v: &Value) -> Option<Self> {
        Some(Self {
            state: v.get("state")?.as_str()?.to_owned(),
            vlan: v.get("vlan").and_then(Value::as_u64),
            expires: v.get("expires").and_then(Value::as_str).map(str::to_owned),
        })
    }

    /// Whether a frame with VLAN `tag` (None: untagged) passes on `today` (docs/semantics.md:
    /// approved, expiry later than today; rule 2: an agreement with a VLAN matches only that
    /// VLAN's frames, one without matches every frame).
    pub(crate) fn passes(&self, today: &str, tag: Option<u16>) -> bool {
        self.state == "approved"
            && self.expires.as_deref().is_none_or(|e| e > today)
            && self.vlan.is_none_or(|v| Some(v) == tag.map(u64::from))
    }
}

/// The agreements of a `db export --format json` document.
pub(crate) fn agreements_of(export: &Value) -> Result<BTreeMap<u32, Agr>> {
    export["agreement"]
        .as_array()
        .ok_or_else(|| anyhow!("export without agreements"))?
        .iter()
        .map(|a| {
            let id = a["id"]
                .as_u64()
                .and_then(|i| u32::try_from(i).ok())
                .ok_or_else(|| anyhow!("agreement without id: {a}"))?;
            Ok((id, Agr::of(a).ok_or_else(|| anyhow!("bad agreement {a}"))?))
        })
        .collect()
}

/// Replays the committed changes on `initial` and checks them against the audit log and
/// the final database.
pub(crate) fn verify(
    records: &[Record],
    initial: &BTreeMap<u32, Agr>,
    last: &BTreeMap<u32, Agr>,
    audit: &[Value],
    revision: u64,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut committed: Vec<(u64, &Record)> = records
        .iter()
        .filter_map(|r| match r.outcome {
            Outcome::Committed(n) => Some((n, r)),
            _ => None,
        })
        .collect();
    committed.sort_by_key(|(n, _)| *n);
    let dups: Vec<u64> = committed
        .windows(2)
        .filter(|w| w[0].0 == w[1].0)
        .map(|w| w[0].0)
        .collect();
    checks.push(Check::new(
        "every committed change reported a revision of its own",
        dups.is_empty(),
        format!(
            "{} committed, revisions reported twice: {dups:?}",
            committed.len()
        ),
    ));

    // Replay in revision order; keep each agreement's history for the no-change answers.
    let mut model = initial.clone();
    let mut history: BTreeMap<u32, Vec<(u64, Agr)>> = initial
        .iter()
        .map(|(id, a)| (*id, vec![(1, a.clone())]))
        .collect();
    let mut replay_errors = Vec::new();
    let mut expected_rows: BTreeMap<u64, (&Record, Agr, Agr)> = BTreeMap::new();
    for (n, r) in &committed {
        let Some(before) = model.get(&r.agreement).cloned() else {
            replay_errors.push(format!("r{n}: unknown agreement {}", r.agreement));
            continue;
        };
        match r.op.apply(&before) {
            Ok(after) if after == before => replay_errors.push(format!(
                "r{n} {} {:?}: committed, but it changes nothing",
                r.request_id, r.op
            )),
            Ok(after) => {
                model.insert(r.agreement, after.clone());
                history
                    .entry(r.agreement)
                    .or_default()
                    .push((*n, after.clone()));
                expected_rows.insert(*n, (r, before, after));
            }
            Err(why) => replay_errors.push(format!(
                "r{n} {} agreement {}: the lifecycle forbids {why}",
                r.request_id, r.agreement
            )),
        }
    }
    checks.push(Check::new(
        "the committed changes replay on the lifecycle in revision order",
        replay_errors.is_empty(),
        first(&replay_errors, "none forbidden, none empty"),
    ));

    let mut nochange_errors = Vec::new();
    let mut nochanges = 0;
    for r in records {
        let Outcome::NoChange(n) = r.outcome else {
            continue;
        };
        nochanges += 1;
        let at = history
            .get(&r.agreement)
            .and_then(|h| h.iter().rev().find(|(rev, _)| *rev <= n))
            .map(|(_, a)| a.clone());
        let Some(at) = at else { continue };
        // "Already so": the field it asked for already had the value at that revision.
        let so = match &r.op {
            Op::Verb(v) => at.state == v.rule().1,
            Op::State(s) => at.state == *s,
            Op::Vlan(v) => at.vlan == *v,
            Op::Expires(e) => at.expires == *e,
        };
        if !so {
            nochange_errors.push(format!(
                "{} {:?} on {}: \"no change\" at r{n}, but there it was {at:?}",
                r.request_id, r.op, r.agreement
            ));
        }
    }
    checks.push(Check::new(
        "every \"no change\" answer matches the state at the revision it named",
        nochange_errors.is_empty(),
        first(&nochange_errors, &format!("{nochanges} no-change answers")),
    ));

    // The audit log, by revision.
    let mut by_rev: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for row in audit {
        if let Some(n) = row["revision"].as_u64() {
            by_rev.entry(n).or_default().push(row);
        }
    }
    let mut audit_errors = Vec::new();
    for (n, (r, before, after)) in &expected_rows {
        let rows = by_rev.get(n).map(Vec::as_slice).unwrap_or_default();
        let [row] = rows else {
            audit_errors.push(format!(
                "r{n} ({}): {} audit rows",
                r.request_id,
                rows.len()
            ));
            continue;
        };
        let ok = row["request_id"] == r.request_id.as_str()
            && row["key"] == r.agreement.to_string().as_str()
            && row["kind"] == "agreement"
            && row["action"] == r.op.action()
            && Agr::of(&row["before"]).as_ref() == Some(before)
            && Agr::of(&row["after"]).as_ref() == Some(after);
        if !ok {
            audit_errors.push(format!(
                "r{n}: audit row {row} is not {} {:?} on {} from {before:?} to {after:?}",
                r.request_id, r.op, r.agreement
            ));
        }
    }
    checks.push(Check::new(
        "every committed change is in the audit log once, with its request id, action, before and after",
        audit_errors.is_empty(),
        first(&audit_errors, &format!("{} rows matched", expected_rows.len())),
    ));

    let revs: BTreeSet<u64> = by_rev.keys().copied().collect();
    let missing: Vec<u64> = (1..=revision).filter(|n| !revs.contains(n)).collect();
    let unexplained: Vec<u64> = revs
        .iter()
        .copied()
        .filter(|n| {
            *n != 1
                && !expected_rows.contains_key(n)
                && !by_rev[n].iter().all(|r| r["request_id"] == "soak-import")
        })
        .collect();
    checks.push(Check::new(
        "audit revisions are gapless and each is explained by a logged change",
        missing.is_empty() && unexplained.is_empty() && revs.last() == Some(&revision),
        format!(
            "revisions 1..={revision}; missing {missing:?}; unexplained {unexplained:?}; newest {:?}",
            revs.last()
        ),
    ));

    // The audit log on its own: each agreement's rows chain (before = previous after) and
    // only take the lifecycle's transitions.
    let mut chain_errors = Vec::new();
    let mut prev: BTreeMap<String, Agr> = BTreeMap::new();
    for rows in by_rev.values() {
        for row in rows.iter().filter(|r| r["kind"] == "agreement") {
            let key = row["key"].as_str().unwrap_or_default().to_owned();
            let (b, a) = (Agr::of(&row["before"]), Agr::of(&row["after"]));
            if row["action"] != "create" {
                if b.as_ref() != prev.get(&key) {
                    chain_errors.push(format!(
                        "{key} r{}: before {b:?} != {:?}",
                        row["revision"],
                        prev.get(&key)
                    ));
                }
                if let (Some(b), Some(a)) = (&b, &a) {
                    if b.state != a.state && !allowed(&b.state, &a.state) {
                        chain_errors.push(format!(
                            "{key} r{}: {} -> {} is not a lifecycle transition",
                            row["revision"], b.state, a.state
                        ));
                    }
                }
            }
            match a {
                Some(a) => prev.insert(key, a),
                None => prev.remove(&key),
            };
        }
    }
    checks.push(Check::new(
        "audit log: each agreement's rows chain, and only lifecycle transitions",
        chain_errors.is_empty(),
        first(&chain_errors, &format!("{} rows", audit.len())),
    ));

    let diff: Vec<String> = model
        .iter()
        .filter(|(id, a)| last.get(id) != Some(a))
        .map(|(id, a)| format!("{id}: replay {a:?}, database {:?}", last.get(id)))
        .collect();
    checks.push(Check::new(
        "final database = replay of the committed changes (none lost, none reverted)",
        diff.is_empty() && last.len() == model.len(),
        first(&diff, &format!("{} agreements equal", model.len())),
    ));
    checks
}

fn first(errors: &[String], ok: &str) -> String {
    match errors {
        [] => ok.to_owned(),
        [e] => e.clone(),
        [e, ..] => format!("{e} (and {} more)", errors.len() - 1),
    }
}

//! `check`, `replay` and `explain`: verdicts of the real program on a policy file.

#[allow(
    clippy::wildcard_imports,
    reason = "the binary's shared imports and helpers"
)]
use super::*;

pub(crate) fn check(path: &Path, date: NaiveDate) -> Result<ExitCode> {
    let p = load_policy(path)?;
    let c = compile(&p, date)?;
    println!(
        "{}: {} organisations, {} services, {} clients, {} agreements ({} in force on {date}); {} prefix entries, {} rule entries",
        path.display(),
        p.organisations.len(),
        p.services.len(),
        p.clients.len(),
        p.agreements.len(),
        c.agreements.len(),
        c.prefixes.len(),
        c.rule_entries()
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn replay(
    policy_path: &Path,
    pcap: &Path,
    json: bool,
    date: NaiveDate,
) -> Result<ExitCode> {
    let p = load_policy(policy_path)?;
    let frames = read_capture(pcap)?;
    let mut r = Replayer::new(&p, date)?;
    let mut sum = Summary::default();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for f in &frames {
        let v = match r.judge(f) {
            Ok(v) => v,
            Err(e @ ReplayError::TooLarge { index, bytes, .. }) => {
                // Named and skipped: the frames after it are still judged.
                sum.frames += 1;
                sum.not_judged += 1;
                let why = format!("{:#}", anyhow::Error::from(e));
                if json {
                    let line = serde_json::json!({
                        "index": index,
                        "verdict": "not-judged",
                        "bytes": bytes,
                        "error": why,
                    });
                    writeln!(out, "{line}")?;
                } else {
                    writeln!(out, "{index:>6} not-judged: {why}")?;
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        sum.add(&v);
        if json {
            writeln!(out, "{}", serde_json::to_string(&v)?)?;
        } else {
            let agreement = v.agreement.map_or_else(|| "-".into(), |a| a.to_string());
            let dir = v.direction.map_or("-", |d| match d {
                sdn_loader::tools::replay::Direction::Forward => "forward",
                sdn_loader::tools::replay::Direction::Reply => "reply",
            });
            let verdict = if v.passed() { "pass" } else { "drop" };
            let txn = if v.transaction { " transaction" } else { "" };
            let line = format!(
                "{:>6} {verdict:<4} {:<28} agreement {agreement:<10} {dir:<7}{txn}",
                v.index, v.reason
            );
            writeln!(out, "{}", line.trim_end())?;
        }
    }
    out.flush()?;
    let not_judged = if sum.not_judged == 0 {
        String::new()
    } else {
        format!(", {} not judged (too large for a test run)", sum.not_judged)
    };
    eprintln!(
        "{} frames: {} passed, {} dropped{not_judged}, {} transactions (policy {}, as of {date})",
        sum.frames,
        sum.passed,
        sum.dropped,
        sum.transactions,
        policy_path.display()
    );
    // Exit 2 when the output is complete but some frames have no verdict (see README).
    Ok(if sum.not_judged == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// What `explain` judges with.
pub(crate) enum Judged<'a> {
    /// A policy file.
    File(&'a Path),
    /// The policy in force on this router: kept in `state_dir`, and checked to be what the
    /// data plane pinned at `pin_dir` holds.
    InForce {
        pin_dir: PathBuf,
        state_dir: PathBuf,
    },
}

/// The policy in force, once the running data plane's rules are found equal to it.
fn policy_in_force(pin_dir: &Path, state_dir: &Path) -> Result<policy::Policy> {
    let (revision, p) = sdn_loader::sync::state::load(state_dir)?.with_context(|| {
        format!(
            "no policy in force is kept in {} (give --policy FILE, or --state-dir of a router following a database)",
            state_dir.display()
        )
    })?;
    let maps = Maps::open_pinned(pin_dir)
        .with_context(|| format!("opening the data plane pinned at {}", pin_dir.display()))?;
    let live = sdn_loader::tools::rules::decode(&maps.active_tables()?);
    // What the daemon compiled (today, UTC), through the same decoding as the maps: overlaps
    // resolve to the lowest id on both sides. The packet itself is judged as of `date`.
    let compiled = sdn_loader::compile::compile(&p, Utc::now().date_naive())?;
    let kept = sdn_loader::tools::rules::decode_compiled(&compiled);
    if live != kept {
        let (a, b): (std::collections::BTreeSet<_>, std::collections::BTreeSet<_>) =
            (live.iter().collect(), kept.iter().collect());
        let differ = a.symmetric_difference(&b).count();
        bail!(
            "the data plane at {} does not enforce the policy in force kept in {} (revision {revision}): {differ} rule lines differ; `sdn-loader rules` shows what the kernel holds",
            pin_dir.display(),
            state_dir.display()
        );
    }
    eprintln!(
        "judged with revision {revision}, the policy in force ({} rule lines, equal to the data plane's at {})",
        live.len(),
        pin_dir.display()
    );
    Ok(p)
}

pub(crate) fn explain(
    source: &Judged<'_>,
    spec: &Spec,
    date: NaiveDate,
    json: bool,
) -> Result<ExitCode> {
    let p = match source {
        Judged::File(path) => load_policy(path)?,
        Judged::InForce { pin_dir, state_dir } => policy_in_force(pin_dir, state_dir)?,
    };
    let frame = synth::build(spec)?;
    let mut r = Replayer::new(&p, date)?;
    let v = r.judge(&frame)?;
    if json {
        println!("{}", serde_json::to_string(&v)?);
    } else {
        print!("{}", describe(&p, spec, &v, date));
    }
    // Like grep: the answer is in the exit code too (0 passes, 2 dropped; 1 is an error).
    Ok(if v.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

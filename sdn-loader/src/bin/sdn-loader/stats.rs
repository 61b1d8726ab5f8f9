//! `stats`, `log` and `probe`: what the running data plane counts, drops and can do.

#[allow(
    clippy::wildcard_imports,
    reason = "the binary's shared imports and helpers"
)]
use super::*;

#[derive(Serialize)]
pub(crate) struct AgreementRow {
    agreement: u32,
    forward_packets: u64,
    forward_bytes: u64,
    reply_packets: u64,
    reply_bytes: u64,
    transactions: u64,
}

#[derive(Serialize)]
pub(crate) struct StatsOut {
    generation: u32,
    interfaces: Vec<String>,
    /// Every interface the pin tree knows of, configured or linked, attached or not.
    interface_health: Vec<sdn_loader::dataplane::pins::InterfaceHealth>,
    /// Configured interfaces without a program: the filter is not enforcing there.
    alarms: Vec<String>,
    flow_table: sdn_loader::dataplane::FlowTableUsage,
    agreements: Vec<AgreementRow>,
    /// Packets per reason, every reason.
    reasons: std::collections::BTreeMap<&'static str, u64>,
    /// The same split by verdict: reasons that pass, and reasons that drop.
    passes: std::collections::BTreeMap<&'static str, u64>,
    drops: std::collections::BTreeMap<&'static str, u64>,
    /// Packets passed and dropped in all.
    passed: u64,
    dropped: u64,
}

pub(crate) fn row(id: u32, c: &AgreementCounters) -> AgreementRow {
    AgreementRow {
        agreement: id,
        forward_packets: c.forward_packets,
        forward_bytes: c.forward_bytes,
        reply_packets: c.reply_packets,
        reply_bytes: c.reply_bytes,
        transactions: c.transactions,
    }
}

/// The running data plane's maps under `pin_dir`, or an error that says whether there is
/// none or this user may not read it (the pin tree is root's, 0700).
pub(crate) fn open_running(pin_dir: &Path) -> Result<Maps> {
    let denied = |e: &dyn std::error::Error| {
        anyhow::anyhow!(
            "permission denied reading the data plane's pins under {} ({e}): {}",
            pin_dir.display(),
            sdn_loader::dataplane::PERMISSION_HINT
        )
    };
    if let Err(e) = std::fs::read_dir(pin_dir)
        && e.kind() == std::io::ErrorKind::PermissionDenied
    {
        return Err(denied(&e));
    }
    Maps::open_pinned(pin_dir).map_err(|e| {
        if sdn_loader::dataplane::permission_hint(&e).is_some() {
            denied(&e)
        } else {
            anyhow::Error::new(e).context(format!(
                "no running data plane under {} (run `sdn-loader run` first)",
                pin_dir.display()
            ))
        }
    })
}

pub(crate) fn stats(pin_dir: &Path, json: bool) -> Result<ExitCode> {
    let maps = open_running(pin_dir)?;
    let slots = maps.slots_in_force()?;
    let counters = maps.counters_of(&slots)?;
    let reasons = maps.reason_counts()?;
    let by_verdict = |pass: bool| -> std::collections::BTreeMap<&'static str, u64> {
        (0..reason::COUNT)
            .filter(|&r| reason::passes(r) == pass)
            .map(|r| (reason::name(r), reasons.get(&r).copied().unwrap_or(0)))
            .collect()
    };
    let (passes, drops) = (by_verdict(true), by_verdict(false));
    // One look at the links, so the alarms and the health they come from agree.
    let health = sdn_loader::dataplane::pins::interface_health(pin_dir);
    let alarms = health
        .iter()
        .filter_map(sdn_loader::dataplane::pins::InterfaceHealth::alarm)
        .collect();
    let out = StatsOut {
        generation: maps.config()?.active_generation,
        interfaces: attach::attached_interfaces(pin_dir),
        interface_health: health,
        alarms,
        flow_table: maps.flow_table_usage()?,
        agreements: counters.iter().map(|(id, c)| row(*id, c)).collect(),
        reasons: (0..reason::COUNT)
            .map(|r| (reason::name(r), reasons.get(&r).copied().unwrap_or(0)))
            .collect(),
        passed: passes.values().sum(),
        dropped: drops.values().sum(),
        passes,
        drops,
    };
    // Exit 2 when the filter is not enforcing on a configured interface (see README).
    let code = if out.alarms.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    };
    for a in &out.alarms {
        eprintln!("{a}");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(code);
    }
    for a in &out.alarms {
        println!("{a}");
    }
    println!(
        "interfaces: {}  policy generation: {}",
        out.interfaces.join(", "),
        out.generation
    );
    let f = &out.flow_table;
    println!(
        "IPv4 flow table: {} flows and {} remembered denials of this policy, {} spent entries; {} entries in all, {} buckets full",
        f.flows, f.denials, f.spent, f.capacity, f.full_buckets
    );
    println!(
        "{:>10} {:>12} {:>14} {:>12} {:>14} {:>12}",
        "agreement", "fwd packets", "fwd bytes", "rep packets", "rep bytes", "transactions"
    );
    for r in &out.agreements {
        println!(
            "{:>10} {:>12} {:>14} {:>12} {:>14} {:>12}",
            r.agreement,
            r.forward_packets,
            r.forward_bytes,
            r.reply_packets,
            r.reply_bytes,
            r.transactions
        );
    }
    println!("\n{:<28} {:>12}  verdict", "reason", "packets");
    for r in 0..reason::COUNT {
        let n = reasons.get(&r).copied().unwrap_or(0);
        if n > 0 {
            println!(
                "{:<28} {:>12}  {}",
                reason::name(r),
                n,
                if reason::passes(r) { "pass" } else { "drop" }
            );
        }
    }
    Ok(code)
}

/// Turns on drop logging in the running program, prints the records, and turns it off again.
pub(crate) fn drop_log(
    rt: &tokio::runtime::Runtime,
    pin_dir: &Path,
    seconds: Option<u64>,
) -> Result<ExitCode> {
    let mut maps = open_running(pin_dir)?;
    let prog = pin_dir.join(sdn_loader::paths::LOGGER_PIN);
    let info = aya::programs::ProgramInfo::from_pin(&prog)
        .with_context(|| format!("reading {}", prog.display()))?;
    let mut logger =
        aya_log::EbpfLogger::init_from_id(info.id()).context("opening the program's log ring")?;
    let shutdown = Shutdown::on_signals(rt.handle()).context("handling SIGINT and SIGTERM")?;
    maps.update_flags(sdn_common::flags::LOG_DROPS, 0)?;
    eprintln!("logging drops (Ctrl-C to stop)");
    let start = std::time::Instant::now();
    // The log ring is read every 100 ms; a signal ends the wait at once.
    while !shutdown.is_triggered() && seconds.is_none_or(|s| start.elapsed().as_secs() < s) {
        logger.flush();
        rt.block_on(shutdown.sleep(std::time::Duration::from_millis(100)));
    }
    logger.flush();
    maps.update_flags(0, sdn_common::flags::LOG_DROPS)?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn probe_cmd(json: bool) -> Result<ExitCode> {
    let r = sdn_loader::dataplane::probe::probe();
    if json {
        let rows: Vec<_> = r
            .features
            .iter()
            .map(|f| {
                serde_json::json!({
                    "feature": f.name, "used_for": f.used_for, "since": f.since,
                    "present": f.present, "required": f.required,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"kernel": r.kernel, "features": rows})
            )?
        );
    } else {
        println!("kernel {}", r.kernel);
        for f in &r.features {
            let state = match f.present {
                Some(true) => "yes",
                Some(false) if f.required => "MISSING",
                Some(false) => "no",
                None => "unknown",
            };
            let need = if f.required { "required" } else { "optional" };
            println!(
                "  {state:<8} {:<30} {need:<9} Linux {:<5} {}",
                f.name, f.since, f.used_for
            );
        }
    }
    if let Some(why) = r.refusal() {
        eprintln!("{why}");
        return Ok(ExitCode::FAILURE);
    }
    // Load the programs privately: the verifier must accept them, and its figures are shown.
    let dp = Dataplane::load_private(Capacities::for_replay(
        &sdn_loader::compile::Compiled::default(),
    ))
    .context("loading the XDP programs into this kernel")?;
    if !json {
        println!("verifier accepted the programs:");
    }
    for st in dp.program_stats()? {
        let show = |v: Option<u32>| v.map_or_else(|| "n/a".to_owned(), |n| n.to_string());
        if json {
            println!(
                "{}",
                serde_json::json!({"program": st.name, "instructions": st.instructions,
                    "verified_instructions": st.verified_instructions, "jited_bytes": st.jited_bytes})
            );
        } else {
            println!(
                "  {:<14} {:>6} instructions, {:>7} processed by the verifier, {:>6} bytes JITed",
                st.name,
                show(st.instructions),
                show(st.verified_instructions),
                st.jited_bytes
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

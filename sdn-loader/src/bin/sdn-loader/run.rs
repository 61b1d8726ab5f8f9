//! `run` and `detach`: load, attach and pin the program, follow a policy file or the database.

#[allow(
    clippy::wildcard_imports,
    reason = "the binary's shared imports and helpers"
)]
use super::*;

/// Where `run` takes its policy from.
pub(crate) enum Source {
    File(PathBuf),
    Db {
        url: String,
        once: bool,
        opts: sdn_loader::sync::SyncOptions,
    },
}

pub(crate) fn run_attach(
    ifaces: &[String],
    source: &Source,
    mode: Mode,
    pin_dir: &Path,
    netns: Option<&str>,
    caps: Capacities,
    kpi: &kpi::DaemonKpi,
) -> Result<ExitCode> {
    // Validate and compile a policy file before touching anything: a bad file changes nothing.
    let date = today(None);
    let compiled = match source {
        Source::File(path) => Some((path, compile(&load_policy(path)?, date)?)),
        Source::Db { .. } => None,
    };
    {
        let _ns = netns.map(attach::enter_netns).transpose()?;
        attach::check_interfaces(ifaces)?;
    }
    // Back in the host's namespace: the database is reached from there.
    attach::check_bpffs(pin_dir)?;
    // A data plane already running from these pins keeps its policy until the new one is in.
    let was_running = pin_dir.join(sdn_loader::paths::PROGRAM_PIN).exists();
    let mut dp = Dataplane::load_pinned(caps, pin_dir).context("loading the XDP program")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // SAFETY: installing an async-signal-safe handler that only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let mut resume = None;
    match (&compiled, source) {
        (Some((path, c)), _) => {
            let report = dp.apply(c)?;
            tracing::info!(
                generation = report.generation,
                agreements = report.agreements,
                prefixes = report.prefixes,
                rules = report.rules,
                "policy {} applied (as of {date})",
                path.display()
            );
        }
        (None, Source::Db { url, opts, .. }) if !was_running => {
            // Never attach an empty (deny-all) policy: the first sync must succeed first.
            resume = sdn_loader::sync::follow(&rt, url, &mut dp, opts, &STOP, true, None);
            if STOP.load(std::sync::atomic::Ordering::Relaxed) {
                bail!("stopped before the first sync from {url}; nothing was attached");
            }
        }
        _ => {}
    }
    let xdp_mode = match mode {
        Mode::Native => XdpMode::Driver,
        Mode::Generic => XdpMode::Skb,
    };
    for iface in ifaces {
        let how = {
            let _ns = netns.map(attach::enter_netns).transpose()?;
            attach::attach(&mut dp, pin_dir, iface, xdp_mode)?
        };
        let what = match how {
            Attached::New => "attached",
            Attached::Replaced => "replaced the program in the existing link of",
        };
        println!(
            "{what} {iface} ({} mode); pins under {}",
            mode_name(mode),
            pin_dir.display()
        );
    }
    if let Source::Db { url, once, opts } = source {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        // KPIs: collector and HTTP server in their own thread while following.
        let kpi_thread = if *once {
            None
        } else {
            Some(kpi::start_daemon(url, pin_dir, &opts.router, kpi, &STOP)?)
        };
        if !*once || was_running {
            // With --once on a running data plane, one sync; otherwise follow until stopped.
            sdn_loader::sync::follow(&rt, url, &mut dp, opts, &STOP, *once, resume);
        }
        if let Some(t) = kpi_thread {
            // The collector makes a last pass when it sees STOP.
            STOP.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = t.join();
        }
        tracing::info!("stopped following {url}; the data plane keeps the policy in force");
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) const fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Native => "native",
        Mode::Generic => "generic",
    }
}

pub(crate) fn detach(
    ifaces: &[String],
    pin_dir: &Path,
    netns: Option<&str>,
    purge: bool,
) -> Result<ExitCode> {
    let _ns = netns.map(attach::enter_netns).transpose()?;
    let mut code = ExitCode::SUCCESS;
    for iface in ifaces {
        if attach::detach(pin_dir, iface)? {
            println!("detached from {iface}");
        } else {
            eprintln!(
                "{iface}: not attached (no link pinned under {})",
                pin_dir.display()
            );
            code = ExitCode::FAILURE;
        }
    }
    if purge {
        let left = attach::attached_interfaces(pin_dir);
        if !left.is_empty() {
            bail!("not purging: still attached to {}", left.join(", "));
        }
        if pin_dir.exists() {
            std::fs::remove_dir_all(pin_dir)
                .with_context(|| format!("removing {}", pin_dir.display()))?;
            println!("removed {} (program, maps and counters)", pin_dir.display());
        }
    }
    Ok(code)
}

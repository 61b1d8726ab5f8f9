//! `run` and `detach`: load, attach and pin the program, follow a policy file or the database.

#[allow(
    clippy::wildcard_imports,
    reason = "the binary's shared imports and helpers"
)]
use super::*;

/// Where `run` takes its policy from.
pub(crate) enum Source {
    File {
        path: PathBuf,
        /// A policy with no agreements may be enforced.
        allow_empty: bool,
    },
    Db {
        url: String,
        once: bool,
        opts: sdn_loader::sync::SyncOptions,
    },
}

/// What `run` was asked to do, with the flags and the configuration file merged.
#[derive(Clone, Copy)]
pub(crate) struct RunArgs<'a> {
    pub(crate) ifaces: &'a [String],
    pub(crate) source: &'a Source,
    pub(crate) mode: Mode,
    pub(crate) pin_dir: &'a Path,
    pub(crate) netns: Option<&'a str>,
    pub(crate) caps: Capacities,
    pub(crate) kpi: &'a kpi::DaemonSettings,
}

pub(crate) fn run_attach(rt: &tokio::runtime::Runtime, args: RunArgs<'_>) -> Result<ExitCode> {
    let RunArgs {
        ifaces,
        source,
        mode,
        pin_dir,
        netns,
        caps,
        kpi,
    } = args;
    // Validate and compile a policy file before touching anything: a bad file changes nothing.
    let date = today(None);
    let compiled = match source {
        Source::File { path, allow_empty } => {
            let policy = load_policy(path)?;
            if policy.agreements.is_empty() && !allow_empty {
                bail!(
                    "{} holds no agreements: enforcing it would drop all IP traffic but the \
                     infrastructure allow list; nothing was changed (pass --allow-empty if that \
                     is what you want)",
                    path.display()
                );
            }
            Some((path, compile(&policy, date)?))
        }
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
    let before = PinSnapshot::take(pin_dir);
    let shutdown = Shutdown::on_signals(rt.handle()).context("handling SIGINT and SIGTERM")?;
    let start = Start {
        ifaces,
        source,
        mode,
        pin_dir,
        netns,
        was_running,
    };
    let (mut dp, resume) = match start.run(
        rt,
        &shutdown,
        caps,
        compiled.as_ref().map(|(p, c)| (*p, c)),
        date,
    ) {
        Ok(started) => started,
        Err(e) => {
            // A run refused before it attached leaves no pins behind (a half-made data
            // plane is hundreds of MiB of maps nobody uses).
            if !was_running && attach::attached_interfaces(pin_dir).is_empty() {
                for p in before.remove_new(pin_dir) {
                    tracing::info!("removed {} (pinned by this refused run)", p.display());
                }
            }
            return Err(e);
        }
    };
    if let Source::Db { url, once, opts } = source {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        // Ready (systemd, /healthz) once a sync step of the loop below finds the database's
        // policy in force: right away after a first sync, and after a restart onto a running
        // data plane only once its policy is checked against the database.
        let ready = sdn_loader::daemon::notify::Readiness::new(&format!(
            "enforcing on {} from {}",
            ifaces.join(", "),
            sdn_loader::db::redact_url(url)
        ));
        // KPIs: collector and HTTP server in their own thread while following.
        let kpi_task = if *once {
            None
        } else {
            Some(kpi::start_daemon(
                rt,
                kpi::DaemonSource {
                    url,
                    pin_dir,
                    router: &opts.router,
                    ready: &ready,
                },
                kpi,
                &shutdown,
            )?)
        };
        if !*once || was_running {
            // With --once on a running data plane, one sync; otherwise follow until stopped.
            let what = Follow {
                url,
                opts,
                once: *once,
                resume,
                ready: Some(ready),
            };
            sdn_loader::sync::follow(rt, &mut dp, what, &shutdown);
        }
        sdn_loader::daemon::notify::stopping();
        if let Some(t) = kpi_task {
            // The collector makes a last pass when it sees the shutdown.
            shutdown.trigger();
            let _ = rt.block_on(t);
        }
        tracing::info!(
            "stopped following {}; the data plane keeps the policy in force",
            sdn_loader::db::redact_url(url)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What `run` starts: the interfaces, the first policy and where it comes from.
struct Start<'a> {
    ifaces: &'a [String],
    source: &'a Source,
    mode: Mode,
    pin_dir: &'a Path,
    netns: Option<&'a str>,
    was_running: bool,
}

impl Start<'_> {
    /// Loads the data plane, puts the first policy in force (the file's, or the database's
    /// first sync) and attaches; the follower's memory of that first sync is returned.
    fn run(
        &self,
        rt: &tokio::runtime::Runtime,
        shutdown: &Shutdown,
        caps: Capacities,
        compiled: Option<(&PathBuf, &sdn_loader::compile::Compiled)>,
        date: NaiveDate,
    ) -> Result<(Dataplane, Option<sdn_loader::sync::Follower>)> {
        let mut dp =
            Dataplane::load_pinned(caps, self.pin_dir).context("loading the XDP program")?;
        let mut resume = None;
        let first = match (compiled, self.source) {
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
                FirstPolicy::File
            }
            (None, Source::Db { url, opts, .. }) if !self.was_running => {
                let what = Follow {
                    url,
                    opts,
                    once: true,
                    resume: None,
                    // Not attached yet: nobody may hear "ready" from this one.
                    ready: None,
                };
                resume = sdn_loader::sync::follow(rt, &mut dp, what, shutdown);
                let applied = resume.as_ref().and_then(|f| f.applied).map(|a| a.revision);
                FirstPolicy::FirstSync { url, applied }
            }
            _ => FirstPolicy::AlreadyRunning,
        };
        // Never attach an empty (deny-all) policy.
        ready_to_attach(&first)?;
        let xdp_mode = match self.mode {
            Mode::Native => XdpMode::Driver,
            Mode::Generic => XdpMode::Skb,
        };
        for iface in self.ifaces {
            let how = {
                let _ns = self.netns.map(attach::enter_netns).transpose()?;
                attach::attach(&mut dp, self.pin_dir, iface, xdp_mode)?
            };
            let what = match how {
                Attached::New => "attached",
                Attached::Replaced => "replaced the program in the existing link of",
            };
            println!(
                "{what} {iface} ({} mode); pins under {}",
                self.mode.name(),
                self.pin_dir.display()
            );
        }
        Ok((dp, resume))
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

//! sdn-loader: load, attach and pin the sdn-filter XDP program; replay and explain verdicts;
//! show counters.

use std::{
    io::Write as _,
    net::IpAddr,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context as _, Result, bail};
use aya::programs::xdp::XdpMode;
use chrono::{NaiveDate, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use sdn_common::{AgreementCounters, reason};
use sdn_loader::{
    compile::compile,
    config::Config,
    dataplane::{
        Capacities, Dataplane, Maps,
        attach::{self, Attached},
    },
    paths::DEFAULT_PIN_DIR,
    policy,
    tools::{
        explain::describe,
        frames::{self as synth, Spec},
        replay::{Replayer, Summary, read_capture},
    },
};
use serde::Serialize;

mod db;
mod fleet;
mod kpi;

#[derive(Parser)]
#[command(
    name = "sdn-loader",
    version,
    about = "sdn-filter: per-agreement XDP allow lists for the health data network"
)]
struct Cli {
    /// Configuration file (default /etc/sdn/sdn.toml when it exists); flags override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// In the driver (fastest; veth and most 10G+ NICs).
    Native,
    /// In the kernel network stack (works everywhere, slower).
    Generic,
}

/// This router's identity and state (flags over the config file).
#[derive(clap::Args, Clone, Default)]
pub(crate) struct FleetArgs {
    /// This router's name in the database (default: `router` of the config file, else the
    /// host name).
    #[arg(long)]
    pub(crate) router: Option<String>,
    /// Where the loader keeps the policy in force (default /var/lib/sdn).
    #[arg(long)]
    pub(crate) state_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate and compile a policy file; print what it would load.
    Check {
        /// Policy file (TOML, or JSON by extension).
        #[arg(long)]
        policy: PathBuf,
        /// Judge expiry as of this UTC date (default: today).
        #[arg(long)]
        date: Option<NaiveDate>,
    },
    /// Run every frame of a pcap/pcapng file through a private instance of the program.
    Replay {
        /// Policy file.
        #[arg(long)]
        policy: PathBuf,
        /// Capture file (pcap or pcapng).
        #[arg(long)]
        pcap: PathBuf,
        /// One JSON object per frame.
        #[arg(long)]
        json: bool,
        /// Judge expiry as of this UTC date (default: today).
        #[arg(long)]
        date: Option<NaiveDate>,
    },
    /// Judge one synthesised packet and say which agreement and clause decided it.
    Explain {
        /// Policy file.
        #[arg(long)]
        policy: PathBuf,
        /// Source address.
        src: IpAddr,
        /// Destination address.
        dst: IpAddr,
        /// tcp, udp, sctp, icmp, icmpv6 or a protocol number.
        proto: String,
        /// Source port (ICMP: echo identifier).
        sport: Option<u16>,
        /// Destination port (ICMP: type; default 8/128, echo request).
        dport: Option<u16>,
        /// Tag the frame with this VLAN.
        #[arg(long)]
        vlan: Option<u16>,
        /// TCP: a SYN without ACK (default: an ACK segment).
        #[arg(long)]
        syn: bool,
        /// Judge expiry as of this UTC date (default: today).
        #[arg(long)]
        date: Option<NaiveDate>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Load the policy and attach the program to interfaces; pins keep it running after exit.
    Run {
        /// Interface(s) to attach to (default: `interfaces` of the config file).
        #[arg(long = "iface")]
        ifaces: Vec<String>,
        /// Policy file (load it and exit; the pins keep it enforced).
        #[arg(long, conflicts_with = "db")]
        policy: Option<PathBuf>,
        /// Follow this agreement database (sqlite://PATH or postgres://...): full sync, then
        /// every change by revision, until stopped (default: `database` of the config file).
        #[arg(long)]
        db: Option<String>,
        /// With --db: sync once and exit.
        #[arg(long)]
        once: bool,
        /// With --db: how often to check the revision, in milliseconds (default 50;
        /// PostgreSQL also wakes at once on NOTIFY).
        #[arg(long)]
        poll_ms: Option<u64>,
        /// XDP mode (default native).
        #[arg(long, value_enum)]
        mode: Option<Mode>,
        /// Pin directory on bpffs.
        #[arg(long)]
        pin_dir: Option<PathBuf>,
        /// Enter this network namespace (`ip netns` name) first.
        #[arg(long)]
        netns: Option<String>,
        #[command(flatten)]
        fleet: FleetArgs,
        /// Turn the blast-radius guard off.
        #[arg(long)]
        no_guard: bool,
        /// Hold a sync removing more than this share (0-1) of the allow-list rules.
        #[arg(long)]
        guard_max_removed_share: Option<f64>,
        /// An agreement with traffic within this many hours is "recently active".
        #[arg(long)]
        guard_active_hours: Option<u64>,
        /// How often to sample per-agreement activity, in milliseconds (default 60000).
        #[arg(long, default_value_t = 60_000)]
        activity_ms: u64,
        /// Counter slots (agreements in force) when the maps are created.
        #[arg(long)]
        max_agreements: Option<u32>,
        /// Prefix entries (both generations) when the maps are created.
        #[arg(long)]
        max_prefixes: Option<u32>,
        /// Rule entries (both generations) when the maps are created.
        #[arg(long)]
        max_rules: Option<u32>,
        /// With --db: KPI collection and the read-only HTTP server.
        #[command(flatten)]
        kpi: kpi::DaemonKpi,
    },
    /// Show what the next sync would add and remove on this router, and the traffic of the
    /// agreements that would lose access.
    Plan {
        /// Agreement database (default: `database` of the config file).
        #[arg(long)]
        db: Option<String>,
        #[command(flatten)]
        fleet: FleetArgs,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Release a revision the blast-radius guard holds.
    Confirm {
        /// The held revision.
        revision: u64,
        /// Agreement database (default: `database` of the config file).
        #[arg(long)]
        db: Option<String>,
        #[command(flatten)]
        fleet: FleetArgs,
        /// Confirm it for every router following the database.
        #[arg(long)]
        all_routers: bool,
        /// Who confirms (default: the login name).
        #[arg(long, default_value_t = db::default_actor())]
        actor: String,
    },
    /// Provisioning status of the routers following the database (all, or one with
    /// --router), per router and per agreement.
    Status {
        /// Agreement database (default: `database` of the config file).
        #[arg(long)]
        db: Option<String>,
        /// Only this router, with its agreements.
        #[arg(long)]
        router: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Detach the program from an interface.
    Detach {
        /// Interface.
        #[arg(long = "iface", required = true)]
        ifaces: Vec<String>,
        /// Pin directory on bpffs.
        #[arg(long, default_value = DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
        /// Enter this network namespace first.
        #[arg(long)]
        netns: Option<String>,
        /// Also remove the pinned program and maps (counters are lost) once no link remains.
        #[arg(long)]
        purge: bool,
    },
    /// Print every dropped packet (aya-log from the running program) until interrupted.
    Log {
        /// Pin directory on bpffs.
        #[arg(long, default_value = DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
        /// Stop after this many seconds (default: until Ctrl-C).
        #[arg(long)]
        seconds: Option<u64>,
    },
    /// The agreement database: init, import/export, organisations, services, endpoints,
    /// clients, prefixes, agreements, port aliases, audit log.
    Db {
        /// Database URL: sqlite://PATH (relative), sqlite:///PATH (absolute) or
        /// postgres://USER@HOST/DB (default: `database` of the config file, else
        /// sqlite:///var/lib/sdn/sdn.db).
        #[arg(long)]
        db: Option<String>,
        /// Who makes the change (recorded in the audit log; default: the login name).
        #[arg(long, default_value_t = db::default_actor())]
        actor: String,
        /// Request id recorded with every change (default: a new UUID, printed).
        #[arg(long)]
        request_id: Option<String>,
        #[command(subcommand)]
        command: db::DbCommand,
    },
    /// Per-agreement traffic KPIs: queries, monthly report, HTML report, collector, HTTP.
    Kpi {
        /// Database URL (as for `db`; default: `database` of the config file).
        #[arg(long)]
        db: Option<String>,
        #[command(subcommand)]
        command: kpi::KpiCommand,
    },
    /// Check what the data plane needs from this kernel.
    Probe {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Per-agreement counters and drop reasons of the running data plane.
    Stats {
        /// Pin directory on bpffs.
        #[arg(long, default_value = DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

fn today(date: Option<NaiveDate>) -> NaiveDate {
    date.unwrap_or_else(|| Utc::now().date_naive())
}

fn load_policy(path: &Path) -> Result<policy::Policy> {
    Ok(policy::load_file(path)?)
}

fn main() -> ExitCode {
    // Exit quietly when the reader of our output goes away (`sdn-loader stats | head`).
    // SAFETY: restoring the default disposition of SIGPIPE before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SDN_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration file's values where flags leave them open.
trait ConfigExt {
    fn db_url(&self, flag: Option<String>) -> String;
    fn fleet(&self, flags: FleetArgs) -> (String, PathBuf);
}

impl ConfigExt for Config {
    fn db_url(&self, flag: Option<String>) -> String {
        flag.or_else(|| self.database.clone())
            .unwrap_or_else(|| sdn_loader::db::DEFAULT_URL.to_owned())
    }

    fn fleet(&self, flags: FleetArgs) -> (String, PathBuf) {
        (
            flags.router.unwrap_or_else(|| self.router.clone()),
            flags.state_dir.unwrap_or_else(|| self.state_dir.clone()),
        )
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Check { policy, date } => check(&policy, today(date)),
        Command::Replay {
            policy,
            pcap,
            json,
            date,
        } => replay(&policy, &pcap, json, today(date)),
        Command::Explain {
            policy,
            src,
            dst,
            proto,
            sport,
            dport,
            vlan,
            syn,
            date,
            json,
        } => {
            let protocol = synth::protocol_number(&proto, src.is_ipv6())?;
            let icmp = protocol == 1 || protocol == 58;
            let spec = Spec {
                src,
                dst,
                protocol,
                sport: sport.unwrap_or(if icmp { 1 } else { 40000 }),
                dport: dport.unwrap_or(match protocol {
                    1 => 8,
                    58 => 128,
                    _ => 0,
                }),
                vlan,
                tcp_flags: if syn { 0x02 } else { 0x10 },
                ext_headers: 0,
            };
            explain(&policy, &spec, today(date), json)
        }
        Command::Run {
            ifaces,
            policy,
            db,
            once,
            poll_ms,
            mode,
            pin_dir,
            netns,
            fleet,
            no_guard,
            guard_max_removed_share,
            guard_active_hours,
            activity_ms,
            max_agreements,
            max_prefixes,
            max_rules,
            kpi,
        } => {
            let mut maps = config.maps;
            maps.agreements = max_agreements.unwrap_or(maps.agreements).max(1);
            maps.prefixes = max_prefixes.unwrap_or(maps.prefixes).max(1);
            maps.rules = max_rules.unwrap_or(maps.rules).max(1);
            let ifaces = if ifaces.is_empty() {
                config.interfaces.clone()
            } else {
                ifaces
            };
            if ifaces.is_empty() {
                bail!("give --iface IF (or `interfaces` in the configuration file)");
            }
            let mode = mode.unwrap_or(match config.mode.as_deref() {
                Some("generic") => Mode::Generic,
                _ => Mode::Native,
            });
            let pin_dir = pin_dir
                .or_else(|| config.pin_dir.clone())
                .unwrap_or_else(|| PathBuf::from(DEFAULT_PIN_DIR));
            let source = match (policy, db.or_else(|| config.database.clone())) {
                (Some(p), _) => Source::File(p),
                (None, Some(url)) => {
                    let mut guard = config.guard;
                    guard.enabled &= !no_guard;
                    if let Some(v) = guard_max_removed_share {
                        if !(0.0..=1.0).contains(&v) {
                            bail!("--guard-max-removed-share must be between 0 and 1");
                        }
                        guard.max_removed_share = v;
                    }
                    if let Some(v) = guard_active_hours {
                        guard.active_hours = v;
                    }
                    let opts = sdn_loader::sync::SyncOptions {
                        poll: std::time::Duration::from_millis(
                            poll_ms.unwrap_or(config.sync.poll_ms).max(1),
                        ),
                        reconcile: std::time::Duration::from_secs(config.sync.reconcile_s),
                        router: fleet.router.unwrap_or_else(|| config.router.clone()),
                        guard,
                        activity_every: std::time::Duration::from_millis(activity_ms.max(1)),
                        state_dir: Some(
                            fleet.state_dir.unwrap_or_else(|| config.state_dir.clone()),
                        ),
                        infrastructure: config.infrastructure.clone(),
                        pin_dir: Some(pin_dir.clone()),
                        ..Default::default()
                    };
                    Source::Db { url, once, opts }
                }
                (None, None) => bail!(
                    "give --policy FILE or --db URL (or `database` in the configuration file)"
                ),
            };
            run_attach(
                &ifaces,
                &source,
                mode,
                &pin_dir,
                netns.as_deref(),
                maps.into(),
                &kpi,
            )
        }
        Command::Plan { db, fleet, json } => {
            let (router, state_dir) = config.fleet(fleet);
            fleet::plan(&config.db_url(db), &config, &router, &state_dir, json)
        }
        Command::Confirm {
            revision,
            db,
            fleet,
            all_routers,
            actor,
        } => {
            let (router, _) = config.fleet(fleet);
            let router = if all_routers { "*".to_owned() } else { router };
            fleet::confirm(&config.db_url(db), &router, revision, &actor)
        }
        Command::Status { db, router, json } => {
            fleet::status(&config.db_url(db), router.as_deref(), json)
        }
        Command::Detach {
            ifaces,
            pin_dir,
            netns,
            purge,
        } => detach(&ifaces, &pin_dir, netns.as_deref(), purge),
        Command::Stats { pin_dir, json } => stats(&pin_dir, json),
        Command::Log { pin_dir, seconds } => drop_log(&pin_dir, seconds),
        Command::Probe { json } => probe_cmd(json),
        Command::Db {
            db,
            actor,
            request_id,
            command,
        } => db::run(&config.db_url(db), &actor, request_id, command),
        Command::Kpi { db, command } => kpi::run(&config.db_url(db), command, &STOP),
    }
}

fn check(path: &Path, date: NaiveDate) -> Result<ExitCode> {
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

fn replay(policy_path: &Path, pcap: &Path, json: bool, date: NaiveDate) -> Result<ExitCode> {
    let p = load_policy(policy_path)?;
    let frames = read_capture(pcap)?;
    let mut r = Replayer::new(&p, date)?;
    let mut sum = Summary::default();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for f in &frames {
        let v = r.judge(f)?;
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
    eprintln!(
        "{} frames: {} passed, {} dropped, {} transactions (policy {}, as of {date})",
        sum.frames,
        sum.passed,
        sum.dropped,
        sum.transactions,
        policy_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn explain(policy_path: &Path, spec: &Spec, date: NaiveDate, json: bool) -> Result<ExitCode> {
    let p = load_policy(policy_path)?;
    let frame = synth::build(spec)?;
    let mut r = Replayer::new(&p, date)?;
    let v = r.judge(&frame)?;
    if json {
        println!("{}", serde_json::to_string(&v)?);
    } else {
        print!("{}", describe(&p, spec, &v));
    }
    Ok(ExitCode::SUCCESS)
}

/// Where `run` takes its policy from.
enum Source {
    File(PathBuf),
    Db {
        url: String,
        once: bool,
        opts: sdn_loader::sync::SyncOptions,
    },
}

fn run_attach(
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

const fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Native => "native",
        Mode::Generic => "generic",
    }
}

fn detach(ifaces: &[String], pin_dir: &Path, netns: Option<&str>, purge: bool) -> Result<ExitCode> {
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

#[derive(Serialize)]
struct AgreementRow {
    agreement: u32,
    forward_packets: u64,
    forward_bytes: u64,
    reply_packets: u64,
    reply_bytes: u64,
    transactions: u64,
}

#[derive(Serialize)]
struct StatsOut {
    generation: u32,
    interfaces: Vec<String>,
    /// Every interface the pin tree knows of, configured or linked, attached or not.
    interface_health: Vec<sdn_loader::dataplane::pins::InterfaceHealth>,
    /// Configured interfaces without a program: the filter is not enforcing there.
    alarms: Vec<String>,
    flow_table: sdn_loader::dataplane::FlowTableUsage,
    agreements: Vec<AgreementRow>,
    reasons: std::collections::BTreeMap<&'static str, u64>,
}

fn row(id: u32, c: &AgreementCounters) -> AgreementRow {
    AgreementRow {
        agreement: id,
        forward_packets: c.forward_packets,
        forward_bytes: c.forward_bytes,
        reply_packets: c.reply_packets,
        reply_bytes: c.reply_bytes,
        transactions: c.transactions,
    }
}

fn stats(pin_dir: &Path, json: bool) -> Result<ExitCode> {
    let maps = Maps::open_pinned(pin_dir).with_context(|| {
        format!(
            "no running data plane under {} (run `sdn-loader run` first)",
            pin_dir.display()
        )
    })?;
    let slots = maps.slots_in_force()?;
    let counters = maps.counters_of(&slots)?;
    let reasons = maps.reason_counts()?;
    let out = StatsOut {
        generation: maps.config()?.active_generation,
        interfaces: attach::attached_interfaces(pin_dir),
        interface_health: sdn_loader::dataplane::pins::interface_health(pin_dir),
        alarms: sdn_loader::dataplane::pins::alarms(pin_dir),
        flow_table: maps.flow_table_usage()?,
        agreements: counters.iter().map(|(id, c)| row(*id, c)).collect(),
        reasons: (0..reason::COUNT)
            .map(|r| (reason::name(r), reasons.get(&r).copied().unwrap_or(0)))
            .collect(),
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

static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Turns on drop logging in the running program, prints the records, and turns it off again.
fn drop_log(pin_dir: &Path, seconds: Option<u64>) -> Result<ExitCode> {
    let mut maps = Maps::open_pinned(pin_dir).with_context(|| {
        format!(
            "no running data plane under {} (run `sdn-loader run` first)",
            pin_dir.display()
        )
    })?;
    let prog = pin_dir.join(sdn_loader::paths::LOGGER_PIN);
    let info = aya::programs::ProgramInfo::from_pin(&prog)
        .with_context(|| format!("reading {}", prog.display()))?;
    let mut logger =
        aya_log::EbpfLogger::init_from_id(info.id()).context("opening the program's log ring")?;
    // SAFETY: installing an async-signal-safe handler that only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    maps.update_flags(sdn_common::flags::LOG_DROPS, 0)?;
    eprintln!("logging drops (Ctrl-C to stop)");
    let start = std::time::Instant::now();
    while !STOP.load(std::sync::atomic::Ordering::Relaxed)
        && seconds.is_none_or(|s| start.elapsed().as_secs() < s)
    {
        logger.flush();
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    logger.flush();
    maps.update_flags(0, sdn_common::flags::LOG_DROPS)?;
    Ok(ExitCode::SUCCESS)
}

fn probe_cmd(json: bool) -> Result<ExitCode> {
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

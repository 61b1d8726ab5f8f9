//! sdn-loader: load, attach and pin the sdn-filter XDP program; replay and explain verdicts;
//! show counters.
#![allow(
    unused_crate_dependencies,
    reason = "the package's dependency list is shared with the library (axum, hyper, sqlx, ... are the library's)"
)]

use std::{
    io::Write as _,
    net::IpAddr,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context as _, Result, bail};
use aya::programs::xdp::XdpMode;
use chrono::{NaiveDate, Utc};
use clap::{Parser, Subcommand};
use sdn_common::{AgreementCounters, reason};
use sdn_loader::{
    compile::compile,
    config::{Config, LogFormat},
    daemon::{FirstPolicy, Shutdown, ready_to_attach},
    dataplane::{
        Capacities, Dataplane, Maps,
        attach::{self, Attached},
        pins::PinSnapshot,
    },
    paths::DEFAULT_PIN_DIR,
    policy,
    sync::Follow,
    tools::{
        explain::describe,
        frames::{self as synth, Spec},
        replay::{ReplayError, Replayer, Summary, read_capture},
    },
};
use serde::Serialize;

mod cli;
mod db;
mod fleet;
mod generate;
mod kpi;
mod run;
mod stats;
mod verdicts;

use cli::{Cli, Command, ConfigCommand, FleetArgs, Mode};
use run::{RunArgs, Source, detach, run_attach};
use stats::{drop_log, probe_cmd, stats};
use verdicts::{check, explain, replay};

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
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            // Whatever a cause quotes, no credential of a database URL is printed.
            eprintln!("error: {}", sdn_loader::db::redact_text(&format!("{e:#}")));
            if let Some(hint) = sdn_loader::dataplane::permission_hint(e.as_ref()) {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Log lines go to standard error, filtered by `SDN_LOG` (default `info,sqlx=warn`).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SDN_LOG")
        .unwrap_or_else(|_| "info,sqlx=warn".into());
    let lines = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => lines
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // One object per line, the event's fields at the top level beside `message`.
        LogFormat::Json => lines.json().flatten_event(true).init(),
    }
}

/// The pin directory: the flag, else `pin_dir` of the configuration file, else the default.
fn pin_dir_of(config: &Config, flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| config.pin_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PIN_DIR))
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

/// The process's one async runtime: database access, the daemon's sync loop, the KPI
/// collector and the HTTP server all run on it. The sync loop runs on the main thread
/// (`block_on`); one worker runs the KPI collector and the HTTP server, so that a flood of
/// scrapes can take one core at most and never starve enforcement (with two workers the
/// soak's commit-to-enforced p99 went from ~80 ms to ~210 ms on two cores).
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("sdn-loader-rt")
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(cli: Cli) -> Result<ExitCode> {
    // Generated documentation needs no configuration (a broken file must not stop it).
    match &cli.command {
        Command::Completions { shell } => return Ok(generate::completions(*shell)),
        Command::Man { out } => return generate::man(out),
        _ => {}
    }
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(format) = cli.log_format {
        config.log_format = format;
    }
    init_logging(config.log_format);
    let rt = runtime()?;
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
            pin_dir,
            state_dir,
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
            let source = match &policy {
                Some(path) => verdicts::Judged::File(path),
                None => verdicts::Judged::InForce {
                    pin_dir: pin_dir_of(&config, pin_dir),
                    state_dir: state_dir.unwrap_or_else(|| config.state_dir.clone()),
                },
            };
            explain(&source, &spec, today(date), json)
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
            allow_empty,
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
            let mode = mode.or(config.mode).unwrap_or(Mode::Native);
            let pin_dir = pin_dir_of(&config, pin_dir);
            let source = match (policy, db.or_else(|| config.database.clone())) {
                (Some(p), _) => Source::File {
                    path: p,
                    allow_empty,
                },
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
                        allow_empty,
                        ..Default::default()
                    };
                    Source::Db { url, once, opts }
                }
                (None, None) => bail!(
                    "give --policy FILE or --db URL (or `database` in the configuration file)"
                ),
            };
            let kpi = kpi.resolve(&config);
            run_attach(
                &rt,
                RunArgs {
                    ifaces: &ifaces,
                    source: &source,
                    mode,
                    pin_dir: &pin_dir,
                    netns: netns.as_deref(),
                    caps: maps.into(),
                    kpi: &kpi,
                },
            )
        }
        Command::Plan { db, fleet, json } => {
            let (router, state_dir) = config.fleet(fleet);
            fleet::plan(&rt, &config.db_url(db), &config, &router, &state_dir, json)
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
            fleet::confirm(&rt, &config.db_url(db), &router, revision, &actor)
        }
        Command::Status { db, router, json } => {
            fleet::status(&rt, &config.db_url(db), router.as_deref(), json)
        }
        Command::Detach {
            ifaces,
            pin_dir,
            netns,
            purge,
        } => detach(
            &ifaces,
            &pin_dir_of(&config, pin_dir),
            netns.as_deref(),
            purge,
        ),
        Command::Stats { pin_dir, json } => stats(&pin_dir_of(&config, pin_dir), json),
        Command::Log { pin_dir, seconds } => drop_log(&rt, &pin_dir_of(&config, pin_dir), seconds),
        Command::Probe { json } => probe_cmd(json),
        Command::Rules {
            pin_dir,
            agreement,
            organisation,
            state_dir,
            json,
        } => {
            // An organisation is known by name only to the policy in force.
            let of_organisation = match organisation {
                None => None,
                Some(org) => {
                    let dir = state_dir.unwrap_or_else(|| config.state_dir.clone());
                    let (_, policy) = sdn_loader::sync::state::load(&dir)?.with_context(|| {
                        format!(
                            "--organisation needs the policy in force, and {} holds none",
                            dir.display()
                        )
                    })?;
                    Some(agreements_of(&policy, &org)?)
                }
            };
            rules_cmd(
                &pin_dir_of(&config, pin_dir),
                agreement,
                of_organisation.as_ref(),
                json,
            )
        }
        Command::Config { command } => config_cmd(config, command),
        Command::Completions { shell } => Ok(generate::completions(shell)),
        Command::Man { out } => generate::man(&out),
        Command::Db {
            db,
            actor,
            request_id,
            allow_empty,
            json,
            command,
        } => db::run(
            &rt,
            &config.db_url(db),
            &actor,
            request_id,
            allow_empty,
            json,
            command,
        ),
        Command::Kpi { db, command } => kpi::run(&rt, &config.db_url(db), &config, command),
    }
}

/// `config check` and `config show`.
fn config_cmd(mut config: Config, command: ConfigCommand) -> Result<ExitCode> {
    match command {
        ConfigCommand::Check => {
            // Loading it (before this) has judged every key; what is left is doubt.
            let Some(path) = &config.path else {
                println!(
                    "no configuration file at {}: the defaults apply",
                    sdn_loader::config::DEFAULT_PATH
                );
                return Ok(ExitCode::SUCCESS);
            };
            if config.interfaces.is_empty() {
                tracing::warn!("no `interfaces`: `run` needs --iface");
            }
            if config.database.is_none() {
                tracing::warn!(
                    "no `database`: `run` needs --db or --policy (the db and kpi commands use {})",
                    sdn_loader::db::DEFAULT_URL
                );
            }
            let listen = &config.http.listen;
            if listen != "off" && !(listen.starts_with("127.") || listen.starts_with("[::1]")) {
                tracing::warn!(
                    listen = %listen,
                    "the HTTP server listens beyond this host: KPIs and metrics are readable by anyone who reaches it"
                );
            }
            println!(
                "{}: valid (router {}, {} interface(s), {} infrastructure entr{})",
                path.display(),
                config.router,
                config.interfaces.len(),
                config.infrastructure.len(),
                if config.infrastructure.len() == 1 {
                    "y"
                } else {
                    "ies"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Show { db, pin_dir, fleet } => {
            config.database = Some(config.db_url(db));
            config.pin_dir = Some(pin_dir_of(&config, pin_dir));
            (config.router, config.state_dir) = config.fleet(fleet);
            print!("{}", config.render()?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The agreements where `org` is the client's or the service's organisation.
fn agreements_of(policy: &policy::Policy, org: &str) -> Result<std::collections::BTreeSet<u32>> {
    if !policy.organisations.iter().any(|o| o.id == org) {
        bail!("no organisation {org:?} in the policy in force");
    }
    let clients: std::collections::HashMap<&str, &str> = (policy.clients.iter())
        .map(|c| (c.id.as_str(), c.organisation.as_str()))
        .collect();
    let services: std::collections::HashMap<&str, &str> = (policy.services.iter())
        .map(|s| (s.id.as_str(), s.organisation.as_str()))
        .collect();
    let org_of_client = |id: &str| clients.get(id).copied();
    let org_of_service = |id: &str| services.get(id).copied();
    Ok((policy.agreements.iter())
        .filter(|a| {
            org_of_client(&a.client).is_some_and(|o| o == org)
                || org_of_service(&a.service).is_some_and(|o| o == org)
        })
        .map(|a| a.id)
        .collect())
}

/// `rules`: the active generation decoded from the pinned maps.
fn rules_cmd(
    pin_dir: &Path,
    agreement: Option<u32>,
    organisation: Option<&std::collections::BTreeSet<u32>>,
    json: bool,
) -> Result<ExitCode> {
    let maps = Maps::open_pinned(pin_dir)
        .with_context(|| format!("opening the data plane pinned at {}", pin_dir.display()))?;
    let tables = maps.active_tables()?;
    let lines: Vec<_> = sdn_loader::tools::rules::decode(&tables)
        .into_iter()
        .filter(|l| agreement.is_none_or(|a| l.agreement == a))
        .filter(|l| organisation.is_none_or(|ids| ids.contains(&l.agreement)))
        .collect();
    if let Some(a) = agreement
        && lines.is_empty()
    {
        bail!("agreement {a} has no rules in force on this data plane");
    }
    if json {
        let v: Vec<_> = lines
            .iter()
            .map(sdn_loader::tools::rules::Line::to_json)
            .collect();
        println!("{}", serde_json::Value::from(v));
    } else {
        println!(
            "# rules in force, generation slot {} ({} lines)",
            tables.generation,
            lines.len()
        );
        for l in &lines {
            println!("{l}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `sdn-loader kpi ...`: per-agreement traffic KPIs from the command line, and the KPI side
//! of the daemon (`run --db`): collector and HTTP server in a thread of their own.

use sdn_loader::daemon::Shutdown;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use clap::Subcommand;
use sdn_loader::config::HttpConfig;
use sdn_loader::dataplane::Maps;
use sdn_loader::kpi::connections::Limits;
use sdn_loader::kpi::http::{self, HttpState};
use sdn_loader::kpi::{
    Collector, KpiStore, Resolution, Retention,
    metrics::Cardinality,
    parse_time,
    query::{self, QueryText},
    report,
};

/// `sdn-loader kpi <command>`.
#[derive(Subcommand)]
pub(crate) enum KpiCommand {
    /// Traffic per agreement (or service, client, organisation, router) over a time range.
    Query {
        #[command(flatten)]
        q: QueryText,
        #[command(flatten)]
        format: TableFormat,
    },
    /// GB per month and per organisation.
    Monthly {
        /// Start (default: a year before --to).
        #[arg(long)]
        from: Option<String>,
        /// End, exclusive (default: now).
        #[arg(long)]
        to: Option<String>,
        /// Only this router.
        #[arg(long)]
        router: Option<String>,
        #[command(flatten)]
        format: TableFormat,
    },
    /// A self-contained HTML page with charts (traffic, top agreements, drops, sync health).
    Report {
        /// Output file.
        #[arg(long)]
        html: PathBuf,
        #[command(flatten)]
        window: Window,
    },
    /// Collect counters of a running data plane (what `run --db` does in the background).
    Collect {
        /// Router name (default: `router` of the configuration file, else the host name).
        #[arg(long)]
        router: Option<String>,
        /// Pin directory of the running data plane (default: `pin_dir` of the configuration
        /// file, else /sys/fs/bpf/sdn).
        #[arg(long)]
        pin_dir: Option<PathBuf>,
        /// One pass, then exit.
        #[arg(long)]
        once: bool,
        /// Seconds between passes (default: `kpi.interval_s` of the configuration file, else
        /// 60).
        #[arg(long)]
        interval: Option<u64>,
        /// How long buckets are kept, e.g. minutes=7d,hours=365d,days=forever (default:
        /// `kpi.retention` of the configuration file).
        #[arg(long)]
        retention: Option<String>,
    },
    /// Packets per pass/drop reason per bucket.
    Reasons {
        #[command(flatten)]
        window: Window,
        /// Only this router.
        #[arg(long)]
        router: Option<String>,
        #[command(flatten)]
        format: TableFormat,
    },
    /// Serve /metrics and /api/v1 (read-only) until interrupted.
    Serve {
        /// Address to listen on (default: `http.listen` of the configuration file, else
        /// 127.0.0.1:9640).
        #[arg(long)]
        listen: Option<String>,
        /// Router name, its sync state is exported (default: `router` of the configuration
        /// file, else the host name).
        #[arg(long)]
        router: Option<String>,
        /// Pin directory of the running data plane (default: `pin_dir` of the configuration
        /// file; without one: no live counters).
        #[arg(long)]
        pin_dir: Option<PathBuf>,
        /// Per-agreement series: all, none, or the top N by bytes (default:
        /// `kpi.metrics_agreements` of the configuration file, else all).
        #[arg(long)]
        metrics_agreements: Option<String>,
        #[command(flatten)]
        limits: HttpLimits,
    },
}

/// How a table is printed: text, `--json` (the document the HTTP API answers, for `reasons`
/// `[{"bucket", "reason", "packets"}, ...]`) or `--csv` with a header line.
#[derive(Clone, Copy, Debug, clap::Args)]
pub(crate) struct TableFormat {
    /// JSON (the same document as the HTTP API).
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// CSV with a header line.
    #[arg(long)]
    csv: bool,
}

/// The time window of a report: `--from`, `--to` and `--bucket`.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct Window {
    /// Start (default: 24 hours before --to).
    #[arg(long)]
    from: Option<String>,
    /// End, exclusive (default: now).
    #[arg(long)]
    to: Option<String>,
    /// Bucket size: minute, hour, day or month.
    #[arg(long, default_value = "hour")]
    bucket: String,
}

impl Window {
    /// (from, to, bucket), with the defaults filled in.
    fn resolve(&self) -> Result<(DateTime<Utc>, DateTime<Utc>, Resolution)> {
        let to = self.to.as_deref().map_or(Ok(Utc::now()), parse_time)?;
        let from =
            (self.from.as_deref()).map_or(Ok(to - chrono::Duration::hours(24)), parse_time)?;
        Ok((from, to, Resolution::parse(&self.bucket)?))
    }
}

/// Connection limits of the HTTP server (`kpi serve` and `run --db`); each defaults to the
/// configuration file's `[http]` key of the same name, else to the value shown.
#[allow(
    clippy::struct_field_names,
    reason = "the fields are the flags' names (--http-max-connections, ...)"
)]
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct HttpLimits {
    /// HTTP connections open at once (also bounded by the file limit, less 128 kept for the
    /// database and the data plane). At the cap a new connection replaces the oldest idle one,
    /// or gets 503 when every connection runs a request.
    /// (default 256).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub http_max_connections: Option<u32>,
    /// Seconds a client may take to send a request's headers (slowloris; default 10).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_header_timeout: Option<u64>,
    /// Seconds a connection may stay open without a request (keep-alive included; default
    /// 60).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_idle_timeout: Option<u64>,
    /// Seconds a request may take before it is answered 503 (default 30).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_request_timeout: Option<u64>,
}

impl HttpLimits {
    /// The limits: flags over the configuration file over the defaults.
    fn limits(&self, file: &HttpConfig) -> Limits {
        let secs = |flag: Option<u64>, file: u64| Duration::from_secs(flag.unwrap_or(file));
        Limits {
            max_connections: self.http_max_connections.unwrap_or(file.max_connections) as usize,
            header_timeout: secs(self.http_header_timeout, file.header_timeout_s),
            idle_timeout: secs(self.http_idle_timeout, file.idle_timeout_s),
            request_timeout: secs(self.http_request_timeout, file.request_timeout_s),
        }
    }
}

/// Runs `sdn-loader kpi <command>`.
pub(crate) fn run(
    rt: &tokio::runtime::Runtime,
    url: &str,
    config: &sdn_loader::config::Config,
    cmd: KpiCommand,
) -> Result<ExitCode> {
    rt.block_on(async move {
        let store = KpiStore::open(url)
            .await
            .with_context(|| format!("opening {}", sdn_loader::db::redact_url(url)))?;
        match cmd {
            KpiCommand::Query {
                q,
                format: TableFormat { json, csv },
            } => {
                let q = q.to_query(Utc::now())?;
                let answer = query::run(&store, &q).await?;
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::new(stdout.lock());
                if json {
                    writeln!(out, "{}", serde_json::to_string_pretty(&answer)?)?;
                } else if csv {
                    writeln!(
                        out,
                        "bucket,key,forward_packets,forward_bytes,reply_packets,reply_bytes,transactions"
                    )?;
                    for r in &answer.rows {
                        let t = &r.traffic;
                        writeln!(
                            out,
                            "{},{},{},{},{},{},{}",
                            r.bucket,
                            csv_field(&r.key),
                            t.forward_packets,
                            t.forward_bytes,
                            t.reply_packets,
                            t.reply_bytes,
                            t.transactions
                        )?;
                    }
                } else {
                    writeln!(
                        out,
                        "{:<20} {:<16} {:>12} {:>14} {:>12} {:>14} {:>12}",
                        "bucket", "key", "fwd packets", "fwd bytes", "rep packets", "rep bytes",
                        "transactions"
                    )?;
                    for r in &answer.rows {
                        let t = &r.traffic;
                        writeln!(
                            out,
                            "{:<20} {:<16} {:>12} {:>14} {:>12} {:>14} {:>12}",
                            r.bucket.get(..19).unwrap_or(&r.bucket),
                            r.key,
                            t.forward_packets,
                            t.forward_bytes,
                            t.reply_packets,
                            t.reply_bytes,
                            t.transactions
                        )?;
                    }
                    if answer.rows.is_empty() {
                        writeln!(out, "(no traffic recorded in this range)")?;
                    }
                }
                out.flush()?;
            }
            KpiCommand::Monthly {
                from,
                to,
                router,
                format: TableFormat { json, csv },
            } => {
                let to = to.as_deref().map_or(Ok(Utc::now()), parse_time)?;
                let from = from
                    .as_deref()
                    .map_or(Ok(to - chrono::Duration::days(365)), parse_time)?;
                let rep = query::monthly(&store, from, to, router).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&rep)?);
                } else {
                    if csv {
                        println!("month,organisation,gb_as_client,gb_as_service,transactions");
                    }
                    for m in &rep.months {
                        if !csv {
                            println!(
                                "{}  total {:.3} GB, {} transactions",
                                m.month, m.total_gb, m.transactions
                            );
                        }
                        for o in &m.organisations {
                            if csv {
                                println!(
                                    "{},{},{:.6},{:.6},{}",
                                    m.month,
                                    csv_field(&o.organisation),
                                    o.as_client_gb,
                                    o.as_service_gb,
                                    o.transactions
                                );
                            } else {
                                println!(
                                    "  {:<24} {:>12.3} GB as client {:>12.3} GB as service {:>12} transactions",
                                    o.organisation, o.as_client_gb, o.as_service_gb, o.transactions
                                );
                            }
                        }
                    }
                }
            }
            KpiCommand::Report { html, window } => {
                let (from, to, bucket) = window.resolve()?;
                let page = report::html(&store, from, to, bucket).await?;
                std::fs::write(&html, page)
                    .with_context(|| format!("writing {}", html.display()))?;
                println!("wrote {}", html.display());
            }
            KpiCommand::Reasons {
                window,
                router,
                format: TableFormat { json, csv },
            } => {
                let (from, to, bucket) = window.resolve()?;
                let rows = query::reasons(&store, from, to, bucket, router.as_deref()).await?;
                if json {
                    let doc: Vec<_> = (rows.iter())
                        .map(|(b, r, n)| serde_json::json!({"bucket": b, "reason": r, "packets": n}))
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&doc)?);
                    return Ok(ExitCode::SUCCESS);
                }
                if csv {
                    println!("bucket,reason,packets");
                }
                for (b, r, n) in &rows {
                    if csv {
                        println!("{b},{r},{n}");
                    } else {
                        println!("{:<20} {r:<28} {n:>12}", b.get(..19).unwrap_or(b));
                    }
                }
            }
            KpiCommand::Collect {
                router,
                pin_dir,
                once,
                interval,
                retention,
            } => {
                let router = router_named(router, config, "records KPIs");
                let pin_dir = super::pin_dir_of(config, pin_dir);
                let maps = open_maps(&pin_dir)?;
                let retention = retention.as_deref().unwrap_or(&config.kpi.retention);
                let interval = interval.unwrap_or(config.kpi.interval_s);
                let mut c =
                    Collector::new(router, maps, store).with_retention(Retention::parse(retention)?);
                if once {
                    let r = c.pass(Utc::now()).await?;
                    println!(
                        "{} agreements, {} with traffic since the last pass; read {:.1} ms, written in {:.1} ms",
                        r.agreements,
                        r.active,
                        r.read.as_secs_f64() * 1e3,
                        r.write.as_secs_f64() * 1e3
                    );
                } else {
                    let shutdown = on_signals()?;
                    c.run(Duration::from_secs(interval.max(1)), &shutdown).await;
                }
            }
            KpiCommand::Serve {
                listen,
                router,
                pin_dir,
                metrics_agreements,
                limits,
            } => {
                let router = router_named(router, config, "exports sync state");
                let pin_dir = pin_dir.or_else(|| config.pin_dir.clone());
                let maps = pin_dir.as_deref().map(open_maps).transpose()?;
                let state = Arc::new(HttpState {
                    store,
                    maps: maps.map(std::sync::Mutex::new),
                    pin_dir: pin_dir.clone(),
                    router,
                    cardinality: Cardinality::parse(
                        metrics_agreements
                            .as_deref()
                            .unwrap_or(&config.kpi.metrics_agreements),
                    )?,
                    connections: Arc::default(),
                    // No sync of its own: ready when the database answers.
                    ready: None,
                });
                let listen = listen.as_deref().unwrap_or(&config.http.listen);
                let listener = http::bind(listen).await?;
                eprintln!("serving http://{listen}/metrics and /api/v1/");
                let shutdown = on_signals()?;
                let limits = limits.limits(&config.http);
                http::serve(listener, state, limits, stopped(&shutdown)).await?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The router a KPI command acts for: the flag, else the file's `router`, else the host
/// name, with a warning, since a fleet's figures are told apart by router name.
fn router_named(flag: Option<String>, config: &sdn_loader::config::Config, what: &str) -> String {
    if let Some(router) = flag {
        return router;
    }
    if !config.router_named {
        tracing::warn!(
            router = %config.router,
            "no --router and no `router` in the configuration file: {what} under the host name {}",
            config.router
        );
    }
    config.router.clone()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn open_maps(pin_dir: &Path) -> Result<Maps> {
    super::stats::open_running(pin_dir)
}

/// The shutdown handle of `kpi collect` and `kpi serve` (SIGINT, SIGTERM).
fn on_signals() -> Result<Shutdown> {
    Shutdown::on_signals(&tokio::runtime::Handle::current()).context("handling SIGINT and SIGTERM")
}

/// A future that ends when `shutdown` is triggered (for the HTTP server).
fn stopped(shutdown: &Shutdown) -> impl std::future::Future<Output = ()> + Send + 'static {
    let s = shutdown.clone();
    async move { s.triggered().await }
}

/// KPI options of `run --db`; each defaults to the configuration file's `[kpi]` or `[http]`
/// key, else to the value shown.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct DaemonKpi {
    /// Seconds between KPI collection passes (0: no collector; default 60).
    #[arg(long)]
    pub kpi_interval: Option<u64>,
    /// Address of the read-only HTTP server (/metrics, /api/v1); "off" for none (default
    /// 127.0.0.1:9640).
    #[arg(long)]
    pub listen: Option<String>,
    /// Per-agreement series in /metrics: all, none, or the top N by bytes (default all).
    #[arg(long)]
    pub metrics_agreements: Option<String>,
    /// How long KPI buckets are kept, e.g. minutes=7d,hours=365d,days=forever.
    #[arg(long)]
    pub kpi_retention: Option<String>,
    #[command(flatten)]
    pub http_limits: HttpLimits,
}

/// [`DaemonKpi`] with the configuration file and the defaults filled in.
#[derive(Clone, Debug)]
pub(crate) struct DaemonSettings {
    pub kpi_interval: u64,
    pub listen: String,
    pub metrics_agreements: String,
    pub kpi_retention: String,
    pub http_limits: Limits,
}

impl DaemonKpi {
    /// Flags over the configuration file over the defaults.
    pub(crate) fn resolve(&self, config: &sdn_loader::config::Config) -> DaemonSettings {
        let or =
            |flag: &Option<String>, file: &String| flag.clone().unwrap_or_else(|| file.clone());
        DaemonSettings {
            kpi_interval: self.kpi_interval.unwrap_or(config.kpi.interval_s),
            listen: or(&self.listen, &config.http.listen),
            metrics_agreements: or(&self.metrics_agreements, &config.kpi.metrics_agreements),
            kpi_retention: or(&self.kpi_retention, &config.kpi.retention),
            http_limits: self.http_limits.limits(&config.http),
        }
    }
}

/// What the daemon's collector and HTTP server read: the database, the pinned maps, the
/// router's name and the sync loop's readiness.
#[derive(Clone, Copy)]
pub(crate) struct DaemonSource<'a> {
    pub url: &'a str,
    pub pin_dir: &'a Path,
    pub router: &'a str,
    pub ready: &'a sdn_loader::daemon::notify::Readiness,
}

/// Starts the collector and the HTTP server as a task on the runtime (with their own handles
/// on the pinned maps, so they are independent of the sync loop). They stop when `shutdown` is
/// triggered; the collector makes a last pass first.
pub(crate) fn start_daemon(
    rt: &tokio::runtime::Runtime,
    source: DaemonSource<'_>,
    opts: &DaemonSettings,
    shutdown: &Shutdown,
) -> Result<tokio::task::JoinHandle<()>> {
    let cardinality = Cardinality::parse(&opts.metrics_agreements)?;
    let retention = Retention::parse(&opts.kpi_retention)?;
    let (url, pin_dir, opts, router, shutdown, ready) = (
        source.url.to_owned(),
        source.pin_dir.to_owned(),
        opts.clone(),
        source.router.to_owned(),
        shutdown.clone(),
        source.ready.clone(),
    );
    let run = async move {
        // The database may be unreachable when the daemon starts (the data plane
        // runs fail-static): retry until it is there or the daemon stops.
        let mut logged = false;
        let store = loop {
            match KpiStore::open(&url).await {
                Ok(s) => break s,
                Err(e) => {
                    if !logged {
                        tracing::warn!("KPIs wait for the database (retrying every 5 s): {e:#}");
                        logged = true;
                    }
                    if shutdown.sleep(Duration::from_secs(5)).await {
                        return anyhow::Ok(());
                    }
                }
            }
        };
        // A replaced SQLite file: this thread's connections to the old one close soon.
        let (watcher, watching) = (store.clone(), shutdown.clone());
        tokio::spawn(async move { watcher.watch(&watching).await });
        // A server that cannot start (address in use) is logged; collection goes on.
        let server = if opts.listen == "off" {
            None
        } else {
            let state = Arc::new(HttpState {
                store: store.clone(),
                maps: Some(std::sync::Mutex::new(open_maps(&pin_dir)?)),
                pin_dir: Some(pin_dir.clone()),
                router: router.clone(),
                cardinality,
                connections: Arc::default(),
                ready: Some(ready),
            });
            match http::bind(&opts.listen).await {
                Ok(listener) => {
                    tracing::info!("serving http://{}/metrics and /api/v1/", opts.listen);
                    Some(tokio::spawn(http::serve(
                        listener,
                        state,
                        opts.http_limits,
                        stopped(&shutdown),
                    )))
                }
                Err(e) => {
                    tracing::error!("no HTTP server: {e:#}");
                    None
                }
            }
        };
        if opts.kpi_interval > 0 {
            let mut c = Collector::new(router.clone(), open_maps(&pin_dir)?, store)
                .with_retention(retention);
            c.run(Duration::from_secs(opts.kpi_interval), &shutdown)
                .await;
        }
        if let Some(s) = server {
            let _ = s.await;
        }
        anyhow::Ok(())
    };
    Ok(rt.spawn(async move {
        if let Err(e) = run.await {
            tracing::error!("KPI collector / HTTP server stopped: {e:#}");
        }
    }))
}

//! `cargo xtask soak`: for N minutes, at once, a ping flood and TCP transfers through the
//! hub, concurrent writers changing agreements, kill -9 and restart of the loader, the
//! database going away and coming back, and concurrent HTTP clients; then checks that no
//! allowed packet was lost, no change lost or reverted, every revision enforced, and the
//! counters and KPIs add up. docs/soak.md says what each figure and check means.

mod checkpoint;
pub(crate) mod env;
mod faults;
pub(crate) mod http;
mod logs;
mod ping;
#[cfg(test)]
mod tests;
pub(crate) mod traffic;
mod verify;
mod vlan;
mod writers;

use std::{
    collections::BTreeMap,
    net::IpAddr,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{Result, anyhow, bail};
use chrono::{DateTime, Utc};
use serde_json::Value;

use checkpoint::{Run, export, kpi_totals, stats};
use env::{DbKind, Env};

/// Options of `cargo xtask soak`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct SoakArgs {
    /// Minutes of load and faults (the final checks follow).
    #[arg(long, default_value_t = 2.0)]
    minutes: f64,
    /// Seed of every random choice (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Concurrent writers of agreement changes.
    #[arg(long, default_value_t = 3)]
    writers: usize,
    /// Concurrent HTTP clients of the daemon.
    #[arg(long, default_value_t = 200)]
    http_clients: usize,
    /// Pause of each HTTP client between two requests, in ms.
    #[arg(long, default_value_t = 0)]
    http_pause_ms: u64,
    /// Keep logs, database and figures in this directory (default: a removed temporary one).
    #[arg(long)]
    keep_logs: Option<PathBuf>,
    /// Database backend.
    #[arg(long, value_enum, default_value = "sqlite")]
    db: DbKind,
    /// Stop early after this many attempted changes.
    #[arg(long, default_value_t = 20_000)]
    max_changes: u64,
    /// Stop early after this many faults (restarts plus outages).
    #[arg(long, default_value_t = 200)]
    max_faults: u64,
    /// Echo requests per second, per address family.
    #[arg(long, default_value_t = 500)]
    ping_rate: u32,
    /// Bytes per second of the long TCP stream.
    #[arg(long, default_value_t = 2_000_000)]
    tcp_rate: u64,
    /// Agreements the writers change.
    #[arg(long, default_value_t = 12)]
    pool: u32,
    /// Seconds between checkpoints (writers and faults paused, enforcement probed).
    #[arg(long, default_value_t = 15)]
    checkpoint_s: u64,
    /// Run the daemon without the blast-radius guard (default: guard on, the soak confirms
    /// every held revision and counts them).
    #[arg(long)]
    no_guard: bool,
    /// Use target/release/sdn-loader as it is.
    #[arg(long)]
    no_build: bool,
}

/// Soak time: seconds since the start, and the wall clock of the start (for log lines).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    start: Instant,
    wall: DateTime<Utc>,
}

impl Clock {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            wall: Utc::now(),
        }
    }

    /// Seconds since the start.
    pub(crate) fn t(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// A wall-clock time in soak seconds.
    pub(crate) fn at(&self, wall: DateTime<Utc>) -> f64 {
        (wall - self.wall).num_microseconds().unwrap_or(0) as f64 / 1e6
    }
}

/// Lets checkpoints pause the writers and the faults: each action runs between `enter` and
/// `leave`; `pause` waits until no action is under way.
#[derive(Default)]
pub(crate) struct Gate {
    paused: AtomicBool,
    busy: AtomicUsize,
}

impl Gate {
    /// Waits while paused; false when the run is over.
    pub(crate) fn enter(&self, over: &AtomicBool) -> bool {
        loop {
            // Busy first, then the flag: `pause` sets the flag first, then waits for busy.
            self.busy.fetch_add(1, Ordering::SeqCst);
            if !self.paused.load(Ordering::SeqCst) {
                return true;
            }
            self.busy.fetch_sub(1, Ordering::SeqCst);
            if over.load(Ordering::SeqCst) {
                return false;
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// Ends an action.
    pub(crate) fn leave(&self) {
        self.busy.fetch_sub(1, Ordering::SeqCst);
    }

    fn pause(&self, limit: Duration) -> bool {
        self.paused.store(true, Ordering::SeqCst);
        let t0 = Instant::now();
        while self.busy.load(Ordering::SeqCst) > 0 {
            if t0.elapsed() > limit {
                return false;
            }
            sleep(Duration::from_millis(10));
        }
        true
    }

    fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }
}

/// One verdict of the soak.
#[derive(Clone, Debug)]
pub(crate) struct Check {
    pub(crate) name: String,
    pub(crate) ok: bool,
    pub(crate) detail: String,
}

impl Check {
    pub(crate) fn new(name: &str, ok: bool, detail: String) -> Self {
        Self {
            name: name.to_owned(),
            ok,
            detail,
        }
    }
}

/// Sentinel agreements (no writer touches them): ping IPv4, ping IPv6, TCP.
pub(crate) const PING4: u32 = 1;
pub(crate) const PING6: u32 = 2;
pub(crate) const TCP: u32 = 3;
/// Pool agreement `i` (1-based) is `POOL_BASE + i`, UDP port `POOL_PORT + i`.
const POOL_BASE: u32 = 100;
const POOL_PORT: u16 = 7000;

fn policy(pool: u32) -> String {
    let mut p = String::from(
        "# cargo xtask soak: sentinels 1-3 (never changed), the writers' pool from 101.\n\
         [[organisation]]\nid = \"soak-region\"\nname = \"Soak region\"\n\n\
         [[organisation]]\nid = \"soak-sds\"\nname = \"Soak services\"\n\n\
         [[service]]\nid = \"ping4\"\norganisation = \"soak-sds\"\nname = \"Sentinel ping\"\n\
         endpoints = [{ address = \"203.0.113.10\", protocol = \"icmp\" }]\n\n\
         [[service]]\nid = \"ping6\"\norganisation = \"soak-sds\"\nname = \"Sentinel ping6\"\n\
         endpoints = [{ address = \"2001:db8:300::10\", protocol = \"icmpv6\" }]\n\n\
         [[service]]\nid = \"tcp\"\norganisation = \"soak-sds\"\nname = \"Sentinel TCP\"\n\
         endpoints = [{ address = \"203.0.113.10\", protocol = \"tcp\", ports = \"5001-5002\" }]\n\n\
         [[client]]\nid = \"clinic\"\norganisation = \"soak-region\"\n\
         prefixes = [\"198.51.100.10/32\", \"2001:db8:100::10/128\"]\n\n\
         [[client]]\nid = \"lab\"\norganisation = \"soak-region\"\nprefixes = [\"198.51.100.20/32\"]\n\n",
    );
    for (id, svc) in [(PING4, "ping4"), (PING6, "ping6"), (TCP, "tcp")] {
        p += &format!(
            "[[agreement]]\nid = {id}\nclient = \"clinic\"\nservice = \"{svc}\"\nstate = \"approved\"\n\n"
        );
    }
    for i in 1..=pool {
        let state = ["approved", "requested", "revoked"][(i % 3) as usize];
        p += &format!(
            "[[service]]\nid = \"pool-{i}\"\norganisation = \"soak-sds\"\nname = \"Pool {i}\"\n\
             endpoints = [{{ address = \"203.0.113.20\", protocol = \"udp\", ports = \"{}\" }}]\n\n\
             [[agreement]]\nid = {}\nclient = \"lab\"\nservice = \"pool-{i}\"\nstate = \"{state}\"\n\n",
            u32::from(POOL_PORT) + i,
            POOL_BASE + i
        );
    }
    p
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// `cargo xtask soak`.
pub(crate) fn soak(a: &SoakArgs) -> Result<()> {
    if !(0.05..=600.0).contains(&a.minutes) {
        bail!("--minutes must be between 0.05 and 600");
    }
    let bin = if a.no_build {
        crate::root().join("target/release/sdn-loader")
    } else {
        crate::build()?
    };
    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let mut run_args: Vec<String> = [
        "--poll-ms",
        "50",
        "--kpi-interval",
        "5",
        "--activity-ms",
        "2000",
    ]
    .map(str::to_owned)
    .to_vec();
    if a.no_guard {
        run_args.push("--no-guard".to_owned());
    }
    let (env, teardown) = env::create(
        bin,
        a.db,
        env::Place::soak(a.keep_logs.as_deref()),
        run_args,
    )?;
    env.import(&policy(a.pool), "soak-import", "soak")?;
    println!(
        "== soak: seed {seed}, {} min, {} writers, {} HTTP clients, database {:?} ({}), namespaces {}-*, pins {}, work {}",
        a.minutes,
        a.writers,
        a.http_clients,
        a.db,
        env.db.fault_name(),
        env.prefix,
        env.pin_dir.display(),
        env.work.display()
    );
    let result = run(a, seed, &Arc::new(env));
    drop(teardown);
    match result {
        Ok(true) => Ok(()),
        Ok(false) => bail!("the soak found failed checks (see above)"),
        Err(e) => Err(e),
    }
}

fn run(a: &SoakArgs, seed: u64, env: &Arc<Env>) -> Result<bool> {
    let clock = Clock::new();
    env.spawn_loader()?;
    if !env.wait_attached(Duration::from_secs(60)) || !env.wait_http(Duration::from_secs(30)) {
        bail!(
            "the loader did not attach and serve HTTP; see {}",
            env.work.display()
        );
    }
    let initial = writers::agreements_of(&export(env)?)?;
    let snmp_before = [
        traffic::snmp(&env.client_ns())?,
        traffic::snmp(&env.service_ns())?,
    ];
    let traffic_stop = Arc::new(AtomicBool::new(false));
    let cap = (f64::from(a.ping_rate) * (a.minutes * 60.0 + 600.0)) as usize;
    let pings = [
        (
            IpAddr::from(traffic::CLINIC4),
            IpAddr::from(traffic::SERVICE4),
        ),
        (
            IpAddr::from(traffic::CLINIC6),
            IpAddr::from(traffic::SERVICE6),
        ),
    ]
    .into_iter()
    .map(|(src, dst)| {
        ping::ping_flood(
            &env.client_ns(),
            src,
            dst,
            a.ping_rate,
            cap,
            clock,
            traffic_stop.clone(),
        )
    })
    .collect::<Result<Vec<_>>>()?;
    let tcp = traffic::tcp_start(
        &env.client_ns(),
        &env.service_ns(),
        traffic::SERVICE4,
        a.tcp_rate,
        clock,
        traffic_stop.clone(),
    )?;
    let pool_ports: Vec<(u32, u16)> = (1..=a.pool)
        .map(|i| (POOL_BASE + i, POOL_PORT + u16::try_from(i).unwrap_or(0)))
        .collect();
    let probes = traffic::Probes::start(
        &env.prefix,
        traffic::LAB4,
        traffic::POOL4,
        pool_ports.iter().map(|(_, p)| *p).collect(),
    )?;
    let http_stop = Arc::new(AtomicBool::new(false));
    let http = http::start(
        a.http_clients,
        env.http,
        Duration::from_millis(a.http_pause_ms),
        clock,
        &http_stop,
    )?;
    let gate = Arc::new(Gate::default());
    let over = Arc::new(AtomicBool::new(false));
    let attempted = Arc::new(AtomicU64::new(0));
    let today = Utc::now().date_naive();
    let day = |d: i64| {
        (today + chrono::Duration::days(d))
            .format("%Y-%m-%d")
            .to_string()
    };
    let ws = Arc::new(writers::WriterSetup {
        env: env.clone(),
        pool: pool_ports.iter().map(|(id, _)| *id).collect(),
        seed,
        clock,
        gate: gate.clone(),
        over: over.clone(),
        attempted: attempted.clone(),
        dates: vec![day(-1), day(0), day(1), "2099-12-31".to_owned()],
    });
    let writer_threads = (0..a.writers)
        .map(|w| writers::spawn(w, &ws))
        .collect::<Result<Vec<_>>>()?;
    let windows = Arc::new(Mutex::new(faults::Windows::default()));
    let fault_count = Arc::new(AtomicU64::new(0));
    let fs = Arc::new(faults::FaultSetup {
        env: env.clone(),
        seed,
        clock,
        gate: gate.clone(),
        over: over.clone(),
        count: fault_count.clone(),
        windows: windows.clone(),
        db_away_now: Arc::new(AtomicBool::new(false)),
    });
    let fault_threads = [faults::killer(fs.clone())?, faults::outages(fs)?];
    let confirm_stop = Arc::new(AtomicBool::new(false));
    let confirmer = faults::confirmer(env.clone(), clock, confirm_stop.clone())?;
    let mut r = Run {
        env: env.clone(),
        clock,
        gate,
        probes,
        pool_ports,
        windows: windows.clone(),
        tokens: 0,
        through: BTreeMap::new(),
        tcp_opened: tcp.opened.clone(),
    };
    let mut checkpoints = Vec::new();
    let deadline = a.minutes * 60.0;
    let mut next_cp = a.checkpoint_s as f64;
    let stop_reason = loop {
        sleep(Duration::from_millis(100));
        let t = clock.t();
        if INTERRUPTED.load(Ordering::SeqCst) {
            break "interrupted";
        }
        if t >= deadline {
            break "time";
        }
        if attempted.load(Ordering::SeqCst) >= a.max_changes {
            break "--max-changes";
        }
        if fault_count.load(Ordering::SeqCst) >= a.max_faults {
            break "--max-faults";
        }
        if t >= next_cp && t + 10.0 < deadline {
            let cp = r.checkpoint()?;
            println!(
                "  checkpoint at {:6.1} s: r{} in force after {}, {} probes ({} to pass), {} mismatches",
                cp.t,
                cp.revision,
                cp.settled.map_or("NOT".into(), |s| format!("{s:.2} s")),
                cp.probed,
                cp.passing,
                cp.mismatches.len()
            );
            checkpoints.push(cp);
            next_cp = clock.t() + a.checkpoint_s as f64;
        }
    };
    let load_s = clock.t();
    println!("== load ends after {load_s:.1} s ({stop_reason}); final checkpoint and checks");
    over.store(true, Ordering::SeqCst);
    let mut records = Vec::new();
    for t in writer_threads {
        records.extend(t.join().map_err(|_| anyhow!("a writer panicked"))??);
    }
    for t in fault_threads {
        t.join().map_err(|_| anyhow!("a fault thread panicked"))??;
    }
    let final_cp = r.checkpoint()?;
    traffic_stop.store(true, Ordering::SeqCst);
    let pings = pings
        .into_iter()
        .map(traffic::join)
        .collect::<Result<Vec<_>>>()?;
    let tcp = tcp.finish()?;
    let (udp_received, tagged_seen) = r.probes.finish()?;
    http_stop.store(true, Ordering::SeqCst);
    let http_results: Vec<http::ClientResult> = http
        .into_iter()
        .map(|h| h.join().map_err(|_| anyhow!("an HTTP client panicked")))
        .collect::<Result<_>>()?;
    confirm_stop.store(true, Ordering::SeqCst);
    let guard = confirmer
        .join()
        .map_err(|_| anyhow!("the confirmer panicked"))??;
    sleep(Duration::from_millis(500));
    let snmp_after = [
        traffic::snmp(&env.client_ns())?,
        traffic::snmp(&env.service_ns())?,
    ];
    let live = stats(env)?;
    let metrics = logs::metrics_counters(env.http);
    let clean_stop = env.stop_loader()?;
    let kpi = kpi_totals(env, &clock)?;
    let audit: Vec<Value> = env
        .loader_ok(&["db", "--db", &env.url, "audit", "--json"])?
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let last = writers::agreements_of(&export(env)?)?;
    let revision: u64 = env
        .loader_ok(&["db", "--db", &env.url, "revision"])?
        .trim()
        .parse()?;
    let windows = std::mem::take(&mut *windows.lock().map_err(|_| anyhow!("poisoned"))?);
    let c = verify::Collected {
        seed,
        args: a.clone(),
        fault_name: env.db.fault_name(),
        load_s,
        total_s: clock.t(),
        stop_reason,
        pings,
        tcp,
        snmp_before,
        snmp_after,
        probes_through: r
            .pool_ports
            .iter()
            .map(|(id, p)| {
                let n = |m: &BTreeMap<u16, u64>| m.get(p).copied().unwrap_or(0);
                (*id, (n(&udp_received), n(&tagged_seen)))
            })
            .collect(),
        http: http_results,
        records,
        initial,
        last,
        audit,
        revision,
        live,
        kpi,
        metrics,
        clean_stop,
        checkpoints,
        final_cp,
        windows,
        guard,
        logs: logs::read_logs(&env.work, &clock)?,
        guard_on: !a.no_guard,
    };
    std::fs::write(env.work.join("events.log"), logs::timeline(&c))?;
    let (checks, figures) = verify::evaluate(&c);
    println!("{figures}");
    std::fs::write(env.work.join("figures.txt"), &figures)?;
    if a.keep_logs.is_some() {
        println!("logs, database and figures kept in {}", env.work.display());
    }
    Ok(checks.iter().all(|c| c.ok) && stop_reason != "interrupted")
}

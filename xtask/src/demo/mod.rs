//! `cargo xtask demo`: the whole mission on one machine. An agreement database (SQLite) is
//! created from the demo policy; the daemon follows it on the hub of a namespace topology,
//! with the KPI collector and the HTTP server; real traffic is sent and checked; an agreement
//! whose TCP connection is open and busy is revoked, the blast-radius guard holds it, and
//! after `confirm` the connection is cut; the KPIs collected are queried, scraped and drawn.
//! Every step checks its outcome and the demo fails loudly otherwise.

mod connection;
mod traffic;

use std::{
    path::{Path, PathBuf},
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::soak::env::{self, DbKind, Env, Place};
use connection::Connection;
use traffic::{NS, report};

/// The hub's name in the agreement database.
const ROUTER: &str = "demo-hub";

/// The agreement whose open connection is revoked: the clinic's to fmk (203.0.113.10).
const REVOKED: &str = "1001";

/// Runs the demo; with `keep`, leaves the daemon, the topology and the database running.
pub(crate) fn demo(keep: bool, policy: &Path) -> Result<()> {
    let bin = crate::build()?;
    let work = crate::root().join("target/demo");
    let place = Place {
        prefix: NS.to_owned(),
        pin_dir: PathBuf::from("/sys/fs/bpf/sdn-demo"),
        work: work.clone(),
        keep_work: true,
        router: ROUTER.to_owned(),
    };
    let run_args = [
        "--poll-ms",
        "50",
        "--kpi-interval",
        "2",
        "--activity-ms",
        "500",
        "--guard-active-hours",
        "1",
    ]
    .map(str::to_owned)
    .to_vec();
    let t0 = Instant::now();
    println!(
        "\n== topology: {NS}-client -- {NS}-hub -- {NS}-service (network namespaces, documentation addresses)"
    );
    let (env, teardown) = env::create(bin, DbKind::Sqlite, place, run_args)?;
    let result = steps(&env, &crate::root().join(policy));
    if result.is_ok() && keep {
        // The daemon and the topology stay for the user; nothing is torn down.
        std::mem::forget(teardown);
        println!(
            "\nleft running: the daemon (pid in {}), namespaces {NS}-*, pins {}",
            work.join("daemon.pid").display(),
            env.pin_dir.display()
        );
        println!(
            "remove it all with: kill $(cat {}); {} detach --netns {NS}-hub --iface {NS}hc --iface {NS}hs --pin-dir {} --purge; bash scripts/topology.sh down {NS}",
            work.join("daemon.pid").display(),
            env.bin.display(),
            env.pin_dir.display()
        );
    } else {
        let _ = env.stop_loader();
        drop(teardown);
    }
    println!(
        "\n(demo took {:.0} s after the build)",
        t0.elapsed().as_secs_f64()
    );
    result
}

fn steps(env: &Env, policy: &Path) -> Result<()> {
    database(env, policy)?;
    daemon(env)?;
    println!("\n== 3. traffic through the hub");
    if !traffic::policy_traffic()? {
        bail!("some traffic did not behave as the policy says");
    }
    println!("\n  counters in the data plane (sdn-loader stats):");
    let stats = env.loader_ok(&["stats", "--pin-dir", &env.pin_dir.to_string_lossy()])?;
    for line in stats.lines() {
        println!("    {line}");
    }
    guarded_revocation(env)?;
    kpis(env)?;
    where_to_look(env);
    Ok(())
}

/// Step 1: the agreement database from the demo policy, and what the import recorded.
fn database(env: &Env, policy: &Path) -> Result<()> {
    println!("\n== 1. agreement database {}", env.url);
    let text =
        std::fs::read_to_string(policy).with_context(|| format!("reading {}", policy.display()))?;
    print!("{}", env.import(&text, "demo-import", "demo")?);
    let revision = env.loader_ok(&["db", "--db", &env.url, "revision"])?;
    let expected = agreements_in_file(&text);
    let listed: serde_json::Value = serde_json::from_str(&env.loader_ok(&[
        "db",
        "--db",
        &env.url,
        "--json",
        "agreement",
        "list",
    ])?)?;
    let n = listed.as_array().map_or(0, Vec::len);
    println!(
        "  revision {}, {n} agreements; the audit log:",
        revision.trim()
    );
    for line in env
        .loader_ok(&["db", "--db", &env.url, "audit", "--limit", "20"])?
        .lines()
    {
        println!("    {line}");
    }
    if n != expected {
        bail!("the database holds {n} agreements, the policy file {expected}");
    }
    Ok(())
}

/// `[[agreement]]` tables in a policy file.
fn agreements_in_file(text: &str) -> usize {
    text.lines().filter(|l| l.trim() == "[[agreement]]").count()
}

/// Step 2: the daemon follows the database on the hub's interfaces.
fn daemon(env: &Env) -> Result<()> {
    println!(
        "\n== 2. daemon: sdn-loader run --db {} on {NS}hc and {NS}hs (router {ROUTER}), KPIs every 2 s, HTTP on {}",
        env.url, env.http
    );
    let log = env.spawn_loader()?;
    if let Some(pid) = env.daemon_pid() {
        std::fs::write(env.work.join("daemon.pid"), pid.to_string())?;
    }
    if !env.wait_attached(Duration::from_secs(20)) || !env.wait_http(Duration::from_secs(20)) {
        bail!(
            "the daemon did not attach and serve within 20 s; its log: {}",
            log.display()
        );
    }
    println!("  attached; log {}", log.display());
    Ok(())
}

/// Step 4: revoke an agreement whose connection is open and busy; the guard holds it until
/// `confirm`, then the connection is cut and new ones are refused.
fn guarded_revocation(env: &Env) -> Result<()> {
    println!(
        "\n== 4. revoking agreement {REVOKED} while its TCP connection 198.51.100.10 -> 203.0.113.10:443 carries traffic"
    );
    let addr = "203.0.113.10:443".parse()?;
    let conn = Connection::open(&env.client_ns(), &env.service_ns(), addr)?;
    // Long enough for the daemon's activity sampler (every 500 ms) to see the traffic.
    sleep(Duration::from_secs(2));
    let outcome = revoke_and_confirm(env, &conn);
    conn.close();
    outcome
}

fn revoke_and_confirm(env: &Env, conn: &Connection) -> Result<()> {
    let before = conn.received();
    if before == 0 {
        bail!("the connection carried nothing before the revocation");
    }
    let out = env.loader_ok(&[
        "db",
        "--db",
        &env.url,
        "--json",
        "agreement",
        "revoke",
        REVOKED,
    ])?;
    let change: serde_json::Value = serde_json::from_str(&out)?;
    let revision = change["revision"].as_u64().unwrap_or_default();
    println!("  sdn-loader db agreement revoke {REVOKED}: revision {revision}");
    // The guard holds it: an ALARM in the daemon's log, `held` in status, plan exits 2.
    let alarm = wait_for_log(env, "ALARM: revision", Duration::from_secs(10))?;
    println!("  daemon log: {alarm}");
    let status = env.loader_ok(&["status", "--db", &env.url, "--router", ROUTER])?;
    for line in status.lines().take(3) {
        println!("  status: {line}");
    }
    let plan = env
        .loader()
        .args(["plan", "--db", &env.url, "--router", ROUTER, "--state-dir"])
        .arg(env.work.join("state"))
        .output()?;
    for line in String::from_utf8_lossy(&plan.stdout).lines() {
        println!("  plan: {line}");
    }
    let held_flows = conn.received() > before;
    let mut good = report(
        "plan exits 2: the guard holds the sync",
        plan.status.code() == Some(2),
        true,
    );
    good &= report(
        "the open connection still carries traffic while held",
        held_flows,
        true,
    );
    let confirmed = Instant::now();
    env.loader_ok(&[
        "confirm",
        &revision.to_string(),
        "--db",
        &env.url,
        "--router",
        ROUTER,
    ])?;
    println!("  sdn-loader confirm {revision}");
    // Cut when nothing arrives for 2 s; enforced at the last byte that did.
    let cut = loop {
        sleep(Duration::from_millis(50));
        let last = conn.last_byte().unwrap_or(confirmed);
        if last.elapsed() > Duration::from_secs(2) {
            break Some(last.saturating_duration_since(confirmed));
        }
        if confirmed.elapsed() > Duration::from_secs(15) {
            break None;
        }
    };
    good &= report(
        &match cut {
            Some(d) => format!(
                "the open connection is cut ({} ms from confirm to its last byte)",
                d.as_millis()
            ),
            None => "the open connection is cut".to_owned(),
        },
        cut.is_some(),
        true,
    );
    let ok = traffic::tcp_exchange(None, "203.0.113.10", "443", false)?;
    good &= report(
        "a new TCP connection 198.51.100.10 -> 203.0.113.10:443 (revoked)",
        ok,
        false,
    );
    if !good {
        bail!("the guarded revocation did not behave as it should");
    }
    Ok(())
}

/// The first line of the daemon's logs that contains `needle`, waiting up to `limit`.
fn wait_for_log(env: &Env, needle: &str, limit: Duration) -> Result<String> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        for entry in std::fs::read_dir(&env.work)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                    return Ok(line.trim().to_owned());
                }
            }
        }
        sleep(Duration::from_millis(100));
    }
    bail!("no {needle:?} in the daemon's log within {limit:?}")
}

/// Step 5: the KPIs collected, both ways per agreement, the matching /metrics lines, and the
/// HTML report; the KPIs must equal what the data plane counted.
fn kpis(env: &Env) -> Result<()> {
    println!("\n== 5. per-agreement KPIs (collected every 2 s)");
    // One more pass after the last packet, so the KPIs hold everything counted.
    sleep(Duration::from_secs(5));
    let stats: serde_json::Value = serde_json::from_str(&env.loader_ok(&[
        "stats",
        "--pin-dir",
        &env.pin_dir.to_string_lossy(),
        "--json",
    ])?)?;
    let query = [
        "kpi",
        "query",
        "--db",
        &env.url,
        "--bucket",
        "day",
        "--by",
        "agreement",
    ];
    for line in env.loader_ok(&query)?.lines() {
        println!("  {line}");
    }
    let answer: serde_json::Value =
        serde_json::from_str(&env.loader_ok(&[&query[..], &["--json"]].concat())?)?;
    let field = |v: &serde_json::Value, name: &str| v[name].as_u64().unwrap_or(0);
    let kpi_of = |id: &str, name: &str| -> u64 {
        (answer["rows"].as_array().into_iter().flatten())
            .filter(|r| r["key"].as_str() == Some(id))
            .map(|r| field(r, name))
            .sum()
    };
    let mut good = true;
    // Agreements still in force: the KPIs hold exactly what the program counted.
    for counted in stats["agreements"].as_array().into_iter().flatten() {
        let id = field(counted, "agreement").to_string();
        for name in [
            "forward_packets",
            "reply_packets",
            "forward_bytes",
            "transactions",
        ] {
            let (kpi, dp) = (kpi_of(&id, name), field(counted, name));
            good &= report(
                &format!("agreement {id} {name}: KPIs {kpi}, data plane {dp}"),
                kpi == dp,
                true,
            );
        }
    }
    // Both agreements that carried traffic did so both ways; the revoked one kept its history.
    for id in [REVOKED, "1003"] {
        let (fwd, rep) = (kpi_of(id, "forward_packets"), kpi_of(id, "reply_packets"));
        good &= report(
            &format!("agreement {id}: {fwd} packets to the service, {rep} back"),
            fwd > 0 && rep > 0,
            true,
        );
    }
    // /metrics has series for the agreements in force (1001 is revoked by now).
    let metrics = http_get(env.http, "/metrics")?;
    println!("  /metrics (agreement 1003):");
    let lines: Vec<&str> = (metrics.lines())
        .filter(|l| l.starts_with("sdn_agreement") && l.contains("agreement=\"1003\""))
        .collect();
    for line in &lines {
        println!("    {line}");
    }
    let scraped = (lines.iter())
        .find(|l| l.starts_with("sdn_agreement_forward_packets_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok());
    good &= report(
        &format!(
            "/metrics: agreement 1003 forward packets {}",
            scraped.map_or_else(|| "missing".to_owned(), |v| v.to_string())
        ),
        scraped == Some(kpi_of("1003", "forward_packets")),
        true,
    );
    let report_path = env.work.join("report.html");
    print!(
        "  {}",
        env.loader_ok(&[
            "kpi",
            "report",
            "--db",
            &env.url,
            "--html",
            &report_path.to_string_lossy(),
            "--bucket",
            "minute",
        ])?
    );
    if !good {
        bail!("the KPIs do not equal what the data plane counted");
    }
    Ok(())
}

/// The body of `GET path` from the daemon's HTTP server (200 only).
fn http_get(addr: std::net::SocketAddr, path: &str) -> Result<String> {
    let (status, body) = crate::soak::http::request(&mut None, addr, path)?;
    if status != 200 {
        bail!("GET {path}: {status}");
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Step 6: where to look next.
fn where_to_look(env: &Env) {
    let b = env.bin.display();
    println!("\n== 6. where to look");
    println!("  metrics:        http://{}/metrics", env.http);
    println!(
        "  KPIs (JSON):    http://{}/api/v1/kpi?bucket=minute&by=agreement",
        env.http
    );
    println!(
        "  HTML report:    {}",
        env.work.join("report.html").display()
    );
    println!("  database:       {}", env.url);
    println!("  try:            {b} db --db {} agreement list", env.url);
    println!(
        "                  {b} status --db {} --router {ROUTER}",
        env.url
    );
    println!(
        "                  {b} kpi query --db {} --by agreement --bucket minute",
        env.url
    );
    println!(
        "                  {b} stats --pin-dir {}",
        env.pin_dir.display()
    );
    println!("                  (--keep leaves the daemon running for these)");
}

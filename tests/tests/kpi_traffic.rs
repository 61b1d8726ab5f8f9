//! KPIs under real traffic: `sdn-loader run --db` in a client/hub/service namespace topology
//! (prefix `kp`, documentation addresses only, everything removed on drop) collects every
//! second. Pings are counted into the database exactly: across a `kill -9` and restart of the
//! loader (traffic sent while it was down included), a policy change that moves the traffic
//! to another agreement, and a clean stop. /metrics from the daemon parses and matches the
//! data plane's counters.
//!
//! `measure_kpi` (ignored; `--ignored --nocapture`) prints the KPI measurements.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

use sdn_tests as support;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use sdn_loader::{
    compile::compile,
    dataplane::{Capacities, Dataplane, Maps},
    kpi::{Collector, KpiStore},
};
use support::daemon::{Hub, create_agreement, loader, wait_for};
use support::netns::workspace_root;

fn ping(prefix: &str, dst: &str, count: u32) -> u32 {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("{prefix}-client"),
            "ping",
            "-c",
            &count.to_string(),
            "-i",
            "0.2",
            "-W",
            "1",
            dst,
        ])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            l.split(", ")
                .find_map(|p| p.strip_suffix(" received"))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// `sdn-loader kpi --db URL query --json` over all time (2000 to 2100) with `extra`
/// arguments: its output.
fn query_all_time(url: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "kpi",
        "--db",
        url,
        "query",
        "--json",
        "--from",
        "2000-01-01",
        "--to",
        "2100-01-01",
    ];
    args.extend_from_slice(extra);
    loader(&args)
}

/// Forward and reply packets and bytes, transactions, per agreement, from the database
/// (all time, day buckets), through the CLI.
fn recorded(url: &str) -> BTreeMap<u64, [u64; 5]> {
    let out = query_all_time(url, &["--bucket", "day"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut m = BTreeMap::new();
    for r in v["rows"].as_array().unwrap() {
        let e: &mut [u64; 5] = m
            .entry(r["key"].as_str().unwrap().parse().unwrap())
            .or_default();
        for (i, k) in [
            "forward_packets",
            "forward_bytes",
            "reply_packets",
            "reply_bytes",
            "transactions",
        ]
        .iter()
        .enumerate()
        {
            e[i] += r[k].as_u64().unwrap();
        }
    }
    m
}

/// What `n` echo requests and replies of `ping` (56 data bytes: 98-byte frames) under one
/// agreement add, with `flows` ping processes (each one ICMP flow: one transaction).
fn pings(n: u64, flows: u64) -> [u64; 5] {
    [n, 98 * n, n, 98 * n, flows]
}

fn add(a: [u64; 5], b: [u64; 5]) -> [u64; 5] {
    std::array::from_fn(|i| a[i] + b[i])
}

#[test]
fn kpis_equal_traffic_across_restart_and_policy_change() {
    let Some((mut g, dir)) = Hub::for_test("kp") else {
        return;
    };
    let prefix = g.prefix.clone();
    let tmp = dir.path().to_path_buf();
    // This test is about counting: the policy change below must not wait for a confirm.
    g.args = [
        "--kpi-interval",
        "1",
        "--listen",
        "127.0.0.1:9640",
        "--no-guard",
    ]
    .map(str::to_owned)
    .to_vec();
    let url = format!("sqlite://{}", tmp.join("sdn.db").display());
    let policy = workspace_root().join("examples/demo-policy.toml");
    loader(&["db", "--db", &url, "import", policy.to_str().unwrap()]);
    g.spawn(&url, "kp-hub");
    g.wait_attached();

    // 1. Traffic under 1001, collected.
    assert_eq!(ping(&prefix, "203.0.113.10", 3), 3);
    let mut expect = BTreeMap::from([(1001, pings(3, 1))]);
    wait_for("the first pass", Duration::from_secs(10), || {
        recorded(&url) == expect
    });

    // 2. kill -9 (no last pass), traffic while the loader is down, restart, more traffic.
    let mut c = g.child.take().unwrap();
    c.kill().unwrap();
    c.wait().unwrap();
    assert_eq!(ping(&prefix, "203.0.113.10", 2), 2);
    g.spawn(&url, "kp-hub");
    assert_eq!(ping(&prefix, "203.0.113.10", 2), 2);
    expect.insert(1001, add(expect[&1001], add(pings(2, 1), pings(2, 1))));
    wait_for("counts across the restart", Duration::from_secs(15), || {
        recorded(&url) == expect
    });

    // 3. Policy change: a new agreement for the same client and service (1001 still counts:
    // lowest id), then 1001 is revoked and the traffic counts to 1004.
    create_agreement(&url, 1004, "ouh-clinic", "fmk");
    // 1004 covers the same traffic as 1001, so no rule names it (the lowest id wins) and
    // `stats` cannot show when it is applied: give the 50 ms poll ample time.
    sleep(Duration::from_secs(1));
    assert_eq!(ping(&prefix, "203.0.113.10", 2), 2);
    loader(&["db", "--db", &url, "agreement", "revoke", "1001"]);
    wait_for(
        "1001 revoked, 1004 in its place",
        Duration::from_secs(10),
        || {
            let s = loader(&["stats", "--pin-dir", g.pin_dir.to_str().unwrap(), "--json"]);
            !s.contains("\"agreement\": 1001") && s.contains("\"agreement\": 1004")
        },
    );
    assert_eq!(ping(&prefix, "203.0.113.10", 4), 4);
    expect.insert(1001, add(expect[&1001], pings(2, 1)));
    expect.insert(1004, pings(4, 1));
    wait_for(
        "counts across the policy change",
        Duration::from_secs(15),
        || recorded(&url) == expect,
    );

    // 4. /metrics of the daemon (in the hub's namespace) parses and shows the data plane's
    // counters: 1004 in force with its 4 pings, 1001 gone.
    // The daemon serves on the host's loopback (it enters the hub's namespace only to
    // attach).
    let body = {
        let addr = "127.0.0.1:9640".parse().unwrap();
        let (status, body) =
            support::http::get(addr, "/metrics", std::time::Duration::from_secs(10)).unwrap();
        assert_eq!(status, 200, "{body}");
        body
    };
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let get = |name: &str, agreement: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get("agreement") == Some(agreement))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) => v,
                _ => f64::NAN,
            })
    };
    assert_eq!(
        get("sdn_agreement_forward_packets_total", "1004"),
        Some(4.0)
    );
    assert_eq!(get("sdn_agreement_reply_bytes_total", "1004"), Some(392.0));
    assert_eq!(get("sdn_agreement_forward_packets_total", "1001"), None);
    assert!(
        body.contains(
            "sdn_agreement_info{agreement=\"1004\",client=\"ouh-clinic\",service=\"fmk\""
        )
    );
    // Zabbix discovers exactly the agreements /metrics has series for (1001, revoked, is
    // not among them), with their state; the daemon is ready, having synced.
    let addr = "127.0.0.1:9640".parse().unwrap();
    let (status, body) = support::http::get(
        addr,
        "/api/v1/zabbix/discovery",
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let discovered: std::collections::BTreeSet<String> = (v["data"].as_array().unwrap().iter())
        .map(|d| d["{#AGREEMENT}"].as_str().unwrap().to_owned())
        .collect();
    let with_series: std::collections::BTreeSet<String> = (scrape.samples.iter())
        .filter(|s| s.metric == "sdn_agreement_forward_packets_total")
        .filter_map(|s| s.labels.get("agreement").map(str::to_owned))
        .collect();
    assert_eq!(discovered, with_series);
    assert!(discovered.contains("1004") && !discovered.contains("1001"));
    assert!(
        (v["data"].as_array().unwrap().iter())
            .any(|d| d["{#AGREEMENT}"] == "1004" && d["{#STATE}"] == "approved"),
        "{v}"
    );
    let (status, body) =
        support::http::get(addr, "/healthz", std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"synced\""), "{body}");
    // Denied traffic shows as a drop reason: ping to pacs (no icmp endpoint).
    assert_eq!(ping(&prefix, "203.0.113.20", 1), 0);

    // 5. A clean stop makes a last pass: traffic just before it is recorded.
    assert_eq!(ping(&prefix, "203.0.113.10", 1), 1);
    let mut c = g.child.take().unwrap();
    // SAFETY: sending SIGTERM to our own child process.
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    c.wait().unwrap();
    expect.insert(1004, add(expect[&1004], pings(1, 1)));
    assert_eq!(recorded(&url), expect);
    let drops = query_all_time(&url, &[]);
    assert!(!drops.is_empty());
    // The reasons table has the denied ping.
    let rt = runtime();
    let reasons = rt.block_on(async {
        let store = KpiStore::open(&url).await.unwrap();
        sdn_loader::kpi::query::reasons(
            &store,
            sdn_loader::kpi::parse_time("2000-01-01").unwrap(),
            sdn_loader::kpi::parse_time("2100-01-01").unwrap(),
            sdn_loader::kpi::Resolution::Day,
            Some("kp-hub"),
        )
        .await
        .unwrap()
    });
    assert!(
        reasons
            .iter()
            .any(|(_, r, n)| r == "no-agreement" && *n >= 1),
        "{reasons:?}"
    );
}

/// Sets every per-CPU counter of the given slots to `v` (simulating traffic on all of them).
fn set_counters(pin_dir: &Path, slots: impl Iterator<Item = u32>, v: u64) {
    let data = aya::maps::MapData::from_pin(pin_dir.join("maps").join(sdn_common::maps::COUNTERS))
        .unwrap();
    let mut arr: aya::maps::PerCpuArray<_, sdn_common::AgreementCounters> =
        aya::maps::PerCpuArray::try_from(aya::maps::Map::PerCpuArray(data)).unwrap();
    let ncpus = aya::util::nr_cpus().unwrap();
    let c = sdn_common::AgreementCounters {
        forward_packets: v,
        forward_bytes: v * 700,
        reply_packets: v,
        reply_bytes: v * 1400,
        transactions: v / 10,
    };
    for s in slots {
        arr.set(
            s,
            aya::maps::PerCpuValues::try_from(vec![c; ncpus]).unwrap(),
            0,
        )
        .unwrap();
    }
}

/// A runtime for the library's async calls in these otherwise synchronous tests.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn sqlite_bytes(path: &Path) -> u64 {
    // The WAL holds recent pages; count the main file and the WAL together.
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    std::fs::metadata(path).map_or(0, |m| m.len()) + std::fs::metadata(wal).map_or(0, |m| m.len())
}

/// The recorded KPI rows of agreement `id`, in day buckets from a day before `now` to a
/// day after it.
fn day_rows(
    rt: &tokio::runtime::Runtime,
    store: &KpiStore,
    id: u32,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<sdn_loader::kpi::query::KpiRow> {
    use sdn_loader::kpi::query::{Group, Query, Rank, run};
    rt.block_on(run(
        store,
        &Query {
            from: now - chrono::Duration::days(1),
            to: now + chrono::Duration::days(1),
            bucket: sdn_loader::kpi::Resolution::Day,
            group: Group::Agreement,
            agreement: Some(id),
            service: None,
            client: None,
            organisation: None,
            router: None,
            top: None,
            rank: Rank::Bytes,
        },
    ))
    .unwrap()
    .rows
}

/// A slot whose agreement left the policy keeps its uncollected counts: a new agreement gets
/// a clean slot instead, the collector records the last counts and then zeroes the slot, and
/// only then is it handed out again.
#[test]
fn freed_slots_are_collected_before_reuse() {
    if !support::netns::root_or_skip() {
        return;
    }
    use sdn_loader::policy::{Agreement, AgreementState};
    let pin = PathBuf::from(format!("/sys/fs/bpf/kp-slots-{}", std::process::id()));
    struct Unpin(PathBuf);
    impl Drop for Unpin {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _unpin = Unpin(pin.clone());
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", tmp.path().join("k.db").display());
    let rt = runtime();
    rt.block_on(sdn_loader::db::Db::open(&url)).unwrap();
    let store = rt.block_on(KpiStore::open(&url)).unwrap();
    let today = chrono::Utc::now().date_naive();
    let mut p = sdn_loader::policy::load_file(&workspace_root().join("examples/demo-policy.toml"))
        .unwrap()
        .into_draft();
    // The policy is edited as a draft and validated for each apply.
    let compiled =
        |p: &sdn_loader::policy::PolicyDraft| compile(&p.validate().unwrap(), today).unwrap();
    let caps = Capacities {
        slots: 8,
        ..Capacities::for_replay(&compiled(&p))
    };
    let mut dp = Dataplane::load_pinned(caps, &pin).unwrap();
    dp.apply(&compiled(&p)).unwrap();
    let old = dp.slots()[&1003];
    let mut col = Collector::new("r", Maps::open_pinned(&pin).unwrap(), store.clone());
    let mut now = chrono::Utc::now();
    set_counters(&pin, [old].into_iter(), 5);
    rt.block_on(col.pass(now)).unwrap();
    // Three more packets under 1003, then 1003 is revoked and 1005 added before the next pass.
    set_counters(&pin, [old].into_iter(), 8);
    p.agreements
        .iter_mut()
        .find(|a| a.id == 1003)
        .unwrap()
        .state = AgreementState::Revoked;
    p.agreements.push(Agreement {
        id: 1005,
        client: "lab".into(),
        service: "pacs".into(),
        state: AgreementState::Approved,
        expires: None,
        vlan: None,
    });
    dp.apply(&compiled(&p)).unwrap();
    assert_ne!(
        dp.slots()[&1005],
        old,
        "a slot with uncollected counts was reused"
    );
    let maps = Maps::open_pinned(&pin).unwrap();
    let ncpus = aya::util::nr_cpus().unwrap() as u64;
    assert_eq!(maps.slot_counters(old).unwrap().forward_packets, 8 * ncpus);
    now += chrono::Duration::minutes(1);
    let r = rt.block_on(col.pass(now)).unwrap();
    assert_eq!(r.retired, 1);
    assert_eq!(
        maps.slot_counters(old).unwrap(),
        sdn_common::AgreementCounters::default()
    );
    // All of 1003's packets are recorded (summed over CPUs), none lost.
    let rows = day_rows(&rt, &store, 1003, now);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].traffic.forward_packets, 8 * ncpus);
    // Now clean, the slot is handed out again.
    p.agreements.push(Agreement {
        id: 1006,
        client: "lab".into(),
        service: "fmk".into(),
        state: AgreementState::Approved,
        expires: None,
        vlan: None,
    });
    dp.apply(&compiled(&p)).unwrap();
    assert_eq!(dp.slots()[&1006], old);
    // An agreement that comes and goes between two passes still has its packets recorded:
    // the slot's owner is known from the owners map, not from the previous pass.
    p.agreements.push(Agreement {
        id: 1007,
        client: "lab".into(),
        service: "fmk".into(),
        state: AgreementState::Approved,
        expires: None,
        vlan: Some(7),
    });
    dp.apply(&compiled(&p)).unwrap();
    let brief = dp.slots()[&1007];
    set_counters(&pin, [brief].into_iter(), 4);
    p.agreements.retain(|a| a.id != 1007);
    dp.apply(&compiled(&p)).unwrap();
    now += chrono::Duration::minutes(1);
    let r = rt.block_on(col.pass(now)).unwrap();
    assert_eq!(r.retired, 1, "the slot 1007 left is collected and freed");
    assert_eq!(
        maps.slot_counters(brief).unwrap(),
        sdn_common::AgreementCounters::default()
    );
    let rows = day_rows(&rt, &store, 1007, now);
    assert_eq!(rows.len(), 1, "1007's packets were lost");
    assert_eq!(rows[0].traffic.forward_packets, 4 * ncpus);
}

/// KPI measurements (figures printed, nothing timed is asserted):
/// - one collection pass at 6,351 and 100,000 agreements (every agreement with new traffic,
///   the worst case; and 10% of them);
/// - /metrics response time and size at 6,351 agreements;
/// - database growth per day at 6,351 agreements (SQLite), extrapolated from 60 one-minute
///   passes with every agreement active.
#[test]
#[ignore = "measurement: run with --ignored --nocapture"]
fn measure_kpi() {
    if !support::netns::root_or_skip() {
        return;
    }
    use sdn_loader::tools::policies::{Shape, policy};
    let rt = runtime();
    let today = chrono::Utc::now().date_naive();
    for n in [6_351usize, 100_000] {
        let pin = PathBuf::from(format!("/sys/fs/bpf/kp-measure-{}-{n}", std::process::id()));
        let tmp = tempfile::tempdir().unwrap();
        let p = policy(Shape::scaled(n)).unwrap();
        let c = compile(&p, today).unwrap();
        let mut dp = Dataplane::load_pinned(Capacities::default(), &pin).unwrap();
        dp.apply(&c).unwrap();
        let slots: Vec<u32> = dp.slots().values().copied().collect();
        let db_path = tmp.path().join("kpi.db");
        let url = format!("sqlite://{}", db_path.display());
        rt.block_on(sdn_loader::db::Db::open(&url)).unwrap();
        let store = rt.block_on(KpiStore::open(&url)).unwrap();
        let mut col = Collector::new("m", Maps::open_pinned(&pin).unwrap(), store.clone());
        let mut now = chrono::Utc::now();
        set_counters(&pin, slots.iter().copied(), 1);
        let first = rt.block_on(col.pass(now)).unwrap();
        let mut t_all = Vec::new();
        for k in 0..3u64 {
            set_counters(&pin, slots.iter().copied(), 2 + k);
            now += chrono::Duration::minutes(1);
            let t0 = Instant::now();
            let r = rt.block_on(col.pass(now)).unwrap();
            t_all.push((t0.elapsed(), r));
        }
        let mut t_tenth = Vec::new();
        for k in 0..3u64 {
            set_counters(&pin, slots.iter().copied().step_by(10), 100 + k);
            now += chrono::Duration::minutes(1);
            let t0 = Instant::now();
            let r = rt.block_on(col.pass(now)).unwrap();
            t_tenth.push((t0.elapsed(), r));
        }
        let show = |v: &[(Duration, sdn_loader::kpi::PassReport)]| {
            v.iter()
                .map(|(d, r)| {
                    format!(
                        "{:.0} ms (read {:.0} ms, {} active)",
                        d.as_secs_f64() * 1e3,
                        r.read.as_secs_f64() * 1e3,
                        r.active
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "collection pass, {n} agreements: first pass (all baselines written) {:.0} ms; every agreement active: {}; 10% active: {}",
            (first.read + first.write).as_secs_f64() * 1e3,
            show(&t_all),
            show(&t_tenth)
        );

        if n == 6_351 {
            // /metrics with names from the database.
            let db = rt.block_on(sdn_loader::db::Db::open(&url)).unwrap();
            rt.block_on(db.import(&p, &sdn_loader::db::Origin::new("m", "m")))
                .unwrap();
            let state = sdn_loader::kpi::http::HttpState {
                store: KpiStore::from_db(&db),
                maps: Some(std::sync::Mutex::new(Maps::open_pinned(&pin).unwrap())),
                pin_dir: Some(pin.clone()),
                router: "m".into(),
                cardinality: sdn_loader::kpi::metrics::Cardinality::All,
                connections: std::sync::Arc::default(),
                ready: None,
            };
            let mut times = Vec::new();
            let mut size = 0;
            for _ in 0..7 {
                let t0 = Instant::now();
                let text = rt
                    .block_on(sdn_loader::kpi::http::metrics_text(&state))
                    .unwrap();
                times.push(t0.elapsed());
                size = text.len();
            }
            times.sort();
            println!(
                "/metrics at {n} agreements: median {:.1} ms (min {:.1}, max {:.1}) over 7, {} bytes ({:.2} MB)",
                times[3].as_secs_f64() * 1e3,
                times[0].as_secs_f64() * 1e3,
                times[6].as_secs_f64() * 1e3,
                size,
                size as f64 / 1e6
            );
            // Growth: 60 one-minute passes, all agreements active.
            let before = sqlite_bytes(&db_path);
            let t0 = Instant::now();
            for k in 0..60u64 {
                set_counters(&pin, slots.iter().copied(), 1000 + k);
                now += chrono::Duration::minutes(1);
                rt.block_on(col.pass(now)).unwrap();
            }
            let took = t0.elapsed();
            rt.block_on(async {
                let pool = sqlx::AnyPool::connect(&url).await.unwrap();
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            });
            let grew = sqlite_bytes(&db_path).saturating_sub(before);
            let per_day = grew as f64 * 24.0;
            println!(
                "database growth at {n} agreements, all active every minute (SQLite, 60 passes in {:.1} s): {:.1} MB per hour -> {:.2} GB per day; with default retention (minutes 7 days) the minute rows level off near {:.1} GB, hour rows add ~{:.0} MB per day for a year, day rows ~{:.1} MB per day forever (extrapolated from the hour measured; hour/day rows are 1/60 and 1/1440 of the minute rows)",
                took.as_secs_f64(),
                grew as f64 / 1e6,
                per_day / 1e9,
                per_day * 7.0 / 1e9,
                per_day / 60.0 / 1e6,
                per_day / 1440.0 / 1e6,
            );
        }
        drop(col);
        drop(dp);
        let _ = std::fs::remove_dir_all(&pin);
    }
}

//! KPI storage, queries and surfaces without a data plane: roll-up keeps totals equal across
//! resolutions and retention; queries filter, group, rank and bucket by month; the JSON API
//! answers the same as the CLI; /metrics parses with a Prometheus text parser and carries
//! the sync state of the `routers` table; the Grafana dashboard only queries exported metrics;
//! the HTML report renders in headless Chromium.
//!
//! The roll-up test also runs on PostgreSQL when `SDN_TEST_POSTGRES_URL` is set (as in
//! `tests/db.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

use sdn_tests as support;

use std::collections::{BTreeMap, HashSet};
use std::process::Command;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use sdn_loader::db::{Db, Origin};
use sdn_loader::kpi::connections::Limits;
use sdn_loader::kpi::http::{self, HttpState};
use sdn_loader::kpi::{
    KpiStore, Resolution, Retention, Traffic,
    collect::Plan,
    metrics::{self, Cardinality, METRIC_NAMES, Snapshot},
    parse_time,
    query::{self, Group, Query, Rank},
};
use support::netns::{run_ok, workspace_root};

/// The loader binary built for this test run.
const LOADER: &str = env!("CARGO_BIN_EXE_sdn-loader");

fn t(p: u64, b: u64) -> Traffic {
    Traffic {
        forward_packets: p,
        forward_bytes: b,
        reply_packets: p,
        reply_bytes: b / 2,
        transactions: p / 3,
    }
}

fn plan(traffic: &[(u32, Traffic)]) -> Plan {
    Plan {
        traffic: traffic.iter().copied().collect(),
        reasons: BTreeMap::from([("no-agreement".to_owned(), 7)]),
        ..Default::default()
    }
}

async fn demo_db(url: &str) -> (Db, KpiStore) {
    let db = Db::open(url).await.unwrap();
    let policy =
        sdn_loader::policy::load_file(&workspace_root().join("examples/demo-policy.toml")).unwrap();
    db.import(&policy, &Origin::new("test", "kpi"))
        .await
        .unwrap();
    let store = KpiStore::from_db(&db);
    (db, store)
}

/// Writes passes every 7 minutes over 3 days: agreement 1001 and 1003 with varying traffic.
async fn fill(store: &KpiStore, start: DateTime<Utc>) -> BTreeMap<u32, Traffic> {
    let mut total: BTreeMap<u32, Traffic> = BTreeMap::new();
    for i in 0..(3 * 24 * 60 / 7) {
        let now = start + Duration::minutes(7 * i);
        let a = t(10 + i as u64 % 13, 1500 * (1 + i as u64 % 5));
        let b = t(1 + i as u64 % 3, 100);
        let router = if i % 2 == 0 { "hub-a" } else { "hub-b" };
        store
            .write_pass(
                router,
                now,
                &plan(&[(1001, a), (1003, b)]),
                2,
                std::time::Duration::ZERO,
            )
            .await
            .unwrap();
        total.entry(1001).or_default().add(&a);
        total.entry(1003).or_default().add(&b);
    }
    total
}

fn q(from: DateTime<Utc>, to: DateTime<Utc>, bucket: Resolution, group: Group) -> Query {
    Query {
        from,
        to,
        bucket,
        group,
        agreement: None,
        service: None,
        client: None,
        organisation: None,
        router: None,
        top: None,
        rank: Rank::Bytes,
    }
}

async fn sums(store: &KpiStore, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Traffic> {
    let mut out = Vec::new();
    for r in [
        Resolution::Minute,
        Resolution::Hour,
        Resolution::Day,
        Resolution::Month,
    ] {
        let a = query::run(store, &q(from, to, r, Group::Total))
            .await
            .unwrap();
        let mut s = Traffic::default();
        for row in &a.rows {
            s.add(&row.traffic);
        }
        out.push(s);
    }
    out
}

async fn rollup_body(url: &str) {
    let (_db, store) = demo_db(url).await;
    let start = parse_time("2026-01-30T22:10:00Z").unwrap();
    let total = fill(&store, start).await;
    let grand = total.values().fold(Traffic::default(), |mut a, t| {
        a.add(t);
        a
    });
    let (from, to) = (
        parse_time("2026-01-01").unwrap(),
        parse_time("2026-03-01").unwrap(),
    );
    // Every resolution holds the same totals (month from days).
    for s in sums(&store, from, to).await {
        assert_eq!(s, grand);
    }
    // Per agreement too, and per router adds up.
    let a = query::run(&store, &q(from, to, Resolution::Hour, Group::Agreement))
        .await
        .unwrap();
    let mut per: BTreeMap<String, Traffic> = BTreeMap::new();
    for r in &a.rows {
        per.entry(r.key.clone()).or_default().add(&r.traffic);
    }
    assert_eq!(per["1001"], total[&1001]);
    assert_eq!(per["1003"], total[&1003]);
    // The months split at the month boundary: January and February.
    let m = query::run(&store, &q(from, to, Resolution::Month, Group::Total))
        .await
        .unwrap();
    let months: Vec<_> = m.rows.iter().map(|r| r.bucket.as_str()).collect();
    assert_eq!(
        months,
        ["2026-01-01T00:00:00.000000Z", "2026-02-01T00:00:00.000000Z"]
    );

    // Retention 8 days later: minute rows go, hours and days keep the totals.
    let later = start + Duration::days(11);
    let deleted = store
        .apply_retention(later, &Retention::default())
        .await
        .unwrap();
    assert!(deleted > 0);
    let s = sums(&store, from, to).await;
    assert_eq!(s[0], Traffic::default(), "minute buckets past retention");
    assert_eq!(s[1], grand);
    assert_eq!(s[2], grand);
    // A year and more later: hours go too, days stay forever.
    store
        .apply_retention(start + Duration::days(400), &Retention::default())
        .await
        .unwrap();
    let s = sums(&store, from, to).await;
    assert_eq!(s[1], Traffic::default());
    assert_eq!(s[2], grand);
    assert_eq!(s[3], grand);
}

#[tokio::test]
async fn rollup_keeps_totals_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    rollup_body(&format!("sqlite://{}", dir.path().join("k.db").display())).await;
}

#[tokio::test]
async fn rollup_keeps_totals_postgres() {
    let Ok(base) = std::env::var("SDN_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("SDN_REQUIRE_POSTGRES").is_none(),
            "SDN_REQUIRE_POSTGRES is set but SDN_TEST_POSTGRES_URL is not"
        );
        eprintln!("SDN_TEST_POSTGRES_URL not set: PostgreSQL variant not run");
        return;
    };
    let schema = format!("sdn_test_kpi_{}", std::process::id());
    let pool = sqlx::PgPool::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    rollup_body(&format!("{base}{sep}options=-c%20search_path%3D{schema}")).await;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn queries_filter_group_and_rank() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, store) = demo_db(&format!("sqlite://{}", dir.path().join("k.db").display())).await;
    let now = parse_time("2026-05-05T10:30:00Z").unwrap();
    store
        .write_pass(
            "hub-a",
            now,
            &plan(&[(1001, t(10, 5000)), (1003, t(30, 900))]),
            2,
            std::time::Duration::ZERO,
        )
        .await
        .unwrap();
    store
        .write_pass(
            "hub-b",
            now,
            &plan(&[(1001, t(1, 100))]),
            2,
            std::time::Duration::ZERO,
        )
        .await
        .unwrap();
    let (from, to) = (now - Duration::hours(1), now + Duration::hours(1));
    let run = |q: Query| {
        let store = store.clone();
        async move { query::run(&store, &q).await.unwrap().rows }
    };
    // By service: fmk = 1001 on both routers.
    let mut by = q(from, to, Resolution::Hour, Group::Service);
    by.service = Some("fmk".into());
    let rows = run(by).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].key, "fmk");
    assert_eq!(rows[0].traffic.forward_packets, 11);
    // By router, only hub-b.
    let mut by = q(from, to, Resolution::Minute, Group::Router);
    by.router = Some("hub-b".into());
    let rows = run(by).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].key.as_str(), rows[0].traffic.forward_packets),
        ("hub-b", 1)
    );
    // Organisation: both agreements are rsyd's as client; sds provides fmk only.
    let mut by = q(from, to, Resolution::Day, Group::ServiceOrganisation);
    by.organisation = Some("sds".into());
    let rows = run(by).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].key, "sds");
    // Top 1 by bytes is 1001, by transactions 1003.
    let mut top = q(from, to, Resolution::Hour, Group::Agreement);
    top.top = Some(1);
    assert_eq!(run(top.clone()).await[0].key, "1001");
    top.rank = Rank::Transactions;
    let rows = run(top).await;
    assert_eq!((rows.len(), rows[0].key.as_str()), (1, "1003"));
    // Monthly report: GB per organisation.
    let rep = query::monthly(&store, from, to, None).await.unwrap();
    assert_eq!(rep.months.len(), 1);
    let rsyd = rep.months[0]
        .organisations
        .iter()
        .find(|o| o.organisation == "rsyd")
        .unwrap();
    let bytes = (5000 + 2500) + (900 + 450) + (100 + 50);
    assert!((rsyd.as_client_gb - f64::from(bytes) / 1e9).abs() < 1e-12);
    // An empty range and a bad bucket are refused with a message.
    assert!(
        query::run(&store, &q(to, from, Resolution::Hour, Group::Total))
            .await
            .is_err()
    );
    assert!(Resolution::parse("week").is_err());
}

/// `method path` to the server at `addr`; panics when it does not answer within 10 s.
/// A runtime for a test's server and database work: one worker, like the loader's.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// The HTTP state of `kpi serve` for router `hub-a` without a data plane.
fn served(store: KpiStore, ready: Option<sdn_loader::daemon::notify::Readiness>) -> HttpState {
    HttpState {
        store,
        maps: None,
        pin_dir: None,
        router: "hub-a".into(),
        cardinality: Cardinality::All,
        connections: Arc::default(),
        ready,
    }
}

fn http_get(addr: std::net::SocketAddr, path: &str, method: &str) -> (u16, String) {
    support::http::request(addr, method, path, std::time::Duration::from_secs(10)).unwrap()
}

#[test]
fn json_api_answers_the_same_as_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    let rt = runtime();
    let (addr, stop) = rt.block_on(async {
        let (_db, store) = demo_db(&url).await;
        fill(&store, parse_time("2026-03-01T00:00:00Z").unwrap()).await;
        let state = Arc::new(served(store, None));
        let listener = http::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(http::serve(listener, state, Limits::default(), async {
            let _ = rx.await;
        }));
        (addr, tx)
    });
    let cases: [&[&str]; 4] = [
        &[
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-02",
            "--bucket",
            "hour",
        ],
        &[
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-05",
            "--bucket",
            "day",
            "--by",
            "router",
        ],
        &[
            "--from",
            "2026-02-01",
            "--to",
            "2026-04-01",
            "--bucket",
            "month",
            "--by",
            "service",
            "--organisation",
            "sds",
        ],
        &[
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-04",
            "--bucket",
            "hour",
            "--top",
            "1",
            "--rank",
            "transactions",
            "--router",
            "hub-b",
        ],
    ];
    for args in cases {
        let cli = run_ok(
            Command::new(LOADER)
                .args(["kpi", "--db", &url, "query", "--json"])
                .args(args),
        );
        let cli: serde_json::Value = serde_json::from_str(&cli).unwrap();
        let params: Vec<String> = args
            .chunks(2)
            .map(|kv| format!("{}={}", kv[0].trim_start_matches("--"), kv[1]))
            .collect();
        let (status, body) = http_get(addr, &format!("/api/v1/kpi?{}", params.join("&")), "GET");
        assert_eq!(status, 200, "{body}");
        let api: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(api, cli, "API and CLI differ for {args:?}");
        assert!(
            !api["rows"].as_array().unwrap().is_empty(),
            "{args:?} should find traffic"
        );
    }
    // CSV has the same rows.
    let csv = run_ok(
        Command::new(LOADER)
            .args(["kpi", "--db", &url, "query", "--csv"])
            .args(cases[0]),
    );
    let json: serde_json::Value = serde_json::from_str(&run_ok(
        Command::new(LOADER)
            .args(["kpi", "--db", &url, "query", "--json"])
            .args(cases[0]),
    ))
    .unwrap();
    assert_eq!(
        csv.lines().count(),
        json["rows"].as_array().unwrap().len() + 1
    );
    // The index lists the paths, / is the status page; /healthz says the database is up;
    // an unknown path is a 404 that says where to look.
    let (status, body) = http_get(addr, "/api/v1/", "GET");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["paths"]["/api/v1/kpi"].is_string(), "{v}");
    let (status, body) = http_get(addr, "/", "GET");
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("<!DOCTYPE html>") && body.contains("sdn-filter on hub-a"));
    // An unknown parameter is refused by name, wherever it is given.
    for (path, name) in [
        ("/api/v1/kpi?form=2026-03-01", "form"),
        ("/api/v1/reasons?bukket=day", "bukket"),
        ("/api/v1/report/monthly?form=2026-01-01", "form"),
        ("/metrics?debug=1", "debug"),
        ("/healthz?x=1", "x"),
        ("/api/v1/zabbix/discovery?all=1", "all"),
    ] {
        let (status, body) = http_get(addr, path, "GET");
        assert_eq!(status, 400, "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            v["error"].as_str().unwrap().contains(&format!("`{name}`")),
            "{path}: {v}"
        );
    }
    let (status, body) = http_get(addr, "/healthz", "GET");
    assert_eq!((status, body.contains("\"up\"")), (200, true), "{body}");
    let (status, body) = http_get(addr, "/api/v1/nosuch", "GET");
    assert_eq!(status, 404);
    assert!(
        body.contains("/api/v1/nosuch") && body.contains("GET /"),
        "{body}"
    );
    // Read-only: other methods are refused; bad queries say why.
    assert_eq!(http_get(addr, "/api/v1/kpi", "POST").0, 405);
    assert_eq!(http_get(addr, "/metrics", "DELETE").0, 405);
    let (status, body) = http_get(addr, "/api/v1/kpi?bucket=week", "GET");
    assert_eq!(status, 400);
    assert!(body.contains("week"), "{body}");
    // Zabbix discovery lists the agreements /metrics has series for: without a data plane,
    // none (the root tests see it list those in force).
    let (status, body) = http_get(addr, "/api/v1/zabbix/discovery", "GET");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"], serde_json::json!([]), "{v}");
    let (_, metrics) = http_get(addr, "/metrics", "GET");
    assert!(!metrics.contains("agreement=\""), "{metrics}");
    // Monthly report over HTTP equals the CLI's JSON.
    let (status, body) = http_get(
        addr,
        "/api/v1/report/monthly?from=2026-01-01&to=2026-06-01",
        "GET",
    );
    assert_eq!(status, 200);
    let cli = run_ok(Command::new(LOADER).args([
        "kpi",
        "--db",
        &url,
        "monthly",
        "--json",
        "--from",
        "2026-01-01",
        "--to",
        "2026-06-01",
    ]));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::from_str::<serde_json::Value>(&cli).unwrap()
    );
    let _ = stop.send(());
}

/// The KPI store after its file was moved aside and back (same inode): the refresh that found
/// it gone closed the old connections, and a later one must reopen the path, not keep the
/// closed pool (which answered "attempted to acquire a connection on a closed pool" to every
/// KPI request until the loader restarted).
#[tokio::test]
async fn kpi_store_reopens_a_file_moved_aside_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    let url = format!("sqlite://{}", path.display());
    let (db, _) = demo_db(&url).await;
    db.close().await;
    let store = KpiStore::open(&url).await.unwrap();
    let read = |store: &KpiStore| {
        let store = store.clone();
        async move {
            let mut s = Snapshot::default();
            metrics::read_database(&store, &mut s).await.map(|()| s)
        }
    };
    assert!(read(&store).await.is_ok());
    let aside = dir.path().join("aside.db");
    std::fs::rename(&path, &aside).unwrap();
    assert!(store.refresh().await.is_err(), "the file is away");
    assert!(read(&store).await.is_err());
    std::fs::rename(&aside, &path).unwrap();
    assert!(store.refresh().await.unwrap(), "the file is back: reopened");
    let s = read(&store).await.unwrap();
    assert_eq!(s.database_revision, Some(1));
    assert!(!store.refresh().await.unwrap(), "nothing changed since");
}

mod page;
mod surfaces;

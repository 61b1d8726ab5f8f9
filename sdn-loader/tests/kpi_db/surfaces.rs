//! The monitoring surfaces: /metrics (parsed, with sync state), the Grafana dashboard and
//! the Zabbix template (only exported metrics), the HTML report (headless Chromium).

use super::*;

/// A snapshot with every kind of series, and sync state from rows this test writes into the
/// `routers` table (as the sync loop will).
async fn full_snapshot(url: &str, store: &KpiStore) -> Snapshot {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    sqlx::query(
        "INSERT INTO routers (name, applied_revision, last_sync, state, seen_revision, held_revision, error, checked_at, agreements) VALUES ('hub-a', 1, '2026-05-05T10:00:00.000000Z', 'held', 2, 2, 'blast radius', '2026-05-05T10:29:30.000000Z', 2)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let mut s = Snapshot {
        router: "hub-a".into(),
        now: parse_time("2026-05-05T10:30:00Z").unwrap(),
        agreements: vec![(1001, t(10, 5000)), (1003, t(3, 300))],
        reasons: (0..sdn_common::reason::COUNT)
            .map(|r| {
                (
                    sdn_common::reason::name(r),
                    sdn_common::reason::passes(r),
                    u64::from(r) * 3,
                )
            })
            .collect(),
        interfaces: vec![sdn_loader::dataplane::pins::InterfaceHealth {
            interface: "eth1".into(),
            configured: true,
            attached: false,
            problem: Some("its link pin is gone".into()),
        }],
        database_up: Some(true),
        http: Some(sdn_loader::kpi::connections::ConnCounts {
            open: 3,
            limit: 256,
            accepted: 40,
            closed: [1, 2, 3, 4],
            requests_timed_out: 5,
            accept_errors: 6,
        }),
        ..Default::default()
    };
    store
        .write_pass(
            "hub-a",
            parse_time("2026-05-05T10:29:00Z").unwrap(),
            &plan(&[]),
            2,
            std::time::Duration::from_millis(12),
        )
        .await
        .unwrap();
    metrics::read_database(store, &mut s).await.unwrap();
    s
}

#[tokio::test]
async fn metrics_parse_and_carry_sync_state() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    let (_db, store) = demo_db(&url).await;
    let s = full_snapshot(&url, &store).await;
    let text = metrics::render(&s, Cardinality::All);
    // Every line is a comment or `name{labels} value` with a known family name.
    for line in text.lines() {
        if line.starts_with('#') {
            let parts: Vec<_> = line.splitn(4, ' ').collect();
            assert!(matches!(parts[1], "HELP" | "TYPE"), "{line}");
            assert!(METRIC_NAMES.contains(&parts[2]), "undeclared family {line}");
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap();
        assert!(METRIC_NAMES.contains(&&line[..name_end]), "{line}");
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let value = |name: &str, label: Option<(&str, &str)>| -> f64 {
        let s = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .unwrap_or_else(|| panic!("{name} {label:?} missing"));
        match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("unexpected type of {name}"),
        }
    };
    // Counters are typed as counters.
    let fwd = scrape
        .samples
        .iter()
        .find(|s| s.metric == "sdn_agreement_forward_bytes_total")
        .unwrap();
    assert!(matches!(fwd.value, prometheus_parse::Value::Counter(_)));
    assert_eq!(
        value(
            "sdn_agreement_forward_bytes_total",
            Some(("agreement", "1001"))
        ),
        5000.0
    );
    assert_eq!(
        value("sdn_agreement_info", Some(("agreement", "1003"))),
        1.0
    );
    let info = scrape
        .samples
        .iter()
        .find(|s| s.metric == "sdn_agreement_info" && s.labels.get("agreement") == Some("1003"))
        .unwrap();
    assert_eq!(info.labels.get("service"), Some("pacs"));
    assert_eq!(info.labels.get("client_organisation"), Some("rsyd"));
    assert_eq!(
        value("sdn_drops_total", Some(("reason", "no-agreement"))),
        f64::from(sdn_common::reason::NO_AGREEMENT * 3)
    );
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "sdn_passes_total" && s.labels.get("reason") == Some("non-ip"))
    );
    assert_eq!(value("sdn_database_revision", None), 1.0);
    assert_eq!(value("sdn_sync_held", None), 1.0);
    assert_eq!(value("sdn_sync_held_revision", None), 2.0);
    assert_eq!(value("sdn_sync_failed", None), 0.0);
    assert_eq!(value("sdn_sync_last_sync_age_seconds", None), 1800.0);
    assert_eq!(value("sdn_sync_last_check_age_seconds", None), 30.0);
    assert_eq!(value("sdn_sync_state", Some(("state", "held"))), 1.0);
    assert_eq!(value("sdn_kpi_last_pass_age_seconds", None), 60.0);
    assert_eq!(value("sdn_database_up", None), 1.0);
    // Every sample names the router, so that a fleet's dashboards can tell routers apart.
    for sample in &scrape.samples {
        assert_eq!(
            sample.labels.get("router"),
            Some(s.router.as_str()),
            "{} without router",
            sample.metric
        );
    }
    assert_eq!(value("sdn_http_connections_open", None), 3.0);
    assert_eq!(
        value(
            "sdn_http_connections_closed_total",
            Some(("reason", "rejected"))
        ),
        4.0
    );
    assert_eq!(
        value("sdn_interface_attached", Some(("interface", "eth1"))),
        0.0
    );
    // Every declared name is emitted by a full snapshot (the list the dashboard test uses
    // is honest).
    let emitted: HashSet<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    for n in METRIC_NAMES {
        if *n == "sdn_provisioning_agreements" {
            continue; // no provisioning rows in this database
        }
        assert!(emitted.contains(n), "{n} never emitted");
    }
    // The guard: top 1, then none.
    let top = metrics::render(&s, Cardinality::Top(1));
    assert!(top.contains("agreement=\"1001\""));
    assert!(!top.contains("agreement=\"1003\""));
    assert!(top.contains(&format!(
        "sdn_agreement_series_omitted{{router=\"{}\"}} 1\n",
        s.router
    )));
}

/// Metric names used in PromQL expressions: identifiers starting with `sdn_`.
fn names_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let word_start = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if word_start && expr[i..].starts_with("sdn_") {
            let end = expr[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(b.len(), |e| i + e);
            out.push(expr[i..end].to_owned());
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                if k == "expr" {
                    if let Some(s) = v.as_str() {
                        out.push(s.to_owned());
                    }
                } else {
                    exprs(v, out);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[test]
fn grafana_dashboard_queries_only_exported_metrics() {
    let path = workspace_root().join("dashboards/grafana-sdn-filter.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut all = Vec::new();
    exprs(&dash, &mut all);
    assert!(all.len() >= 4, "too few queries: {all:?}");
    let mut used = HashSet::new();
    for e in &all {
        let names = names_in(e);
        assert!(!names.is_empty(), "query without an sdn_ metric: {e}");
        for n in names {
            assert!(
                METRIC_NAMES.contains(&n.as_str()),
                "{n} (in {e}) is not exported"
            );
            used.insert(n);
        }
    }
    // The four pictures the report draws.
    for needed in [
        "sdn_agreement_forward_bytes_total",
        "sdn_agreement_transactions_total",
        "sdn_drops_total",
        "sdn_sync_last_sync_age_seconds",
    ] {
        assert!(used.contains(needed), "dashboard does not use {needed}");
    }
    assert_eq!(
        names_in("rate(sdn_drops_total[5m]) + xsdn_no"),
        ["sdn_drops_total"]
    );
}

#[test]
fn html_report_renders_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    let rt = runtime();
    rt.block_on(async {
        let (_db, store) = demo_db(&url).await;
        fill(&store, parse_time("2026-03-01T00:00:00Z").unwrap()).await;
    });
    let html = dir.path().join("report.html");
    run_ok(Command::new(LOADER).args([
        "kpi",
        "--db",
        &url,
        "report",
        "--html",
        html.to_str().unwrap(),
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-03",
        "--bucket",
        "hour",
    ]));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(!page.contains("<script"), "the report must need no scripts");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no external resources"
    );
    if !super::page::chromium_at_hand() {
        return;
    }
    let shot = std::env::var_os("SDN_KPI_SCREENSHOT")
        .map_or_else(|| dir.path().join("report.png"), std::path::PathBuf::from);
    let chromium = |extra: &[&str]| {
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--window-size=1000,1600",
            ])
            .args(extra)
            .arg(format!("file://{}", html.display()))
            .output()
            .unwrap()
    };
    let dom = chromium(&["--dump-dom"]);
    assert!(dom.status.success(), "{dom:?}");
    let dom = String::from_utf8_lossy(&dom.stdout);
    // The browser parsed the charts: 8-or-fewer agreement lines, bars, and the tables.
    assert_eq!(
        dom.matches("<polyline").count(),
        2,
        "two agreements had traffic"
    );
    assert!(dom.contains("Top agreements") && dom.contains("Drops by reason"));
    assert!(dom.contains("1001 ouh-clinic→fmk"));
    assert!(dom.contains("no-agreement"));
    let out = chromium(&[&format!("--screenshot={}", shot.display())]);
    assert!(out.status.success(), "{out:?}");
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        png.len() > 20_000,
        "a screenshot of charts is not that small: {}",
        png.len()
    );
}

#[test]
fn zabbix_template_uses_only_exported_metrics() {
    let text =
        std::fs::read_to_string(workspace_root().join("docs/zabbix/sdn-filter-template.yaml"))
            .unwrap();
    let names = names_in(&text);
    assert!(names.len() >= 10, "{names:?}");
    for n in &names {
        assert!(METRIC_NAMES.contains(&n.as_str()), "{n} is not exported");
    }
    // The discovery rule reads the endpoint the server has, with the macro the prototypes use.
    assert!(text.contains("/api/v1/zabbix/discovery"));
    assert!(text.contains("agreement=\"{#AGREEMENT}\""));
}

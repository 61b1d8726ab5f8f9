//! The HTTP surface as an operator meets it: the status page at `/` as headless Chromium
//! draws it, `/healthz` answering 503 until the daemon's first sync and 200 after, and
//! `/metrics` gzip-compressed for a client that asks.
//!
//! Chromium (`/usr/bin/chromium`, Debian's package) is installed by `scripts/setup.sh`;
//! without it the drawing is skipped with a printed reason, unless `SDN_REQUIRE_CHROMIUM=1`
//! (set by `cargo xtask test` and CI): then its absence fails the test.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::Path;

use sdn_loader::daemon::notify::Readiness;

use super::*;

const CHROMIUM: &str = "/usr/bin/chromium";
/// The page's bar colour (`#2b6cb0`).
const BAR: [u8; 3] = [0x2b, 0x6c, 0xb0];

/// Serves `state` on a free port of 127.0.0.1 until the sender is used or dropped.
async fn serve(state: HttpState) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = http::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(http::serve(
        listener,
        Arc::new(state),
        Limits::default(),
        async {
            let _ = rx.await;
        },
    ));
    (addr, tx)
}

/// The sync row of `hub-a`, holding revision 2 for the blast-radius guard.
async fn held_router(url: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    sqlx::query(
        "INSERT INTO routers (name, applied_revision, last_sync, state, seen_revision, held_revision, error, checked_at, agreements) VALUES ('hub-a', 1, $1, 'held', 2, 2, 'would remove 1 agreement with recent traffic', $1, 2)",
    )
    .bind(sdn_loader::db::time_text(Utc::now()))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}

/// Whether a drawing can be made here; `false` (with the reason printed) when Chromium is
/// missing and not required.
pub(super) fn chromium_at_hand() -> bool {
    if Path::new(CHROMIUM).is_file() {
        return true;
    }
    assert!(
        std::env::var("SDN_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
        "{CHROMIUM} is missing and SDN_REQUIRE_CHROMIUM=1 (scripts/setup.sh installs it)"
    );
    eprintln!("skipping the drawing: {CHROMIUM} is missing (scripts/setup.sh installs it)");
    false
}

/// Headless Chromium on `url` with a fresh profile and no network of its own beyond it;
/// `what` is `--screenshot=FILE` or `--dump-dom`. Its standard output.
fn chromium(url: &str, what: &str, profile: &Path) -> String {
    let out = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1000,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(what)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A screenshot's rows of RGB pixels.
fn rows_of(png: &Path) -> Vec<Vec<[u8; 3]>> {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    (buf[..info.buffer_size()].chunks(info.line_size))
        .map(|row| {
            (row.chunks(channels).take(info.width as usize))
                .map(|p| [p[0], p[1], p[2]])
                .collect()
        })
        .collect()
}

/// The bars a screenshot shows: for each horizontal band of rows holding the bar colour,
/// its length in pixels, top to bottom.
fn bars(png: &Path) -> Vec<usize> {
    let mut bands: Vec<usize> = Vec::new();
    let mut in_band = false;
    for row in rows_of(png) {
        let run = row.iter().filter(|p| **p == BAR).count();
        match (run > 0, in_band) {
            (true, false) => bands.push(run),
            (true, true) => {
                let last = bands.last_mut().unwrap();
                *last = (*last).max(run);
            }
            _ => {}
        }
        in_band = run > 0;
    }
    bands
}

#[test]
fn the_status_page_draws_the_state_and_the_busiest_agreements() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    let rt = runtime();
    let ready = Readiness::new("test");
    let (addr, _stop, totals) = rt.block_on(async {
        let (_db, store) = demo_db(&url).await;
        // Traffic over the last day, of hub-a and hub-b: the page shows hub-a's.
        let totals = fill(&store, Utc::now() - Duration::hours(23)).await;
        held_router(&url).await;
        // 3,000 drops for want of an agreement a minute ago: 10 per second over 5 minutes.
        let recent = Plan {
            reasons: BTreeMap::from([("no-agreement".to_owned(), 3000)]),
            ..Default::default()
        };
        let minute_ago = Utc::now() - Duration::minutes(1);
        (store.write_pass("hub-a", minute_ago, &recent, 2, std::time::Duration::ZERO))
            .await
            .unwrap();
        let (addr, stop) = serve(served(store, Some(ready.clone()))).await;
        (addr, stop, totals)
    });
    assert_eq!(totals.len(), 2);
    // Not ready before the first sync; ready after, for good.
    let (status, body) = http_get(addr, "/healthz", "GET");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("starting"), "{body}");
    let (status, page) = http_get(addr, "/", "GET");
    assert_eq!(status, 200);
    assert!(
        page.contains("starting: no sync has succeeded yet"),
        "{page}"
    );
    ready.set();
    let (status, body) = http_get(addr, "/healthz", "GET");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"synced\""), "{body}");

    // What the page says, as served: no scripts, nothing from elsewhere.
    let (_, page) = http_get(addr, "/", "GET");
    assert!(!page.contains("<script"), "{page}");
    assert!(!page.contains("http://") && !page.contains("https://"));
    for needle in [
        "sdn-filter on hub-a",
        "id=\"sync-state\" class=\"bad\">held<",
        "would remove 1 agreement with recent traffic",
        "sdn-loader confirm 2",
        "ready (synced since start)",
        "1001 ouh-clinic",
        "<tr id=\"reason-no-agreement\"><td>no-agreement</td><td class=\"bad\">drop</td><td class=\"n\">10.0</td><td class=\"n\">-</td></tr>",
    ] {
        assert!(page.contains(needle), "{needle} missing from\n{page}");
    }
    if !chromium_at_hand() {
        return;
    }
    // What a browser draws: the DOM it built, and a screenshot with one bar per agreement
    // that carried traffic, the busiest longest.
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/");
    let dom = chromium(&url, "--dump-dom", profile.path());
    assert!(dom.contains("<svg id=\"top\""), "{dom}");
    assert_eq!(dom.matches("class=\"bar\"").count(), 2, "{dom}");
    let shot = std::env::var_os("SDN_STATUS_SCREENSHOT")
        .map_or_else(|| dir.path().join("status.png"), std::path::PathBuf::from);
    chromium(
        &url,
        &format!("--screenshot={}", shot.display()),
        profile.path(),
    );
    let drawn = bars(&shot);
    assert_eq!(drawn.len(), 2, "bars drawn: {drawn:?}");
    // hub-a's share of 1001 is ~60 times 1003's: the first bar is the full width, the second
    // the 1 px minimum or a little more.
    assert!(drawn[0] > 300 && drawn[1] < drawn[0] / 10, "{drawn:?}");
}

/// A raw GET with `Accept-Encoding: gzip`: the head, and the body de-chunked.
fn get_gzip(addr: SocketAddr, path: &str) -> (String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let mut rest = &raw[split + 4..];
    if !head.contains("transfer-encoding: chunked") {
        return (head, rest.to_vec());
    }
    let mut body = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap(), 16).unwrap();
        if size == 0 {
            return (head, body);
        }
        body.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
        rest = &rest[eol + 2 + size + 2..];
    }
}

#[test]
fn metrics_are_gzipped_for_a_client_that_asks() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    let rt = runtime();
    let (addr, _stop) = rt.block_on(async {
        let (_db, store) = demo_db(&url).await;
        held_router(&url).await;
        serve(served(store, None)).await
    });
    let (status, plain) = http_get(addr, "/metrics", "GET");
    assert_eq!(status, 200);
    let (head, body) = get_gzip(addr, "/metrics");
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut text)
        .unwrap();
    // The same exposition (but for the HTTP counters, which count this very request, and
    // the ages, which grow).
    let stable = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with("sdn_http_") && !l.contains("_age_seconds"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(stable(&text), stable(&plain));
    assert!(
        body.len() * 3 < text.len(),
        "{} -> {}",
        text.len(),
        body.len()
    );
    // Without asking, no compression.
    let (head, _) = {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let (h, b) = raw.split_once("\r\n\r\n").unwrap();
        (h.to_lowercase(), b.to_owned())
    };
    assert!(!head.contains("content-encoding"), "{head}");
}

/// Pixels of `colour` in the first `rows` rows of a screenshot.
fn pixels_of(png: &Path, colour: [u8; 3], rows: usize) -> usize {
    (rows_of(png).iter().take(rows))
        .map(|row| row.iter().filter(|p| **p == colour).count())
        .sum()
}

/// `kpi report --html` with its defaults (hour buckets over the last 24 hours) when all the
/// traffic fell in one bucket: the chart has every hour on its axis (idle ones at zero), so
/// the line is drawn, with a dot on the busy hour; times are shown to the minute; small
/// monthly figures keep a unit that fits them.
#[test]
fn the_report_draws_traffic_that_fell_in_one_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    let rt = runtime();
    rt.block_on(async {
        let (_db, store) = demo_db(&url).await;
        let busy = Utc::now() - Duration::hours(2);
        (store.write_pass(
            "hub-a",
            busy,
            &plan(&[(1001, t(40, 52_000))]),
            1,
            std::time::Duration::ZERO,
        ))
        .await
        .unwrap();
    });
    let html = dir.path().join("report.html");
    run_ok(
        Command::new(LOADER)
            .args(["kpi", "--db", &url, "report", "--html"])
            .arg(&html),
    );
    let page = std::fs::read_to_string(&html).unwrap();
    // 24 or 25 hour buckets (the range starts inside one), one line, one dot.
    let points = page
        .split("<polyline")
        .nth(1)
        .and_then(|p| p.split("points=\"").nth(1))
        .and_then(|p| p.split('"').next())
        .unwrap_or_default()
        .split(' ')
        .count();
    assert!((24..=25).contains(&points), "{points} points");
    assert_eq!(page.matches("class=\"point\"").count(), 1);
    assert!(!page.contains(".000000"), "times with microseconds");
    assert!(page.contains(" UTC"));
    assert!(!page.contains("0.000"), "figures without a fitting unit");
    assert!(page.contains("78.0 kB"), "52,000 + 26,000 bytes as client");
    if !chromium_at_hand() {
        return;
    }
    // Drawn: the line of the first series (#0072B2) runs across the chart, far more than its
    // 12x12 legend swatch (all a one-point polyline used to show). At this window size the
    // line chart takes the page's first ~500 rows; the bar charts below share the colour.
    let profile = tempfile::tempdir().unwrap();
    let shot = std::env::var_os("SDN_REPORT_SCREENSHOT")
        .map_or_else(|| dir.path().join("report.png"), std::path::PathBuf::from);
    chromium(
        &format!("file://{}", html.display()),
        &format!("--screenshot={}", shot.display()),
        profile.path(),
    );
    let line = pixels_of(&shot, [0x00, 0x72, 0xB2], 520);
    assert!(line > 1000, "{line} pixels of the series colour");
}

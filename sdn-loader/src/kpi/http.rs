//! The loader's read-only HTTP surface (axum on tokio), bound to 127.0.0.1:9640 by default:
//!
//! - `GET /`: the status page ([`crate::kpi::status_page`]); `GET /api/v1/`: the paths.
//! - `GET /healthz`: 200 once ready (the daemon's first sync succeeded, the database answers).
//! - `GET /metrics`: Prometheus text ([`crate::kpi::metrics`]).
//! - `GET /api/v1/kpi?from=&to=&bucket=&by=&agreement=&service=&client=&organisation=&router=&top=&rank=`:
//!   the same query and JSON as `sdn-loader kpi query --json`.
//! - `GET /api/v1/reasons?from=&to=&bucket=&router=`: packets per reason per bucket.
//! - `GET /api/v1/report/monthly?from=&to=&router=`: GB per month and organisation.
//! - `GET /api/v1/zabbix/discovery`: Zabbix low-level discovery of the agreements that
//!   `/metrics` has series for.
//!
//! A query parameter a route does not know is a 400 naming it (a mistyped `form=` must not
//! quietly mean the default range). Answers are gzip-compressed for clients that accept it
//! (`/metrics` shrinks ~10x). Every route is GET only (other methods answer 405): nothing
//! here changes state. Connections
//! are capped and timed out ([`crate::kpi::connections`]), so no client can hold the server or
//! take the loader's file descriptors.

use std::sync::{Arc, Mutex};

use axum::{
    Json, Router,
    extract::{FromRequestParts, Query as UrlQuery, State},
    http::{StatusCode, header, request::Parts},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use chrono::Utc;
use serde::{Deserialize, de::DeserializeOwned};

use crate::daemon::notify::Readiness;
use crate::dataplane::Maps;
use crate::kpi::{
    KpiError, KpiStore, Resolution,
    connections::{self, ConnStats, Limits},
    metrics::{self, Cardinality, Snapshot},
    parse_time,
    query::{self, QueryText},
    status_page,
};

/// Default listening address: localhost only, so nothing is exposed unless asked for.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9640";

/// What the handlers read.
pub struct HttpState {
    /// The KPI tables.
    pub store: KpiStore,
    /// The running data plane's maps (absent: no per-agreement counters or reasons).
    pub maps: Option<Mutex<Maps>>,
    /// The pin tree whose configured interfaces `/metrics` reports (`sdn_interface_attached`).
    pub pin_dir: Option<std::path::PathBuf>,
    /// This router's name (sync state is read for it).
    pub router: String,
    /// Cardinality guard for `/metrics`.
    pub cardinality: Cardinality,
    /// The server's connection counters (exported in `/metrics`).
    pub connections: Arc<ConnStats>,
    /// The daemon's sync readiness (`None`: no sync of its own, as `kpi serve`).
    pub ready: Option<Readiness>,
}

/// Errors of the HTTP surface.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Binding the address failed.
    #[error("listening on {addr}")]
    Bind {
        /// The address.
        addr: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving HTTP")]
    Serve(#[source] std::io::Error),
}

struct ApiError(KpiError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.0 {
            KpiError::BadQuery(_) => StatusCode::BAD_REQUEST,
            KpiError::Unknown { .. } => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut msg = self.0.to_string();
        let mut src = std::error::Error::source(&self.0);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        (status, Json(serde_json::json!({ "error": msg }))).into_response()
    }
}

impl From<KpiError> for ApiError {
    fn from(e: KpiError) -> Self {
        Self(e)
    }
}

/// Query parameters of type `T`, whose unknown names are refused: a 400 with a JSON body
/// naming the parameter and the ones the route knows.
struct Params<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match UrlQuery::<T>::from_request_parts(parts, state).await {
            Ok(UrlQuery(v)) => Ok(Self(v)),
            Err(e) => Err(ApiError(KpiError::BadQuery(e.body_text())).into_response()),
        }
    }
}

/// A route that takes no parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

/// What the server offers, answered at `/api/v1/`.
const PATHS: [(&str, &str); 8] = [
    (
        "/metrics",
        "Prometheus metrics (per agreement, per reason, sync and HTTP state)",
    ),
    (
        "/healthz",
        "200 when ready (the daemon's first sync succeeded) and the database is reachable, else 503",
    ),
    (
        "/api/v1/kpi",
        "per-agreement KPIs: from, to, bucket, by, agreement, service, client, organisation, router, top, rank",
    ),
    (
        "/api/v1/reasons",
        "packets per pass/drop reason: from, to, bucket, router",
    ),
    (
        "/api/v1/report/monthly",
        "GB per month and organisation: from, to, router",
    ),
    (
        "/api/v1/zabbix/discovery",
        "Zabbix low-level discovery of the agreements",
    ),
    ("/", "the status page (HTML)"),
    ("/api/v1/", "this index"),
];

async fn index_handler(Params(NoParams {}): Params<NoParams>) -> Response {
    let paths: serde_json::Map<String, serde_json::Value> = (PATHS.iter())
        .map(|(p, what)| ((*p).to_owned(), serde_json::Value::from(*what)))
        .collect();
    Json(serde_json::json!({ "service": "sdn-loader", "version": env!("CARGO_PKG_VERSION"), "paths": paths }))
        .into_response()
}

/// Readiness with the database: a monitoring check or a load balancer can ask it.
async fn health_handler(
    State(state): State<Arc<HttpState>>,
    Params(NoParams {}): Params<NoParams>,
) -> Response {
    if let Some(ready) = &state.ready
        && !ready.is_ready()
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "starting", "sync": "no sync has succeeded since the daemon started" })),
        )
            .into_response();
    }
    let checked = match state.store.refresh().await {
        Ok(_) => sqlx::query("SELECT 1")
            .execute(&state.store.pool())
            .await
            .map(drop)
            .map_err(KpiError::from),
        Err(e) => Err(e),
    };
    match checked {
        Ok(()) => Json(serde_json::json!({
            "status": "ok",
            "database": "up",
            "sync": if state.ready.is_some() { "synced" } else { "not a daemon" },
        }))
        .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "degraded", "database": "down", "error": e.to_string() })),
        )
            .into_response(),
    }
}

/// Unknown paths: 404 with a body that says where to look.
async fn not_found_handler(uri: axum::http::Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({ "error": format!("no such path: {}; GET / lists the paths", uri.path()) })),
    )
        .into_response()
}

/// The routes.
pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/", get(status_handler))
        .route("/api/v1/", get(index_handler))
        .route("/healthz", get(health_handler))
        .route("/metrics", get(metrics_handler))
        .route("/api/v1/kpi", get(kpi_handler))
        .route("/api/v1/reasons", get(reasons_handler))
        .route("/api/v1/report/monthly", get(monthly_handler))
        .route("/api/v1/zabbix/discovery", get(zabbix_handler))
        .fallback(not_found_handler)
        .with_state(state)
        .layer(tower_http::compression::CompressionLayer::new())
}

/// Serves on `listener` within `limits` until `stop` completes.
///
/// # Errors
/// [`HttpError::Serve`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<HttpState>,
    limits: Limits,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), HttpError> {
    let stats = Arc::clone(&state.connections);
    connections::serve(listener, router(state), limits, stats, stop)
        .await
        .map_err(HttpError::Serve)
}

/// Binds `addr`.
///
/// # Errors
/// [`HttpError::Bind`].
pub async fn bind(addr: &str) -> Result<tokio::net::TcpListener, HttpError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind {
            addr: addr.to_owned(),
            source,
        })
}

/// The text `/metrics` answers.
///
/// # Errors
/// [`KpiError`].
pub async fn metrics_text(state: &HttpState) -> Result<String, KpiError> {
    Ok(metrics::render(&snapshot(state).await?, state.cardinality))
}

/// What one scrape reads: the data plane's counters and the database's state.
async fn snapshot(state: &HttpState) -> Result<Snapshot, KpiError> {
    let mut snap = Snapshot {
        router: state.router.clone(),
        now: Utc::now(),
        ..Default::default()
    };
    if let Some(maps) = &state.maps {
        let maps = maps
            .lock()
            .map_err(|_| KpiError::Corrupt("the maps lock was poisoned".into()))?;
        metrics::read_dataplane(&maps, &mut snap)?;
    }
    if let Some(dir) = &state.pin_dir {
        snap.interfaces = crate::dataplane::pins::interface_health(dir);
    }
    // Without the database the data plane's part still answers, with sdn_database_up 0.
    let read = match state.store.refresh().await {
        Ok(_) => metrics::read_database(&state.store, &mut snap).await,
        Err(e) => Err(e),
    };
    if let Err(e) = &read {
        tracing::debug!("/metrics without the database: {e:#}");
    }
    snap.database_up = Some(read.is_ok());
    snap.database_reopened = state.store.reopened();
    snap.http = Some(state.connections.counts());
    Ok(snap)
}

/// The status page: the scrape's snapshot, recent rates and the busiest agreements from the
/// KPI tables (left empty when the database cannot be read: the page still shows the rest).
async fn status_handler(
    State(state): State<Arc<HttpState>>,
    Params(NoParams {}): Params<NoParams>,
) -> Result<Response, ApiError> {
    let snapshot = snapshot(&state).await?;
    let now = snapshot.now;
    let mut page = status_page::Page {
        ready: state.ready.as_ref().map(Readiness::is_ready),
        ..Default::default()
    };
    if snapshot.database_up == Some(true) {
        let since = now - chrono::Duration::seconds(status_page::RATE_WINDOW_S);
        let recent = query::reasons(
            &state.store,
            since,
            now,
            Resolution::Minute,
            Some(&state.router),
        );
        // A KPI query that fails leaves its part of the page empty; the rest still shows.
        match recent.await {
            Ok(rows) => {
                for (_, reason, n) in rows {
                    *page.recent.entry(reason).or_default() += n;
                }
            }
            Err(e) => tracing::debug!("status page without recent rates: {e:#}"),
        }
        let top = query::Query {
            from: now - chrono::Duration::hours(status_page::TOP_WINDOW_H),
            to: now,
            bucket: Resolution::Hour,
            group: query::Group::Agreement,
            agreement: None,
            service: None,
            client: None,
            organisation: None,
            router: Some(state.router.clone()),
            top: Some(status_page::TOP_N),
            rank: query::Rank::Bytes,
        };
        match query::run(&state.store, &top).await {
            Ok(answer) => page.top = answer.rows,
            Err(e) => tracing::debug!("status page without the busiest agreements: {e:#}"),
        }
    }
    page.snapshot = snapshot;
    Ok(Html(status_page::render(&page)).into_response())
}

async fn metrics_handler(
    State(state): State<Arc<HttpState>>,
    Params(NoParams {}): Params<NoParams>,
) -> Result<Response, ApiError> {
    let text = metrics_text(&state).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn kpi_handler(
    State(state): State<Arc<HttpState>>,
    Params(q): Params<QueryText>,
) -> Result<Response, ApiError> {
    let q = q.to_query(Utc::now())?;
    let answer = query::run(&state.store, &q).await?;
    Ok(Json(answer).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeParams {
    from: Option<String>,
    to: Option<String>,
    bucket: Option<String>,
    router: Option<String>,
}

impl RangeParams {
    fn range(
        &self,
        default_days: i64,
    ) -> Result<(chrono::DateTime<Utc>, chrono::DateTime<Utc>), KpiError> {
        let to = self.to.as_deref().map_or(Ok(Utc::now()), parse_time)?;
        let from = self
            .from
            .as_deref()
            .map_or(Ok(to - chrono::Duration::days(default_days)), parse_time)?;
        Ok((from, to))
    }
}

async fn reasons_handler(
    State(state): State<Arc<HttpState>>,
    Params(p): Params<RangeParams>,
) -> Result<Response, ApiError> {
    let (from, to) = p.range(1)?;
    let bucket = Resolution::parse(p.bucket.as_deref().unwrap_or("hour"))?;
    let rows = query::reasons(&state.store, from, to, bucket, p.router.as_deref()).await?;
    let rows: Vec<_> = rows
        .into_iter()
        .map(|(bucket, reason, packets)| {
            serde_json::json!({"bucket": bucket, "reason": reason, "packets": packets})
        })
        .collect();
    Ok(Json(serde_json::json!({ "rows": rows })).into_response())
}

async fn monthly_handler(
    State(state): State<Arc<HttpState>>,
    Params(p): Params<RangeParams>,
) -> Result<Response, ApiError> {
    let (from, to) = p.range(365)?;
    let report = query::monthly(&state.store, from, to, p.router.clone()).await?;
    Ok(Json(report).into_response())
}

/// Zabbix low-level discovery: one object per agreement that `/metrics` has series for (in
/// force, within the cardinality guard), with the macros the item prototypes of
/// `docs/zabbix/` use; an agreement without names in the database is listed with empty ones.
async fn zabbix_handler(
    State(state): State<Arc<HttpState>>,
    Params(NoParams {}): Params<NoParams>,
) -> Result<Response, ApiError> {
    let mut snap = Snapshot::default();
    if let Some(maps) = &state.maps {
        let maps = maps
            .lock()
            .map_err(|_| KpiError::Corrupt("the maps lock was poisoned".into()))?;
        metrics::read_dataplane(&maps, &mut snap)?;
    }
    let names = query::agreement_names(&state.store).await?;
    let none = query::AgreementNames::default();
    let data: Vec<_> = metrics::shown(&snap.agreements, state.cardinality)
        .into_iter()
        .map(|(id, _)| {
            let n = names.get(id).unwrap_or(&none);
            serde_json::json!({
                "{#AGREEMENT}": id.to_string(),
                "{#CLIENT}": n.client,
                "{#SERVICE}": n.service,
                "{#CLIENT_ORG}": n.client_organisation,
                "{#SERVICE_ORG}": n.service_organisation,
                "{#STATE}": n.state,
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "data": data })).into_response())
}

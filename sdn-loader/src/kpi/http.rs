//! The loader's read-only HTTP surface (axum on tokio), bound to 127.0.0.1:9640 by default:
//!
//! - `GET /metrics`: Prometheus text ([`crate::kpi::metrics`]).
//! - `GET /api/v1/kpi?from=&to=&bucket=&by=&agreement=&service=&client=&organisation=&router=&top=&rank=`:
//!   the same query and JSON as `sdn-loader kpi query --json`.
//! - `GET /api/v1/reasons?from=&to=&bucket=&router=`: packets per reason per bucket.
//! - `GET /api/v1/report/monthly?from=&to=&router=`: GB per month and organisation.
//! - `GET /api/v1/zabbix/discovery`: Zabbix low-level discovery of agreements.
//!
//! Every route is GET only (other methods answer 405): nothing here changes state. Connections
//! are capped and timed out ([`crate::kpi::connections`]), so no client can hold the server or
//! take the loader's file descriptors.

use std::sync::{Arc, Mutex};

use axum::{
    Json, Router,
    extract::{Query as UrlQuery, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::Utc;
use serde::Deserialize;

use crate::dataplane::Maps;
use crate::kpi::{
    KpiError, KpiStore, Resolution,
    connections::{self, ConnStats, Limits},
    metrics::{self, Cardinality, Snapshot},
    parse_time,
    query::{self, QueryText},
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

/// What the server offers, answered at `/` and `/api/v1/`.
const PATHS: [(&str, &str); 7] = [
    (
        "/metrics",
        "Prometheus metrics (per agreement, per reason, sync and HTTP state)",
    ),
    (
        "/healthz",
        "200 when the server answers and the database is reachable, else 503",
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
    ("/", "this index"),
];

async fn index_handler() -> Response {
    let paths: serde_json::Map<String, serde_json::Value> = (PATHS.iter())
        .map(|(p, what)| ((*p).to_owned(), serde_json::Value::from(*what)))
        .collect();
    Json(serde_json::json!({ "service": "sdn-loader", "version": env!("CARGO_PKG_VERSION"), "paths": paths }))
        .into_response()
}

/// Liveness with the database: a monitoring check or a load balancer can ask it.
async fn health_handler(State(state): State<Arc<HttpState>>) -> Response {
    let checked = match state.store.refresh().await {
        Ok(_) => sqlx::query("SELECT 1")
            .execute(&state.store.pool())
            .await
            .map(drop)
            .map_err(KpiError::from),
        Err(e) => Err(e),
    };
    match checked {
        Ok(()) => Json(serde_json::json!({ "status": "ok", "database": "up" })).into_response(),
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
        .route("/", get(index_handler))
        .route("/api/v1/", get(index_handler))
        .route("/healthz", get(health_handler))
        .route("/metrics", get(metrics_handler))
        .route("/api/v1/kpi", get(kpi_handler))
        .route("/api/v1/reasons", get(reasons_handler))
        .route("/api/v1/report/monthly", get(monthly_handler))
        .route("/api/v1/zabbix/discovery", get(zabbix_handler))
        .fallback(not_found_handler)
        .with_state(state)
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
    Ok(metrics::render(&snap, state.cardinality))
}

async fn metrics_handler(State(state): State<Arc<HttpState>>) -> Result<Response, ApiError> {
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
    UrlQuery(q): UrlQuery<QueryText>,
) -> Result<Response, ApiError> {
    let q = q.to_query(Utc::now())?;
    let answer = query::run(&state.store, &q).await?;
    Ok(Json(answer).into_response())
}

#[derive(Deserialize)]
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
    UrlQuery(p): UrlQuery<RangeParams>,
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
    UrlQuery(p): UrlQuery<RangeParams>,
) -> Result<Response, ApiError> {
    let (from, to) = p.range(365)?;
    let report = query::monthly(&state.store, from, to, p.router.clone()).await?;
    Ok(Json(report).into_response())
}

/// Zabbix low-level discovery: one object per agreement in the database, with the macros
/// the item prototypes of `docs/zabbix/` use.
async fn zabbix_handler(State(state): State<Arc<HttpState>>) -> Result<Response, ApiError> {
    let names = query::agreement_names(&state.store).await?;
    let mut ids: Vec<_> = names.keys().copied().collect();
    ids.sort_unstable();
    let data: Vec<_> = ids
        .iter()
        .filter_map(|id| names.get(id).map(|n| (id, n)))
        .map(|(id, n)| {
            serde_json::json!({
                "{#AGREEMENT}": id.to_string(),
                "{#CLIENT}": n.client,
                "{#SERVICE}": n.service,
                "{#CLIENT_ORG}": n.client_organisation,
                "{#SERVICE_ORG}": n.service_organisation,
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "data": data })).into_response())
}

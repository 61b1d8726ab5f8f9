//! KPI queries: traffic over a time range in minute/hour/day/month buckets, filtered by
//! agreement, service, client, organisation and router, grouped, optionally the top N by bytes
//! or transactions. The CLI (`sdn-loader kpi query`) and the HTTP API (`/api/v1/kpi`) both
//! call [`run`], so they answer the same.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row as _;

use super::{KpiError, Resolution, Traffic, store::KpiStore, store::traffic_from_row, time_text};

/// What rows are grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Group {
    /// One row per agreement and bucket.
    Agreement,
    /// Per service.
    Service,
    /// Per client.
    Client,
    /// Per organisation of the client (who consumes).
    ClientOrganisation,
    /// Per organisation of the service (who provides).
    ServiceOrganisation,
    /// Per router.
    Router,
    /// One row per bucket.
    Total,
}

impl Group {
    /// Parses the names used on the command line and in the API.
    ///
    /// # Errors
    /// [`KpiError::BadQuery`].
    pub fn parse(s: &str) -> Result<Self, KpiError> {
        Ok(match s {
            "agreement" => Self::Agreement,
            "service" => Self::Service,
            "client" => Self::Client,
            "client-organisation" | "organisation" => Self::ClientOrganisation,
            "service-organisation" => Self::ServiceOrganisation,
            "router" => Self::Router,
            "total" => Self::Total,
            _ => {
                return Err(KpiError::BadQuery(format!(
                    "unknown grouping {s:?}: give agreement, service, client, organisation (= client-organisation), service-organisation, router or total"
                )));
            }
        })
    }
}

/// What top-N ranks by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rank {
    /// Bytes both ways.
    Bytes,
    /// Transactions.
    Transactions,
}

impl Rank {
    /// Parses `bytes` or `transactions`.
    ///
    /// # Errors
    /// [`KpiError::BadQuery`].
    pub fn parse(s: &str) -> Result<Self, KpiError> {
        match s {
            "bytes" => Ok(Self::Bytes),
            "transactions" => Ok(Self::Transactions),
            _ => Err(KpiError::BadQuery(format!(
                "unknown ranking {s:?}: give bytes or transactions"
            ))),
        }
    }
}

/// A KPI query.
#[derive(Clone, Debug, Serialize)]
pub struct Query {
    /// Start (inclusive): buckets starting at or after it.
    #[serde(serialize_with = "ser_time")]
    pub from: DateTime<Utc>,
    /// End (exclusive): buckets starting before it.
    #[serde(serialize_with = "ser_time")]
    pub to: DateTime<Utc>,
    /// Bucket size.
    pub bucket: Resolution,
    /// Grouping.
    pub group: Group,
    /// Only this agreement.
    pub agreement: Option<u32>,
    /// Only agreements to this service.
    pub service: Option<String>,
    /// Only agreements of this client.
    pub client: Option<String>,
    /// Only agreements where this organisation is the client's or the service's.
    pub organisation: Option<String>,
    /// Only this router.
    pub router: Option<String>,
    /// Keep the top N groups (over the whole range).
    pub top: Option<usize>,
    /// Ranking for `top` (and the order of groups).
    pub rank: Rank,
}

fn ser_time<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&time_text(*t))
}

/// One result row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KpiRow {
    /// Bucket start.
    pub bucket: String,
    /// The group's key (agreement id, service id, ...; `total` for [`Group::Total`]).
    pub key: String,
    /// The counters.
    #[serde(flatten)]
    pub traffic: Traffic,
}

/// A query's answer.
#[derive(Clone, Debug, Serialize)]
pub struct Answer {
    /// The query as understood.
    pub query: Query,
    /// Rows ordered by bucket, then by rank (largest first), then key.
    pub rows: Vec<KpiRow>,
}

/// Names of one agreement (from the agreement database; empty for an agreement that was
/// deleted since).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AgreementNames {
    /// Client id.
    pub client: String,
    /// Service id.
    pub service: String,
    /// Client's organisation.
    pub client_organisation: String,
    /// Service's organisation.
    pub service_organisation: String,
    /// The agreement's state in the database (`approved`, `revoked`, ...).
    pub state: String,
}

/// Agreement id -> names, for every agreement in the database.
///
/// # Errors
/// [`KpiError::Sql`].
pub async fn agreement_names(store: &KpiStore) -> Result<HashMap<u32, AgreementNames>, KpiError> {
    let rows = sqlx::query(
        "SELECT a.id, a.client, a.service, c.organisation, s.organisation, a.state FROM agreements a JOIN clients c ON c.id = a.client JOIN services s ON s.id = a.service",
    )
    .fetch_all(&store.pool())
    .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in &rows {
        let id: i64 = r.try_get(0)?;
        out.insert(
            u32::try_from(id).unwrap_or_default(),
            AgreementNames {
                client: r.try_get(1)?,
                service: r.try_get(2)?,
                client_organisation: r.try_get(3)?,
                service_organisation: r.try_get(4)?,
                state: r.try_get(5)?,
            },
        );
    }
    Ok(out)
}

fn month_of(bucket: &str) -> String {
    // "YYYY-MM-DDT..." -> "YYYY-MM-01T00:00:00.000000Z"
    bucket
        .get(..7)
        .map_or_else(|| bucket.to_owned(), |m| format!("{m}-01T00:00:00.000000Z"))
}

/// Every name `q` filters on must be known, or the empty answer would read as "no traffic"
/// when the name is mistyped: an agreement in the database or in the KPIs (a deleted one
/// keeps its history), a service, client or organisation in the database, a router that
/// reported or recorded KPIs.
async fn check_names(
    store: &KpiStore,
    q: &Query,
    names: &HashMap<u32, AgreementNames>,
) -> Result<(), KpiError> {
    let exists = |sql: &'static str, value: String| async move {
        let found: Option<i64> = sqlx::query_scalar(sql)
            .bind(value)
            .fetch_optional(&store.pool())
            .await?;
        Ok::<bool, KpiError>(found.is_some())
    };
    if let Some(id) = q.agreement
        && !names.contains_key(&id)
        && sqlx::query_scalar::<_, i64>("SELECT 1 FROM kpi_traffic WHERE agreement_id = $1 LIMIT 1")
            .bind(i64::from(id))
            .fetch_optional(&store.pool())
            .await?
            .is_none()
    {
        return Err(KpiError::Unknown {
            what: "agreement",
            name: id.to_string(),
        });
    }
    let tables = [
        (
            "service",
            &q.service,
            "SELECT 1 FROM services WHERE id = $1",
        ),
        ("client", &q.client, "SELECT 1 FROM clients WHERE id = $1"),
        (
            "organisation",
            &q.organisation,
            "SELECT 1 FROM organisations WHERE id = $1",
        ),
        (
            "router",
            &q.router,
            "SELECT 1 FROM routers WHERE name = $1 UNION ALL SELECT 1 FROM kpi_traffic WHERE router = $1 LIMIT 1",
        ),
    ];
    for (what, name, sql) in tables {
        if let Some(name) = name
            && !exists(sql, name.clone()).await?
        {
            return Err(KpiError::Unknown {
                what,
                name: name.clone(),
            });
        }
    }
    Ok(())
}

/// Runs a query.
///
/// # Errors
/// [`KpiError::Sql`], [`KpiError::BadQuery`] (an empty range), [`KpiError::Unknown`] (a
/// name that nothing knows).
pub async fn run(store: &KpiStore, q: &Query) -> Result<Answer, KpiError> {
    if q.from >= q.to {
        return Err(KpiError::BadQuery(format!(
            "empty time range: from {} is not before to {}",
            time_text(q.from),
            time_text(q.to)
        )));
    }
    let names = agreement_names(store).await?;
    check_names(store, q, &names).await?;
    let stored = q.bucket.stored();
    // Buckets are read from the resolution's floor of `from`, so a month or hour that
    // started before `from` is not cut in half silently: a bucket is in when it starts in
    // [floor(from), to).
    let from = time_text(q.bucket.floor(q.from));
    let to = time_text(q.to);
    let mut sql = "SELECT bucket, agreement_id, router, forward_packets, forward_bytes, reply_packets, reply_bytes, transactions FROM kpi_traffic WHERE resolution = $1 AND bucket >= $2 AND bucket < $3".to_owned();
    if q.router.is_some() {
        sql.push_str(" AND router = $4");
    }
    let mut query = sqlx::query(&sql).bind(stored.name()).bind(from).bind(to);
    if let Some(r) = &q.router {
        query = query.bind(r.clone());
    }
    let rows = query.fetch_all(&store.pool()).await?;
    let none = AgreementNames::default();
    // (bucket, key) -> traffic
    let mut cells: BTreeMap<(String, String), Traffic> = BTreeMap::new();
    for r in &rows {
        let bucket: String = r.try_get(0)?;
        let id = u32::try_from(r.try_get::<i64, _>(1)?).unwrap_or_default();
        let router: String = r.try_get(2)?;
        let n = names.get(&id).unwrap_or(&none);
        if q.agreement.is_some_and(|a| a != id)
            || q.service.as_ref().is_some_and(|s| *s != n.service)
            || q.client.as_ref().is_some_and(|c| *c != n.client)
            || q.organisation
                .as_ref()
                .is_some_and(|o| *o != n.client_organisation && *o != n.service_organisation)
        {
            continue;
        }
        let key = match q.group {
            Group::Agreement => id.to_string(),
            Group::Service => n.service.clone(),
            Group::Client => n.client.clone(),
            Group::ClientOrganisation => n.client_organisation.clone(),
            Group::ServiceOrganisation => n.service_organisation.clone(),
            Group::Router => router,
            Group::Total => "total".to_owned(),
        };
        let bucket = if q.bucket == Resolution::Month {
            month_of(&bucket)
        } else {
            bucket
        };
        cells
            .entry((bucket, key))
            .or_default()
            .add(&traffic_from_row(r, 3)?);
    }
    let score = |t: &Traffic| match q.rank {
        Rank::Bytes => t.bytes(),
        Rank::Transactions => t.transactions,
    };
    let mut totals: HashMap<String, Traffic> = HashMap::new();
    for ((_, k), t) in &cells {
        totals.entry(k.clone()).or_default().add(t);
    }
    let keep: Option<std::collections::HashSet<String>> = q.top.map(|n| {
        let mut ranked: Vec<(&String, &Traffic)> = totals.iter().collect();
        ranked.sort_by(|a, b| score(b.1).cmp(&score(a.1)).then_with(|| a.0.cmp(b.0)));
        ranked.into_iter().take(n).map(|(k, _)| k.clone()).collect()
    });
    let mut out: Vec<KpiRow> = cells
        .into_iter()
        .filter(|((_, k), _)| keep.as_ref().is_none_or(|s| s.contains(k)))
        .map(|((bucket, key), traffic)| KpiRow {
            bucket,
            key,
            traffic,
        })
        .collect();
    out.sort_by(|a, b| {
        a.bucket
            .cmp(&b.bucket)
            .then_with(|| score(&b.traffic).cmp(&score(&a.traffic)))
            .then_with(|| a.key.cmp(&b.key))
    });
    Ok(Answer {
        query: q.clone(),
        rows: out,
    })
}

/// The monthly traffic report: per month, GB per organisation (as client and as service).
#[derive(Clone, Debug, Serialize)]
pub struct MonthlyReport {
    /// One entry per month with traffic.
    pub months: Vec<MonthEntry>,
}

/// One month of the report.
#[derive(Clone, Debug, Serialize)]
pub struct MonthEntry {
    /// `YYYY-MM`.
    pub month: String,
    /// GB (10^9 bytes) both ways, all agreements.
    pub total_gb: f64,
    /// Transactions, all agreements.
    pub transactions: u64,
    /// Per organisation: GB of traffic of agreements where it is the client, and where it
    /// is the service, largest first.
    pub organisations: Vec<OrgEntry>,
}

/// One organisation in a month.
#[derive(Clone, Debug, Serialize)]
pub struct OrgEntry {
    /// Organisation id.
    pub organisation: String,
    /// GB as the client's organisation.
    pub as_client_gb: f64,
    /// GB as the service's organisation.
    pub as_service_gb: f64,
    /// Transactions as the client's organisation.
    pub transactions: u64,
}

fn gb(bytes: u64) -> f64 {
    bytes as f64 / 1e9
}

/// Builds the monthly report over `[from, to)` (optionally one router).
///
/// # Errors
/// As [`run`].
pub async fn monthly(
    store: &KpiStore,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    router: Option<String>,
) -> Result<MonthlyReport, KpiError> {
    let base = Query {
        from,
        to,
        bucket: Resolution::Month,
        group: Group::ClientOrganisation,
        agreement: None,
        service: None,
        client: None,
        organisation: None,
        router,
        top: None,
        rank: Rank::Bytes,
    };
    let as_client = run(store, &base).await?;
    let as_service = run(
        store,
        &Query {
            group: Group::ServiceOrganisation,
            ..base
        },
    )
    .await?;
    let mut months: BTreeMap<String, BTreeMap<String, (u64, u64, u64)>> = BTreeMap::new();
    for r in &as_client.rows {
        let m = months.entry(r.bucket.get(..7).unwrap_or_default().to_owned());
        let e = m.or_default().entry(r.key.clone()).or_default();
        e.0 += r.traffic.bytes();
        e.2 += r.traffic.transactions;
    }
    for r in &as_service.rows {
        let m = months.entry(r.bucket.get(..7).unwrap_or_default().to_owned());
        m.or_default().entry(r.key.clone()).or_default().1 += r.traffic.bytes();
    }
    let months = months
        .into_iter()
        .map(|(month, orgs)| {
            let total: u64 = orgs.values().map(|v| v.0).sum();
            let transactions = orgs.values().map(|v| v.2).sum();
            let mut organisations: Vec<OrgEntry> = orgs
                .into_iter()
                .map(|(organisation, (c, s, t))| OrgEntry {
                    organisation,
                    as_client_gb: gb(c),
                    as_service_gb: gb(s),
                    transactions: t,
                })
                .collect();
            organisations.sort_by(|a, b| {
                (b.as_client_gb + b.as_service_gb)
                    .total_cmp(&(a.as_client_gb + a.as_service_gb))
                    .then_with(|| a.organisation.cmp(&b.organisation))
            });
            MonthEntry {
                month,
                total_gb: gb(total),
                transactions,
                organisations,
            }
        })
        .collect();
    Ok(MonthlyReport { months })
}

/// Drops per reason per bucket over `[from, to)`.
///
/// # Errors
/// [`KpiError::Sql`].
pub async fn reasons(
    store: &KpiStore,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket: Resolution,
    router: Option<&str>,
) -> Result<Vec<(String, String, u64)>, KpiError> {
    let stored = bucket.stored();
    let mut sql = "SELECT bucket, reason, packets FROM kpi_reasons WHERE resolution = $1 AND bucket >= $2 AND bucket < $3".to_owned();
    if router.is_some() {
        sql.push_str(" AND router = $4");
    }
    let mut query = sqlx::query(&sql)
        .bind(stored.name())
        .bind(time_text(bucket.floor(from)))
        .bind(time_text(to));
    if let Some(r) = router {
        query = query.bind(r.to_owned());
    }
    let mut cells: BTreeMap<(String, String), u64> = BTreeMap::new();
    for r in &query.fetch_all(&store.pool()).await? {
        let b: String = r.try_get(0)?;
        let b = if bucket == Resolution::Month {
            month_of(&b)
        } else {
            b
        };
        *cells.entry((b, r.try_get(1)?)).or_default() += super::from_db(r.try_get(2)?);
    }
    Ok(cells.into_iter().map(|((b, r), n)| (b, r, n)).collect())
}

/// A query as typed (command-line flags or URL parameters): both surfaces parse it here,
/// so they mean the same.
#[derive(Clone, Debug, Default, serde::Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct QueryText {
    /// Start: YYYY-MM-DD or RFC 3339 (default: 24 hours before --to).
    #[arg(long)]
    pub from: Option<String>,
    /// End, exclusive (default: now).
    #[arg(long)]
    pub to: Option<String>,
    /// Bucket size: minute, hour, day or month.
    #[arg(long, default_value = "hour")]
    #[serde(default)]
    pub bucket: Option<String>,
    /// Group by: agreement, service, client, organisation (of the client),
    /// service-organisation, router or total.
    #[arg(long = "by", default_value = "agreement")]
    #[serde(default, rename = "by")]
    pub group: Option<String>,
    /// Only this agreement.
    #[arg(long)]
    pub agreement: Option<u32>,
    /// Only agreements to this service.
    #[arg(long)]
    pub service: Option<String>,
    /// Only agreements of this client.
    #[arg(long)]
    pub client: Option<String>,
    /// Only agreements where this organisation is the client's or the service's.
    #[arg(long)]
    pub organisation: Option<String>,
    /// Only this router.
    #[arg(long)]
    pub router: Option<String>,
    /// Keep the top N groups.
    #[arg(long)]
    pub top: Option<usize>,
    /// Rank by bytes or transactions.
    #[arg(long, default_value = "bytes")]
    #[serde(default)]
    pub rank: Option<String>,
}

impl QueryText {
    /// The query, with defaults filled in as of `now`.
    ///
    /// # Errors
    /// [`KpiError::BadQuery`].
    pub fn to_query(&self, now: DateTime<Utc>) -> Result<Query, KpiError> {
        let to = self.to.as_deref().map_or(Ok(now), super::parse_time)?;
        let from = self
            .from
            .as_deref()
            .map_or(Ok(to - chrono::Duration::hours(24)), super::parse_time)?;
        Ok(Query {
            from,
            to,
            bucket: Resolution::parse(self.bucket.as_deref().unwrap_or("hour"))?,
            group: Group::parse(self.group.as_deref().unwrap_or("agreement"))?,
            agreement: self.agreement,
            service: self.service.clone(),
            client: self.client.clone(),
            organisation: self.organisation.clone(),
            router: self.router.clone(),
            top: self.top,
            rank: Rank::parse(self.rank.as_deref().unwrap_or("bytes"))?,
        })
    }
}

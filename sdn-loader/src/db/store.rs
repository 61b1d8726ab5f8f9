//! Reading and writing rows. All SQL here is portable between SQLite and PostgreSQL: `$N`
//! placeholders (SQLite reads them as numbered parameters), TEXT and BIGINT values only, and
//! no ORDER BY on text (collations differ between the two): text keys are sorted in Rust.

use std::collections::HashMap;

use sqlx::any::{Any, AnyArguments};
use sqlx::query::Query;
use sqlx::{AnyConnection, Row as _};

use crate::policy::{
    Agreement, Client, Endpoint, InfraEntry, Organisation, PolicyDraft, PortAlias, Service,
};

use super::error::DbError;
use super::text::{
    corrupt, date_column, parse_date_column, parse_ports_column, parse_prefix_column,
    parse_protocol, parse_state, ports_column, prefix_column,
};

/// One bound value.
#[derive(Clone, Debug)]
pub(crate) enum Val {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
}

fn bind<'q>(q: Query<'q, Any, AnyArguments<'q>>, v: &'q Val) -> Query<'q, Any, AnyArguments<'q>> {
    match v {
        Val::Text(s) => q.bind(s.as_str()),
        Val::OptText(s) => q.bind(s.as_deref()),
        Val::Int(i) => q.bind(*i),
        Val::OptInt(i) => q.bind(*i),
    }
}

/// Parameter `n` (from 1) of a statement with many parameters: plain `?` for SQLite,
/// `$n` for PostgreSQL. (SQLite accepts `$n` and `?n` too, but looks up the name of every
/// numbered or named parameter in a list when binding, which makes binding thousands of
/// them quadratic; anonymous `?` parameters are bound in order at no such cost.)
fn param(sqlite: bool, n: usize) -> String {
    if sqlite {
        "?".to_owned()
    } else {
        format!("${n}")
    }
}

fn is_sqlite(conn: &AnyConnection) -> bool {
    conn.backend_name() == "SQLite"
}

/// `($1, $2), ($3, $4)` for `rows` rows of `cols` columns.
fn placeholders(sqlite: bool, rows: usize, cols: usize) -> String {
    let mut out = String::new();
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            out.push_str(&param(sqlite, r * cols + c + 1));
        }
        out.push(')');
    }
    out
}

/// Most parameters bound to one statement (SQLite allows 32,766, PostgreSQL 65,535).
const MAX_PARAMS: usize = 4000;

/// Inserts rows in multi-row statements; calls `progress(rows written)` after each.
pub(crate) async fn insert_rows(
    conn: &mut AnyConnection,
    table: &str,
    columns: &[&str],
    rows: &[Vec<Val>],
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<(), DbError> {
    let per = (MAX_PARAMS / columns.len()).max(1);
    let sqlite = is_sqlite(conn);
    for chunk in rows.chunks(per) {
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES {}",
            columns.join(", "),
            placeholders(sqlite, chunk.len(), columns.len())
        );
        let mut q = sqlx::query(&sql);
        for row in chunk {
            for v in row {
                q = bind(q, v);
            }
        }
        q.execute(&mut *conn).await?;
        progress(chunk.len() as u64);
    }
    Ok(())
}

/// `DELETE FROM table WHERE column IN (...)`, in batches.
pub(crate) async fn delete_in(
    conn: &mut AnyConnection,
    table: &str,
    column: &str,
    keys: &[Val],
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<(), DbError> {
    let sqlite = is_sqlite(conn);
    for chunk in keys.chunks(500) {
        let list: Vec<String> = (1..=chunk.len()).map(|i| param(sqlite, i)).collect();
        let sql = format!(
            "DELETE FROM {table} WHERE {column} IN ({})",
            list.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for v in chunk {
            q = bind(q, v);
        }
        q.execute(&mut *conn).await?;
        progress(chunk.len() as u64);
    }
    Ok(())
}

pub(crate) fn organisation_row(o: &Organisation) -> Vec<Val> {
    vec![Val::Text(o.id.clone()), Val::Text(o.name.clone())]
}
pub(crate) const ORGANISATION_COLUMNS: &[&str] = &["id", "name"];

pub(crate) fn port_alias_row(a: &PortAlias) -> Vec<Val> {
    vec![
        Val::Text(a.name.clone()),
        Val::Text(a.protocol.name().to_owned()),
        Val::Text(ports_column(&a.ports)),
    ]
}
pub(crate) const PORT_ALIAS_COLUMNS: &[&str] = &["name", "protocol", "ports"];

pub(crate) fn service_row(s: &Service) -> Vec<Val> {
    vec![
        Val::Text(s.id.clone()),
        Val::Text(s.organisation.clone()),
        Val::Text(s.name.clone()),
    ]
}
pub(crate) const SERVICE_COLUMNS: &[&str] = &["id", "organisation", "name"];

pub(crate) fn endpoint_row(service: &str, seq: usize, e: &Endpoint) -> Vec<Val> {
    vec![
        Val::Text(service.to_owned()),
        Val::Int(seq as i64),
        Val::Text(prefix_column(e.address)),
        Val::Text(e.protocol.name().to_owned()),
        Val::Text(ports_column(&e.ports)),
    ]
}
pub(crate) const ENDPOINT_COLUMNS: &[&str] = &["service", "seq", "address", "protocol", "ports"];

pub(crate) fn client_row(c: &Client) -> Vec<Val> {
    vec![Val::Text(c.id.clone()), Val::Text(c.organisation.clone())]
}
pub(crate) const CLIENT_COLUMNS: &[&str] = &["id", "organisation"];

pub(crate) fn prefix_row(client: &str, seq: usize, p: ipnet::IpNet) -> Vec<Val> {
    vec![
        Val::Text(client.to_owned()),
        Val::Int(seq as i64),
        Val::Text(prefix_column(p)),
    ]
}
pub(crate) const PREFIX_COLUMNS: &[&str] = &["client", "seq", "prefix"];

pub(crate) fn agreement_row(a: &Agreement) -> Vec<Val> {
    vec![
        Val::Int(i64::from(a.id)),
        Val::Text(a.client.clone()),
        Val::Text(a.service.clone()),
        Val::Text(a.state.name().to_owned()),
        Val::OptText(a.expires.map(date_column)),
        Val::OptInt(a.vlan.map(i64::from)),
    ]
}
pub(crate) const AGREEMENT_COLUMNS: &[&str] =
    &["id", "client", "service", "state", "expires", "vlan"];

pub(crate) fn infra_row(seq: usize, e: &InfraEntry) -> Vec<Val> {
    vec![
        Val::Int(seq as i64),
        Val::Text(prefix_column(e.prefix)),
        Val::Text(e.protocol.name().to_owned()),
        Val::Text(ports_column(&e.ports)),
    ]
}
pub(crate) const INFRA_COLUMNS: &[&str] = &["seq", "prefix", "protocol", "ports"];

/// Inserts services with their endpoints.
pub(crate) async fn insert_services(
    conn: &mut AnyConnection,
    services: &[&Service],
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<(), DbError> {
    let rows: Vec<Vec<Val>> = services.iter().map(|s| service_row(s)).collect();
    insert_rows(conn, "services", SERVICE_COLUMNS, &rows, progress).await?;
    let endpoints: Vec<Vec<Val>> = services
        .iter()
        .flat_map(|s| {
            s.endpoints
                .iter()
                .enumerate()
                .map(|(i, e)| endpoint_row(&s.id, i, e))
        })
        .collect();
    insert_rows(conn, "endpoints", ENDPOINT_COLUMNS, &endpoints, &mut |_| {}).await
}

/// Inserts clients with their prefixes.
pub(crate) async fn insert_clients(
    conn: &mut AnyConnection,
    clients: &[&Client],
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<(), DbError> {
    let rows: Vec<Vec<Val>> = clients.iter().map(|c| client_row(c)).collect();
    insert_rows(conn, "clients", CLIENT_COLUMNS, &rows, progress).await?;
    let prefixes: Vec<Vec<Val>> = clients
        .iter()
        .flat_map(|c| {
            c.prefixes
                .iter()
                .enumerate()
                .map(|(i, p)| prefix_row(&c.id, i, *p))
        })
        .collect();
    insert_rows(
        conn,
        "client_prefixes",
        PREFIX_COLUMNS,
        &prefixes,
        &mut |_| {},
    )
    .await
}

pub(crate) async fn revision(conn: &mut AnyConnection) -> Result<u64, DbError> {
    let value: i64 = sqlx::query_scalar("SELECT value FROM revision WHERE id = 1")
        .fetch_one(&mut *conn)
        .await?;
    Ok(u64::try_from(value).unwrap_or_default())
}

/// Adds one to the revision and returns the new value. Every change does this first, so
/// that concurrent writers queue on the revision row (PostgreSQL) or the write lock (SQLite).
pub(crate) async fn bump_revision(conn: &mut AnyConnection) -> Result<i64, DbError> {
    Ok(
        sqlx::query_scalar("UPDATE revision SET value = value + 1 WHERE id = 1 RETURNING value")
            .fetch_one(&mut *conn)
            .await?,
    )
}

pub(crate) async fn organisations(conn: &mut AnyConnection) -> Result<Vec<Organisation>, DbError> {
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, name FROM organisations")
        .fetch_all(&mut *conn)
        .await?;
    let mut out: Vec<Organisation> = rows
        .into_iter()
        .map(|(id, name)| Organisation { id, name })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

pub(crate) async fn organisation(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<Organisation>, DbError> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT id, name FROM organisations WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.map(|(id, name)| Organisation { id, name }))
}

fn port_alias_from(
    (name, protocol, ports): (String, String, String),
) -> Result<PortAlias, DbError> {
    let protocol =
        parse_protocol(&protocol).ok_or_else(|| corrupt("port_aliases", &name, &protocol))?;
    let ports = parse_ports_column(&ports, "port_aliases", &name)?;
    Ok(PortAlias {
        name,
        protocol,
        ports,
    })
}

pub(crate) async fn port_aliases(conn: &mut AnyConnection) -> Result<Vec<PortAlias>, DbError> {
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT name, protocol, ports FROM port_aliases")
            .fetch_all(&mut *conn)
            .await?;
    let mut out = rows
        .into_iter()
        .map(port_alias_from)
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub(crate) async fn port_alias(
    conn: &mut AnyConnection,
    name: &str,
) -> Result<Option<PortAlias>, DbError> {
    let row: Option<(String, String, String)> =
        sqlx::query_as("SELECT name, protocol, ports FROM port_aliases WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
    row.map(port_alias_from).transpose()
}

type EndpointRow = (String, i64, String, String, String);

fn endpoint_from(
    (service, seq, address, protocol, ports): &EndpointRow,
) -> Result<Endpoint, DbError> {
    let key = format!("{service}#{seq}");
    Ok(Endpoint {
        address: parse_prefix_column(address, "endpoints", &key)?,
        protocol: parse_protocol(protocol).ok_or_else(|| corrupt("endpoints", &key, protocol))?,
        ports: parse_ports_column(ports, "endpoints", &key)?,
    })
}

const SERVICE_SELECT: &str = "SELECT id, organisation, name FROM services";
const ENDPOINT_SELECT: &str = "SELECT service, seq, address, protocol, ports FROM endpoints";

/// Services (sorted by id) with their endpoints (in `seq` order); `where_` filters services
/// and endpoints alike (`$1` is the value bound).
async fn services_where(
    conn: &mut AnyConnection,
    service_filter: &str,
    endpoint_filter: &str,
    value: Option<&str>,
) -> Result<Vec<Service>, DbError> {
    let sql = format!("{SERVICE_SELECT}{service_filter}");
    let mut q = sqlx::query_as::<_, (String, String, String)>(&sql);
    if let Some(v) = value {
        q = q.bind(v);
    }
    let rows = q.fetch_all(&mut *conn).await?;
    let sql = format!("{ENDPOINT_SELECT}{endpoint_filter} ORDER BY seq");
    let mut q = sqlx::query_as::<_, EndpointRow>(&sql);
    if let Some(v) = value {
        q = q.bind(v);
    }
    let endpoint_rows = q.fetch_all(&mut *conn).await?;
    let mut endpoints: HashMap<String, Vec<Endpoint>> = HashMap::new();
    for row in &endpoint_rows {
        endpoints
            .entry(row.0.clone())
            .or_default()
            .push(endpoint_from(row)?);
    }
    let mut out: Vec<Service> = rows
        .into_iter()
        .map(|(id, organisation, name)| Service {
            endpoints: endpoints.remove(&id).unwrap_or_default(),
            id,
            organisation,
            name,
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

pub(crate) async fn services(conn: &mut AnyConnection) -> Result<Vec<Service>, DbError> {
    services_where(conn, "", "", None).await
}

pub(crate) async fn service(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<Service>, DbError> {
    Ok(
        services_where(conn, " WHERE id = $1", " WHERE service = $1", Some(id))
            .await?
            .pop(),
    )
}

/// The service's endpoints with their `seq` numbers.
pub(crate) async fn endpoints_with_seq(
    conn: &mut AnyConnection,
    service: &str,
) -> Result<Vec<(i64, Endpoint)>, DbError> {
    let sql = format!("{ENDPOINT_SELECT} WHERE service = $1 ORDER BY seq");
    let rows: Vec<EndpointRow> = sqlx::query_as(&sql)
        .bind(service)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|row| Ok((row.1, endpoint_from(row)?)))
        .collect()
}

async fn clients_where(
    conn: &mut AnyConnection,
    client_filter: &str,
    prefix_filter: &str,
    value: Option<&str>,
) -> Result<Vec<Client>, DbError> {
    let sql = format!("SELECT id, organisation FROM clients{client_filter}");
    let mut q = sqlx::query_as::<_, (String, String)>(&sql);
    if let Some(v) = value {
        q = q.bind(v);
    }
    let rows = q.fetch_all(&mut *conn).await?;
    let sql =
        format!("SELECT client, seq, prefix FROM client_prefixes{prefix_filter} ORDER BY seq");
    let mut q = sqlx::query_as::<_, (String, i64, String)>(&sql);
    if let Some(v) = value {
        q = q.bind(v);
    }
    let prefix_rows = q.fetch_all(&mut *conn).await?;
    let mut prefixes: HashMap<String, Vec<ipnet::IpNet>> = HashMap::new();
    for (client, seq, prefix) in &prefix_rows {
        let net = parse_prefix_column(prefix, "client_prefixes", &format!("{client}#{seq}"))?;
        prefixes.entry(client.clone()).or_default().push(net);
    }
    let mut out: Vec<Client> = rows
        .into_iter()
        .map(|(id, organisation)| Client {
            prefixes: prefixes.remove(&id).unwrap_or_default(),
            id,
            organisation,
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

pub(crate) async fn clients(conn: &mut AnyConnection) -> Result<Vec<Client>, DbError> {
    clients_where(conn, "", "", None).await
}

pub(crate) async fn client(conn: &mut AnyConnection, id: &str) -> Result<Option<Client>, DbError> {
    Ok(
        clients_where(conn, " WHERE id = $1", " WHERE client = $1", Some(id))
            .await?
            .pop(),
    )
}

type AgreementRow = (i64, String, String, String, Option<String>, Option<i64>);

fn agreement_from(
    (id, client, service, state, expires, vlan): AgreementRow,
) -> Result<Agreement, DbError> {
    let key = id.to_string();
    Ok(Agreement {
        id: u32::try_from(id).map_err(|_| corrupt("agreements", &key, &key))?,
        state: parse_state(&state).ok_or_else(|| corrupt("agreements", &key, &state))?,
        expires: expires
            .map(|e| parse_date_column(&e, "agreements", &key))
            .transpose()?,
        vlan: vlan
            .map(|v| u16::try_from(v).map_err(|_| corrupt("agreements", &key, &v.to_string())))
            .transpose()?,
        client,
        service,
    })
}

const AGREEMENT_SELECT: &str = "SELECT id, client, service, state, expires, vlan FROM agreements";

/// Agreements sorted by id; `filter` is a WHERE clause over `values` ($1, $2, ...).
pub(crate) async fn agreements_where(
    conn: &mut AnyConnection,
    filter: &str,
    values: &[Val],
) -> Result<Vec<Agreement>, DbError> {
    let sql = format!("{AGREEMENT_SELECT}{filter} ORDER BY id");
    let mut q = sqlx::query(&sql);
    for v in values {
        q = bind(q, v);
    }
    let rows = q.fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| {
            agreement_from((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
                r.try_get(5)?,
            ))
        })
        .collect()
}

pub(crate) async fn agreement(
    conn: &mut AnyConnection,
    id: u32,
) -> Result<Option<Agreement>, DbError> {
    Ok(
        agreements_where(conn, " WHERE id = $1", &[Val::Int(i64::from(id))])
            .await?
            .pop(),
    )
}

pub(crate) async fn infrastructure(conn: &mut AnyConnection) -> Result<Vec<InfraEntry>, DbError> {
    let rows: Vec<(i64, String, String, String)> =
        sqlx::query_as("SELECT seq, prefix, protocol, ports FROM infrastructure ORDER BY seq")
            .fetch_all(&mut *conn)
            .await?;
    rows.into_iter()
        .map(|(seq, prefix, protocol, ports)| {
            let key = seq.to_string();
            Ok(InfraEntry {
                prefix: parse_prefix_column(&prefix, "infrastructure", &key)?,
                protocol: parse_protocol(&protocol)
                    .ok_or_else(|| corrupt("infrastructure", &key, &protocol))?,
                ports: parse_ports_column(&ports, "infrastructure", &key)?,
            })
        })
        .collect()
}

/// The whole database as a policy draft (to validate), in the export order (see
/// [`crate::policy::Policy::canonical`]).
pub(crate) async fn policy(conn: &mut AnyConnection) -> Result<PolicyDraft, DbError> {
    Ok(PolicyDraft {
        organisations: organisations(conn).await?,
        port_aliases: port_aliases(conn).await?,
        services: services(conn).await?,
        clients: clients(conn).await?,
        agreements: agreements_where(conn, "", &[]).await?,
        infrastructure: infrastructure(conn).await?,
    })
}

/// `SELECT COUNT(*) ...` with one text parameter.
pub(crate) async fn count(
    conn: &mut AnyConnection,
    sql: &str,
    value: &str,
) -> Result<u64, DbError> {
    let n: i64 = sqlx::query_scalar(sql)
        .bind(value)
        .fetch_one(&mut *conn)
        .await?;
    Ok(u64::try_from(n).unwrap_or_default())
}

/// Up to `limit` agreement ids matching `column = value`, and how many there are.
pub(crate) async fn agreement_ids(
    conn: &mut AnyConnection,
    column: &str,
    value: &str,
    limit: usize,
) -> Result<(Vec<u32>, u64), DbError> {
    let total = count(
        conn,
        &format!("SELECT COUNT(*) FROM agreements WHERE {column} = $1"),
        value,
    )
    .await?;
    let ids: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT id FROM agreements WHERE {column} = $1 ORDER BY id LIMIT {limit}"
    ))
    .bind(value)
    .fetch_all(&mut *conn)
    .await?;
    Ok((
        ids.into_iter()
            .filter_map(|i| u32::try_from(i).ok())
            .collect(),
        total,
    ))
}

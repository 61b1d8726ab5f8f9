//! Reading objects and changing them one at a time.

use ipnet::IpNet;
use serde_json::Value;
use sqlx::AnyConnection;

use crate::policy::{
    Agreement, AgreementState, Client, Endpoint, Location, Organisation, PortAlias, Section,
    Service, ValidationError, ValidationErrorKind,
};

use super::audit::Row;
use super::error::{DbError, ObjectKind};
use super::store::{self, Val};
use super::text::{
    agreement_json, client_json, organisation_json, port_alias_json, ports_column, prefix_column,
    service_json,
};
use super::{Change, Committed, Db, Origin, Transition, check};

mod agreements;
mod clients;
mod services;

/// Which agreements to list; every field given must match.
#[derive(Clone, Debug, Default)]
pub struct AgreementFilter {
    /// Of this client.
    pub client: Option<String>,
    /// To this service.
    pub service: Option<String>,
    /// In this state.
    pub state: Option<AgreementState>,
}

/// Which fields of an agreement to change; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgreementEdit {
    /// A new client.
    pub client: Option<String>,
    /// A new service.
    pub service: Option<String>,
    /// A new state (a lifecycle transition from the state the agreement is in).
    pub state: Option<AgreementState>,
    /// A new expiry date, or `Some(None)` for none.
    pub expires: Option<Option<chrono::NaiveDate>>,
    /// A new VLAN, or `Some(None)` for any VLAN.
    pub vlan: Option<Option<u16>>,
}

impl AgreementEdit {
    fn apply(&self, a: &mut Agreement) {
        if let Some(c) = &self.client {
            a.client.clone_from(c);
        }
        if let Some(s) = &self.service {
            a.service.clone_from(s);
        }
        if let Some(s) = self.state {
            a.state = s;
        }
        if let Some(e) = self.expires {
            a.expires = e;
        }
        if let Some(v) = self.vlan {
            a.vlan = v;
        }
    }
}

/// How many ids to name in a refusal.
const NAMED: usize = 10;

fn id_list(ids: &[u32], total: u64) -> String {
    let mut s: Vec<String> = ids.iter().map(u32::to_string).collect();
    if total > ids.len() as u64 {
        s.push(format!("and {} more", total - ids.len() as u64));
    }
    s.join(", ")
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One audited change of one object, as [`Change::record`] takes it.
struct Event<'a> {
    action: &'static str,
    kind: ObjectKind,
    key: &'a str,
    organisation: Option<&'a str>,
    peer_organisation: Option<&'a str>,
    before: Option<Value>,
    after: Option<Value>,
}

impl Change<'_> {
    /// Adds `e` to the audit rows this change writes when it commits.
    fn record(&mut self, e: Event<'_>) {
        self.audit.push(Row {
            action: e.action,
            kind: e.kind,
            key: e.key.to_owned(),
            organisation: e.organisation.map(str::to_owned),
            peer_organisation: e.peer_organisation.map(str::to_owned),
            before: e.before,
            after: e.after,
        });
    }

    async fn done(self) -> Result<Committed, DbError> {
        self.commit(&mut |_| {}).await
    }
}

fn not_found(kind: ObjectKind, key: &str) -> DbError {
    DbError::NotFound {
        kind,
        key: key.to_owned(),
    }
}

fn duplicate(kind: ObjectKind, key: &str) -> DbError {
    DbError::Duplicate {
        kind,
        key: key.to_owned(),
    }
}

/// Replaces a service's row and endpoints (`exists`: update, else insert).
async fn write_service(conn: &mut AnyConnection, s: &Service, exists: bool) -> Result<(), DbError> {
    if exists {
        sqlx::query("DELETE FROM endpoints WHERE service = $1")
            .bind(s.id.as_str())
            .execute(&mut *conn)
            .await?;
        sqlx::query("UPDATE services SET organisation = $2, name = $3 WHERE id = $1")
            .bind(s.id.as_str())
            .bind(s.organisation.as_str())
            .bind(s.name.as_str())
            .execute(&mut *conn)
            .await?;
        let rows: Vec<Vec<Val>> = s
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| store::endpoint_row(&s.id, i, e))
            .collect();
        store::insert_rows(
            conn,
            "endpoints",
            store::ENDPOINT_COLUMNS,
            &rows,
            &mut |_| {},
        )
        .await
    } else {
        store::insert_services(conn, &[s], &mut |_| {}).await
    }
}

/// Replaces a client's row and prefixes (`exists`: update, else insert).
async fn write_client(conn: &mut AnyConnection, c: &Client, exists: bool) -> Result<(), DbError> {
    if exists {
        sqlx::query("DELETE FROM client_prefixes WHERE client = $1")
            .bind(c.id.as_str())
            .execute(&mut *conn)
            .await?;
        sqlx::query("UPDATE clients SET organisation = $2 WHERE id = $1")
            .bind(c.id.as_str())
            .bind(c.organisation.as_str())
            .execute(&mut *conn)
            .await?;
        let rows: Vec<Vec<Val>> = c
            .prefixes
            .iter()
            .enumerate()
            .map(|(i, p)| store::prefix_row(&c.id, i, *p))
            .collect();
        store::insert_rows(
            conn,
            "client_prefixes",
            store::PREFIX_COLUMNS,
            &rows,
            &mut |_| {},
        )
        .await
    } else {
        store::insert_clients(conn, &[c], &mut |_| {}).await
    }
}

async fn owner(conn: &mut AnyConnection, table: &str, id: &str) -> Result<Option<String>, DbError> {
    Ok(
        sqlx::query_scalar(&format!("SELECT organisation FROM {table} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// Checks an agreement's VLAN and references; returns the client's and the service's
/// organisations.
async fn check_agreement(
    conn: &mut AnyConnection,
    a: &Agreement,
) -> Result<(String, String), DbError> {
    let at = Location {
        section: Section::Agreement,
        index: 0,
        key: Some(a.id.to_string()),
        endpoint: None,
    };
    let mut errors = Vec::new();
    let mut push = |field, kind| {
        errors.push(ValidationError {
            location: at.clone(),
            field,
            kind,
        });
    };
    let client_org = owner(conn, "clients", &a.client).await?;
    if client_org.is_none() {
        push(
            "client",
            ValidationErrorKind::UnknownReference {
                section: Section::Client,
                id: a.client.clone(),
                suggestion: None,
            },
        );
    }
    let service_org = owner(conn, "services", &a.service).await?;
    if service_org.is_none() {
        push(
            "service",
            ValidationErrorKind::UnknownReference {
                section: Section::Service,
                id: a.service.clone(),
                suggestion: None,
            },
        );
    }
    if let Some(vlan) = a.vlan {
        if !(1..=4094).contains(&vlan) {
            push(
                "vlan",
                ValidationErrorKind::VlanOutOfRange {
                    value: i64::from(vlan),
                },
            );
        }
    }
    match (client_org, service_org) {
        (Some(c), Some(s)) if errors.is_empty() => Ok((c, s)),
        _ => Err(DbError::Invalid {
            what: format!("agreement {}", a.id),
            errors,
        }),
    }
}

impl Db {
    // ---- reading ----

    /// Every organisation, sorted by id.
    ///
    /// # Errors
    /// [`DbError::Sql`].
    pub async fn organisations(&self) -> Result<Vec<Organisation>, DbError> {
        store::organisations(&mut *self.pool.acquire().await?).await
    }

    /// One organisation.
    ///
    /// # Errors
    /// [`DbError::Sql`].
    pub async fn organisation(&self, id: &str) -> Result<Option<Organisation>, DbError> {
        store::organisation(&mut *self.pool.acquire().await?, id).await
    }

    /// Every port alias, sorted by name.
    ///
    /// # Errors
    /// [`DbError::Sql`], [`DbError::Corrupt`].
    pub async fn port_aliases(&self) -> Result<Vec<PortAlias>, DbError> {
        store::port_aliases(&mut *self.pool.acquire().await?).await
    }

    /// One port alias (`alias show NAME`: the ports it stands for).
    ///
    /// # Errors
    /// [`DbError::Sql`], [`DbError::Corrupt`].
    pub async fn port_alias(&self, name: &str) -> Result<Option<PortAlias>, DbError> {
        store::port_alias(&mut *self.pool.acquire().await?, name).await
    }

    /// Every service with its endpoints, sorted by id.
    ///
    /// # Errors
    /// [`DbError::Sql`], [`DbError::Corrupt`].
    pub async fn services(&self) -> Result<Vec<Service>, DbError> {
        let mut tx = self.snapshot().await?;
        let out = store::services(&mut tx).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// One service with its endpoints.
    ///
    /// # Errors
    /// [`DbError::Sql`], [`DbError::Corrupt`].
    pub async fn service(&self, id: &str) -> Result<Option<Service>, DbError> {
        let mut tx = self.snapshot().await?;
        let out = store::service(&mut tx, id).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Every client with its prefixes, sorted by id.
    ///
    /// # Errors
    /// [`DbError::Sql`], [`DbError::Corrupt`].
    pub async fn clients(&self) -> Result<Vec<Client>, DbError> {
        let mut tx = self.snapshot().await?;
        let out = store::clients(&mut tx).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// One client with its prefixes.
    ///
    /// # Errors
    /// [`DbError::Sql`], [`DbError::Corrupt`].
    pub async fn client(&self, id: &str) -> Result<Option<Client>, DbError> {
        let mut tx = self.snapshot().await?;
        let out = store::client(&mut tx, id).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Agreements matching `filter`, sorted by id.
    ///
    /// # Errors
    /// [`DbError::Sql`], [`DbError::Corrupt`].
    pub async fn agreements(&self, filter: &AgreementFilter) -> Result<Vec<Agreement>, DbError> {
        let mut clauses = Vec::new();
        let mut values = Vec::new();
        for (column, value) in [
            ("client", filter.client.clone()),
            ("service", filter.service.clone()),
            ("state", filter.state.map(|s| s.name().to_owned())),
        ] {
            if let Some(v) = value {
                values.push(Val::Text(v));
                clauses.push(format!("{column} = ${}", values.len()));
            }
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        store::agreements_where(&mut *self.pool.acquire().await?, &filter, &values).await
    }

    /// One agreement.
    ///
    /// # Errors
    /// [`DbError::Sql`], [`DbError::Corrupt`].
    pub async fn agreement(&self, id: u32) -> Result<Option<Agreement>, DbError> {
        store::agreement(&mut *self.pool.acquire().await?, id).await
    }

    /// An endpoint as written on the command line, checked with the policy file's rules
    /// against the port aliases in the database: `address` an address or prefix, `protocol`
    /// one of the six, `ports` items `"443"`, `"8000-8100"` or alias names (`None`: every
    /// port, or none for protocols without ports).
    ///
    /// # Errors
    /// [`DbError::Invalid`] naming the field; [`DbError::Sql`].
    pub async fn endpoint_from_text(
        &self,
        address: &str,
        protocol: &str,
        ports: Option<&[String]>,
    ) -> Result<Endpoint, DbError> {
        let aliases = self.port_aliases().await?;
        check::endpoint_text(&aliases, address, protocol, ports)
    }

    // ---- organisations ----

    /// Creates an organisation.
    ///
    /// # Errors
    /// [`DbError::Invalid`] (a bad id), [`DbError::Duplicate`], [`DbError::Sql`].
    pub async fn create_organisation(
        &self,
        o: &Organisation,
        origin: &Origin,
    ) -> Result<Committed, DbError> {
        let o = check::organisation(o)?;
        let mut ch = Change::begin(self, origin).await?;
        if store::organisation(ch.conn(), &o.id).await?.is_some() {
            return Err(duplicate(ObjectKind::Organisation, &o.id));
        }
        store::insert_rows(
            ch.conn(),
            "organisations",
            store::ORGANISATION_COLUMNS,
            &[store::organisation_row(&o)],
            &mut |_| {},
        )
        .await?;
        ch.record(Event {
            action: "create",
            kind: ObjectKind::Organisation,
            key: &o.id,
            organisation: Some(&o.id),
            peer_organisation: None,
            before: None,
            after: Some(organisation_json(&o)),
        });
        ch.done().await
    }

    /// Renames an organisation (`o.id` says which).
    ///
    /// # Errors
    /// [`DbError::Invalid`] (a name the policy file would refuse), [`DbError::NotFound`],
    /// [`DbError::Sql`].
    pub async fn update_organisation(
        &self,
        o: &Organisation,
        origin: &Origin,
    ) -> Result<Committed, DbError> {
        // The same rules as a policy file's (a control character in the name, say).
        let o = &check::organisation(o)?;
        let mut ch = Change::begin(self, origin).await?;
        let before = store::organisation(ch.conn(), &o.id)
            .await?
            .ok_or_else(|| not_found(ObjectKind::Organisation, &o.id))?;
        if before != *o {
            sqlx::query("UPDATE organisations SET name = $2 WHERE id = $1")
                .bind(o.id.as_str())
                .bind(o.name.as_str())
                .execute(ch.conn())
                .await?;
            ch.record(Event {
                action: "update",
                kind: ObjectKind::Organisation,
                key: &o.id,
                organisation: Some(&o.id),
                peer_organisation: None,
                before: Some(organisation_json(&before)),
                after: Some(organisation_json(o)),
            });
        }
        ch.done().await
    }

    /// Deletes an organisation that owns no services and no clients.
    ///
    /// # Errors
    /// [`DbError::NotFound`], [`DbError::InUse`], [`DbError::Sql`].
    pub async fn delete_organisation(
        &self,
        id: &str,
        origin: &Origin,
    ) -> Result<Committed, DbError> {
        let mut ch = Change::begin(self, origin).await?;
        let before = store::organisation(ch.conn(), id)
            .await?
            .ok_or_else(|| not_found(ObjectKind::Organisation, id))?;
        let services = store::count(
            ch.conn(),
            "SELECT COUNT(*) FROM services WHERE organisation = $1",
            id,
        )
        .await?;
        let clients = store::count(
            ch.conn(),
            "SELECT COUNT(*) FROM clients WHERE organisation = $1",
            id,
        )
        .await?;
        if services + clients > 0 {
            return Err(DbError::InUse {
                kind: ObjectKind::Organisation,
                key: id.to_owned(),
                users: format!(
                    "it still owns {} and {}; move or delete them first",
                    plural(services, "service", "services"),
                    plural(clients, "client", "clients")
                ),
            });
        }
        sqlx::query("DELETE FROM organisations WHERE id = $1")
            .bind(id)
            .execute(ch.conn())
            .await?;
        ch.record(Event {
            action: "delete",
            kind: ObjectKind::Organisation,
            key: id,
            organisation: Some(id),
            peer_organisation: None,
            before: Some(organisation_json(&before)),
            after: None,
        });
        ch.done().await
    }

    // ---- port aliases ----

    /// Creates a port alias. Endpoints store resolved ports, so an alias only matters when an
    /// endpoint is written.
    ///
    /// # Errors
    /// [`DbError::Invalid`], [`DbError::Duplicate`], [`DbError::Sql`].
    pub async fn create_port_alias(
        &self,
        a: &PortAlias,
        origin: &Origin,
    ) -> Result<Committed, DbError> {
        let a = check::port_alias(a)?;
        let mut ch = Change::begin(self, origin).await?;
        if store::port_alias(ch.conn(), &a.name).await?.is_some() {
            return Err(duplicate(ObjectKind::PortAlias, &a.name));
        }
        store::insert_rows(
            ch.conn(),
            "port_aliases",
            store::PORT_ALIAS_COLUMNS,
            &[store::port_alias_row(&a)],
            &mut |_| {},
        )
        .await?;
        ch.record(Event {
            action: "create",
            kind: ObjectKind::PortAlias,
            key: &a.name,
            organisation: None,
            peer_organisation: None,
            before: None,
            after: Some(port_alias_json(&a)),
        });
        ch.done().await
    }

    /// Deletes a port alias (endpoints written with it keep their ports).
    ///
    /// # Errors
    /// [`DbError::NotFound`], [`DbError::Sql`].
    pub async fn delete_port_alias(
        &self,
        name: &str,
        origin: &Origin,
    ) -> Result<Committed, DbError> {
        let mut ch = Change::begin(self, origin).await?;
        let before = store::port_alias(ch.conn(), name)
            .await?
            .ok_or_else(|| not_found(ObjectKind::PortAlias, name))?;
        sqlx::query("DELETE FROM port_aliases WHERE name = $1")
            .bind(name)
            .execute(ch.conn())
            .await?;
        ch.record(Event {
            action: "delete",
            kind: ObjectKind::PortAlias,
            key: name,
            organisation: None,
            peer_organisation: None,
            before: Some(port_alias_json(&before)),
            after: None,
        });
        ch.done().await
    }
}

/// `203.0.113.10/32 tcp` or `203.0.113.10/32 tcp 443`.
fn describe_endpoint(e: &Endpoint, with_ports: bool) -> String {
    let mut s = format!("{} {}", e.address, e.protocol.name());
    if with_ports && e.protocol.has_ports() {
        s.push(' ');
        s.push_str(&if e.ports.is_empty() {
            "0-65535".to_owned()
        } else {
            ports_column(&e.ports)
        });
    }
    s
}

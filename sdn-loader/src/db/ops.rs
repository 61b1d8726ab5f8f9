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

impl Change<'_> {
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        action: &'static str,
        kind: ObjectKind,
        key: &str,
        organisation: Option<&str>,
        peer_organisation: Option<&str>,
        before: Option<Value>,
        after: Option<Value>,
    ) {
        self.audit.push(Row {
            action,
            kind,
            key: key.to_owned(),
            organisation: organisation.map(str::to_owned),
            peer_organisation: peer_organisation.map(str::to_owned),
            before,
            after,
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
        ch.record(
            "create",
            ObjectKind::Organisation,
            &o.id,
            Some(&o.id),
            None,
            None,
            Some(organisation_json(&o)),
        );
        ch.done().await
    }

    /// Renames an organisation (`o.id` says which).
    ///
    /// # Errors
    /// [`DbError::NotFound`], [`DbError::Sql`].
    pub async fn update_organisation(
        &self,
        o: &Organisation,
        origin: &Origin,
    ) -> Result<Committed, DbError> {
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
            ch.record(
                "update",
                ObjectKind::Organisation,
                &o.id,
                Some(&o.id),
                None,
                Some(organisation_json(&before)),
                Some(organisation_json(o)),
            );
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
        ch.record(
            "delete",
            ObjectKind::Organisation,
            id,
            Some(id),
            None,
            Some(organisation_json(&before)),
            None,
        );
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
        ch.record(
            "create",
            ObjectKind::PortAlias,
            &a.name,
            None,
            None,
            None,
            Some(port_alias_json(&a)),
        );
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
        ch.record(
            "delete",
            ObjectKind::PortAlias,
            name,
            None,
            None,
            Some(port_alias_json(&before)),
            None,
        );
        ch.done().await
    }

    // ---- services and endpoints ----

    /// Creates a service with its endpoints.
    ///
    /// # Errors
    /// [`DbError::Invalid`] (bad id, unknown organisation, bad endpoint, no endpoint),
    /// [`DbError::Duplicate`], [`DbError::Sql`].
    pub async fn create_service(&self, s: &Service, origin: &Origin) -> Result<Committed, DbError> {
        let mut ch = Change::begin(self, origin).await?;
        let s = check::service(s, store::organisations(ch.conn()).await?)?;
        if store::service(ch.conn(), &s.id).await?.is_some() {
            return Err(duplicate(ObjectKind::Service, &s.id));
        }
        write_service(ch.conn(), &s, false).await?;
        ch.record(
            "create",
            ObjectKind::Service,
            &s.id,
            Some(&s.organisation),
            None,
            None,
            Some(service_json(&s)),
        );
        ch.done().await
    }

    /// Replaces a service (`s.id` says which): name, organisation and endpoints. Its
    /// agreements are untouched.
    ///
    /// # Errors
    /// [`DbError::NotFound`], [`DbError::Invalid`], [`DbError::Sql`].
    pub async fn update_service(&self, s: &Service, origin: &Origin) -> Result<Committed, DbError> {
        self.edit_service(&s.id, "update", origin, |x| {
            x.clone_from(s);
            Ok(())
        })
        .await
    }

    /// Renames a service; its endpoints and agreements are untouched.
    ///
    /// # Errors
    /// [`DbError::NotFound`], [`DbError::Sql`].
    pub async fn rename_service(
        &self,
        id: &str,
        name: &str,
        origin: &Origin,
    ) -> Result<Committed, DbError> {
        self.edit_service(id, "update", origin, |s| {
            name.clone_into(&mut s.name);
            Ok(())
        })
        .await
    }

    /// Moves a service to another organisation; its endpoints and agreements are untouched.
    ///
    /// # Errors
    /// [`DbError::NotFound`], [`DbError::Invalid`] (unknown organisation), [`DbError::Sql`].
    pub async fn move_service(
        &self,
        id: &str,
        organisation: &str,
        origin: &Origin,
    ) -> Result<Committed, DbError> {
        self.edit_service(id, "move", origin, |s| {
            organisation.clone_into(&mut s.organisation);
            Ok(())
        })
        .await
    }

    /// Reads service `id`, applies `edit` and writes the result, all in one change: a
    /// concurrent change is either wholly before this one or wholly after it.
    async fn edit_service(
        &self,
        id: &str,
        action: &'static str,
        origin: &Origin,
        edit: impl FnOnce(&mut Service) -> Result<(), DbError> + Send,
    ) -> Result<Committed, DbError> {
        let mut ch = Change::begin(self, origin).await?;
        let before = store::service(ch.conn(), id)
            .await?
            .ok_or_else(|| not_found(ObjectKind::Service, id))?;
        let mut edited = before.clone();
        edit(&mut edited)?;
        if edited.id != before.id {
            return Err(not_found(ObjectKind::Service, &edited.id));
        }
        let s = check::service(&edited, store::organisations(ch.conn()).await?)?;
        if before != s {
            write_service(ch.conn(), &s, true).await?;
            let peer =
                (before.organisation != s.organisation).then_some(before.organisation.as_str());
            ch.record(
                action,
                ObjectKind::Service,
                &s.id,
                Some(&s.organisation),
                peer,
                Some(service_json(&before)),
                Some(service_json(&s)),
            );
        }
        ch.done().await
    }

    /// Deletes a service (with its endpoints) that has no agreements.
    ///
    /// # Errors
    /// [`DbError::NotFound`], [`DbError::InUse`], [`DbError::Sql`].
    pub async fn delete_service(&self, id: &str, origin: &Origin) -> Result<Committed, DbError> {
        let mut ch = Change::begin(self, origin).await?;
        let before = store::service(ch.conn(), id)
            .await?
            .ok_or_else(|| not_found(ObjectKind::Service, id))?;
        let (ids, total) = store::agreement_ids(ch.conn(), "service", id, NAMED).await?;
        if total > 0 {
            return Err(DbError::InUse {
                kind: ObjectKind::Service,
                key: id.to_owned(),
                users: format!(
                    "it has {} ({}); delete them first",
                    plural(total, "agreement", "agreements"),
                    id_list(&ids, total)
                ),
            });
        }
        sqlx::query("DELETE FROM endpoints WHERE service = $1")
            .bind(id)
            .execute(ch.conn())
            .await?;
        sqlx::query("DELETE FROM services WHERE id = $1")
            .bind(id)
            .execute(ch.conn())
            .await?;
        ch.record(
            "delete",
            ObjectKind::Service,
            id,
            Some(&before.organisation),
            None,
            Some(service_json(&before)),
            None,
        );
        ch.done().await
    }

    /// Adds an endpoint to a service (after its other endpoints).
    ///
    /// # Errors
    /// [`DbError::NotFound`], [`DbError::Invalid`], [`DbError::Sql`].
    pub async fn add_endpoint(
        &self,
        service: &str,
        endpoint: &Endpoint,
        origin: &Origin,
    ) -> Result<Committed, DbError> {
        let mut ch = Change::begin(self, origin).await?;
        let before = store::service(ch.conn(), service)
            .await?
            .ok_or_else(|| not_found(ObjectKind::Service, service))?;
        let organisations = store::organisations(ch.conn()).await?;
        let one = check::service(
            &Service {
                endpoints: vec![endpoint.clone()],
                ..before.clone()
            },
            organisations,
        )?;
        let Some(endpoint) = one.endpoints.into_iter().next() else {
            return Err(not_found(ObjectKind::Service, service));
        };
        let seq: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(seq), -1) + 1 FROM endpoints WHERE service = $1",
        )
        .bind(service)
        .fetch_one(ch.conn())
        .await?;
        sqlx::query(
            "INSERT INTO endpoints (service, seq, address, protocol, ports) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(service)
        .bind(seq)
        .bind(prefix_column(endpoint.address))
        .bind(endpoint.protocol.name())
        .bind(ports_column(&endpoint.ports))
        .execute(ch.conn())
        .await?;
        let mut after = before.clone();
        after.endpoints.push(endpoint);
        ch.record(
            "add-endpoint",
            ObjectKind::Service,
            service,
            Some(&before.organisation),
            None,
            Some(service_json(&before)),
            Some(service_json(&after)),
        );
        ch.done().await
    }

    /// Deletes the endpoint of `service` with this address and protocol (and, when
    /// `match_ports`, these ports). Refused when it is the service's last endpoint: a service
    /// needs one, and its agreements would lose their destination.
    ///
    /// # Errors
    /// [`DbError::NotFound`], [`DbError::NoSuchEndpoint`], [`DbError::AmbiguousEndpoint`],
    /// [`DbError::LastEndpoint`], [`DbError::Sql`].
    pub async fn delete_endpoint(
        &self,
        service: &str,
        endpoint: &Endpoint,
        match_ports: bool,
        origin: &Origin,
    ) -> Result<Committed, DbError> {
        let mut ch = Change::begin(self, origin).await?;
        let before = store::service(ch.conn(), service)
            .await?
            .ok_or_else(|| not_found(ObjectKind::Service, service))?;
        let endpoints = store::endpoints_with_seq(ch.conn(), service).await?;
        let matching: Vec<i64> = endpoints
            .iter()
            .filter(|(_, e)| {
                e.address == endpoint.address
                    && e.protocol == endpoint.protocol
                    && (!match_ports || e.ports == endpoint.ports)
            })
            .map(|(seq, _)| *seq)
            .collect();
        let described = describe_endpoint(endpoint, match_ports);
        let seq = match matching.as_slice() {
            [] => {
                return Err(DbError::NoSuchEndpoint {
                    service: service.to_owned(),
                    endpoint: described,
                });
            }
            [one] => *one,
            many => {
                return Err(DbError::AmbiguousEndpoint {
                    service: service.to_owned(),
                    endpoint: described,
                    count: many.len(),
                });
            }
        };
        if endpoints.len() == 1 {
            let (agreements, total) =
                store::agreement_ids(ch.conn(), "service", service, NAMED).await?;
            return Err(DbError::LastEndpoint {
                service: service.to_owned(),
                agreements,
                total,
            });
        }
        sqlx::query("DELETE FROM endpoints WHERE service = $1 AND seq = $2")
            .bind(service)
            .bind(seq)
            .execute(ch.conn())
            .await?;
        let after = Service {
            endpoints: endpoints
                .into_iter()
                .filter(|(s, _)| *s != seq)
                .map(|(_, e)| e)
                .collect(),
            ..before.clone()
        };
        ch.record(
            "delete-endpoint",
            ObjectKind::Service,
            service,
            Some(&before.organisation),
            None,
            Some(service_json(&before)),
            Some(service_json(&after)),
        );
        ch.done().await
    }

    // ---- clients and prefixes ----

    /// Creates a client with its prefixes.
    ///
    /// # Errors
    /// [`DbError::Invalid`] (bad id, unknown organisation, bad prefix, no prefix),
    /// [`DbError::Duplicate`], [`DbError::Sql`].
    pub async fn create_client(&self, c: &Client, origin: &Origin) -> Result<Committed, DbError> {
        let mut ch = Change::begin(self, origin).await?;
        let c = check::client(c, store::organisations(ch.conn()).await?)?;
        if store::client(ch.conn(), &c.id).await?.is_some() {
            return Err(duplicate(ObjectKind::Client, &c.id));
        }
        write_client(ch.conn(), &c, false).await?;
        ch.record(
            "create",
            ObjectKind::Client,
            &c.id,
            Some(&c.organisation),
            None,
            None,
            Some(client_json(&c)),
        );
        ch.done().await
    }

    /// Replaces a client (`c.id` says which): organisation and prefixes.
    ///
    /// # Errors
    /// [`DbError::NotFound`], [`DbError::Invalid`], [`DbError::Sql`].
    pub async fn update_client(&self, c: &Client, origin: &Origin) -> Result<Committed, DbError> {
        self.edit_client(&c.id, "update", origin, |x| {
            x.clone_from(c);
            Ok(())
        })
        .await
    }

    /// Moves a client to another organisation; its prefixes and agreements are untouched.
    ///
    /// # Errors
    /// [`DbError::NotFound`], [`DbError::Invalid`] (unknown organisation), [`DbError::Sql`].
    pub async fn move_client(
        &self,
        id: &str,
        organisation: &str,
        origin: &Origin,
    ) -> Result<Committed, DbError> {
        self.edit_client(id, "update", origin, |c| {
            organisation.clone_into(&mut c.organisation);
            Ok(())
        })
        .await
    }

    /// Reads client `id`, applies `edit` and writes the result, all in one change.
    async fn edit_client(
        &self,
        id: &str,
        action: &'static str,
        origin: &Origin,
        edit: impl FnOnce(&mut Client) -> Result<(), DbError> + Send,
    ) -> Result<Committed, DbError> {
        let mut ch = Change::begin(self, origin).await?;
        let before = store::client(ch.conn(), id)
            .await?
            .ok_or_else(|| not_found(ObjectKind::Client, id))?;
        let mut edited = before.clone();
        edit(&mut edited)?;
        if edited.id != before.id {
            return Err(not_found(ObjectKind::Client, &edited.id));
        }
        let c = check::client(&edited, store::organisations(ch.conn()).await?)?;
        if before != c {
            write_client(ch.conn(), &c, true).await?;
            let peer =
                (before.organisation != c.organisation).then_some(before.organisation.as_str());
            ch.record(
                action,
                ObjectKind::Client,
                &c.id,
                Some(&c.organisation),
                peer,
                Some(client_json(&before)),
                Some(client_json(&c)),
            );
        }
        ch.done().await
    }

    /// Adds a prefix to a client.
    ///
    /// # Errors
    /// [`DbError::NotFound`], [`DbError::Invalid`] (host bits set), [`DbError::Sql`].
    pub async fn add_prefix(
        &self,
        client: &str,
        prefix: IpNet,
        origin: &Origin,
    ) -> Result<Committed, DbError> {
        self.edit_client(client, "add-prefix", origin, |c| {
            c.prefixes.push(prefix);
            Ok(())
        })
        .await
    }

    /// Deletes a prefix of a client; refused for its last prefix.
    ///
    /// # Errors
    /// [`DbError::NotFound`], [`DbError::NoSuchPrefix`], [`DbError::LastPrefix`],
    /// [`DbError::Sql`].
    pub async fn delete_prefix(
        &self,
        client: &str,
        prefix: IpNet,
        origin: &Origin,
    ) -> Result<Committed, DbError> {
        self.edit_client(client, "delete-prefix", origin, |c| {
            let before = c.prefixes.len();
            c.prefixes.retain(|p| *p != prefix);
            if c.prefixes.len() == before {
                return Err(DbError::NoSuchPrefix {
                    client: client.to_owned(),
                    prefix: prefix.to_string(),
                });
            }
            if c.prefixes.is_empty() {
                return Err(DbError::LastPrefix {
                    client: client.to_owned(),
                });
            }
            Ok(())
        })
        .await
    }

    /// Deletes a client (with its prefixes) that has no agreements.
    ///
    /// # Errors
    /// [`DbError::NotFound`], [`DbError::InUse`], [`DbError::Sql`].
    pub async fn delete_client(&self, id: &str, origin: &Origin) -> Result<Committed, DbError> {
        let mut ch = Change::begin(self, origin).await?;
        let before = store::client(ch.conn(), id)
            .await?
            .ok_or_else(|| not_found(ObjectKind::Client, id))?;
        let (ids, total) = store::agreement_ids(ch.conn(), "client", id, NAMED).await?;
        if total > 0 {
            return Err(DbError::InUse {
                kind: ObjectKind::Client,
                key: id.to_owned(),
                users: format!(
                    "it has {} ({}); delete them first",
                    plural(total, "agreement", "agreements"),
                    id_list(&ids, total)
                ),
            });
        }
        sqlx::query("DELETE FROM client_prefixes WHERE client = $1")
            .bind(id)
            .execute(ch.conn())
            .await?;
        sqlx::query("DELETE FROM clients WHERE id = $1")
            .bind(id)
            .execute(ch.conn())
            .await?;
        ch.record(
            "delete",
            ObjectKind::Client,
            id,
            Some(&before.organisation),
            None,
            Some(client_json(&before)),
            None,
        );
        ch.done().await
    }

    // ---- agreements ----

    /// Creates an agreement.
    ///
    /// # Errors
    /// [`DbError::Duplicate`] (id in use), [`DbError::Invalid`] (unknown client or service,
    /// VLAN out of range), [`DbError::Sql`].
    pub async fn create_agreement(
        &self,
        a: &Agreement,
        origin: &Origin,
    ) -> Result<Committed, DbError> {
        let mut ch = Change::begin(self, origin).await?;
        if store::agreement(ch.conn(), a.id).await?.is_some() {
            return Err(duplicate(ObjectKind::Agreement, &a.id.to_string()));
        }
        let (client_org, service_org) = check_agreement(ch.conn(), a).await?;
        store::insert_rows(
            ch.conn(),
            "agreements",
            store::AGREEMENT_COLUMNS,
            &[store::agreement_row(a)],
            &mut |_| {},
        )
        .await?;
        ch.record(
            "create",
            ObjectKind::Agreement,
            &a.id.to_string(),
            Some(&client_org),
            Some(&service_org),
            None,
            Some(agreement_json(a)),
        );
        ch.done().await
    }

    /// Edits agreement `id`: the fields `edit` names, read and written in one change, so a
    /// concurrent change of other fields is neither lost nor undone. A change of state must be
    /// one of the lifecycle's transitions (see [`Transition`]).
    ///
    /// # Errors
    /// [`DbError::NotFound`], [`DbError::ForbiddenState`], [`DbError::Invalid`],
    /// [`DbError::Sql`].
    pub async fn update_agreement(
        &self,
        id: u32,
        edit: &AgreementEdit,
        origin: &Origin,
    ) -> Result<Committed, DbError> {
        self.edit_agreement(id, "update", origin, |a| {
            edit.apply(a);
            Ok(())
        })
        .await
    }

    /// `agreement approve|reject|revoke|request`: the state change, checked against the
    /// state read in the same transaction.
    ///
    /// # Errors
    /// [`DbError::NotFound`], [`DbError::BadTransition`], [`DbError::Sql`].
    pub async fn transition(
        &self,
        id: u32,
        transition: Transition,
        origin: &Origin,
    ) -> Result<Committed, DbError> {
        self.edit_agreement(id, transition.name(), origin, |a| {
            if !transition.applies_to(a.state) {
                return Err(DbError::BadTransition {
                    id,
                    state: a.state,
                    transition,
                });
            }
            a.state = transition.to();
            Ok(())
        })
        .await
    }

    /// Reads agreement `id`, applies `edit`, checks the lifecycle and the references, and
    /// writes the result, all in one change.
    async fn edit_agreement(
        &self,
        id: u32,
        action: &'static str,
        origin: &Origin,
        edit: impl FnOnce(&mut Agreement) -> Result<(), DbError> + Send,
    ) -> Result<Committed, DbError> {
        let mut ch = Change::begin(self, origin).await?;
        let before = store::agreement(ch.conn(), id)
            .await?
            .ok_or_else(|| not_found(ObjectKind::Agreement, &id.to_string()))?;
        let mut a = before.clone();
        edit(&mut a)?;
        a.id = id;
        if a.state != before.state && Transition::between(before.state, a.state).is_none() {
            return Err(DbError::ForbiddenState {
                id,
                from: before.state,
                to: a.state,
            });
        }
        let (client_org, service_org) = check_agreement(ch.conn(), &a).await?;
        if before != a {
            sqlx::query(
                "UPDATE agreements SET client = $2, service = $3, state = $4, expires = $5, vlan = $6 WHERE id = $1",
            )
            .bind(i64::from(a.id))
            .bind(a.client.as_str())
            .bind(a.service.as_str())
            .bind(a.state.name())
            .bind(a.expires.map(super::text::date_column))
            .bind(a.vlan.map(i64::from))
            .execute(ch.conn())
            .await?;
            ch.record(
                action,
                ObjectKind::Agreement,
                &a.id.to_string(),
                Some(&client_org),
                Some(&service_org),
                Some(agreement_json(&before)),
                Some(agreement_json(&a)),
            );
        }
        ch.done().await
    }

    /// Deletes an agreement.
    ///
    /// # Errors
    /// [`DbError::NotFound`], [`DbError::Sql`].
    pub async fn delete_agreement(&self, id: u32, origin: &Origin) -> Result<Committed, DbError> {
        let mut ch = Change::begin(self, origin).await?;
        let key = id.to_string();
        let before = store::agreement(ch.conn(), id)
            .await?
            .ok_or_else(|| not_found(ObjectKind::Agreement, &key))?;
        let client_org = owner(ch.conn(), "clients", &before.client).await?;
        let service_org = owner(ch.conn(), "services", &before.service).await?;
        sqlx::query("DELETE FROM agreements WHERE id = $1")
            .bind(i64::from(id))
            .execute(ch.conn())
            .await?;
        ch.record(
            "delete",
            ObjectKind::Agreement,
            &key,
            client_org.as_deref(),
            service_org.as_deref(),
            Some(agreement_json(&before)),
            None,
        );
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

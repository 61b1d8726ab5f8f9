//! Services and their endpoints, one change at a time.

#[allow(
    clippy::wildcard_imports,
    reason = "the helpers and imports of the change operations"
)]
use super::*;

impl Db {
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
        ch.record(Event {
            action: "create",
            kind: ObjectKind::Service,
            key: &s.id,
            organisation: Some(&s.organisation),
            peer_organisation: None,
            before: None,
            after: Some(service_json(&s)),
        });
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
            ch.record(Event {
                action,
                kind: ObjectKind::Service,
                key: &s.id,
                organisation: Some(&s.organisation),
                peer_organisation: peer,
                before: Some(service_json(&before)),
                after: Some(service_json(&s)),
            });
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
        ch.record(Event {
            action: "delete",
            kind: ObjectKind::Service,
            key: id,
            organisation: Some(&before.organisation),
            peer_organisation: None,
            before: Some(service_json(&before)),
            after: None,
        });
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
        // Checked with the service's other endpoints, so that a repeat is refused.
        let endpoint = check::added_endpoint(&before, endpoint, organisations)?;
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
        ch.record(Event {
            action: "add-endpoint",
            kind: ObjectKind::Service,
            key: service,
            organisation: Some(&before.organisation),
            peer_organisation: None,
            before: Some(service_json(&before)),
            after: Some(service_json(&after)),
        });
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
        ch.record(Event {
            action: "delete-endpoint",
            kind: ObjectKind::Service,
            key: service,
            organisation: Some(&before.organisation),
            peer_organisation: None,
            before: Some(service_json(&before)),
            after: Some(service_json(&after)),
        });
        ch.done().await
    }
}

//! Agreements: creation, edits through the lifecycle, deletion.

#[allow(
    clippy::wildcard_imports,
    reason = "the helpers and imports of the change operations"
)]
use super::*;

impl Db {
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
        ch.record(Event {
            action: "create",
            kind: ObjectKind::Agreement,
            key: &a.id.to_string(),
            organisation: Some(&client_org),
            peer_organisation: Some(&service_org),
            before: None,
            after: Some(agreement_json(a)),
        });
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
            .bind(a.expires.map(crate::db::text::date_column))
            .bind(a.vlan.map(i64::from))
            .execute(ch.conn())
            .await?;
            ch.record(Event {
                action,
                kind: ObjectKind::Agreement,
                key: &a.id.to_string(),
                organisation: Some(&client_org),
                peer_organisation: Some(&service_org),
                before: Some(agreement_json(&before)),
                after: Some(agreement_json(&a)),
            });
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
        ch.record(Event {
            action: "delete",
            kind: ObjectKind::Agreement,
            key: &key,
            organisation: client_org.as_deref(),
            peer_organisation: service_org.as_deref(),
            before: Some(agreement_json(&before)),
            after: None,
        });
        ch.done().await
    }
}

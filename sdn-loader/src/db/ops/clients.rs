//! Clients and their prefixes, one change at a time.

#[allow(
    clippy::wildcard_imports,
    reason = "the helpers and imports of the change operations"
)]
use super::*;

impl Db {
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
        ch.record(Event {
            action: "create",
            kind: ObjectKind::Client,
            key: &c.id,
            organisation: Some(&c.organisation),
            peer_organisation: None,
            before: None,
            after: Some(client_json(&c)),
        });
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
            ch.record(Event {
                action,
                kind: ObjectKind::Client,
                key: &c.id,
                organisation: Some(&c.organisation),
                peer_organisation: peer,
                before: Some(client_json(&before)),
                after: Some(client_json(&c)),
            });
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
        ch.record(Event {
            action: "delete",
            kind: ObjectKind::Client,
            key: id,
            organisation: Some(&before.organisation),
            peer_organisation: None,
            before: Some(client_json(&before)),
            after: None,
        });
        ch.done().await
    }
}

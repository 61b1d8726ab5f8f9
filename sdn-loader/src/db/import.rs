//! `import`: make the database hold exactly a given policy, in one transaction, writing only
//! what differs (with one audit row per created, updated or deleted object).

use std::collections::HashMap;
use std::hash::Hash;

use serde_json::json;

use crate::policy::{Agreement, Policy, PolicyDraft};

use super::audit::Row;
use super::error::{DbError, ObjectKind};
use super::store::{self, Val};
use super::text::{
    agreement_json, client_json, infra_json, organisation_json, port_alias_json, service_json,
};
use super::{Change, Db, Origin, lifecycle::Transition};

/// What an import changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// The revision after the import (unchanged when nothing changed).
    pub revision: u64,
    /// Objects created.
    pub created: usize,
    /// Objects updated.
    pub updated: usize,
    /// Objects deleted.
    pub deleted: usize,
}

impl ImportReport {
    /// Whether the import changed anything.
    pub fn changed(&self) -> bool {
        self.created + self.updated + self.deleted > 0
    }
}

/// The difference between two sections, by key; `added` and `changed` in the new order.
struct Diff<'a, T> {
    removed: Vec<&'a T>,
    changed: Vec<(&'a T, &'a T)>,
    added: Vec<&'a T>,
}

impl<T> Diff<'_, T> {
    fn len(&self) -> usize {
        self.removed.len() + self.changed.len() + self.added.len()
    }
}

fn diff<'a, T: PartialEq, K: Eq + Hash>(
    old: &'a [T],
    new: &'a [T],
    key: impl Fn(&'a T) -> K,
) -> Diff<'a, T> {
    let mut old_by_key: HashMap<K, &T> = old.iter().map(|t| (key(t), t)).collect();
    let mut d = Diff {
        removed: Vec::new(),
        changed: Vec::new(),
        added: Vec::new(),
    };
    for t in new {
        match old_by_key.remove(&key(t)) {
            Some(o) if o == t => {}
            Some(o) => d.changed.push((o, t)),
            None => d.added.push(t),
        }
    }
    d.removed = old
        .iter()
        .filter(|t| old_by_key.contains_key(&key(t)))
        .collect();
    d
}

/// Organisation of each client and service, for the audit rows of agreements.
struct Owners<'a> {
    clients: HashMap<&'a str, &'a str>,
    services: HashMap<&'a str, &'a str>,
}

impl<'a> Owners<'a> {
    fn of(p: &'a PolicyDraft) -> Self {
        Self {
            clients: p
                .clients
                .iter()
                .map(|c| (c.id.as_str(), c.organisation.as_str()))
                .collect(),
            services: p
                .services
                .iter()
                .map(|s| (s.id.as_str(), s.organisation.as_str()))
                .collect(),
        }
    }

    fn agreement(&self, a: &Agreement) -> (Option<String>, Option<String>) {
        (
            self.clients.get(a.client.as_str()).map(|s| (*s).to_owned()),
            self.services
                .get(a.service.as_str())
                .map(|s| (*s).to_owned()),
        )
    }
}

fn row(
    action: &'static str,
    kind: ObjectKind,
    key: String,
    organisation: Option<String>,
    peer_organisation: Option<String>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> Row {
    Row {
        action,
        kind,
        key,
        organisation,
        peer_organisation,
        before,
        after,
    }
}

/// Audit rows for one section's diff.
fn audit_rows<T>(
    d: &Diff<'_, T>,
    kind: ObjectKind,
    key: impl Fn(&T) -> String,
    orgs: impl Fn(&T, bool) -> (Option<String>, Option<String>),
    to_json: impl Fn(&T) -> serde_json::Value,
    out: &mut Vec<Row>,
) {
    for t in &d.removed {
        let (o, p) = orgs(t, false);
        out.push(row("delete", kind, key(t), o, p, Some(to_json(t)), None));
    }
    for (old, new) in &d.changed {
        let (o, p) = orgs(new, true);
        out.push(row(
            "update",
            kind,
            key(new),
            o,
            p,
            Some(to_json(old)),
            Some(to_json(new)),
        ));
    }
    for t in &d.added {
        let (o, p) = orgs(t, true);
        out.push(row("create", kind, key(t), o, p, None, Some(to_json(t))));
    }
}

fn texts<'a>(keys: impl Iterator<Item = &'a String>) -> Vec<Val> {
    keys.map(|k| Val::Text(k.clone())).collect()
}

impl Db {
    /// Makes the database hold exactly `policy` (which is validated first), in one
    /// transaction: one revision, one audit row per created, updated or deleted object and a
    /// summary row (`action = import`, `kind = policy`). An import that changes nothing
    /// leaves the revision alone.
    ///
    /// # Errors
    /// [`DbError::Policy`] when the policy is invalid; [`DbError::Sql`].
    pub async fn import(&self, policy: &Policy, origin: &Origin) -> Result<ImportReport, DbError> {
        self.import_with_progress(policy, origin, &mut |_, _| {})
            .await
    }

    /// [`Db::import`], calling `progress(done, total)` as rows are written.
    ///
    /// # Errors
    /// As [`Db::import`].
    pub async fn import_with_progress(
        &self,
        policy: &Policy,
        origin: &Origin,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<ImportReport, DbError> {
        // A Policy has passed validation: it is written as it is.
        let new = policy;
        let mut ch = Change::begin(self, origin).await?;
        let old = store::policy(ch.conn()).await?;

        let orgs = diff(&old.organisations, &new.organisations, |o| o.id.as_str());
        let aliases = diff(&old.port_aliases, &new.port_aliases, |a| a.name.as_str());
        let services = diff(&old.services, &new.services, |s| s.id.as_str());
        let clients = diff(&old.clients, &new.clients, |c| c.id.as_str());
        let agreements = diff(&old.agreements, &new.agreements, |a| a.id);
        let infra_changed = old.infrastructure != new.infrastructure;

        let mut report = ImportReport {
            revision: 0,
            created: orgs.added.len()
                + aliases.added.len()
                + services.added.len()
                + clients.added.len()
                + agreements.added.len(),
            updated: orgs.changed.len()
                + aliases.changed.len()
                + services.changed.len()
                + clients.changed.len()
                + agreements.changed.len()
                + usize::from(infra_changed),
            deleted: orgs.removed.len()
                + aliases.removed.len()
                + services.removed.len()
                + clients.removed.len()
                + agreements.removed.len(),
        };
        let audit_total = report.created + report.updated + report.deleted + 1;
        let total = (orgs.len()
            + aliases.len()
            + services.len()
            + clients.len()
            + agreements.len()
            + agreements.changed.len()
            + audit_total) as u64;
        let mut done = 0u64;
        let mut tick = |n: u64| {
            done += n;
            progress(done, total);
        };

        // Agreements first out (removed, and changed ones, which come back at the end), so
        // that no reference blocks the changes below; organisations last out.
        let gone: Vec<Val> = agreements
            .removed
            .iter()
            .chain(agreements.changed.iter().map(|(o, _)| o))
            .map(|a| Val::Int(i64::from(a.id)))
            .collect();
        store::delete_in(ch.conn(), "agreements", "id", &gone, &mut tick).await?;

        // Organisations in (and renamed).
        let rows: Vec<Vec<Val>> = orgs
            .added
            .iter()
            .map(|o| store::organisation_row(o))
            .collect();
        store::insert_rows(
            ch.conn(),
            "organisations",
            store::ORGANISATION_COLUMNS,
            &rows,
            &mut tick,
        )
        .await?;
        for (_, o) in &orgs.changed {
            sqlx::query("UPDATE organisations SET name = $2 WHERE id = $1")
                .bind(o.id.as_str())
                .bind(o.name.as_str())
                .execute(ch.conn())
                .await?;
            tick(1);
        }

        // Port aliases: changed ones are replaced.
        let gone = texts(
            aliases
                .removed
                .iter()
                .chain(aliases.changed.iter().map(|(o, _)| o))
                .map(|a| &a.name),
        );
        store::delete_in(ch.conn(), "port_aliases", "name", &gone, &mut tick).await?;
        let rows: Vec<Vec<Val>> = aliases
            .changed
            .iter()
            .map(|(_, n)| n)
            .chain(aliases.added.iter())
            .map(|a| store::port_alias_row(a))
            .collect();
        store::insert_rows(
            ch.conn(),
            "port_aliases",
            store::PORT_ALIAS_COLUMNS,
            &rows,
            &mut |_| {},
        )
        .await?;

        // Services: endpoints of removed and changed services out, removed services out,
        // changed rows updated, endpoints of changed services and new services in.
        let touched = texts(
            services
                .removed
                .iter()
                .chain(services.changed.iter().map(|(o, _)| o))
                .map(|s| &s.id),
        );
        store::delete_in(ch.conn(), "endpoints", "service", &touched, &mut |_| {}).await?;
        let gone = texts(services.removed.iter().map(|s| &s.id));
        store::delete_in(ch.conn(), "services", "id", &gone, &mut tick).await?;
        for (_, s) in &services.changed {
            sqlx::query("UPDATE services SET organisation = $2, name = $3 WHERE id = $1")
                .bind(s.id.as_str())
                .bind(s.organisation.as_str())
                .bind(s.name.as_str())
                .execute(ch.conn())
                .await?;
            tick(1);
        }
        let endpoints: Vec<Vec<Val>> = services
            .changed
            .iter()
            .flat_map(|(_, s)| {
                s.endpoints
                    .iter()
                    .enumerate()
                    .map(|(i, e)| store::endpoint_row(&s.id, i, e))
            })
            .collect();
        store::insert_rows(
            ch.conn(),
            "endpoints",
            store::ENDPOINT_COLUMNS,
            &endpoints,
            &mut |_| {},
        )
        .await?;
        store::insert_services(ch.conn(), &services.added, &mut tick).await?;

        // Clients, the same way.
        let touched = texts(
            clients
                .removed
                .iter()
                .chain(clients.changed.iter().map(|(o, _)| o))
                .map(|c| &c.id),
        );
        store::delete_in(
            ch.conn(),
            "client_prefixes",
            "client",
            &touched,
            &mut |_| {},
        )
        .await?;
        let gone = texts(clients.removed.iter().map(|c| &c.id));
        store::delete_in(ch.conn(), "clients", "id", &gone, &mut tick).await?;
        for (_, c) in &clients.changed {
            sqlx::query("UPDATE clients SET organisation = $2 WHERE id = $1")
                .bind(c.id.as_str())
                .bind(c.organisation.as_str())
                .execute(ch.conn())
                .await?;
            tick(1);
        }
        let prefixes: Vec<Vec<Val>> = clients
            .changed
            .iter()
            .flat_map(|(_, c)| {
                c.prefixes
                    .iter()
                    .enumerate()
                    .map(|(i, p)| store::prefix_row(&c.id, i, *p))
            })
            .collect();
        store::insert_rows(
            ch.conn(),
            "client_prefixes",
            store::PREFIX_COLUMNS,
            &prefixes,
            &mut |_| {},
        )
        .await?;
        store::insert_clients(ch.conn(), &clients.added, &mut tick).await?;

        // Agreements in.
        let rows: Vec<Vec<Val>> = agreements
            .changed
            .iter()
            .map(|(_, n)| n)
            .chain(agreements.added.iter())
            .map(|a| store::agreement_row(a))
            .collect();
        store::insert_rows(
            ch.conn(),
            "agreements",
            store::AGREEMENT_COLUMNS,
            &rows,
            &mut tick,
        )
        .await?;

        // Organisations out.
        let gone = texts(orgs.removed.iter().map(|o| &o.id));
        store::delete_in(ch.conn(), "organisations", "id", &gone, &mut tick).await?;

        // Infrastructure: replaced whole when it differs.
        if infra_changed {
            sqlx::query("DELETE FROM infrastructure")
                .execute(ch.conn())
                .await?;
            let rows: Vec<Vec<Val>> = new
                .infrastructure
                .iter()
                .enumerate()
                .map(|(i, e)| store::infra_row(i, e))
                .collect();
            store::insert_rows(
                ch.conn(),
                "infrastructure",
                store::INFRA_COLUMNS,
                &rows,
                &mut |_| {},
            )
            .await?;
        }

        // The audit trail.
        let old_owners = Owners::of(&old);
        let new_owners = Owners::of(new);
        let rows = &mut ch.audit;
        audit_rows(
            &orgs,
            ObjectKind::Organisation,
            |o| o.id.clone(),
            |o, _| (Some(o.id.clone()), None),
            organisation_json,
            rows,
        );
        audit_rows(
            &aliases,
            ObjectKind::PortAlias,
            |a| a.name.clone(),
            |_, _| (None, None),
            port_alias_json,
            rows,
        );
        audit_rows(
            &services,
            ObjectKind::Service,
            |s| s.id.clone(),
            |s, _| (Some(s.organisation.clone()), None),
            service_json,
            rows,
        );
        audit_rows(
            &clients,
            ObjectKind::Client,
            |c| c.id.clone(),
            |c, _| (Some(c.organisation.clone()), None),
            client_json,
            rows,
        );
        audit_rows(
            &agreements,
            ObjectKind::Agreement,
            |a| a.id.to_string(),
            |a, is_new| {
                if is_new {
                    new_owners.agreement(a)
                } else {
                    old_owners.agreement(a)
                }
            },
            agreement_json,
            rows,
        );
        // Each state change is also a transition of its own, named as the lifecycle names it
        // (`approve`, `revoke`, ...) or `set-state` for a jump only an import may make (say
        // revoked -> approved), so the audit log reads like the agreement's history.
        for (before, after) in &agreements.changed {
            if before.state == after.state {
                continue;
            }
            let action = Transition::between(before.state, after.state)
                .map_or("set-state", Transition::name);
            let (org, peer) = new_owners.agreement(after);
            rows.push(row(
                action,
                ObjectKind::Agreement,
                after.id.to_string(),
                org,
                peer,
                Some(json!({ "state": before.state.name() })),
                Some(json!({ "state": after.state.name() })),
            ));
        }
        if infra_changed {
            let list = |p: &PolicyDraft| {
                serde_json::Value::Array(p.infrastructure.iter().map(infra_json).collect())
            };
            rows.push(row(
                "update",
                ObjectKind::Infrastructure,
                String::new(),
                None,
                None,
                Some(list(&old)),
                Some(list(new)),
            ));
        }
        if !rows.is_empty() {
            rows.push(row(
                "import",
                ObjectKind::Policy,
                String::new(),
                None,
                None,
                None,
                Some(json!({
                    "created": report.created,
                    "updated": report.updated,
                    "deleted": report.deleted,
                    "organisations": new.organisations.len(),
                    "port_aliases": new.port_aliases.len(),
                    "services": new.services.len(),
                    "clients": new.clients.len(),
                    "agreements": new.agreements.len(),
                    "infrastructure": new.infrastructure.len(),
                })),
            ));
        }
        report.revision = ch.commit(&mut tick).await?.revision;
        Ok(report)
    }
}

//! Validation of single objects with the policy module's own rules: the object is put into a
//! small policy draft (with the organisations or port aliases it may refer to) and validated,
//! so every check and every message is the policy file's. Text typed on the command line
//! (endpoints, port aliases) is read by the policy file's parser itself.

use serde_json::{Value, json};

use crate::policy::{
    self, Client, Endpoint, Location, Organisation, PolicyDraft, PolicyError, PortAlias, Section,
    Service, ValidationError,
};

use super::error::DbError;
use super::text::port_alias_json;

/// Runs `mini` through the validator; on failure keeps the errors of `section` (the object
/// under test) and names the object `what`.
fn mini(mini: &PolicyDraft, section: Section, what: &str) -> Result<PolicyDraft, DbError> {
    match mini.validate() {
        Ok(p) => Ok(p.into_draft()),
        Err(PolicyError::Invalid { errors, .. }) => Err(invalid(what, errors, section)),
        Err(other) => Err(other.into()),
    }
}

fn invalid(what: &str, errors: Vec<ValidationError>, section: Section) -> DbError {
    let mine: Vec<ValidationError> = errors
        .iter()
        .filter(|e| e.location.section == section)
        .cloned()
        .collect();
    DbError::Invalid {
        what: what.to_owned(),
        errors: if mine.is_empty() { errors } else { mine },
    }
}

/// `NotFound`-free lookup: the single entry of a section the validator accepted.
fn only<T>(items: Vec<T>, what: &str) -> Result<T, DbError> {
    items.into_iter().next().ok_or_else(|| DbError::Invalid {
        what: what.to_owned(),
        errors: Vec::new(),
    })
}

pub(crate) fn organisation(o: &Organisation) -> Result<Organisation, DbError> {
    let what = format!("organisation {:?}", o.id);
    let p = mini(
        &PolicyDraft {
            organisations: vec![o.clone()],
            ..PolicyDraft::default()
        },
        Section::Organisation,
        &what,
    )?;
    only(p.organisations, &what)
}

pub(crate) fn port_alias(a: &PortAlias) -> Result<PortAlias, DbError> {
    let what = format!("port alias {:?}", a.name);
    let p = mini(
        &PolicyDraft {
            port_aliases: vec![a.clone()],
            ..PolicyDraft::default()
        },
        Section::PortAlias,
        &what,
    )?;
    only(p.port_aliases, &what)
}

/// A service, against the organisations that exist.
pub(crate) fn service(s: &Service, organisations: Vec<Organisation>) -> Result<Service, DbError> {
    let what = format!("service {:?}", s.id);
    let p = mini(
        &PolicyDraft {
            organisations,
            services: vec![s.clone()],
            ..PolicyDraft::default()
        },
        Section::Service,
        &what,
    )?;
    only(p.services, &what)
}

/// An endpoint to add to service `before`, checked as part of the whole service (so that it
/// may not repeat one the service has); returns it normalised.
pub(crate) fn added_endpoint(
    before: &Service,
    endpoint: &Endpoint,
    organisations: Vec<Organisation>,
) -> Result<Endpoint, DbError> {
    let mut s = before.clone();
    s.endpoints.push(endpoint.clone());
    let mut checked = service(&s, organisations)?;
    // The validator keeps the order, so the new endpoint is the last.
    checked.endpoints.pop().ok_or_else(|| DbError::Invalid {
        what: format!("service {:?}", s.id),
        errors: Vec::new(),
    })
}

/// A client, against the organisations that exist.
pub(crate) fn client(c: &Client, organisations: Vec<Organisation>) -> Result<Client, DbError> {
    let what = format!("client {:?}", c.id);
    let p = mini(
        &PolicyDraft {
            organisations,
            clients: vec![c.clone()],
            ..PolicyDraft::default()
        },
        Section::Client,
        &what,
    )?;
    only(p.clients, &what)
}

/// An endpoint as typed on the command line (`ports` items are `"443"`, `"8000-8100"` or
/// alias names), against the port aliases that exist.
pub(crate) fn endpoint_text(
    aliases: &[PortAlias],
    address: &str,
    protocol: &str,
    ports: Option<&[String]>,
) -> Result<Endpoint, DbError> {
    let mut endpoint = json!({ "address": address, "protocol": protocol });
    if let (Some(ports), Value::Object(m)) = (ports, &mut endpoint) {
        m.insert("ports".into(), json!(ports));
    }
    let doc = json!({
        "organisation": [{ "id": "_", "name": "_" }],
        "port_alias": aliases.iter().map(port_alias_json).collect::<Vec<_>>(),
        "service": [{ "id": "_", "organisation": "_", "name": "_", "endpoints": [endpoint] }],
    });
    let what = &format!("endpoint {address} {protocol}");
    match policy::parse_json(&doc.to_string()) {
        Ok(p) => only(
            p.into_draft()
                .services
                .into_iter()
                .flat_map(|s| s.endpoints)
                .collect::<Vec<_>>(),
            what,
        ),
        Err(PolicyError::Invalid { errors, .. }) => {
            let errors = errors
                .into_iter()
                .map(|e| ValidationError {
                    location: Location {
                        endpoint: None,
                        ..e.location
                    },
                    ..e
                })
                .collect();
            Err(invalid(what, errors, Section::Service))
        }
        Err(other) => Err(other.into()),
    }
}

/// A port alias as typed on the command line, checked with the policy file's rules.
pub(crate) fn port_alias_text(
    name: &str,
    protocol: &str,
    ports: &[String],
) -> Result<PortAlias, DbError> {
    let doc = json!({ "port_alias": [{ "name": name, "protocol": protocol, "ports": ports }] });
    match policy::parse_json(&doc.to_string()) {
        Ok(p) => only(p.into_draft().port_aliases, &format!("port alias {name:?}")),
        Err(PolicyError::Invalid { errors, .. }) => Err(invalid(
            &format!("port alias {name:?}"),
            errors,
            Section::PortAlias,
        )),
        Err(other) => Err(other.into()),
    }
}

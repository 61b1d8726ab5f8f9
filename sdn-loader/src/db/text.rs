//! How values are stored as text, and the JSON form of objects (the policy file's JSON
//! structure, used by `db export --format json` and in the audit log's before/after).

use chrono::NaiveDate;
use ipnet::IpNet;
use serde_json::{Map, Value, json};

use crate::policy::{
    self, AddressError, Agreement, AgreementState, Client, Endpoint, InfraEntry, Organisation,
    Policy, PortAlias, PortRange, Protocol, Service,
};

use super::error::DbError;

/// The stored form of a port set: `"104,11112"`, `""` for every port.
pub(crate) fn ports_column(ranges: &[PortRange]) -> String {
    ranges
        .iter()
        .map(PortRange::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads [`ports_column`] back.
pub(crate) fn parse_ports_column(
    text: &str,
    table: &'static str,
    key: &str,
) -> Result<Vec<PortRange>, DbError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|item| {
            let (lo, hi) = item.split_once('-').unwrap_or((item, item));
            match (lo.parse::<u16>(), hi.parse::<u16>()) {
                (Ok(lo), Ok(hi)) if lo <= hi => Ok(PortRange { lo, hi }),
                _ => Err(corrupt(table, key, text)),
            }
        })
        .collect()
}

pub(crate) fn corrupt(table: &'static str, key: &str, value: &str) -> DbError {
    DbError::Corrupt {
        table,
        key: key.to_owned(),
        value: value.to_owned(),
    }
}

/// The stored form of a prefix: always `address/length`.
pub(crate) fn prefix_column(net: IpNet) -> String {
    net.to_string()
}

/// Reads [`prefix_column`] back, with the policy file's parser (a value that file would
/// refuse, such as a leading zero in an octet, is corrupt here too).
pub(crate) fn parse_prefix_column(
    text: &str,
    table: &'static str,
    key: &str,
) -> Result<IpNet, DbError> {
    policy::parse_net(text).map_err(|_| corrupt(table, key, text))
}

/// A prefix as the user wrote it: `address/length` (host bits are kept, so that validation
/// can report them) or a bare address (a /32 or /128); the policy file's own parser
/// ([`policy::parse_net`]), so the command line accepts exactly what a policy file does.
///
/// # Errors
/// [`AddressError`] naming the text and what is wrong with it (e.g. a leading zero).
pub fn parse_net(text: &str) -> Result<IpNet, AddressError> {
    policy::parse_net(text)
}

pub(crate) fn parse_protocol(text: &str) -> Option<Protocol> {
    Some(match text {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "sctp" => Protocol::Sctp,
        "icmp" => Protocol::Icmp,
        "icmpv6" => Protocol::Icmpv6,
        "any" => Protocol::Any,
        _ => return None,
    })
}

/// Parses an agreement state name.
pub fn parse_state(text: &str) -> Option<AgreementState> {
    Some(match text {
        "requested" => AgreementState::Requested,
        "approved" => AgreementState::Approved,
        "rejected" => AgreementState::Rejected,
        "revoked" => AgreementState::Revoked,
        _ => return None,
    })
}

pub(crate) fn date_column(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

pub(crate) fn parse_date_column(
    text: &str,
    table: &'static str,
    key: &str,
) -> Result<NaiveDate, DbError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| corrupt(table, key, text))
}

/// A host prefix as a bare address, anything else as `address/length` (as in policy files).
fn address(net: IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

/// Nothing for every port, a string for one range, a list for several.
fn ports_value(ranges: &[PortRange]) -> Option<Value> {
    match ranges {
        [] => None,
        [one] => Some(Value::String(one.to_string())),
        many => Some(Value::Array(
            many.iter().map(|r| Value::String(r.to_string())).collect(),
        )),
    }
}

/// `{"id", "name"}`
pub fn organisation_json(o: &Organisation) -> Value {
    json!({ "id": o.id, "name": o.name })
}

/// `{"name", "protocol", "ports": [...]}`
pub fn port_alias_json(a: &PortAlias) -> Value {
    let ports: Vec<String> = a.ports.iter().map(PortRange::to_string).collect();
    json!({ "name": a.name, "protocol": a.protocol.name(), "ports": ports })
}

/// `{"address", "protocol", "ports"?}`
pub fn endpoint_json(e: &Endpoint) -> Value {
    let mut m = Map::new();
    m.insert("address".into(), Value::String(address(e.address)));
    m.insert("protocol".into(), Value::String(e.protocol.name().into()));
    if let Some(ports) = ports_value(&e.ports) {
        m.insert("ports".into(), ports);
    }
    Value::Object(m)
}

/// `{"id", "organisation", "name", "endpoints": [...]}`
pub fn service_json(s: &Service) -> Value {
    let endpoints: Vec<Value> = s.endpoints.iter().map(endpoint_json).collect();
    json!({ "id": s.id, "organisation": s.organisation, "name": s.name, "endpoints": endpoints })
}

/// `{"id", "organisation", "prefixes": [...]}`
pub fn client_json(c: &Client) -> Value {
    let prefixes: Vec<String> = c.prefixes.iter().map(|p| address(*p)).collect();
    json!({ "id": c.id, "organisation": c.organisation, "prefixes": prefixes })
}

/// `{"id", "client", "service", "state", "expires"?, "vlan"?}`
pub fn agreement_json(a: &Agreement) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(a.id));
    m.insert("client".into(), json!(a.client));
    m.insert("service".into(), json!(a.service));
    m.insert("state".into(), json!(a.state.name()));
    if let Some(expires) = a.expires {
        m.insert("expires".into(), json!(date_column(expires)));
    }
    if let Some(vlan) = a.vlan {
        m.insert("vlan".into(), json!(vlan));
    }
    Value::Object(m)
}

/// `{"prefix", "protocol", "ports"?}`
pub fn infra_json(e: &InfraEntry) -> Value {
    let mut m = Map::new();
    m.insert("prefix".into(), Value::String(address(e.prefix)));
    m.insert("protocol".into(), Value::String(e.protocol.name().into()));
    if let Some(ports) = ports_value(&e.ports) {
        m.insert("ports".into(), ports);
    }
    Value::Object(m)
}

/// A whole policy as a JSON policy document: `parse_json` reads it back to the same policy.
pub fn policy_json(p: &Policy) -> Value {
    json!({
        "organisation": p.organisations.iter().map(organisation_json).collect::<Vec<_>>(),
        "port_alias": p.port_aliases.iter().map(port_alias_json).collect::<Vec<_>>(),
        "service": p.services.iter().map(service_json).collect::<Vec<_>>(),
        "client": p.clients.iter().map(client_json).collect::<Vec<_>>(),
        "agreement": p.agreements.iter().map(agreement_json).collect::<Vec<_>>(),
        "infrastructure": p.infrastructure.iter().map(infra_json).collect::<Vec<_>>(),
    })
}

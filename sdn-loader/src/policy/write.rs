//! Writing a policy back as a policy file (TOML), in the layout of docs/semantics.md.

use std::fmt::Write as _;

use ipnet::IpNet;
use serde::Serialize;

use super::error::PolicyError;
use super::model::{Endpoint, Policy, PolicyDraft, PortRange};
use super::raw::{
    DateText, Document, PortList, RawAgreement, RawClient, RawEndpoint, RawInfra, RawOrganisation,
    RawPortAlias, RawService,
};

/// Writes `policy` as TOML. Every value goes through the toml crate's value serializer, so
/// strings are quoted and escaped the way the parser expects.
pub(crate) fn to_toml(policy: &Policy) -> Result<String, PolicyError> {
    let mut w = Writer::default();

    for org in &policy.organisations {
        w.table("organisation");
        w.field("id", &org.id)?;
        w.field("name", &org.name)?;
    }

    for alias in &policy.port_aliases {
        w.table("port_alias");
        w.field("name", &alias.name)?;
        w.field("protocol", alias.protocol.name())?;
        w.field("ports", &port_strings(&alias.ports))?;
    }

    for service in &policy.services {
        w.table("service");
        w.field("id", &service.id)?;
        w.field("organisation", &service.organisation)?;
        w.field("name", &service.name)?;
        w.out.push_str("endpoints = [\n");
        for endpoint in &service.endpoints {
            let table = endpoint_table(endpoint)?;
            let _ = writeln!(w.out, "  {table},");
        }
        w.out.push_str("]\n");
    }

    for client in &policy.clients {
        w.table("client");
        w.field("id", &client.id)?;
        w.field("organisation", &client.organisation)?;
        let prefixes: Vec<String> = client.prefixes.iter().map(|p| address(*p)).collect();
        w.field("prefixes", &prefixes)?;
    }

    for agreement in &policy.agreements {
        w.table("agreement");
        w.field("id", &agreement.id)?;
        w.field("client", &agreement.client)?;
        w.field("service", &agreement.service)?;
        w.field("state", agreement.state.name())?;
        if let Some(expires) = agreement.expires {
            w.field("expires", &expires.format("%Y-%m-%d").to_string())?;
        }
        if let Some(vlan) = agreement.vlan {
            w.field("vlan", &vlan)?;
        }
    }

    for entry in &policy.infrastructure {
        w.table("infrastructure");
        w.field("prefix", &address(entry.prefix))?;
        w.field("protocol", entry.protocol.name())?;
        if let Some(ports) = ports_value(&entry.ports) {
            w.field("ports", &ports)?;
        }
    }

    Ok(w.out)
}

#[derive(Default)]
struct Writer {
    out: String,
}

impl Writer {
    /// Starts `[[name]]`, after a blank line unless it is the first table.
    fn table(&mut self, name: &str) {
        if !self.out.is_empty() {
            self.out.push('\n');
        }
        let _ = writeln!(self.out, "[[{name}]]");
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), PolicyError> {
        let value = toml_value(value)?;
        let _ = writeln!(self.out, "{key} = {value}");
        Ok(())
    }
}

/// One value in TOML syntax (inline form for tables and arrays).
fn toml_value<T: Serialize + ?Sized>(value: &T) -> Result<String, PolicyError> {
    let mut out = String::new();
    value
        .serialize(toml::ser::ValueSerializer::new(&mut out))
        .map_err(|error| PolicyError::Serialize { error })?;
    Ok(out)
}

/// `{ address = "...", protocol = "...", ports = ... }`, keys in that order.
fn endpoint_table(endpoint: &Endpoint) -> Result<String, PolicyError> {
    let mut table = format!(
        "{{ address = {}, protocol = {}",
        toml_value(&address(endpoint.address))?,
        toml_value(endpoint.protocol.name())?
    );
    if let Some(ports) = ports_value(&endpoint.ports) {
        let _ = write!(table, ", ports = {}", toml_value(&ports)?);
    }
    table.push_str(" }");
    Ok(table)
}

/// A host prefix as a bare address, anything else as `address/length`.
fn address(net: IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

fn port_strings(ranges: &[PortRange]) -> Vec<String> {
    ranges.iter().map(PortRange::to_string).collect()
}

/// A `ports` value: nothing for every port, a string for one range, a list for several.
#[derive(Serialize)]
#[serde(untagged)]
enum PortsValue {
    One(String),
    Many(Vec<String>),
}

fn ports_value(ranges: &[PortRange]) -> Option<PortsValue> {
    match ranges {
        [] => None,
        [one] => Some(PortsValue::One(one.to_string())),
        many => Some(PortsValue::Many(port_strings(many))),
    }
}

/// A draft as the validator reads a policy file: every value back in its written form, so that
/// a draft is checked by exactly the rules (and messages) of the file.
pub(crate) fn document(draft: &PolicyDraft) -> Document {
    let ports = |ranges: &[PortRange]| match ranges {
        [] => None,
        some => Some(PortList(port_strings(some))),
    };
    Document {
        organisation: (draft.organisations.iter())
            .map(|o| RawOrganisation {
                id: o.id.clone(),
                name: o.name.clone(),
            })
            .collect(),
        port_alias: (draft.port_aliases.iter())
            .map(|a| RawPortAlias {
                name: a.name.clone(),
                protocol: a.protocol.name().to_owned(),
                ports: PortList(port_strings(&a.ports)),
            })
            .collect(),
        service: (draft.services.iter())
            .map(|s| RawService {
                id: s.id.clone(),
                organisation: s.organisation.clone(),
                name: s.name.clone(),
                endpoints: (s.endpoints.iter())
                    .map(|e| RawEndpoint {
                        address: address(e.address),
                        protocol: e.protocol.name().to_owned(),
                        ports: ports(&e.ports),
                    })
                    .collect(),
            })
            .collect(),
        client: (draft.clients.iter())
            .map(|c| RawClient {
                id: c.id.clone(),
                organisation: c.organisation.clone(),
                prefixes: c.prefixes.iter().map(|p| address(*p)).collect(),
            })
            .collect(),
        agreement: (draft.agreements.iter())
            .map(|a| RawAgreement {
                id: i64::from(a.id),
                client: a.client.clone(),
                service: a.service.clone(),
                state: a.state.name().to_owned(),
                expires: a
                    .expires
                    .map(|d| DateText(d.format("%Y-%m-%d").to_string())),
                vlan: a.vlan.map(i64::from),
            })
            .collect(),
        infrastructure: (draft.infrastructure.iter())
            .map(|i| RawInfra {
                prefix: address(i.prefix),
                protocol: Some(i.protocol.name().to_owned()),
                ports: ports(&i.ports),
            })
            .collect(),
    }
}

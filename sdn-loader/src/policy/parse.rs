//! Validation: raw document -> `Policy`, collecting every problem with its place in the file.

use std::collections::HashMap;

use chrono::NaiveDate;
use ipnet::IpNet;

use super::address::parse_net;
use super::chars::{self, Refusal, TextKind};
use super::error::{Location, Section, ValidationError, ValidationErrorKind as Kind};
use super::model::{
    Agreement, AgreementState, Client, Endpoint, InfraEntry, Organisation, Policy, PolicyDraft,
    PortAlias, PortRange, Protocol, Service,
};
use super::raw::{Document, PortList, RawAgreement, RawEndpoint};

/// Checks a raw document and builds the policy, or returns every problem found.
pub(crate) fn validate(doc: Document) -> Result<Policy, Vec<ValidationError>> {
    let mut v = Validator::default();
    let mut policy = PolicyDraft::default();

    // Organisations.
    let mut organisations = Ids::default();
    for (index, raw) in doc.organisation.into_iter().enumerate() {
        let at = Location::entry(Section::Organisation, index, &raw.id);
        let before = v.errors.len();
        v.check_id(&at, "id", &raw.id, &mut organisations);
        v.check_text(&at, "name", &raw.name, TextKind::Name);
        if v.errors.len() == before {
            policy.organisations.push(Organisation {
                id: raw.id,
                name: raw.name,
            });
        }
    }

    // Port aliases.
    let mut alias_names = Ids::default();
    let mut aliases: HashMap<String, AliasInfo> = HashMap::new();
    for (index, raw) in doc.port_alias.into_iter().enumerate() {
        let at = Location::entry(Section::PortAlias, index, &raw.name);
        let before = v.errors.len();
        let fresh = v.check_id(&at, "name", &raw.name, &mut alias_names);
        // A name that would read as a port (blank and padded names, and names with refused
        // characters, are reported above).
        if !is_alias_name(&raw.name)
            && !raw.name.trim().is_empty()
            && raw.name.trim() == raw.name
            && chars::refused(&raw.name, TextKind::Id).is_none()
        {
            v.push(
                &at,
                "name",
                Kind::AliasName {
                    name: raw.name.clone(),
                },
            );
        }
        let protocol = v.protocol(&at, "protocol", &raw.protocol);
        match protocol {
            Some(p) if !p.has_ports() => {
                v.push(&at, "protocol", Kind::AliasProtocol { protocol: p });
            }
            _ => {}
        }
        let ports = v.alias_ports(&at, &raw.ports);
        let valid = v.errors.len() == before;
        if fresh {
            aliases.insert(
                raw.name.clone(),
                AliasInfo {
                    protocol: protocol.filter(|p| p.has_ports()),
                    ports: if valid { ports.clone() } else { None },
                },
            );
        }
        if let (true, Some(protocol), Some(ports)) = (valid, protocol, ports) {
            policy.port_aliases.push(PortAlias {
                name: raw.name,
                protocol,
                ports,
            });
        }
    }

    // Services.
    let mut services = Ids::default();
    for (index, raw) in doc.service.into_iter().enumerate() {
        let at = Location::entry(Section::Service, index, &raw.id);
        let before = v.errors.len();
        v.check_id(&at, "id", &raw.id, &mut services);
        v.reference(
            &at,
            "organisation",
            Section::Organisation,
            &raw.organisation,
            &organisations,
        );
        v.check_text(&at, "name", &raw.name, TextKind::Name);
        if raw.endpoints.is_empty() {
            v.push(&at, "endpoints", Kind::NoEndpoints);
        }
        let mut endpoints = Vec::with_capacity(raw.endpoints.len());
        // Endpoint -> index of its first occurrence. A repeat is refused, not merged: merging
        // would silently change what the operator wrote, and a repeat is often a typo for
        // another endpoint.
        let mut seen: HashMap<Endpoint, usize> = HashMap::new();
        for (i, raw_endpoint) in raw.endpoints.iter().enumerate() {
            let here = at.endpoint(i);
            let Some(e) = v.endpoint(&here, raw_endpoint, &aliases) else {
                continue;
            };
            if let Some(&first) = seen.get(&e) {
                let endpoint = describe_endpoint(&e);
                v.push(
                    &here,
                    "endpoints",
                    Kind::DuplicateEndpoint { endpoint, first },
                );
            } else {
                seen.insert(e.clone(), i);
                endpoints.push(e);
            }
        }
        if v.errors.len() == before {
            policy.services.push(Service {
                id: raw.id,
                organisation: raw.organisation,
                name: raw.name,
                endpoints,
            });
        }
    }

    // Clients.
    let mut clients = Ids::default();
    for (index, raw) in doc.client.into_iter().enumerate() {
        let at = Location::entry(Section::Client, index, &raw.id);
        let before = v.errors.len();
        v.check_id(&at, "id", &raw.id, &mut clients);
        v.reference(
            &at,
            "organisation",
            Section::Organisation,
            &raw.organisation,
            &organisations,
        );
        if raw.prefixes.is_empty() {
            v.push(&at, "prefixes", Kind::NoPrefixes);
        }
        let mut prefixes = Vec::with_capacity(raw.prefixes.len());
        let mut seen: HashMap<IpNet, usize> = HashMap::new();
        for (index, text) in raw.prefixes.iter().enumerate() {
            let Some(prefix) = v.prefix(&at, "prefixes", text) else {
                continue;
            };
            if let Some(&first) = seen.get(&prefix) {
                let kind = Kind::DuplicatePrefix {
                    prefix,
                    index,
                    first,
                };
                v.push(&at, "prefixes", kind);
            } else {
                seen.insert(prefix, index);
                prefixes.push(prefix);
            }
        }
        if v.errors.len() == before {
            policy.clients.push(Client {
                id: raw.id,
                organisation: raw.organisation,
                prefixes,
            });
        }
    }

    // Agreements.
    let mut agreement_ids: HashMap<u32, usize> = HashMap::new();
    for (index, raw) in doc.agreement.into_iter().enumerate() {
        if let Some(agreement) = v.agreement(index, raw, &mut agreement_ids, &clients, &services) {
            policy.agreements.push(agreement);
        }
    }

    // Infrastructure.
    for (index, raw) in doc.infrastructure.into_iter().enumerate() {
        let at = Location {
            section: Section::Infrastructure,
            index,
            key: None,
            endpoint: None,
        };
        let before = v.errors.len();
        let prefix = v.prefix(&at, "prefix", &raw.prefix);
        let protocol = match &raw.protocol {
            Some(text) => v.protocol(&at, "protocol", text),
            None => Some(Protocol::Any),
        };
        if let (Some(prefix), Some(protocol)) = (prefix, protocol) {
            v.family(&at, "prefix", protocol, prefix);
        }
        let ports = v.endpoint_ports(&at, protocol, raw.ports.as_ref(), &aliases);
        if let (true, Some(prefix), Some(protocol)) = (v.errors.len() == before, prefix, protocol) {
            policy.infrastructure.push(InfraEntry {
                prefix,
                protocol,
                ports,
            });
        }
    }

    if v.errors.is_empty() {
        Ok(Policy::validated(policy))
    } else {
        Err(v.errors)
    }
}

/// The ids of one section seen so far: id -> index of its first entry.
type Ids = HashMap<String, usize>;

/// What endpoints need to know about a port alias. `None` fields mean the alias itself is
/// invalid (already reported), so endpoints that use it report nothing more about it.
struct AliasInfo {
    protocol: Option<Protocol>,
    ports: Option<Vec<PortRange>>,
}

impl Location {
    /// An entry keyed by `key`, which is left out of messages when blank.
    fn entry(section: Section, index: usize, key: &str) -> Self {
        Self {
            section,
            index,
            key: (!key.trim().is_empty()).then(|| key.to_owned()),
            endpoint: None,
        }
    }

    /// Endpoint `i` of this service.
    fn endpoint(&self, i: usize) -> Self {
        Self {
            endpoint: Some(i),
            ..self.clone()
        }
    }
}

#[derive(Default)]
struct Validator {
    errors: Vec<ValidationError>,
}

impl Validator {
    fn push(&mut self, at: &Location, field: &'static str, kind: Kind) {
        self.errors.push(ValidationError {
            location: at.clone(),
            field,
            kind,
        });
    }

    /// Checks an id (or alias name) and records it; returns whether it was new and usable.
    fn check_id(&mut self, at: &Location, field: &'static str, id: &str, seen: &mut Ids) -> bool {
        if id.trim().is_empty() {
            self.push(at, field, Kind::EmptyId);
            return false;
        }
        // A control character is reported as such, not also as white space (`\t`, `\n`).
        if !self.check_text(at, field, id, TextKind::Id) && id.trim() != id {
            self.push(at, field, Kind::IdWhitespace { id: id.to_owned() });
        }
        if let Some(&first_index) = seen.get(id) {
            self.push(
                at,
                field,
                Kind::DuplicateId {
                    id: id.to_owned(),
                    section: at.section,
                    first_index,
                },
            );
            return false;
        }
        seen.insert(id.to_owned(), at.index);
        true
    }

    /// Reports the first character `text` may not hold; returns whether there was one.
    fn check_text(
        &mut self,
        at: &Location,
        field: &'static str,
        text: &str,
        kind: TextKind,
    ) -> bool {
        let Some((position, ch, why)) = chars::refused(text, kind) else {
            return false;
        };
        let kind = match why {
            Refusal::Control => Kind::ControlCharacter { ch, position },
            Refusal::Invisible => Kind::InvisibleCharacter { ch, position },
        };
        self.push(at, field, kind);
        true
    }

    /// Checks that `id` names an entry of `section`.
    fn reference(
        &mut self,
        at: &Location,
        field: &'static str,
        section: Section,
        id: &str,
        known: &Ids,
    ) {
        if !known.contains_key(id) {
            self.push(
                at,
                field,
                Kind::UnknownReference {
                    section,
                    id: id.to_owned(),
                    suggestion: suggest(id, known.keys()),
                },
            );
        }
    }

    fn protocol(&mut self, at: &Location, field: &'static str, text: &str) -> Option<Protocol> {
        let protocol = match text {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "sctp" => Protocol::Sctp,
            "icmp" => Protocol::Icmp,
            "icmpv6" => Protocol::Icmpv6,
            "any" => Protocol::Any,
            _ => {
                self.push(
                    at,
                    field,
                    Kind::UnknownProtocol {
                        text: text.to_owned(),
                    },
                );
                return None;
            }
        };
        Some(protocol)
    }

    /// Parses an address or prefix; a bare address is a /32 or /128. Host bits must be clear.
    fn prefix(&mut self, at: &Location, field: &'static str, text: &str) -> Option<IpNet> {
        let net = match parse_net(text) {
            Ok(net) => net,
            Err(error) => {
                self.push(at, field, Kind::BadAddress { error });
                return None;
            }
        };
        let network = net.trunc();
        if network != net {
            self.push(
                at,
                field,
                Kind::HostBitsSet {
                    given: net,
                    suggested: network,
                },
            );
            return None;
        }
        Some(net)
    }

    /// `icmp` needs IPv4, `icmpv6` needs IPv6.
    fn family(&mut self, at: &Location, field: &'static str, protocol: Protocol, net: IpNet) {
        let ok = match protocol {
            Protocol::Icmp => matches!(net, IpNet::V4(_)),
            Protocol::Icmpv6 => matches!(net, IpNet::V6(_)),
            _ => true,
        };
        if !ok {
            self.push(
                at,
                field,
                Kind::WrongFamily {
                    protocol,
                    address: net,
                },
            );
        }
    }

    fn endpoint(
        &mut self,
        at: &Location,
        raw: &RawEndpoint,
        aliases: &HashMap<String, AliasInfo>,
    ) -> Option<Endpoint> {
        let before = self.errors.len();
        let address = self.prefix(at, "address", &raw.address);
        let protocol = self.protocol(at, "protocol", &raw.protocol);
        if let (Some(address), Some(protocol)) = (address, protocol) {
            self.family(at, "address", protocol, address);
        }
        let ports = self.endpoint_ports(at, protocol, raw.ports.as_ref(), aliases);
        if self.errors.len() != before {
            return None;
        }
        Some(Endpoint {
            address: address?,
            protocol: protocol?,
            ports,
        })
    }

    /// The `ports` of an endpoint or infrastructure entry: numbers, ranges and aliases,
    /// resolved and normalised. Every port (a missing list, or 0-65535) is the empty list.
    fn endpoint_ports(
        &mut self,
        at: &Location,
        protocol: Option<Protocol>,
        list: Option<&PortList>,
        aliases: &HashMap<String, AliasInfo>,
    ) -> Vec<PortRange> {
        let Some(PortList(items)) = list else {
            return Vec::new();
        };
        match protocol {
            Some(p) if !p.has_ports() => {
                self.push(at, "ports", Kind::PortsNotAllowed { protocol: p });
                return Vec::new();
            }
            _ => {}
        }
        if items.is_empty() {
            self.push(at, "ports", Kind::EmptyPortList);
            return Vec::new();
        }
        let mut ranges = Vec::new();
        for item in items {
            if !is_alias_name(item) {
                if let Some(range) = self.port_range(at, "ports", item) {
                    ranges.push(range);
                }
                continue;
            }
            let Some(alias) = aliases.get(item.as_str()) else {
                self.push(
                    at,
                    "ports",
                    Kind::UnknownAlias {
                        name: item.clone(),
                        suggestion: suggest(item, aliases.keys()),
                    },
                );
                continue;
            };
            match (alias.protocol, protocol) {
                (Some(alias_protocol), Some(protocol)) if alias_protocol != protocol => {
                    self.push(
                        at,
                        "ports",
                        Kind::AliasProtocolMismatch {
                            alias: item.clone(),
                            alias_protocol,
                            protocol,
                        },
                    );
                    continue;
                }
                _ => {}
            }
            if let Some(ports) = &alias.ports {
                ranges.extend_from_slice(ports);
            }
        }
        let ranges = normalise(ranges);
        if ranges == [PortRange::ALL] {
            Vec::new()
        } else {
            ranges
        }
    }

    /// The `ports` of a port alias: numbers and ranges only, normalised.
    fn alias_ports(&mut self, at: &Location, PortList(items): &PortList) -> Option<Vec<PortRange>> {
        if items.is_empty() {
            self.push(at, "ports", Kind::EmptyPortList);
            return None;
        }
        let mut ranges = Vec::new();
        for item in items {
            if is_alias_name(item) {
                self.push(at, "ports", Kind::NestedAlias { text: item.clone() });
            } else if let Some(range) = self.port_range(at, "ports", item) {
                ranges.push(range);
            }
        }
        Some(normalise(ranges))
    }

    /// `"443"` or `"8000-8100"` (white space around the numbers is allowed).
    fn port_range(&mut self, at: &Location, field: &'static str, text: &str) -> Option<PortRange> {
        let (lo_text, hi_text) = text.split_once('-').unwrap_or((text, text));
        let lo = self.port(at, field, text, lo_text.trim())?;
        let hi = self.port(at, field, text, hi_text.trim())?;
        if lo > hi {
            self.push(at, field, Kind::InvertedRange { lo, hi });
            return None;
        }
        Some(PortRange { lo, hi })
    }

    fn port(&mut self, at: &Location, field: &'static str, item: &str, text: &str) -> Option<u16> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            self.push(
                at,
                field,
                Kind::BadPort {
                    text: item.to_owned(),
                },
            );
            return None;
        }
        // All digits: the only possible failure is a number too large.
        if let Ok(port) = text.parse::<u16>() {
            Some(port)
        } else {
            self.push(
                at,
                field,
                Kind::PortOutOfRange {
                    text: text.to_owned(),
                },
            );
            None
        }
    }

    fn agreement(
        &mut self,
        index: usize,
        raw: RawAgreement,
        seen: &mut HashMap<u32, usize>,
        clients: &Ids,
        services: &Ids,
    ) -> Option<Agreement> {
        let id = u32::try_from(raw.id).ok();
        let at = Location {
            section: Section::Agreement,
            index,
            key: id.map(|id| id.to_string()),
            endpoint: None,
        };
        let before = self.errors.len();
        match id {
            None => self.push(&at, "id", Kind::AgreementIdOutOfRange { value: raw.id }),
            Some(id) => {
                if let Some(&first_index) = seen.get(&id) {
                    self.push(
                        &at,
                        "id",
                        Kind::DuplicateId {
                            id: id.to_string(),
                            section: Section::Agreement,
                            first_index,
                        },
                    );
                } else {
                    seen.insert(id, index);
                }
            }
        }
        self.reference(&at, "client", Section::Client, &raw.client, clients);
        self.reference(&at, "service", Section::Service, &raw.service, services);
        let state = match raw.state.as_str() {
            "requested" => Some(AgreementState::Requested),
            "approved" => Some(AgreementState::Approved),
            "rejected" => Some(AgreementState::Rejected),
            "revoked" => Some(AgreementState::Revoked),
            _ => {
                self.push(
                    &at,
                    "state",
                    Kind::UnknownState {
                        text: raw.state.clone(),
                    },
                );
                None
            }
        };
        let expires = match &raw.expires {
            None => None,
            Some(text) => {
                let date = parse_date(&text.0);
                if date.is_none() {
                    self.push(
                        &at,
                        "expires",
                        Kind::BadDate {
                            text: text.0.clone(),
                        },
                    );
                }
                date
            }
        };
        let vlan = match raw.vlan {
            None => None,
            Some(value) => {
                let vlan = u16::try_from(value).ok().filter(|v| (1..=4094).contains(v));
                if vlan.is_none() {
                    self.push(&at, "vlan", Kind::VlanOutOfRange { value });
                }
                vlan
            }
        };
        if self.errors.len() != before {
            return None;
        }
        Some(Agreement {
            id: id?,
            client: raw.client,
            service: raw.service,
            state: state?,
            expires,
            vlan,
        })
    }
}

/// An item of a port list is an alias name when it starts with a letter or `_`; anything else
/// (digits, `-`, white space, nothing) is read as a port or range.
fn is_alias_name(text: &str) -> bool {
    text.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// `203.0.113.10/32 tcp 443,8000-8100`, `... tcp all ports`, `2001:db8::/32 icmpv6`.
fn describe_endpoint(e: &Endpoint) -> String {
    let ports = if !e.protocol.has_ports() {
        String::new()
    } else if e.ports.is_empty() {
        " all ports".to_owned()
    } else {
        let list: Vec<String> = e.ports.iter().map(PortRange::to_string).collect();
        format!(" {}", list.join(","))
    };
    format!("{} {}{ports}", e.address, e.protocol.name())
}

/// Exactly `YYYY-MM-DD`, a real calendar date.
fn parse_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    let shape_ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape_ok {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// Sorts ranges and merges overlapping and adjacent ones, so equal sets compare equal.
pub(crate) fn normalise(mut ranges: Vec<PortRange>) -> Vec<PortRange> {
    ranges.sort_unstable();
    let mut out: Vec<PortRange> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match out.last_mut() {
            Some(last) if u32::from(range.lo) <= u32::from(last.hi) + 1 => {
                last.hi = last.hi.max(range.hi);
            }
            _ => out.push(range),
        }
    }
    out
}

/// The known id closest to `id` by edit distance, if it is close enough to be a likely typo.
fn suggest<'a>(id: &str, known: impl Iterator<Item = &'a String>) -> Option<String> {
    let limit = (id.chars().count() / 3).clamp(1, 3);
    known
        .map(|k| (edit_distance(id, k), k))
        .filter(|&(d, _)| d <= limit)
        .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)))
        .map(|(_, k)| k.clone())
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Rows i-2, i-1 and i of the distance table.
    let mut prev2 = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

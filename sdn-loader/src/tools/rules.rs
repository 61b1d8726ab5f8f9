//! The rules in force, read back from the kernel's maps (`sdn-loader rules`, like `nft list
//! ruleset`): the active generation's prefix classes and rule intervals decoded into lines
//! of agreement, client prefix, endpoint, protocol, ports and VLAN.
//!
//! The maps hold a compiled form: prefixes grouped into classes (nested prefixes get the
//! class of every prefix containing them) and disjoint port intervals labelled with the
//! lowest agreement id covering them. Decoding gives every (client prefix, endpoint prefix)
//! pair of a rule; [`normalize`] then merges each line's port intervals and drops the lines
//! that a wider line of the same agreement already covers, so a policy without overlaps
//! between agreements reads back as written ([`from_policy`] gives that form). Where
//! agreements overlap, the lines show what the kernel enforces: the lowest id wins.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use ipnet::IpNet;
use sdn_common::{INFRA_CLASS, PROTO_ANY, VLAN_ANY, family, table};

use crate::dataplane::ActiveTables;
use crate::policy::{Policy, PortRange};

/// One line of the rules in force.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Line {
    /// Agreement id (0: the infrastructure allow list).
    pub agreement: u32,
    /// Client prefix (`None`: infrastructure, either direction).
    pub client: Option<IpNet>,
    /// Endpoint prefix (for infrastructure: the allowed prefix).
    pub endpoint: IpNet,
    /// Protocol name (`tcp`, `udp`, `sctp`, `icmp`, `icmpv6`, `any` or a number).
    pub protocol: String,
    /// Port intervals, merged and sorted (`0-65535`: every port).
    pub ports: Vec<(u16, u16)>,
    /// VLAN (`None`: any).
    pub vlan: Option<u16>,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ports: Vec<String> = (self.ports.iter())
            .map(|&(lo, hi)| PortRange { lo, hi }.to_string())
            .collect();
        let ports = if self.ports == [(0, u16::MAX)] {
            "every port".to_owned()
        } else {
            ports.join(",")
        };
        let vlan = self
            .vlan
            .map_or_else(|| "any".to_owned(), |v| v.to_string());
        match self.client {
            Some(c) => write!(
                f,
                "agreement {} {c} -> {} {} {ports} vlan {vlan}",
                self.agreement, self.endpoint, self.protocol
            ),
            None => write!(
                f,
                "infrastructure {} {} {ports}",
                self.endpoint, self.protocol
            ),
        }
    }
}

impl Line {
    /// The line as a JSON object (`client` null for infrastructure, `vlan` null for any).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "agreement": self.agreement,
            "client": self.client.map(|c| c.to_string()),
            "endpoint": self.endpoint.to_string(),
            "protocol": self.protocol,
            "ports": (self.ports.iter())
                .map(|&(lo, hi)| PortRange { lo, hi }.to_string())
                .collect::<Vec<_>>(),
            "vlan": self.vlan,
        })
    }
}

fn protocol_name(n: u8) -> String {
    match n {
        6 => "tcp".into(),
        17 => "udp".into(),
        132 => "sctp".into(),
        1 => "icmp".into(),
        58 => "icmpv6".into(),
        PROTO_ANY => "any".into(),
        n => n.to_string(),
    }
}

/// A classifier entry back as a prefix.
fn prefix_of(k: &sdn_common::PrefixKey) -> Option<IpNet> {
    let bytes: Vec<u8> = k.addr.iter().flat_map(|w| w.to_ne_bytes()).collect();
    match k.family {
        family::V4 => {
            let a = std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]);
            ipnet::Ipv4Net::new(a, k.prefix_len).ok().map(IpNet::V4)
        }
        family::V6 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&bytes[..16]);
            ipnet::Ipv6Net::new(std::net::Ipv6Addr::from(o), k.prefix_len)
                .ok()
                .map(IpNet::V6)
        }
        _ => None,
    }
}

/// Decodes the maps' entries into lines (normalized, sorted).
pub fn decode(t: &ActiveTables) -> Vec<Line> {
    let mut classes: BTreeMap<(u8, u32), Vec<IpNet>> = BTreeMap::new();
    for (k, v) in &t.prefixes {
        if let Some(p) = prefix_of(k) {
            classes.entry((k.table, v.class)).or_default().push(p);
        }
    }
    let none = Vec::new();
    let mut lines = Vec::new();
    for (k, v) in &t.rules {
        let vlan = (k.vlan != VLAN_ANY).then_some(k.vlan);
        let protocol = protocol_name(k.protocol);
        let entries = v.entries.iter().take(v.count as usize);
        if k.client_class == INFRA_CLASS {
            for e in classes
                .get(&(table::INFRA, k.endpoint_class))
                .unwrap_or(&none)
            {
                for r in entries.clone() {
                    lines.push(Line {
                        agreement: 0,
                        client: None,
                        endpoint: *e,
                        protocol: protocol.clone(),
                        ports: vec![(r.port_lo, r.port_hi)],
                        vlan,
                    });
                }
            }
            continue;
        }
        let clients = classes
            .get(&(table::CLIENT, k.client_class))
            .unwrap_or(&none);
        let endpoints = classes
            .get(&(table::ENDPOINT, k.endpoint_class))
            .unwrap_or(&none);
        for c in clients {
            for e in endpoints
                .iter()
                .filter(|e| e.addr().is_ipv4() == c.addr().is_ipv4())
            {
                for r in entries.clone() {
                    lines.push(Line {
                        agreement: r.agreement,
                        client: Some(*c),
                        endpoint: *e,
                        protocol: protocol.clone(),
                        ports: vec![(r.port_lo, r.port_hi)],
                        vlan,
                    });
                }
            }
        }
    }
    normalize(lines)
}

/// The lines a policy's agreements in force on `today` give, in [`decode`]'s form.
pub fn from_policy(policy: &Policy, today: NaiveDate) -> Vec<Line> {
    let services: BTreeMap<&str, _> = policy.services.iter().map(|s| (s.id.as_str(), s)).collect();
    let clients: BTreeMap<&str, _> = policy.clients.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut lines = Vec::new();
    for a in policy.agreements.iter().filter(|a| a.in_force(today)) {
        let (Some(s), Some(c)) = (
            services.get(a.service.as_str()),
            clients.get(a.client.as_str()),
        ) else {
            continue;
        };
        for e in &s.endpoints {
            let ports: Vec<(u16, u16)> = if e.ports.is_empty() {
                vec![(0, u16::MAX)]
            } else {
                e.ports.iter().map(|r| (r.lo, r.hi)).collect()
            };
            for p in c
                .prefixes
                .iter()
                .filter(|p| p.addr().is_ipv4() == e.address.addr().is_ipv4())
            {
                lines.push(Line {
                    agreement: a.id,
                    client: Some(*p),
                    endpoint: e.address,
                    protocol: protocol_name(e.protocol.number().unwrap_or(PROTO_ANY)),
                    ports: ports.clone(),
                    vlan: a.vlan,
                });
            }
        }
    }
    for i in &policy.infrastructure {
        lines.push(Line {
            agreement: 0,
            client: None,
            endpoint: i.prefix,
            protocol: protocol_name(i.protocol.number().unwrap_or(PROTO_ANY)),
            ports: if i.ports.is_empty() {
                vec![(0, u16::MAX)]
            } else {
                i.ports.iter().map(|r| (r.lo, r.hi)).collect()
            },
            vlan: None,
        });
    }
    normalize(lines)
}

/// Merges the port intervals of lines that differ only in ports, then drops every line a
/// wider line of the same agreement, protocol and VLAN covers (client and endpoint prefixes
/// containing its own, ports a superset), and sorts.
pub fn normalize(lines: Vec<Line>) -> Vec<Line> {
    type Key = (u32, String, Option<u16>, Option<IpNet>, IpNet);
    let mut merged: BTreeMap<Key, Vec<(u16, u16)>> = BTreeMap::new();
    for l in lines {
        (merged
            .entry((l.agreement, l.protocol, l.vlan, l.client, l.endpoint))
            .or_default())
        .extend(l.ports);
    }
    let mut out: Vec<Line> = merged
        .into_iter()
        .map(
            |((agreement, protocol, vlan, client, endpoint), ports)| Line {
                agreement,
                client,
                endpoint,
                protocol,
                ports: merge(ports),
                vlan,
            },
        )
        .collect();
    // Within one (agreement, protocol, VLAN) group, drop the covered lines.
    let covers = |w: &Line, n: &Line| {
        let within = |outer: Option<IpNet>, inner: Option<IpNet>| match (outer, inner) {
            (Some(o), Some(i)) => o.contains(&i),
            (None, None) => true,
            _ => false,
        };
        w != n
            && within(w.client, n.client)
            && w.endpoint.contains(&n.endpoint)
            && n.ports
                .iter()
                .all(|&(lo, hi)| w.ports.iter().any(|&(a, b)| a <= lo && hi <= b))
    };
    let mut keep = vec![true; out.len()];
    let mut start = 0;
    while start < out.len() {
        let group = |l: &Line| (l.agreement, l.protocol.clone(), l.vlan);
        let mut end = start;
        while end < out.len() && group(&out[end]) == group(&out[start]) {
            end += 1;
        }
        for i in start..end {
            keep[i] = !(start..end).any(|j| keep[j] && j != i && covers(&out[j], &out[i]));
        }
        start = end;
    }
    let mut i = 0;
    out.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    out.sort();
    out
}

/// Sorted, merged intervals (touching ones joined).
fn merge(mut v: Vec<(u16, u16)>) -> Vec<(u16, u16)> {
    v.sort_unstable();
    let mut out: Vec<(u16, u16)> = Vec::with_capacity(v.len());
    for (lo, hi) in v {
        match out.last_mut() {
            Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(agreement: u32, client: &str, endpoint: &str, ports: &[(u16, u16)]) -> Line {
        Line {
            agreement,
            client: Some(client.parse().unwrap()),
            endpoint: endpoint.parse().unwrap(),
            protocol: "tcp".into(),
            ports: ports.to_vec(),
            vlan: None,
        }
    }

    #[test]
    fn intervals_merge_and_covered_lines_go() {
        let lines = vec![
            line(1, "198.51.100.0/24", "203.0.113.10/32", &[(443, 443)]),
            line(
                1,
                "198.51.100.0/24",
                "203.0.113.10/32",
                &[(444, 500), (80, 80)],
            ),
            // A nested prefix's derived line, covered by the /24 one.
            line(1, "198.51.100.10/32", "203.0.113.10/32", &[(443, 443)]),
            // Another agreement on the nested prefix stays.
            line(2, "198.51.100.10/32", "203.0.113.10/32", &[(22, 22)]),
        ];
        let out = normalize(lines);
        assert_eq!(
            out,
            [
                line(
                    1,
                    "198.51.100.0/24",
                    "203.0.113.10/32",
                    &[(80, 80), (443, 500)]
                ),
                line(2, "198.51.100.10/32", "203.0.113.10/32", &[(22, 22)]),
            ]
        );
        assert_eq!(
            out[0].to_string(),
            "agreement 1 198.51.100.0/24 -> 203.0.113.10/32 tcp 80,443-500 vlan any"
        );
    }
}

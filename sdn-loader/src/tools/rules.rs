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
fn prefix_of(fam: u8, len: u8, addr: &[u32; 4]) -> Option<IpNet> {
    let bytes: Vec<u8> = addr.iter().flat_map(|w| w.to_ne_bytes()).collect();
    match fam {
        family::V4 => {
            let a = std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]);
            ipnet::Ipv4Net::new(a, len).ok().map(IpNet::V4)
        }
        family::V6 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&bytes[..16]);
            ipnet::Ipv6Net::new(std::net::Ipv6Addr::from(o), len)
                .ok()
                .map(IpNet::V6)
        }
        _ => None,
    }
}

/// A rule key without generation and chunk: client class, endpoint class, VLAN, protocol.
type RuleKeyParts = (u32, u32, u16, u8);
/// A rule key's intervals: first port, last port, agreement.
type Intervals = Vec<(u16, u16, u32)>;

/// The compiled form both the maps and [`crate::compile`] give: (table, class) -> prefixes,
/// and per rule key its intervals (first port, last port, agreement).
#[derive(Default)]
struct Classified {
    classes: BTreeMap<(u8, u32), Vec<IpNet>>,
    rules: Vec<(RuleKeyParts, Intervals)>,
}

/// Decodes the maps' entries into lines (normalized, sorted).
pub fn decode(t: &ActiveTables) -> Vec<Line> {
    let mut c = Classified::default();
    for (k, v) in &t.prefixes {
        if let Some(p) = prefix_of(k.family, k.prefix_len, &k.addr) {
            c.classes.entry((k.table, v.class)).or_default().push(p);
        }
    }
    for (k, v) in &t.rules {
        let intervals = (v.entries.iter().take(v.count as usize))
            .map(|r| (r.port_lo, r.port_hi, r.agreement))
            .collect();
        let key = (k.client_class, k.endpoint_class, k.vlan, k.protocol);
        c.rules.push((key, intervals));
    }
    lines_of(&c)
}

/// What [`decode`] gives for the maps a compiled policy fills: the same lossy form, so that
/// a data plane can be compared with the policy it should enforce, overlaps and all.
pub fn decode_compiled(compiled: &crate::compile::Compiled) -> Vec<Line> {
    let mut c = Classified::default();
    for p in &compiled.prefixes {
        if let Some(net) = prefix_of(p.family, p.prefix_len, &p.addr) {
            c.classes.entry((p.table, p.class)).or_default().push(net);
        }
    }
    for r in &compiled.rules {
        let intervals = (r.intervals.iter())
            .map(|i| (i.lo, i.hi, i.agreement))
            .collect();
        let key = (r.client_class, r.endpoint_class, r.vlan, r.protocol);
        c.rules.push((key, intervals));
    }
    lines_of(&c)
}

fn lines_of(c: &Classified) -> Vec<Line> {
    let none = Vec::new();
    let mut lines = Vec::new();
    for ((client_class, endpoint_class, vlan, proto), intervals) in &c.rules {
        let vlan = (*vlan != VLAN_ANY).then_some(*vlan);
        let protocol = protocol_name(*proto);
        let infra = *client_class == INFRA_CLASS;
        let clients: Vec<Option<IpNet>> = if infra {
            vec![None]
        } else {
            (c.classes
                .get(&(table::CLIENT, *client_class))
                .unwrap_or(&none))
            .iter()
            .map(|p| Some(*p))
            .collect()
        };
        let endpoint_table = if infra { table::INFRA } else { table::ENDPOINT };
        let endpoints = (c.classes.get(&(endpoint_table, *endpoint_class))).unwrap_or(&none);
        for client in &clients {
            let same_family =
                |e: &&IpNet| client.is_none_or(|c| c.addr().is_ipv4() == e.addr().is_ipv4());
            for e in endpoints.iter().filter(same_family) {
                for &(lo, hi, agreement) in intervals {
                    lines.push(Line {
                        agreement: if infra { 0 } else { agreement },
                        client: *client,
                        endpoint: *e,
                        protocol: protocol.clone(),
                        ports: vec![(lo, hi)],
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
    let mut lines = Vec::new();
    for (a, c, s) in policy.in_force_with_parties(today) {
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
    let out: Vec<Line> = merged
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
    // Within one agreement, a line a wider line covers (client and endpoint prefixes that
    // contain its own, any VLAN or the same, any protocol or the same) keeps only the ports
    // the wider ones leave: what the compiler copied into nested prefixes' classes, other
    // VLANs' and other protocols' rule sets goes, what the line adds stays.
    let wider = |w: &Line, n: &Line| {
        let within = |outer: Option<IpNet>, inner: Option<IpNet>| match (outer, inner) {
            (Some(o), Some(i)) => o.contains(&i),
            (None, None) => true,
            _ => false,
        };
        (w.client, w.endpoint, &w.protocol, w.vlan) != (n.client, n.endpoint, &n.protocol, n.vlan)
            && within(w.client, n.client)
            && w.endpoint.contains(&n.endpoint)
            && (w.vlan.is_none() || w.vlan == n.vlan)
            && (w.protocol == "any" || w.protocol == n.protocol)
    };
    // `out` is sorted by its key, agreement first: each agreement's lines are one run.
    let mut reduced: Vec<Vec<(u16, u16)>> = Vec::with_capacity(out.len());
    let mut start = 0;
    while start < out.len() {
        let mut end = start;
        while end < out.len() && out[end].agreement == out[start].agreement {
            end += 1;
        }
        for i in start..end {
            let covered: Vec<(u16, u16)> = (start..end)
                .filter(|&j| wider(&out[j], &out[i]))
                .flat_map(|j| out[j].ports.iter().copied())
                .collect();
            reduced.push(subtract(&out[i].ports, &merge(covered)));
        }
        start = end;
    }
    let mut out: Vec<Line> = (out.into_iter().zip(reduced))
        .filter(|(_, ports)| !ports.is_empty())
        .map(|(l, ports)| Line { ports, ..l })
        .collect();
    out.sort();
    out
}

/// `have` less `take` (both sorted and merged).
fn subtract(have: &[(u16, u16)], take: &[(u16, u16)]) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    for &(lo, hi) in have {
        let (mut lo, hi) = (u32::from(lo), u32::from(hi));
        for &(a, b) in take {
            let (a, b) = (u32::from(a), u32::from(b));
            if b < lo || a > hi {
                continue;
            }
            if a > lo {
                out.push((lo as u16, (a - 1) as u16));
            }
            lo = b + 1;
            if lo > hi {
                break;
            }
        }
        if lo <= hi {
            out.push((lo as u16, hi as u16));
        }
    }
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
        // A nested prefix's class holds its own ports and its parent's: only its own stay.
        // A VLAN copy of a line for any VLAN, and a tcp copy of an `any` line, go.
        let vlan = |mut l: Line, v| {
            l.vlan = Some(v);
            l
        };
        let proto = |mut l: Line, p: &str| {
            l.protocol = p.into();
            l
        };
        let out = normalize(vec![
            line(1, "198.51.100.0/24", "203.0.113.0/28", &[(179, 179)]),
            line(
                1,
                "198.51.100.0/24",
                "203.0.113.1/32",
                &[(22, 22), (179, 179)],
            ),
            vlan(
                line(1, "198.51.100.0/24", "203.0.113.0/28", &[(179, 179)]),
                100,
            ),
            proto(
                line(2, "198.51.100.0/24", "203.0.113.9/32", &[(0, 65535)]),
                "any",
            ),
            line(2, "198.51.100.0/24", "203.0.113.9/32", &[(0, 65535)]),
        ]);
        assert_eq!(
            out,
            [
                line(1, "198.51.100.0/24", "203.0.113.0/28", &[(179, 179)]),
                line(1, "198.51.100.0/24", "203.0.113.1/32", &[(22, 22)]),
                proto(
                    line(2, "198.51.100.0/24", "203.0.113.9/32", &[(0, 65535)]),
                    "any"
                ),
            ]
        );
        assert_eq!(
            subtract(&[(0, 100)], &[(0, 9), (50, 60)]),
            [(10, 49), (61, 100)]
        );
        assert_eq!(subtract(&[(5, 5)], &[(0, 65535)]), []);
    }
}

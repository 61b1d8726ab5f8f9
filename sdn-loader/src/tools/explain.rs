//! Explain: which agreement and clause decided a packet, in words, using the program's own
//! verdict (the packet runs through the real XDP program).

use std::fmt::Write as _;

use chrono::NaiveDate;
use sdn_common::reason;

use crate::{
    policy::{AgreementState, Endpoint, Policy, Protocol},
    tools::{
        frames::Spec,
        replay::{Direction, Verdict},
    },
};

/// What each reason means, for operators.
pub fn clause(reason_name: &str) -> &'static str {
    match reason_name {
        "forward" => "rule 4: an agreement in force lets the client reach this endpoint",
        "reply" => "rule 5: the packet answers a client under an agreement in force",
        "established-forward" | "established-reply" => "rule 10: a flow already in the flow table",
        "icmp-error" => "rule 6: an ICMP error whose quoted packet is allowed",
        "fragment" => "rule 7: a later fragment whose first fragment passed",
        "non-ip" => "rule 1: not IP",
        "infrastructure" => "rule 1: the infrastructure allow list",
        "neighbour-discovery" => "rule 6: IPv6 neighbour discovery always passes",
        "no-agreement" => "rule 8: no agreement in force allows it",
        "reply-syn" => {
            "rule 5: a service may not open connections to its clients (SYN without ACK)"
        }
        "too-many-vlan-tags" => "rule 2: three or more VLAN tags",
        "too-many-extension-headers" => "rule 3: more than 8 IPv6 extension headers",
        "icmp-error-no-agreement" => "rule 6: the packet quoted in the ICMP error would not pass",
        "icmp-error-malformed" => "rule 6: the packet quoted in the ICMP error cannot be read",
        "fragment-without-head" => "rule 7: a later fragment whose first fragment was not seen",
        "fragment-of-dropped-head" => "rule 7: a later fragment whose first fragment dropped",
        _ => "rule 3: malformed or truncated headers",
    }
}

/// A human explanation of one verdict.
pub fn describe(policy: &Policy, spec: &Spec, v: &Verdict, today: NaiveDate) -> String {
    let mut s = String::new();
    let verdict = if v.passed() { "PASS" } else { "DROP" };
    let _ = writeln!(s, "{verdict} ({})", v.reason);
    let _ = writeln!(s, "  clause: {}", clause(v.reason));
    if let Some(id) = v.agreement {
        let dir = match v.direction {
            Some(Direction::Forward) => "forward (to the service)",
            Some(Direction::Reply) => "reply (from the service)",
            None => "-",
        };
        let _ = writeln!(s, "  agreement: {id}, counted {dir}");
        if let Some(a) = policy.agreements.iter().find(|a| a.id == id) {
            let _ = writeln!(
                s,
                "  client {:?} -> service {:?}, state {}, expires {}, vlan {}",
                a.client,
                a.service,
                a.state.name(),
                a.expires.map_or_else(|| "never".into(), |d| d.to_string()),
                a.vlan.map_or_else(|| "any".into(), |v| v.to_string()),
            );
            let (endpoint_addr, port) = match v.direction {
                Some(Direction::Reply) => (spec.src, spec.sport),
                _ => (spec.dst, spec.dport),
            };
            if let Some(svc) = policy.services.iter().find(|x| x.id == a.service) {
                for e in svc
                    .endpoints
                    .iter()
                    .filter(|e| e.address.contains(&endpoint_addr))
                {
                    let proto_ok =
                        e.protocol == Protocol::Any || e.protocol.number() == Some(spec.protocol);
                    let port_ok = !e.protocol.has_ports()
                        || e.ports.is_empty()
                        || e.ports.iter().any(|r| r.contains(port));
                    if proto_ok && port_ok {
                        let _ = writeln!(
                            s,
                            "  endpoint {} {} {}",
                            e.address,
                            e.protocol.name(),
                            ports_text(&e.ports)
                        );
                    }
                }
            }
        }
    }
    if v.transaction {
        let _ = writeln!(s, "  starts a transaction (a new flow under the agreement)");
    }
    if !v.passed() && v.reason == reason::name(reason::NO_AGREEMENT) {
        let near: Vec<u32> = policy
            .agreements
            .iter()
            .filter(|a| {
                let client = policy.clients.iter().find(|c| c.id == a.client);
                client.is_some_and(|c| {
                    c.prefixes
                        .iter()
                        .any(|p| p.contains(&spec.src) || p.contains(&spec.dst))
                })
            })
            .map(|a| a.id)
            .collect();
        if !near.is_empty() {
            let _ = writeln!(
                s,
                "  agreements of the client(s) involved (none matched): {near:?}"
            );
        }
        for line in why_not(policy, spec, today) {
            let _ = writeln!(s, "  not {line}");
        }
    }
    s
}

/// Why each agreement that could have carried the packet did not: those whose client has a
/// prefix holding the packet's source and whose service has an endpoint holding its
/// destination (forward), or the other way round (reply). One line per agreement and
/// direction, naming every cause: its state, its expiry, its VLAN, the protocol or the port.
pub fn why_not(policy: &Policy, spec: &Spec, today: NaiveDate) -> Vec<String> {
    let clients: std::collections::HashMap<&str, _> =
        policy.clients.iter().map(|c| (c.id.as_str(), c)).collect();
    let services: std::collections::HashMap<&str, _> =
        policy.services.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut out = Vec::new();
    for a in &policy.agreements {
        let client = clients.get(a.client.as_str());
        let service = services.get(a.service.as_str());
        let (Some(client), Some(service)) = (client, service) else {
            continue;
        };
        let ways = [
            (spec.src, spec.dst, spec.dport, "forward"),
            (spec.dst, spec.src, spec.sport, "reply"),
        ];
        for (client_addr, endpoint_addr, port, way) in ways {
            if !client.prefixes.iter().any(|p| p.contains(&client_addr)) {
                continue;
            }
            let at: Vec<&Endpoint> = (service.endpoints.iter())
                .filter(|e| e.address.contains(&endpoint_addr))
                .collect();
            if at.is_empty() {
                continue;
            }
            let mut why = Vec::new();
            if a.state != AgreementState::Approved {
                why.push(format!("it is {}", a.state.name()));
            }
            if let Some(e) = a.expires
                && today >= e
            {
                why.push(format!("it expired on {e}"));
            }
            if let Some(v) = a.vlan
                && spec.vlan != Some(v)
            {
                why.push(match spec.vlan {
                    Some(got) => format!("it is for VLAN {v}, the packet has VLAN {got}"),
                    None => format!("it is for VLAN {v}, the packet is untagged"),
                });
            }
            let by_protocol: Vec<&&Endpoint> = (at.iter())
                .filter(|e| {
                    e.protocol == Protocol::Any || e.protocol.number() == Some(spec.protocol)
                })
                .collect();
            if by_protocol.is_empty() {
                let offered: Vec<&str> = at.iter().map(|e| e.protocol.name()).collect();
                why.push(format!(
                    "its endpoint {endpoint_addr} takes {}, not protocol {}",
                    offered.join(", "),
                    spec.protocol
                ));
            } else if !by_protocol.iter().any(|e| {
                !e.protocol.has_ports()
                    || e.ports.is_empty()
                    || e.ports.iter().any(|r| r.contains(port))
            }) {
                let sets: Vec<String> = by_protocol.iter().map(|e| ports_text(&e.ports)).collect();
                why.push(format!("port {port} is not in the set {}", sets.join(" ")));
            }
            if !why.is_empty() {
                out.push(format!(
                    "agreement {} ({} -> {}, {way}): {}",
                    a.id,
                    a.client,
                    a.service,
                    why.join("; ")
                ));
            }
        }
    }
    out
}

fn ports_text(ports: &[crate::policy::PortRange]) -> String {
    if ports.is_empty() {
        return "all ports".into();
    }
    ports
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

//! Synthetic policies of any size, for benchmarks and scale tests.
//!
//! IPv4 addresses come from 198.18.0.0/15, the range reserved for benchmarking network
//! devices (RFC 2544): clients from 198.18.0.0/16, service endpoints from 198.19.0.0/16.
//! IPv6 from 2001:db8::/32 (documentation). These addresses only ever go into maps and into
//! frames run with BPF_PROG_TEST_RUN; nothing is sent on a network.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::policy::{
    Agreement, AgreementState, Client, Endpoint, Organisation, Policy, PolicyDraft, PolicyError,
    PortRange, Protocol, Service,
};

/// Shape of a synthetic policy.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Agreements.
    pub agreements: usize,
    /// Clients.
    pub clients: usize,
    /// Services.
    pub services: usize,
}

impl Shape {
    /// The shape of today's network (730 clients, 1,143 services for 6,351 agreements),
    /// scaled to `agreements` (at most 60,000 clients and 60,000 services).
    pub fn scaled(agreements: usize) -> Self {
        let clients = (agreements * 730 / 6351).clamp(1, 60_000);
        let services = (agreements * 1143 / 6351).clamp(1, 60_000);
        Self {
            agreements,
            clients,
            services,
        }
    }
}

/// Address of client `i` (one /32 or, every fourth client, a /28).
pub fn client_prefix(i: usize) -> IpNet {
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    if i % 4 == 3 {
        // /28 blocks live in the upper half of 198.18.0.0/16.
        let a = base + 0x8000 + ((i as u32 / 4) * 16 % 0x8000);
        IpNet::V4(
            Ipv4Net::new(Ipv4Addr::from(a), 28)
                .unwrap_or_default()
                .trunc(),
        )
    } else {
        let a = base + (i as u32 % 0x8000);
        IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), 32).unwrap_or_default())
    }
}

/// First address inside client `i`'s prefix.
pub fn client_addr(i: usize) -> Ipv4Addr {
    match client_prefix(i) {
        IpNet::V4(n) => n.network(),
        IpNet::V6(_) => Ipv4Addr::UNSPECIFIED,
    }
}

/// IPv4 endpoint address of service `s`.
pub fn service_addr(s: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 0, 0)) + (s as u32 % 0x1_0000))
}

/// IPv6 endpoint of service `s` (every fifth service has one).
pub fn service_addr6(s: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0x0db8, 0x5000, (s >> 16) as u16, 0, 0, 0, s as u16)
}

/// IPv6 prefix of client `i` (every fifth client has one).
pub fn client_prefix6(i: usize) -> IpNet {
    let a = Ipv6Addr::new(0x2001, 0x0db8, 0x1000, (i >> 16) as u16, i as u16, 0, 0, 0);
    IpNet::V6(Ipv6Net::new(a, 80).unwrap_or_default().trunc())
}

/// TCP port of service `s`.
pub fn service_port(s: usize) -> u16 {
    [443, 8443, 104, 11112, 5432][s % 5]
}

/// The service agreement `k` points at (client `k % clients`, distinct pairs).
pub fn agreement_pair(k: usize, shape: &Shape) -> (usize, usize) {
    let c = k % shape.clients;
    let round = k / shape.clients;
    // A stride coprime with most service counts spreads each client's services.
    let s = (c * 7 + round * 7919) % shape.services;
    (c, s)
}

/// Builds a policy of `shape` (all agreements approved, agreement ids 1..=n).
///
/// # Errors
/// None expected: the generator builds valid policies, and says so through the validator.
pub fn policy(shape: Shape) -> Result<Policy, PolicyError> {
    let organisations = vec![Organisation {
        id: "org".into(),
        name: "Synthetic".into(),
    }];
    let clients = (0..shape.clients)
        .map(|i| {
            let mut prefixes = vec![client_prefix(i)];
            if i % 5 == 0 {
                prefixes.push(client_prefix6(i));
            }
            Client {
                id: format!("c{i}"),
                organisation: "org".into(),
                prefixes,
            }
        })
        .collect();
    let services = (0..shape.services)
        .map(|s| {
            let mut endpoints = vec![Endpoint {
                address: IpNet::from(std::net::IpAddr::V4(service_addr(s))),
                protocol: Protocol::Tcp,
                ports: vec![PortRange {
                    lo: service_port(s),
                    hi: service_port(s),
                }],
            }];
            if s % 5 == 0 {
                endpoints.push(Endpoint {
                    address: IpNet::from(std::net::IpAddr::V6(service_addr6(s))),
                    protocol: Protocol::Tcp,
                    ports: vec![PortRange { lo: 443, hi: 443 }],
                });
            }
            if s % 7 == 0 {
                endpoints.push(Endpoint {
                    address: IpNet::from(std::net::IpAddr::V4(service_addr(s))),
                    protocol: Protocol::Udp,
                    ports: vec![PortRange { lo: 5000, hi: 5010 }],
                });
            }
            Service {
                id: format!("s{s}"),
                organisation: "org".into(),
                name: format!("service {s}"),
                endpoints,
            }
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut agreements = Vec::with_capacity(shape.agreements);
    let mut k = 0;
    while agreements.len() < shape.agreements && k < shape.agreements * 4 {
        let (c, s) = agreement_pair(k, &shape);
        k += 1;
        if !seen.insert((c, s)) {
            continue;
        }
        let id = agreements.len() as u32 + 1;
        agreements.push(Agreement {
            id,
            client: format!("c{c}"),
            service: format!("s{s}"),
            state: AgreementState::Approved,
            expires: None,
            vlan: None,
        });
    }
    PolicyDraft {
        organisations,
        port_aliases: Vec::new(),
        services,
        clients,
        agreements,
        infrastructure: Vec::new(),
    }
    .validate()
}

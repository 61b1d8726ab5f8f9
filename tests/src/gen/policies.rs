//! Random valid policies over the documentation address space.

use super::*;

pub(super) const INTERESTING_PORTS: [u16; 20] = [
    0, 1, 22, 53, 80, 104, 123, 161, 179, 443, 1023, 1024, 3306, 8000, 8080, 8100, 11112, 32768,
    65534, 65535,
];

pub(super) const VLAN_POOL: [u16; 6] = [1, 10, 100, 200, 4094, 3000];

pub(super) fn v4_of(a: IpAddr) -> u32 {
    match a {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(_) => 0,
    }
}

pub(super) fn v6_of(a: IpAddr) -> u128 {
    match a {
        IpAddr::V6(a) => u128::from(a),
        IpAddr::V4(_) => 0,
    }
}

/// A random address inside `net`.
pub(super) fn random_in(rng: &mut impl Rng, net: IpNet) -> IpAddr {
    match net {
        IpNet::V4(n) => {
            let host = if n.prefix_len() == 32 {
                0
            } else {
                u32::MAX >> n.prefix_len()
            };
            IpAddr::V4(Ipv4Addr::from(
                u32::from(n.network()) | (rng.r#gen::<u32>() & host),
            ))
        }
        IpNet::V6(n) => {
            let host = if n.prefix_len() == 128 {
                0
            } else {
                u128::MAX >> n.prefix_len()
            };
            // Keep most host bits zero-ish so nearby prefixes get hit: randomise the low 16
            // bits often, all host bits sometimes.
            let r: u128 = if rng.gen_bool(0.7) {
                u128::from(rng.r#gen::<u16>())
            } else {
                rng.r#gen()
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) | (r & host)))
        }
    }
}

/// An address in, at the edge of, or just outside `net` (never outside documentation space).
pub(super) fn addr_near(rng: &mut impl Rng, net: IpNet) -> IpAddr {
    let first = net.network();
    let last = net.broadcast();
    match rng.gen_range(0..100) {
        0..=14 => first,
        15..=29 => last,
        30..=41 => {
            let outside: Vec<IpAddr> = match net {
                IpNet::V4(_) => [v4_of(first).checked_sub(1), v4_of(last).checked_add(1)]
                    .into_iter()
                    .flatten()
                    .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
                    .collect(),
                IpNet::V6(_) => [v6_of(first).checked_sub(1), v6_of(last).checked_add(1)]
                    .into_iter()
                    .flatten()
                    .map(|a| IpAddr::V6(Ipv6Addr::from(a)))
                    .collect(),
            };
            let outside: Vec<IpAddr> = outside
                .into_iter()
                .filter(|a| is_documentation(*a))
                .collect();
            outside
                .choose(rng)
                .copied()
                .unwrap_or_else(|| random_in(rng, net))
        }
        _ => random_in(rng, net),
    }
}

/// A fresh documentation prefix.
pub(super) fn fresh_prefix(rng: &mut impl Rng, v6: bool) -> IpNet {
    if v6 {
        let a = *[0u16, 1, 0x10, 0xffff].choose(rng).unwrap();
        let b = *[0u16, 1, 0xa].choose(rng).unwrap();
        let c: u16 = if rng.gen_bool(0.8) {
            rng.gen_range(0..256)
        } else {
            rng.r#gen()
        };
        let addr = Ipv6Addr::new(0x2001, 0xdb8, a, b, 0, 0, 0, c);
        let len = *[
            32u8, 40, 48, 48, 56, 64, 64, 64, 96, 112, 120, 124, 127, 128, 128, 128,
        ]
        .choose(rng)
        .unwrap();
        IpNet::V6(Ipv6Net::new(addr, len).unwrap().trunc())
    } else {
        let net = *doc_v4().choose(rng).unwrap();
        let addr = Ipv4Addr::from(u32::from(net.network()) | rng.gen_range(0..256));
        let len = *[24u8, 25, 26, 27, 28, 28, 29, 30, 31, 32, 32, 32]
            .choose(rng)
            .unwrap();
        IpNet::V4(Ipv4Net::new(addr, len).unwrap().trunc())
    }
}

/// A documentation prefix, often nested in, containing, or equal to one of `existing`.
pub(super) fn random_prefix(rng: &mut impl Rng, v6: bool, existing: &[IpNet]) -> IpNet {
    let same: Vec<IpNet> = existing
        .iter()
        .copied()
        .filter(|n| matches!(n, IpNet::V6(_)) == v6)
        .collect();
    if same.is_empty() || rng.gen_bool(0.5) {
        return fresh_prefix(rng, v6);
    }
    let base = *same.choose(rng).unwrap();
    let (min, max) = if v6 { (32u8, 128u8) } else { (24u8, 32u8) };
    let len = base.prefix_len();
    let out = match rng.gen_range(0..10) {
        0..=5 if len < max => {
            let new_len = rng.gen_range(len + 1..=max);
            IpNet::new(random_in(rng, base), new_len).unwrap().trunc()
        }
        6..=8 if len > min => {
            let new_len = rng.gen_range(min.max(len.saturating_sub(8))..len);
            IpNet::new(base.addr(), new_len).unwrap().trunc()
        }
        _ => base,
    };
    debug_assert!(is_documentation_net(&out));
    out
}

pub(super) fn random_port_set(rng: &mut impl Rng) -> Vec<PortRange> {
    let n = rng.gen_range(1..=3);
    (0..n)
        .map(|_| {
            let lo = if rng.gen_bool(0.7) {
                *INTERESTING_PORTS.choose(rng).unwrap()
            } else {
                rng.r#gen()
            };
            if rng.gen_bool(0.55) {
                PortRange { lo, hi: lo }
            } else if rng.gen_bool(0.1) {
                PortRange { lo, hi: u16::MAX }
            } else {
                PortRange {
                    lo,
                    hi: lo.saturating_add(rng.gen_range(1..=300)),
                }
            }
        })
        .collect()
}

/// Whether two endpoints are the same for the validator: address, protocol and port set
/// (sorted, merged, and every port written as none).
pub(super) fn same_endpoint(a: &Endpoint, b: &Endpoint) -> bool {
    a.address == b.address && a.protocol == b.protocol && port_set(&a.ports) == port_set(&b.ports)
}

pub(super) fn port_set(ranges: &[PortRange]) -> Vec<PortRange> {
    let mut sorted = ranges.to_vec();
    sorted.sort_unstable();
    let mut out: Vec<PortRange> = Vec::new();
    for r in sorted {
        match out.last_mut() {
            Some(last) if u32::from(r.lo) <= u32::from(last.hi) + 1 => last.hi = last.hi.max(r.hi),
            _ => out.push(r),
        }
    }
    if out == [PortRange::ALL] {
        out.clear();
    }
    out
}

pub(super) fn random_agreement_id(rng: &mut impl Rng) -> u32 {
    match rng.gen_range(0..100) {
        0..=59 => rng.gen_range(1..2000),
        60..=89 => rng.r#gen(),
        _ => *[0u32, 1, u32::MAX, u32::MAX - 1].choose(rng).unwrap(),
    }
}

/// A random valid policy: organisations, 1-4 port aliases, 2-6 services (1-3 endpoints each,
/// no two the same), 2-6 clients (1-3 prefixes each, nested and overlapping on purpose, none
/// repeated within a client), 3-15 agreements with
/// unique ids in random order, mixed states and expiry dates around `today`, some VLANs, and
/// sometimes a small infrastructure allow list.
pub fn random_policy(rng: &mut impl Rng, today: NaiveDate) -> Policy {
    let organisations: Vec<Organisation> = (0..rng.gen_range(2..=5))
        .map(|i| Organisation {
            id: format!("org{i}"),
            name: format!("Organisation {i}"),
        })
        .collect();
    let org = |rng: &mut dyn rand::RngCore| {
        organisations[rng.gen_range(0..organisations.len())]
            .id
            .clone()
    };

    let port_aliases: Vec<PortAlias> = (0..rng.gen_range(1..=4))
        .map(|i| PortAlias {
            name: format!("alias{i}"),
            protocol: *[Protocol::Tcp, Protocol::Udp, Protocol::Sctp]
                .choose(rng)
                .unwrap(),
            ports: random_port_set(rng),
        })
        .collect();

    let mut prefixes: Vec<IpNet> = Vec::new();
    let mut services = Vec::new();
    for i in 0..rng.gen_range(2..=6) {
        let mut endpoints = Vec::new();
        for _ in 0..rng.gen_range(1..=3) {
            let v6 = rng.gen_bool(0.4);
            let address = random_prefix(rng, v6, &prefixes);
            prefixes.push(address);
            let protocol = match rng.gen_range(0..100) {
                0..=29 => Protocol::Tcp,
                30..=49 => Protocol::Udp,
                50..=59 => Protocol::Sctp,
                60..=74 if v6 => Protocol::Icmpv6,
                60..=74 => Protocol::Icmp,
                _ => Protocol::Any,
            };
            let ports = if protocol.has_ports() {
                let aliases: Vec<&PortAlias> = port_aliases
                    .iter()
                    .filter(|a| a.protocol == protocol)
                    .collect();
                match rng.gen_range(0..100) {
                    0..=19 => Vec::new(),
                    20..=44 if !aliases.is_empty() => aliases.choose(rng).unwrap().ports.clone(),
                    _ => random_port_set(rng),
                }
            } else {
                Vec::new()
            };
            let endpoint = Endpoint {
                address,
                protocol,
                ports,
            };
            // A repeat (the validator refuses it) is left out without drawing again, so that
            // the rest of the random stream stays as it was.
            if !endpoints.iter().any(|e| same_endpoint(e, &endpoint)) {
                endpoints.push(endpoint);
            }
        }
        services.push(Service {
            id: format!("svc{i}"),
            organisation: org(rng),
            name: format!("Service {i}"),
            endpoints,
        });
    }

    let mut clients = Vec::new();
    for i in 0..rng.gen_range(2..=6) {
        let mut client_prefixes = Vec::new();
        for _ in 0..rng.gen_range(1..=3) {
            let v6 = rng.gen_bool(0.4);
            let p = random_prefix(rng, v6, &prefixes);
            prefixes.push(p);
            // As for endpoints: a repeat is left out, without drawing again.
            if !client_prefixes.contains(&p) {
                client_prefixes.push(p);
            }
        }
        clients.push(Client {
            id: format!("cli{i}"),
            organisation: org(rng),
            prefixes: client_prefixes,
        });
    }

    let mut ids = std::collections::HashSet::new();
    let mut agreements = Vec::new();
    for _ in 0..rng.gen_range(3..=15) {
        let id = loop {
            let id = random_agreement_id(rng);
            if ids.insert(id) {
                break id;
            }
        };
        let state = match rng.gen_range(0..100) {
            0..=69 => AgreementState::Approved,
            70..=79 => AgreementState::Requested,
            80..=89 => AgreementState::Rejected,
            _ => AgreementState::Revoked,
        };
        let expires = match rng.gen_range(0..100) {
            0..=49 => None,
            50..=69 => today.checked_add_days(Days::new(rng.gen_range(2..4000))),
            70..=77 => Some(today),
            78..=84 => today.checked_add_days(Days::new(1)),
            _ => today.checked_sub_days(Days::new(rng.gen_range(1..1000))),
        };
        let vlan = rng.gen_bool(0.35).then(|| *VLAN_POOL.choose(rng).unwrap());
        agreements.push(Agreement {
            id,
            client: clients.choose(rng).unwrap().id.clone(),
            service: services.choose(rng).unwrap().id.clone(),
            state,
            expires,
            vlan,
        });
    }
    agreements.shuffle(rng);

    let mut infrastructure = Vec::new();
    if rng.gen_bool(0.3) {
        for _ in 0..rng.gen_range(1..=2) {
            let v6 = rng.gen_bool(0.4);
            let prefix = fresh_prefix(rng, v6);
            let prefix = if v6 {
                IpNet::new(prefix.addr(), *[120u8, 126, 128].choose(rng).unwrap())
                    .unwrap()
                    .trunc()
            } else {
                IpNet::new(prefix.addr(), *[29u8, 30, 32].choose(rng).unwrap())
                    .unwrap()
                    .trunc()
            };
            let (protocol, ports) = match rng.gen_range(0..10) {
                0..=3 => (Protocol::Any, Vec::new()),
                4..=5 => (
                    Protocol::Tcp,
                    vec![PortRange { lo: 22, hi: 22 }, PortRange { lo: 179, hi: 179 }],
                ),
                6 => (Protocol::Udp, vec![PortRange { lo: 161, hi: 162 }]),
                7 => (Protocol::Tcp, Vec::new()),
                _ => (
                    if v6 { Protocol::Icmpv6 } else { Protocol::Icmp },
                    Vec::new(),
                ),
            };
            infrastructure.push(InfraEntry {
                prefix,
                protocol,
                ports,
            });
        }
    }

    let draft = PolicyDraft {
        organisations,
        port_aliases,
        services,
        clients,
        agreements,
        infrastructure,
    };
    // The generator aims at valid policies only; the validator says whether it hit.
    match draft.validate() {
        Ok(policy) => policy,
        Err(e) => panic!("the generator built an invalid policy: {e}\n{draft:?}"),
    }
}

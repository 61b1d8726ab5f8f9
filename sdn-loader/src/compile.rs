//! Compiles a validated policy into the XDP program's map entries.
//!
//! Addresses are classified by *class*: the set of clients (or service endpoints) whose
//! prefixes contain a prefix. Each distinct prefix gets the class of every prefix containing
//! it, so the kernel's longest-match lookup yields every client (endpoint) covering an
//! address. Rules are then keyed by (client class, endpoint class, VLAN, protocol) and hold
//! disjoint port intervals, each labelled with the lowest agreement id covering it: nested and
//! overlapping prefixes and ports give the same answer as "lowest agreement id wins".

use std::collections::{BTreeSet, HashMap};

use chrono::NaiveDate;
use ipnet::IpNet;
use sdn_common::{
    INFRA_CLASS, MAX_PREFIX_LENGTHS, MAX_RULE_CHUNKS, PROTO_ANY, RULES_PER_VALUE, family, table,
};

use crate::policy::{Policy, PortRange, Protocol};

/// Why a policy cannot be compiled for the data plane.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// A (client, service) pair needs more port intervals than one rule key can hold.
    #[error(
        "agreements between client {client:?} and service {service:?} need {count} distinct port intervals for one protocol and VLAN; the data plane holds at most {limit}"
    )]
    TooManyIntervals {
        /// A client involved.
        client: String,
        /// A service involved.
        service: String,
        /// Intervals needed.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// Too many distinct prefix lengths in one table.
    #[error(
        "the {table} prefixes use {count} distinct IPv{family} prefix lengths; the data plane probes at most {limit}"
    )]
    TooManyPrefixLengths {
        /// "client", "endpoint" or "infrastructure".
        table: &'static str,
        /// 4 or 6.
        family: u8,
        /// Lengths used.
        count: usize,
        /// The limit.
        limit: usize,
    },
}

/// One prefix-classifier entry (generation is set when applied).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PrefixEntry {
    /// `table::*`.
    pub table: u8,
    /// `family::*`.
    pub family: u8,
    /// Prefix length.
    pub prefix_len: u8,
    /// Network address as stored in keys (network byte order words).
    pub addr: [u32; 4],
    /// Class id.
    pub class: u32,
}

/// A disjoint port interval and the agreement it counts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    /// First port.
    pub lo: u16,
    /// Last port.
    pub hi: u16,
    /// Agreement id (0 for infrastructure).
    pub agreement: u32,
}

/// All intervals of one rule key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSet {
    /// Client class (or `INFRA_CLASS`).
    pub client_class: u32,
    /// Endpoint class (or infrastructure class).
    pub endpoint_class: u32,
    /// VLAN or `VLAN_ANY`.
    pub vlan: u16,
    /// Protocol number or `PROTO_ANY`.
    pub protocol: u8,
    /// Sorted, disjoint intervals.
    pub intervals: Vec<Interval>,
}

impl RuleSet {
    /// Number of map entries (chunks) this rule set takes.
    pub fn chunks(&self) -> usize {
        self.intervals.len().div_ceil(RULES_PER_VALUE).max(1)
    }
}

/// Prefix lengths of one (table, family), longest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lengths {
    /// `table::*`.
    pub table: u8,
    /// `family::*`.
    pub family: u8,
    /// Longest first.
    pub lengths: Vec<u8>,
}

/// A compiled policy: everything the data plane needs, independent of generation and slots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compiled {
    /// Prefix-classifier entries.
    pub prefixes: Vec<PrefixEntry>,
    /// Distinct lengths per table and family.
    pub lengths: Vec<Lengths>,
    /// Rule sets.
    pub rules: Vec<RuleSet>,
    /// Ids of the agreements in force, sorted.
    pub agreements: Vec<u32>,
}

impl Compiled {
    /// Rule-map entries needed (every chunk is one entry).
    pub fn rule_entries(&self) -> usize {
        self.rules.iter().map(RuleSet::chunks).sum()
    }
}

/// Address words as stored in map keys: network byte order bytes, read as native words.
pub fn addr_words(addr: std::net::IpAddr) -> [u32; 4] {
    let mut w = [0u32; 4];
    match addr {
        std::net::IpAddr::V4(a) => w[0] = u32::from_ne_bytes(a.octets()),
        std::net::IpAddr::V6(a) => {
            for (i, c) in a.octets().chunks_exact(4).enumerate() {
                w[i] = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
    }
    w
}

const fn family_of(net: &IpNet) -> u8 {
    match net {
        IpNet::V4(_) => family::V4,
        IpNet::V6(_) => family::V6,
    }
}

/// Classes of one prefix table.
struct Classified<T> {
    /// (prefix, class) for every distinct prefix.
    entries: Vec<(IpNet, u32)>,
    /// Members of each class (index = class - first id), sorted.
    members: Vec<Vec<T>>,
    /// Family of each class.
    families: Vec<u8>,
    first_id: u32,
}

/// Gives every distinct prefix the class of all members whose prefixes contain it.
fn classify<T: Copy + Ord + std::hash::Hash>(items: &[(IpNet, T)], first_id: u32) -> Classified<T> {
    let mut direct: HashMap<IpNet, BTreeSet<T>> = HashMap::new();
    for (net, m) in items {
        direct.entry(*net).or_default().insert(*m);
    }
    let mut lens_by_family: HashMap<u8, BTreeSet<u8>> = HashMap::new();
    for net in direct.keys() {
        lens_by_family
            .entry(family_of(net))
            .or_default()
            .insert(net.prefix_len());
    }
    let mut prefixes: Vec<IpNet> = direct.keys().copied().collect();
    prefixes.sort();
    // Keyed by family too: a class never mixes IPv4 and IPv6 prefixes.
    let mut interned: HashMap<(u8, Vec<T>), u32> = HashMap::new();
    let mut out = Classified {
        entries: Vec::with_capacity(prefixes.len()),
        members: Vec::new(),
        families: Vec::new(),
        first_id,
    };
    for net in prefixes {
        let mut set: BTreeSet<T> = BTreeSet::new();
        for &l in lens_by_family.get(&family_of(&net)).into_iter().flatten() {
            if l > net.prefix_len() {
                break;
            }
            let Ok(anc) = IpNet::new(net.addr(), l) else {
                continue;
            };
            if let Some(ms) = direct.get(&anc.trunc()) {
                set.extend(ms.iter().copied());
            }
        }
        let key: Vec<T> = set.into_iter().collect();
        let next = first_id + out.members.len() as u32;
        let class = *interned
            .entry((family_of(&net), key.clone()))
            .or_insert_with(|| {
                out.members.push(key);
                out.families.push(family_of(&net));
                next
            });
        out.entries.push((net, class));
    }
    out
}

/// One contribution to a rule set: ports (empty = all) under an agreement id.
struct Item<'a> {
    id: u32,
    vlan: Option<u16>,
    protocol: Protocol,
    ports: &'a [PortRange],
}

/// Disjoint intervals, each labelled with the lowest id covering it (items sorted by id).
fn flatten(items: &[&Item<'_>]) -> Vec<Interval> {
    let mut out: Vec<Interval> = Vec::new();
    for it in items {
        let all = [PortRange::ALL];
        let ranges = if it.ports.is_empty() {
            &all[..]
        } else {
            it.ports
        };
        for r in ranges {
            // Add the parts of r not yet covered.
            let mut pieces = vec![(u32::from(r.lo), u32::from(r.hi))];
            for o in &out {
                let (olo, ohi) = (u32::from(o.lo), u32::from(o.hi));
                pieces = pieces
                    .into_iter()
                    .flat_map(|(lo, hi)| {
                        let mut v = Vec::with_capacity(2);
                        if hi < olo || lo > ohi {
                            v.push((lo, hi));
                        } else {
                            if lo < olo {
                                v.push((lo, olo - 1));
                            }
                            if hi > ohi {
                                v.push((ohi + 1, hi));
                            }
                        }
                        v
                    })
                    .collect();
            }
            for (lo, hi) in pieces {
                out.push(Interval {
                    lo: lo as u16,
                    hi: hi as u16,
                    agreement: it.id,
                });
            }
        }
    }
    out.sort_by_key(|i| i.lo);
    let mut merged: Vec<Interval> = Vec::with_capacity(out.len());
    for i in out {
        match merged.last_mut() {
            Some(m) if m.agreement == i.agreement && u32::from(m.hi) + 1 == u32::from(i.lo) => {
                m.hi = i.hi;
            }
            _ => merged.push(i),
        }
    }
    merged
}

/// Rule sets for one class pair: one per (VLAN, protocol) combination that has intervals.
/// Each set already contains everything that applies to it (VLAN-less agreements in VLAN
/// sets, `any` endpoints in protocol sets), so the kernel takes the most specific key found.
fn rule_sets(
    client_class: u32,
    endpoint_class: u32,
    items: &mut [Item<'_>],
    out: &mut Vec<RuleSet>,
) -> Option<usize> {
    items.sort_by_key(|i| i.id);
    let vlans: BTreeSet<u16> = items.iter().filter_map(|i| i.vlan).collect();
    let protos: BTreeSet<u8> = items.iter().filter_map(|i| i.protocol.number()).collect();
    let mut worst = 0;
    for v in std::iter::once(0u16).chain(vlans) {
        for p in protos
            .iter()
            .copied()
            .map(Some)
            .chain(std::iter::once(None))
        {
            let applicable: Vec<&Item<'_>> = items
                .iter()
                .filter(|i| i.vlan.is_none() || (v != 0 && i.vlan == Some(v)))
                .filter(|i| match p {
                    Some(n) => i.protocol == Protocol::Any || i.protocol.number() == Some(n),
                    None => i.protocol == Protocol::Any,
                })
                .collect();
            if applicable.is_empty() {
                continue;
            }
            let intervals = flatten(&applicable);
            worst = worst.max(intervals.len());
            out.push(RuleSet {
                client_class,
                endpoint_class,
                vlan: v,
                protocol: p.unwrap_or(PROTO_ANY),
                intervals,
            });
        }
    }
    (worst > MAX_RULE_CHUNKS as usize * RULES_PER_VALUE).then_some(worst)
}

fn lengths_of(
    entries: &[PrefixEntry],
    tbl: u8,
    name: &'static str,
    out: &mut Vec<Lengths>,
) -> Result<(), CompileError> {
    for fam in [family::V4, family::V6] {
        let set: BTreeSet<u8> = entries
            .iter()
            .filter(|e| e.table == tbl && e.family == fam)
            .map(|e| e.prefix_len)
            .collect();
        if set.len() > MAX_PREFIX_LENGTHS {
            return Err(CompileError::TooManyPrefixLengths {
                table: name,
                family: fam,
                count: set.len(),
                limit: MAX_PREFIX_LENGTHS,
            });
        }
        out.push(Lengths {
            table: tbl,
            family: fam,
            lengths: set.into_iter().rev().collect(),
        });
    }
    Ok(())
}

fn push_prefixes<T>(c: &Classified<T>, tbl: u8, out: &mut Vec<PrefixEntry>) {
    for (net, class) in &c.entries {
        out.push(PrefixEntry {
            table: tbl,
            family: family_of(net),
            prefix_len: net.prefix_len(),
            addr: addr_words(net.network()),
            class: *class,
        });
    }
}

/// Compiles `policy` as in force on `today` (UTC).
pub fn compile(policy: &Policy, today: NaiveDate) -> Result<Compiled, CompileError> {
    let in_force: Vec<_> = policy
        .agreements
        .iter()
        .filter(|a| a.in_force(today))
        .collect();
    let client_idx: HashMap<&str, usize> = policy
        .clients
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    let service_idx: HashMap<&str, usize> = policy
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let used_clients: BTreeSet<usize> = in_force
        .iter()
        .filter_map(|a| client_idx.get(a.client.as_str()).copied())
        .collect();
    let used_services: BTreeSet<usize> = in_force
        .iter()
        .filter_map(|a| service_idx.get(a.service.as_str()).copied())
        .collect();

    let client_items: Vec<(IpNet, usize)> = used_clients
        .iter()
        .flat_map(|&c| policy.clients[c].prefixes.iter().map(move |p| (*p, c)))
        .collect();
    let endpoint_items: Vec<(IpNet, (usize, usize))> = used_services
        .iter()
        .flat_map(|&s| {
            policy.services[s]
                .endpoints
                .iter()
                .enumerate()
                .map(move |(e, ep)| (ep.address, (s, e)))
        })
        .collect();
    let clients = classify(&client_items, 1);
    let endpoints = classify(&endpoint_items, 1);
    let infra_items: Vec<(IpNet, usize)> = policy
        .infrastructure
        .iter()
        .enumerate()
        .map(|(i, e)| (e.prefix, i))
        .collect();
    let infra = classify(&infra_items, 1);

    let mut out = Compiled::default();
    push_prefixes(&clients, table::CLIENT, &mut out.prefixes);
    push_prefixes(&endpoints, table::ENDPOINT, &mut out.prefixes);
    push_prefixes(&infra, table::INFRA, &mut out.prefixes);
    lengths_of(&out.prefixes, table::CLIENT, "client", &mut out.lengths)?;
    lengths_of(&out.prefixes, table::ENDPOINT, "endpoint", &mut out.lengths)?;
    lengths_of(
        &out.prefixes,
        table::INFRA,
        "infrastructure",
        &mut out.lengths,
    )?;

    // Which classes each client and service takes part in.
    let mut classes_of_client: HashMap<usize, Vec<u32>> = HashMap::new();
    for (i, ms) in clients.members.iter().enumerate() {
        for &c in ms {
            classes_of_client
                .entry(c)
                .or_default()
                .push(clients.first_id + i as u32);
        }
    }
    let mut classes_of_service: HashMap<usize, Vec<(u32, Vec<usize>)>> = HashMap::new();
    for (i, ms) in endpoints.members.iter().enumerate() {
        let class = endpoints.first_id + i as u32;
        let mut by_service: HashMap<usize, Vec<usize>> = HashMap::new();
        for &(s, e) in ms {
            by_service.entry(s).or_default().push(e);
        }
        for (s, eps) in by_service {
            classes_of_service.entry(s).or_default().push((class, eps));
        }
    }

    // (client class, endpoint class) -> (agreement, endpoints of its service in the class).
    let mut pairs: HashMap<(u32, u32), Vec<(usize, usize)>> = HashMap::new();
    for (ai, a) in in_force.iter().enumerate() {
        let (Some(&c), Some(&s)) = (
            client_idx.get(a.client.as_str()),
            service_idx.get(a.service.as_str()),
        ) else {
            continue;
        };
        for &cc in classes_of_client.get(&c).into_iter().flatten() {
            let cfam = clients.families[(cc - clients.first_id) as usize];
            for (ec, eps) in classes_of_service.get(&s).into_iter().flatten() {
                if endpoints.families[(*ec - endpoints.first_id) as usize] != cfam {
                    continue;
                }
                let v = pairs.entry((cc, *ec)).or_default();
                for &e in eps {
                    v.push((ai, e));
                }
            }
        }
    }
    let mut keys: Vec<(u32, u32)> = pairs.keys().copied().collect();
    keys.sort_unstable();
    for (cc, ec) in keys {
        let mut items: Vec<Item<'_>> = pairs[&(cc, ec)]
            .iter()
            .filter_map(|&(ai, e)| {
                let a = in_force[ai];
                let s = *service_idx.get(a.service.as_str())?;
                let ep = &policy.services[s].endpoints[e];
                Some(Item {
                    id: a.id,
                    vlan: a.vlan,
                    protocol: ep.protocol,
                    ports: &ep.ports,
                })
            })
            .collect();
        if let Some(count) = rule_sets(cc, ec, &mut items, &mut out.rules) {
            let first = in_force[pairs[&(cc, ec)][0].0];
            return Err(CompileError::TooManyIntervals {
                client: first.client.clone(),
                service: first.service.clone(),
                count,
                limit: MAX_RULE_CHUNKS as usize * RULES_PER_VALUE,
            });
        }
    }

    // Infrastructure: one "pair" per infrastructure class.
    for (i, ms) in infra.members.iter().enumerate() {
        let class = infra.first_id + i as u32;
        let mut items: Vec<Item<'_>> = ms
            .iter()
            .map(|&e| {
                let entry = &policy.infrastructure[e];
                Item {
                    id: 0,
                    vlan: None,
                    protocol: entry.protocol,
                    ports: &entry.ports,
                }
            })
            .collect();
        if let Some(count) = rule_sets(INFRA_CLASS, class, &mut items, &mut out.rules) {
            return Err(CompileError::TooManyIntervals {
                client: "infrastructure".into(),
                service: policy.infrastructure[ms[0]].prefix.to_string(),
                count,
                limit: MAX_RULE_CHUNKS as usize * RULES_PER_VALUE,
            });
        }
    }

    out.agreements = in_force.iter().map(|a| a.id).collect();
    out.agreements.sort_unstable();
    out.agreements.dedup();
    Ok(out)
}

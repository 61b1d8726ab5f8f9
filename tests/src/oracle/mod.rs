//! A userspace reference model of the XDP program's verdicts: a test oracle.
//!
//! It is written independently of the kernel program and of the loader's policy compiler: it
//! walks the frame with its own byte-slice parser and checks the validated `Policy` directly,
//! agreement by agreement, with no flattening, classes or tries. Property tests compare it with
//! the real program on random frames, so it follows docs/semantics.md ("Verdict rules"), as
//! the kernel program does:
//!
//! 1. Ethernet, up to 2 VLAN tags; non-IP passes.
//! 2. IPv4 / IPv6 header (+ up to 8 extension headers) checks.
//! 3. Later fragments: fragment table.
//! 4. Transport header check (tiny-fragment for first fragments).
//! 5. ICMPv6 neighbour discovery, then ICMP errors (judged by the quoted packet).
//! 6. Flow table, then infrastructure, then agreements (forward beats reply, lowest id wins).
//! 7. First fragments store their verdict in the fragment table.
//!
//! The oracle has no timeouts: flow and fragment entries live as long as the `Oracle`.
//!
//! Choices made where the brief is silent (check these first when the kernel disagrees):
//! - IPv6: the header walk stops at a fragment header with offset != 0 (what follows is
//!   fragment data). A fragment header with offset 0 and no M flag ("atomic") is no fragment.
//!   With several fragment headers, the last fragmenting one (offset != 0 or M) gives the key.
//! - First fragments store every verdict reached from the transport check on: tiny-fragment and
//!   other drops as drops; passes with their attribution, which is none for infrastructure and
//!   neighbour discovery (later fragments then pass as "fragment" with no agreement) and the
//!   quoted packet's (reversed) for ICMP errors.
//! - ICMP errors are judged before the flow table and infrastructure, so infrastructure does not
//!   cover them: only the quoted packet's agreements count.
//! - A quoted non-first fragment (IPv4 or IPv6) is unjudgeable; an ICMPv4 error always quotes
//!   IPv4, ICMPv6 always IPv6.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::NaiveDate;
use ipnet::IpNet;
use sdn_loader::policy::{Endpoint, Policy, Protocol};

mod parse;

use parse::*;

/// Reason names, spelled as `sdn_common::reason::name` spells them.
#[allow(
    missing_docs,
    reason = "each is its reason's name, defined in docs/semantics.md"
)]
pub mod reason {
    pub const FORWARD: &str = "forward";
    pub const REPLY: &str = "reply";
    pub const ESTABLISHED_FORWARD: &str = "established-forward";
    pub const ESTABLISHED_REPLY: &str = "established-reply";
    pub const ICMP_ERROR: &str = "icmp-error";
    pub const FRAGMENT: &str = "fragment";
    pub const NON_IP: &str = "non-ip";
    pub const INFRASTRUCTURE: &str = "infrastructure";
    pub const NEIGHBOUR_DISCOVERY: &str = "neighbour-discovery";
    pub const NO_AGREEMENT: &str = "no-agreement";
    pub const REPLY_SYN: &str = "reply-syn";
    pub const TOO_MANY_VLAN_TAGS: &str = "too-many-vlan-tags";
    pub const TOO_MANY_EXTENSION_HEADERS: &str = "too-many-extension-headers";
    pub const TRUNCATED: &str = "truncated-header";
    pub const MALFORMED_IPV4: &str = "malformed-ipv4";
    pub const MALFORMED_IPV6: &str = "malformed-ipv6";
    pub const MALFORMED_TRANSPORT: &str = "malformed-transport";
    pub const TINY_FRAGMENT: &str = "tiny-fragment";
    pub const FRAGMENT_WITHOUT_HEAD: &str = "fragment-without-head";
    pub const FRAGMENT_OF_DROPPED: &str = "fragment-of-dropped-head";
    pub const ICMP_ERROR_NO_AGREEMENT: &str = "icmp-error-no-agreement";
    pub const ICMP_ERROR_MALFORMED: &str = "icmp-error-malformed";

    /// Every reason the oracle can give.
    pub const ALL: [&str; 22] = [
        FORWARD,
        REPLY,
        ESTABLISHED_FORWARD,
        ESTABLISHED_REPLY,
        ICMP_ERROR,
        FRAGMENT,
        NON_IP,
        INFRASTRUCTURE,
        NEIGHBOUR_DISCOVERY,
        NO_AGREEMENT,
        REPLY_SYN,
        TOO_MANY_VLAN_TAGS,
        TOO_MANY_EXTENSION_HEADERS,
        TRUNCATED,
        MALFORMED_IPV4,
        MALFORMED_IPV6,
        MALFORMED_TRANSPORT,
        TINY_FRAGMENT,
        FRAGMENT_WITHOUT_HEAD,
        FRAGMENT_OF_DROPPED,
        ICMP_ERROR_NO_AGREEMENT,
        ICMP_ERROR_MALFORMED,
    ];
}

/// The direction a passed packet counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// To the service.
    Forward,
    /// From the service.
    Reply,
}

impl Direction {
    /// The other direction.
    #[must_use]
    pub fn opposite(self) -> Self {
        match self {
            Self::Forward => Self::Reply,
            Self::Reply => Self::Forward,
        }
    }
}

/// What the data plane must decide for one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// XDP_PASS (true) or XDP_DROP (false).
    pub pass: bool,
    /// The agreement the packet counts to (passes only).
    pub agreement: Option<u32>,
    /// The direction it counts in (passes under an agreement only).
    pub direction: Option<Direction>,
    /// Whether it starts a transaction.
    pub transaction: bool,
    /// The reason name (`sdn_common::reason::name`).
    pub reason: &'static str,
}

impl Expected {
    fn drop(reason: &'static str) -> Self {
        Self {
            pass: false,
            agreement: None,
            direction: None,
            transaction: false,
            reason,
        }
    }

    fn pass_plain(reason: &'static str) -> Self {
        Self {
            pass: true,
            agreement: None,
            direction: None,
            transaction: false,
            reason,
        }
    }

    fn pass_with(reason: &'static str, attribution: Attribution, transaction: bool) -> Self {
        Self {
            pass: true,
            agreement: attribution.agreement,
            direction: attribution.direction,
            transaction,
            reason,
        }
    }

    fn attribution(&self) -> Attribution {
        Attribution {
            agreement: self.agreement,
            direction: self.direction,
        }
    }
}

/// The agreement and direction a pass counts to (both `None` for infrastructure, ND, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Attribution {
    agreement: Option<u32>,
    direction: Option<Direction>,
}

impl Attribution {
    fn of(agreement: u32, direction: Direction) -> Self {
        Self {
            agreement: Some(agreement),
            direction: Some(direction),
        }
    }
}

/// A flow-table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlowEntry {
    Agreement(u32, Direction),
    Infrastructure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FlowKey {
    vlan: u16,
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    sport: u16,
    dport: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FragmentKey {
    vlan: u16,
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    id: u32,
}

/// One agreement in force, with its client and service resolved.
#[derive(Debug, Clone)]
struct Rule {
    id: u32,
    vlan: Option<u16>,
    client: Vec<IpNet>,
    endpoints: Vec<Endpoint>,
}

/// How an ICMP message takes part in agreement matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IcmpClass {
    /// Echo request: forward only, icmp/icmpv6/any endpoints.
    EchoRequest,
    /// Echo reply: reply only, icmp/icmpv6/any endpoints.
    EchoReply,
    /// Any other type: both ways, `any` endpoints only.
    Other,
}

/// The tuple that agreements are matched against.
#[derive(Debug, Clone, Copy)]
struct Tuple {
    vlan: u16,
    v6: bool,
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    sport: u16,
    dport: u16,
    /// `Some` when the packet is ICMP of its own family (1 in IPv4, 58 in IPv6).
    icmp: Option<IcmpClass>,
}

/// Outcome of matching agreements: the lowest id each way.
#[derive(Debug, Clone, Copy, Default)]
struct Matches {
    forward: Option<u32>,
    reply: Option<u32>,
}

/// The reference model. Stateful: a flow table and a fragment table, never expiring.
#[derive(Debug, Clone)]
pub struct Oracle {
    rules: Vec<Rule>,
    infrastructure: Vec<sdn_loader::policy::InfraEntry>,
    flows: HashMap<FlowKey, FlowEntry>,
    /// `None`: the first fragment dropped.
    fragments: HashMap<FragmentKey, Option<Attribution>>,
}

impl Oracle {
    /// A model of the data plane with `policy` loaded, on the UTC date `today`.
    pub fn new(policy: &Policy, today: NaiveDate) -> Self {
        let mut rules: Vec<Rule> = policy
            .agreements
            .iter()
            .filter(|a| a.in_force(today))
            .filter_map(|a| {
                let client = policy.clients.iter().find(|c| c.id == a.client)?;
                let service = policy.services.iter().find(|s| s.id == a.service)?;
                Some(Rule {
                    id: a.id,
                    vlan: a.vlan,
                    client: client.prefixes.clone(),
                    endpoints: service.endpoints.clone(),
                })
            })
            .collect();
        rules.sort_by_key(|r| r.id);
        Self {
            rules,
            infrastructure: policy.infrastructure.clone(),
            flows: HashMap::new(),
            fragments: HashMap::new(),
        }
    }

    /// Forget every flow and fragment (as after a restart with empty tables).
    pub fn clear_state(&mut self) {
        self.flows.clear();
        self.fragments.clear();
    }

    /// Number of flow-table entries.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// Number of fragment-table entries.
    pub fn fragment_count(&self) -> usize {
        self.fragments.len()
    }

    /// Judge one frame (from its Ethernet header on), updating the tables.
    pub fn judge(&mut self, frame: &[u8]) -> Expected {
        let ip = match parse(frame) {
            Err(reason) => return Expected::drop(reason),
            Ok(Parsed::NonIp) => return Expected::pass_plain(reason::NON_IP),
            Ok(Parsed::Ip(ip)) => ip,
        };
        match ip.fragment {
            Some((key, true)) => match self.fragments.get(&key) {
                None => Expected::drop(reason::FRAGMENT_WITHOUT_HEAD),
                Some(None) => Expected::drop(reason::FRAGMENT_OF_DROPPED),
                Some(Some(attribution)) => {
                    Expected::pass_with(reason::FRAGMENT, *attribution, false)
                }
            },
            Some((key, false)) => {
                let verdict = self.judge_transport(&ip, true);
                self.fragments
                    .insert(key, verdict.pass.then(|| verdict.attribution()));
                verdict
            }
            None => self.judge_transport(&ip, false),
        }
    }

    fn judge_transport(&mut self, ip: &Ip<'_>, first_fragment: bool) -> Expected {
        let Ok(tr) = parse_transport(ip.v6, ip.protocol, ip.transport) else {
            return Expected::drop(if first_fragment {
                reason::TINY_FRAGMENT
            } else {
                reason::MALFORMED_TRANSPORT
            });
        };
        let mut tuple = Tuple {
            vlan: ip.vlan,
            v6: ip.v6,
            src: ip.src,
            dst: ip.dst,
            protocol: ip.protocol,
            sport: tr.sport,
            dport: tr.dport,
            icmp: None,
        };
        if let Some(ty) = tr.icmp_type {
            if ip.v6 && (133..=137).contains(&ty) {
                return Expected::pass_plain(reason::NEIGHBOUR_DISCOVERY);
            }
            if is_icmp_error(ip.v6, ty) {
                return self.judge_icmp_error(ip);
            }
            tuple.icmp = Some(icmp_class(ip.v6, ty));
        }
        let is_tcp = ip.protocol == IPPROTO_TCP;
        let syn_only = is_tcp && tr.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN;

        let key = FlowKey {
            vlan: ip.vlan,
            src: ip.src,
            dst: ip.dst,
            protocol: ip.protocol,
            sport: tr.sport,
            dport: tr.dport,
        };
        if let Some(entry) = self.flows.get(&key) {
            return match *entry {
                FlowEntry::Infrastructure => Expected::pass_plain(reason::INFRASTRUCTURE),
                FlowEntry::Agreement(_, Direction::Reply) if syn_only => {
                    Expected::drop(reason::REPLY_SYN)
                }
                FlowEntry::Agreement(id, Direction::Forward) => Expected::pass_with(
                    reason::ESTABLISHED_FORWARD,
                    Attribution::of(id, Direction::Forward),
                    false,
                ),
                FlowEntry::Agreement(id, Direction::Reply) => Expected::pass_with(
                    reason::ESTABLISHED_REPLY,
                    Attribution::of(id, Direction::Reply),
                    false,
                ),
            };
        }

        if self.infrastructure_matches(&tuple) {
            self.flows.insert(key, FlowEntry::Infrastructure);
            return Expected::pass_plain(reason::INFRASTRUCTURE);
        }

        let m = self.match_agreements(&tuple);
        if let Some(id) = m.forward {
            self.flows
                .insert(key, FlowEntry::Agreement(id, Direction::Forward));
            let transaction = !is_tcp || syn_only;
            return Expected::pass_with(
                reason::FORWARD,
                Attribution::of(id, Direction::Forward),
                transaction,
            );
        }
        if let Some(id) = m.reply {
            if syn_only {
                return Expected::drop(reason::REPLY_SYN);
            }
            self.flows
                .insert(key, FlowEntry::Agreement(id, Direction::Reply));
            return Expected::pass_with(
                reason::REPLY,
                Attribution::of(id, Direction::Reply),
                false,
            );
        }
        Expected::drop(reason::NO_AGREEMENT)
    }

    fn judge_icmp_error(&self, ip: &Ip<'_>) -> Expected {
        // The transport check already guaranteed 8 bytes of ICMP header.
        let Some(quoted) = parse_quoted(ip.vlan, ip.v6, &ip.transport[8..]) else {
            return Expected::drop(reason::ICMP_ERROR_MALFORMED);
        };
        let m = self.match_agreements(&quoted);
        let found = match (m.forward, m.reply) {
            (Some(id), _) => Some((id, Direction::Forward)),
            (None, Some(id)) => Some((id, Direction::Reply)),
            (None, None) => None,
        };
        match found {
            Some((id, dir)) => Expected::pass_with(
                reason::ICMP_ERROR,
                Attribution::of(id, dir.opposite()),
                false,
            ),
            None => Expected::drop(reason::ICMP_ERROR_NO_AGREEMENT),
        }
    }

    fn infrastructure_matches(&self, t: &Tuple) -> bool {
        self.infrastructure.iter().any(|e| {
            (e.prefix.contains(&t.src) || e.prefix.contains(&t.dst))
                && protocol_covers(e.protocol, t.v6, t.protocol)
                && (e.ports.is_empty()
                    || (has_ports(t.protocol)
                        && e.ports
                            .iter()
                            .any(|r| r.contains(t.sport) || r.contains(t.dport))))
        })
    }

    /// The lowest agreement id matching forward and the lowest matching as a reply (the
    /// reply SYN exception is the caller's business).
    fn match_agreements(&self, t: &Tuple) -> Matches {
        let (may_forward, may_reply) = match t.icmp {
            Some(IcmpClass::EchoRequest) => (true, false),
            Some(IcmpClass::EchoReply) => (false, true),
            Some(IcmpClass::Other) | None => (true, true),
        };
        let mut m = Matches::default();
        for rule in &self.rules {
            if rule.vlan.is_some_and(|v| v != t.vlan) {
                continue;
            }
            if may_forward
                && m.forward.is_none()
                && rule.client.iter().any(|p| p.contains(&t.src))
                && rule
                    .endpoints
                    .iter()
                    .any(|ep| endpoint_matches(ep, t, t.dst, t.dport))
            {
                m.forward = Some(rule.id); // rules are sorted: the first is the lowest id
            }
            if may_reply
                && m.reply.is_none()
                && rule.client.iter().any(|p| p.contains(&t.dst))
                && rule
                    .endpoints
                    .iter()
                    .any(|ep| endpoint_matches(ep, t, t.src, t.sport))
            {
                m.reply = Some(rule.id);
            }
        }
        m
    }
}

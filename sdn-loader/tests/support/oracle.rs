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

/// Reason names, spelled as `sdn_common::reason::name` spells them.
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
    const NONE: Self = Self {
        agreement: None,
        direction: None,
    };

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

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const VLAN_TPIDS: [u16; 3] = [0x8100, 0x88a8, 0x9100];

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_SCTP: u8 = 132;

const EXT_HOP_BY_HOP: u8 = 0;
const EXT_ROUTING: u8 = 43;
const EXT_FRAGMENT: u8 = 44;
const EXT_AH: u8 = 51;
const EXT_DEST_OPTS: u8 = 60;
const MAX_EXT_HEADERS: usize = 8;

const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn v4_addr(b: &[u8], at: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]))
}

fn v6_addr(b: &[u8], at: usize) -> IpAddr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    IpAddr::V6(Ipv6Addr::from(a))
}

fn is_ext_header(next: u8) -> bool {
    matches!(
        next,
        EXT_HOP_BY_HOP | EXT_ROUTING | EXT_DEST_OPTS | EXT_FRAGMENT | EXT_AH
    )
}

/// Length of an IPv6 extension header from its first bytes.
fn ext_header_len(kind: u8, hdr: &[u8]) -> usize {
    match kind {
        EXT_FRAGMENT => 8,
        EXT_AH => (usize::from(hdr[1]) + 2) * 4,
        _ => (usize::from(hdr[1]) + 1) * 8,
    }
}

fn is_icmp(v6: bool, protocol: u8) -> bool {
    if v6 {
        protocol == IPPROTO_ICMPV6
    } else {
        protocol == IPPROTO_ICMP
    }
}

fn is_icmp_error(v6: bool, ty: u8) -> bool {
    if v6 {
        (1..=4).contains(&ty)
    } else {
        matches!(ty, 3 | 11 | 12)
    }
}

fn is_echo_request(v6: bool, ty: u8) -> bool {
    if v6 { ty == 128 } else { ty == 8 }
}

fn is_echo_reply(v6: bool, ty: u8) -> bool {
    if v6 { ty == 129 } else { ty == 0 }
}

fn icmp_class(v6: bool, ty: u8) -> IcmpClass {
    if is_echo_request(v6, ty) {
        IcmpClass::EchoRequest
    } else if is_echo_reply(v6, ty) {
        IcmpClass::EchoReply
    } else {
        IcmpClass::Other
    }
}

/// Whether a policy protocol covers a packet's IP protocol (icmp only in IPv4, icmpv6 only in
/// IPv6, any always).
fn protocol_covers(p: Protocol, v6: bool, protocol: u8) -> bool {
    match p {
        Protocol::Any => true,
        Protocol::Tcp => protocol == IPPROTO_TCP,
        Protocol::Udp => protocol == IPPROTO_UDP,
        Protocol::Sctp => protocol == IPPROTO_SCTP,
        Protocol::Icmp => !v6 && protocol == IPPROTO_ICMP,
        Protocol::Icmpv6 => v6 && protocol == IPPROTO_ICMPV6,
    }
}

fn has_ports(protocol: u8) -> bool {
    matches!(protocol, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP)
}

/// Endpoint check for one side: address, protocol, ICMP restrictions, port.
fn endpoint_matches(ep: &Endpoint, t: &Tuple, addr: IpAddr, port: u16) -> bool {
    if !ep.address.contains(&addr) || !protocol_covers(ep.protocol, t.v6, t.protocol) {
        return false;
    }
    if t.icmp == Some(IcmpClass::Other) && ep.protocol != Protocol::Any {
        return false;
    }
    if ep.protocol.has_ports() && !ep.ports.is_empty() {
        return ep.ports.iter().any(|r| r.contains(port));
    }
    true
}

/// A parsed L3 header (enough to judge).
struct Ip<'a> {
    vlan: u16,
    v6: bool,
    src: IpAddr,
    dst: IpAddr,
    /// Final protocol (IPv6: the last next-header).
    protocol: u8,
    /// Fragment key and whether this is a later fragment (offset != 0).
    fragment: Option<(FragmentKey, bool)>,
    /// From the transport header to the L3 end.
    transport: &'a [u8],
}

enum Parsed<'a> {
    NonIp,
    Ip(Ip<'a>),
}

/// Ethernet, VLAN tags and the IP header(s).
fn parse(frame: &[u8]) -> Result<Parsed<'_>, &'static str> {
    if frame.len() < 14 {
        return Err(reason::TRUNCATED);
    }
    let mut ethertype = be16(frame, 12);
    let mut off = 14;
    let mut tags = 0;
    let mut vlan = 0u16;
    while VLAN_TPIDS.contains(&ethertype) {
        if tags == 2 {
            return Err(reason::TOO_MANY_VLAN_TAGS);
        }
        if off + 4 > frame.len() {
            return Err(reason::TRUNCATED);
        }
        let vid = be16(frame, off) & 0x0fff;
        if vid != 0 {
            vlan = vid; // tags are walked outside-in: the last non-zero VID is the innermost
        }
        ethertype = be16(frame, off + 2);
        off += 4;
        tags += 1;
    }
    let ip = &frame[off..];
    match ethertype {
        ETH_P_IPV4 => parse_ipv4(vlan, ip).map(Parsed::Ip),
        ETH_P_IPV6 => parse_ipv6(vlan, ip).map(Parsed::Ip),
        _ => Ok(Parsed::NonIp),
    }
}

fn parse_ipv4(vlan: u16, ip: &[u8]) -> Result<Ip<'_>, &'static str> {
    if ip.len() < 20 {
        return Err(reason::TRUNCATED);
    }
    let ihl = usize::from(ip[0] & 0x0f);
    if ihl < 5 {
        return Err(reason::MALFORMED_IPV4);
    }
    let header_len = ihl * 4;
    if header_len > ip.len() {
        return Err(reason::TRUNCATED);
    }
    let total = usize::from(be16(ip, 2));
    if total < header_len || total > ip.len() {
        return Err(reason::MALFORMED_IPV4);
    }
    let l3 = &ip[..total];
    let flags_offset = be16(ip, 6);
    let more = flags_offset & 0x2000 != 0;
    let offset = flags_offset & 0x1fff;
    let protocol = ip[9];
    let src = v4_addr(ip, 12);
    let dst = v4_addr(ip, 16);
    let fragment = (more || offset != 0).then(|| {
        let id = u32::from(be16(ip, 4));
        (
            FragmentKey {
                vlan,
                src,
                dst,
                protocol,
                id,
            },
            offset != 0,
        )
    });
    Ok(Ip {
        vlan,
        v6: false,
        src,
        dst,
        protocol,
        fragment,
        transport: &l3[header_len..],
    })
}

fn parse_ipv6(vlan: u16, ip: &[u8]) -> Result<Ip<'_>, &'static str> {
    if ip.len() < 40 {
        return Err(reason::TRUNCATED);
    }
    let total = 40 + usize::from(be16(ip, 4));
    if total > ip.len() {
        return Err(reason::MALFORMED_IPV6);
    }
    let l3 = &ip[..total];
    let src = v6_addr(ip, 8);
    let dst = v6_addr(ip, 24);
    let mut next = ip[6];
    let mut pos = 40;
    let mut count = 0;
    let mut fragment = None;
    while is_ext_header(next) {
        if count == MAX_EXT_HEADERS {
            return Err(reason::TOO_MANY_EXTENSION_HEADERS);
        }
        if pos + 8 > l3.len() {
            return Err(reason::TRUNCATED);
        }
        let hdr = &l3[pos..];
        let len = ext_header_len(next, hdr);
        if pos + len > l3.len() {
            return Err(reason::TRUNCATED);
        }
        if next == EXT_FRAGMENT {
            let offset = be16(hdr, 2) >> 3;
            let more = hdr[3] & 1 != 0;
            if offset != 0 || more {
                let key = FragmentKey {
                    vlan,
                    src,
                    dst,
                    protocol: hdr[0],
                    id: be32(hdr, 4),
                };
                fragment = Some((key, offset != 0));
                if offset != 0 {
                    // A later fragment: what follows is fragment data, not headers.
                    return Ok(Ip {
                        vlan,
                        v6: true,
                        src,
                        dst,
                        protocol: hdr[0],
                        fragment,
                        transport: &[],
                    });
                }
            }
        }
        next = hdr[0];
        pos += len;
        count += 1;
    }
    Ok(Ip {
        vlan,
        v6: true,
        src,
        dst,
        protocol: next,
        fragment,
        transport: &l3[pos..],
    })
}

/// The transport fields the oracle needs.
#[derive(Debug, Clone, Copy)]
struct Transport {
    sport: u16,
    dport: u16,
    /// TCP flags (0 for other protocols).
    tcp_flags: u8,
    /// ICMP type of the packet's own family.
    icmp_type: Option<u8>,
}

/// Transport header check; `Err(())` when too short.
fn parse_transport(v6: bool, protocol: u8, t: &[u8]) -> Result<Transport, ()> {
    let mut out = Transport {
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        icmp_type: None,
    };
    match protocol {
        IPPROTO_TCP => {
            if t.len() < 20 {
                return Err(());
            }
            let data_offset = usize::from(t[12] >> 4);
            if data_offset < 5 || data_offset * 4 > t.len() {
                return Err(());
            }
            out.sport = be16(t, 0);
            out.dport = be16(t, 2);
            out.tcp_flags = t[13];
        }
        IPPROTO_UDP | IPPROTO_SCTP => {
            let need = if protocol == IPPROTO_UDP { 8 } else { 12 };
            if t.len() < need {
                return Err(());
            }
            out.sport = be16(t, 0);
            out.dport = be16(t, 2);
        }
        p if is_icmp(v6, p) => {
            if t.len() < 8 {
                return Err(());
            }
            let ty = t[0];
            out.icmp_type = Some(ty);
            // Flow-key ports: the echo identifier and the type.
            out.sport = if is_echo_request(v6, ty) || is_echo_reply(v6, ty) {
                be16(t, 4)
            } else {
                0
            };
            out.dport = u16::from(ty);
        }
        _ => {}
    }
    Ok(out)
}

/// The packet quoted in an ICMP error, as far as it can be judged.
fn parse_quoted(vlan: u16, v6: bool, q: &[u8]) -> Option<Tuple> {
    let (src, dst, protocol, rest) = if v6 {
        if q.len() < 40 {
            return None;
        }
        let mut next = q[6];
        let mut pos = 40;
        let mut count = 0;
        while is_ext_header(next) {
            if count == MAX_EXT_HEADERS || pos + 8 > q.len() {
                return None;
            }
            let hdr = &q[pos..];
            let len = ext_header_len(next, hdr);
            if pos + len > q.len() {
                return None;
            }
            if next == EXT_FRAGMENT && be16(hdr, 2) >> 3 != 0 {
                return None; // a non-first fragment has no transport header
            }
            next = hdr[0];
            pos += len;
            count += 1;
        }
        (v6_addr(q, 8), v6_addr(q, 24), next, &q[pos..])
    } else {
        if q.len() < 20 {
            return None;
        }
        let ihl = usize::from(q[0] & 0x0f);
        if ihl < 5 || ihl * 4 > q.len() {
            return None;
        }
        if be16(q, 6) & 0x1fff != 0 {
            return None; // a non-first fragment has no transport header
        }
        (v4_addr(q, 12), v4_addr(q, 16), q[9], &q[ihl * 4..])
    };
    let mut t = Tuple {
        vlan,
        v6,
        src,
        dst,
        protocol,
        sport: 0,
        dport: 0,
        icmp: None,
    };
    if has_ports(protocol) {
        if rest.len() < 8 {
            return None;
        }
        t.sport = be16(rest, 0);
        t.dport = be16(rest, 2);
    } else if is_icmp(v6, protocol) {
        if rest.len() < 8 {
            return None;
        }
        t.dport = u16::from(rest[0]);
        t.icmp = Some(icmp_class(v6, rest[0]));
    }
    Some(t)
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

//! Seeded random generators for property tests: policies, frames and mutations.
//!
//! Every address generated is a documentation address (192.0.2.0/24, 198.51.100.0/24,
//! 203.0.113.0/24, 2001:db8::/32). Frames are built with `etherparse` header types; layouts
//! etherparse has no builder for (three VLAN tags, long IPv6 extension header chains, SCTP,
//! broken length fields) are assembled from its header structs or by hand.
//!
//! Frames are never shorter than 14 bytes (BPF_PROG_TEST_RUN refuses them) and never longer
//! than ~1,000 bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::{Days, NaiveDate};
use etherparse::{
    EtherType, Ethernet2Header, Icmpv4Type, Icmpv6Type, IpAuthHeader, IpFragOffset, IpNumber,
    Ipv4Header, Ipv4Options, Ipv6FlowLabel, Ipv6Header, Ipv6RawExtHeader, SingleVlanHeader,
    TcpHeader, UdpHeader, VlanId, VlanPcp,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rand::Rng;
use rand::seq::SliceRandom;
use sdn_loader::policy::{
    Agreement, AgreementState, Client, Endpoint, InfraEntry, Organisation, Policy, PortAlias,
    PortRange, Protocol, Service,
};

// ---------------------------------------------------------------------------------------------
// Documentation address space
// ---------------------------------------------------------------------------------------------

/// The IPv4 documentation networks.
pub fn doc_v4() -> [Ipv4Net; 3] {
    [
        Ipv4Net::new(Ipv4Addr::new(192, 0, 2, 0), 24).unwrap(),
        Ipv4Net::new(Ipv4Addr::new(198, 51, 100, 0), 24).unwrap(),
        Ipv4Net::new(Ipv4Addr::new(203, 0, 113, 0), 24).unwrap(),
    ]
}

/// The IPv6 documentation network.
pub fn doc_v6() -> Ipv6Net {
    Ipv6Net::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32).unwrap()
}

/// Whether an address is a documentation address.
pub fn is_documentation(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => doc_v4().iter().any(|n| n.contains(&a)),
        IpAddr::V6(a) => doc_v6().contains(&a),
    }
}

/// Whether a prefix lies inside the documentation space.
pub fn is_documentation_net(net: &IpNet) -> bool {
    match net {
        IpNet::V4(n) => doc_v4().iter().any(|d| d.contains(n)),
        IpNet::V6(n) => doc_v6().contains(n),
    }
}

/// A fixed "today" for reproducible tests.
pub fn fixed_today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 6, 15).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Frame builder
// ---------------------------------------------------------------------------------------------

/// IPv6 extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ext {
    /// Hop-by-hop options, `(n + 1) * 8` bytes.
    HopByHop(u8),
    /// Routing header (type 253, segments left 0), `(n + 1) * 8` bytes.
    Routing(u8),
    /// Destination options, `(n + 1) * 8` bytes.
    DestOpts(u8),
    /// Authentication header with `n` 32-bit ICV words: `12 + 4 n` bytes.
    Ah(u8),
    /// A fragment header with these fields (offset in 8-byte units).
    Fragment { offset: u16, more: bool, id: u32 },
}

impl Ext {
    /// The next-header value announcing this header.
    pub fn number(self) -> u8 {
        match self {
            Self::HopByHop(_) => 0,
            Self::Routing(_) => 43,
            Self::DestOpts(_) => 60,
            Self::Ah(_) => 51,
            Self::Fragment { .. } => 44,
        }
    }

    fn bytes(self, next: u8) -> Vec<u8> {
        match self {
            Self::HopByHop(n) | Self::DestOpts(n) => {
                let len = 6 + 8 * usize::from(n);
                let mut payload = vec![0u8; len];
                payload[0] = 1; // PadN covering the rest
                payload[1] = (len - 2) as u8;
                Ipv6RawExtHeader::new_raw(IpNumber(next), &payload)
                    .unwrap()
                    .to_bytes()
                    .to_vec()
            }
            Self::Routing(n) => {
                let mut payload = vec![0u8; 6 + 8 * usize::from(n)];
                payload[0] = 253; // experimental routing type, segments left 0
                Ipv6RawExtHeader::new_raw(IpNumber(next), &payload)
                    .unwrap()
                    .to_bytes()
                    .to_vec()
            }
            Self::Ah(n) => {
                let icv = vec![0xa5u8; 4 * usize::from(n)];
                IpAuthHeader::new(IpNumber(next), 0x1000 + u32::from(n), 7, &icv)
                    .unwrap()
                    .to_bytes()
                    .to_vec()
            }
            Self::Fragment { offset, more, id } => {
                // Written by hand: etherparse 0.16's Ipv6FragmentHeader::to_bytes puts the
                // offset's low bits and the M flag in the wrong bits (etherparse issue #150,
                // fixed in 0.20). RFC 8200: bytes 2-3 = offset << 3 | M.
                let word = ((offset & 0x1fff) << 3) | u16::from(more);
                let mut b = vec![next, 0];
                b.extend_from_slice(&word.to_be_bytes());
                b.extend_from_slice(&id.to_be_bytes());
                b
            }
        }
    }
}

/// The transport part of a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L4 {
    /// TCP; `options` is a multiple of 4 bytes, at most 40.
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
        options: Vec<u8>,
    },
    /// UDP.
    Udp { sport: u16, dport: u16 },
    /// SCTP common header (12 bytes).
    Sctp { sport: u16, dport: u16 },
    /// ICMP of the packet's family (protocol 1 in IPv4, 58 in IPv6); `rest` is bytes 4-7.
    Icmp { ty: u8, code: u8, rest: [u8; 4] },
    /// Any protocol number; `header` is written verbatim before the payload.
    Raw { protocol: u8, header: Vec<u8> },
}

/// TCP flag bits.
pub mod tcp {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// One IP packet in an Ethernet frame, before serialisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// VLAN tags, outermost first: (TPID, TCI).
    pub tags: Vec<(u16, u16)>,
    /// Source address (same family as `dst`).
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Transport header.
    pub l4: L4,
    /// Bytes after the transport header.
    pub payload: Vec<u8>,
    /// IPv4 identification (low 16 bits) / IPv6 fragment id used by `fragments`.
    pub ident: u32,
    /// IPv4 options (multiple of 4, at most 40 bytes).
    pub v4_options: Vec<u8>,
    /// IPv4 header fragment fields written as they are (offset in 8-byte units, MF).
    pub v4_fragment: (u16, bool),
    /// IPv6 extension headers in order.
    pub exts: Vec<Ext>,
    /// Pad the frame with zeros to 60 bytes (Ethernet minimum) when shorter.
    pub pad_to_60: bool,
}

fn addr_bytes_v4(a: IpAddr) -> [u8; 4] {
    match a {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(_) => [0; 4],
    }
}

fn addr_bytes_v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
    }
}

impl Packet {
    fn new(src: IpAddr, dst: IpAddr, l4: L4) -> Self {
        Self {
            tags: Vec::new(),
            src,
            dst,
            l4,
            payload: Vec::new(),
            ident: 0x0101,
            v4_options: Vec::new(),
            v4_fragment: (0, false),
            exts: Vec::new(),
            pad_to_60: false,
        }
    }

    /// A TCP segment.
    pub fn tcp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, flags: u8) -> Self {
        Self::new(
            src,
            dst,
            L4::Tcp {
                sport,
                dport,
                flags,
                options: Vec::new(),
            },
        )
    }

    /// A UDP datagram.
    pub fn udp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> Self {
        Self::new(src, dst, L4::Udp { sport, dport })
    }

    /// An SCTP packet.
    pub fn sctp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> Self {
        Self::new(src, dst, L4::Sctp { sport, dport })
    }

    /// An ICMP (IPv4) or ICMPv6 (IPv6) message.
    pub fn icmp(src: IpAddr, dst: IpAddr, ty: u8, code: u8, rest: [u8; 4]) -> Self {
        Self::new(src, dst, L4::Icmp { ty, code, rest })
    }

    /// An echo request / reply with identifier `id` (v4 8/0, v6 128/129).
    pub fn echo(src: IpAddr, dst: IpAddr, request: bool, id: u16) -> Self {
        let ty = match (src.is_ipv6(), request) {
            (false, true) => 8,
            (false, false) => 0,
            (true, true) => 128,
            (true, false) => 129,
        };
        let id = id.to_be_bytes();
        Self::icmp(src, dst, ty, 0, [id[0], id[1], 0, 1])
    }

    /// An ICMP error quoting `quoted` (an IP packet's bytes, usually cut short).
    pub fn icmp_error(src: IpAddr, dst: IpAddr, ty: u8, code: u8, quoted: Vec<u8>) -> Self {
        let mut p = Self::icmp(src, dst, ty, code, [0; 4]);
        p.payload = quoted;
        p
    }

    /// Any other protocol.
    pub fn raw(src: IpAddr, dst: IpAddr, protocol: u8) -> Self {
        Self::new(
            src,
            dst,
            L4::Raw {
                protocol,
                header: Vec::new(),
            },
        )
    }

    /// Adds a VLAN tag inside the existing ones.
    pub fn vlan(mut self, tpid: u16, vid: u16) -> Self {
        self.tags.push((tpid, vid & 0x0fff));
        self
    }

    /// Sets the payload.
    pub fn with_payload(mut self, payload: Vec<u8>) -> Self {
        self.payload = payload;
        self
    }

    /// Sets the IPv6 extension headers.
    pub fn with_exts(mut self, exts: Vec<Ext>) -> Self {
        self.exts = exts;
        self
    }

    /// Sets the IPv4 options.
    pub fn with_v4_options(mut self, options: Vec<u8>) -> Self {
        self.v4_options = options;
        self
    }

    /// IPv6?
    pub fn is_v6(&self) -> bool {
        self.src.is_ipv6()
    }

    /// The IP protocol number of the transport header.
    pub fn protocol(&self) -> u8 {
        match &self.l4 {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } => 17,
            L4::Sctp { .. } => 132,
            L4::Icmp { .. } => {
                if self.is_v6() {
                    58
                } else {
                    1
                }
            }
            L4::Raw { protocol, .. } => *protocol,
        }
    }

    /// The transport header and payload, checksums filled in where cheap.
    pub fn l4_bytes(&self) -> Vec<u8> {
        let v6 = self.is_v6();
        let mut out = Vec::new();
        match &self.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
                options,
            } => {
                let mut h = TcpHeader::new(*sport, *dport, 0x1000_0000, 64_000);
                h.fin = flags & 0x01 != 0;
                h.syn = flags & 0x02 != 0;
                h.rst = flags & 0x04 != 0;
                h.psh = flags & 0x08 != 0;
                h.ack = flags & 0x10 != 0;
                h.urg = flags & 0x20 != 0;
                h.ece = flags & 0x40 != 0;
                h.cwr = flags & 0x80 != 0;
                if h.ack {
                    h.acknowledgment_number = 0x2000_0000;
                }
                h.set_options_raw(options).unwrap();
                h.checksum = if v6 {
                    h.calc_checksum_ipv6_raw(
                        addr_bytes_v6(self.src),
                        addr_bytes_v6(self.dst),
                        &self.payload,
                    )
                } else {
                    h.calc_checksum_ipv4_raw(
                        addr_bytes_v4(self.src),
                        addr_bytes_v4(self.dst),
                        &self.payload,
                    )
                }
                .unwrap();
                out.extend_from_slice(&h.to_bytes());
            }
            L4::Udp { sport, dport } => {
                let mut h = UdpHeader {
                    source_port: *sport,
                    destination_port: *dport,
                    length: (8 + self.payload.len()) as u16,
                    checksum: 0,
                };
                h.checksum = if v6 {
                    h.calc_checksum_ipv6_raw(
                        addr_bytes_v6(self.src),
                        addr_bytes_v6(self.dst),
                        &self.payload,
                    )
                } else {
                    h.calc_checksum_ipv4_raw(
                        addr_bytes_v4(self.src),
                        addr_bytes_v4(self.dst),
                        &self.payload,
                    )
                }
                .unwrap();
                out.extend_from_slice(&h.to_bytes());
            }
            L4::Sctp { sport, dport } => {
                out.extend_from_slice(&sport.to_be_bytes());
                out.extend_from_slice(&dport.to_be_bytes());
                out.extend_from_slice(&0x5ca1_ab1eu32.to_be_bytes()); // verification tag
                out.extend_from_slice(&[0; 4]); // CRC32c left zero: nobody checks it here
            }
            L4::Icmp { ty, code, rest } => {
                if v6 {
                    let t = Icmpv6Type::Unknown {
                        type_u8: *ty,
                        code_u8: *code,
                        bytes5to8: *rest,
                    };
                    let sum = t
                        .calc_checksum(
                            addr_bytes_v6(self.src),
                            addr_bytes_v6(self.dst),
                            &self.payload,
                        )
                        .unwrap();
                    out.extend_from_slice(&[*ty, *code]);
                    out.extend_from_slice(&sum.to_be_bytes());
                } else {
                    let t = Icmpv4Type::Unknown {
                        type_u8: *ty,
                        code_u8: *code,
                        bytes5to8: *rest,
                    };
                    let sum = t.calc_checksum(&self.payload);
                    out.extend_from_slice(&[*ty, *code]);
                    out.extend_from_slice(&sum.to_be_bytes());
                }
                out.extend_from_slice(rest);
            }
            L4::Raw { header, .. } => out.extend_from_slice(header),
        }
        out.extend_from_slice(&self.payload);
        out
    }

    /// Serialised extension headers `exts`, the last one announcing `last_next`.
    fn ext_chain(exts: &[Ext], last_next: u8) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, e) in exts.iter().enumerate() {
            let next = exts.get(i + 1).map_or(last_next, |n| n.number());
            out.extend_from_slice(&e.bytes(next));
        }
        out
    }

    fn v4_header(&self, payload_len: usize, offset: u16, more: bool, protocol: u8) -> Vec<u8> {
        let mut h = Ipv4Header::new(
            0,
            64,
            IpNumber(protocol),
            addr_bytes_v4(self.src),
            addr_bytes_v4(self.dst),
        )
        .unwrap();
        h.identification = self.ident as u16;
        h.dont_fragment = !more && offset == 0 && self.ident & 1 == 0;
        h.more_fragments = more;
        h.fragment_offset = IpFragOffset::try_new(offset & 0x1fff).unwrap();
        h.options = Ipv4Options::try_from(&self.v4_options[..]).unwrap();
        h.set_payload_len(payload_len).unwrap();
        let mut out = Vec::new();
        h.write(&mut out).unwrap();
        out
    }

    fn v6_header(&self, payload_len: usize, next: u8) -> Vec<u8> {
        let h = Ipv6Header {
            traffic_class: 0,
            flow_label: Ipv6FlowLabel::ZERO,
            payload_length: payload_len as u16,
            next_header: IpNumber(next),
            hop_limit: 64,
            source: addr_bytes_v6(self.src),
            destination: addr_bytes_v6(self.dst),
        };
        let mut out = Vec::new();
        h.write(&mut out).unwrap();
        out
    }

    /// The whole IP packet (no Ethernet header).
    pub fn ip_bytes(&self) -> Vec<u8> {
        let l4 = self.l4_bytes();
        if self.is_v6() {
            let exts = Self::ext_chain(&self.exts, self.protocol());
            let first = self.exts.first().map_or(self.protocol(), |e| e.number());
            let mut out = self.v6_header(exts.len() + l4.len(), first);
            out.extend_from_slice(&exts);
            out.extend_from_slice(&l4);
            out
        } else {
            let (offset, more) = self.v4_fragment;
            let mut out = self.v4_header(l4.len(), offset, more, self.protocol());
            out.extend_from_slice(&l4);
            out
        }
    }

    /// Offset of the IP header in the frame.
    pub fn l3_offset(&self) -> usize {
        14 + 4 * self.tags.len()
    }

    /// Offset of the transport header in the frame built by `build`.
    pub fn l4_offset(&self) -> usize {
        if self.is_v6() {
            self.l3_offset() + 40 + Self::ext_chain(&self.exts, self.protocol()).len()
        } else {
            self.l3_offset() + 20 + self.v4_options.len()
        }
    }

    /// Wraps IP bytes into Ethernet (and VLAN tags).
    pub fn frame_around(&self, ip: &[u8]) -> Vec<u8> {
        let ethertype = if self.is_v6() { 0x86dd } else { 0x0800 };
        frame_with_tags(&self.tags, ethertype, ip, self.pad_to_60)
    }

    /// The frame.
    pub fn build(&self) -> Vec<u8> {
        self.frame_around(&self.ip_bytes())
    }

    /// The packet cut into fragments of `piece` bytes (rounded up to a multiple of 8) of the
    /// fragmentable part, first fragment first. IPv6: the fragment header goes after the first
    /// `frag_at` extension headers (the rest of `exts` is in the fragmentable part); the id is
    /// `ident`. With a single piece the result is one "atomic" fragment (offset 0, no MF).
    pub fn fragments(&self, piece: usize, frag_at: usize) -> Vec<Vec<u8>> {
        let piece = piece.max(1).div_ceil(8) * 8;
        let v6 = self.is_v6();
        let frag_at = frag_at.min(self.exts.len());
        let (unfrag, data, frag_next) = if v6 {
            let after = &self.exts[frag_at..];
            let mut data = Self::ext_chain(after, self.protocol());
            data.extend_from_slice(&self.l4_bytes());
            let next = after.first().map_or(self.protocol(), |e| e.number());
            (&self.exts[..frag_at], data, next)
        } else {
            (&self.exts[..0], self.l4_bytes(), self.protocol())
        };
        let chunks: Vec<&[u8]> = if data.is_empty() {
            vec![&data[..]]
        } else {
            data.chunks(piece).collect()
        };
        let n = chunks.len();
        let mut frames = Vec::new();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let offset = ((i * piece) / 8) as u16;
            let more = i + 1 < n;
            let ip = if v6 {
                let mut exts = unfrag.to_vec();
                exts.push(Ext::Fragment {
                    offset,
                    more,
                    id: self.ident,
                });
                let chain = Self::ext_chain(&exts, frag_next);
                let mut ip = self.v6_header(chain.len() + chunk.len(), exts[0].number());
                ip.extend_from_slice(&chain);
                ip.extend_from_slice(chunk);
                ip
            } else {
                let mut ip = self.v4_header(chunk.len(), offset, more, self.protocol());
                ip.extend_from_slice(chunk);
                ip
            };
            frames.push(self.frame_around(&ip));
        }
        frames
    }

    /// The packet the other way round: addresses and ports swapped, echo request <-> reply.
    pub fn reversed(&self) -> Self {
        let mut p = self.clone();
        p.src = self.dst;
        p.dst = self.src;
        p.l4 = match &self.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
                options,
            } => L4::Tcp {
                sport: *dport,
                dport: *sport,
                flags: *flags,
                options: options.clone(),
            },
            L4::Udp { sport, dport } => L4::Udp {
                sport: *dport,
                dport: *sport,
            },
            L4::Sctp { sport, dport } => L4::Sctp {
                sport: *dport,
                dport: *sport,
            },
            L4::Icmp { ty, code, rest } => {
                let ty = match ty {
                    8 => 0,
                    0 => 8,
                    128 => 129,
                    129 => 128,
                    t => *t,
                };
                L4::Icmp {
                    ty,
                    code: *code,
                    rest: *rest,
                }
            }
            other => other.clone(),
        };
        p
    }
}

/// An Ethernet frame with the given tags; `tags` are (TPID, TCI), outermost first.
pub fn frame_with_tags(
    tags: &[(u16, u16)],
    ethertype: u16,
    payload: &[u8],
    pad_to_60: bool,
) -> Vec<u8> {
    let first = tags.first().map_or(ethertype, |t| t.0);
    let eth = Ethernet2Header {
        source: [0x02, 0, 0x5e, 0x10, 0, 0x02],
        destination: [0x02, 0, 0x5e, 0x10, 0, 0x01],
        ether_type: EtherType(first),
    };
    let mut out = eth.to_bytes().to_vec();
    for (i, (_, tci)) in tags.iter().enumerate() {
        let next = tags.get(i + 1).map_or(ethertype, |t| t.0);
        // etherparse's SingleVlanHeader is the TCI + the next ethertype (the TPID is the
        // ethertype before it); VID 0 gives a priority tag.
        let tag = SingleVlanHeader {
            pcp: VlanPcp::try_new((tci >> 13) as u8).unwrap(),
            drop_eligible_indicator: tci & 0x1000 != 0,
            vlan_id: VlanId::try_new(tci & 0x0fff).unwrap(),
            ether_type: EtherType(next),
        };
        out.extend_from_slice(&tag.to_bytes());
    }
    out.extend_from_slice(payload);
    if pad_to_60 && out.len() < 60 {
        out.resize(60, 0);
    }
    out
}

/// An ARP request or reply between two IPv4 documentation addresses.
pub fn arp_frame(tags: &[(u16, u16)], sender: Ipv4Addr, target: Ipv4Addr, reply: bool) -> Vec<u8> {
    let mut arp = vec![0, 1, 0x08, 0x00, 6, 4, 0, if reply { 2 } else { 1 }];
    arp.extend_from_slice(&[0x02, 0, 0x5e, 0x10, 0, 0x02]);
    arp.extend_from_slice(&sender.octets());
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&target.octets());
    frame_with_tags(tags, 0x0806, &arp, true)
}

// ---------------------------------------------------------------------------------------------
// Random policies
// ---------------------------------------------------------------------------------------------

const INTERESTING_PORTS: [u16; 20] = [
    0, 1, 22, 53, 80, 104, 123, 161, 179, 443, 1023, 1024, 3306, 8000, 8080, 8100, 11112, 32768,
    65534, 65535,
];

const VLAN_POOL: [u16; 6] = [1, 10, 100, 200, 4094, 3000];

fn v4_of(a: IpAddr) -> u32 {
    match a {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(_) => 0,
    }
}

fn v6_of(a: IpAddr) -> u128 {
    match a {
        IpAddr::V6(a) => u128::from(a),
        IpAddr::V4(_) => 0,
    }
}

/// A random address inside `net`.
fn random_in(rng: &mut impl Rng, net: IpNet) -> IpAddr {
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
fn addr_near(rng: &mut impl Rng, net: IpNet) -> IpAddr {
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
fn fresh_prefix(rng: &mut impl Rng, v6: bool) -> IpNet {
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
fn random_prefix(rng: &mut impl Rng, v6: bool, existing: &[IpNet]) -> IpNet {
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

fn random_port_set(rng: &mut impl Rng) -> Vec<PortRange> {
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
fn same_endpoint(a: &Endpoint, b: &Endpoint) -> bool {
    a.address == b.address && a.protocol == b.protocol && port_set(&a.ports) == port_set(&b.ports)
}

fn port_set(ranges: &[PortRange]) -> Vec<PortRange> {
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

fn random_agreement_id(rng: &mut impl Rng) -> u32 {
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
            let ports = if !protocol.has_ports() {
                Vec::new()
            } else {
                let aliases: Vec<&PortAlias> = port_aliases
                    .iter()
                    .filter(|a| a.protocol == protocol)
                    .collect();
                match rng.gen_range(0..100) {
                    0..=19 => Vec::new(),
                    20..=44 if !aliases.is_empty() => aliases.choose(rng).unwrap().ports.clone(),
                    _ => random_port_set(rng),
                }
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

    Policy {
        organisations,
        port_aliases,
        services,
        clients,
        agreements,
        infrastructure,
    }
}

// ---------------------------------------------------------------------------------------------
// Random frames
// ---------------------------------------------------------------------------------------------

fn pick_port(rng: &mut impl Rng, ranges: &[PortRange]) -> u16 {
    let Some(r) = ranges.choose(rng) else {
        return if rng.gen_bool(0.6) {
            *INTERESTING_PORTS.choose(rng).unwrap()
        } else {
            rng.r#gen()
        };
    };
    match rng.gen_range(0..100) {
        0..=44 => rng.gen_range(r.lo..=r.hi),
        45..=59 => r.lo,
        60..=74 => r.hi,
        75..=84 => r.lo.wrapping_sub(1),
        85..=94 => r.hi.wrapping_add(1),
        _ => rng.r#gen(),
    }
}

fn ephemeral_port(rng: &mut impl Rng) -> u16 {
    match rng.gen_range(0..100) {
        0..=69 => rng.gen_range(32768..=60999),
        70..=84 => *INTERESTING_PORTS.choose(rng).unwrap(),
        _ => rng.r#gen(),
    }
}

fn random_tcp_flags(rng: &mut impl Rng) -> u8 {
    use tcp::*;
    match rng.gen_range(0..100) {
        0..=29 => SYN,
        30..=49 => SYN | ACK,
        50..=74 => ACK,
        75..=82 => PSH | ACK,
        83..=87 => FIN | ACK,
        88..=91 => RST,
        _ => rng.r#gen(),
    }
}

fn random_payload(rng: &mut impl Rng) -> Vec<u8> {
    let len = match rng.gen_range(0..100) {
        0..=29 => 0,
        30..=84 => rng.gen_range(1..64),
        _ => rng.gen_range(64..400),
    };
    (0..len).map(|_| rng.r#gen()).collect()
}

/// Protocols outside tcp/udp/sctp/icmp that are not IPv6 extension headers.
const OTHER_PROTOCOLS: [u8; 8] = [4, 41, 47, 50, 59, 89, 103, 112];

/// What a flow generator is aiming at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aim {
    Tcp,
    Udp,
    Sctp,
    Icmp,
    Other,
}

/// A stateful frame generator: it remembers recent flows (to send more packets of them, either
/// way round) and queues the later fragments of fragmented packets (sent afterwards, in random
/// order, so some arrive before their first fragment).
#[derive(Debug, Clone)]
pub struct FrameGen {
    policy: Policy,
    vlans: Vec<u16>,
    recent: Vec<Packet>,
    pending: Vec<Vec<u8>>,
}

impl FrameGen {
    /// A generator aiming at `policy`'s addresses, ports and VLANs.
    pub fn new(policy: &Policy) -> Self {
        let mut vlans: Vec<u16> = policy.agreements.iter().filter_map(|a| a.vlan).collect();
        vlans.sort_unstable();
        vlans.dedup();
        Self {
            policy: policy.clone(),
            vlans,
            recent: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// Number of queued fragments not sent yet.
    pub fn pending_fragments(&self) -> usize {
        self.pending.len()
    }

    /// The next frame.
    pub fn next(&mut self, rng: &mut impl Rng) -> Vec<u8> {
        if !self.pending.is_empty() && rng.gen_bool(0.3) {
            let i = rng.gen_range(0..self.pending.len());
            return self.pending.swap_remove(i);
        }
        match rng.gen_range(0..100) {
            0..=3 => self.non_ip(rng),
            4..=24 if !self.recent.is_empty() => {
                let mut p = self.recent.choose(rng).unwrap().clone();
                if rng.gen_bool(0.5) {
                    p = p.reversed();
                }
                if let L4::Tcp { flags, .. } = &mut p.l4 {
                    *flags = random_tcp_flags(rng);
                }
                if rng.gen_bool(0.1) {
                    p.tags = self.random_tags(rng, None);
                }
                p.payload = random_payload(rng);
                self.finish(rng, p)
            }
            _ => {
                let p = self.random_packet(rng, 0);
                if !matches!(p.l4, L4::Icmp { .. }) || rng.gen_bool(0.3) {
                    self.recent.push(p.clone());
                    if self.recent.len() > 64 {
                        let i = rng.gen_range(0..self.recent.len());
                        self.recent.swap_remove(i);
                    }
                }
                self.finish(rng, p)
            }
        }
    }

    /// Fragmenting, corruption, padding.
    fn finish(&mut self, rng: &mut impl Rng, mut p: Packet) -> Vec<u8> {
        p.pad_to_60 = rng.gen_bool(0.4);
        if rng.gen_bool(0.12) {
            p.ident = if p.is_v6() {
                *[1u32, 2, 0xdead_beef, rng.r#gen()].choose(rng).unwrap()
            } else {
                u32::from(*[1u16, 2, 0x4242, rng.r#gen()].choose(rng).unwrap())
            };
            // one fragment header per packet: drop any atomic one first
            p.exts.retain(|e| !matches!(e, Ext::Fragment { .. }));
            let piece = 8 * rng.gen_range(1..=8);
            let frag_at = rng.gen_range(0..=p.exts.len());
            let mut frames = p.fragments(piece, frag_at);
            if self.pending.len() > 48 {
                self.pending.drain(..16);
            }
            return match rng.gen_range(0..10) {
                0..=5 => {
                    let first = frames.remove(0);
                    self.pending.extend(frames);
                    first
                }
                6..=7 => {
                    self.pending.extend(frames);
                    let i = rng.gen_range(0..self.pending.len());
                    self.pending.swap_remove(i)
                }
                _ => {
                    // a lone fragment (later fragments without their head, or a first alone)
                    let i = rng.gen_range(0..frames.len());
                    frames.swap_remove(i)
                }
            };
        }
        let mut frame = p.build();
        if rng.gen_bool(0.07) {
            corrupt(rng, &p, &mut frame);
        }
        frame
    }

    fn non_ip(&mut self, rng: &mut impl Rng) -> Vec<u8> {
        let tags = self.random_tags(rng, None);
        let nets = doc_v4();
        let (na, nb) = (*nets.choose(rng).unwrap(), *nets.choose(rng).unwrap());
        let a = random_in(rng, IpNet::V4(na));
        let b = random_in(rng, IpNet::V4(nb));
        match rng.gen_range(0..4) {
            0 | 1 => arp_frame(
                &tags,
                Ipv4Addr::from(v4_of(a)),
                Ipv4Addr::from(v4_of(b)),
                rng.r#gen(),
            ),
            2 => {
                let payload: Vec<u8> = (0..rng.gen_range(0..60)).map(|_| rng.r#gen()).collect();
                let ethertype = *[0x88ccu16, 0x8809, 0x88b5, 0x0806, 0x8847]
                    .choose(rng)
                    .unwrap();
                frame_with_tags(&tags, ethertype, &payload, rng.r#gen())
            }
            _ => {
                // a tag cut short, or a lone Ethernet header
                let mut f = frame_with_tags(&tags, 0x0800, &[], false);
                if !tags.is_empty() && rng.r#gen() {
                    f.truncate(14 + rng.gen_range(0..4));
                }
                f
            }
        }
    }

    /// 0-4 VLAN tags (mostly 0-2), VIDs often one of the policy's, sometimes 0.
    fn random_tags(&self, rng: &mut impl Rng, want: Option<u16>) -> Vec<(u16, u16)> {
        let n = match rng.gen_range(0..100) {
            0..=44 => 0,
            45..=75 => 1,
            76..=96 => 2,
            97..=98 => 3,
            _ => 4,
        };
        let n = if want.is_some() && n == 0 && rng.gen_bool(0.7) {
            1
        } else {
            n
        };
        let mut tags: Vec<(u16, u16)> = (0..n)
            .map(|i| {
                let tpid = if n >= 2 && i == 0 && rng.gen_bool(0.6) {
                    0x88a8
                } else {
                    *[0x8100u16, 0x88a8, 0x9100].choose(rng).unwrap()
                };
                let vid = match rng.gen_range(0..100) {
                    0..=14 => 0,
                    15..=64 if !self.vlans.is_empty() => *self.vlans.choose(rng).unwrap(),
                    15..=39 => *VLAN_POOL.choose(rng).unwrap(),
                    _ => rng.gen_range(1..4096),
                };
                let pcp: u16 = if rng.gen_bool(0.2) {
                    rng.gen_range(0..16) << 12
                } else {
                    0
                };
                (tpid, pcp | vid)
            })
            .collect();
        if let Some(v) = want {
            if !tags.is_empty() && rng.gen_bool(0.8) {
                let i = rng.gen_range(0..tags.len());
                tags[i].1 = (tags[i].1 & 0xf000) | v;
                for t in tags.iter_mut().skip(i + 1) {
                    if rng.gen_bool(0.7) {
                        t.1 &= 0xf000; // priority tags inside
                    }
                }
            }
        }
        tags
    }

    /// An address biased towards the policy's prefixes.
    fn random_addr(&self, rng: &mut impl Rng, v6: bool) -> IpAddr {
        let fam = |n: &&IpNet| matches!(n, IpNet::V6(_)) == v6;
        let pick: Vec<IpNet> = match rng.gen_range(0..100) {
            0..=29 => self
                .policy
                .clients
                .iter()
                .flat_map(|c| c.prefixes.iter())
                .filter(fam)
                .copied()
                .collect(),
            30..=59 => self
                .policy
                .services
                .iter()
                .flat_map(|s| s.endpoints.iter().map(|e| &e.address))
                .filter(fam)
                .copied()
                .collect(),
            60..=69 => self
                .policy
                .infrastructure
                .iter()
                .map(|e| &e.prefix)
                .filter(fam)
                .copied()
                .collect(),
            _ => Vec::new(),
        };
        match pick.choose(rng) {
            Some(net) => addr_near(rng, *net),
            None => {
                let net = fresh_prefix(rng, v6);
                random_in(rng, net)
            }
        }
    }

    /// A packet of some flow: (client, service) addresses from an agreement or anywhere, either
    /// direction, a transport aimed at the endpoint's protocol and ports.
    fn random_packet(&self, rng: &mut impl Rng, depth: u8) -> Packet {
        let mut vlan_want = None;
        // Mostly approved agreements (the others only give drops).
        let approved: Vec<&Agreement> = self
            .policy
            .agreements
            .iter()
            .filter(|a| a.state == AgreementState::Approved)
            .collect();
        let chosen = if !approved.is_empty() && rng.gen_bool(0.7) {
            approved.choose(rng).copied()
        } else {
            self.policy.agreements.choose(rng)
        };
        let (client, service, service_port, aim) = match chosen {
            Some(a) if rng.gen_bool(0.8) => {
                let client = self.policy.clients.iter().find(|c| c.id == a.client);
                let service = self.policy.services.iter().find(|s| s.id == a.service);
                let ep = service.and_then(|s| s.endpoints.choose(rng));
                match (client, ep) {
                    (Some(client), Some(ep)) => {
                        let v6 = matches!(ep.address, IpNet::V6(_));
                        let cp: Vec<IpNet> = client
                            .prefixes
                            .iter()
                            .filter(|p| matches!(p, IpNet::V6(_)) == v6)
                            .copied()
                            .collect();
                        let caddr = match cp.choose(rng) {
                            Some(p) => addr_near(rng, *p),
                            None => self.random_addr(rng, v6),
                        };
                        vlan_want = a.vlan;
                        let aim = match ep.protocol {
                            Protocol::Tcp => Aim::Tcp,
                            Protocol::Udp => Aim::Udp,
                            Protocol::Sctp => Aim::Sctp,
                            Protocol::Icmp | Protocol::Icmpv6 => Aim::Icmp,
                            Protocol::Any => {
                                *[Aim::Tcp, Aim::Udp, Aim::Sctp, Aim::Icmp, Aim::Other]
                                    .choose(rng)
                                    .unwrap()
                            }
                        };
                        (
                            caddr,
                            addr_near(rng, ep.address),
                            pick_port(rng, &ep.ports),
                            aim,
                        )
                    }
                    _ => self.random_pair(rng),
                }
            }
            _ => self.random_pair(rng),
        };
        let aim = if rng.gen_bool(0.1) {
            *[Aim::Tcp, Aim::Udp, Aim::Sctp, Aim::Icmp, Aim::Other]
                .choose(rng)
                .unwrap()
        } else {
            aim
        };
        let client_port = ephemeral_port(rng);
        let forward = rng.gen_bool(0.6);
        let (src, dst, sport, dport) = if forward {
            (client, service, client_port, service_port)
        } else {
            (service, client, service_port, client_port)
        };
        let v6 = src.is_ipv6();

        let mut p = match aim {
            Aim::Tcp => {
                let mut p = Packet::tcp(src, dst, sport, dport, random_tcp_flags(rng));
                if rng.gen_bool(0.2) {
                    if let L4::Tcp { options, .. } = &mut p.l4 {
                        let words = rng.gen_range(1..=10);
                        *options = vec![1; 4 * words]; // NOPs
                        options[0] = 2; // MSS
                        options[1] = 4;
                        options[2] = 0x05;
                        options[3] = 0xb4;
                    }
                }
                p
            }
            Aim::Udp => Packet::udp(src, dst, sport, dport),
            Aim::Sctp => Packet::sctp(src, dst, sport, dport),
            Aim::Other => {
                let wrong_icmp = if v6 { 1 } else { 58 };
                let proto = if rng.gen_bool(0.2) {
                    wrong_icmp
                } else {
                    *OTHER_PROTOCOLS.choose(rng).unwrap()
                };
                Packet::raw(src, dst, proto)
            }
            Aim::Icmp => self.random_icmp(rng, src, dst, depth),
        };
        if !matches!(p.l4, L4::Icmp { .. }) || p.payload.is_empty() {
            p.payload = random_payload(rng);
        }
        if depth == 0 {
            p.tags = self.random_tags(rng, vlan_want);
        }
        if v6 {
            p.exts = random_exts(rng);
        } else if rng.gen_bool(0.2) {
            p.v4_options = random_v4_options(rng);
        }
        p
    }

    fn random_pair(&self, rng: &mut impl Rng) -> (IpAddr, IpAddr, u16, Aim) {
        let v6 = rng.gen_bool(0.4);
        let aim = *[Aim::Tcp, Aim::Udp, Aim::Sctp, Aim::Icmp, Aim::Other]
            .choose(rng)
            .unwrap();
        (
            self.random_addr(rng, v6),
            self.random_addr(rng, v6),
            pick_port(rng, &[]),
            aim,
        )
    }

    fn random_icmp(&self, rng: &mut impl Rng, src: IpAddr, dst: IpAddr, depth: u8) -> Packet {
        let v6 = src.is_ipv6();
        let id = *[1u16, 2, 0x1234, rng.r#gen()].choose(rng).unwrap();
        match rng.gen_range(0..100) {
            0..=29 => Packet::echo(src, dst, true, id),
            30..=49 => Packet::echo(src, dst, false, id),
            50..=59 => {
                let ty = if v6 {
                    *[130u8, 131, 132, 138, 139, 200, 255].choose(rng).unwrap()
                } else {
                    *[5u8, 9, 10, 13, 14, 17, 42, 255].choose(rng).unwrap()
                };
                Packet::icmp(src, dst, ty, 0, rng.r#gen())
            }
            60..=69 if v6 => {
                let ty = rng.gen_range(133..=137);
                let mut p = Packet::icmp(src, dst, ty, 0, [0; 4]);
                p.payload = (0..16).map(|_| rng.r#gen()).collect();
                p
            }
            _ if depth == 0 => self.random_icmp_error(rng, src, dst),
            _ => Packet::echo(src, dst, true, id),
        }
    }

    /// An ICMP error quoting a packet the error's destination (usually) sent.
    fn random_icmp_error(&self, rng: &mut impl Rng, src: IpAddr, dst: IpAddr) -> Packet {
        let v6 = src.is_ipv6();
        let mut inner = self.random_packet(rng, 1);
        // keep the quoted packet in the outer family
        if inner.is_v6() != v6 {
            inner.src = self.random_addr(rng, v6);
            inner.dst = self.random_addr(rng, v6);
            inner.exts.clear();
            inner.v4_options.clear();
            if let L4::Icmp { ty, .. } = &mut inner.l4 {
                *ty = if v6 { 128 } else { 8 };
            }
        }
        // the error usually goes back to the quoted packet's source
        let (outer_src, outer_dst) = match rng.gen_range(0..10) {
            0..=4 => (inner.dst, inner.src),
            5..=7 => (src, inner.src),
            _ => (src, dst),
        };
        if v6 && rng.gen_bool(0.1) {
            // quoted first or later fragment
            let offset = if rng.r#gen() {
                0
            } else {
                rng.gen_range(1..100)
            };
            let at = rng.gen_range(0..=inner.exts.len());
            inner.exts.insert(
                at,
                Ext::Fragment {
                    offset,
                    more: true,
                    id: 7,
                },
            );
        }
        let mut quoted = inner.ip_bytes();
        let l4_at = inner.l4_offset() - inner.l3_offset();
        let keep = match rng.gen_range(0..100) {
            0..=54 => l4_at + 8,
            55..=74 => quoted.len(),
            75..=84 => l4_at + rng.gen_range(0..8),
            _ => l4_at + rng.gen_range(8..=28),
        };
        quoted.truncate(keep.min(quoted.len()));
        if rng.gen_bool(0.03) && !v6 && !quoted.is_empty() {
            quoted[0] = 0x40 | rng.gen_range(0..5); // IHL < 5
        }
        let ty = if v6 {
            rng.gen_range(1..=4)
        } else {
            *[3u8, 3, 11, 12].choose(rng).unwrap()
        };
        let code = if !v6 && ty == 3 {
            rng.gen_range(0..=4)
        } else {
            0
        };
        let mut p = Packet::icmp_error(outer_src, outer_dst, ty, code, quoted);
        if let L4::Icmp { rest, .. } = &mut p.l4 {
            if (v6 && ty == 2) || (!v6 && ty == 3 && code == 4) {
                *rest = [0, 0, 0x05, 0xdc];
            }
        }
        p
    }
}

fn random_exts(rng: &mut impl Rng) -> Vec<Ext> {
    let n = match rng.gen_range(0..100) {
        0..=54 => 0,
        55..=64 => 1,
        65..=72 => 2,
        73..=84 => rng.gen_range(3..=7),
        85..=90 => 8,
        91..=96 => 9,
        _ => 10,
    };
    let mut atomic_used = false;
    (0..n)
        .map(|_| {
            let size = if rng.gen_bool(0.8) {
                0
            } else {
                rng.gen_range(1..=3)
            };
            match rng.gen_range(0..100) {
                0..=24 => Ext::HopByHop(size),
                25..=49 => Ext::Routing(size),
                50..=74 => Ext::DestOpts(size),
                75..=94 => Ext::Ah(*[0u8, 1, 2, 4].choose(rng).unwrap()),
                _ if !atomic_used => {
                    atomic_used = true;
                    Ext::Fragment {
                        offset: 0,
                        more: false,
                        id: rng.r#gen(),
                    }
                }
                _ => Ext::DestOpts(size),
            }
        })
        .collect()
}

fn random_v4_options(rng: &mut impl Rng) -> Vec<u8> {
    let words = rng.gen_range(1..=10);
    let len = 4 * words;
    match rng.gen_range(0..3) {
        0 => vec![1; len], // NOPs
        1 => {
            // record route, then end of list
            let mut o = vec![0u8; len];
            let rr = (len - 1).min(39) as u8;
            o[0] = 7;
            o[1] = rr - (rr - 3) % 4;
            o[2] = 4;
            o
        }
        _ => (0..len).map(|_| rng.r#gen()).collect(),
    }
}

/// Breaks a length field or cuts the frame (keeps at least 14 bytes).
fn corrupt(rng: &mut impl Rng, p: &Packet, frame: &mut Vec<u8>) {
    let l3 = p.l3_offset();
    let l4 = p.l4_offset();
    match rng.gen_range(0..6) {
        0 | 1 => {
            if frame.len() > 14 {
                let n = rng.gen_range(14..frame.len());
                frame.truncate(n);
            }
        }
        2 if !p.is_v6() => {
            let header = 20 + p.v4_options.len();
            let total = u16::from_be_bytes([frame[l3 + 2], frame[l3 + 3]]);
            let new = match rng.gen_range(0..4) {
                0 => rng.gen_range(0..header as u16),
                1 => total.saturating_add(rng.gen_range(1..64)),
                2 => total
                    .saturating_sub(rng.gen_range(1..16))
                    .max(header as u16),
                _ => rng.r#gen(),
            };
            frame[l3 + 2..l3 + 4].copy_from_slice(&new.to_be_bytes());
        }
        3 if !p.is_v6() => {
            frame[l3] = 0x40 | *[0u8, 1, 4, 6, 15].choose(rng).unwrap();
        }
        2 | 3 => {
            let pl = u16::from_be_bytes([frame[l3 + 4], frame[l3 + 5]]);
            let new = if rng.r#gen() {
                pl.saturating_add(rng.gen_range(1..64))
            } else {
                rng.r#gen()
            };
            frame[l3 + 4..l3 + 6].copy_from_slice(&new.to_be_bytes());
        }
        4 if matches!(p.l4, L4::Tcp { .. }) && l4 + 13 < frame.len() => {
            frame[l4 + 12] = (rng.gen_range(0u8..16) << 4) | (frame[l4 + 12] & 0x0f);
        }
        _ => {
            if p.is_v6() && !p.exts.is_empty() && l3 + 41 < frame.len() {
                frame[l3 + 41] = rng.r#gen(); // first extension header's length byte
            } else if frame.len() > 14 {
                let n = rng.gen_range(14..frame.len());
                frame.truncate(n);
            }
        }
    }
}

/// One random frame for `policy` (a fresh `FrameGen`: no flow or fragment memory; use
/// `FrameGen` for sequences).
pub fn random_frame(rng: &mut impl Rng, policy: &Policy) -> Vec<u8> {
    FrameGen::new(policy).next(rng)
}

/// `n` frames from one `FrameGen`, so flows recur and later fragments follow first ones.
pub fn random_frames(rng: &mut impl Rng, policy: &Policy, n: usize) -> Vec<Vec<u8>> {
    let mut g = FrameGen::new(policy);
    (0..n).map(|_| g.next(rng)).collect()
}

/// Flips, overwrites, appends or truncates a few bytes (headers most often). A frame of at least
/// 14 bytes stays at least 14 bytes long.
pub fn mutate(rng: &mut impl Rng, frame: &mut Vec<u8>) {
    if frame.is_empty() {
        return;
    }
    for _ in 0..rng.gen_range(1..=3) {
        let len = frame.len();
        let at = if rng.gen_bool(0.75) && len > 12 {
            rng.gen_range(12..len.min(100))
        } else {
            rng.gen_range(0..len)
        };
        match rng.gen_range(0..10) {
            0..=4 => frame[at] ^= rng.gen_range(1..=255u8),
            5..=6 => {
                frame[at] = *[
                    0u8, 0xff, 0x05, 0x45, 0x81, 0x86, 0x2c, 0x3c, 0x3a, 0x06, 0x11,
                ]
                .choose(rng)
                .unwrap()
            }
            7 => {
                if len > 14 {
                    let n = rng.gen_range(14..len);
                    frame.truncate(n);
                }
            }
            8 => frame.extend((0..rng.gen_range(1..16)).map(|_| rng.r#gen::<u8>())),
            _ => {
                // swap two header bytes
                let b = rng.gen_range(0..len);
                frame.swap(at, b);
            }
        }
    }
}

//! The frame builder: Ethernet, VLAN tags, IPv4/IPv6 with extension headers, transports, ICMP.

use super::*;

/// IPv6 extension headers.
#[allow(
    missing_docs,
    reason = "the fields are the header fields of their names"
)]
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
#[allow(
    missing_docs,
    reason = "the fields are the header fields of their names"
)]
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
#[allow(missing_docs, reason = "each is the flag's name")]
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

pub(super) fn addr_bytes_v4(a: IpAddr) -> [u8; 4] {
    match a {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(_) => [0; 4],
    }
}

pub(super) fn addr_bytes_v6(a: IpAddr) -> [u8; 16] {
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
    #[must_use]
    pub fn vlan(mut self, tpid: u16, vid: u16) -> Self {
        self.tags.push((tpid, vid & 0x0fff));
        self
    }

    /// Sets the payload.
    #[must_use]
    pub fn with_payload(mut self, payload: Vec<u8>) -> Self {
        self.payload = payload;
        self
    }

    /// Sets the IPv6 extension headers.
    #[must_use]
    pub fn with_exts(mut self, exts: Vec<Ext>) -> Self {
        self.exts = exts;
        self
    }

    /// Sets the IPv4 options.
    #[must_use]
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

    /// A TCP or UDP checksum over this packet's pseudo-header and payload: `v4` and `v6` are
    /// the header's own calculations (TCP and UDP headers are different types with the
    /// same methods), called with the addresses and payload of the packet's IP version.
    fn pseudo_checksum(
        &self,
        v4: impl FnOnce(
            [u8; 4],
            [u8; 4],
            &[u8],
        ) -> Result<u16, etherparse::err::ValueTooBigError<usize>>,
        v6: impl FnOnce(
            [u8; 16],
            [u8; 16],
            &[u8],
        ) -> Result<u16, etherparse::err::ValueTooBigError<usize>>,
    ) -> u16 {
        if self.is_v6() {
            v6(
                addr_bytes_v6(self.src),
                addr_bytes_v6(self.dst),
                &self.payload,
            )
        } else {
            v4(
                addr_bytes_v4(self.src),
                addr_bytes_v4(self.dst),
                &self.payload,
            )
        }
        .unwrap()
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
                h.checksum = self.pseudo_checksum(
                    |s, d, p| h.calc_checksum_ipv4_raw(s, d, p),
                    |s, d, p| h.calc_checksum_ipv6_raw(s, d, p),
                );
                out.extend_from_slice(&h.to_bytes());
            }
            L4::Udp { sport, dport } => {
                let mut h = UdpHeader {
                    source_port: *sport,
                    destination_port: *dport,
                    length: (8 + self.payload.len()) as u16,
                    checksum: 0,
                };
                h.checksum = self.pseudo_checksum(
                    |s, d, p| h.calc_checksum_ipv4_raw(s, d, p),
                    |s, d, p| h.calc_checksum_ipv6_raw(s, d, p),
                );
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
    #[must_use]
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
            other @ L4::Raw { .. } => other.clone(),
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

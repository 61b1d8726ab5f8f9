//! Reading frames the way the rules describe them: Ethernet and VLAN tags, IPv4 and IPv6
//! with extension headers, transports, and the packet an ICMP error quotes.

use super::*;

pub(super) const ETH_P_IPV4: u16 = 0x0800;
pub(super) const ETH_P_IPV6: u16 = 0x86dd;
pub(super) const VLAN_TPIDS: [u16; 3] = [0x8100, 0x88a8, 0x9100];

pub(super) const IPPROTO_ICMP: u8 = 1;
pub(super) const IPPROTO_TCP: u8 = 6;
pub(super) const IPPROTO_UDP: u8 = 17;
pub(super) const IPPROTO_ICMPV6: u8 = 58;
pub(super) const IPPROTO_SCTP: u8 = 132;

pub(super) const EXT_HOP_BY_HOP: u8 = 0;
pub(super) const EXT_ROUTING: u8 = 43;
pub(super) const EXT_FRAGMENT: u8 = 44;
pub(super) const EXT_AH: u8 = 51;
pub(super) const EXT_DEST_OPTS: u8 = 60;
pub(super) const MAX_EXT_HEADERS: usize = 8;

pub(super) const TCP_SYN: u8 = 0x02;
pub(super) const TCP_ACK: u8 = 0x10;

pub(super) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(super) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(super) fn v4_addr(b: &[u8], at: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]))
}

pub(super) fn v6_addr(b: &[u8], at: usize) -> IpAddr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    IpAddr::V6(Ipv6Addr::from(a))
}

pub(super) fn is_ext_header(next: u8) -> bool {
    matches!(
        next,
        EXT_HOP_BY_HOP | EXT_ROUTING | EXT_DEST_OPTS | EXT_FRAGMENT | EXT_AH
    )
}

/// Length of an IPv6 extension header from its first bytes.
pub(super) fn ext_header_len(kind: u8, hdr: &[u8]) -> usize {
    match kind {
        EXT_FRAGMENT => 8,
        EXT_AH => (usize::from(hdr[1]) + 2) * 4,
        _ => (usize::from(hdr[1]) + 1) * 8,
    }
}

pub(super) fn is_icmp(v6: bool, protocol: u8) -> bool {
    if v6 {
        protocol == IPPROTO_ICMPV6
    } else {
        protocol == IPPROTO_ICMP
    }
}

pub(super) fn is_icmp_error(v6: bool, ty: u8) -> bool {
    if v6 {
        (1..=4).contains(&ty)
    } else {
        matches!(ty, 3 | 11 | 12)
    }
}

pub(super) fn is_echo_request(v6: bool, ty: u8) -> bool {
    if v6 { ty == 128 } else { ty == 8 }
}

pub(super) fn is_echo_reply(v6: bool, ty: u8) -> bool {
    if v6 { ty == 129 } else { ty == 0 }
}

pub(super) fn icmp_class(v6: bool, ty: u8) -> IcmpClass {
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
pub(super) fn protocol_covers(p: Protocol, v6: bool, protocol: u8) -> bool {
    match p {
        Protocol::Any => true,
        Protocol::Tcp => protocol == IPPROTO_TCP,
        Protocol::Udp => protocol == IPPROTO_UDP,
        Protocol::Sctp => protocol == IPPROTO_SCTP,
        Protocol::Icmp => !v6 && protocol == IPPROTO_ICMP,
        Protocol::Icmpv6 => v6 && protocol == IPPROTO_ICMPV6,
    }
}

pub(super) fn has_ports(protocol: u8) -> bool {
    matches!(protocol, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP)
}

/// Endpoint check for one side: address, protocol, ICMP restrictions, port.
pub(super) fn endpoint_matches(ep: &Endpoint, t: &Tuple, addr: IpAddr, port: u16) -> bool {
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
pub(super) struct Ip<'a> {
    pub(super) vlan: u16,
    pub(super) v6: bool,
    pub(super) src: IpAddr,
    pub(super) dst: IpAddr,
    /// Final protocol (IPv6: the last next-header).
    pub(super) protocol: u8,
    /// Fragment key and whether this is a later fragment (offset != 0).
    pub(super) fragment: Option<(FragmentKey, bool)>,
    /// From the transport header to the L3 end.
    pub(super) transport: &'a [u8],
}

pub(super) enum Parsed<'a> {
    NonIp,
    Ip(Ip<'a>),
}

/// Ethernet, VLAN tags and the IP header(s).
pub(super) fn parse(frame: &[u8]) -> Result<Parsed<'_>, &'static str> {
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

pub(super) fn parse_ipv4(vlan: u16, ip: &[u8]) -> Result<Ip<'_>, &'static str> {
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

pub(super) fn parse_ipv6(vlan: u16, ip: &[u8]) -> Result<Ip<'_>, &'static str> {
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
pub(super) struct Transport {
    pub(super) sport: u16,
    pub(super) dport: u16,
    /// TCP flags (0 for other protocols).
    pub(super) tcp_flags: u8,
    /// ICMP type of the packet's own family.
    pub(super) icmp_type: Option<u8>,
}

/// Transport header check; `Err(())` when too short.
pub(super) fn parse_transport(v6: bool, protocol: u8, t: &[u8]) -> Result<Transport, ()> {
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
pub(super) fn parse_quoted(vlan: u16, v6: bool, q: &[u8]) -> Option<Tuple> {
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

//! Synthesised frames for `explain`: Ethernet, an optional VLAN tag, IPv4 or IPv6, and a
//! minimal transport header (checksums are not computed: the filter does not read them).

use std::net::IpAddr;

/// Errors of the synthesiser.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// Source and destination families differ.
    #[error("source {src} and destination {dst} are of different address families")]
    MixedFamilies {
        /// Source.
        src: IpAddr,
        /// Destination.
        dst: IpAddr,
    },
    /// Unknown protocol name.
    #[error("unknown protocol {0:?} (tcp, udp, sctp, icmp, icmpv6, or a number 0-255)")]
    Protocol(String),
    /// VLAN out of range.
    #[error("VLAN {0} is outside 1-4094")]
    Vlan(u16),
}

/// What to build.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number.
    pub protocol: u8,
    /// Source port (TCP/UDP/SCTP), or the ICMP echo identifier.
    pub sport: u16,
    /// Destination port (TCP/UDP/SCTP), or the ICMP type.
    pub dport: u16,
    /// VLAN id to tag with.
    pub vlan: Option<u16>,
    /// TCP flags byte.
    pub tcp_flags: u8,
    /// IPv6 only: this many 8-byte extension headers (hop-by-hop, then destination options).
    pub ext_headers: usize,
}

/// Parses a protocol name or number.
pub fn protocol_number(name: &str, v6: bool) -> Result<u8, SynthError> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "tcp" => 6,
        "udp" => 17,
        "sctp" => 132,
        "icmp" if !v6 => 1,
        "icmp" | "icmpv6" => 58,
        other => other
            .parse()
            .map_err(|_| SynthError::Protocol(name.to_owned()))?,
    })
}

/// Builds the frame.
pub fn build(spec: &Spec) -> Result<Vec<u8>, SynthError> {
    let mut l4 = match spec.protocol {
        6 => {
            let mut t = vec![0u8; 20];
            t[0..2].copy_from_slice(&spec.sport.to_be_bytes());
            t[2..4].copy_from_slice(&spec.dport.to_be_bytes());
            t[12] = 5 << 4;
            t[13] = spec.tcp_flags;
            t[14..16].copy_from_slice(&64240u16.to_be_bytes());
            t
        }
        17 => {
            let mut t = vec![0u8; 8];
            t[0..2].copy_from_slice(&spec.sport.to_be_bytes());
            t[2..4].copy_from_slice(&spec.dport.to_be_bytes());
            t[4..6].copy_from_slice(&8u16.to_be_bytes());
            t
        }
        132 => {
            let mut t = vec![0u8; 12];
            t[0..2].copy_from_slice(&spec.sport.to_be_bytes());
            t[2..4].copy_from_slice(&spec.dport.to_be_bytes());
            t
        }
        1 | 58 => {
            // dport carries the ICMP type; sport the echo identifier.
            let mut t = vec![0u8; 8];
            t[0] = spec.dport as u8;
            t[4..6].copy_from_slice(&spec.sport.to_be_bytes());
            t
        }
        _ => vec![0u8; 8],
    };
    let mut ip = match (spec.src, spec.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut h = vec![0u8; 20];
            h[0] = 0x45;
            h[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
            h[8] = 64;
            h[9] = spec.protocol;
            h[12..16].copy_from_slice(&s.octets());
            h[16..20].copy_from_slice(&d.octets());
            h
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut h = vec![0u8; 40];
            h[0] = 0x60;
            h[7] = 64;
            h[8..24].copy_from_slice(&s.octets());
            h[24..40].copy_from_slice(&d.octets());
            // Chain: 40-byte header, then ext headers (0 = hop-by-hop, 60 = destination
            // options), each 8 bytes with padding options, then the transport header.
            let mut next = spec.protocol;
            let mut exts = Vec::new();
            for i in (0..spec.ext_headers).rev() {
                let mut e = vec![next, 0, 1, 4, 0, 0, 0, 0];
                next = if i == 0 { 0 } else { 60 };
                e.append(&mut exts);
                exts = e;
            }
            h[6] = next;
            h[4..6].copy_from_slice(&((exts.len() + l4.len()) as u16).to_be_bytes());
            h.append(&mut exts);
            h
        }
        (src, dst) => return Err(SynthError::MixedFamilies { src, dst }),
    };
    let ethertype: u16 = if spec.src.is_ipv4() { 0x0800 } else { 0x86dd };
    let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
    if let Some(v) = spec.vlan {
        if !(1..=4094).contains(&v) {
            return Err(SynthError::Vlan(v));
        }
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.append(&mut ip);
    f.append(&mut l4);
    while f.len() < 60 {
        f.push(0);
    }
    Ok(f)
}

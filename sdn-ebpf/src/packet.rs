//! Frame parsing: Ethernet, up to two VLAN tags, IPv4 (options), IPv6 (up to eight extension
//! headers), the transport header, and the packet quoted inside an ICMP error.
//!
//! Every read goes through `at`, which checks the frame end; semantic limits (IP total length,
//! IPv6 payload length) are checked separately against `l3_end`.

use aya_ebpf::{
    helpers::generated::{bpf_xdp_get_buff_len, bpf_xdp_load_bytes},
    programs::XdpContext,
};
use core::ffi::c_void;
use sdn_common::{MAX_EXT_HEADERS, family, reason};

use crate::classify::Tuple;

pub(crate) use crate::read::{PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP};
use crate::read::{at, be16_at, u8_at, word_at};

/// ICMP classes (`icmp_class`).
pub(crate) const ICMP_NONE: u8 = 0;
pub(crate) const ICMP_ECHO_REQUEST: u8 = 1;
pub(crate) const ICMP_ECHO_REPLY: u8 = 2;
pub(crate) const ICMP_OTHER: u8 = 3;
pub(crate) const ICMP_ND: u8 = 4;
pub(crate) const ICMP_ERROR: u8 = 5;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum FragState {
    None,
    First,
    Later,
}

/// What the parser found. For later fragments only the addresses, VLAN and fragment fields
/// are meaningful.
#[derive(Clone, Copy)]
pub(crate) struct Parsed {
    pub(crate) family: u8,
    pub(crate) protocol: u8,
    pub(crate) vlan: u16,
    pub(crate) src: [u32; 4],
    pub(crate) dst: [u32; 4],
    /// TCP/UDP/SCTP source port; ICMP echo identifier.
    pub(crate) sport: u16,
    /// TCP/UDP/SCTP destination port; ICMP type.
    pub(crate) dport: u16,
    pub(crate) tcp_flags: u8,
    pub(crate) icmp_type: u8,
    pub(crate) frag: FragState,
    pub(crate) frag_id: u32,
    pub(crate) frag_protocol: u8,
    /// A transport-level drop found while parsing; kept so a first fragment that drops is
    /// still remembered in the fragment table.
    pub(crate) early_reason: Option<u32>,
    /// For ICMP errors: where the quoted packet starts, and the end of the IP packet.
    pub(crate) quoted_off: u32,
    pub(crate) l3_end: u32,
}

impl Parsed {
    #[inline(always)]
    pub(crate) const fn is_tcp(&self) -> bool {
        self.protocol == PROTO_TCP
    }
}

#[inline(always)]
const fn is_vlan(ethertype: u16) -> bool {
    ethertype == 0x8100 || ethertype == 0x88a8 || ethertype == 0x9100
}

#[inline(always)]
const fn is_ext(nh: u8) -> bool {
    nh == 0 || nh == 43 || nh == 60 || nh == 44 || nh == 51
}

/// The ICMP class of a parsed packet (`ICMP_NONE` when it is not ICMP of its family).
#[inline(always)]
pub(crate) fn icmp_class(p: &Parsed) -> u8 {
    icmp_class_of(p.family, p.protocol, p.icmp_type)
}

#[inline(always)]
pub(crate) const fn icmp_class_of(fam: u8, protocol: u8, icmp_type: u8) -> u8 {
    if fam == family::V4 && protocol == PROTO_ICMP {
        match icmp_type {
            8 => ICMP_ECHO_REQUEST,
            0 => ICMP_ECHO_REPLY,
            3 | 11 | 12 => ICMP_ERROR,
            _ => ICMP_OTHER,
        }
    } else if fam == family::V6 && protocol == PROTO_ICMPV6 {
        match icmp_type {
            128 => ICMP_ECHO_REQUEST,
            129 => ICMP_ECHO_REPLY,
            1..=4 => ICMP_ERROR,
            133..=137 => ICMP_ND,
            _ => ICMP_OTHER,
        }
    } else {
        ICMP_NONE
    }
}

/// Minimum transport header length (0: no transport header is looked at).
#[inline(always)]
const fn transport_min(fam: u8, protocol: u8) -> usize {
    match protocol {
        PROTO_TCP => 20,
        PROTO_UDP => 8,
        PROTO_SCTP => 12,
        PROTO_ICMP if fam == family::V4 => 8,
        PROTO_ICMPV6 if fam == family::V6 => 8,
        _ => 0,
    }
}

/// Result of walking an IPv6 extension-header chain.
struct V6Chain {
    off: usize,
    next: u8,
    frag: FragState,
    frag_id: u32,
    frag_protocol: u8,
    /// Extension headers walked.
    headers: u32,
}

/// Copies `N` bytes at any offset out of the frame. Used wherever the offset comes out of
/// a header walk: a helper argument needs no precise bounds, so the verifier can merge the
/// walk's many paths (direct packet access would make every offset precise).
#[inline(always)]
fn load<const N: usize>(ctx: &XdpContext, off: usize) -> Option<[u8; N]> {
    let mut buf = Aligned([0u8; N]);
    // SAFETY: the helper writes at most N bytes into buf and fails past the frame end.
    let r = unsafe {
        bpf_xdp_load_bytes(
            ctx.ctx,
            off as u32,
            buf.0.as_mut_ptr() as *mut c_void,
            N as u32,
        )
    };
    if r == 0 { Some(buf.0) } else { None }
}

/// An 8-byte aligned buffer: the BPF backend zeroes and copies it with word stores instead
/// of byte loops (it cannot assume unaligned access).
#[repr(C, align(8))]
struct Aligned<T>(T);

#[inline(always)]
const fn be16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

/// Walks at most `MAX_EXT_HEADERS` extension headers starting at `off` with next header `nh`.
/// Stops at a later fragment's fragment header (what follows is payload, not headers).
#[inline(always)]
fn walk_v6(ctx: &XdpContext, mut off: usize, l3_end: usize, mut nh: u8) -> Result<V6Chain, u32> {
    let mut chain = V6Chain {
        off,
        next: nh,
        frag: FragState::None,
        frag_id: 0,
        frag_protocol: 0,
        headers: 0,
    };
    let mut i = 0;
    while i < MAX_EXT_HEADERS {
        if !is_ext(nh) {
            break;
        }
        if off + 8 > l3_end {
            return Err(reason::TRUNCATED);
        }
        let h = load::<8>(ctx, off).ok_or(reason::TRUNCATED)?;
        let next = h[0];
        let hlen = match nh {
            44 => 8,
            51 => (h[1] as usize + 2) * 4,
            _ => (h[1] as usize + 1) * 8,
        };
        if off + hlen > l3_end {
            return Err(reason::TRUNCATED);
        }
        chain.headers += 1;
        if nh == 44 {
            let fo = be16(&h, 2);
            chain.frag_id = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
            chain.frag_protocol = next;
            if fo >> 3 != 0 {
                chain.frag = FragState::Later;
                chain.off = off + 8;
                chain.next = next;
                return Ok(chain);
            }
            if fo & 1 != 0 {
                chain.frag = FragState::First;
            }
        }
        off += hlen;
        nh = next;
        i += 1;
    }
    if is_ext(nh) {
        return Err(reason::TOO_MANY_EXTENSION_HEADERS);
    }
    chain.off = off;
    chain.next = nh;
    Ok(chain)
}

/// The whole frame's length. An attached program (not frags-aware) always sees a linear
/// frame, where this is `data_end - data`; a test run puts the tail of a frame larger than a
/// page in fragments, and this counts them too, so replay judges jumbo frames as the
/// attached program does.
#[inline(always)]
pub(crate) fn frame_len(ctx: &XdpContext) -> usize {
    // SAFETY: `ctx.ctx` is the context the kernel handed this program.
    unsafe { bpf_xdp_get_buff_len(ctx.ctx) as usize }
}

pub(crate) fn parse(ctx: &XdpContext) -> Result<Parsed, u32> {
    let start = ctx.data();
    let end = ctx.data_end();
    let eth = at(start, end, 0, 14).ok_or(reason::TRUNCATED)?;
    let mut ethertype = be16_at(eth, 12);
    let mut off = 14usize;
    let mut vlan = 0u16;
    let mut i = 0;
    while i < sdn_common::MAX_VLAN_TAGS {
        if !is_vlan(ethertype) {
            break;
        }
        let tag = at(start, end, off, 4).ok_or(reason::TRUNCATED)?;
        let vid = be16_at(tag, 0) & 0x0fff;
        if vid != 0 {
            vlan = vid;
        }
        ethertype = be16_at(tag, 2);
        off += 4;
        i += 1;
    }
    if is_vlan(ethertype) {
        return Err(reason::TOO_MANY_VLAN_TAGS);
    }

    let mut p = Parsed {
        family: 0,
        protocol: 0,
        vlan,
        src: [0; 4],
        dst: [0; 4],
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        icmp_type: 0,
        frag: FragState::None,
        frag_id: 0,
        frag_protocol: 0,
        early_reason: None,
        quoted_off: 0,
        l3_end: 0,
    };
    let frame_len = frame_len(ctx);
    // Whether the transport offset came out of an extension-header walk (see `load`).
    let mut indirect = false;
    let l4;
    let l3_end;
    match ethertype {
        0x0800 => {
            let ip = at(start, end, off, 20).ok_or(reason::TRUNCATED)?;
            let ihl = (u8_at(ip, 0) & 0x0f) as usize;
            if ihl < 5 {
                return Err(reason::MALFORMED_IPV4);
            }
            let hlen = ihl * 4;
            if off + hlen > frame_len {
                return Err(reason::TRUNCATED);
            }
            let total = be16_at(ip, 2) as usize;
            if total < hlen || off + total > frame_len {
                return Err(reason::MALFORMED_IPV4);
            }
            l3_end = off + total;
            p.family = family::V4;
            p.protocol = u8_at(ip, 9);
            p.src[0] = word_at(ip, 12);
            p.dst[0] = word_at(ip, 16);
            let fo = be16_at(ip, 6);
            p.frag_id = be16_at(ip, 4) as u32;
            p.frag_protocol = p.protocol;
            if fo & 0x1fff != 0 {
                p.frag = FragState::Later;
                return Ok(p);
            }
            if fo & 0x2000 != 0 {
                p.frag = FragState::First;
            }
            l4 = off + hlen;
        }
        0x86dd => {
            let ip = at(start, end, off, 40).ok_or(reason::TRUNCATED)?;
            let payload = be16_at(ip, 4) as usize;
            if off + 40 + payload > frame_len {
                return Err(reason::MALFORMED_IPV6);
            }
            l3_end = off + 40 + payload;
            p.family = family::V6;
            let mut w = 0;
            while w < 4 {
                p.src[w] = word_at(ip, 8 + 4 * w);
                p.dst[w] = word_at(ip, 24 + 4 * w);
                w += 1;
            }
            let chain = walk_v6(ctx, off + 40, l3_end, u8_at(ip, 6))?;
            indirect = chain.headers != 0;
            p.protocol = chain.next;
            p.frag = chain.frag;
            p.frag_id = chain.frag_id;
            p.frag_protocol = chain.frag_protocol;
            if p.frag == FragState::Later {
                return Ok(p);
            }
            l4 = chain.off;
        }
        _ => return Err(reason::NON_IP),
    }

    // Transport header, judged against the IP length (a first fragment may be tiny).
    let need = transport_min(p.family, p.protocol);
    if need == 0 {
        return Ok(p);
    }
    let short = if p.frag == FragState::First {
        reason::TINY_FRAGMENT
    } else {
        reason::MALFORMED_TRANSPORT
    };
    if l4 + need > l3_end {
        p.early_reason = Some(short);
        return Ok(p);
    }
    // The first 16 bytes are enough for every field we read (TCP flags are byte 13).
    let mut t = Aligned([0u8; 16]);
    if indirect {
        let got = if need >= 16 {
            load::<16>(ctx, l4)
        } else {
            load::<8>(ctx, l4).map(widen)
        };
        match got {
            Some(b) => t.0 = b,
            None => {
                p.early_reason = Some(short);
                return Ok(p);
            }
        }
    } else {
        let Some(b) = at(start, end, l4, need) else {
            p.early_reason = Some(short);
            return Ok(p);
        };
        // Only the bytes the fields below use.
        let mut i = 0;
        while i < 6 {
            t.0[i] = u8_at(b, i);
            i += 1;
        }
        if need >= 16 {
            t.0[12] = u8_at(b, 12);
            t.0[13] = u8_at(b, 13);
        }
    }
    let t = t.0;
    match p.protocol {
        PROTO_TCP => {
            let doff = (t[12] >> 4) as usize;
            if doff < 5 || l4 + doff * 4 > l3_end {
                p.early_reason = Some(short);
                return Ok(p);
            }
            p.sport = be16(&t, 0);
            p.dport = be16(&t, 2);
            p.tcp_flags = t[13];
        }
        PROTO_UDP | PROTO_SCTP => {
            p.sport = be16(&t, 0);
            p.dport = be16(&t, 2);
        }
        _ => {
            // ICMP / ICMPv6 of the right family.
            p.icmp_type = t[0];
            p.dport = p.icmp_type as u16;
            let class = icmp_class(&p);
            if class == ICMP_ECHO_REQUEST || class == ICMP_ECHO_REPLY {
                p.sport = be16(&t, 4);
            }
            if class == ICMP_ERROR {
                // Parsed by the classifier program (`quoted`), which has its own budget.
                p.quoted_off = (l4 + 8) as u32;
                p.l3_end = l3_end as u32;
            }
        }
    }
    Ok(p)
}

#[inline(always)]
fn widen(b: [u8; 8]) -> [u8; 16] {
    let mut t = Aligned([0u8; 16]);
    let mut i = 0;
    while i < 8 {
        t.0[i] = b[i];
        i += 1;
    }
    t.0
}

/// The packet quoted in an ICMP error: its IP header and first 8 transport bytes. `None`
/// when it cannot be read (the error then drops as malformed).
#[inline(always)]
pub(crate) fn quoted(ctx: &XdpContext, p: &Parsed) -> Option<Tuple> {
    let fam = p.family;
    let off = p.quoted_off as usize;
    let l3_end = p.l3_end as usize;
    let mut t = Tuple {
        family: fam,
        protocol: 0,
        vlan: p.vlan,
        src: [0; 4],
        dst: [0; 4],
        sport: 0,
        dport: 0,
        icmp: ICMP_NONE,
    };
    let l4;
    if fam == family::V4 {
        if off + 20 > l3_end {
            return None;
        }
        let ip = load::<20>(ctx, off)?;
        let ihl = (ip[0] & 0x0f) as usize;
        if ihl < 5 {
            return None;
        }
        if be16(&ip, 6) & 0x1fff != 0 {
            return None;
        }
        t.protocol = ip[9];
        t.src[0] = u32::from_ne_bytes([ip[12], ip[13], ip[14], ip[15]]);
        t.dst[0] = u32::from_ne_bytes([ip[16], ip[17], ip[18], ip[19]]);
        l4 = off + ihl * 4;
    } else {
        if off + 40 > l3_end {
            return None;
        }
        let ip = load::<40>(ctx, off)?;
        let mut w = 0;
        while w < 4 {
            let a = 8 + 4 * w;
            let b = 24 + 4 * w;
            t.src[w] = u32::from_ne_bytes([ip[a], ip[a + 1], ip[a + 2], ip[a + 3]]);
            t.dst[w] = u32::from_ne_bytes([ip[b], ip[b + 1], ip[b + 2], ip[b + 3]]);
            w += 1;
        }
        let chain = walk_v6(ctx, off + 40, l3_end, ip[6]).ok()?;
        if chain.frag == FragState::Later {
            return None;
        }
        t.protocol = chain.next;
        l4 = chain.off;
    }
    if l4 > l3_end {
        return None;
    }
    if transport_min(fam, t.protocol) == 0 {
        return Some(t);
    }
    if l4 + 8 > l3_end {
        return None;
    }
    let tp = load::<8>(ctx, l4)?;
    match t.protocol {
        PROTO_TCP | PROTO_UDP | PROTO_SCTP => {
            t.sport = be16(&tp, 0);
            t.dport = be16(&tp, 2);
        }
        _ => {
            t.icmp = match icmp_class_of(fam, t.protocol, tp[0]) {
                ICMP_ECHO_REQUEST => ICMP_ECHO_REQUEST,
                ICMP_ECHO_REPLY => ICMP_ECHO_REPLY,
                _ => ICMP_OTHER,
            };
        }
    }
    Some(t)
}

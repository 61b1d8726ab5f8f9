//! The established-flow fast path for the common case: IPv4 TCP or UDP, untagged or with one
//! 802.1Q tag, no IP options, not a fragment, lengths valid. It only builds the compact flow
//! key; anything it does not recognise goes the general way (which applies every check).

use aya_ebpf::programs::XdpContext;
use sdn_common::FlowKey4;

use crate::read::{PROTO_TCP, PROTO_UDP, be16_at, word_at};

/// The flow key of a plain IPv4 TCP/UDP packet, and whether it is a SYN without ACK.
#[inline(always)]
pub(crate) fn plain_ipv4(ctx: &XdpContext) -> Option<(FlowKey4, bool)> {
    let start = ctx.data();
    let end = ctx.data_end();
    // Ethernet + IPv4 (20) + the 20 bytes of a TCP header (UDP checks its own 8 below).
    if start + 14 + 20 + 8 > end {
        return None;
    }
    let eth = start as *const u8;
    let mut vlan = 0u16;
    let ip = match be16_at(eth, 12) {
        0x0800 => start + 14,
        0x8100 => {
            if start + 18 + 20 + 8 > end || be16_at(eth, 16) != 0x0800 {
                return None;
            }
            vlan = be16_at(eth, 14) & 0x0fff;
            start + 18
        }
        _ => return None,
    };
    if ip + 28 > end {
        return None;
    }
    let h = ip as *const u8;
    // SAFETY: 28 bytes from ip were checked above.
    let (vihl, proto) = unsafe { (*h, *h.add(9)) };
    if vihl != 0x45 || be16_at(h, 6) & 0x3fff != 0 {
        return None;
    }
    // Frame-end checks before the IP-length checks: the verifier needs them, and LLVM drops
    // a frame-end check that a dominating IP-length check implies.
    let mut syn_only = false;
    let need = if proto == PROTO_TCP {
        if ip + 40 > end {
            return None;
        }
        // SAFETY: 40 bytes from ip were checked just above.
        let (doff, fl) = unsafe { (*h.add(32) >> 4, *h.add(33)) };
        syn_only = fl & 0x12 == 0x02;
        if doff < 5 {
            return None;
        }
        20 + (doff as usize) * 4
    } else if proto == PROTO_UDP {
        28
    } else {
        return None;
    };
    let total = be16_at(h, 2) as usize;
    // Compared as lengths: 6.1's verifier loses the bound of a byte-swapped value and
    // refuses to add it to a packet pointer.
    if total < need || total > end - ip {
        return None;
    }
    Some((
        FlowKey4 {
            src: word_at(h, 12),
            dst: word_at(h, 16),
            src_port: be16_at(h, 20),
            dst_port: be16_at(h, 22),
            vlan,
            protocol: proto,
            _pad: 0,
        },
        syn_only,
    ))
}

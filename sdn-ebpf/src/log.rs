//! Drop logging with aya-log, for operators debugging a policy (`sdn-loader log`). Only called
//! when `flags::LOG_DROPS` is set, so the hot path pays one flag test; never inlined, so the
//! logging code stays out of the hot path's instruction stream.

use aya_ebpf::programs::XdpContext;
use aya_log_ebpf::info;
use sdn_common::{family, reason};

use crate::packet::Parsed;

/// A drop before the IP header could be read.
#[inline(never)]
pub(crate) fn frame_drop(ctx: &XdpContext, why: u32, len: u64) {
    info!(ctx, "drop {}: frame of {} bytes", reason::name(why), len);
}

/// A drop of a parsed packet, with its addresses and ports.
#[inline(never)]
pub(crate) fn packet_drop(ctx: &XdpContext, p: &Parsed, why: u32) {
    if p.family == family::V4 {
        info!(
            ctx,
            "drop {}: proto {} {:i}:{} -> {:i}:{} vlan {}",
            reason::name(why),
            p.protocol,
            u32::from_be(p.src[0]),
            p.sport,
            u32::from_be(p.dst[0]),
            p.dport,
            p.vlan
        );
    } else {
        let src: [u8; 16] = words_to_bytes(&p.src);
        let dst: [u8; 16] = words_to_bytes(&p.dst);
        info!(
            ctx,
            "drop {}: proto {} [{:i}]:{} -> [{:i}]:{} vlan {}",
            reason::name(why),
            p.protocol,
            src,
            p.sport,
            dst,
            p.dport,
            p.vlan
        );
    }
}

#[inline(always)]
fn words_to_bytes(w: &[u32; 4]) -> [u8; 16] {
    let mut b = [0u8; 16];
    let mut i = 0;
    while i < 4 {
        let x = w[i].to_ne_bytes();
        b[4 * i] = x[0];
        b[4 * i + 1] = x[1];
        b[4 * i + 2] = x[2];
        b[4 * i + 3] = x[3];
        i += 1;
    }
    b
}

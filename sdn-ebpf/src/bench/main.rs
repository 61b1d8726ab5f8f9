//! Benchmark programs, in their own object so that the filter's object holds the filter only.
//! Never attached to a router: the loader loads this object only when a benchmark asks for
//! one of these programs, and then shares the filter's configuration and IPv4 flow table by
//! pin (`maps/shared.rs`), so `sdn_flow_floor` looks flows up where the filter put them.
//!
//! - `sdn_pass`: a bare XDP_PASS, the floor every benchmark ratio is taken against;
//! - `sdn_flow_floor`: the fast path's parse and one flow-table lookup, then XDP_PASS;
//! - `sdn_gen`: the packet generator run with live frames (BPF_PROG_RUN).
#![no_std]
#![no_main]

// The filter's own modules, compiled into this object too: the flow floor must parse and
// look up exactly as the filter does. Parts only the filter uses are dead code here.
#[path = "../fastpath.rs"]
mod fastpath;
#[allow(
    dead_code,
    reason = "this object uses only the lookup, the filter also inserts"
)]
#[path = "../flowtable.rs"]
mod flowtable;
#[path = "../maps/shared.rs"]
mod maps;
#[path = "../object.rs"]
mod object;
#[allow(
    dead_code,
    reason = "the fast path needs two of the readers the general parser uses"
)]
#[path = "../read.rs"]
mod read;

use aya_ebpf::{macros::xdp, programs::XdpContext};
use sdn_common::{action, generator};

use crate::maps::{config, now_ns};

/// Benchmark reference: only the fast path's parse and one flow-table lookup. The floor of
/// any design that keeps flows in a BPF hash table. A hit passes and anything else is dropped,
/// so a benchmark can tell that it timed a hit (the flow must be in the filter's table).
#[xdp]
pub fn sdn_flow_floor(ctx: XdpContext) -> u32 {
    if let Some((key, _)) = fastpath::plain_ipv4(&ctx) {
        if let Some(cfg) = config() {
            if flowtable::lookup(&key, cfg, now_ns()).status == flowtable::HIT {
                return action::PASS;
            }
        }
    }
    action::DROP
}

/// A bare XDP_PASS program: the floor that benchmarks measure next to `sdn_filter`.
#[xdp]
pub fn sdn_pass(_ctx: XdpContext) -> u32 {
    action::PASS
}

/// Settings of the benchmark generator (`sdn_common::generator` indexes).
#[aya_ebpf::macros::map]
static SDN_GEN: aya_ebpf::maps::Array<u32> =
    aya_ebpf::maps::Array::with_max_entries(generator::ENTRIES, 0);

/// The generator's template headers (Ethernet, IP, transport).
#[aya_ebpf::macros::map]
static SDN_GEN_HEADER: aya_ebpf::maps::Array<[u8; generator::HEADER_BYTES]> =
    aya_ebpf::maps::Array::with_max_entries(1, 0);

/// Benchmark packet generator for BPF_PROG_RUN with live frames: restores the template's
/// headers (live frames recycle pages without re-initialising them, so a frame may come back
/// with the headers another namespace's stack wrote into it), gives the frame a random source
/// port out of `FLOWS` ports (so one template makes many flows), and transmits it (XDP_TX)
/// out of the interface named in the test run's context. Never attached.
#[xdp]
pub fn sdn_gen(ctx: XdpContext) -> u32 {
    let setting = |i: u32| SDN_GEN.get(i).copied().unwrap_or(0);
    let flows = setting(generator::FLOWS);
    let port = if flows > 1 {
        // SAFETY: a helper without arguments.
        let random = unsafe { aya_ebpf::helpers::bpf_get_prandom_u32() };
        Some(setting(generator::FIRST_PORT).wrapping_add(random % flows) as u16)
    } else {
        None
    };
    match setting(generator::L4_OFFSET) {
        34 => rewrite::<34, 54>(&ctx, port),
        54 => rewrite::<54, 74>(&ctx, port),
        _ => {}
    }
    action::TX
}

/// Restores the first `LEN` bytes from `SDN_GEN_HEADER` and writes `port` as the source port
/// of the transport header at offset `OFF`.
#[inline(always)]
fn rewrite<const OFF: usize, const LEN: usize>(ctx: &XdpContext, port: Option<u16>) {
    if let Some(header) = SDN_GEN_HEADER.get_ptr_mut(0) {
        // SAFETY: the helper reads LEN <= HEADER_BYTES bytes of the map value and fails
        // (changing nothing) past the frame's end.
        unsafe {
            aya_ebpf::helpers::generated::bpf_xdp_store_bytes(
                ctx.ctx,
                0,
                header as *mut core::ffi::c_void,
                LEN as u32,
            )
        };
    }
    let Some(port) = port else { return };
    let start = ctx.data();
    if start + OFF + 2 <= ctx.data_end() {
        let p = (start + OFF) as *mut [u8; 2];
        // SAFETY: bounds checked against data_end just above.
        unsafe { *p = port.to_be_bytes() };
    }
}

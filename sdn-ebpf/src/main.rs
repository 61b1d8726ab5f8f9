//! The sdn-filter XDP program: enforces per-agreement allow lists and counts per agreement.
//!
//! One pass per frame: parse (VLAN, IPv4/IPv6, extension headers, transport), then in order:
//! later fragments (fragment table), neighbour discovery, ICMP errors (judged by the quoted
//! packet), the flow table (O(1) for established flows), the infrastructure allow list, and
//! the agreement rules (prefix classes + rule table) for a flow's first packet. Every packet
//! ends with exactly one reason, counted in `SDN_STATS`.
#![no_std]
#![no_main]

mod classify;
mod fastpath;
mod flowtable;
mod log;
mod maps;
mod object;
mod packet;
mod read;

use aya_ebpf::{macros::xdp, programs::XdpContext};
use sdn_common::{
    Config, FlowKey, FlowKey4, FlowValue, FragmentKey, LastDecision, action, direction, family,
    flags, kind, reason,
};

use crate::{
    classify::{Judged, Tuple, judge, judge_infra},
    maps::{
        JUMP_CLASSIFY, JUMP_LOG, SDN_COUNTERS, SDN_FLOWS, SDN_FRAGMENTS, SDN_JUMP, SDN_LAST,
        SDN_SCRATCH, SDN_STATS, Scratch, config, now_ns,
    },
    packet::{FragState, Parsed, icmp_class, parse},
};

/// The outcome of one frame.
#[derive(Clone, Copy)]
struct Decision {
    reason: u32,
    agreement: u32,
    slot: u32,
    /// `kind::*` of the agreement match (FORWARD/REPLY), or 0.
    kind: u8,
    transaction: u8,
}

impl Decision {
    const fn plain(reason: u32) -> Self {
        Self {
            reason,
            agreement: 0,
            slot: 0,
            kind: 0,
            transaction: 0,
        }
    }
}

/// The attached program: parsing, fragments, and the flow table. Anything that needs the
/// policy (a flow's first packet, an ICMP error) continues in `sdn_classify` by tail call.
#[xdp]
pub fn sdn_filter(ctx: XdpContext) -> u32 {
    let Some(cfg) = config() else {
        return action::DROP;
    };
    let len = packet::frame_len(&ctx) as u64;
    let now = now_ns();
    // Established plain IPv4 TCP/UDP: one compact flow lookup, no general parse.
    let mut known = None;
    if cfg.flags & flags::NO_FLOW_LOOKUP == 0 {
        if let Some((key, syn_only)) = fastpath::plain_ipv4(&ctx) {
            match use_flow4(&key, now, cfg, syn_only) {
                // A remembered denial that must be logged goes the general way, which logs.
                Lookup::Hit(d) if reason::passes(d.reason) || cfg.flags & flags::LOG_DROPS == 0 => {
                    return finish(&d, len, cfg.flags);
                }
                Lookup::Hit(_) => {}
                Lookup::Miss { existed } => known = Some(existed),
            }
        }
    }
    let d = match general_path(&ctx, cfg, len, now, known) {
        Some(d) => d,
        None => {
            // SAFETY: a tail call either does not return or fails; on failure we fail closed.
            unsafe { SDN_JUMP.tail_call(&ctx, JUMP_CLASSIFY) };
            Decision::plain(reason::INTERNAL)
        }
    };
    finish(&d, len, cfg.flags)
}

#[inline(always)]
fn finish(d: &Decision, len: u64, cfg_flags: u32) -> u32 {
    account(d, len, cfg_flags);
    if reason::passes(d.reason) {
        action::PASS
    } else {
        action::DROP
    }
}

/// A flow-table lookup's outcome.
enum Lookup {
    Hit(Decision),
    /// Judge again; `existed` when the flow was in the table (so it is no new transaction).
    Miss {
        existed: bool,
    },
}

/// Looks an IPv4 flow up: a hit when its entry is fresh and of the policy generation in force.
/// A remembered denial is a hit too (the verdict of a tuple under one policy never changes).
#[inline(always)]
fn use_flow4(key: &FlowKey4, now: u64, cfg: &Config, syn_only: bool) -> Lookup {
    let l = flowtable::lookup(key, cfg, now);
    match l.status {
        flowtable::HIT => Lookup::Hit(hit(l.kind, l.agreement, l.slot, syn_only)),
        s => Lookup::Miss {
            existed: s == flowtable::KNOWN,
        },
    }
}

/// The decision of a flow-table hit.
#[inline(always)]
fn hit(k: u8, agreement: u32, slot: u32, syn_only: bool) -> Decision {
    match k {
        kind::DROP => Decision::plain(reason::NO_AGREEMENT),
        kind::INFRA => Decision::plain(reason::INFRASTRUCTURE),
        kind::REPLY if syn_only => Decision::plain(reason::REPLY_SYN),
        k => Decision {
            reason: if k == kind::FORWARD {
                reason::ESTABLISHED_FORWARD
            } else {
                reason::ESTABLISHED_REPLY
            },
            agreement,
            slot,
            kind: k,
            transaction: 0,
        },
    }
}

/// Uses an IPv6 flow-table entry: a hit when it is fresh and of the policy generation in force.
#[inline(always)]
fn use_flow(e: *mut FlowValue, now: u64, cfg: &Config, generation: u32, syn_only: bool) -> Lookup {
    // SAFETY: LRU entries may be recycled under us; we only read and refresh the timestamp,
    // and a torn read at worst makes us judge the flow again.
    let e = unsafe { &mut *e };
    if now.saturating_sub(e.last_seen) > cfg.flow_timeout {
        return Lookup::Miss { existed: false };
    }
    if e.generation != generation {
        // Decided under an older policy: judge again (a revoked agreement stops at once).
        return Lookup::Miss { existed: true };
    }
    if now.wrapping_sub(e.last_seen) > cfg.hz {
        e.last_seen = now;
    }
    Lookup::Hit(hit(e.kind, e.agreement, e.slot, syn_only))
}

/// The classifier: judges the packet that `sdn_filter` parsed into `SDN_SCRATCH`.
#[xdp]
pub fn sdn_classify(ctx: XdpContext) -> u32 {
    let Some(cfg) = config() else {
        return action::DROP;
    };
    let Some(s) = SDN_SCRATCH.get_ptr_mut(0) else {
        return action::DROP;
    };
    // SAFETY: per-CPU scratch written by sdn_filter on this CPU just before the tail call.
    let s: &mut Scratch = unsafe { &mut *s };
    let d = classify_first(&ctx, s, cfg);
    if s.parsed.frag == FragState::First {
        remember_fragment(&s.parsed, &d, cfg.active_generation, s.now);
    }
    if cfg.flags & flags::LOG_DROPS != 0 && !reason::passes(d.reason) {
        log_drop(&ctx, s, d.reason, true);
    }
    account(&d, s.len, cfg.flags);
    if reason::passes(d.reason) {
        action::PASS
    } else {
        action::DROP
    }
}

/// Hands a drop to `sdn_log` (its own program, so that the logging code's stack does not add
/// to ours), which counts and logs it. Returns only when the tail call fails; the caller then
/// counts and drops the packet itself.
#[inline(always)]
fn log_drop(ctx: &XdpContext, s: &mut Scratch, why: u32, parsed: bool) {
    s.log_reason = why;
    s.log_parsed = parsed as u8;
    // SAFETY: see sdn_filter's tail call.
    unsafe { SDN_JUMP.tail_call(ctx, JUMP_LOG) };
}

/// Counts and logs the drop described in `SDN_SCRATCH`, and drops the packet. (Drops never
/// count to an agreement, so the reason is all there is to count.)
#[xdp]
pub fn sdn_log(ctx: XdpContext) -> u32 {
    if let Some(s) = SDN_SCRATCH.get_ptr(0) {
        // SAFETY: per-CPU scratch written just before the tail call.
        let s: &Scratch = unsafe { &*s };
        account(
            &Decision::plain(s.log_reason),
            s.len,
            config().map_or(0, |c| c.flags),
        );
        if s.log_parsed != 0 {
            log::packet_drop(&ctx, &s.parsed, s.log_reason);
        } else {
            log::frame_drop(&ctx, s.log_reason, s.len);
        }
    }
    action::DROP
}

#[inline(always)]
fn account(d: &Decision, len: u64, cfg_flags: u32) {
    if let Some(s) = SDN_STATS.get_ptr_mut(d.reason) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *s += 1 };
    }
    if d.kind == kind::FORWARD || d.kind == kind::REPLY {
        if let Some(c) = SDN_COUNTERS.get_ptr_mut(d.slot) {
            // SAFETY: per-CPU slot, see above.
            let c = unsafe { &mut *c };
            if d.kind == kind::FORWARD {
                c.forward_packets += 1;
                c.forward_bytes += len;
            } else {
                c.reply_packets += 1;
                c.reply_bytes += len;
            }
            c.transactions += d.transaction as u64;
        }
    }
    if cfg_flags & flags::RECORD_LAST != 0 {
        if let Some(l) = SDN_LAST.get_ptr_mut(0) {
            // SAFETY: a valid map value pointer; RECORD_LAST is set only on private test
            // instances, which run one frame at a time.
            let l: &mut LastDecision = unsafe { &mut *l };
            l.sequence += 1;
            l.action = if reason::passes(d.reason) {
                action::PASS
            } else {
                action::DROP
            };
            l.reason = d.reason;
            l.agreement = d.agreement;
            l.has_agreement = (d.kind == kind::FORWARD || d.kind == kind::REPLY) as u8;
            l.direction = match d.kind {
                kind::FORWARD => direction::FORWARD,
                kind::REPLY => direction::REPLY,
                _ => direction::NONE,
            };
            l.transaction = d.transaction;
        }
    }
}

#[inline(always)]
fn from_judged(j: &Judged, reason_forward: u32, reason_reply: u32) -> Decision {
    Decision {
        reason: if j.kind == kind::FORWARD {
            reason_forward
        } else {
            reason_reply
        },
        agreement: j.agreement,
        slot: j.slot,
        kind: j.kind,
        transaction: 0,
    }
}

/// Everything that does not need the policy. `None`: continue in the classifier (the
/// scratch space has been filled). `known`: the fast path already looked the flow up.
#[inline(always)]
fn general_path(
    ctx: &XdpContext,
    cfg: &Config,
    len: u64,
    now: u64,
    known: Option<bool>,
) -> Option<Decision> {
    let p = match parse(ctx) {
        Ok(p) => p,
        Err(r) => {
            if cfg.flags & flags::LOG_DROPS != 0 && !reason::passes(r) {
                if let Some(s) = SDN_SCRATCH.get_ptr_mut(0) {
                    // SAFETY: per-CPU scratch; nothing else uses it during this packet.
                    let s = unsafe { &mut *s };
                    s.len = len;
                    log_drop(ctx, s, r, false);
                }
            }
            return Some(Decision::plain(r));
        }
    };
    let generation = cfg.active_generation;
    let d = if p.frag == FragState::Later {
        later_fragment(&p, generation, now, cfg.fragment_timeout)
    } else {
        let d = established(&p, cfg, now, len, known)?;
        if p.frag == FragState::First {
            remember_fragment(&p, &d, generation, now);
        }
        d
    };
    if cfg.flags & flags::LOG_DROPS != 0 && !reason::passes(d.reason) {
        if let Some(s) = SDN_SCRATCH.get_ptr_mut(0) {
            // SAFETY: per-CPU scratch; nothing else uses it during this packet.
            let s = unsafe { &mut *s };
            s.parsed = p;
            s.len = len;
            log_drop(ctx, s, d.reason, true);
        }
    }
    Some(d)
}

fn fragment_key(p: &Parsed) -> FragmentKey {
    FragmentKey {
        src: p.src,
        dst: p.dst,
        id: p.frag_id,
        vlan: p.vlan,
        protocol: p.frag_protocol,
        family: p.family,
    }
}

fn later_fragment(p: &Parsed, generation: u32, now: u64, timeout: u64) -> Decision {
    let key = fragment_key(p);
    // SAFETY: the value is copied out at once; a concurrent update can at worst give a stale
    // verdict of the same fragment train.
    let Some(v) = (unsafe { SDN_FRAGMENTS.get(&key) }).copied() else {
        return Decision::plain(reason::FRAGMENT_WITHOUT_HEAD);
    };
    if now.saturating_sub(v.last_seen) > timeout {
        return Decision::plain(reason::FRAGMENT_WITHOUT_HEAD);
    }
    if v.kind == kind::DROP || v.generation != generation {
        // A head judged under an older policy is not trusted: the policy may have revoked it.
        return Decision::plain(if v.kind == kind::DROP {
            reason::FRAGMENT_OF_DROPPED
        } else {
            reason::FRAGMENT_WITHOUT_HEAD
        });
    }
    if v.kind == kind::INFRA {
        return Decision::plain(reason::FRAGMENT);
    }
    Decision {
        reason: reason::FRAGMENT,
        agreement: v.agreement,
        slot: v.slot,
        kind: v.kind,
        transaction: 0,
    }
}

fn remember_fragment(p: &Parsed, d: &Decision, generation: u32, now: u64) {
    let key = fragment_key(p);
    let value = FlowValue {
        last_seen: now,
        generation,
        agreement: d.agreement,
        slot: d.slot,
        kind: if !reason::passes(d.reason) {
            kind::DROP
        } else if d.kind == 0 {
            kind::INFRA
        } else {
            d.kind
        },
        _pad0: 0,
        _pad1: 0,
    };
    // A full LRU evicts the oldest head; failure leaves later fragments without head (drop).
    let _ = SDN_FRAGMENTS.insert(&key, &value, 0);
}

/// Early drops, neighbour discovery and IPv6 flow-table hits; `None` hands the packet to the
/// classifier through the scratch space. IPv4 flows the fast path did not take are looked up
/// there: the IPv4 table's lookup is inline code, which the verifier would check here once
/// per way through the parser (on Linux 6.1 that took the program near the verifier's limit).
#[inline(always)]
fn established(
    p: &Parsed,
    cfg: &Config,
    now: u64,
    len: u64,
    known: Option<bool>,
) -> Option<Decision> {
    if let Some(r) = p.early_reason {
        return Some(Decision::plain(r));
    }
    let icmp = icmp_class(p);
    if icmp == packet::ICMP_ND {
        return Some(Decision::plain(reason::NEIGHBOUR_DISCOVERY));
    }
    // IPv6 flows: one hash lookup (a single call for the verifier), here, which spares an
    // established flow the tail call.
    let mut known = known;
    if known.is_none()
        && p.family == family::V6
        && icmp != packet::ICMP_ERROR
        && cfg.flags & flags::NO_FLOW_LOOKUP == 0
    {
        let syn_only = p.is_tcp() && p.tcp_flags & 0x12 == 0x02;
        known = Some(match SDN_FLOWS.get_ptr_mut(&flow_key(p)) {
            Some(e) => match use_flow(e, now, cfg, cfg.active_generation, syn_only) {
                Lookup::Hit(d) => return Some(d),
                Lookup::Miss { existed } => existed,
            },
            None => false,
        });
    }
    let s = SDN_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: per-CPU scratch; the classifier reads it on this CPU right after.
    let s = unsafe { &mut *s };
    s.parsed = *p;
    s.now = now;
    s.len = len;
    s.looked = known.is_some() as u8;
    s.existed = known.unwrap_or(false) as u8;
    s.icmp = icmp;
    None
}

#[inline(always)]
fn flow_key(p: &Parsed) -> FlowKey {
    FlowKey {
        src: p.src,
        dst: p.dst,
        src_port: p.sport,
        dst_port: p.dport,
        vlan: p.vlan,
        protocol: p.protocol,
        family: p.family,
    }
}

#[inline(always)]
fn flow_key4(p: &Parsed) -> FlowKey4 {
    FlowKey4 {
        src: p.src[0],
        dst: p.dst[0],
        src_port: p.sport,
        dst_port: p.dport,
        vlan: p.vlan,
        protocol: p.protocol,
        _pad: 0,
    }
}

/// The general path's flow-table lookup, then for a first packet (or an ICMP error) the
/// policy; remembers passing flows and IPv4 TCP/UDP denials.
#[inline(always)]
fn classify_first(ctx: &XdpContext, s: &Scratch, cfg: &Config) -> Decision {
    let p = &s.parsed;
    // The map entries of the policy in force are those of the counter's parity.
    let generation = cfg.active_generation & 1;
    if s.icmp == packet::ICMP_ERROR {
        return icmp_error(packet::quoted(ctx, p), generation);
    }
    let syn_only = p.is_tcp() && p.tcp_flags & 0x12 == 0x02;
    let mut existed = s.existed != 0;
    // IPv4 flows that the fast path did not look up (`sdn_filter` looks IPv6 flows up itself).
    if s.looked == 0 && p.family == family::V4 && cfg.flags & flags::NO_FLOW_LOOKUP == 0 {
        match use_flow4(&flow_key4(p), s.now, cfg, syn_only) {
            Lookup::Hit(d) => return d,
            Lookup::Miss { existed: x } => existed = x,
        }
    }
    let t = Tuple::of(p, s.icmp);
    let mut d = if judge_infra(&t, generation) {
        Decision::plain(reason::INFRASTRUCTURE)
    } else {
        match judge(&t, generation) {
            Some(j) if j.kind == kind::REPLY && syn_only => Decision::plain(reason::REPLY_SYN),
            Some(j) => from_judged(&j, reason::FORWARD, reason::REPLY),
            None => Decision::plain(reason::NO_AGREEMENT),
        }
    };
    let passes = reason::passes(d.reason);
    // Remember IPv4 TCP/UDP denials too: their flow key holds everything the verdict depends
    // on, so a denied flow's later packets cost one lookup. (A reply SYN is refused by its
    // flags, not its tuple, and other protocols' keys do not hold every judged field.)
    let remember_denial = d.reason == reason::NO_AGREEMENT
        && p.family == family::V4
        && (p.protocol == packet::PROTO_TCP || p.protocol == packet::PROTO_UDP);
    if !passes && !remember_denial {
        return d;
    }
    if d.kind == kind::FORWARD && !existed && (!p.is_tcp() || syn_only) {
        d.transaction = 1;
    }
    let k = if !passes {
        kind::DROP
    } else if d.kind == 0 {
        kind::INFRA
    } else {
        d.kind
    };
    if p.family == family::V4 {
        let agreement_slot = ((d.slot as u64) << 32) | d.agreement as u64;
        flowtable::remember(&flow_key4(p), cfg, s.now, k, agreement_slot);
    } else {
        let value = FlowValue {
            last_seen: s.now,
            generation: cfg.active_generation,
            agreement: d.agreement,
            slot: d.slot,
            kind: k,
            _pad0: 0,
            _pad1: 0,
        };
        // If the table cannot take the flow (it is an LRU, so this is rare), the packet still
        // passes: the next packet is judged again.
        let _ = SDN_FLOWS.insert(&flow_key(p), &value, 0);
    }
    d
}

fn icmp_error(quoted: Option<Tuple>, generation: u32) -> Decision {
    let Some(q) = quoted else {
        return Decision::plain(reason::ICMP_ERROR_MALFORMED);
    };
    match judge(&q, generation) {
        Some(j) => {
            // The error travels opposite to the packet it quotes.
            let mut d = from_judged(&j, reason::ICMP_ERROR, reason::ICMP_ERROR);
            d.kind = if j.kind == kind::FORWARD {
                kind::REPLY
            } else {
                kind::FORWARD
            };
            d
        }
        None => Decision::plain(reason::ICMP_ERROR_NO_AGREEMENT),
    }
}

//! Policy lookups: address -> class (exact-match hashes, one probe per distinct prefix length,
//! longest first), then (client class, endpoint class, VLAN, protocol) -> port intervals.
//!
//! The loader flattens the policy so that the class of the longest matching prefix stands for
//! every prefix containing the address, and the first existing rule key in the order
//! (VLAN, proto), (VLAN, any), (none, proto), (none, any) already holds every agreement that
//! applies, with overlapping port ranges resolved to the lowest agreement id.

use sdn_common::{
    INFRA_CLASS, MAX_PREFIX_LENGTHS, MAX_RULE_CHUNKS, PROTO_ANY, PrefixKey, RULES_PER_VALUE,
    RuleEntry, RuleKey, RuleValue, VLAN_ANY, family, kind, prefix_lengths_index, table,
};

use crate::{
    maps::{SDN_PREFIX_LENGTHS, SDN_PREFIXES, SDN_RULES},
    packet::{
        ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_OTHER, PROTO_SCTP, PROTO_TCP, PROTO_UDP, Parsed,
    },
};

/// What the rules look at: a packet's (or a quoted packet's) addresses, protocol and ports.
#[derive(Clone, Copy)]
pub(crate) struct Tuple {
    pub(crate) family: u8,
    pub(crate) protocol: u8,
    pub(crate) vlan: u16,
    pub(crate) src: [u32; 4],
    pub(crate) dst: [u32; 4],
    pub(crate) sport: u16,
    pub(crate) dport: u16,
    /// `ICMP_*` class, `ICMP_NONE` for non-ICMP.
    pub(crate) icmp: u8,
}

impl Tuple {
    #[inline(always)]
    pub(crate) fn of(p: &Parsed, icmp: u8) -> Self {
        Self {
            family: p.family,
            protocol: p.protocol,
            vlan: p.vlan,
            src: p.src,
            dst: p.dst,
            sport: p.sport,
            dport: p.dport,
            icmp,
        }
    }

    #[inline(always)]
    const fn has_ports(&self) -> bool {
        self.protocol == PROTO_TCP || self.protocol == PROTO_UDP || self.protocol == PROTO_SCTP
    }
}

/// An agreement match.
#[derive(Clone, Copy)]
pub(crate) struct Judged {
    pub(crate) agreement: u32,
    pub(crate) slot: u32,
    /// `kind::FORWARD` or `kind::REPLY`.
    pub(crate) kind: u8,
}

/// A rule match packed into one scalar, `slot + 1` in the high half and the agreement id in
/// the low half; 0 means no match. Functions return scalars with one canonical "miss" value
/// so that the verifier sees every miss path as the same state and prunes them.
#[inline(always)]
const fn pack(e: &RuleEntry) -> u64 {
    ((e.slot as u64 + 1) << 32) | e.agreement as u64
}

/// The class of the longest prefix of `table` containing `addr`; 0 when none (classes start
/// at 1).
#[inline(always)]
fn class_of(generation: u32, tbl: u8, fam: u8, addr: &[u32; 4]) -> u32 {
    let Some(lens) = SDN_PREFIX_LENGTHS.get(prefix_lengths_index(generation, tbl, fam)) else {
        return 0;
    };
    let n = lens.count as usize;
    let mut key = PrefixKey {
        generation: generation as u8,
        table: tbl,
        family: fam,
        prefix_len: 0,
        addr: [0; 4],
    };
    let mut i = 0;
    while i < MAX_PREFIX_LENGTHS {
        if i >= n {
            break;
        }
        let l = &lens.lengths[i];
        key.prefix_len = l.len;
        key.addr = [
            addr[0] & l.mask[0],
            addr[1] & l.mask[1],
            addr[2] & l.mask[2],
            addr[3] & l.mask[3],
        ];
        // SAFETY: the value is copied out at once.
        if let Some(v) = unsafe { SDN_PREFIXES.get(&key) } {
            return v.class;
        }
        i += 1;
    }
    0
}

/// The interval of one rule value holding `port` (unused entries are empty intervals).
#[inline(never)]
fn scan(v: &RuleValue, port: u32) -> u64 {
    let mut i = 0;
    while i < RULES_PER_VALUE {
        let e = &v.entries[i];
        if e.port_lo as u32 <= port && port <= e.port_hi as u32 {
            return pack(e);
        }
        i += 1;
    }
    0
}

/// Finds the most specific existing rule key, in the order (VLAN, protocol), (VLAN, any),
/// (none, protocol), (none, any), and returns the packed interval holding `port`.
/// `protocol == PROTO_ANY` asks for `any` rules only.
#[inline(never)]
fn match_rules(base: &RuleKey, port: u32) -> u64 {
    let mut key = *base;
    let vlan = base.vlan;
    let protocol = base.protocol;
    let mut first: Option<&RuleValue> = None;
    let mut step = 0;
    while step < 4 {
        let v = if step < 2 { vlan } else { VLAN_ANY };
        let pr = if step % 2 == 0 { protocol } else { PROTO_ANY };
        step += 1;
        if (step <= 2 && vlan == VLAN_ANY) || (step % 2 == 1 && protocol == PROTO_ANY) {
            continue;
        }
        key.vlan = v;
        key.protocol = pr;
        // SAFETY: read-only use of a value the loader replaces only by whole-entry updates.
        if let Some(v) = unsafe { SDN_RULES.get(&key) } {
            first = Some(v);
            break;
        }
    }
    let Some(v) = first else {
        return 0;
    };
    let hit = scan(v, port);
    if hit != 0 || v.more == 0 {
        return hit;
    }
    let mut chunk = 1;
    while chunk < MAX_RULE_CHUNKS {
        key.chunk = chunk;
        // SAFETY: as above.
        let Some(v) = (unsafe { SDN_RULES.get(&key) }) else {
            return 0;
        };
        let hit = scan(v, port);
        if hit != 0 {
            return hit;
        }
        if v.more == 0 {
            return 0;
        }
        chunk += 1;
    }
    0
}

/// Forward (src = client, dst = endpoint) or reply (src = endpoint, dst = client).
#[inline(never)]
fn judge_way(t: &Tuple, generation: u32, reply: bool) -> u64 {
    let (client_addr, endpoint_addr, port) = if reply {
        (&t.dst, &t.src, t.sport)
    } else {
        (&t.src, &t.dst, t.dport)
    };
    let endpoint_class = class_of(generation, table::ENDPOINT, t.family, endpoint_addr);
    if endpoint_class == 0 {
        return 0;
    }
    let client_class = class_of(generation, table::CLIENT, t.family, client_addr);
    if client_class == 0 {
        return 0;
    }
    let (protocol, port) = if t.icmp == ICMP_OTHER {
        (PROTO_ANY, 0)
    } else if t.has_ports() {
        (t.protocol, port)
    } else {
        (t.protocol, 0)
    };
    let key = RuleKey {
        generation: generation as u8,
        protocol,
        vlan: t.vlan,
        client_class,
        endpoint_class,
        chunk: 0,
    };
    match_rules(&key, port as u32)
}

#[inline(always)]
const fn unpack(hit: u64, kind: u8) -> Judged {
    Judged {
        agreement: hit as u32,
        slot: ((hit >> 32) as u32).wrapping_sub(1),
        kind,
    }
}

/// Judges by the forward rule, then the reply rule; the lowest agreement id within a direction
/// is already resolved by the loader.
#[inline(always)]
pub(crate) fn judge(t: &Tuple, generation: u32) -> Option<Judged> {
    if t.icmp != ICMP_ECHO_REPLY {
        let hit = judge_way(t, generation, false);
        if hit != 0 {
            return Some(unpack(hit, kind::FORWARD));
        }
    }
    if t.icmp != ICMP_ECHO_REQUEST {
        let hit = judge_way(t, generation, true);
        if hit != 0 {
            return Some(unpack(hit, kind::REPLY));
        }
    }
    None
}

/// Whether the infrastructure allow list covers the packet (src or dst in a listed prefix,
/// protocol and source or destination port matching).
#[inline(always)]
pub(crate) fn judge_infra(t: &Tuple, generation: u32) -> bool {
    let fam = if t.family == family::V6 {
        family::V6
    } else {
        family::V4
    };
    // Most policies have no infrastructure entries of a family: one array read, inline (a
    // call costs more than the read), decides that.
    match SDN_PREFIX_LENGTHS.get(prefix_lengths_index(generation, table::INFRA, fam)) {
        Some(l) if l.count != 0 => judge_infra_entries(t, generation, fam),
        _ => false,
    }
}

#[inline(never)]
fn judge_infra_entries(t: &Tuple, generation: u32, fam: u8) -> bool {
    let (sport, dport) = if t.has_ports() {
        (t.sport as u32, t.dport as u32)
    } else {
        (0, 0)
    };
    let mut key = RuleKey {
        generation: generation as u8,
        protocol: t.protocol,
        vlan: VLAN_ANY,
        client_class: INFRA_CLASS,
        endpoint_class: 0,
        chunk: 0,
    };
    let mut side = 0;
    while side < 2 {
        let addr = if side == 0 { &t.src } else { &t.dst };
        side += 1;
        let c = class_of(generation, table::INFRA, fam, addr);
        if c == 0 {
            continue;
        }
        key.endpoint_class = c;
        if match_rules(&key, sport) != 0 || match_rules(&key, dport) != 0 {
            return true;
        }
    }
    false
}

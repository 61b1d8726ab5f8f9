//! The IPv4 flow table: `SDN_FLOW_TABLE4` is an array of buckets of `FLOW_WAYS` entries that
//! this program manages itself. Array lookups are inlined by the verifier, where every BPF
//! hash-map operation is a kernel call (on this project's machines ~25 ns a lookup and ~200 ns
//! an LRU insert, most of it call and return overhead under the CPU's mitigations). A
//! bucket is chosen by a keyed hash of the flow; a full bucket gives up its least recently
//! seen entry, the way an LRU would.
//!
//! CPUs share the table without locks. Every entry carries a check word over its fields, so an
//! entry half-written by another CPU is never taken for a decision: it reads as unknown and the
//! packet is judged again by the policy.

use sdn_common::{Config, FLOW_WAYS, FlowBucket4, FlowEntry4, FlowKey4, flow_check, kind};

use crate::maps::SDN_FLOW_TABLE4;

// `remember`'s tournament for the oldest entry is written out for four.
const _: () = assert!(FLOW_WAYS == 4);

/// A lookup's outcome, as plain scalars: the verifier then sees the paths through the four
/// entries of a bucket as one state where they meet again (a pointer into the bucket would
/// carry a different offset on each, and everything after would be verified four times; on
/// Linux 6.1 that took the program to 700k of the verifier's 1M instructions).
pub(crate) struct Looked {
    /// `MISS`, `KNOWN` (the flow is in the table but its decision does not count: torn by
    /// another CPU, or of an older policy), or `HIT`.
    pub(crate) status: u32,
    /// `kind::*` of a hit.
    pub(crate) kind: u8,
    pub(crate) agreement: u32,
    pub(crate) slot: u32,
}

pub(crate) const MISS: u32 = 0;
pub(crate) const KNOWN: u32 = 1;
pub(crate) const HIT: u32 = 2;

impl Looked {
    const fn status(status: u32) -> Self {
        Self {
            status,
            kind: 0,
            agreement: 0,
            slot: 0,
        }
    }
}

/// The bucket of `key`, and the key's hash (which the check words use too).
#[inline(always)]
fn bucket(key: &FlowKey4, cfg: &Config) -> Option<(*mut FlowBucket4, u64)> {
    let h = key.table_hash(&cfg.flow_keys);
    Some((
        SDN_FLOW_TABLE4.get_ptr_mut((h >> 32) as u32 & cfg.flow_mask)?,
        h,
    ))
}

#[inline(always)]
fn same(a: &FlowKey4, b: &FlowKey4) -> bool {
    let (x, y) = (a.words(), b.words());
    x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3]
}

/// Whether an entry holds nothing worth keeping: torn, idle past the timeout, or a denial of
/// an older policy. A passing flow of an older policy is still a flow (its next packet is
/// judged again but is no new transaction), so it gives way only as the least recently seen.
#[inline(always)]
fn spent(e: &FlowEntry4, cfg: &Config, now: u32) -> bool {
    e.check != e.compute_check(e.key.table_hash(&cfg.flow_keys))
        || now.wrapping_sub(e.seen) as u64 > cfg.flow_timeout
        || (e.generation != cfg.active_generation && e.kind == kind::DROP)
}

/// Looks `key` up at time `now` (jiffies), and refreshes the timestamp of a hit (at most
/// once a second: a write per packet would bounce the entry's cache line between CPUs).
#[inline(always)]
pub(crate) fn lookup(key: &FlowKey4, cfg: &Config, now: u64) -> Looked {
    let Some((b, h)) = bucket(key, cfg) else {
        return Looked::status(MISS);
    };
    let now = now as u32;
    let mut i = 0;
    while i < FLOW_WAYS {
        // SAFETY: `b` is a valid map value pointer and `i < FLOW_WAYS`. Fields other CPUs may
        // write at the same time are covered by the check word (`seen` is only a timestamp).
        let e = unsafe { &mut (*b).ways[i] };
        if same(&e.key, key) {
            if e.check != e.compute_check(h) {
                return Looked::status(KNOWN);
            }
            let age = now.wrapping_sub(e.seen);
            if age as u64 > cfg.flow_timeout {
                return Looked::status(MISS);
            }
            if e.generation != cfg.active_generation {
                // A denial was never a flow (for transaction counting).
                return Looked::status(if e.kind == kind::DROP { MISS } else { KNOWN });
            }
            if age as u64 > cfg.hz {
                e.seen = now;
            }
            return Looked {
                status: HIT,
                kind: e.kind,
                agreement: e.agreement,
                slot: e.slot,
            };
        }
        i += 1;
    }
    Looked::status(MISS)
}

/// Writes the decision for `key`: over the flow's own entry or one that no longer counts,
/// else over a remembered denial, else (for a passing flow) over the least recently seen
/// entry. A denial never pushes out a live passing flow: a flood of denied packets must not
/// make established flows pay the first-packet path again.
///
/// Written as passes that stop at the first fitting entry, and a fixed tournament for the
/// oldest, so that the verifier meets few distinct states. A function of its own: its stack
/// frame then does not add to the classifier's deepest call chain (Linux 6.1 limits the
/// chain to 512 bytes when a program uses tail calls).
///
/// `agreement_slot`: the agreement id in the low half, the counter slot in the high half (a
/// BPF call takes at most five arguments).
#[inline(never)]
pub(crate) fn remember(key: &FlowKey4, cfg: &Config, now: u64, k: u8, agreement_slot: u64) {
    let Some((b, h)) = bucket(key, cfg) else {
        return;
    };
    let now = now as u32;
    let r = &Remember {
        generation: cfg.active_generation,
        agreement: agreement_slot as u32,
        slot: (agreement_slot >> 32) as u32,
        kind: k,
    };
    let mut i = 0;
    while i < FLOW_WAYS {
        // SAFETY: as in `lookup`.
        let e = unsafe { &mut (*b).ways[i] };
        if same(&e.key, key) || spent(e, cfg, now) {
            write(e, key, h, now, r);
            return;
        }
        i += 1;
    }
    let mut i = 0;
    while i < FLOW_WAYS {
        // SAFETY: as in `lookup`.
        let e = unsafe { &mut (*b).ways[i] };
        if e.kind == kind::DROP {
            write(e, key, h, now, r);
            return;
        }
        i += 1;
    }
    if r.kind == kind::DROP {
        return;
    }
    // SAFETY: as in `lookup`; the indexes are constants below FLOW_WAYS.
    let ways = unsafe { &mut (*b).ways };
    let age = |e: &FlowEntry4| now.wrapping_sub(e.seen);
    let (a, b) = (
        if age(&ways[0]) >= age(&ways[1]) { 0 } else { 1 },
        if age(&ways[2]) >= age(&ways[3]) { 2 } else { 3 },
    );
    let oldest = if age(&ways[a]) >= age(&ways[b]) { a } else { b };
    write(&mut ways[oldest], key, h, now, r);
}

/// A decision to remember.
struct Remember {
    generation: u32,
    agreement: u32,
    slot: u32,
    /// `kind::*`; `DROP` remembers a denial.
    kind: u8,
}

/// Writes the entry field by field (a whole entry built on the stack first would add to the
/// classifier's stack, which the verifier limits across calls).
#[inline(always)]
fn write(e: &mut FlowEntry4, key: &FlowKey4, h: u64, now: u32, r: &Remember) {
    e.key = *key;
    e.seen = now;
    e.generation = r.generation;
    e.agreement = r.agreement;
    e.slot = r.slot;
    e.kind = r.kind;
    e.check = flow_check(h, r.generation, r.kind, r.agreement, r.slot);
}

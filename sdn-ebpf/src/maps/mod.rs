//! The program's maps. Policy maps hold two generations side by side; `SDN_CONFIG` says which
//! one is in force, so a policy switch is one word written by the loader.

mod shared;

pub(crate) use shared::{SDN_FLOW_TABLE4, config, now_ns};

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, ProgramArray},
};
use sdn_common::{
    AgreementCounters, FlowKey, FlowValue, FragmentKey, FragmentValue, LastDecision,
    PREFIX_LENGTHS_ENTRIES, PrefixKey, PrefixLengths, PrefixValue, RuleKey, RuleValue, capacity,
    reason,
};

use crate::packet::Parsed;

#[map]
pub(crate) static SDN_PREFIXES: HashMap<PrefixKey, PrefixValue> =
    HashMap::with_max_entries(capacity::PREFIXES, BPF_F_NO_PREALLOC);

#[map]
pub(crate) static SDN_PREFIX_LENGTHS: Array<PrefixLengths> =
    Array::with_max_entries(PREFIX_LENGTHS_ENTRIES, 0);

#[map]
pub(crate) static SDN_RULES: HashMap<RuleKey, RuleValue> =
    HashMap::with_max_entries(capacity::RULES, BPF_F_NO_PREALLOC);

#[map]
pub(crate) static SDN_FLOWS: LruHashMap<FlowKey, FlowValue> =
    LruHashMap::with_max_entries(capacity::FLOWS, 0);

#[map]
pub(crate) static SDN_FRAGMENTS: LruHashMap<FragmentKey, FragmentValue> =
    LruHashMap::with_max_entries(capacity::FRAGMENTS, 0);

#[map]
pub(crate) static SDN_COUNTERS: PerCpuArray<AgreementCounters> =
    PerCpuArray::with_max_entries(capacity::SLOTS, 0);

/// Kept by the loader for the KPI collector (see `sdn_common::maps::SLOT_OWNERS`); the
/// programs never touch it. Not preallocated: it holds about as many entries as agreements.
#[map]
pub(crate) static SDN_SLOT_OWNERS: HashMap<u32, u32> =
    HashMap::with_max_entries(capacity::SLOTS, BPF_F_NO_PREALLOC);

#[map]
pub(crate) static SDN_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(reason::COUNT, 0);

/// One shared record, not per CPU: a test run may execute on any CPU and the loader must read
/// back exactly the decision it just caused (a per-CPU record went stale when the thread moved).
#[map]
pub(crate) static SDN_LAST: Array<LastDecision> = Array::with_max_entries(1, 0);

/// A parsed packet handed from `sdn_filter` to `sdn_classify`.
#[derive(Clone, Copy)]
pub(crate) struct Scratch {
    pub(crate) parsed: Parsed,
    pub(crate) now: u64,
    pub(crate) len: u64,
    /// Whether the fast path looked the flow up already, and whether it was in the table.
    pub(crate) looked: u8,
    pub(crate) existed: u8,
    pub(crate) icmp: u8,
    /// For `sdn_log`: the drop reason, and whether `parsed` describes the dropped packet.
    pub(crate) log_reason: u32,
    pub(crate) log_parsed: u8,
}

#[map]
pub(crate) static SDN_SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

#[map]
pub(crate) static SDN_JUMP: ProgramArray = ProgramArray::with_max_entries(2, 0);

/// `SDN_JUMP` slots.
pub(crate) const JUMP_CLASSIFY: u32 = sdn_common::jump::CLASSIFY;
pub(crate) const JUMP_LOG: u32 = sdn_common::jump::LOG;

//! The maps the filter shares with the benchmark object (`bench/`): the configuration in
//! force and the IPv4 flow table. The benchmark's flow-floor program loads them by pin from a
//! loaded filter, so it looks flows up in the very table the filter filled.

use aya_ebpf::{helpers::bpf_jiffies64, macros::map, maps::Array};
use sdn_common::{Config, FLOW_WAYS, FlowBucket4, capacity};

/// Which generation is in force, flow-table keys and timeouts (one entry).
#[map]
pub(crate) static SDN_CONFIG: Array<Config> = Array::with_max_entries(1, 0);

/// See `flowtable`.
#[map]
pub(crate) static SDN_FLOW_TABLE4: Array<FlowBucket4> =
    Array::with_max_entries(capacity::FLOWS / FLOW_WAYS as u32, 0);

/// The configuration in force, read in place (a copy would cost every packet a dozen
/// instructions). All zero, i.e. generation 0 with no rules, until the loader writes it: an
/// unconfigured program denies all IP traffic. `None` only if the map had no entry 0, which
/// an array of one entry always has; callers drop then. (A fallback value elsewhere would
/// give the verifier two kinds of pointer to follow through the whole program.)
#[inline(always)]
pub(crate) fn config() -> Option<&'static Config> {
    SDN_CONFIG.get(0)
}

/// The clock of flow and fragment timeouts: jiffies (`Config::hz` per second).
#[inline(always)]
pub(crate) fn now_ns() -> u64 {
    // SAFETY: a helper without arguments.
    unsafe { bpf_jiffies64() }
}

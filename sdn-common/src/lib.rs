//! Map key and value types shared by the sdn-filter XDP program (`sdn-ebpf`) and its loader.
//!
//! Every type is `#[repr(C)]`, built from plain integers with explicit padding, so the kernel
//! and userspace agree on the layout byte for byte. The `user` feature adds `aya::Pod`.
#![allow(
    clippy::inline_always,
    reason = "the XDP program needs these inlined: a BPF-to-BPF call costs stack, which tail calls limit to 256 bytes per frame"
)]
#![allow(
    clippy::pub_underscore_fields,
    reason = "the padding fields of the #[repr(C)] map types are public so that both sides can build values"
)]
#![no_std]

/// Names of the maps in the object file (also the names they are pinned under).
pub mod maps {
    /// Global configuration (`Array<Config>`, one entry).
    pub const CONFIG: &str = "SDN_CONFIG";
    /// Prefix classifier: `(generation, table, family, length, masked address)` -> class.
    pub const PREFIXES: &str = "SDN_PREFIXES";
    /// The distinct prefix lengths per generation, table and family (`Array<PrefixLengths>`).
    pub const PREFIX_LENGTHS: &str = "SDN_PREFIX_LENGTHS";
    /// Rules: `(generation, client class, endpoint class, VLAN, protocol, chunk)` -> intervals.
    pub const RULES: &str = "SDN_RULES";
    /// IPv6 flow table (LRU): a flow's cached decision.
    pub const FLOWS: &str = "SDN_FLOWS";
    /// IPv4 flow table: an array of `FlowBucket4`, managed by the program (cached passes and
    /// denials).
    pub const FLOWS4: &str = "SDN_FLOW_TABLE4";
    /// Fragment table (LRU): verdicts of first fragments.
    pub const FRAGMENTS: &str = "SDN_FRAGMENTS";
    /// Per-agreement per-CPU counters, indexed by slot.
    pub const COUNTERS: &str = "SDN_COUNTERS";
    /// Counter slot -> the agreement it was last handed to (`HashMap<u32, u32>`, written by
    /// the loader, never read by the program). It outlives the agreement's removal, so the
    /// KPI collector can attribute the last counts of an agreement that came and went between
    /// two passes; the collector deletes the entry when it retires the slot.
    pub const SLOT_OWNERS: &str = "SDN_SLOT_OWNERS";
    /// Per-CPU counters per reason (pass and drop reasons).
    pub const STATS: &str = "SDN_STATS";
    /// Per-CPU record of the last packet's decision (only written when `FLAG_RECORD_LAST`).
    pub const LAST: &str = "SDN_LAST";
    /// Per-CPU scratch space handing a parsed packet to the classifier program.
    pub const SCRATCH: &str = "SDN_SCRATCH";
    /// Program array: index 0 is the classifier program (first packets, ICMP errors).
    pub const JUMP: &str = "SDN_JUMP";
}

/// Name of the XDP program in the object file (the one attached).
pub const PROGRAM_NAME: &str = "sdn_filter";
/// Name of the classifier program, reached by tail call for first packets and ICMP errors.
/// (Split off so that each program stays well within the verifier's budget.)
pub const CLASSIFIER_NAME: &str = "sdn_classify";
/// Name of the drop logger, reached by tail call when `flags::LOG_DROPS` is set.
pub const LOGGER_NAME: &str = "sdn_log";
/// Slots of the program array (`maps::JUMP`).
pub mod jump {
    /// The classifier.
    pub const CLASSIFY: u32 = 0;
    /// The drop logger.
    pub const LOG: u32 = 1;
}
/// Name of a bare XDP_PASS program, the floor benchmarks compare with.
pub const PASS_NAME: &str = "sdn_pass";
/// Name of a benchmark reference program: parse and one flow-table lookup, nothing else.
pub const FLOW_FLOOR_NAME: &str = "sdn_flow_floor";
/// Name of the benchmark packet generator (BPF_PROG_RUN live frames; never attached).
pub const GEN_NAME: &str = "sdn_gen";
/// Name of the generator's settings map (`generator::*` indexes).
pub const GEN_MAP: &str = "SDN_GEN";
/// Name of the generator's header template map (one `[u8; generator::HEADER_BYTES]`).
pub const GEN_HEADER_MAP: &str = "SDN_GEN_HEADER";
/// Indexes of the generator's settings map `GEN_MAP` (u32 values).
pub mod generator {
    /// Number of distinct source ports (flows) to spread frames over; 0 or 1 keeps the
    /// template's own port.
    pub const FLOWS: u32 = 0;
    /// Offset of the transport header in the template: 34 (IPv4 without options) or 54
    /// (IPv6 without extension headers); any other value leaves the frame as it is.
    pub const L4_OFFSET: u32 = 1;
    /// First source port of the range.
    pub const FIRST_PORT: u32 = 2;
    /// Entries in the map.
    pub const ENTRIES: u32 = 3;
    /// Size of the header template map's value (`GEN_HEADER_MAP`).
    pub const HEADER_BYTES: usize = 128;
}

/// At most this many VLAN tags are parsed; one more is malformed.
pub const MAX_VLAN_TAGS: usize = 2;
/// At most this many IPv6 extension headers are walked; one more is malformed.
pub const MAX_EXT_HEADERS: usize = 8;
/// Interval entries in one rule value.
pub const RULES_PER_VALUE: usize = 4;
/// A rule key may continue in at most this many chunks (so 64 port intervals per key).
pub const MAX_RULE_CHUNKS: u32 = 16;
/// Distinct prefix lengths per (generation, table, family); IPv4 has at most 33.
pub const MAX_PREFIX_LENGTHS: usize = 33;

/// Default capacities (the loader may set others before loading).
pub mod capacity {
    /// Agreement counter slots.
    pub const SLOTS: u32 = 1 << 20;
    /// Flow table entries (per family; the IPv4 table holds them in buckets of `FLOW_WAYS`).
    pub const FLOWS: u32 = 1 << 18;
    /// Fragment table entries.
    pub const FRAGMENTS: u32 = 1 << 14;
    /// Prefix classifier entries (both generations together).
    pub const PREFIXES: u32 = 1 << 21;
    /// Rule entries (both generations together).
    pub const RULES: u32 = 1 << 22;
}

/// Protocol value in rule keys that stands for an endpoint with protocol `any`.
pub const PROTO_ANY: u8 = 255;
/// VLAN value in rule keys for agreements without a VLAN (and for untagged frames).
pub const VLAN_ANY: u16 = 0;
/// Client class used for infrastructure rules.
pub const INFRA_CLASS: u32 = u32::MAX;

/// Prefix tables.
pub mod table {
    /// Client prefixes (source of forward traffic).
    pub const CLIENT: u8 = 0;
    /// Service endpoint addresses (destination of forward traffic).
    pub const ENDPOINT: u8 = 1;
    /// Infrastructure allow list.
    pub const INFRA: u8 = 2;
    /// Number of tables.
    pub const COUNT: u32 = 3;
}

/// Address families as stored in keys.
pub mod family {
    /// IPv4: the address is in `addr[0]`, the rest is zero.
    pub const V4: u8 = 4;
    /// IPv6.
    pub const V6: u8 = 6;
}

/// Index of a `PrefixLengths` entry.
#[inline(always)]
pub const fn prefix_lengths_index(generation: u32, table: u8, family: u8) -> u32 {
    let fam = if family == family::V6 { 1 } else { 0 };
    (generation & 1) * (table::COUNT * 2) + (table as u32) * 2 + fam
}
/// Entries in the prefix-lengths array.
pub const PREFIX_LENGTHS_ENTRIES: u32 = 2 * table::COUNT * 2;

/// Bits of `Config::flags`.
pub mod flags {
    /// Write every decision into `LAST` (replay/explain instances only).
    pub const RECORD_LAST: u32 = 1;
    /// Skip flow-table lookups (used by benchmarks to measure the first-packet path).
    pub const NO_FLOW_LOOKUP: u32 = 2;
    /// Log drops with aya-log.
    pub const LOG_DROPS: u32 = 4;
}

/// Global configuration, entry 0 of `SDN_CONFIG`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The policy generation in force: a counter; map entries of the generation in force are
    /// those of its parity.
    pub active_generation: u32,
    /// `flags::*` bits.
    pub flags: u32,
    /// Idle timeout of a flow-table entry, in jiffies (the kernel's tick: reading it costs
    /// nothing, where a clock read costs as much as the rest of an established packet).
    pub flow_timeout: u64,
    /// How long a first fragment's verdict is remembered, in jiffies.
    pub fragment_timeout: u64,
    /// Jiffies per second (the kernel's HZ, measured by the loader): a flow's timestamp is
    /// refreshed at most once per second.
    pub hz: u64,
    /// Buckets of the IPv4 flow table minus one (their number is a power of two).
    pub flow_mask: u32,
    /// Random keys of the flow table's hash, chosen at load: a sender cannot aim flows at
    /// one bucket to push others out.
    pub flow_keys: [u32; 4],
    /// Padding.
    pub _pad: u32,
}

/// Default flow idle timeout in seconds.
pub const DEFAULT_FLOW_TIMEOUT_S: u64 = 120;
/// Default fragment memory in seconds.
pub const DEFAULT_FRAGMENT_TIMEOUT_S: u64 = 60;

/// Key of the prefix classifier: the address masked to `prefix_len` bits.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PrefixKey {
    /// Policy generation (0 or 1).
    pub generation: u8,
    /// `table::*`.
    pub table: u8,
    /// `family::*`.
    pub family: u8,
    /// Prefix length.
    pub prefix_len: u8,
    /// Masked address, network byte order words.
    pub addr: [u32; 4],
}

/// Value of the prefix classifier.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrefixValue {
    /// The class: the set of clients (or endpoints) whose prefixes contain this prefix.
    pub class: u32,
}

/// One prefix length to probe and its mask (network byte order words), so the kernel masks
/// without branches.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrefixLength {
    /// Prefix length.
    pub len: u8,
    /// Padding.
    pub _pad: [u8; 3],
    /// Mask words, network byte order.
    pub mask: [u32; 4],
}

impl PrefixLength {
    /// The entry for `len` bits of a 128-bit (or, using word 0 only, 32-bit) address.
    pub const fn new(len: u8) -> Self {
        let mut mask = [0u32; 4];
        let mut w = 0;
        while w < 4 {
            let lo = 32 * w as u32;
            let bits = if (len as u32) <= lo {
                0
            } else if (len as u32) - lo >= 32 {
                32
            } else {
                (len as u32) - lo
            };
            let host: u32 = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            mask[w] = host.to_be();
            w += 1;
        }
        Self {
            len,
            _pad: [0; 3],
            mask,
        }
    }
}

/// The distinct prefix lengths of one (generation, table, family), longest first.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixLengths {
    /// Number of valid entries in `lengths`.
    pub count: u32,
    /// Prefix lengths, longest first.
    pub lengths: [PrefixLength; MAX_PREFIX_LENGTHS],
}

impl Default for PrefixLengths {
    fn default() -> Self {
        Self {
            count: 0,
            lengths: [PrefixLength::new(0); MAX_PREFIX_LENGTHS],
        }
    }
}

/// Key of the rule table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleKey {
    /// Policy generation (0 or 1).
    pub generation: u8,
    /// IP protocol, or `PROTO_ANY`.
    pub protocol: u8,
    /// VLAN id, or `VLAN_ANY`.
    pub vlan: u16,
    /// Client class (or `INFRA_CLASS`).
    pub client_class: u32,
    /// Endpoint class (or infrastructure class).
    pub endpoint_class: u32,
    /// Continuation index when a key has more than `RULES_PER_VALUE` intervals.
    pub chunk: u32,
}

/// One port interval and the agreement it belongs to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleEntry {
    /// First port (inclusive).
    pub port_lo: u16,
    /// Last port (inclusive).
    pub port_hi: u16,
    /// Agreement id (the lowest id covering this interval).
    pub agreement: u32,
    /// Counter slot of that agreement.
    pub slot: u32,
}

/// Value of the rule table: disjoint port intervals sorted by port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleValue {
    /// Number of valid entries.
    pub count: u32,
    /// Non-zero when chunk + 1 exists.
    pub more: u32,
    /// The intervals.
    pub entries: [RuleEntry; RULES_PER_VALUE],
}

/// Flow-table key: a packet's own tuple.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Source address (IPv4 in word 0).
    pub src: [u32; 4],
    /// Destination address.
    pub dst: [u32; 4],
    /// Source port (ICMP: echo identifier).
    pub src_port: u16,
    /// Destination port (ICMP: the type).
    pub dst_port: u16,
    /// VLAN id used for matching (0 = untagged).
    pub vlan: u16,
    /// IP protocol.
    pub protocol: u8,
    /// `family::*`.
    pub family: u8,
}

/// IPv4 flow-table key (the same tuple as `FlowKey`, compact).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey4 {
    /// Source address (network byte order).
    pub src: u32,
    /// Destination address.
    pub dst: u32,
    /// Source port (ICMP: echo identifier).
    pub src_port: u16,
    /// Destination port (ICMP: the type).
    pub dst_port: u16,
    /// VLAN id used for matching (0 = untagged).
    pub vlan: u16,
    /// IP protocol.
    pub protocol: u8,
    /// Padding.
    pub _pad: u8,
}

/// Entries per bucket of the IPv4 flow table.
pub const FLOW_WAYS: usize = 4;

/// One entry of the IPv4 flow table. The table is an array of buckets that the program manages
/// itself: a lookup is one inlined array access and an insert a few stores, where a BPF hash
/// map costs a kernel call for each (an LRU insert ~200 ns). CPUs share it, so `check`
/// (a hash of every field but `seen`) lets a reader reject an entry torn by a concurrent writer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowEntry4 {
    /// The flow.
    pub key: FlowKey4,
    /// Last time seen, low 32 bits of jiffies (compared with wrapping arithmetic).
    pub seen: u32,
    /// Generation the decision was made under (the whole counter).
    pub generation: u32,
    /// Agreement id.
    pub agreement: u32,
    /// Counter slot.
    pub slot: u32,
    /// Hash of the other fields; never 0, so an empty entry is never valid.
    pub check: u32,
    /// `kind::*`; `DROP` caches a denial (no agreement either way).
    pub kind: u8,
    /// Padding.
    pub _pad: [u8; 3],
}

/// A bucket of the IPv4 flow table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowBucket4 {
    /// The entries.
    pub ways: [FlowEntry4; FLOW_WAYS],
}

/// Mixes one word into a hash (multiply-xorshift, as in murmur3's finaliser).
#[inline(always)]
pub const fn flow_mix(h: u32, w: u32) -> u32 {
    let h = (h ^ w).wrapping_mul(0x9e37_79b1);
    h ^ (h >> 15)
}

impl FlowKey4 {
    /// The key as four words, in memory order (for hashing and comparing: four word loads
    /// where assembling the fields would take a dozen instructions).
    #[inline(always)]
    pub const fn words(&self) -> [u32; 4] {
        // SAFETY: repr(C), 16 bytes of integer fields without implicit padding (the layout
        // test checks the size); every bit pattern is a valid [u32; 4].
        unsafe { core::mem::transmute::<Self, [u32; 4]>(*self) }
    }

    /// The flow table's hash of this key under random `keys`: NH, the universal hash of
    /// UMAC (two independent multiplications, so it costs a few cycles where a chain of
    /// mixing rounds costs tens). The bucket comes from the high half, check words from
    /// the low half.
    #[inline(always)]
    pub const fn table_hash(&self, keys: &[u32; 4]) -> u64 {
        let w = self.words();
        let a = w[0].wrapping_add(keys[0]) as u64 * w[1].wrapping_add(keys[1]) as u64;
        let b = w[2].wrapping_add(keys[2]) as u64 * w[3].wrapping_add(keys[3]) as u64;
        a.wrapping_add(b)
    }
}

impl FlowEntry4 {
    /// The check word of these fields (never 0), from the key's `table_hash`, which the
    /// program has at hand already.
    #[inline(always)]
    pub const fn compute_check(&self, key_hash: u64) -> u32 {
        flow_check(
            key_hash,
            self.generation,
            self.kind,
            self.agreement,
            self.slot,
        )
    }
}

/// The check word of a flow-table entry with these fields (never 0).
#[inline(always)]
pub const fn flow_check(
    key_hash: u64,
    generation: u32,
    kind: u8,
    agreement: u32,
    slot: u32,
) -> u32 {
    let h = key_hash as u32 ^ generation ^ ((kind as u32) << 24);
    flow_mix(h, agreement ^ slot.rotate_left(16)) | 1
}

/// What a flow-table or fragment-table entry decided.
pub mod kind {
    /// Dropped (a cached denial in the flow table, a dropped head in the fragment table).
    pub const DROP: u8 = 0;
    /// Forward under an agreement.
    pub const FORWARD: u8 = 1;
    /// Reply under an agreement.
    pub const REPLY: u8 = 2;
    /// Infrastructure.
    pub const INFRA: u8 = 3;
}

/// Flow-table value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowValue {
    /// Last time the flow was seen (jiffies).
    pub last_seen: u64,
    /// Generation the decision was made under.
    pub generation: u32,
    /// Agreement id.
    pub agreement: u32,
    /// Counter slot.
    pub slot: u32,
    /// `kind::*`.
    pub kind: u8,
    /// Padding.
    pub _pad0: u8,
    /// Padding.
    pub _pad1: u16,
}

/// Fragment-table key.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FragmentKey {
    /// Source address.
    pub src: [u32; 4],
    /// Destination address.
    pub dst: [u32; 4],
    /// Identification (IPv4: 16 bits).
    pub id: u32,
    /// VLAN id used for matching.
    pub vlan: u16,
    /// Protocol (IPv6: the fragment header's next header).
    pub protocol: u8,
    /// `family::*`.
    pub family: u8,
}

/// Fragment-table value: the first fragment's decision.
pub type FragmentValue = FlowValue;

/// Per-agreement counters (one per CPU per slot).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgreementCounters {
    /// Packets to the service.
    pub forward_packets: u64,
    /// Bytes (whole frames) to the service.
    pub forward_bytes: u64,
    /// Packets from the service.
    pub reply_packets: u64,
    /// Bytes from the service.
    pub reply_bytes: u64,
    /// New flows.
    pub transactions: u64,
}

/// Record of the last decision (per CPU), for replay and explain.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LastDecision {
    /// Incremented for every packet recorded.
    pub sequence: u64,
    /// XDP action returned.
    pub action: u32,
    /// `reason::*`.
    pub reason: u32,
    /// Agreement id, valid when `has_agreement != 0`.
    pub agreement: u32,
    /// Non-zero when the packet counted to an agreement.
    pub has_agreement: u8,
    /// `direction::*`.
    pub direction: u8,
    /// Non-zero when the packet started a transaction.
    pub transaction: u8,
    /// Padding.
    pub _pad: u8,
}

/// Directions in `LastDecision`.
pub mod direction {
    /// None (drops, non-IP, infrastructure, neighbour discovery).
    pub const NONE: u8 = 0;
    /// To the service.
    pub const FORWARD: u8 = 1;
    /// From the service.
    pub const REPLY: u8 = 2;
}

/// XDP actions (values of `xdp_action`).
pub mod action {
    /// Aborted: a program error; never returned on purpose.
    pub const ABORTED: u32 = 0;
    /// Drop.
    pub const DROP: u32 = 1;
    /// Pass.
    pub const PASS: u32 = 2;
    /// Transmit out of the receiving interface (the benchmark generator only).
    pub const TX: u32 = 3;
}

macro_rules! reasons {
    ($($(#[$doc:meta])* $name:ident = $value:expr, $text:expr, $pass:expr;)*) => {
        /// Why a packet passed or dropped; every packet counts to exactly one reason.
        pub mod reason {
            $($(#[$doc])* pub const $name: u32 = $value;)*
            /// Number of reasons (size of the stats array).
            pub const COUNT: u32 = [$($value),*].len() as u32;
            /// Stable name of a reason, used in output and metrics.
            pub const fn name(reason: u32) -> &'static str {
                match reason { $($value => $text,)* _ => "unknown" }
            }
            /// Whether a reason is a pass reason.
            pub const fn passes(reason: u32) -> bool {
                match reason { $($value => $pass,)* _ => false }
            }
        }
    };
}

reasons! {
    /// A first packet matched an agreement forward.
    FORWARD = 0, "forward", true;
    /// A first packet matched an agreement as a reply.
    REPLY = 1, "reply", true;
    /// A packet of a flow already in the flow table, forward.
    ESTABLISHED_FORWARD = 2, "established-forward", true;
    /// A packet of a flow already in the flow table, reply.
    ESTABLISHED_REPLY = 3, "established-reply", true;
    /// An ICMP error whose quoted packet passes.
    ICMP_ERROR = 4, "icmp-error", true;
    /// A later fragment whose first fragment passed.
    FRAGMENT = 5, "fragment", true;
    /// Not IPv4 or IPv6.
    NON_IP = 6, "non-ip", true;
    /// Matched the infrastructure allow list.
    INFRASTRUCTURE = 7, "infrastructure", true;
    /// IPv6 neighbour discovery.
    NEIGHBOUR_DISCOVERY = 8, "neighbour-discovery", true;
    /// No agreement allows it.
    NO_AGREEMENT = 9, "no-agreement", false;
    /// A TCP SYN without ACK from a service to a client.
    REPLY_SYN = 10, "reply-syn", false;
    /// Three or more VLAN tags.
    TOO_MANY_VLAN_TAGS = 11, "too-many-vlan-tags", false;
    /// More than eight IPv6 extension headers.
    TOO_MANY_EXTENSION_HEADERS = 12, "too-many-extension-headers", false;
    /// A header cut short by the end of the frame (Ethernet, VLAN, IP, extension).
    TRUNCATED = 13, "truncated-header", false;
    /// IPv4 IHL < 5, or total length shorter than the header or longer than the frame.
    MALFORMED_IPV4 = 14, "malformed-ipv4", false;
    /// IPv6 payload length longer than the frame.
    MALFORMED_IPV6 = 15, "malformed-ipv6", false;
    /// Transport header too short (TCP data offset < 5 included) or cut short.
    MALFORMED_TRANSPORT = 16, "malformed-transport", false;
    /// A first fragment too short to hold the transport header.
    TINY_FRAGMENT = 17, "tiny-fragment", false;
    /// A later fragment whose first fragment was not seen.
    FRAGMENT_WITHOUT_HEAD = 18, "fragment-without-head", false;
    /// A later fragment whose first fragment dropped.
    FRAGMENT_OF_DROPPED = 19, "fragment-of-dropped-head", false;
    /// An ICMP error whose quoted packet would not pass.
    ICMP_ERROR_NO_AGREEMENT = 20, "icmp-error-no-agreement", false;
    /// An ICMP error whose quoted packet cannot be read.
    ICMP_ERROR_MALFORMED = 21, "icmp-error-malformed", false;
    /// An internal failure (a map update failed); fails closed.
    INTERNAL = 22, "internal-error", false;
}

#[cfg(feature = "user")]
mod user {
    use super::*;
    // SAFETY: all these types are repr(C), made of integers, with explicit padding fields.
    unsafe impl aya::Pod for Config {}
    unsafe impl aya::Pod for PrefixKey {}
    unsafe impl aya::Pod for PrefixValue {}
    unsafe impl aya::Pod for PrefixLength {}
    unsafe impl aya::Pod for PrefixLengths {}
    unsafe impl aya::Pod for RuleKey {}
    unsafe impl aya::Pod for RuleEntry {}
    unsafe impl aya::Pod for RuleValue {}
    unsafe impl aya::Pod for FlowKey {}
    unsafe impl aya::Pod for FlowKey4 {}
    unsafe impl aya::Pod for FlowEntry4 {}
    unsafe impl aya::Pod for FlowBucket4 {}
    unsafe impl aya::Pod for FlowValue {}
    unsafe impl aya::Pod for FragmentKey {}
    unsafe impl aya::Pod for AgreementCounters {}
    unsafe impl aya::Pod for LastDecision {}
}

// Layouts checked at compile time, in the eBPF build as in userspace: the program and the
// loader agree on every map's key and value byte for byte, with no implicit padding.
const _: () = {
    use core::mem::size_of;
    assert!(size_of::<Config>() == 56);
    assert!(size_of::<FlowEntry4>() == 40);
    assert!(size_of::<FlowBucket4>() == 40 * FLOW_WAYS);
    assert!(size_of::<PrefixKey>() == 20);
    assert!(size_of::<PrefixLengths>() == 4 + 20 * MAX_PREFIX_LENGTHS);
    assert!(size_of::<RuleKey>() == 16);
    assert!(size_of::<RuleEntry>() == 12);
    assert!(size_of::<RuleValue>() == 8 + 12 * RULES_PER_VALUE);
    assert!(size_of::<FlowKey>() == 40);
    assert!(size_of::<FlowKey4>() == 16);
    assert!(size_of::<FlowValue>() == 24);
    assert!(size_of::<FragmentKey>() == 40);
    assert!(size_of::<AgreementCounters>() == 40);
    assert!(size_of::<LastDecision>() == 24);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_masks() {
        assert_eq!(PrefixLength::new(0).mask, [0; 4]);
        assert_eq!(
            PrefixLength::new(24).mask[0],
            u32::from_ne_bytes([255, 255, 255, 0])
        );
        assert_eq!(PrefixLength::new(32).mask, [u32::MAX, 0, 0, 0]);
        let m = PrefixLength::new(48).mask;
        assert_eq!(m, [u32::MAX, u32::from_ne_bytes([255, 255, 0, 0]), 0, 0]);
        assert_eq!(PrefixLength::new(128).mask, [u32::MAX; 4]);
    }

    #[test]
    fn reasons_are_dense_and_named() {
        for r in 0..reason::COUNT {
            assert_ne!(reason::name(r), "unknown", "reason {r} has no name");
        }
        assert_eq!(reason::name(reason::COUNT), "unknown");
        assert!(reason::passes(reason::FORWARD));
        assert!(!reason::passes(reason::NO_AGREEMENT));
    }

    #[test]
    fn prefix_length_indexes_are_distinct() {
        let mut seen = [false; PREFIX_LENGTHS_ENTRIES as usize];
        for g in 0..2 {
            for t in 0..table::COUNT as u8 {
                for f in [family::V4, family::V6] {
                    let i = prefix_lengths_index(g, t, f) as usize;
                    assert!(!seen[i]);
                    seen[i] = true;
                }
            }
        }
        assert!(seen.iter().all(|s| *s));
    }
}

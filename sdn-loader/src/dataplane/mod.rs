//! The loaded XDP program and its maps: loading (private or pinned), applying a compiled
//! policy atomically (write the inactive generation, flip one word, delete the old one),
//! running frames through BPF_PROG_TEST_RUN, and reading counters.

pub mod attach;
mod bench;
mod clock;
mod error;
pub mod generator;
mod map_access;
pub mod pins;
pub mod probe;
mod slots;

pub use clock::kernel_hz;
use error::map_err;
pub use error::{DataplaneError, PERMISSION_HINT, permission_hint};
pub use map_access::{ActiveTables, FlowTableUsage, add_counters, sum_counters};

use std::{
    collections::{BTreeMap, HashMap as StdHashMap},
    path::{Path, PathBuf},
    time::Duration,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{
        Array, HashMap, IterableMap as _, Map, MapData, MapError, PerCpuArray, PerCpuValues,
        ProgramArray,
    },
    programs::{ProgramError, TestRun, TestRunOptions, Xdp},
};
use sdn_common::{
    AgreementCounters, CLASSIFIER_NAME, Config, DEFAULT_FLOW_TIMEOUT_S, DEFAULT_FRAGMENT_TIMEOUT_S,
    FLOW_FLOOR_NAME, FLOW_WAYS, FlowBucket4, GEN_NAME, LOGGER_NAME, LastDecision, PASS_NAME,
    PROGRAM_NAME, PrefixKey, PrefixLength, PrefixLengths, PrefixValue, RULES_PER_VALUE, RuleEntry,
    RuleKey, RuleValue, capacity, jump, maps, prefix_lengths_index, reason,
};

use crate::compile::Compiled;

/// The XDP object built by build.rs (empty when built without the BPF toolchain).
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sdn-ebpf.o"));

/// Capacities chosen at load time (pinned maps keep the capacity they were created with).
#[derive(Clone, Copy, Debug)]
pub struct Capacities {
    /// Counter slots (agreements).
    pub slots: u32,
    /// Flow-table entries.
    pub flows: u32,
    /// Fragment-table entries.
    pub fragments: u32,
    /// Prefix entries (both generations).
    pub prefixes: u32,
    /// Rule entries (both generations).
    pub rules: u32,
}

impl Default for Capacities {
    fn default() -> Self {
        Self {
            slots: capacity::SLOTS,
            flows: capacity::FLOWS,
            fragments: capacity::FRAGMENTS,
            prefixes: capacity::PREFIXES,
            rules: capacity::RULES,
        }
    }
}

impl Capacities {
    /// Small maps for a private replay/explain instance of a policy of this size.
    pub fn for_replay(compiled: &Compiled) -> Self {
        let grow = |n: usize| ((n * 2 + 64) as u32).next_power_of_two();
        Self {
            slots: grow(compiled.agreements.len()),
            flows: 1 << 16,
            fragments: 1 << 12,
            prefixes: grow(compiled.prefixes.len()),
            rules: grow(compiled.rule_entries()),
        }
    }
}

/// Size and verifier figures of one loaded program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramStats {
    /// Program name.
    pub name: &'static str,
    /// Instructions after the kernel's translation.
    pub instructions: Option<u32>,
    /// Instructions the verifier processed (Linux 5.16+).
    pub verified_instructions: Option<u32>,
    /// Size of the JITed code.
    pub jited_bytes: u32,
}

/// Programs a benchmark can time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    /// The filter (`sdn_filter`, with its tail calls).
    Filter,
    /// A bare XDP_PASS program.
    Pass,
    /// Parse plus one flow-table lookup, then XDP_PASS.
    FlowFloor,
    /// The benchmark packet generator (XDP_TX; see `generator`). Loaded into the kernel only
    /// when a benchmark first uses it, so that the data plane never depends on it.
    Gen,
}

impl Program {
    /// The program's name in the object.
    pub fn name(self) -> &'static str {
        match self {
            Self::Filter => PROGRAM_NAME,
            Self::Pass => PASS_NAME,
            Self::FlowFloor => FLOW_FLOOR_NAME,
            Self::Gen => GEN_NAME,
        }
    }
}

/// Outcome of one frame through the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameResult {
    /// XDP action.
    pub action: u32,
    /// The program's own record (requires `flags::RECORD_LAST`).
    pub last: LastDecision,
}

/// Summary of an apply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Generation now in force.
    pub generation: u32,
    /// Prefix entries written.
    pub prefixes: usize,
    /// Rule entries written.
    pub rules: usize,
    /// Agreements in force.
    pub agreements: usize,
}

/// The policy and counter maps, typed. Held by a loaded `Dataplane`, or opened from pins by
/// commands that only read (`stats`).
pub struct Maps {
    config: Array<MapData, Config>,
    prefixes: HashMap<MapData, PrefixKey, PrefixValue>,
    lengths: Array<MapData, PrefixLengths>,
    rules: HashMap<MapData, RuleKey, RuleValue>,
    counters: PerCpuArray<MapData, AgreementCounters>,
    stats: PerCpuArray<MapData, u64>,
    last: Array<MapData, LastDecision>,
    flows4: Array<MapData, FlowBucket4>,
    /// Slot -> agreement it was last handed to; absent in pins of a data plane started by a
    /// build that predates it (collection then knows only the slots in force).
    owners: Option<HashMap<MapData, u32, u32>>,
}

/// A loaded program with its maps.
pub struct Dataplane {
    ebpf: Ebpf,
    /// The benchmark programs, loaded when first asked for (`bench`).
    bench: Option<Ebpf>,
    maps: Maps,
    caps: Capacities,
    /// Agreement id -> counter slot (recovered from the rules in force when re-using pins).
    slots: BTreeMap<u32, u32>,
    /// Entries (prefixes, rules) of the generation in force, when this instance wrote it;
    /// `None`: count them in the maps.
    live: Option<(usize, usize)>,
    /// Whether this instance emptied the inactive generation itself (no leftovers to clear).
    next_clean: bool,
    /// Whether this instance has written the owner of every slot in force (pins of an older
    /// build may lack them).
    owners_written: bool,
}

const ALL_MAPS: [&str; 13] = [
    maps::FLOWS4,
    maps::SCRATCH,
    maps::JUMP,
    maps::CONFIG,
    maps::PREFIXES,
    maps::PREFIX_LENGTHS,
    maps::RULES,
    maps::FLOWS,
    maps::FRAGMENTS,
    maps::COUNTERS,
    maps::SLOT_OWNERS,
    maps::STATS,
    maps::LAST,
];

/// Buckets of the IPv4 flow table for `flows` entries: a power of two (the program masks
/// its hash).
fn flow_buckets(flows: u32) -> u32 {
    (flows / FLOW_WAYS as u32).max(1).next_power_of_two()
}

/// Random keys for the flow table's hash (from the kernel's random pool; fixed fallback keys
/// only cost the resistance to aimed collisions).
fn random_keys() -> [u32; 4] {
    let mut b = [0u8; 16];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| {
        use std::io::Read;
        f.read_exact(&mut b)
    }) {
        Ok(()) => std::array::from_fn(|i| {
            u32::from_ne_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
        }),
        Err(e) => {
            tracing::warn!("no random keys for the flow table ({e}); using fixed ones");
            [0x2545_f491, 0x9e37_79b9, 0x85eb_ca6b, 0xc2b2_ae35]
        }
    }
}

/// Key and value sizes of the maps whose types this build shares with the program (the
/// scratch and jump maps are the program's own business, and their pins are re-created
/// with the program).
fn map_layouts() -> [(&'static str, usize, usize); 11] {
    use sdn_common::{FlowKey, FlowValue, FragmentKey, FragmentValue};
    use std::mem::size_of;
    [
        (maps::CONFIG, 4, size_of::<Config>()),
        (
            maps::PREFIXES,
            size_of::<PrefixKey>(),
            size_of::<PrefixValue>(),
        ),
        (maps::PREFIX_LENGTHS, 4, size_of::<PrefixLengths>()),
        (maps::RULES, size_of::<RuleKey>(), size_of::<RuleValue>()),
        (maps::FLOWS, size_of::<FlowKey>(), size_of::<FlowValue>()),
        (maps::FLOWS4, 4, size_of::<FlowBucket4>()),
        (
            maps::FRAGMENTS,
            size_of::<FragmentKey>(),
            size_of::<FragmentValue>(),
        ),
        (maps::COUNTERS, 4, size_of::<AgreementCounters>()),
        (maps::SLOT_OWNERS, 4, 4),
        (maps::STATS, 4, 8),
        (maps::LAST, 4, size_of::<LastDecision>()),
    ]
}

/// Refuses pins of another build before they reach the verifier: aya re-uses a pinned map
/// whatever its layout, and the program's accesses would then fail with a raw verifier log.
fn check_pinned_layouts(dir: &Path) -> Result<(), DataplaneError> {
    for (name, key, value) in map_layouts() {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        // A pin that cannot be opened is left to aya, which names it.
        let Ok(info) = aya::maps::MapData::from_pin(&path).and_then(|m| m.info()) else {
            continue;
        };
        let (want_key, want_value) = (key as u32, value as u32);
        if (info.key_size(), info.value_size()) != (want_key, want_value) {
            return Err(DataplaneError::PinMismatch {
                path,
                found_key: info.key_size(),
                found_value: info.value_size(),
                want_key,
                want_value,
            });
        }
    }
    Ok(())
}

/// Whether this binary carries the XDP program.
pub fn has_object() -> bool {
    !EBPF_OBJECT.is_empty()
}

impl Dataplane {
    /// Loads a private instance: maps not pinned, program not attached (replay, explain,
    /// tests, benchmarks).
    pub fn load_private(caps: Capacities) -> Result<Self, DataplaneError> {
        Self::load(caps, None)
    }

    /// Loads with every map pinned under `pin_dir/maps/` (existing pins are re-used: counters
    /// and flows survive loader restarts and upgrades).
    pub fn load_pinned(caps: Capacities, pin_dir: &Path) -> Result<Self, DataplaneError> {
        Self::load(caps, Some(pin_dir))
    }

    fn load(caps: Capacities, pin_dir: Option<&Path>) -> Result<Self, DataplaneError> {
        if !has_object() {
            return Err(DataplaneError::NoObject);
        }
        // Probe once per process: a clear sentence beats a verifier log on an old kernel.
        static REFUSAL: std::sync::OnceLock<Option<probe::Report>> = std::sync::OnceLock::new();
        let refused = REFUSAL.get_or_init(|| {
            let report = probe::probe();
            report.refusal().is_some().then_some(report)
        });
        if let Some(report) = refused {
            return Err(DataplaneError::Kernel(Box::new(report.clone())));
        }
        let mut loader = EbpfLoader::new();
        loader
            .map_max_entries(maps::COUNTERS, caps.slots)
            .map_max_entries(maps::SLOT_OWNERS, caps.slots)
            .map_max_entries(maps::FLOWS, caps.flows)
            .map_max_entries(maps::FLOWS4, flow_buckets(caps.flows))
            .map_max_entries(maps::FRAGMENTS, caps.fragments)
            .map_max_entries(maps::PREFIXES, caps.prefixes)
            .map_max_entries(maps::RULES, caps.rules);
        let map_dir = pin_dir.map(|d| d.join(crate::paths::MAPS_SUBDIR));
        if let (Some(dir), Some(tree)) = (&map_dir, pin_dir) {
            // Whoever could write the tree could unlink the pins and so detach the filter.
            crate::dataplane::pins::secure_tree(tree)?;
            check_pinned_layouts(dir)?;
            for name in ALL_MAPS {
                loader.map_pin_path(name, dir.join(name));
            }
        }
        let mut ebpf = loader.load(EBPF_OBJECT)?;
        for name in [CLASSIFIER_NAME, LOGGER_NAME, PROGRAM_NAME] {
            let program: &mut Xdp = ebpf
                .program_mut(name)
                .ok_or(DataplaneError::MissingProgram(name))?
                .try_into()?;
            // The kernel answers EAGAIN when the verifier is interrupted on a busy machine
            // (seen in CI while another load ran); libbpf retries such loads, and so do we.
            let mut retries = 4;
            loop {
                match program.load() {
                    Ok(()) => break,
                    Err(ProgramError::LoadError { io_error, .. })
                        if io_error.raw_os_error() == Some(libc::EAGAIN) && retries > 0 =>
                    {
                        retries -= 1;
                    }
                    Err(source) => return Err(DataplaneError::ProgramLoad { name, source }),
                }
            }
        }
        for (slot, name) in [(jump::CLASSIFY, CLASSIFIER_NAME), (jump::LOG, LOGGER_NAME)] {
            let prog: &Xdp = ebpf
                .program(name)
                .ok_or(DataplaneError::MissingProgram(name))?
                .try_into()?;
            let fd = prog
                .fd()?
                .try_clone()
                .map_err(|e| DataplaneError::Program(e.into()))?;
            let mut jump = ProgramArray::try_from(
                ebpf.map_mut(maps::JUMP)
                    .ok_or(DataplaneError::MissingMap(maps::JUMP))?,
            )
            .map_err(map_err(maps::JUMP))?;
            jump.set(slot, &fd, 0).map_err(map_err(maps::JUMP))?;
        }

        let owners = ebpf
            .take_map(maps::SLOT_OWNERS)
            .ok_or(DataplaneError::MissingMap(maps::SLOT_OWNERS))?;
        let maps = Maps::from_source(
            |name| ebpf.take_map(name).ok_or(DataplaneError::MissingMap(name)),
            Some(owners),
        )?;
        let mut dp = Self {
            ebpf,
            bench: None,
            maps,
            caps,
            slots: BTreeMap::new(),
            live: None,
            next_clean: false,
            owners_written: false,
        };
        dp.caps.slots = dp.maps.counters.len();
        if dp.config()?.flow_timeout == 0 {
            let hz = kernel_hz();
            dp.set_config(Config {
                active_generation: 0,
                flags: 0,
                flow_timeout: DEFAULT_FLOW_TIMEOUT_S * hz,
                fragment_timeout: DEFAULT_FRAGMENT_TIMEOUT_S * hz,
                hz,
                // The table as created (its length is a power of two, see `flow_buckets`).
                flow_mask: dp.maps.flows4.len() - 1,
                flow_keys: random_keys(),
                _pad: 0,
            })?;
        }
        dp.recover_slots()?;
        Ok(dp)
    }

    /// The XDP program (to attach or pin it).
    pub fn program_mut(&mut self) -> Result<&mut Xdp, DataplaneError> {
        Ok(self
            .ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or(DataplaneError::MissingProgram(PROGRAM_NAME))?
            .try_into()?)
    }

    /// Size and verifier work of each program as loaded into this kernel: (name, instructions
    /// after translation, instructions the verifier processed, JITed bytes).
    pub fn program_stats(&self) -> Result<Vec<ProgramStats>, DataplaneError> {
        let mut out = Vec::new();
        for name in [PROGRAM_NAME, CLASSIFIER_NAME, LOGGER_NAME] {
            let prog: &Xdp = self
                .ebpf
                .program(name)
                .ok_or(DataplaneError::MissingProgram(name))?
                .try_into()?;
            let info = prog.info()?;
            out.push(ProgramStats {
                name,
                instructions: info.size_translated().map(|b| b / 8),
                verified_instructions: info.verified_instruction_count(),
                jited_bytes: info.size_jitted(),
            });
        }
        Ok(out)
    }

    /// The drop-logger program (pinned beside the main one so `sdn-loader log` finds its
    /// log ring).
    pub fn logger_mut(&mut self) -> Result<&mut Xdp, DataplaneError> {
        Ok(self
            .ebpf
            .program_mut(LOGGER_NAME)
            .ok_or(DataplaneError::MissingProgram(LOGGER_NAME))?
            .try_into()?)
    }

    /// The configuration in force.
    pub fn config(&self) -> Result<Config, DataplaneError> {
        self.maps.config()
    }

    /// Writes the configuration.
    pub fn set_config(&mut self, cfg: Config) -> Result<(), DataplaneError> {
        self.maps
            .config
            .set(0, cfg, 0)
            .map_err(map_err(maps::CONFIG))
    }

    /// The maps.
    pub fn maps(&self) -> &Maps {
        &self.maps
    }

    /// Sets or clears `flags::*` bits.
    pub fn set_flags(&mut self, set: u32, clear: u32) -> Result<(), DataplaneError> {
        self.maps.update_flags(set, clear)
    }

    /// Agreement id -> slot of the rules now in force.
    pub fn slots(&self) -> &BTreeMap<u32, u32> {
        &self.slots
    }

    fn count_generation(&self, generation: u8) -> Result<(usize, usize), DataplaneError> {
        let mut p = 0;
        for k in self.maps.prefixes.keys() {
            if k.map_err(map_err(maps::PREFIXES))?.generation == generation {
                p += 1;
            }
        }
        let mut r = 0;
        for k in self.maps.rules.keys() {
            if k.map_err(map_err(maps::RULES))?.generation == generation {
                r += 1;
            }
        }
        Ok((p, r))
    }

    fn delete_generation(&mut self, generation: u8) -> Result<(), DataplaneError> {
        let keys: Vec<PrefixKey> = self
            .maps
            .prefixes
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.generation == generation)
            .collect();
        for k in keys {
            self.maps
                .prefixes
                .remove(&k)
                .map_err(map_err(maps::PREFIXES))?;
        }
        let keys: Vec<RuleKey> = self
            .maps
            .rules
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.generation == generation)
            .collect();
        for k in keys {
            self.maps.rules.remove(&k).map_err(map_err(maps::RULES))?;
        }
        for t in 0..sdn_common::table::COUNT as u8 {
            for f in [sdn_common::family::V4, sdn_common::family::V6] {
                self.maps
                    .lengths
                    .set(
                        prefix_lengths_index(u32::from(generation), t, f),
                        PrefixLengths::default(),
                        0,
                    )
                    .map_err(map_err(maps::PREFIX_LENGTHS))?;
            }
        }
        Ok(())
    }

    /// Applies a compiled policy atomically: a packet sees the old policy or the new one.
    /// On any error the policy in force is untouched.
    pub fn apply(&mut self, compiled: &Compiled) -> Result<ApplyReport, DataplaneError> {
        let cfg = self.config()?;
        let active = (cfg.active_generation & 1) as u8;
        let next = active ^ 1;
        // Leftovers of an interrupted apply (or of another loader on these pins). This
        // instance knows when there are none, which keeps a change's path to the switch short.
        if !self.next_clean {
            self.delete_generation(next)?;
            self.next_clean = true;
        }
        let (live_p, live_r) = match self.live {
            Some(c) => c,
            None => self.count_generation(active)?,
        };
        let need_p = compiled.prefixes.len();
        let need_r = compiled.rule_entries();
        if live_p + need_p > self.caps.prefixes as usize {
            return Err(DataplaneError::Full {
                what: maps::PREFIXES,
                needed: need_p,
                available: (self.caps.prefixes as usize).saturating_sub(live_p),
                capacity: self.caps.prefixes,
            });
        }
        if live_r + need_r > self.caps.rules as usize {
            return Err(DataplaneError::Full {
                what: maps::RULES,
                needed: need_r,
                available: (self.caps.rules as usize).saturating_sub(live_r),
                capacity: self.caps.rules,
            });
        }
        let slots = self.assign_slots(&compiled.agreements)?;
        self.next_clean = false;
        if let Err(e) = self.write_generation(compiled, next, &slots) {
            // Best effort: the inactive generation is never read, and the next apply clears it.
            self.next_clean = self.delete_generation(next).is_ok();
            return Err(e);
        }
        let mut new_cfg = cfg;
        // A counter, not just the parity that selects the map entries: flow and fragment
        // entries remember the whole number, so an entry decided two policies ago can never
        // pass for current when the parity comes round again.
        new_cfg.active_generation = cfg.active_generation.wrapping_add(1);
        self.set_config(new_cfg)?;
        self.slots = slots;
        self.live = Some((need_p, need_r));
        self.delete_generation(active)?;
        self.next_clean = true;
        Ok(ApplyReport {
            generation: new_cfg.active_generation,
            prefixes: need_p,
            rules: need_r,
            agreements: compiled.agreements.len(),
        })
    }

    fn write_generation(
        &mut self,
        c: &Compiled,
        generation: u8,
        slots: &BTreeMap<u32, u32>,
    ) -> Result<(), DataplaneError> {
        for l in &c.lengths {
            let mut v = PrefixLengths {
                count: l.lengths.len() as u32,
                ..Default::default()
            };
            for (i, len) in l.lengths.iter().enumerate().take(v.lengths.len()) {
                v.lengths[i] = PrefixLength::new(*len);
            }
            self.maps
                .lengths
                .set(
                    prefix_lengths_index(u32::from(generation), l.table, l.family),
                    v,
                    0,
                )
                .map_err(map_err(maps::PREFIX_LENGTHS))?;
        }
        for p in &c.prefixes {
            let key = PrefixKey {
                generation,
                table: p.table,
                family: p.family,
                prefix_len: p.prefix_len,
                addr: p.addr,
            };
            self.maps
                .prefixes
                .insert(key, PrefixValue { class: p.class }, 0)
                .map_err(map_err(maps::PREFIXES))?;
        }
        for r in &c.rules {
            let chunks: Vec<_> = r.intervals.chunks(RULES_PER_VALUE).collect();
            for (i, chunk) in chunks.iter().enumerate() {
                // Unused entries hold the empty interval 1..=0, which the kernel never matches.
                let mut v = RuleValue {
                    count: chunk.len() as u32,
                    more: u32::from(i + 1 < chunks.len()),
                    entries: [RuleEntry {
                        port_lo: 1,
                        port_hi: 0,
                        agreement: 0,
                        slot: 0,
                    }; RULES_PER_VALUE],
                };
                for (j, iv) in chunk.iter().enumerate() {
                    v.entries[j] = RuleEntry {
                        port_lo: iv.lo,
                        port_hi: iv.hi,
                        agreement: iv.agreement,
                        slot: slots.get(&iv.agreement).copied().unwrap_or(0),
                    };
                }
                let key = RuleKey {
                    generation,
                    protocol: r.protocol,
                    vlan: r.vlan,
                    client_class: r.client_class,
                    endpoint_class: r.endpoint_class,
                    chunk: i as u32,
                };
                self.maps
                    .rules
                    .insert(key, v, 0)
                    .map_err(map_err(maps::RULES))?;
            }
        }
        Ok(())
    }

    /// The object holding `which`: the filter's, or the benchmark object (loaded the first
    /// time a benchmark program is asked for).
    fn object_of(&mut self, which: Program) -> Result<&mut Ebpf, DataplaneError> {
        if which == Program::Filter {
            return Ok(&mut self.ebpf);
        }
        let bench = match self.bench.take() {
            Some(b) => b,
            None => bench::load(&self.ebpf)?,
        };
        Ok(self.bench.insert(bench))
    }

    /// Runs one frame through the program (BPF_PROG_TEST_RUN) and reads its own record of
    /// the decision. The instance must have `flags::RECORD_LAST` set.
    pub fn run_frame(&mut self, frame: &[u8]) -> Result<FrameResult, DataplaneError> {
        let res = self.test_run(Program::Filter, frame, 1)?;
        // One shared record (not per CPU): the thread may have moved between runs.
        let last = self.maps.last.get(&0, 0).map_err(map_err(maps::LAST))?;
        Ok(FrameResult {
            action: res.return_value,
            last,
        })
    }

    /// Runs one frame `repeat` times in the kernel through `which` program and returns the
    /// kernel-measured mean time per run and the action.
    pub fn time_frame(
        &mut self,
        frame: &[u8],
        repeat: u32,
        which: Program,
    ) -> Result<(Duration, u32), DataplaneError> {
        let res = self.test_run(which, frame, repeat)?;
        Ok((res.duration, res.return_value))
    }

    /// BPF_PROG_TEST_RUN of `which` on `frame`, `repeat` times.
    fn test_run(
        &mut self,
        which: Program,
        frame: &[u8],
        repeat: u32,
    ) -> Result<aya::programs::TestRunResult, DataplaneError> {
        let name = which.name();
        let prog: &Xdp = self
            .object_of(which)?
            .program(name)
            .ok_or(DataplaneError::MissingProgram(name))?
            .try_into()
            .map_err(DataplaneError::Program)?;
        let mut out = vec![0u8; frame.len() + 256];
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.data_out = Some(&mut out);
        opts.repeat = repeat;
        prog.test_run(opts).map_err(DataplaneError::TestRun)
    }

    /// Per-agreement counters summed over CPUs, for the agreements in force.
    pub fn agreement_counters(&self) -> Result<Vec<(u32, AgreementCounters)>, DataplaneError> {
        self.maps.counters_of(&self.slots)
    }

    /// Packets per reason, summed over CPUs.
    pub fn reason_counts(&self) -> Result<StdHashMap<u32, u64>, DataplaneError> {
        self.maps.reason_counts()
    }
}

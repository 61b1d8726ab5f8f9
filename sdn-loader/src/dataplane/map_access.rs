//! Reading and writing the maps a running data plane pins: counters, reasons, the flow
//! table's use, the slots and the configuration word, for commands that do not load the
//! program (`stats`, `log`, the KPI collector).

#[allow(
    clippy::wildcard_imports,
    reason = "the data plane's shared imports and types"
)]
use super::*;

/// What the IPv4 flow table holds, for operators sizing it (`sdn-loader stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FlowTableUsage {
    /// Entries the table can hold (buckets x `FLOW_WAYS`).
    pub capacity: u64,
    /// Passing flows decided under the policy in force (idle ones included: entries expire
    /// when they are next looked at or replaced).
    pub flows: u64,
    /// Remembered denials under the policy in force.
    pub denials: u64,
    /// Entries of older policies, or torn: free for the taking.
    pub spent: u64,
    /// Buckets with every entry taken by the policy in force (new flows there replace the
    /// least recently seen one).
    pub full_buckets: u64,
}

/// The active generation's classifier and rule entries ([`Maps::active_tables`]).
#[derive(Clone, Debug, Default)]
pub struct ActiveTables {
    /// The generation in force (0 or 1).
    pub generation: u8,
    /// Prefix entries: (table, family, prefix) -> class.
    pub prefixes: Vec<(sdn_common::PrefixKey, sdn_common::PrefixValue)>,
    /// Rule entries: (protocol, VLAN, client class, endpoint class, chunk) -> intervals.
    pub rules: Vec<(sdn_common::RuleKey, sdn_common::RuleValue)>,
}

impl Maps {
    /// Takes the maps from a loaded object (or any other source of `Map`s by name).
    pub(super) fn from_source(
        mut take: impl FnMut(&'static str) -> Result<Map, DataplaneError>,
        owners: Option<Map>,
    ) -> Result<Self, DataplaneError> {
        Ok(Self {
            config: Array::try_from(take(maps::CONFIG)?).map_err(map_err(maps::CONFIG))?,
            prefixes: HashMap::try_from(take(maps::PREFIXES)?).map_err(map_err(maps::PREFIXES))?,
            lengths: Array::try_from(take(maps::PREFIX_LENGTHS)?)
                .map_err(map_err(maps::PREFIX_LENGTHS))?,
            rules: HashMap::try_from(take(maps::RULES)?).map_err(map_err(maps::RULES))?,
            counters: PerCpuArray::try_from(take(maps::COUNTERS)?)
                .map_err(map_err(maps::COUNTERS))?,
            stats: PerCpuArray::try_from(take(maps::STATS)?).map_err(map_err(maps::STATS))?,
            last: Array::try_from(take(maps::LAST)?).map_err(map_err(maps::LAST))?,
            flows4: Array::try_from(take(maps::FLOWS4)?).map_err(map_err(maps::FLOWS4))?,
            owners: owners
                .map(HashMap::try_from)
                .transpose()
                .map_err(map_err(maps::SLOT_OWNERS))?,
        })
    }

    /// Opens the maps pinned under `pin_dir/maps/` by a running data plane.
    pub fn open_pinned(pin_dir: &Path) -> Result<Self, DataplaneError> {
        let dir = pin_dir.join(crate::paths::MAPS_SUBDIR);
        let open = |name: &'static str| {
            let data = MapData::from_pin(dir.join(name)).map_err(map_err(name))?;
            Map::from_map_data(data).map_err(map_err(name))
        };
        // Pins of a data plane started by an older build have no owner map.
        let owners = if dir.join(maps::SLOT_OWNERS).exists() {
            Some(open(maps::SLOT_OWNERS)?)
        } else {
            None
        };
        Self::from_source(open, owners)
    }

    /// The prefix and rule entries of the generation in force, as the kernel holds them.
    ///
    /// # Errors
    /// [`DataplaneError::Map`] when a map cannot be read.
    pub fn active_tables(&self) -> Result<ActiveTables, DataplaneError> {
        let generation = (self.config()?.active_generation & 1) as u8;
        let mut prefixes = Vec::new();
        for kv in &self.prefixes {
            let (k, v) = kv.map_err(map_err(maps::PREFIXES))?;
            if k.generation == generation {
                prefixes.push((k, v));
            }
        }
        let mut rules = Vec::new();
        for kv in &self.rules {
            let (k, v) = kv.map_err(map_err(maps::RULES))?;
            if k.generation == generation {
                rules.push((k, v));
            }
        }
        Ok(ActiveTables {
            generation,
            prefixes,
            rules,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> Result<Config, DataplaneError> {
        self.config.get(&0, 0).map_err(map_err(maps::CONFIG))
    }

    /// What the IPv4 flow table holds (one lookup per bucket).
    pub fn flow_table_usage(&self) -> Result<FlowTableUsage, DataplaneError> {
        let cfg = self.config()?;
        let table = &self.flows4;
        let mut u = FlowTableUsage {
            capacity: u64::from(table.len()) * FLOW_WAYS as u64,
            ..FlowTableUsage::default()
        };
        for i in 0..table.len() {
            let bucket = table.get(&i, 0).map_err(map_err(maps::FLOWS4))?;
            let mut taken = 0;
            for e in &bucket.ways {
                if e.check == 0 {
                    continue;
                }
                let valid = e.check == e.compute_check(e.key.table_hash(&cfg.flow_keys));
                if !valid || e.generation != cfg.active_generation {
                    u.spent += 1;
                } else if e.kind == sdn_common::kind::DROP {
                    u.denials += 1;
                    taken += 1;
                } else {
                    u.flows += 1;
                    taken += 1;
                }
            }
            if taken == FLOW_WAYS {
                u.full_buckets += 1;
            }
        }
        Ok(u)
    }

    /// Sets or clears `flags::*` bits of the configuration in force.
    pub fn update_flags(&mut self, set: u32, clear: u32) -> Result<(), DataplaneError> {
        let mut cfg = self.config()?;
        cfg.flags = (cfg.flags & !clear) | set;
        self.config.set(0, cfg, 0).map_err(map_err(maps::CONFIG))
    }

    /// Agreement id -> counter slot, read from the rules of the generation in force.
    pub fn slots_in_force(&self) -> Result<BTreeMap<u32, u32>, DataplaneError> {
        // An apply may switch generations while the rules are read: read again until the
        // generation in force is the same before and after.
        loop {
            let generation = self.config()?.active_generation;
            let slots = self.slots_of_generation((generation & 1) as u8)?;
            if self.config()?.active_generation == generation {
                return Ok(slots);
            }
        }
    }

    fn slots_of_generation(&self, active: u8) -> Result<BTreeMap<u32, u32>, DataplaneError> {
        let mut slots = BTreeMap::new();
        let mut add = |k: &RuleKey, v: &RuleValue| {
            if k.generation == active && k.client_class != sdn_common::INFRA_CLASS {
                for e in v.entries.iter().take(v.count as usize) {
                    slots.insert(e.agreement, e.slot);
                }
            }
        };
        let ks = std::mem::size_of::<RuleKey>();
        let vs = std::mem::size_of::<RuleValue>();
        let limit = self.rules.map().info().map_or(0, |i| i.max_entries()) as usize;
        match crate::kpi::batch::lookup_all(self.rules.map().fd(), None, ks, vs, limit, 8192) {
            Ok((keys, values)) => {
                for (k, v) in keys.chunks_exact(ks).zip(values.chunks_exact(vs)) {
                    // SAFETY: RuleKey and RuleValue are plain `repr(C)` integers (Pod), and
                    // each chunk has exactly their size.
                    let (k, v) = unsafe {
                        (
                            std::ptr::read_unaligned(k.as_ptr().cast::<RuleKey>()),
                            std::ptr::read_unaligned(v.as_ptr().cast::<RuleValue>()),
                        )
                    };
                    add(&k, &v);
                }
            }
            // A kernel without batch lookups on hash maps: one entry at a time.
            Err(_) => {
                for item in &self.rules {
                    let (k, v) = item.map_err(map_err(maps::RULES))?;
                    add(&k, &v);
                }
            }
        }
        Ok(slots)
    }

    /// Counters of slots `0..n` summed over CPUs, read with batched lookups.
    pub fn slot_counters_upto(&self, n: u32) -> Result<Vec<AgreementCounters>, DataplaneError> {
        let n = n.min(self.counters.len());
        if n == 0 {
            return Ok(Vec::new());
        }
        let ncpus = aya::util::nr_cpus().map_err(|(_, e)| DataplaneError::Cpus(e))?;
        let one = std::mem::size_of::<AgreementCounters>().next_multiple_of(8);
        let per_elem = one * ncpus;
        // 4096 slots per call: 320 KiB of values on 2 CPUs, a few MiB on a 32-core router.
        match crate::kpi::batch::lookup_all(
            self.counters.map().fd(),
            None,
            4,
            per_elem,
            n as usize,
            4096,
        ) {
            Ok((keys, values)) if keys.len() == n as usize * 4 => Ok(values
                .chunks_exact(per_elem)
                .map(|elem| {
                    let per_cpu = elem.chunks_exact(one).map(|c| {
                        // SAFETY: AgreementCounters is plain `repr(C)` u64s; `c` holds one.
                        unsafe { std::ptr::read_unaligned(c.as_ptr().cast::<AgreementCounters>()) }
                    });
                    per_cpu.fold(AgreementCounters::default(), |a, c| add_counters(&a, &c))
                })
                .collect()),
            // No batch support (or a short answer): one slot at a time.
            _ => (0..n).map(|s| self.slot_counters(s)).collect(),
        }
    }

    /// Zeroes one slot's counters (the KPI collector does this once it has recorded the last
    /// counts of an agreement that is no longer in force, so the slot can be reused).
    pub fn zero_slot(&mut self, slot: u32) -> Result<(), DataplaneError> {
        let ncpus = aya::util::nr_cpus().map_err(|(_, e)| DataplaneError::Cpus(e))?;
        let zero = PerCpuValues::try_from(vec![AgreementCounters::default(); ncpus])
            .map_err(DataplaneError::Cpus)?;
        self.counters
            .set(slot, zero, 0)
            .map_err(map_err(maps::COUNTERS))
    }

    /// Slot -> the agreement it was last handed to, for every slot not yet retired by the
    /// collector (empty when the pins have no owner map).
    pub fn slot_owners(&self) -> Result<StdHashMap<u32, u32>, DataplaneError> {
        let Some(owners) = &self.owners else {
            return Ok(StdHashMap::new());
        };
        let limit = owners.map().info().map_or(0, |i| i.max_entries()) as usize;
        let mut out = StdHashMap::new();
        match crate::kpi::batch::lookup_all(owners.map().fd(), None, 4, 4, limit, 8192) {
            Ok((keys, values)) => {
                for (k, v) in keys.chunks_exact(4).zip(values.chunks_exact(4)) {
                    let word = |b: &[u8]| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
                    out.insert(word(k), word(v));
                }
            }
            // A kernel without batch lookups on hash maps: one entry at a time.
            Err(_) => {
                for item in owners {
                    let (k, v) = item.map_err(map_err(maps::SLOT_OWNERS))?;
                    out.insert(k, v);
                }
            }
        }
        Ok(out)
    }

    /// Records that `slot` now counts for `agreement`.
    pub(super) fn set_slot_owner(
        &mut self,
        slot: u32,
        agreement: u32,
    ) -> Result<(), DataplaneError> {
        match &mut self.owners {
            Some(o) => o
                .insert(slot, agreement, 0)
                .map_err(map_err(maps::SLOT_OWNERS)),
            None => Ok(()),
        }
    }

    /// Forgets `slot`'s owner if it is still `agreement` (the collector, once it has recorded
    /// the slot's last counts; a loader that handed the slot on meanwhile keeps its entry).
    pub fn release_slot_owner(&mut self, slot: u32, agreement: u32) -> Result<(), DataplaneError> {
        let Some(o) = &mut self.owners else {
            return Ok(());
        };
        match o.get(&slot, 0) {
            Ok(a) if a == agreement => match o.remove(&slot) {
                Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
                Err(e) => Err(map_err(maps::SLOT_OWNERS)(e)),
            },
            Ok(_) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err(maps::SLOT_OWNERS)(e)),
        }
    }

    /// Counter slots in the map.
    pub fn slot_capacity(&self) -> u32 {
        self.counters.len()
    }

    /// Counters of the given agreements (id -> slot), summed over CPUs.
    pub fn counters_of(
        &self,
        slots: &BTreeMap<u32, u32>,
    ) -> Result<Vec<(u32, AgreementCounters)>, DataplaneError> {
        let mut out = Vec::with_capacity(slots.len());
        for (&id, &slot) in slots {
            out.push((id, self.slot_counters(slot)?));
        }
        Ok(out)
    }

    /// Counters of one slot summed over CPUs.
    pub fn slot_counters(&self, slot: u32) -> Result<AgreementCounters, DataplaneError> {
        let per_cpu = self
            .counters
            .get(&slot, 0)
            .map_err(map_err(maps::COUNTERS))?;
        Ok(sum_counters(per_cpu.iter()))
    }

    /// Packets per reason, summed over CPUs.
    pub fn reason_counts(&self) -> Result<StdHashMap<u32, u64>, DataplaneError> {
        let mut out = StdHashMap::new();
        for r in 0..reason::COUNT {
            let v = self.stats.get(&r, 0).map_err(map_err(maps::STATS))?;
            out.insert(r, v.iter().sum());
        }
        Ok(out)
    }
}

/// Sums per-CPU counters.
pub fn sum_counters<'a>(values: impl Iterator<Item = &'a AgreementCounters>) -> AgreementCounters {
    values.fold(AgreementCounters::default(), |a, c| add_counters(&a, c))
}

/// `a + b`, field by field (wrapping, as the kernel's counters do).
pub fn add_counters(a: &AgreementCounters, b: &AgreementCounters) -> AgreementCounters {
    AgreementCounters {
        forward_packets: a.forward_packets.wrapping_add(b.forward_packets),
        forward_bytes: a.forward_bytes.wrapping_add(b.forward_bytes),
        reply_packets: a.reply_packets.wrapping_add(b.reply_packets),
        reply_bytes: a.reply_bytes.wrapping_add(b.reply_bytes),
        transactions: a.transactions.wrapping_add(b.transactions),
    }
}

//! Counter slots: which per-agreement counter slot each agreement in force counts to, and how
//! free slots are chosen for new agreements so that no uncollected count is wiped or counted
//! for another agreement.

use std::collections::BTreeMap;

use aya::maps::PerCpuValues;
use sdn_common::{AgreementCounters, maps};

use super::{Dataplane, DataplaneError, map_err};

impl Dataplane {
    pub(super) fn recover_slots(&mut self) -> Result<(), DataplaneError> {
        self.slots = self.maps.slots_in_force()?;
        Ok(())
    }

    /// Assigns slots for `agreements`: kept ones keep theirs, new ones get free slots whose
    /// counters are zeroed first (a slot may have belonged to a removed agreement), and every
    /// slot handed out is recorded in the owner map before the switch.
    ///
    /// Free slots are taken in this order, so that no agreement's counts are wiped before the
    /// KPI collector has recorded them or counted for another agreement:
    /// 1. counters all zero, and not used by the generation in force (a slot of an agreement
    ///    this very change removes could still count that agreement's packets until the
    ///    switch);
    /// 2. counters all zero, used by the generation in force;
    /// 3. counters not zero: the last counts of a removed agreement that the collector has
    ///    not recorded yet (it zeroes the slot once it has). Taken only when nothing else is
    ///    left; those counts are then lost, and a warning says so.
    pub(super) fn assign_slots(
        &mut self,
        agreements: &[u32],
    ) -> Result<BTreeMap<u32, u32>, DataplaneError> {
        if agreements.len() > self.caps.slots as usize {
            return Err(DataplaneError::SlotsFull {
                needed: agreements.len(),
                capacity: self.caps.slots,
            });
        }
        let mut out = BTreeMap::new();
        let mut used = vec![false; self.caps.slots as usize];
        for id in agreements {
            if let Some(&s) = self.slots.get(id) {
                if (s as usize) < used.len() && !used[s as usize] {
                    used[s as usize] = true;
                    out.insert(*id, s);
                }
            }
        }
        let new_ids: Vec<u32> = agreements
            .iter()
            .copied()
            .filter(|id| !out.contains_key(id))
            .collect();
        let mut in_force = vec![false; self.caps.slots as usize];
        for &s in self.slots.values() {
            if let Some(f) = in_force.get_mut(s as usize) {
                *f = true;
            }
        }
        let free = self.free_slots_by_preference(&used, &in_force, new_ids.len())?;
        if free.len() < new_ids.len() {
            return Err(DataplaneError::SlotsFull {
                needed: agreements.len(),
                capacity: self.caps.slots,
            });
        }
        let ncpus = aya::util::nr_cpus().map_err(|(_, e)| DataplaneError::Cpus(e))?;
        let mut wiped = 0usize;
        for (id, (s, clean)) in new_ids.iter().zip(free) {
            out.insert(*id, s);
            if !clean {
                wiped += 1;
                let zero = PerCpuValues::try_from(vec![AgreementCounters::default(); ncpus])
                    .map_err(DataplaneError::Cpus)?;
                self.maps
                    .counters
                    .set(s, zero, 0)
                    .map_err(map_err(maps::COUNTERS))?;
            }
            self.maps.set_slot_owner(s, *id)?;
        }
        if wiped > 0 {
            tracing::warn!(
                slots = wiped,
                capacity = self.caps.slots,
                "counter slots reused before the KPI collector recorded their last counts (those counts are lost): the counter map is nearly full"
            );
        }
        if !self.owners_written {
            // Slots kept from pins written by an older build may have no owner yet.
            for (id, s) in &out {
                if self.slots.get(id) == Some(s) {
                    self.maps.set_slot_owner(*s, *id)?;
                }
            }
            self.owners_written = true;
        }
        Ok(out)
    }

    /// Up to `n` free slots (not in `used`) in the order of [`Self::assign_slots`], each with
    /// whether its counters are all zero.
    pub(super) fn free_slots_by_preference(
        &self,
        used: &[bool],
        in_force: &[bool],
        n: usize,
    ) -> Result<Vec<(u32, bool)>, DataplaneError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let total = used.len();
        // Read the counters of a prefix of the array, growing it until enough clean free
        // slots are found (slots are handed out from the bottom, so the prefix is short).
        let mut scan = (used.iter().filter(|u| **u).count()
            + in_force.iter().filter(|u| **u).count()
            + 2 * n
            + 1024)
            .min(total);
        loop {
            let counters = self.maps.slot_counters_upto(scan as u32)?;
            let clean = |i: usize| !used[i] && counters[i] == AgreementCounters::default();
            let mut out: Vec<(u32, bool)> = (0..scan)
                .filter(|&i| clean(i) && !in_force[i])
                .map(|i| (i as u32, true))
                .take(n)
                .collect();
            if out.len() == n || scan == total {
                let second = (0..scan)
                    .filter(|&i| clean(i) && in_force[i])
                    .map(|i| (i as u32, true));
                let need = n - out.len();
                out.extend(second.take(need));
                let dirty = (0..total)
                    .filter(|&i| {
                        !used[i] && (i >= scan || counters[i] != AgreementCounters::default())
                    })
                    .map(|i| (i as u32, false));
                let need = n - out.len();
                out.extend(dirty.take(need));
                return Ok(out);
            }
            scan = (scan * 2).min(total);
        }
    }
}

//! The collector: one pass reads every counter slot and reason counter (batched lookups),
//! computes deltas against the stored baselines, and writes deltas and new baselines in one
//! transaction. See the module documentation of [`crate::kpi`] for the counting rules.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::{KpiError, Retention, Traffic, store::KpiStore};
use crate::dataplane::Maps;

/// What the collector last recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Baseline {
    /// Slot -> (agreement it held, counters recorded).
    pub slots: HashMap<u32, (u32, Traffic)>,
    /// Reason name -> packets recorded.
    pub reasons: HashMap<String, u64>,
}

/// One reading of the data plane.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    /// Agreement id -> slot, of the policy in force.
    pub slots: BTreeMap<u32, u32>,
    /// Slot -> the agreement it was last handed to, for slots not yet retired (in force or
    /// not): how the last counts of an agreement that came and went between two passes are
    /// found and attributed.
    pub owners: HashMap<u32, u32>,
    /// Counters by slot (summed over CPUs), for slots `0..len`.
    pub counters: Vec<Traffic>,
    /// Packets per reason (summed over CPUs).
    pub reasons: Vec<(&'static str, u64)>,
}

/// What one pass writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Non-zero deltas per agreement.
    pub traffic: BTreeMap<u32, Traffic>,
    /// Non-zero deltas per reason.
    pub reasons: BTreeMap<String, u64>,
    /// Baselines to write (slot, agreement, counters): new or changed.
    pub set_slots: Vec<(u32, u32, Traffic)>,
    /// Baselines to delete (the slot's agreement left the policy, or the slot was reused).
    pub drop_slots: Vec<u32>,
    /// Reason baselines to write.
    pub set_reasons: Vec<(String, u64)>,
    /// Slots whose agreement left the policy, with that agreement: zero them and release
    /// their owner entry once the pass is committed.
    pub retire: Vec<(u32, u32)>,
}

/// Computes a pass from the baseline and a reading (pure: the counting rules live here).
pub fn plan(base: &Baseline, obs: &Observation) -> Plan {
    let mut p = Plan::default();
    let at = |slot: u32| obs.counters.get(slot as usize).copied().unwrap_or_default();
    let in_force: HashMap<u32, u32> = obs.slots.iter().map(|(&a, &s)| (s, a)).collect();
    for (&agreement, &slot) in &obs.slots {
        let now = at(slot);
        let delta = match base.slots.get(&slot) {
            Some((a, old)) if *a == agreement => {
                if now == *old {
                    continue;
                }
                now.since(old)
            }
            // A slot new to this agreement was zeroed when it was handed out.
            _ => now,
        };
        if !delta.is_zero() {
            p.traffic.entry(agreement).or_default().add(&delta);
        }
        p.set_slots.push((slot, agreement, now));
    }
    for (&slot, (agreement, old)) in &base.slots {
        match in_force.get(&slot) {
            Some(a) if a == agreement => {}
            // Reused for another agreement: its counts were zeroed on reuse (only when no
            // clean slot was free); the new owner's baseline replaces this one.
            Some(_) => {}
            None => {
                // The agreement left the policy: its last counts are still in the slot,
                // unless the slot was handed to another agreement (from zero) that has left
                // too since the last pass.
                let (owner, delta) = match obs.owners.get(&slot) {
                    Some(o) if o != agreement => (*o, at(slot)),
                    _ => (*agreement, at(slot).since(old)),
                };
                if !delta.is_zero() {
                    p.traffic.entry(owner).or_default().add(&delta);
                }
                p.drop_slots.push(slot);
                p.retire.push((slot, owner));
            }
        }
    }
    // Agreements that came and went between two passes: never in a baseline, their slot is
    // known only from its owner entry (its counts start from zero, as handed out).
    let mut unseen: Vec<(u32, u32)> = obs
        .owners
        .iter()
        .filter(|(s, _)| !in_force.contains_key(s) && !base.slots.contains_key(s))
        .map(|(&s, &a)| (s, a))
        .collect();
    unseen.sort_unstable();
    for (slot, owner) in unseen {
        let delta = at(slot);
        if !delta.is_zero() {
            p.traffic.entry(owner).or_default().add(&delta);
        }
        p.retire.push((slot, owner));
    }
    for (name, now) in &obs.reasons {
        let old = base.reasons.get(*name).copied();
        if old == Some(*now) {
            continue;
        }
        let old = old.unwrap_or(0);
        let delta = if *now >= old { now - old } else { *now };
        if delta > 0 {
            p.reasons.insert((*name).to_owned(), delta);
        }
        p.set_reasons.push(((*name).to_owned(), *now));
    }
    p
}

impl Baseline {
    /// The baseline after `plan` is committed.
    pub fn apply(&mut self, plan: &Plan) {
        for s in &plan.drop_slots {
            self.slots.remove(s);
        }
        for (slot, agreement, t) in &plan.set_slots {
            self.slots.insert(*slot, (*agreement, *t));
        }
        for (r, v) in &plan.set_reasons {
            self.reasons.insert(r.clone(), *v);
        }
    }
}

/// Figures of one pass.
#[derive(Clone, Debug, Default)]
pub struct PassReport {
    /// Agreements in force.
    pub agreements: usize,
    /// Agreements with traffic since the last pass.
    pub active: usize,
    /// Time reading the maps.
    pub read: Duration,
    /// Time computing and writing.
    pub write: Duration,
    /// Slots retired (zeroed after their last counts were recorded).
    pub retired: usize,
}

/// Collects one router's counters into the KPI tables.
pub struct Collector {
    router: String,
    maps: Maps,
    store: KpiStore,
    base: Option<Baseline>,
    retention: Retention,
    last_retention: Option<Instant>,
}

impl Collector {
    /// A collector for `router`, reading `maps`, writing to `store`.
    pub fn new(router: impl Into<String>, maps: Maps, store: KpiStore) -> Self {
        Self {
            router: router.into(),
            maps,
            store,
            base: None,
            retention: Retention::default(),
            last_retention: None,
        }
    }

    /// Sets the retention (default: [`Retention::default`]).
    #[must_use]
    pub fn with_retention(mut self, r: Retention) -> Self {
        self.retention = r;
        self
    }

    /// Reads the data plane now.
    ///
    /// # Errors
    /// [`KpiError::Dataplane`].
    pub fn observe(&self, known_slots: impl Iterator<Item = u32>) -> Result<Observation, KpiError> {
        let slots = self.maps.slots_in_force()?;
        let owners = self.maps.slot_owners()?;
        let upto = slots
            .values()
            .copied()
            .chain(known_slots)
            .chain(owners.keys().copied())
            .max()
            .map_or(0, |m| m + 1);
        let counters = self
            .maps
            .slot_counters_upto(upto)?
            .into_iter()
            .map(Traffic::from)
            .collect();
        let by_reason = self.maps.reason_counts()?;
        let reasons = (0..sdn_common::reason::COUNT)
            .map(|r| {
                (
                    sdn_common::reason::name(r),
                    by_reason.get(&r).copied().unwrap_or(0),
                )
            })
            .collect();
        Ok(Observation {
            slots,
            owners,
            counters,
            reasons,
        })
    }

    /// One pass at time `now`: read, compute, write (one transaction), then zero retired
    /// slots. On an error nothing is written and the next pass starts from the stored
    /// baseline again.
    ///
    /// # Errors
    /// [`KpiError`].
    pub async fn pass(&mut self, now: DateTime<Utc>) -> Result<PassReport, KpiError> {
        if self.store.refresh().await? {
            // A new file: its own baseline.
            self.base = None;
        }
        let base = match self.base.take() {
            Some(b) => b,
            None => self.store.load_baseline(&self.router).await?,
        };
        let t0 = Instant::now();
        let obs = self.observe(base.slots.keys().copied())?;
        let read = t0.elapsed();
        let t1 = Instant::now();
        let p = plan(&base, &obs);
        self.store
            .write_pass(&self.router, now, &p, obs.slots.len(), read)
            .await?;
        let mut base = base;
        base.apply(&p);
        self.base = Some(base);
        // Zero retired slots only if still out of the policy (an apply may have run since).
        let mut retired = 0;
        if !p.retire.is_empty() {
            let in_force: std::collections::HashSet<u32> =
                self.maps.slots_in_force()?.into_values().collect();
            for &(s, owner) in &p.retire {
                if !in_force.contains(&s) {
                    self.maps.zero_slot(s)?;
                    self.maps.release_slot_owner(s, owner)?;
                    retired += 1;
                }
            }
        }
        if self
            .last_retention
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(3600))
        {
            self.store.apply_retention(now, &self.retention).await?;
            self.last_retention = Some(Instant::now());
        }
        Ok(PassReport {
            agreements: obs.slots.len(),
            active: p.traffic.len(),
            read,
            write: t1.elapsed(),
            retired,
        })
    }

    /// Runs passes every `interval` until `shutdown`, and a last pass when stopping so that a
    /// clean shutdown leaves nothing uncollected. Errors are logged and the next pass retries
    /// (the baseline is re-read from the database).
    pub async fn run(&mut self, interval: Duration, shutdown: &crate::daemon::Shutdown) {
        loop {
            match self.pass(Utc::now()).await {
                Ok(r) => tracing::debug!(
                    agreements = r.agreements,
                    active = r.active,
                    read_ms = r.read.as_secs_f64() * 1e3,
                    write_ms = r.write.as_secs_f64() * 1e3,
                    "KPI pass"
                ),
                Err(e) => {
                    tracing::warn!("KPI collection pass failed (retried next interval): {e:#}");
                    self.base = None;
                }
            }
            if shutdown.sleep(interval).await {
                if let Err(e) = self.pass(Utc::now()).await {
                    tracing::warn!("last KPI pass failed: {e:#}");
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "a test fails by panicking with the cause"
    )]
    use super::*;

    fn t(p: u64) -> Traffic {
        Traffic {
            forward_packets: p,
            forward_bytes: p * 100,
            ..Default::default()
        }
    }

    fn obs(slots: &[(u32, u32)], counters: &[u64]) -> Observation {
        Observation {
            slots: slots.iter().copied().collect(),
            // The loader records an owner for every slot it hands out.
            owners: slots.iter().map(|&(a, s)| (s, a)).collect(),
            counters: counters.iter().map(|&p| t(p)).collect(),
            reasons: vec![("no-agreement", 0)],
        }
    }

    /// A reading where `gone` (slot, agreement) left the policy but keep their owner entry.
    fn obs_with_gone(slots: &[(u32, u32)], gone: &[(u32, u32)], counters: &[u64]) -> Observation {
        let mut o = obs(slots, counters);
        o.owners.extend(gone.iter().copied());
        o
    }

    /// Replays a sequence of readings and returns the total recorded per agreement.
    fn run(readings: &[Observation]) -> BTreeMap<u32, u64> {
        let mut base = Baseline::default();
        let mut total = BTreeMap::new();
        for o in readings {
            let p = plan(&base, o);
            for (a, d) in &p.traffic {
                *total.entry(*a).or_insert(0) += d.forward_packets;
            }
            base.apply(&p);
        }
        total
    }

    #[test]
    fn steady_counters_are_recorded_once() {
        let total = run(&[
            obs(&[(1, 0), (2, 1)], &[5, 7]),
            obs(&[(1, 0), (2, 1)], &[9, 7]),
            obs(&[(1, 0), (2, 1)], &[9, 10]),
        ]);
        assert_eq!(total, BTreeMap::from([(1, 9), (2, 10)]));
    }

    #[test]
    fn a_removed_agreement_keeps_its_last_counts_and_its_slot_is_retired() {
        let base = {
            let mut b = Baseline::default();
            b.apply(&plan(&b, &obs(&[(1, 0), (2, 1)], &[5, 7])));
            b
        };
        // Agreement 2 left the policy after 3 more packets.
        let p = plan(&base, &obs(&[(1, 0)], &[5, 10]));
        assert_eq!(p.traffic.get(&2).map(|t| t.forward_packets), Some(3));
        assert_eq!(p.retire, vec![(1, 2)]);
        assert_eq!(p.drop_slots, vec![1]);
    }

    #[test]
    fn a_reused_slot_starts_from_zero_for_its_new_agreement() {
        // Slot 1 held agreement 2 (7 packets recorded); it was zeroed and given to 3, which
        // counted 4.
        let total = run(&[
            obs(&[(1, 0), (2, 1)], &[5, 7]),
            obs(&[(1, 0), (3, 1)], &[5, 4]),
        ]);
        assert_eq!(total, BTreeMap::from([(1, 5), (2, 7), (3, 4)]));
    }

    #[test]
    fn an_agreement_that_came_and_went_between_passes_is_counted() {
        // Agreement 2 was approved (slot 1), carried 3 packets and was revoked, all between
        // two passes: only its owner entry tells whose counts slot 1 holds.
        let total = run(&[
            obs(&[(1, 0)], &[5]),
            obs_with_gone(&[(1, 0)], &[(1, 2)], &[6, 3]),
        ]);
        assert_eq!(total, BTreeMap::from([(1, 6), (2, 3)]));
        let mut base = Baseline::default();
        base.apply(&plan(&base, &obs(&[(1, 0)], &[5])));
        let p = plan(&base, &obs_with_gone(&[(1, 0)], &[(1, 2)], &[6, 3]));
        assert_eq!(p.retire, vec![(1, 2)]);
    }

    #[test]
    fn a_slot_handed_on_and_left_again_counts_for_its_last_owner() {
        // Slot 1 held agreement 2 (7 recorded); with the map full it was zeroed and handed to
        // agreement 3, which counted 4 and left before the next pass. The 4 are 3's.
        let mut base = Baseline::default();
        base.apply(&plan(&base, &obs(&[(1, 0), (2, 1)], &[5, 7])));
        let p = plan(&base, &obs_with_gone(&[(1, 0)], &[(1, 3)], &[5, 4]));
        assert_eq!(p.traffic.get(&3).map(|t| t.forward_packets), Some(4));
        assert_eq!(p.traffic.get(&2), None);
        assert_eq!(p.retire, vec![(1, 3)]);
    }

    #[test]
    fn counters_that_go_down_are_a_fresh_start() {
        let total = run(&[obs(&[(1, 0)], &[50]), obs(&[(1, 0)], &[20])]);
        assert_eq!(total, BTreeMap::from([(1, 70)]));
    }

    #[test]
    fn an_agreement_that_moves_slots_is_counted_in_both() {
        // Removed and added again between passes: old slot retired, new slot fresh.
        let total = run(&[obs(&[(1, 0)], &[5]), obs(&[(1, 3)], &[8, 0, 0, 2])]);
        assert_eq!(total, BTreeMap::from([(1, 10)]));
    }
}

//! What a sync would change on a router, and the blast-radius guard's judgement of it.
//!
//! A *rule* here is one line of the allow list as an operator reads it: an agreement in force,
//! one of its client's prefixes, one endpoint of its service (address, protocol, ports) and
//! its VLAN. The guard holds a sync that would remove agreements that carried traffic
//! recently, or more than a configured share of the rules, until someone confirms it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use ipnet::IpNet;

use crate::{
    config::GuardConfig,
    policy::{Policy, Protocol},
};

/// One allow-list rule (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    /// Agreement id.
    pub agreement: u32,
    /// Client prefix.
    pub client: IpNet,
    /// Endpoint address.
    pub endpoint: IpNet,
    /// Protocol name.
    pub protocol: &'static str,
    /// Ports as written (`""`: every port).
    pub ports: String,
    /// VLAN (0: any).
    pub vlan: u16,
}

/// The rules of the agreements in force on `today`.
pub fn rules(policy: &Policy, today: NaiveDate) -> BTreeSet<Rule> {
    let mut out = BTreeSet::new();
    for (a, c, s) in policy.in_force_with_parties(today) {
        for e in &s.endpoints {
            let ports = e
                .ports
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",");
            for p in &c.prefixes {
                out.insert(Rule {
                    agreement: a.id,
                    client: *p,
                    endpoint: e.address,
                    protocol: protocol_name(e.protocol),
                    ports: ports.clone(),
                    vlan: a.vlan.unwrap_or(0),
                });
            }
        }
    }
    out
}

impl std::fmt::Display for Rule {
    /// One line of the allow list: `1001 198.51.100.0/24 -> 203.0.113.10/32 tcp 443 vlan any`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ports = if self.ports.is_empty() {
            "every port"
        } else {
            &self.ports
        };
        write!(
            f,
            "{} {} -> {} {} {ports} vlan ",
            self.agreement, self.client, self.endpoint, self.protocol
        )?;
        if self.vlan == 0 {
            f.write_str("any")
        } else {
            write!(f, "{}", self.vlan)
        }
    }
}

impl Rule {
    /// The rule as a JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "agreement": self.agreement,
            "client": self.client.to_string(),
            "endpoint": self.endpoint.to_string(),
            "protocol": self.protocol,
            "ports": self.ports,
            "vlan": (self.vlan != 0).then_some(self.vlan),
        })
    }
}

/// The rule lines that go (in `before`, not in `after`) and that come, in rule order.
pub fn line_diff<'a>(
    before: &'a BTreeSet<Rule>,
    after: &'a BTreeSet<Rule>,
) -> (Vec<&'a Rule>, Vec<&'a Rule>) {
    (
        before.difference(after).collect(),
        after.difference(before).collect(),
    )
}

fn protocol_name(p: Protocol) -> &'static str {
    p.name()
}

/// What going from one policy to another changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Agreements that come into force.
    pub added: Vec<u32>,
    /// Agreements that lose access.
    pub removed: Vec<u32>,
    /// Agreements in force before and after whose rules change.
    pub changed: Vec<u32>,
    /// Rules before.
    pub rules_before: usize,
    /// Rules after.
    pub rules_after: usize,
    /// Rules that go.
    pub rules_removed: usize,
    /// Rules that come.
    pub rules_added: usize,
}

impl Plan {
    /// Compares the rules in force (`before`) with those of the next sync (`after`).
    pub fn between(before: &BTreeSet<Rule>, after: &BTreeSet<Rule>) -> Self {
        let ids = |rules: &BTreeSet<Rule>| -> BTreeSet<u32> {
            rules.iter().map(|r| r.agreement).collect()
        };
        let (old_ids, new_ids) = (ids(before), ids(after));
        let gone: Vec<&Rule> = before.difference(after).collect();
        let come: Vec<&Rule> = after.difference(before).collect();
        let touched: BTreeSet<u32> = gone.iter().chain(&come).map(|r| r.agreement).collect();
        Self {
            added: new_ids.difference(&old_ids).copied().collect(),
            removed: old_ids.difference(&new_ids).copied().collect(),
            changed: touched
                .into_iter()
                .filter(|id| old_ids.contains(id) && new_ids.contains(id))
                .collect(),
            rules_before: before.len(),
            rules_after: after.len(),
            rules_removed: gone.len(),
            rules_added: come.len(),
        }
    }

    /// Share (0-1) of the rules in force that go.
    pub fn removed_share(&self) -> f64 {
        if self.rules_before == 0 {
            0.0
        } else {
            self.rules_removed as f64 / self.rules_before as f64
        }
    }

    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.rules_removed == 0 && self.rules_added == 0
    }

    /// What the plan changes, for a log line: agreements gained, lost and changed, each by
    /// id and name (client -> service, from `policy`), at most `most` of each named.
    pub fn describe(&self, policy: &Policy, most: usize) -> String {
        let services: BTreeMap<&str, &str> = (policy.services.iter())
            .map(|s| (s.id.as_str(), s.name.as_str()))
            .collect();
        let names: BTreeMap<u32, String> = (policy.agreements.iter())
            .map(|a| {
                let service = services.get(a.service.as_str()).unwrap_or(&"?");
                (a.id, format!("{} {} -> {service}", a.id, a.client))
            })
            .collect();
        let list = |what: &str, ids: &[u32]| {
            let mut named: Vec<String> = (ids.iter().take(most))
                .map(|id| names.get(id).cloned().unwrap_or_else(|| id.to_string()))
                .collect();
            if ids.len() > most {
                named.push(format!("and {} more", ids.len() - most));
            }
            match named.as_slice() {
                [] => format!("{what} none"),
                _ => format!("{what} {} ({})", ids.len(), named.join(", ")),
            }
        };
        format!(
            "{}; {}; {}; rules {} -> {}",
            list("gained", &self.added),
            list("lost", &self.removed),
            list("changed", &self.changed),
            self.rules_before,
            self.rules_after
        )
    }
}

/// Recent traffic of one agreement on this router.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// When it last carried a packet (as far as the loader has seen).
    pub last: Option<DateTime<Utc>>,
    /// Packets in the last 24 hours.
    pub packets_24h: u64,
    /// Bytes in the last 24 hours.
    pub bytes_24h: u64,
}

/// Why the guard holds a sync (empty: let it through).
pub fn judge(
    plan: &Plan,
    traffic: &BTreeMap<u32, Traffic>,
    guard: &GuardConfig,
    now: DateTime<Utc>,
) -> Vec<String> {
    if !guard.enabled {
        return Vec::new();
    }
    let mut reasons = Vec::new();
    let window = chrono::Duration::hours(i64::try_from(guard.active_hours).unwrap_or(i64::MAX));
    let active: Vec<u32> = plan
        .removed
        .iter()
        .copied()
        .filter(|id| {
            traffic
                .get(id)
                .and_then(|t| t.last)
                .is_some_and(|t| now.signed_duration_since(t) <= window)
        })
        .collect();
    if !active.is_empty() {
        let named: Vec<String> = active.iter().take(10).map(u32::to_string).collect();
        reasons.push(format!(
            "it removes {} agreement(s) that carried traffic in the last {} h ({}{})",
            active.len(),
            guard.active_hours,
            named.join(", "),
            if active.len() > 10 { ", ..." } else { "" }
        ));
    }
    if plan.removed_share() > guard.max_removed_share {
        reasons.push(format!(
            "it removes {} of {} allow-list rules ({:.1}%, the limit is {:.1}%)",
            plan.rules_removed,
            plan.rules_before,
            plan.removed_share() * 100.0,
            guard.max_removed_share * 100.0
        ));
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(agreement: u32, client: &str, port: &str) -> Rule {
        Rule {
            agreement,
            client: client.parse().unwrap(),
            endpoint: "203.0.113.10/32".parse().unwrap(),
            protocol: "tcp",
            ports: port.to_owned(),
            vlan: 0,
        }
    }

    fn set(rules: &[Rule]) -> BTreeSet<Rule> {
        rules.iter().cloned().collect()
    }

    #[test]
    fn plan_names_added_removed_changed() {
        let before = set(&[
            rule(1, "198.51.100.0/25", "443"),
            rule(2, "198.51.100.128/25", "443"),
            rule(3, "192.0.2.0/24", "22"),
        ]);
        let after = set(&[
            rule(1, "198.51.100.0/25", "443"),
            rule(2, "198.51.100.128/25", "8443"),
            rule(4, "192.0.2.0/24", "22"),
        ]);
        let p = Plan::between(&before, &after);
        assert_eq!(p.added, [4]);
        assert_eq!(p.removed, [3]);
        assert_eq!(p.changed, [2]);
        assert_eq!((p.rules_removed, p.rules_added), (2, 2));
        assert!((p.removed_share() - 2.0 / 3.0).abs() < 1e-9);
    }

    /// The log line of an apply names each agreement gained, lost and changed by id, client
    /// and service name, and cuts long lists short.
    #[test]
    fn describe_names_the_agreements_by_id_and_name() {
        // 1001: ouh-clinic -> fmk (Faelles Medicinkort), approved; 1002: lab -> fmk, revoked.
        let policy =
            crate::policy::parse_toml(include_str!("../../../examples/demo-policy.toml")).unwrap();
        let plan = Plan {
            added: vec![1001],
            removed: vec![1002, 9],
            changed: vec![],
            rules_before: 2,
            rules_after: 1,
            ..Plan::default()
        };
        assert_eq!(
            plan.describe(&policy, 20),
            "gained 1 (1001 ouh-clinic -> Faelles Medicinkort); lost 2 (1002 lab -> Faelles Medicinkort, 9); changed none; rules 2 -> 1"
        );
        assert_eq!(
            plan.describe(&policy, 1),
            "gained 1 (1001 ouh-clinic -> Faelles Medicinkort); lost 2 (1002 lab -> Faelles Medicinkort, and 1 more); changed none; rules 2 -> 1"
        );
    }

    #[test]
    fn the_line_diff_names_each_rule_that_goes_and_comes() {
        let before = set(&[
            rule(1, "198.51.100.0/25", "443"),
            rule(2, "192.0.2.0/24", ""),
        ]);
        let after = set(&[
            rule(1, "198.51.100.0/25", "443"),
            rule(3, "192.0.2.0/24", "22"),
        ]);
        let (gone, come) = line_diff(&before, &after);
        let text = |v: &[&Rule]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(
            text(&gone),
            ["2 192.0.2.0/24 -> 203.0.113.10/32 tcp every port vlan any"]
        );
        assert_eq!(
            text(&come),
            ["3 192.0.2.0/24 -> 203.0.113.10/32 tcp 22 vlan any"]
        );
        assert_eq!(come[0].to_json()["ports"], "22");
        assert!(gone[0].to_json()["vlan"].is_null());
    }

    #[test]
    fn guard_holds_recently_active_removals_and_large_shares() {
        let now = Utc::now();
        let before: BTreeSet<Rule> = (1..=20)
            .map(|i| rule(i, "198.51.100.0/25", "443"))
            .collect();
        let mut after = before.clone();
        after.retain(|r| r.agreement != 5);
        let plan = Plan::between(&before, &after);
        let guard = GuardConfig::default();
        let mut traffic = BTreeMap::new();
        // Quiet for two days: removal of 1 of 20 rules (5%) goes through.
        traffic.insert(
            5,
            Traffic {
                last: Some(now - chrono::Duration::hours(48)),
                ..Traffic::default()
            },
        );
        assert!(judge(&plan, &traffic, &guard, now).is_empty());
        // Active an hour ago: held, naming the agreement.
        traffic.insert(
            5,
            Traffic {
                last: Some(now - chrono::Duration::hours(1)),
                ..Traffic::default()
            },
        );
        let r = judge(&plan, &traffic, &guard, now);
        assert_eq!(r.len(), 1);
        assert!(r[0].contains("(5)"), "{r:?}");
        // Off: never held.
        let off = GuardConfig {
            enabled: false,
            ..guard
        };
        assert!(judge(&plan, &traffic, &off, now).is_empty());
        // Removing 3 of 20 (15% > 10%), all quiet: held for the share.
        after.retain(|r| r.agreement > 7 || r.agreement < 5);
        let plan = Plan::between(&before, &after);
        let r = judge(&plan, &BTreeMap::new(), &guard, now);
        assert_eq!(r.len(), 1);
        assert!(r[0].contains("15.0%"), "{r:?}");
    }
}

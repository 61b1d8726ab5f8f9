//! `sdn-loader plan`, `confirm` and `status`: the operator's view of what the live sync does
//! and will do on each router.

use std::{collections::BTreeMap, path::Path, process::ExitCode};

use anyhow::{Context as _, Result, bail};
use chrono::Utc;
use sdn_loader::{
    config::Config,
    db::{Db, RouterStatus, parse_time},
    sync::{
        plan::{Plan, Traffic, judge, rules},
        state,
    },
};
use serde_json::json;

async fn open(url: &str) -> Result<Db> {
    Db::open_existing(url)
        .await
        .with_context(|| format!("opening {}", sdn_loader::db::redact_url(url)))
}

/// `plan`: the next sync on `router` against the policy it has in force.
pub(crate) fn plan(
    rt: &tokio::runtime::Runtime,
    url: &str,
    config: &Config,
    router: &str,
    state_dir: &Path,
    json: bool,
) -> Result<ExitCode> {
    let (revision, policy, rows) = rt.block_on(async {
        let db = open(url).await?;
        let (revision, policy) = db.export_with_revision().await?;
        let rows = db.provisioning(Some(router)).await?;
        anyhow::Ok((revision, policy, rows))
    })?;
    let today = Utc::now().date_naive();
    let policy = policy
        .with_infrastructure(&config.infrastructure)
        .context("the configuration's infrastructure allow list")?;
    let next = rules(&policy, today);
    let kept = state::load(state_dir)
        .with_context(|| format!("reading the policy in force from {}", state_dir.display()))?;
    let in_force = kept
        .as_ref()
        .map(|(_, p)| rules(p, today))
        .unwrap_or_default();
    let plan = Plan::between(&in_force, &next);
    let (lines_removed, lines_added) = sdn_loader::sync::plan::line_diff(&in_force, &next);
    let traffic: BTreeMap<u32, Traffic> = rows
        .iter()
        .map(|(_, p)| (p.agreement, p.traffic()))
        .collect();
    let now = Utc::now();
    let hold = if kept.is_some() {
        judge(&plan, &traffic, &config.guard, now)
    } else {
        Vec::new()
    };
    let losing: Vec<serde_json::Value> = plan
        .removed
        .iter()
        .map(|id| {
            let t = traffic.get(id).copied().unwrap_or_default();
            json!({
                "agreement": id,
                "last_traffic": t.last.map(sdn_loader::db::time_text),
                "packets_24h": t.packets_24h,
                "bytes_24h": t.bytes_24h,
            })
        })
        .collect();
    if json {
        let v = json!({
            "router": router,
            "in_force_revision": kept.as_ref().map(|(r, _)| *r),
            "database_revision": revision,
            "added": plan.added,
            "removed": losing,
            "changed": plan.changed,
            "rules_before": plan.rules_before,
            "rules_after": plan.rules_after,
            "rules_removed": plan.rules_removed,
            "rules_added": plan.rules_added,
            "lines_removed": lines_removed.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
            "lines_added": lines_added.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
            "guard": if hold.is_empty() { "pass" } else { "hold" },
            "guard_reasons": hold,
        });
        println!("{v}");
        return Ok(held_exit(&hold));
    }
    match &kept {
        Some((r, _)) => println!(
            "router {router}: revision {r} in force; the database is at revision {revision}"
        ),
        None => println!(
            "router {router}: no policy in force recorded in {} (a first sync); the database is at revision {revision}",
            state_dir.display()
        ),
    }
    if plan.is_empty() {
        println!("the next sync changes nothing");
        return Ok(ExitCode::SUCCESS);
    }
    let list = |ids: &[u32]| -> String {
        ids.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "rules: {} -> {} ({} removed, {} added)",
        plan.rules_before, plan.rules_after, plan.rules_removed, plan.rules_added
    );
    if !plan.added.is_empty() {
        println!(
            "agreements gaining access ({}): {}",
            plan.added.len(),
            list(&plan.added)
        );
    }
    if !plan.changed.is_empty() {
        println!(
            "agreements changing ({}): {}",
            plan.changed.len(),
            list(&plan.changed)
        );
    }
    if !plan.removed.is_empty() {
        println!("agreements losing access ({}):", plan.removed.len());
        println!(
            "  {:>10}  {:<28}  {:>12}  {:>14}",
            "agreement", "last traffic", "packets 24h", "bytes 24h"
        );
        for id in &plan.removed {
            let t = traffic.get(id).copied().unwrap_or_default();
            println!(
                "  {:>10}  {:<28}  {:>12}  {:>14}",
                id,
                t.last
                    .map_or_else(|| "none seen".to_owned(), sdn_loader::db::time_text),
                t.packets_24h,
                t.bytes_24h
            );
        }
    }
    // The rule lines themselves, as a diff (the first 200 of each; --json has them all).
    const SHOWN: usize = 200;
    for (sign, lines) in [("-", &lines_removed), ("+", &lines_added)] {
        for r in lines.iter().take(SHOWN) {
            println!("{sign} {r}");
        }
        if lines.len() > SHOWN {
            println!(
                "{sign} ... and {} more (--json lists all)",
                lines.len() - SHOWN
            );
        }
    }
    if hold.is_empty() {
        println!("the blast-radius guard lets this sync through");
    } else {
        println!(
            "the blast-radius guard holds this sync until `sdn-loader confirm {revision}`: {}",
            hold.join("; ")
        );
    }
    Ok(held_exit(&hold))
}

/// `plan`'s exit code: 2 when the guard will hold the next sync (a confirm is needed), 0 when
/// it goes through (or changes nothing); errors exit 1.
fn held_exit(hold: &[String]) -> ExitCode {
    if hold.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

/// `confirm`: releases a held revision for `router` (`*`: every router).
pub(crate) fn confirm(
    rt: &tokio::runtime::Runtime,
    url: &str,
    router: &str,
    revision: u64,
    actor: &str,
) -> Result<ExitCode> {
    rt.block_on(async {
        let db = open(url).await?;
        db.confirm(router, revision, actor).await?;
        let routers = db.router_statuses().await?;
        let held: Vec<&RouterStatus> = routers
            .iter()
            .filter(|r| r.held_revision == Some(revision) && (router == "*" || r.name == router))
            .collect();
        let whom = if router == "*" {
            "every router".to_owned()
        } else {
            format!("router {router}")
        };
        println!(
            "revision {revision} confirmed for {whom} by {actor}; {} router(s) holding it will apply it at their next check",
            held.len()
        );
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// `status`: every router's provisioning state, or one router's with its agreements.
pub(crate) fn status(
    rt: &tokio::runtime::Runtime,
    url: &str,
    router: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    rt.block_on(async {
        let db = open(url).await?;
        let revision = db.revision().await?;
        let all = db.router_statuses().await?;
        if let Some(name) = router
            && !all.iter().any(|r| r.name == name)
        {
            let known: Vec<&str> = all.iter().map(|r| r.name.as_str()).collect();
            bail!(
                "no router {name:?} has reported to this database (routers: {})",
                if known.is_empty() {
                    "none yet".to_owned()
                } else {
                    known.join(", ")
                }
            );
        }
        let routers: Vec<RouterStatus> = all
            .into_iter()
            .filter(|r| router.is_none_or(|n| r.name == n))
            .collect();
        let rows = db.provisioning(router).await?;
        let mut counts: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
        for (r, p) in &rows {
            *counts.entry((r.clone(), p.state.name())).or_default() += 1;
        }
        let now = Utc::now();
        let age = |t: &Option<String>| -> Option<i64> {
            t.as_deref()
                .and_then(|t| parse_time(t).ok())
                .map(|t| now.signed_duration_since(t).num_seconds())
        };
        if json {
            let list: Vec<serde_json::Value> = routers
                .iter()
                .map(|r| {
                    let states: BTreeMap<&str, u64> = counts
                        .iter()
                        .filter(|((n, _), _)| *n == r.name)
                        .map(|((_, s), c)| (*s, *c))
                        .collect();
                    json!({
                        "router": r.name,
                        "state": r.state,
                        "applied_revision": r.applied_revision,
                        "seen_revision": r.seen_revision,
                        "held_revision": r.held_revision,
                        "error": r.error,
                        "last_sync": r.last_sync,
                        "checked_at": r.checked_at,
                        "seconds_since_check": age(&r.checked_at),
                        "agreements": r.agreements,
                        "provisioning": states,
                    })
                })
                .collect();
            let mut v = json!({ "database_revision": revision, "routers": list });
            if router.is_some() {
                v["agreements"] = rows
                    .iter()
                    .map(|(_, p)| {
                        json!({
                            "agreement": p.agreement,
                            "state": p.state.name(),
                            "revision": p.revision,
                            "error": p.error,
                            "last_traffic": p.last_traffic_at,
                            "packets_24h": p.packets_24h,
                            "bytes_24h": p.bytes_24h,
                        })
                    })
                    .collect();
            }
            println!("{v}");
            return anyhow::Ok(ExitCode::SUCCESS);
        }
        println!("database revision {revision}");
        if routers.is_empty() {
            println!("no router has reported yet");
            return anyhow::Ok(ExitCode::SUCCESS);
        }
        println!(
            "{:<20} {:<8} {:>8} {:>8} {:>8} {:>10} {:>9}  error",
            "router", "state", "applied", "seen", "held", "agreements", "checked"
        );
        for r in &routers {
            let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
            println!(
                "{:<20} {:<8} {:>8} {:>8} {:>8} {:>10} {:>8}s  {}",
                r.name,
                r.state,
                opt(r.applied_revision),
                opt(r.seen_revision),
                opt(r.held_revision),
                opt(r.agreements),
                age(&r.checked_at).map_or_else(|| "-".to_owned(), |s| s.to_string()),
                r.error.as_deref().unwrap_or("")
            );
        }
        if router.is_some() {
            println!();
            println!(
                "{:>10} {:<8} {:>8} {:<28} {:>12} {:>14}  error",
                "agreement", "state", "revision", "last traffic", "packets 24h", "bytes 24h",
            );
            for (_, p) in &rows {
                println!(
                    "{:>10} {:<8} {:>8} {:<28} {:>12} {:>14}  {}",
                    p.agreement,
                    p.state.name(),
                    p.revision,
                    p.last_traffic_at.as_deref().unwrap_or("-"),
                    p.packets_24h,
                    p.bytes_24h,
                    p.error.as_deref().unwrap_or("")
                );
            }
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

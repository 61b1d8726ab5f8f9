//! The soak's own logic, without namespaces: each check passes a consistent run and fails
//! the fault it is there to catch.

use std::{collections::BTreeMap, os::unix::process::ExitStatusExt as _, process};

use serde_json::{Value, json};

use super::{
    faults::{Restart, Windows},
    writers::{Agr, Op, Outcome, Record, Verb, agreements_of, classify, verify},
};

fn agr(state: &str, vlan: Option<u64>, expires: Option<&str>) -> Agr {
    Agr {
        state: state.to_owned(),
        vlan,
        expires: expires.map(str::to_owned),
    }
}

fn record(id: u32, op: Op, rid: &str, outcome: Outcome) -> Record {
    Record {
        agreement: id,
        op,
        request_id: rid.to_owned(),
        t_start: 1.0,
        t_end: 1.1,
        outcome,
    }
}

fn row(revision: u64, rid: &str, action: &str, id: u32, before: &Agr, after: &Agr) -> Value {
    let obj = |a: &Agr| {
        let mut v = json!({"id": id, "client": "lab", "service": "pool-1", "state": a.state});
        if let Some(vlan) = a.vlan {
            v["vlan"] = json!(vlan);
        }
        if let Some(e) = &a.expires {
            v["expires"] = json!(e);
        }
        v
    };
    json!({"revision": revision, "seq": 0, "request_id": rid, "action": action,
           "kind": "agreement", "key": id.to_string(), "before": obj(before), "after": obj(after)})
}

/// A consistent run: import (r1), approve (r2), VLAN edit (r3), a "no change" at r3.
/// Records, initial state, final state, audit rows.
type Run = (
    Vec<Record>,
    BTreeMap<u32, Agr>,
    BTreeMap<u32, Agr>,
    Vec<Value>,
);

fn run() -> Run {
    let initial = BTreeMap::from([(101, agr("requested", None, None))]);
    let approved = agr("approved", None, None);
    let tagged = agr("approved", Some(100), None);
    let records = vec![
        record(101, Op::Verb(Verb::Approve), "w0-1", Outcome::Committed(2)),
        record(101, Op::Vlan(Some(100)), "w1-1", Outcome::Committed(3)),
        record(101, Op::Vlan(Some(100)), "w2-1", Outcome::NoChange(3)),
    ];
    let audit = vec![
        json!({"revision": 1, "request_id": "soak-import", "action": "create", "kind": "agreement",
               "key": "101", "before": null, "after": {"id": 101, "state": "requested"}}),
        row(2, "w0-1", "approve", 101, &initial[&101], &approved),
        row(3, "w1-1", "update", 101, &approved, &tagged),
    ];
    let last = BTreeMap::from([(101, tagged)]);
    (records, initial, last, audit)
}

fn failed(checks: &[super::Check]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name.clone())
        .collect()
}

#[test]
fn a_consistent_run_passes_every_change_check() {
    let (records, initial, last, audit) = run();
    let checks = verify(&records, &initial, &last, &audit, 3);
    assert_eq!(failed(&checks), Vec::<String>::new(), "{checks:?}");
}

#[test]
fn a_reverted_change_fails_the_final_state_check() {
    let (records, initial, mut last, audit) = run();
    last.insert(101, agr("approved", None, None));
    let f = failed(&verify(&records, &initial, &last, &audit, 3));
    assert_eq!(
        f,
        ["final database = replay of the committed changes (none lost, none reverted)"]
    );
}

#[test]
fn a_missing_or_foreign_audit_row_fails() {
    let (records, initial, last, mut audit) = run();
    audit.pop();
    let f = failed(&verify(&records, &initial, &last, &audit, 3));
    assert!(
        f.iter().any(|c| c.contains("in the audit log once")),
        "{f:?}"
    );
    assert!(f.iter().any(|c| c.contains("gapless")), "{f:?}");

    let (records, initial, last, mut audit) = run();
    audit[2]["request_id"] = json!("someone-else");
    let f = failed(&verify(&records, &initial, &last, &audit, 3));
    assert_eq!(
        f,
        [
            "every committed change is in the audit log once, with its request id, action, before and after"
        ]
    );
}

#[test]
fn a_forbidden_transition_fails_the_replay_and_the_audit_chain() {
    // revoked -> approved directly: the lifecycle has no such transition.
    let initial = BTreeMap::from([(101, agr("revoked", None, None))]);
    let approved = agr("approved", None, None);
    let records = vec![record(
        101,
        Op::State("approved"),
        "w0-1",
        Outcome::Committed(2),
    )];
    let audit = vec![
        json!({"revision": 1, "request_id": "soak-import", "action": "create", "kind": "agreement",
               "key": "101", "before": null, "after": {"id": 101, "state": "revoked"}}),
        row(2, "w0-1", "update", 101, &initial[&101], &approved),
    ];
    let last = BTreeMap::from([(101, approved)]);
    let f = failed(&verify(&records, &initial, &last, &audit, 2));
    assert!(
        f.iter().any(|c| c.contains("replay on the lifecycle")),
        "{f:?}"
    );
    assert!(
        f.iter().any(|c| c.contains("only lifecycle transitions")),
        "{f:?}"
    );
}

#[test]
fn two_changes_reporting_one_revision_fail() {
    let (mut records, initial, last, audit) = run();
    records.push(record(
        101,
        Op::Expires(None),
        "w2-2",
        Outcome::Committed(3),
    ));
    let f = failed(&verify(&records, &initial, &last, &audit, 3));
    assert!(
        f.iter().any(|c| c.contains("a revision of its own")),
        "{f:?}"
    );
}

#[test]
fn a_wrong_no_change_answer_fails() {
    let (mut records, initial, last, audit) = run();
    // At r2 the VLAN was not yet 100: "already so" would be false there.
    records[2].outcome = Outcome::NoChange(2);
    let f = failed(&verify(&records, &initial, &last, &audit, 3));
    assert_eq!(
        f,
        ["every \"no change\" answer matches the state at the revision it named"]
    );
}

#[test]
fn verdicts_follow_state_expiry_and_vlan() {
    let today = "2026-12-03";
    assert!(agr("approved", None, None).passes(today, None));
    assert!(agr("approved", None, None).passes(today, Some(200)));
    assert!(agr("approved", Some(100), None).passes(today, Some(100)));
    assert!(!agr("approved", Some(100), None).passes(today, None));
    assert!(!agr("approved", Some(100), None).passes(today, Some(200)));
    assert!(agr("approved", None, Some("2026-12-04")).passes(today, None));
    // In force only before the expiry date.
    assert!(!agr("approved", None, Some("2026-12-03")).passes(today, None));
    assert!(!agr("requested", None, None).passes(today, None));
}

#[test]
fn command_outcomes_are_classified() {
    let out = |code: i32, stdout: &str, stderr: &str| process::Output {
        status: process::ExitStatus::from_raw(code << 8),
        stdout: stdout.as_bytes().to_vec(),
        stderr: stderr.as_bytes().to_vec(),
    };
    assert!(matches!(
        classify(&out(0, "revision 17 (request x)\n", "")),
        Outcome::Committed(17)
    ));
    assert!(matches!(
        classify(&out(
            0,
            "no change: already so (the database is at revision 9)\n",
            ""
        )),
        Outcome::NoChange(9)
    ));
    assert!(matches!(
        classify(&out(
            1,
            "",
            "WARN slow acquire\nerror: cannot approve agreement 1: it is revoked, and only a requested agreement can be approved\n"
        )),
        Outcome::Refused(_)
    ));
    assert!(matches!(
        classify(&out(
            1,
            "",
            "error: database file /x/sdn.db does not exist\n"
        )),
        Outcome::Unavailable(_)
    ));
    assert!(matches!(
        classify(&out(1, "", "error: database is locked\n")),
        Outcome::Error(_)
    ));
}

#[test]
fn windows_cover_what_was_in_flight() {
    let w = Windows {
        restarts: vec![Restart {
            killed: 10.0,
            spawned: 11.0,
            attached: Some(12.0),
            http_up: Some(13.0),
            db_away: false,
        }],
        db_down: vec![(20.0, 25.0)],
        problems: Vec::new(),
    };
    assert!(w.loader_down(12.0, 0.0));
    assert!(!w.loader_down(14.0, 0.5));
    // A request that started before the kill and ended after it.
    assert!(w.loader_down_during(9.0, 10.2, 0.0));
    assert!(w.db_away_during(18.0, 30.0, 0.0));
    assert!(!w.db_away_during(26.5, 30.0, 1.0));
    assert!(w.overlaps(24.0, 40.0));
    assert!(!w.overlaps(14.0, 19.0));
}

#[test]
fn exports_give_the_editable_fields() {
    let export = json!({"agreement": [
        {"id": 101, "client": "lab", "service": "pool-1", "state": "approved", "vlan": 100},
        {"id": 102, "client": "lab", "service": "pool-2", "state": "revoked", "expires": "2099-12-31"},
    ]});
    let m = agreements_of(&export).expect("a valid export");
    assert_eq!(m[&101], agr("approved", Some(100), None));
    assert_eq!(m[&102], agr("revoked", None, Some("2099-12-31")));
}

#[test]
fn a_source_port_used_again_within_the_flow_timeout_is_the_same_flow() {
    let ports = [
        (40000, 0.0, 0.1),
        (40002, 0.2, 0.3),
        (40000, 60.0, 60.1), // 59.9 s after its last use: still in the flow table
        (40002, 121.0, 121.1), // 120.7 s: at the edge
        (40000, 200.0, 200.1), // 139.9 s: a new flow
    ];
    assert_eq!(super::traffic::port_reuse(&ports), (1, 1));
}

//! Concurrent writers: changes are not lost, and the lifecycle holds under racing transitions.

use super::*;

/// Two handles changing the database at the same time: every change gets its own revision.
pub(crate) async fn concurrent_changes(url: &str) {
    let db = Db::open(url).await.unwrap();
    db.import(&demo(), &origin("seed")).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8u32 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let a = Agreement {
                id: 7000 + i,
                client: "lab".into(),
                service: "pacs".into(),
                state: AgreementState::Requested,
                expires: None,
                vlan: None,
            };
            db.create_agreement(&a, &origin(&format!("c{i}"))).await
        }));
    }
    let mut revisions = Vec::new();
    for t in tasks {
        revisions.push(t.await.unwrap().unwrap().revision);
    }
    revisions.sort_unstable();
    assert_eq!(revisions, (2..10).collect::<Vec<u64>>());
    assert_eq!(db.revision().await.unwrap(), 9);
    db.close().await;
}

/// Writers racing on one agreement (revoke; request again; approve; VLAN edits) and on one
/// client's prefixes: every change is read, checked and written in one transaction, so the
/// audit log holds only transitions of the lifecycle (a VLAN edit never undoes a revocation),
/// no prefix added by one writer is lost to another, and the revisions the changes report are
/// unique and gapless, with a no-op saying so instead of quoting another change's revision.
pub(crate) async fn concurrent_lifecycle(url: &str) {
    let db = Db::open(url).await.unwrap();
    db.import(&demo(), &origin("seed")).await.unwrap();
    let start = db.revision().await.unwrap();
    // Bounded by count, and by time on a slow machine.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut tasks = Vec::new();
    for writer in 0..5u32 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..120u32 {
                if std::time::Instant::now() > deadline {
                    break;
                }
                let o = origin(&format!("w{writer}-{i}"));
                // Writers 0-2 each go round the lifecycle (revoke, request again, approve),
                // one step apart, so they race on every step and the cycle always moves.
                let step = if writer < 3 { (writer + i) % 3 } else { writer };
                let r = match step {
                    0 => db.transition(1001, Transition::Revoke, &o).await,
                    1 => {
                        let edit = AgreementEdit {
                            state: Some(AgreementState::Requested),
                            ..AgreementEdit::default()
                        };
                        db.update_agreement(1001, &edit, &o).await
                    }
                    2 => db.transition(1001, Transition::Approve, &o).await,
                    3 => {
                        let edit = AgreementEdit {
                            vlan: Some((i % 2 == 0).then_some(100 + (i % 7) as u16)),
                            ..AgreementEdit::default()
                        };
                        db.update_agreement(1001, &edit, &o).await
                    }
                    _ => {
                        let p = net(&format!("2001:db8:{:x}::/48", 0x500 + i));
                        db.add_prefix("lab", p, &o).await.inspect(|c| {
                            assert!(c.changed, "adding a new prefix is a change");
                        })
                    }
                };
                match r {
                    Ok(c) => out.push((writer, i, c)),
                    Err(DbError::BadTransition { .. } | DbError::ForbiddenState { .. }) => {}
                    Err(e) => panic!("writer {writer}: {e}"),
                }
            }
            out
        }));
    }
    let mut done = Vec::new();
    for t in tasks {
        done.extend(t.await.unwrap());
    }
    let end = db.revision().await.unwrap();
    let mut made: Vec<u64> = done
        .iter()
        .filter(|(_, _, c)| c.changed)
        .map(|(_, _, c)| c.revision)
        .collect();
    made.sort_unstable();
    assert_eq!(
        made,
        (start + 1..=end).collect::<Vec<u64>>(),
        "each change reports a revision of its own, and every revision is some change's"
    );
    // A no-op reports a revision the database really was at, and says it changed nothing.
    for (_, _, c) in done.iter().filter(|(_, _, c)| !c.changed) {
        assert!((start..=end).contains(&c.revision), "{c:?}");
    }
    let rows = db
        .audit(&AuditFilter {
            kind: Some(ObjectKind::Agreement),
            key: Some("1001".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let state = |v: &Option<serde_json::Value>| {
        let name = v.as_ref().unwrap()["state"].as_str().unwrap();
        [
            AgreementState::Requested,
            AgreementState::Approved,
            AgreementState::Rejected,
            AgreementState::Revoked,
        ]
        .into_iter()
        .find(|s| s.name() == name)
        .unwrap()
    };
    let mut transitions = 0;
    for r in rows.iter().filter(|r| r.revision > start) {
        let (from, to) = (state(&r.before), state(&r.after));
        if from != to {
            transitions += 1;
            assert!(
                Transition::between(from, to).is_some(),
                "revision {}: {} {} -> {} is not in the lifecycle",
                r.revision,
                r.action,
                from.name(),
                to.name()
            );
        }
        if r.request_id.starts_with("w3-") {
            // The VLAN writer.
            assert_eq!(
                from, to,
                "a VLAN edit changed the state at revision {}",
                r.revision
            );
        }
    }
    assert!(
        transitions >= 3,
        "the writers went round the lifecycle: {transitions} state changes"
    );
    let added = done.iter().filter(|(w, _, _)| *w == 4).count();
    let lab = db.client("lab").await.unwrap().unwrap();
    assert_eq!(
        lab.prefixes.len(),
        1 + added,
        "no concurrent prefix was lost"
    );
    db.close().await;
}

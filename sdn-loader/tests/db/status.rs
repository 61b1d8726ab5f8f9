//! Provisioning status and confirmations (and PostgreSQL NOTIFY of a new revision).

use super::*;

fn provision(
    agreement: u32,
    revision: u64,
    state: ProvisionState,
    error: Option<&str>,
) -> Provision {
    Provision {
        agreement,
        revision,
        state,
        error: error.map(str::to_owned),
        last_traffic_at: Some("2030-01-01T12:00:00.000000Z".to_owned()),
        packets_24h: u64::from(agreement) * 10,
        bytes_24h: u64::from(agreement) * 1000,
    }
}

/// Router status, provisioning rows and confirmations: written and read back, replaced in
/// place, never bumping the revision; on PostgreSQL every change also NOTIFYs the revision.
pub(crate) async fn status_and_confirmations(url: &str) {
    let db = Db::open(url).await.unwrap();
    db.import(&demo(), &origin("req-import")).await.unwrap();
    let r1 = RouterStatus {
        name: "hub-b".to_owned(),
        state: "in-sync".to_owned(),
        applied_revision: Some(1),
        last_sync: Some("2030-01-01T12:00:00.000000Z".to_owned()),
        seen_revision: Some(1),
        held_revision: None,
        error: None,
        checked_at: Some("2030-01-01T12:00:01.000000Z".to_owned()),
        agreements: Some(2),
    };
    let r2 = RouterStatus {
        name: "hub-a".to_owned(),
        state: "held".to_owned(),
        held_revision: Some(1),
        error: Some("it removes 1 agreement".to_owned()),
        ..r1.clone()
    };
    db.write_router_status(&r1).await.unwrap();
    db.write_router_status(&r2).await.unwrap();
    assert_eq!(
        db.router_statuses().await.unwrap(),
        [r2.clone(), r1.clone()]
    );
    let r1b = RouterStatus {
        state: "failed".to_owned(),
        error: Some("maps full".to_owned()),
        ..r1.clone()
    };
    db.write_router_status(&r1b).await.unwrap();
    assert_eq!(db.router_statuses().await.unwrap(), [r2, r1b]);

    let held = provision(1003, 1, ProvisionState::Held, Some("guard"));
    db.write_provisioning(
        "hub-b",
        &[
            provision(1001, 1, ProvisionState::Applied, None),
            held.clone(),
        ],
        &[],
    )
    .await
    .unwrap();
    db.write_provisioning(
        "hub-a",
        &[provision(1001, 1, ProvisionState::Pending, None)],
        &[],
    )
    .await
    .unwrap();
    let applied = provision(1003, 1, ProvisionState::Applied, None);
    db.write_provisioning("hub-b", std::slice::from_ref(&applied), &[1001])
        .await
        .unwrap();
    assert_eq!(
        db.provisioning(Some("hub-b")).await.unwrap(),
        [("hub-b".to_owned(), applied)]
    );
    let all = db.provisioning(None).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].0, "hub-a");
    assert_eq!(all[0].1.state, ProvisionState::Pending);

    // Confirmations: a revision that does not exist is refused by name.
    let e = db.confirm("hub-b", 9, "tester").await.unwrap_err();
    assert!(
        matches!(
            e,
            DbError::NoSuchRevision {
                revision: 9,
                current: 1
            }
        ),
        "{e}"
    );
    assert!(!db.confirmed("hub-b", 1).await.unwrap());
    db.confirm("hub-b", 1, "tester").await.unwrap();
    assert!(db.confirmed("hub-b", 1).await.unwrap());
    assert!(!db.confirmed("hub-a", 1).await.unwrap());
    db.confirm("*", 1, "tester").await.unwrap();
    assert!(db.confirmed("hub-a", 1).await.unwrap());
    assert_eq!(
        db.revision().await.unwrap(),
        1,
        "status must not bump the revision"
    );

    if url.starts_with("postgres") {
        let mut l = sqlx::postgres::PgListener::connect(url).await.unwrap();
        l.listen(sdn_loader::db::REVISION_CHANNEL).await.unwrap();
        db.transition(1001, Transition::Revoke, &origin("req-notify"))
            .await
            .unwrap();
        // The channel is the server's, shared by every schema on it: the other tests' changes
        // notify it too while this one runs, so wait for this change's revision.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut seen = Vec::new();
        while !seen.iter().any(|p| p == "2") {
            let n = tokio::time::timeout_at(deadline, l.recv())
                .await
                .unwrap_or_else(|_| panic!("no NOTIFY of revision 2 within 10 s; saw {seen:?}"))
                .unwrap();
            seen.push(n.payload().to_owned());
        }
    }
    db.close().await;
}

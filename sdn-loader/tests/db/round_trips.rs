//! Import and export: round trips of the demo and a synthetic policy, re-import, revisions and audit.

use super::*;

pub(crate) async fn round_trip_demo(url: &str) {
    let db = Db::open(url).await.unwrap();
    assert_eq!(db.revision().await.unwrap(), 0);
    // The newest migration in sdn-loader/migrations (0001, 0002, ...) is applied.
    let newest = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.get(..4)?.parse::<i64>().ok())
        .max()
        .unwrap();
    assert_eq!(db.schema_version().await.unwrap(), newest);
    assert_eq!(db.export().await.unwrap(), Policy::default());

    let p = demo();
    let report = db.import(&p, &origin("req-import")).await.unwrap();
    assert_eq!(report.revision, 1);
    assert_eq!((report.created, report.updated, report.deleted), (10, 0, 0));
    let exported = db.export().await.unwrap();
    assert_eq!(exported, p.canonical());

    // Through both file formats and back.
    let toml = policy::to_toml(&exported).unwrap();
    assert_eq!(policy::parse_toml(&toml).unwrap(), exported);
    let json = policy_json(&exported).to_string();
    assert_eq!(policy::parse_json(&json).unwrap(), exported);

    // One audit row per object plus the summary, all under the request id.
    let rows = db.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(rows.len(), 11);
    assert!(
        rows.iter()
            .all(|r| r.request_id == "req-import" && r.actor == "tester" && r.revision == 1)
    );
    assert_eq!(rows.last().unwrap().action, "import");

    // The same policy again is no change.
    let again = db.import(&p, &origin("req-again")).await.unwrap();
    assert!(!again.changed());
    assert_eq!(again.revision, 1);
    assert_eq!(db.revision().await.unwrap(), 1);
    let filter = AuditFilter {
        request_id: Some("req-again".into()),
        ..AuditFilter::default()
    };
    assert!(db.audit(&filter).await.unwrap().is_empty());

    // Reopening finds the same data (migrations are not applied twice).
    db.close().await;
    let db = Db::open_existing(url).await.unwrap();
    assert_eq!(db.export().await.unwrap(), p.canonical());
    assert_eq!(db.revision().await.unwrap(), 1);
    db.close().await;
}

pub(crate) async fn round_trip_synthetic_and_reimport(url: &str) {
    let db = Db::open(url).await.unwrap();
    let p = policies::policy(Shape::scaled(6351)).unwrap();
    assert_eq!(p.agreements.len(), 6351);
    let r = db.import(&p, &origin("big")).await.unwrap();
    assert_eq!(r.revision, 1);
    let exported = db.export().await.unwrap();
    assert_eq!(exported, p.canonical());

    // Change a little: drop 100 agreements, revoke one, move one service, rename an
    // organisation, drop a prefix of a client, add an organisation and an infrastructure
    // entry.
    let mut q = exported.clone().into_draft();
    q.agreements.truncate(q.agreements.len() - 100);
    q.agreements[0].state = AgreementState::Revoked;
    q.organisations.push(Organisation {
        id: "zz-new".into(),
        name: "New".into(),
    });
    q.services[3].organisation = "zz-new".into();
    q.organisations[0].name = "Renamed".into();
    let c = q.clients.iter_mut().find(|c| c.prefixes.len() > 1).unwrap();
    c.prefixes.pop();
    q.infrastructure.push(policy::InfraEntry {
        prefix: net("192.0.2.0/24"),
        protocol: policy::Protocol::Tcp,
        ports: vec![PortRange { lo: 22, hi: 22 }],
    });
    let q = q.validate().unwrap();
    let r = db.import(&q, &origin("small-change")).await.unwrap();
    assert_eq!(r.revision, 2);
    assert_eq!((r.created, r.updated, r.deleted), (1, 5, 100));
    assert_eq!(db.export().await.unwrap(), q.canonical());
    let filter = AuditFilter {
        request_id: Some("small-change".into()),
        ..AuditFilter::default()
    };
    let rows = db.audit(&filter).await.unwrap();
    // 107 object rows and the import's own, plus the state change as a transition of its own.
    assert_eq!(rows.len(), 108);
    let revoked = q.agreements[0].id.to_string();
    let transitions = |rows: &[sdn_loader::db::AuditEntry], action: &str| {
        rows.iter()
            .filter(|r| r.kind == "agreement" && r.action == action)
            .map(|r| (r.key.clone(), r.before.clone(), r.after.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        transitions(&rows, "revoke"),
        [(
            revoked.clone(),
            Some(serde_json::json!({"state": "approved"})),
            Some(serde_json::json!({"state": "revoked"}))
        )]
    );

    // Back to the first policy: revoked -> approved is no transition of the lifecycle, which
    // only an import may make; it is recorded as `set-state`.
    let r = db.import(&p, &origin("back")).await.unwrap();
    assert_eq!(r.revision, 3);
    assert_eq!(db.export().await.unwrap(), p.canonical());
    let back = AuditFilter {
        request_id: Some("back".into()),
        ..AuditFilter::default()
    };
    let rows = db.audit(&back).await.unwrap();
    assert_eq!(
        transitions(&rows, "set-state"),
        [(
            revoked,
            Some(serde_json::json!({"state": "revoked"})),
            Some(serde_json::json!({"state": "approved"}))
        )]
    );

    // Empty policy: everything goes.
    let r = db
        .import(&Policy::default(), &origin("empty"))
        .await
        .unwrap();
    assert_eq!(r.deleted, exported_count(&p));
    assert_eq!(db.export().await.unwrap(), Policy::default());
    db.close().await;
}

fn exported_count(p: &Policy) -> usize {
    p.organisations.len()
        + p.port_aliases.len()
        + p.services.len()
        + p.clients.len()
        + p.agreements.len()
}

pub(crate) async fn revision_and_audit(url: &str) {
    let db = Db::open(url).await.unwrap();
    let start = Utc::now() - Duration::seconds(1);
    db.import(&demo(), &origin("r1")).await.unwrap();
    let mut rev = db.revision().await.unwrap();

    // Reads do not move the revision.
    db.export().await.unwrap();
    db.services().await.unwrap();
    db.agreements(&AgreementFilter::default()).await.unwrap();
    db.port_alias("dicom").await.unwrap();
    db.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(db.revision().await.unwrap(), rev);

    // Each change moves it by one and is audited under its request id.
    let changes: Vec<(&str, Result<Committed, DbError>)> = vec![
        (
            "c-org",
            db.create_organisation(
                &Organisation {
                    id: "kk".into(),
                    name: "Kommune".into(),
                },
                &origin("c-org"),
            )
            .await,
        ),
        (
            "c-client",
            db.create_client(
                &Client {
                    id: "kk-gp".into(),
                    organisation: "kk".into(),
                    prefixes: vec![net("198.51.100.64/26")],
                },
                &origin("c-client"),
            )
            .await,
        ),
        (
            "c-agr",
            db.create_agreement(
                &Agreement {
                    id: 2001,
                    client: "kk-gp".into(),
                    service: "fmk".into(),
                    state: AgreementState::Requested,
                    expires: None,
                    vlan: Some(100),
                },
                &origin("c-agr"),
            )
            .await,
        ),
        (
            "approve",
            db.transition(2001, Transition::Approve, &origin("approve"))
                .await,
        ),
        ("move", db.move_service("pacs", "kk", &origin("move")).await),
    ];
    for (request, result) in changes {
        let done = result.unwrap_or_else(|e| panic!("{request}: {e}"));
        assert!(done.changed, "{request}");
        let new = done.revision;
        assert_eq!(new, rev + 1, "{request}");
        rev = new;
        let rows = db
            .audit(&AuditFilter {
                request_id: Some(request.into()),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "{request}");
        assert_eq!(rows[0].revision, rev);
        assert_eq!(rows[0].actor, "tester");
    }

    // A no-op update is no change.
    let same = db.organisation("kk").await.unwrap().unwrap();
    assert_eq!(
        db.update_organisation(&same, &origin("noop"))
            .await
            .unwrap(),
        Committed {
            revision: rev,
            changed: false
        }
    );
    assert_eq!(db.revision().await.unwrap(), rev);

    // Filters.
    let by = |f: AuditFilter| {
        let db = db.clone();
        async move { db.audit(&f).await.unwrap() }
    };
    let agr = by(AuditFilter {
        kind: Some(ObjectKind::Agreement),
        key: Some("2001".into()),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(
        agr.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(),
        ["create", "approve"]
    );
    assert_eq!(agr[1].before.as_ref().unwrap()["state"], "requested");
    assert_eq!(agr[1].after.as_ref().unwrap()["state"], "approved");
    // Organisation kk: itself, its client, the agreement (client side), the moved service;
    // sds: the agreement (service side, fmk) and its import rows.
    let kk = by(AuditFilter {
        organisation: Some("kk".into()),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(kk.len(), 5);
    let rsyd = by(AuditFilter {
        organisation: Some("rsyd".into()),
        request_id: Some("move".into()),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(
        rsyd.len(),
        1,
        "the move is found from the old organisation too"
    );
    let all = by(AuditFilter {
        since: Some(start),
        until: Some(Utc::now() + Duration::seconds(1)),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(all.len(), 11 + 5);
    let none = by(AuditFilter {
        until: Some(start),
        ..AuditFilter::default()
    })
    .await;
    assert!(none.is_empty());
    let last2 = by(AuditFilter {
        limit: Some(2),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(
        last2.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(),
        ["approve", "move"]
    );
    db.close().await;
}

//! Every verb of the database API.

use super::*;

pub(crate) async fn verbs(url: &str) {
    let db = Db::open(url).await.unwrap();
    db.import(&demo(), &origin("seed")).await.unwrap();
    let o = origin("verbs");

    // alias show
    let dicom = db.port_alias("dicom").await.unwrap().unwrap();
    assert_eq!(
        dicom.ports,
        [
            PortRange { lo: 104, hi: 104 },
            PortRange {
                lo: 11112,
                hi: 11112
            }
        ]
    );
    assert!(db.port_alias("nope").await.unwrap().is_none());

    // Organisation create / update / delete.
    let org = Organisation {
        id: "rh".into(),
        name: "Rigshospitalet".into(),
    };
    db.create_organisation(&org, &o).await.unwrap();
    let renamed = Organisation {
        name: "Rigshospitalet (RH)".into(),
        ..org.clone()
    };
    db.update_organisation(&renamed, &o).await.unwrap();
    assert_eq!(db.organisation("rh").await.unwrap().unwrap(), renamed);

    // Service with an endpoint from text using an alias; add and delete endpoints.
    let ep = db
        .endpoint_from_text("203.0.113.40", "tcp", Some(&["dicom".into(), "443".into()]))
        .await
        .unwrap();
    assert_eq!(ep.ports.len(), 3);
    let svc = Service {
        id: "rh-pacs".into(),
        organisation: "rh".into(),
        name: "PACS".into(),
        endpoints: vec![ep.clone()],
    };
    db.create_service(&svc, &o).await.unwrap();
    let icmp = db
        .endpoint_from_text("203.0.113.40", "icmp", None)
        .await
        .unwrap();
    db.add_endpoint("rh-pacs", &icmp, &o).await.unwrap();
    assert_eq!(
        db.service("rh-pacs").await.unwrap().unwrap().endpoints,
        [ep.clone(), icmp.clone()]
    );
    db.delete_endpoint("rh-pacs", &icmp, false, &o)
        .await
        .unwrap();
    assert_eq!(
        db.service("rh-pacs").await.unwrap().unwrap().endpoints,
        [ep]
    );
    let mut upd = db.service("rh-pacs").await.unwrap().unwrap();
    upd.name = "PACS 2".into();
    db.update_service(&upd, &o).await.unwrap();
    assert_eq!(db.service("rh-pacs").await.unwrap().unwrap().name, "PACS 2");

    // Client with prefixes.
    let client = Client {
        id: "rh-ris".into(),
        organisation: "rh".into(),
        prefixes: vec![net("198.51.100.128/25")],
    };
    db.create_client(&client, &o).await.unwrap();
    db.add_prefix("rh-ris", net("2001:db8:400::/48"), &o)
        .await
        .unwrap();
    db.delete_prefix("rh-ris", net("198.51.100.128/25"), &o)
        .await
        .unwrap();
    assert_eq!(
        db.client("rh-ris").await.unwrap().unwrap().prefixes,
        [net("2001:db8:400::/48")]
    );

    // Agreement lifecycle.
    let a = Agreement {
        id: 3001,
        client: "rh-ris".into(),
        service: "rh-pacs".into(),
        state: AgreementState::Requested,
        expires: NaiveDate::from_ymd_opt(2031, 1, 1),
        vlan: None,
    };
    db.create_agreement(&a, &o).await.unwrap();
    db.transition(3001, Transition::Approve, &o).await.unwrap();
    db.transition(3001, Transition::Revoke, &o).await.unwrap();
    let b = Agreement {
        id: 3002,
        state: AgreementState::Requested,
        ..a.clone()
    };
    db.create_agreement(&b, &o).await.unwrap();
    db.transition(3002, Transition::Reject, &o).await.unwrap();
    let states: Vec<AgreementState> = db
        .agreements(&AgreementFilter {
            client: Some("rh-ris".into()),
            ..AgreementFilter::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|a| a.state)
        .collect();
    assert_eq!(states, [AgreementState::Revoked, AgreementState::Rejected]);
    let mut c = db.agreement(3001).await.unwrap().unwrap();
    c.vlan = Some(200);
    c.expires = None;
    c.state = AgreementState::Requested;
    let edit = AgreementEdit {
        state: Some(AgreementState::Requested),
        expires: Some(None),
        vlan: Some(Some(200)),
        ..AgreementEdit::default()
    };
    db.update_agreement(3001, &edit, &o).await.unwrap();
    assert_eq!(db.agreement(3001).await.unwrap().unwrap(), c);
    // Back in force only through approval: an edit cannot skip the lifecycle.
    let err = db
        .update_agreement(
            3002,
            &AgreementEdit {
                state: Some(AgreementState::Approved),
                ..AgreementEdit::default()
            },
            &o,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, DbError::ForbiddenState { id: 3002, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("cannot change agreement 3002 from rejected to approved"),
        "{err}"
    );
    db.transition(3001, Transition::Approve, &o).await.unwrap();
    // Fields an edit does not name are the ones in force, not the ones it read before.
    db.update_agreement(
        3001,
        &AgreementEdit {
            vlan: Some(None),
            ..AgreementEdit::default()
        },
        &o,
    )
    .await
    .unwrap();
    let now = db.agreement(3001).await.unwrap().unwrap();
    assert_eq!((now.state, now.vlan), (AgreementState::Approved, None));

    // Moving a service leaves its agreements alone.
    let before = db
        .agreements(&AgreementFilter {
            service: Some("fmk".into()),
            ..AgreementFilter::default()
        })
        .await
        .unwrap();
    db.move_service("fmk", "rh", &o).await.unwrap();
    let moved = db.service("fmk").await.unwrap().unwrap();
    assert_eq!(moved.organisation, "rh");
    assert_eq!(moved.endpoints, demo().services[0].endpoints);
    let after = db
        .agreements(&AgreementFilter {
            service: Some("fmk".into()),
            ..AgreementFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(before, after);

    // Deletes, in dependency order.
    db.delete_agreement(3001, &o).await.unwrap();
    db.delete_agreement(3002, &o).await.unwrap();
    db.delete_client("rh-ris", &o).await.unwrap();
    db.delete_service("rh-pacs", &o).await.unwrap();
    db.move_service("fmk", "sds", &o).await.unwrap();
    db.delete_organisation("rh", &o).await.unwrap();

    // Port alias create / delete.
    let alias = policy::PortAlias {
        name: "hl7".into(),
        protocol: policy::Protocol::Tcp,
        ports: vec![PortRange { lo: 2575, hi: 2575 }],
    };
    db.create_port_alias(&alias, &o).await.unwrap();
    assert_eq!(db.port_alias("hl7").await.unwrap().unwrap(), alias);
    db.delete_port_alias("hl7", &o).await.unwrap();

    // Back where we started.
    assert_eq!(db.export().await.unwrap(), demo().canonical());
    db.close().await;
}

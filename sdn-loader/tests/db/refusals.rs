//! Every refusal, with a clear message that changes nothing.

use super::*;

pub(crate) async fn refusals(url: &str) {
    let db = Db::open(url).await.unwrap();
    db.import(&demo(), &origin("seed")).await.unwrap();
    let o = origin("refused");
    let before = db.export_with_revision().await.unwrap();

    // The last endpoint of a service with agreements.
    let pacs_ep = db.service("pacs").await.unwrap().unwrap().endpoints[0].clone();
    let err = refused(
        &db,
        &before,
        db.delete_endpoint("pacs", &pacs_ep, false, &o).await,
        &["last endpoint", "\"pacs\"", "1003"],
    )
    .await;
    assert!(matches!(err, DbError::LastEndpoint { total: 1, .. }));
    // An endpoint that is not there; an ambiguous one.
    let other = db
        .endpoint_from_text("203.0.113.99", "tcp", None)
        .await
        .unwrap();
    refused(
        &db,
        &before,
        db.delete_endpoint("fmk", &other, false, &o).await,
        &["has no endpoint 203.0.113.99/32 tcp"],
    )
    .await;

    // Unknown references.
    let svc = Service {
        id: "x".into(),
        organisation: "rsyf".into(),
        name: "X".into(),
        endpoints: before.1.services[0].endpoints.clone(),
    };
    refused(
        &db,
        &before,
        db.create_service(&svc, &o).await,
        &[
            "service \"x\"",
            "field `organisation`",
            "unknown organisation \"rsyf\"; did you mean \"rsyd\"?",
        ],
    )
    .await;
    let a = Agreement {
        id: 5000,
        client: "nobody".into(),
        service: "nothing".into(),
        state: AgreementState::Approved,
        expires: None,
        vlan: Some(4095),
    };
    refused(
        &db,
        &before,
        db.create_agreement(&a, &o).await,
        &[
            "agreement 5000",
            "field `client`: unknown client \"nobody\"",
            "field `service`: unknown service \"nothing\"",
            "field `vlan`: VLAN 4095 is out of range 1-4094",
        ],
    )
    .await;
    refused(
        &db,
        &before,
        db.move_service("fmk", "nowhere", &o).await,
        &["unknown organisation \"nowhere\""],
    )
    .await;
    refused(
        &db,
        &before,
        db.transition(9999, Transition::Approve, &o).await,
        &["agreement 9999 does not exist"],
    )
    .await;

    // Duplicate ids.
    refused(
        &db,
        &before,
        db.create_organisation(
            &Organisation {
                id: "rsyd".into(),
                name: "Again".into(),
            },
            &o,
        )
        .await,
        &["organisation \"rsyd\" already exists"],
    )
    .await;
    let dup = Agreement {
        client: "lab".into(),
        service: "pacs".into(),
        ..before.1.agreements[0].clone()
    };
    refused(
        &db,
        &before,
        db.create_agreement(&dup, &o).await,
        &["agreement 1001 already exists"],
    )
    .await;

    // Bad prefixes and ports, caught by the policy rules.
    let bad = Client {
        id: "bad".into(),
        organisation: "rsyd".into(),
        prefixes: vec![net("198.51.100.7/24")],
    };
    refused(
        &db,
        &before,
        db.create_client(&bad, &o).await,
        &[
            "client \"bad\"",
            "field `prefixes`",
            "198.51.100.7/24 has host bits set; did you mean 198.51.100.0/24?",
        ],
    )
    .await;
    refused(
        &db,
        &before,
        db.add_prefix("lab", net("198.51.100.21/30"), &o).await,
        &["host bits set; did you mean 198.51.100.20/30?"],
    )
    .await;
    refused(
        &db,
        &before,
        db.create_client(
            &Client {
                prefixes: Vec::new(),
                ..bad.clone()
            },
            &o,
        )
        .await,
        &["field `prefixes`: a client needs at least one prefix"],
    )
    .await;
    let e = db
        .endpoint_from_text("203.0.113.10", "icmp", Some(&["443".into()]))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "endpoint 203.0.113.10 icmp: field `ports`: protocol icmp has no ports; remove `ports`"
    );
    let e = db
        .endpoint_from_text("203.0.113.10", "udp", Some(&["dicom".into()]))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("port alias \"dicom\" is for tcp, not udp")
    );
    let e = db
        .endpoint_from_text("203.0.113.10", "tcp", Some(&["dicon".into()]))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("unknown port alias \"dicon\"; did you mean \"dicom\"?")
    );
    let e = db
        .endpoint_from_text("203.0.113.0/33", "tcp", Some(&["2000-1000".into()]))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("field `address`"), "{e}");
    assert!(
        e.to_string().contains("inverted port range 2000-1000"),
        "{e}"
    );
    let inverted = policy::Endpoint {
        address: net("203.0.113.50"),
        protocol: policy::Protocol::Tcp,
        ports: vec![PortRange { lo: 90, hi: 80 }],
    };
    refused(
        &db,
        &before,
        db.add_endpoint("fmk", &inverted, &o).await,
        &[
            "service \"fmk\"",
            "field `ports`: inverted port range 90-80",
        ],
    )
    .await;

    // Wrong state, objects in use, last prefix.
    refused(
        &db,
        &before,
        db.transition(1001, Transition::Approve, &o).await,
        &["cannot approve agreement 1001: it is approved, and only a requested agreement can be approved"],
    )
    .await;
    refused(
        &db,
        &before,
        db.transition(1002, Transition::Revoke, &o).await,
        &["it is revoked"],
    )
    .await;
    refused(
        &db,
        &before,
        db.delete_organisation("rsyd", &o).await,
        &["cannot delete organisation \"rsyd\": it still owns 1 service and 2 clients"],
    )
    .await;
    refused(
        &db,
        &before,
        db.delete_service("fmk", &o).await,
        &["cannot delete service \"fmk\": it has 2 agreements (1001, 1002)"],
    )
    .await;
    refused(
        &db,
        &before,
        db.delete_client("lab", &o).await,
        &["it has 1 agreement (1002)"],
    )
    .await;
    refused(
        &db,
        &before,
        db.delete_prefix("lab", net("198.51.100.20/32"), &o).await,
        &["last prefix of client \"lab\""],
    )
    .await;
    refused(
        &db,
        &before,
        db.delete_prefix("lab", net("198.51.100.99/32"), &o).await,
        &["client \"lab\" has no prefix 198.51.100.99/32"],
    )
    .await;

    // A service without agreements still needs an endpoint.
    let lone = Service {
        id: "lone".into(),
        organisation: "sds".into(),
        name: "Lone".into(),
        endpoints: vec![pacs_ep.clone()],
    };
    db.create_service(&lone, &o).await.unwrap();
    let before2 = db.export_with_revision().await.unwrap();
    refused(
        &db,
        &before2,
        db.delete_endpoint("lone", &pacs_ep, true, &o).await,
        &["a service needs at least one endpoint"],
    )
    .await;

    // An invalid policy cannot reach the database: import takes only a validated Policy, and
    // validating the draft names the fault.
    let mut broken = demo().into_draft();
    broken.agreements[0].client = "ghost".into();
    let err = broken.validate().unwrap_err();
    let shown = err
        .validation_errors()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>();
    assert!(
        shown.iter().any(|e| e.contains("unknown client \"ghost\"")),
        "{shown:?}"
    );
    assert_eq!(db.export_with_revision().await.unwrap(), before2);
    db.close().await;
}

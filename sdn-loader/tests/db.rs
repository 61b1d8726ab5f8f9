//! The agreement database (`sdn_loader::db`), on SQLite in a temporary directory and, when
//! `SDN_TEST_POSTGRES_URL` is set (e.g. `postgres://sdn@127.0.0.1:5432/sdn`), on PostgreSQL
//! with the same test bodies (each test in a schema of its own, dropped at the end).
//!
//! - Import/export round trip of `examples/demo-policy.toml` and of a synthetic policy of
//!   6,351 agreements; re-import of a changed policy writes only the difference.
//! - The revision moves by one on every change and not on reads or no-op changes; audit rows
//!   carry the request id and actor, and the audit query filters by organisation, object,
//!   request id and time.
//! - Every verb, and every refusal (last endpoint, unknown references, duplicate ids, bad
//!   prefix, wrong state, objects in use) with a clear message that changes nothing.
//! - `import_timing` (ignored; `--ignored --nocapture`) prints the import time of 6,351 and
//!   100,000 agreements on SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::Instant;

use chrono::{Duration, NaiveDate, Utc};
use ipnet::IpNet;
use sdn_loader::db::{
    AgreementEdit, AgreementFilter, AuditFilter, Committed, Db, DbError, ObjectKind, Origin,
    Provision, ProvisionState, RouterStatus, Transition, canonical, text::policy_json,
};
use sdn_loader::policy::{
    self, Agreement, AgreementState, Client, Organisation, Policy, PortRange, Service,
};
use sdn_loader::tools::policies::{self, Shape};

use support::target::Target;

/// One `#[tokio::test]` per body and backend: `sqlite::NAME` and `postgres::NAME` (the latter
/// passes without doing anything when `SDN_TEST_POSTGRES_URL` is not set).
macro_rules! db_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let t = super::Target::sqlite();
                    super::$name(&t.url).await;
                    t.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(t) = super::Target::postgres(stringify!($name)).await else {
                        eprintln!("skipped: SDN_TEST_POSTGRES_URL is not set");
                        return;
                    };
                    super::$name(&t.url).await;
                    t.finish().await;
                }
            )*
        }
    };
}

db_tests!(
    round_trip_demo,
    round_trip_synthetic_and_reimport,
    revision_and_audit,
    verbs,
    refusals,
    concurrent_changes,
    concurrent_lifecycle,
    status_and_confirmations,
);

fn demo() -> Policy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo-policy.toml");
    policy::load_file(&path).unwrap()
}

fn origin(request: &str) -> Origin {
    Origin::new("tester", request)
}

fn net(text: &str) -> IpNet {
    sdn_loader::db::text::parse_net(text).unwrap()
}

/// Asserts that `result` is an error whose message contains every one of `parts`, and that
/// the database is as `before` (content and revision).
async fn refused<T: std::fmt::Debug>(
    db: &Db,
    before: &(u64, Policy),
    result: Result<T, DbError>,
    parts: &[&str],
) -> DbError {
    let err = result.expect_err("the change should have been refused");
    let msg = err.to_string();
    for part in parts {
        assert!(msg.contains(part), "message {msg:?} lacks {part:?}");
    }
    assert_eq!(
        &db.export_with_revision().await.unwrap(),
        before,
        "a refused change changed the database ({msg})"
    );
    err
}

async fn round_trip_demo(url: &str) {
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
    assert_eq!(exported, canonical(&p));

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
    assert_eq!(db.export().await.unwrap(), canonical(&p));
    assert_eq!(db.revision().await.unwrap(), 1);
    db.close().await;
}

async fn round_trip_synthetic_and_reimport(url: &str) {
    let db = Db::open(url).await.unwrap();
    let p = policies::policy(Shape::scaled(6351));
    assert_eq!(p.agreements.len(), 6351);
    let r = db.import(&p, &origin("big")).await.unwrap();
    assert_eq!(r.revision, 1);
    let exported = db.export().await.unwrap();
    assert_eq!(exported, canonical(&p));

    // Change a little: drop 100 agreements, revoke one, move one service, rename an
    // organisation, drop a prefix of a client, add an organisation and an infrastructure
    // entry.
    let mut q = exported.clone();
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
    let r = db.import(&q, &origin("small-change")).await.unwrap();
    assert_eq!(r.revision, 2);
    assert_eq!((r.created, r.updated, r.deleted), (1, 5, 100));
    assert_eq!(db.export().await.unwrap(), canonical(&q));
    let filter = AuditFilter {
        request_id: Some("small-change".into()),
        ..AuditFilter::default()
    };
    assert_eq!(db.audit(&filter).await.unwrap().len(), 107);

    // Back to the first policy.
    let r = db.import(&p, &origin("back")).await.unwrap();
    assert_eq!(r.revision, 3);
    assert_eq!(db.export().await.unwrap(), canonical(&p));

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

async fn revision_and_audit(url: &str) {
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

async fn verbs(url: &str) {
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
    assert_eq!(db.export().await.unwrap(), canonical(&demo()));
    db.close().await;
}

async fn refusals(url: &str) {
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

    // An invalid policy is not imported at all.
    let mut broken = demo();
    broken.agreements[0].client = "ghost".into();
    refused(
        &db,
        &before2,
        db.import(&broken, &o).await,
        &["unknown client \"ghost\""],
    )
    .await;
    db.close().await;
}

/// Two handles changing the database at the same time: every change gets its own revision.
async fn concurrent_changes(url: &str) {
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
async fn concurrent_lifecycle(url: &str) {
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

/// A mistyped SQLite path is not silently a new database; a URL of another kind is refused.
#[tokio::test]
async fn opening() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("missing.db").display());
    let err = Db::open_existing(&url).await.unwrap_err();
    assert!(matches!(err, DbError::NoDatabase { .. }), "{err}");
    assert!(
        err.to_string().contains("missing.db does not exist"),
        "{err}"
    );
    assert!(!dir.path().join("missing.db").exists());
    let err = Db::open("mysql://u:secret@h/db").await.unwrap_err();
    assert!(matches!(err, DbError::BadUrl { .. }), "{err}");
    assert!(!err.to_string().contains("secret"), "{err}");
    let db = Db::open("sqlite::memory:").await.unwrap();
    db.import(&demo(), &origin("mem")).await.unwrap();
    assert_eq!(db.export().await.unwrap(), canonical(&demo()));
    db.close().await;
    Db::open(&url).await.unwrap().close().await;
    Db::open_existing(&url).await.unwrap().close().await;
    let nested = format!("sqlite://{}", dir.path().join("a/b/sdn.db").display());
    Db::open(&nested).await.unwrap().close().await;
    assert!(dir.path().join("a/b/sdn.db").exists());
}

/// Import (and export) times on SQLite (and on PostgreSQL when `SDN_TEST_POSTGRES_URL` is
/// set); `cargo test --release -p sdn-loader --test db --
/// --ignored --nocapture import_timing`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; prints figures"]
async fn import_timing() {
    for (backend, n) in [
        ("sqlite", 6351),
        ("sqlite", 100_000),
        ("postgres", 6351),
        ("postgres", 100_000),
    ] {
        let t = if backend == "sqlite" {
            Target::sqlite()
        } else if let Some(t) = Target::postgres("timing").await {
            t
        } else {
            continue;
        };
        let db = Db::open(&t.url).await.unwrap();
        let p = policies::policy(Shape::scaled(n));
        let start = Instant::now();
        let r = db.import(&p, &origin("timing")).await.unwrap();
        let import = start.elapsed();
        let start = Instant::now();
        let exported = db.export().await.unwrap();
        let export = start.elapsed();
        assert_eq!(exported, canonical(&p));
        let mut q = exported.clone();
        q.agreements[0].state = AgreementState::Revoked;
        let start = Instant::now();
        let r2 = db.import(&q, &origin("timing-1")).await.unwrap();
        let reimport = start.elapsed();
        assert_eq!(r2.updated, 1);
        println!(
            "{backend}: {n} agreements ({} services, {} clients, {} objects): import {:.2} s, export {:.2} s, re-import with one change {:.2} s",
            p.services.len(),
            p.clients.len(),
            r.created,
            import.as_secs_f64(),
            export.as_secs_f64(),
            reimport.as_secs_f64()
        );
        db.close().await;
        t.finish().await;
    }
}

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
async fn status_and_confirmations(url: &str) {
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
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), l.recv())
            .await
            .expect("a NOTIFY within 10 s of the commit")
            .unwrap();
        assert_eq!(n.payload(), "2");
    }
    db.close().await;
}

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
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

use sdn_tests as support;

use std::path::Path;
use std::time::Instant;

use chrono::{Duration, NaiveDate, Utc};
use ipnet::IpNet;
use sdn_loader::db::{
    AgreementEdit, AgreementFilter, AuditFilter, Committed, Db, DbError, ObjectKind, Origin,
    Provision, ProvisionState, RouterStatus, Transition, text::policy_json,
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

mod concurrency;
mod refusals;
mod round_trips;
mod status;
mod verbs;

use concurrency::{concurrent_changes, concurrent_lifecycle};
use refusals::refusals;
use round_trips::{revision_and_audit, round_trip_demo, round_trip_synthetic_and_reimport};
use status::status_and_confirmations;
use verbs::verbs;

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
    assert_eq!(db.export().await.unwrap(), demo().canonical());
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
        let p = policies::policy(Shape::scaled(n)).unwrap();
        let start = Instant::now();
        let r = db.import(&p, &origin("timing")).await.unwrap();
        let import = start.elapsed();
        let start = Instant::now();
        let exported = db.export().await.unwrap();
        let export = start.elapsed();
        assert_eq!(exported, p.canonical());
        let mut q = exported.clone().into_draft();
        q.agreements[0].state = AgreementState::Revoked;
        let q = q.validate().unwrap();
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

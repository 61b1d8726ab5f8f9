//! The strict input rules on every path that takes text from outside, not only the policy
//! file: the database's operations (on SQLite, and on PostgreSQL when
//! `SDN_TEST_POSTGRES_URL` is set), and the `db` and `explain` command lines.
//!
//! - A leading zero in an IPv4 octet (`198.051.100.010/32`) is refused, with or without a
//!   prefix length, naming the value and why.
//! - Control characters in ids and names are refused, naming the field and the character.
//! - A repeated endpoint of a service, or prefix of a client, is refused, naming both.
//!
//! Every refusal leaves the database as it was. Needs no root: nothing is loaded.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

use sdn_tests as support;

use std::path::{Path, PathBuf};
use std::process::Command;

use sdn_loader::db::{Db, DbError, Origin, text};
use sdn_loader::policy::{
    Client, Endpoint, Organisation, Policy, PolicyDraft, PortRange, Protocol, Service,
};

use support::target::Target;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_refuses_what_the_policy_file_refuses_sqlite() {
    let t = Target::sqlite();
    database_refuses_what_the_policy_file_refuses(&t.url).await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_refuses_what_the_policy_file_refuses_postgres() {
    let Some(t) = Target::postgres("refuses").await else {
        eprintln!("skipped: SDN_TEST_POSTGRES_URL is not set");
        return;
    };
    database_refuses_what_the_policy_file_refuses(&t.url).await;
    t.finish().await;
}

fn origin() -> Origin {
    Origin::new("tester", "strict")
}

fn endpoint(address: &str, protocol: Protocol, port: Option<u16>) -> Endpoint {
    Endpoint {
        address: text::parse_net(address).unwrap(),
        protocol,
        ports: port
            .map(|p| PortRange { lo: p, hi: p })
            .into_iter()
            .collect(),
    }
}

/// An organisation `o`, a service `s` with one endpoint and a client `c` with one prefix.
fn base() -> Policy {
    PolicyDraft {
        organisations: vec![Organisation {
            id: "o".into(),
            name: "Org".into(),
        }],
        services: vec![Service {
            id: "s".into(),
            organisation: "o".into(),
            name: "S".into(),
            endpoints: vec![endpoint("203.0.113.10", Protocol::Tcp, Some(443))],
        }],
        clients: vec![Client {
            id: "c".into(),
            organisation: "o".into(),
            prefixes: vec![text::parse_net("198.51.100.0/24").unwrap()],
        }],
        ..PolicyDraft::default()
    }
    .validate()
    .unwrap()
}

/// Asserts that `result` is an error whose message has every one of `parts`, and that the
/// database is unchanged.
async fn refused<T: std::fmt::Debug>(
    db: &Db,
    before: &(u64, Policy),
    result: Result<T, DbError>,
    parts: &[&str],
) {
    let msg = result.expect_err("should be refused").to_string();
    for part in parts {
        assert!(msg.contains(part), "message {msg:?} lacks {part:?}");
    }
    assert_eq!(&db.export_with_revision().await.unwrap(), before, "{msg}");
}

async fn database_refuses_what_the_policy_file_refuses(url: &str) {
    let db = Db::open(url).await.unwrap();
    db.import(&base(), &origin()).await.unwrap();
    let before = db.export_with_revision().await.unwrap();
    let o = origin();

    // Addresses: the command line's text, and prefixes given as text.
    refused(
        &db,
        &before,
        db.endpoint_from_text("198.051.100.010/32", "tcp", Some(&["443".to_owned()]))
            .await,
        &[
            "field `address`",
            "\"198.051.100.010/32\"",
            "IPv4 octet \"051\" has leading zeros, which are ambiguous (octal or decimal?)",
        ],
    )
    .await;
    let err = text::parse_net("198.51.100.00/24").unwrap_err().to_string();
    assert!(err.contains("\"00\" has leading zeros"), "{err}");

    // Control characters in ids and names.
    let bel = Organisation {
        id: "a\u{7}b".into(),
        name: "Org".into(),
    };
    refused(
        &db,
        &before,
        db.create_organisation(&bel, &o).await,
        &["field `id`", "control character '\\u{7}' (U+0007)"],
    )
    .await;
    let tab = Organisation {
        id: "o".into(),
        name: "Org\tsecond column".into(),
    };
    refused(
        &db,
        &before,
        db.update_organisation(&tab, &o).await,
        &["field `name`", "control character '\\t'"],
    )
    .await;
    refused(
        &db,
        &before,
        db.rename_service("s", "S\nfake line", &o).await,
        &["service \"s\"", "field `name`", "'\\n'"],
    )
    .await;
    let client = Client {
        id: "c\u{1b}[31m".into(),
        organisation: "o".into(),
        prefixes: vec![text::parse_net("192.0.2.0/24").unwrap()],
    };
    refused(
        &db,
        &before,
        db.create_client(&client, &o).await,
        &["field `id`", "'\\u{1b}'"],
    )
    .await;

    // Repeated endpoints: in a new service, and one added to a service that has it.
    let twice = Service {
        id: "t".into(),
        organisation: "o".into(),
        name: "T".into(),
        endpoints: vec![
            endpoint("203.0.113.20", Protocol::Udp, Some(53)),
            endpoint("203.0.113.20/32", Protocol::Udp, Some(53)),
        ],
    };
    refused(
        &db,
        &before,
        db.create_service(&twice, &o).await,
        &[
            "service \"t\"",
            "endpoint[1]",
            "duplicate endpoint 203.0.113.20/32 udp 53",
            "endpoint[0]",
        ],
    )
    .await;
    let again = db
        .endpoint_from_text("203.0.113.10", "tcp", Some(&["443".to_owned()]))
        .await
        .unwrap();
    refused(
        &db,
        &before,
        db.add_endpoint("s", &again, &o).await,
        &[
            "service \"s\"",
            "endpoint[1]",
            "duplicate endpoint 203.0.113.10/32 tcp 443",
        ],
    )
    .await;
    // Another port of the same address is a new endpoint.
    let other = endpoint("203.0.113.10", Protocol::Tcp, Some(8443));
    db.add_endpoint("s", &other, &o).await.unwrap();
    let before = db.export_with_revision().await.unwrap();

    // Repeated prefixes: added to a client that has it, in a new client.
    refused(
        &db,
        &before,
        db.add_prefix("c", text::parse_net("198.51.100.0/24").unwrap(), &o)
            .await,
        &["client \"c\"", "duplicate prefix 198.51.100.0/24"],
    )
    .await;
    let client = Client {
        id: "d".into(),
        organisation: "o".into(),
        prefixes: vec![
            text::parse_net("2001:db8:200::/48").unwrap(),
            text::parse_net("2001:0db8:0200::/48").unwrap(),
        ],
    };
    refused(
        &db,
        &before,
        db.create_client(&client, &o).await,
        &[
            "client \"d\"",
            "duplicate prefix 2001:db8:200::/48",
            "prefixes[1]",
        ],
    )
    .await;

    // A policy built by hand (not read from a file) gets the same check before it can be
    // imported (import takes only a validated Policy).
    let mut p = db.export().await.unwrap().into_draft();
    let first = p.services[0].endpoints[0].clone();
    p.services[0].endpoints.push(first);
    refused(
        &db,
        &before,
        p.validate().map_err(DbError::from),
        &["service \"s\"", "endpoint[2]", "duplicate endpoint"],
    )
    .await;
    db.close().await;
}

// ---------------------------------------------------------------------------------------------
// The command lines
// ---------------------------------------------------------------------------------------------

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn loader(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_sdn-loader"))
        .args(args)
        .env_remove("SDN_LOG")
        .output()
        .expect("running sdn-loader");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `sdn-loader ARGS`, which must fail with every one of `parts` on stderr.
fn fails(args: &[&str], parts: &[&str]) {
    let run = loader(args);
    assert!(!run.ok, "{args:?} should fail: {}", run.stdout);
    for part in parts {
        assert!(
            run.stderr.contains(part),
            "{args:?}: stderr {:?} lacks {part:?}",
            run.stderr
        );
    }
}

const POLICY: &str = r#"
[[organisation]]
id = "o"
name = "Org"

[[service]]
id = "s"
organisation = "o"
name = "S"
endpoints = [{ address = "203.0.113.10", protocol = "tcp", ports = "443" }]

[[client]]
id = "c"
organisation = "o"
prefixes = ["198.51.100.0/24"]
"#;

fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn db_command_line_refuses_the_same_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sdn.db").display());
    let policy = write(dir.path(), "p.toml", POLICY.as_bytes());
    let db = |rest: &[&str]| {
        let mut args = vec!["db", "--db", url.as_str()];
        args.extend_from_slice(rest);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = |rest: &[&str]| {
        let args = db(rest);
        loader(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let refuse = |rest: &[&str], parts: &[&str]| {
        let args = db(rest);
        fails(&args.iter().map(String::as_str).collect::<Vec<_>>(), parts);
    };
    assert!(run(&["import", policy.to_str().unwrap()]).ok);
    let revision = run(&["revision"]).stdout;

    refuse(
        &[
            "client",
            "create",
            "d",
            "--organisation",
            "o",
            "--prefix",
            "198.051.100.0/24",
        ],
        &[
            "client \"d\"",
            "\"198.051.100.0/24\"",
            "IPv4 octet \"051\" has leading zeros",
        ],
    );
    refuse(
        &["prefix", "add", "c", "198.51.100.010"],
        &["\"198.51.100.010\"", "leading zeros, which are ambiguous"],
    );
    refuse(
        &["endpoint", "add", "s", "203.000.113.10", "tcp", "443"],
        &["\"203.000.113.10\"", "IPv4 octet \"000\""],
    );
    refuse(
        &["endpoint", "add", "s", "203.0.113.10/32", "tcp", "443"],
        &[
            "service \"s\"",
            "duplicate endpoint 203.0.113.10/32 tcp 443",
        ],
    );
    refuse(
        &["prefix", "add", "c", "198.51.100.0/24"],
        &["duplicate prefix 198.51.100.0/24"],
    );
    refuse(
        &["org", "create", "x\u{7f}", "--name", "X"],
        &["field `id`", "control character '\\u{7f}' (U+007F)"],
    );
    refuse(
        &["org", "update", "o", "--name", "Org\ttab"],
        &["field `name`", "control character '\\t'"],
    );
    refuse(
        &["alias", "create", "web\u{7}", "tcp", "443"],
        &["field `name`", "'\\u{7}'"],
    );
    // A policy file with a repeated endpoint is refused by import as by check.
    let dup = POLICY.replace(
        r#"ports = "443" }]"#,
        r#"ports = "443" }, { address = "203.0.113.10/32", protocol = "tcp", ports = 443 }]"#,
    );
    let dup = write(dir.path(), "dup.toml", dup.as_bytes());
    refuse(
        &["import", dup.to_str().unwrap()],
        &[
            "service \"s\" (service[0]) endpoint[1]",
            "duplicate endpoint",
        ],
    );
    fails(
        &["check", "--policy", dup.to_str().unwrap()],
        &["endpoint[1]", "duplicate endpoint"],
    );
    assert_eq!(
        run(&["revision"]).stdout,
        revision,
        "a refusal changed the database"
    );
}

#[test]
fn explain_refuses_leading_zeros_in_its_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(dir.path(), "p.toml", POLICY.as_bytes());
    fails(
        &[
            "explain",
            "--policy",
            policy.to_str().unwrap(),
            "198.051.100.10",
            "203.0.113.10",
            "tcp",
            "40000",
            "443",
        ],
        &["\"198.051.100.10\"", "IPv4 octet \"051\" has leading zeros"],
    );
}

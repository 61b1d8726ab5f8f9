//! What scripts rely on, without root: exit codes (README "Exit codes"), unknown names as
//! errors, the `db` group's options after the command's name, `--json` on the `db` listings,
//! and one lifecycle for every editing command.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test")]
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

use std::path::Path;
use std::process::{Command, Output};

use sdn_loader::policy::load_file;

/// The loader binary built for this test run.
const LOADER: &str = env!("CARGO_BIN_EXE_sdn-loader");

fn loader(args: &[&str]) -> Output {
    Command::new(LOADER).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The exit code, with both streams for the message.
fn code(out: &Output) -> (Option<i32>, String) {
    let shown = format!(
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    (out.status.code(), shown)
}

fn demo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo-policy.toml")
}

/// A new SQLite database holding the demo policy, imported with `--db` after `import`.
fn demo_db(dir: &Path) -> String {
    let url = format!("sqlite://{}", dir.join("sdn.db").display());
    let demo = demo();
    let out = loader(&["db", "import", "--db", &url, demo.to_str().unwrap()]);
    assert_eq!(code(&out).0, Some(0), "{}", code(&out).1);
    url
}

#[test]
fn db_options_go_before_or_after_the_command_and_json_lists_parse() {
    let dir = tempfile::tempdir().unwrap();
    let url = demo_db(dir.path());
    let before = loader(&["db", "--db", &url, "--json", "org", "list"]);
    let after = loader(&["db", "org", "list", "--db", &url, "--json"]);
    assert_eq!(code(&before).0, Some(0), "{}", code(&before).1);
    assert_eq!(before.stdout, after.stdout);
    let orgs: serde_json::Value = serde_json::from_slice(&after.stdout).unwrap();
    let ids: Vec<&str> = (orgs.as_array().unwrap().iter())
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["rsyd", "sds"]);
    // Every listing and show answers JSON that names what the demo holds.
    for (args, needle) in [
        (&["service", "list"][..], "fmk"),
        (&["service", "show", "fmk"][..], "1001"),
        (&["client", "list"][..], "ouh-clinic"),
        (&["client", "show", "ouh-clinic"][..], "1001"),
        (&["agreement", "list"][..], "1001"),
        (&["agreement", "show", "1001"][..], "approved"),
        (&["alias", "list"][..], "dicom"),
        (&["org", "show", "sds"][..], "fmk"),
    ] {
        let out = loader(&[&["db", "--db", &url, "--json"][..], args].concat());
        assert_eq!(code(&out).0, Some(0), "{args:?}: {}", code(&out).1);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", code(&out).1));
        assert!(v.to_string().contains(needle), "{args:?}: {v}");
    }
    // A change answers {"revision", "changed", "request_id"}.
    let out = loader(&["db", "agreement", "revoke", "1001", "--db", &url, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["revision"].as_u64(), v["changed"].as_bool()),
        (Some(2), Some(true))
    );
}

#[test]
fn every_editing_command_keeps_the_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let url = demo_db(dir.path());
    let revoke = loader(&["db", "--db", &url, "agreement", "revoke", "1001"]);
    assert_eq!(code(&revoke).0, Some(0), "{}", code(&revoke).1);
    let export = |url: &str| loader(&["db", "--db", url, "export"]).stdout;
    let before = export(&url);
    // approve is refused for a revoked agreement, and so is setting the state by hand.
    for args in [
        &["agreement", "approve", "1001"][..],
        &["agreement", "update", "1001", "--state", "approved"][..],
    ] {
        let out = loader(&[&["db", "--db", &url][..], args].concat());
        let (status, shown) = code(&out);
        assert_eq!(status, Some(1), "{args:?}: {shown}");
        assert!(
            shown.contains("1001") && shown.contains("revoked"),
            "{args:?}: {shown}"
        );
        assert_eq!(export(&url), before, "{args:?} changed the database");
    }
}

#[test]
fn unknown_names_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let url = demo_db(dir.path());
    let out = loader(&["status", "--db", &url, "--router", "nosuch"]);
    let (status, shown) = code(&out);
    assert_eq!(status, Some(1), "{shown}");
    assert!(shown.contains("\"nosuch\""), "{shown}");
    for (flag, name) in [
        ("--agreement", "9999"),
        ("--service", "nosuch"),
        ("--client", "nosuch"),
        ("--organisation", "nosuch"),
        ("--router", "nosuch"),
    ] {
        let out = loader(&["kpi", "query", "--db", &url, flag, name]);
        let (status, shown) = code(&out);
        assert_eq!(status, Some(1), "{flag} {name}: {shown}");
        assert!(
            shown.contains(&format!("{name:?}")),
            "{flag} {name}: {shown}"
        );
    }
    // Known names with no traffic yet are an empty answer, not an error.
    for (flag, name) in [("--agreement", "1001"), ("--service", "fmk")] {
        let out = loader(&["kpi", "query", "--db", &url, flag, name]);
        assert_eq!(code(&out).0, Some(0), "{flag} {name}: {}", code(&out).1);
    }
}

#[test]
fn plan_exits_2_when_the_guard_will_hold_the_sync() {
    let dir = tempfile::tempdir().unwrap();
    let url = demo_db(dir.path());
    let state = dir.path().join("state");
    // The demo in force on router r at revision 1, as `run --db` would have kept it.
    sdn_loader::sync::state::save(&state, 1, &load_file(&demo()).unwrap()).unwrap();
    let plan = || {
        loader(&[
            "plan",
            "--db",
            &url,
            "--router",
            "r",
            "--state-dir",
            state.to_str().unwrap(),
            "--json",
        ])
    };
    let out = plan();
    let (status, shown) = code(&out);
    assert_eq!(status, Some(0), "nothing to change: {shown}");
    // Revoking most agreements removes more than the guard's share of the rules.
    for id in ["1001", "1003"] {
        let out = loader(&["db", "--db", &url, "agreement", "revoke", id]);
        assert_eq!(code(&out).0, Some(0), "{}", code(&out).1);
    }
    let out = plan();
    let (status, shown) = code(&out);
    assert_eq!(status, Some(2), "held: {shown}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["guard"], "hold", "{v}");
}

#[test]
fn completions_and_man_pages_come_from_the_command_line() {
    // Generated from the clap definition, with no configuration file needed (even a missing
    // one named with --config).
    let out = loader(&["--config", "/nonexistent/sdn.toml", "completions", "bash"]);
    let (status, shown) = code(&out);
    assert_eq!(status, Some(0), "{shown}");
    let script = text(&out.stdout);
    for word in ["sdn-loader", "agreement", "--pin-dir", "explain"] {
        assert!(script.contains(word), "bash completion lacks {word}");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = loader(&["man", "--out", dir.path().to_str().unwrap()]);
    assert_eq!(code(&out).0, Some(0), "{}", code(&out).1);
    let page = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    assert!(
        page("sdn-loader.1").contains(".TH sdn-loader 1"),
        "{}",
        page("sdn-loader.1")
    );
    // A command's page lists the global options it accepts, the db group's included.
    let import = page("sdn-loader-db-import.1");
    assert!(
        import.contains(".TH") && import.contains("\\-\\-db"),
        "{import}"
    );
    assert!(page("sdn-loader-run.1").contains("\\-\\-iface"));
}

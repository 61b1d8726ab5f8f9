//! Opening the agreement database when something is wrong with it: each fault is named at
//! once (not after a 30 s pool timeout), no credential is printed, an empty file is not
//! silently a new database, files are not readable by every user, and a deleted or
//! replaced file is noticed. (What an unprivileged user is told: `tests/tests/privileges.rs`,
//! which needs root to become another user.)
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

use sdn_tests as support;

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use sdn_loader::db::{Db, DbError, FileChange, OpenOptions};
use support::netns::{outcome, workspace_root};
use support::target::sqlite_url;

/// The loader binary built for this test run.
const LOADER: &str = env!("CARGO_BIN_EXE_sdn-loader");

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Whether the loader succeeded with `args`, and its stderr.
fn loader_err(args: &[&str]) -> (bool, String) {
    outcome(Command::new(LOADER).args(args))
}

/// A new database at `url` holding the demo policy.
async fn demo_db(url: &str) -> Db {
    let db = Db::open(url).await.unwrap();
    db.import(
        &sdn_loader::policy::load_file(&workspace_root().join("examples/demo-policy.toml"))
            .unwrap(),
        &sdn_loader::db::Origin::new("t", "r"),
    )
    .await
    .unwrap();
    db
}

#[tokio::test]
async fn garbage_and_truncated_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a_u8; 8192]).unwrap();
    let err = Db::open_existing(&sqlite_url(&garbage)).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("not an SQLite database"), "{text}");
    assert!(!text.contains("pool timed out"), "{text}");

    // A real database cut short: its header is there, its pages are not.
    let good = dir.path().join("good.db");
    let db = Db::open(&sqlite_url(&good)).await.unwrap();
    db.close().await;
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.db");
    std::fs::write(&cut, &bytes[..bytes.len().min(1500)]).unwrap();
    let err = Db::open_existing(&sqlite_url(&cut)).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("corrupt") || text.contains("not an SQLite database"),
        "{text}"
    );
    assert!(!text.contains("pool timed out"), "{text}");
}

#[tokio::test]
async fn a_closed_port_is_refused_at_once_and_no_password_is_printed() {
    // Port 1 on the loopback: nothing listens, the kernel refuses at once.
    let url = "postgres://u:pw@127.0.0.1:1/sdn?password=qpw&sslmode=disable";
    let t0 = std::time::Instant::now();
    let err = Db::open_existing(url).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("connection refused"), "{text}");
    assert!(!text.contains("qpw") && !text.contains(":pw@"), "{text}");
    eprintln!("refused after {:?}", t0.elapsed());
    // The same through the commands an operator types.
    for args in [
        ["status", "--db", url, "--json"].as_slice(),
        ["db", "--db", url, "agreement", "list"].as_slice(),
        ["kpi", "--db", url, "query"].as_slice(),
    ] {
        let (ok, stderr) = loader_err(args);
        assert!(!ok, "{args:?}");
        assert!(stderr.contains("connection refused"), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("qpw") && !stderr.contains(":pw@"),
            "{args:?}: {stderr}"
        );
    }
}

#[tokio::test]
async fn an_empty_file_is_not_silently_a_new_database() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let url = sqlite_url(&empty);
    for create in [false, true] {
        let err = Db::open_with(
            &url,
            OpenOptions {
                create,
                allow_empty: false,
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(err, DbError::EmptyFile { .. }), "{err}");
        assert!(err.to_string().contains("--allow-empty"), "{err}");
    }
    assert_eq!(
        std::fs::metadata(&empty).unwrap().len(),
        0,
        "left as it was"
    );
    let (ok, stderr) = loader_err(&["db", "--db", &url, "agreement", "list"]);
    assert!(!ok && stderr.contains("is empty (0 bytes)"), "{stderr}");
    let (ok, stderr) = loader_err(&["status", "--db", &url]);
    assert!(!ok && stderr.contains("is empty (0 bytes)"), "{stderr}");
    assert_eq!(
        std::fs::metadata(&empty).unwrap().len(),
        0,
        "left as it was"
    );
    // Asked for explicitly, it is a new database.
    let (ok, stderr) = loader_err(&["db", "--db", &url, "--allow-empty", "agreement", "list"]);
    assert!(ok, "{stderr}");
    let other = dir.path().join("other.db");
    std::fs::write(&other, b"").unwrap();
    let (ok, stderr) = loader_err(&["db", "--db", &sqlite_url(&other), "init"]);
    assert!(ok, "`db init` asks for a new database: {stderr}");
}

#[test]
fn an_empty_policy_file_is_not_enforced_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "# nothing yet\n").unwrap();
    // An interface that does not exist: if the empty policy were taken, the error would be
    // about the interface (nothing is ever attached by this test).
    let (ok, stderr) = loader_err(&[
        "run",
        "--iface",
        "sdnfx-none0",
        "--policy",
        empty.to_str().unwrap(),
        "--pin-dir",
        "/sys/fs/bpf/sdnfx-none",
    ]);
    assert!(!ok);
    assert!(stderr.contains("holds no agreements"), "{stderr}");
    assert!(stderr.contains("--allow-empty"), "{stderr}");
    assert!(!std::path::Path::new("/sys/fs/bpf/sdnfx-none").exists());
}

#[tokio::test]
async fn files_are_for_the_owner_and_group_only() {
    let dir = tempfile::tempdir().unwrap();
    // A new database, in a directory the loader creates.
    let path = dir.path().join("state/sdn.db");
    let db = demo_db(&sqlite_url(&path)).await;
    for f in ["state/sdn.db", "state/sdn.db-wal", "state/sdn.db-shm"] {
        let p = dir.path().join(f);
        assert_eq!(mode(&p), 0o640, "{f}: {:o}", mode(&p));
    }
    assert_eq!(mode(&dir.path().join("state")), 0o750);
    db.close().await;
    // One left world-readable by an earlier version is made private when opened.
    let old = dir.path().join("old.db");
    Db::open(&sqlite_url(&old)).await.unwrap().close().await;
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
    Db::open_existing(&sqlite_url(&old))
        .await
        .unwrap()
        .close()
        .await;
    assert_eq!(mode(&old), 0o640);
    // The state files of `run --db` likewise.
    let state = dir.path().join("run-state");
    sdn_loader::sync::state::save(&state, 3, &sdn_loader::policy::Policy::default()).unwrap();
    for e in std::fs::read_dir(&state).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(mode(&p), 0o640, "{}", p.display());
    }
}

#[tokio::test]
async fn a_deleted_or_replaced_file_is_noticed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sdn.db");
    let db = Db::open(&sqlite_url(&path)).await.unwrap();
    assert_eq!(db.file_change(), None);
    assert_eq!(db.revision().await.unwrap(), 0);
    // Replaced: another database moved over it.
    let other = dir.path().join("other.db");
    Db::open(&sqlite_url(&other)).await.unwrap().close().await;
    std::fs::rename(&other, &path).unwrap();
    assert_eq!(db.file_change(), Some(FileChange::Replaced));
    let err = db.revision().await.unwrap_err();
    assert!(err.to_string().contains("was replaced"), "{err}");
    // Vanished.
    std::fs::remove_file(&path).unwrap();
    assert_eq!(db.file_change(), Some(FileChange::Vanished));
    assert!(
        db.revision()
            .await
            .unwrap_err()
            .to_string()
            .contains("vanished")
    );
    db.close().await;
}

/// Content edited outside sdn-loader so that it breaks a rule (a service left without
/// endpoints by raw SQL) is refused by name when read: nothing of it is handed on.
#[tokio::test]
async fn content_edited_by_hand_is_refused_when_read() {
    use sqlx::Connection as _;
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("sdn.db"));
    let db = demo_db(&url).await;
    db.close().await;
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("DELETE FROM endpoints WHERE service = (SELECT MIN(id) FROM services)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let db = Db::open_existing(&url).await.unwrap();
    let err = db.export().await.unwrap_err();
    assert!(matches!(err, DbError::InvalidContent { .. }), "{err:?}");
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert!(
        cause.contains("a service needs at least one endpoint"),
        "{err}: {cause}"
    );
    db.close().await;
}

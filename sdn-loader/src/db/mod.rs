//! The agreement database: organisations, port aliases, services with endpoints, clients with
//! prefixes, agreements and the infrastructure allow list, a revision counter and an audit
//! log, on SQLite (`sqlite://PATH`, the default) or PostgreSQL (`postgres://...`).
//!
//! - One code path for both backends: sqlx's `Any` driver, with SQL kept portable (see
//!   `migrations/` and `store.rs`). The schema is versioned by sqlx migrations, embedded in
//!   the binary and applied when the database is opened.
//! - Every change runs in one transaction that first adds one to the revision and ends by
//!   writing its audit rows (request id, actor, action, object, before/after JSON, time). A
//!   refused change rolls back whole: the content and the revision stay as they were. A change
//!   that changes nothing (an update to the same values, re-importing the same policy) is not
//!   a change: no revision, no audit row.
//! - Objects are validated with the policy file's own rules and messages ([`crate::policy`]).
//! - [`Db::export`] returns the policy in a fixed order (see [`Policy::canonical`]): for every valid
//!   policy `p`, `import(p)` then `export()` gives `p.canonical()`, with port sets normalised
//!   as the policy parser does.

mod audit;
mod check;
mod error;
mod import;
mod lifecycle;
mod ops;
mod status;
mod store;
pub mod text;
mod url;

use std::str::FromStr as _;

use chrono::Utc;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, Connection as _, Transaction};

use crate::policy::Policy;

pub use audit::{AuditEntry, AuditFilter, parse_time};
pub use error::{DbError, ObjectKind};
pub use import::ImportReport;
pub use lifecycle::Transition;
pub use ops::{AgreementEdit, AgreementFilter};
pub use status::{Provision, ProvisionState, RouterStatus};
pub use url::{DIR_MODE, FileChange, redact_text, redact_url};
use url::{backend_of, sqlite_path, sqlite_url};

/// The database when none is given: an SQLite file in the loader's state directory.
pub const DEFAULT_URL: &str = "sqlite:///var/lib/sdn/sdn.db";

/// The schema migrations (`sdn-loader/migrations/`), embedded at build time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Which database server a [`Db`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file (or `sqlite::memory:`).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Who makes a change and under which request id; recorded in every audit row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The person or system (e.g. a user name).
    pub actor: String,
    /// Ties together every change made for one request (a UUID, or a ticket number).
    pub request_id: String,
}

impl Origin {
    /// An origin with the given actor and request id.
    pub fn new(actor: impl Into<String>, request_id: impl Into<String>) -> Self {
        Self {
            actor: actor.into(),
            request_id: request_id.into(),
        }
    }
}

/// A handle on the agreement database (a small connection pool).
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// The SQLite file as it was when opened.
    file: Option<url::FileId>,
}

/// Checks an SQLite file before SQLite sees it: it must exist unless `create`, must not be
/// empty unless `allow_empty`; a new file (and directory) is created private.
fn prepare_file(
    path: &std::path::Path,
    options: OpenOptions,
) -> Result<std::path::PathBuf, DbError> {
    let shown = || path.display().to_string();
    match std::fs::metadata(path) {
        Ok(m) if m.len() == 0 && !options.allow_empty => {
            return Err(DbError::EmptyFile { path: shown() });
        }
        Ok(_) => {}
        Err(_) if !options.create => return Err(DbError::NoDatabase { path: shown() }),
        Err(_) => {
            // SQLite creates the file, not its directory.
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
                && !dir.exists()
            {
                use std::os::unix::fs::DirBuilderExt as _;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(url::DIR_MODE)
                    .create(dir)
                    .map_err(|error| DbError::CreateDir {
                        path: dir.display().to_string(),
                        error,
                    })?;
            }
            url::create_private(path).map_err(|error| DbError::FileAccess {
                path: shown(),
                error,
            })?;
        }
    }
    Ok(path.to_owned())
}

/// Settings of every connection: foreign keys on; WAL for a file, so the live sync's reads
/// and a writer do not block each other.
async fn prepare_connection(
    conn: &mut AnyConnection,
    backend: Backend,
    in_memory: bool,
) -> Result<(), sqlx::Error> {
    if backend == Backend::Sqlite {
        sqlx::query("PRAGMA foreign_keys = ON")
            .execute(&mut *conn)
            .await?;
        if !in_memory {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&mut *conn)
                .await?;
            // A garbage file passes the pragmas above only until the first page is read.
            sqlx::query("SELECT COUNT(*) FROM sqlite_master")
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// How [`Db::open_with`] treats an SQLite file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Create the file (and its directory) when it is not there.
    pub create: bool,
    /// Take a 0-byte file as a new, empty database. Without this an empty file is refused:
    /// it is what a failed copy or restore leaves, and made into a database it holds no
    /// agreements, so a router following it would drop all traffic.
    pub allow_empty: bool,
}

impl Db {
    /// Opens (for SQLite: creating the file if needed) and migrates the database at `url`:
    /// `sqlite://PATH` (relative), `sqlite:///PATH` (absolute), `sqlite::memory:`, or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`. A 0-byte SQLite file is refused.
    ///
    /// # Errors
    /// [`DbError::BadUrl`], [`DbError::Connect`], [`DbError::Migrate`],
    /// [`DbError::EmptyFile`].
    pub async fn open(url: &str) -> Result<Self, DbError> {
        Self::open_with(
            url,
            OpenOptions {
                create: true,
                allow_empty: false,
            },
        )
        .await
    }

    /// Like [`Db::open`], but an SQLite file that does not exist is an error instead of a
    /// new empty database (so that a mistyped path is noticed).
    ///
    /// # Errors
    /// As [`Db::open`], and [`DbError::NoDatabase`].
    pub async fn open_existing(url: &str) -> Result<Self, DbError> {
        Self::open_with(url, OpenOptions::default()).await
    }

    /// Opens the database at `url` as `options` say.
    ///
    /// # Errors
    /// As [`Db::open_existing`].
    pub async fn open_with(url: &str, options: OpenOptions) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let create = options.create;
        let backend = backend_of(url).ok_or_else(|| DbError::BadUrl {
            url: redact_url(url),
        })?;
        let file = match (backend, sqlite_path(url)) {
            (Backend::Sqlite, Some(path)) => Some(prepare_file(&path, options)?),
            _ => None,
        };
        let connect_url = match backend {
            Backend::Sqlite => sqlite_url(url, create),
            Backend::Postgres => url.to_owned(),
        };
        let connect_error = |error| DbError::connect(&redact_url(url), error);
        let connect_options = AnyConnectOptions::from_str(&connect_url).map_err(connect_error)?;
        let in_memory = url.contains(":memory:");
        if !in_memory {
            // One connection outside the pool first: the pool retries a failing connect
            // until its acquire timeout (30 s) and then says only "pool timed out"; this
            // says at once what is wrong (refused, not a database, read-only).
            let mut probe = AnyConnection::connect_with(&connect_options)
                .await
                .map_err(connect_error)?;
            let ready = prepare_connection(&mut probe, backend, in_memory).await;
            let _ = probe.close().await;
            ready.map_err(connect_error)?;
        }
        let pool = AnyPoolOptions::new()
            // An in-memory SQLite database lives in one connection.
            .max_connections(if in_memory { 1 } else { 4 })
            .after_connect(move |conn, _meta| {
                Box::pin(async move { prepare_connection(conn, backend, in_memory).await })
            })
            .connect_with(connect_options)
            .await
            .map_err(connect_error)?;
        MIGRATOR.run(&pool).await?;
        let file = match file {
            Some(path) => {
                for p in url::restrict_existing(&path) {
                    tracing::warn!(
                        "{} was readable by every user; now 0640 (owner and group only)",
                        p.display()
                    );
                }
                Some(url::FileId::of(&path).map_err(|error| DbError::FileAccess {
                    path: path.display().to_string(),
                    error,
                })?)
            }
            None => None,
        };
        Ok(Self {
            pool,
            backend,
            file,
        })
    }

    /// Whether the SQLite file this handle reads is still the one at its path: `Some` when
    /// it was deleted or another file was put there (a restore by `mv`). Open connections
    /// keep reading the old file, so a follower must reopen the path. Always `None` for
    /// PostgreSQL and in-memory databases.
    pub fn file_change(&self) -> Option<FileChange> {
        self.file.as_ref().and_then(url::FileId::change)
    }

    /// Whether [`Db::close`] closed this handle's connections (a clone shares them).
    pub fn is_closed(&self) -> bool {
        self.pool.is_closed()
    }

    /// [`DbError::FileChanged`] when [`Db::file_change`] says so.
    ///
    /// # Errors
    /// [`DbError::FileChanged`].
    pub fn check_file(&self) -> Result<(), DbError> {
        match (self.file_change(), &self.file) {
            (Some(change), Some(f)) => Err(DbError::FileChanged {
                path: f.path.display().to_string(),
                change,
            }),
            _ => Ok(()),
        }
    }

    /// The SQLite file, if any.
    pub fn file_path(&self) -> Option<&std::path::Path> {
        self.file.as_ref().map(|f| f.path.as_path())
    }

    /// The connection pool (the KPI tables share the database).
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool (waits for connections to be returned); an SQLite file is
    /// checkpointed first.
    pub async fn close(self) {
        if self.file.is_some() {
            // Everything into the main file, so that a copy of it alone (a backup, a restore
            // by `mv`) holds every committed change; a busy reader only makes this partial.
            let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await;
        }
        self.pool.close().await;
    }

    /// The schema version (the newest migration applied).
    ///
    /// # Errors
    /// [`DbError::Sql`].
    pub async fn schema_version(&self) -> Result<i64, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success = TRUE",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// The current revision: 0 for a new database, one more after every change.
    ///
    /// # Errors
    /// [`DbError::Sql`], [`DbError::FileChanged`].
    pub async fn revision(&self) -> Result<u64, DbError> {
        // The follower polls this: a deleted or replaced file is noticed here, not never.
        self.check_file()?;
        let mut conn = self.pool.acquire().await?;
        store::revision(&mut conn).await
    }

    /// A read-only transaction that sees one consistent state.
    async fn snapshot(&self) -> Result<Transaction<'static, Any>, DbError> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// The whole database as a policy, in the order of [`Policy::canonical`].
    ///
    /// # Errors
    /// [`DbError::Sql`], [`DbError::Corrupt`], [`DbError::InvalidContent`].
    pub async fn export(&self) -> Result<Policy, DbError> {
        Ok(self.export_with_revision().await?.1)
    }

    /// The whole database as a policy and the revision it is at, read in one transaction.
    ///
    /// # Errors
    /// [`DbError::Sql`], [`DbError::Corrupt`], [`DbError::InvalidContent`].
    pub async fn export_with_revision(&self) -> Result<(u64, Policy), DbError> {
        let mut tx = self.snapshot().await?;
        let revision = store::revision(&mut tx).await?;
        let draft = store::policy(&mut tx).await?;
        tx.commit().await?;
        // Every change was validated on its way in; the whole is checked again on the way out
        // because a database can be edited by other means.
        let policy = draft.validate().map_err(|error| DbError::InvalidContent {
            error: Box::new(error),
        })?;
        Ok((revision, policy))
    }
}

/// A port alias as written on the command line (`ports` items `"104"`, `"8000-8100"`),
/// checked with the policy file's rules.
///
/// # Errors
/// [`DbError::Invalid`] naming the field.
pub fn port_alias_from_text(
    name: &str,
    protocol: &str,
    ports: &[String],
) -> Result<crate::policy::PortAlias, DbError> {
    check::port_alias_text(name, protocol, ports)
}

/// A time as the database stores it: UTC, fixed width (`2030-01-01T12:00:00.000000Z`).
pub fn time_text(t: chrono::DateTime<Utc>) -> String {
    audit::time_column(t)
}

/// The PostgreSQL notification channel every change notifies, with the new revision as payload.
pub const REVISION_CHANNEL: &str = "sdn_revision";

/// What a committed change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The revision this change made; for a change that changed nothing, the revision the
    /// database was at when the change read it (which another change made).
    pub revision: u64,
    /// False when nothing changed: no revision was made and no audit row written.
    pub changed: bool,
}

/// One change in progress: a transaction that has already bumped the revision, and the audit
/// rows to write when it commits.
struct Change<'o> {
    tx: Transaction<'static, Any>,
    revision: i64,
    at: String,
    origin: &'o Origin,
    audit: Vec<audit::Row>,
}

impl<'o> Change<'o> {
    async fn begin(db: &Db, origin: &'o Origin) -> Result<Self, DbError> {
        let mut tx = db.pool.begin().await?;
        let revision = store::bump_revision(&mut tx).await?;
        Ok(Self {
            tx,
            revision,
            at: audit::time_column(Utc::now()),
            origin,
            audit: Vec::new(),
        })
    }

    fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    /// Writes the audit rows and commits. Without any audit row nothing changed: the
    /// transaction is rolled back, and the revision it read is returned as unchanged.
    async fn commit(
        mut self,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<Committed, DbError> {
        if self.audit.is_empty() {
            self.tx.rollback().await?;
            return Ok(Committed {
                revision: u64::try_from(self.revision - 1).unwrap_or_default(),
                changed: false,
            });
        }
        let rows = audit::rows(&self.audit, self.revision, &self.at, self.origin);
        store::insert_rows(&mut self.tx, "audit", audit::COLUMNS, &rows, progress).await?;
        if self.tx.backend_name() == "PostgreSQL" {
            // Delivered at commit: wakes every router following the database (LISTEN).
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(REVISION_CHANNEL)
                .bind(self.revision.to_string())
                .execute(&mut *self.tx)
                .await?;
        }
        self.tx.commit().await?;
        Ok(Committed {
            revision: u64::try_from(self.revision).unwrap_or_default(),
            changed: true,
        })
    }
}

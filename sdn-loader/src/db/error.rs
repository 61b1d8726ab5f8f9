//! Errors of the agreement database.

use std::fmt;

use super::url::{FileChange, redact_text};

use crate::policy::{AgreementState, PolicyError, ValidationError};

use super::lifecycle::Transition;

/// The kinds of object the database holds (also the `kind` column of the audit log).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// An organisation.
    Organisation,
    /// A port alias.
    PortAlias,
    /// A service (with its endpoints).
    Service,
    /// A client (with its prefixes).
    Client,
    /// An agreement.
    Agreement,
    /// The infrastructure allow list (one object).
    Infrastructure,
    /// A whole policy (the summary row of an import).
    Policy,
}

impl ObjectKind {
    /// The name used in messages, in the audit log and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Organisation => "organisation",
            Self::PortAlias => "port_alias",
            Self::Service => "service",
            Self::Client => "client",
            Self::Agreement => "agreement",
            Self::Infrastructure => "infrastructure",
            Self::Policy => "policy",
        }
    }

    /// Parses [`ObjectKind::name`] (also `alias` and `org`).
    pub fn from_name(text: &str) -> Option<Self> {
        Some(match text {
            "organisation" | "org" => Self::Organisation,
            "port_alias" | "alias" => Self::PortAlias,
            "service" => Self::Service,
            "client" => Self::Client,
            "agreement" => Self::Agreement,
            "infrastructure" => Self::Infrastructure,
            "policy" => Self::Policy,
            _ => return None,
        })
    }

    /// `agreement 1001`, `service "fmk"`, `port alias "dicom"`.
    pub fn describe(self, key: &str) -> String {
        match self {
            Self::Agreement => format!("agreement {key}"),
            Self::PortAlias => format!("port alias {key:?}"),
            Self::Infrastructure | Self::Policy => self.name().to_owned(),
            _ => format!("{} {key:?}", self.name()),
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl DbError {
    /// [`DbError::Connect`] with the hint its cause calls for.
    pub(crate) fn connect(url: &str, error: sqlx::Error) -> Self {
        let hint = connect_hint(&error);
        Self::Connect {
            url: url.to_owned(),
            error,
            hint,
        }
    }
}

/// What a connect error most likely means, in words an operator acts on.
fn connect_hint(error: &sqlx::Error) -> &'static str {
    match error {
        sqlx::Error::Database(e) => match e.code().as_deref() {
            // SQLite's primary result codes (extended codes carry them in the low byte).
            Some(c) => match c.parse::<u32>().map(|c| c & 0xff) {
                Ok(26) => ": not an SQLite database (a garbage or truncated file?)",
                Ok(11) => ": the SQLite file is corrupt (truncated?)",
                Ok(8) => ": read-only (the file or its directory is not writable by this user)",
                Ok(14) => {
                    ": cannot open the file (does its directory exist, and may this user write there?)"
                }
                Ok(23) => ": permission denied",
                _ if c == "28P01" => ": wrong password",
                _ if c == "3D000" => ": no such database on the server",
                _ => "",
            },
            None => "",
        },
        sqlx::Error::Io(e) => match e.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                ": connection refused (is the server running, and on that port?)"
            }
            std::io::ErrorKind::PermissionDenied => ": permission denied",
            std::io::ErrorKind::TimedOut => ": timed out reaching the server",
            _ => "",
        },
        sqlx::Error::PoolTimedOut => {
            ": no connection within 30 s (the server is overloaded or unreachable)"
        }
        _ => "",
    }
}

/// Why a database operation failed. Every refusal leaves the database (and its revision)
/// unchanged.
///
/// Underlying errors are part of the message and not repeated as a `source`.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A URL that is neither `sqlite:` nor `postgres:`/`postgresql:`.
    #[error("unsupported database URL {url:?}: expected sqlite://PATH or postgres://USER@HOST/DB")]
    BadUrl {
        /// The URL (password removed).
        url: String,
    },
    /// The database could not be opened or reached.
    #[error("cannot open database {url}: {}{hint}", redact_text(&error.to_string()))]
    Connect {
        /// The URL (password removed).
        url: String,
        /// The driver's error.
        error: sqlx::Error,
        /// What the error most likely means, e.g. `: not an SQLite database`, or empty.
        hint: &'static str,
    },
    /// An SQLite file of 0 bytes, refused unless asked for.
    #[error(
        "database file {path} is empty (0 bytes): used as a database it would hold no agreements and \
         a router following it would drop all traffic; restore the file, or create a new database \
         on purpose with `sdn-loader db init` or `--allow-empty`"
    )]
    EmptyFile {
        /// The file.
        path: String,
    },
    /// An SQLite file that could not be created or looked at.
    #[error("database file {path}: {error}")]
    FileAccess {
        /// The file.
        path: String,
        /// What went wrong.
        error: std::io::Error,
    },
    /// The SQLite file this handle reads was deleted or replaced at its path.
    #[error("database file {path} {}", change.describe())]
    FileChanged {
        /// The file.
        path: String,
        /// What happened to it.
        change: FileChange,
    },
    /// The schema migrations could not be applied.
    #[error("cannot bring the database schema up to date: {error}")]
    Migrate {
        /// The migrator's error.
        error: sqlx::migrate::MigrateError,
    },
    /// `open_existing` on an SQLite file that is not there.
    #[error("database file {path} does not exist (`sdn-loader db init` or `db import` creates it)")]
    NoDatabase {
        /// The file.
        path: String,
    },
    /// The directory for a new SQLite file could not be created.
    #[error("cannot create directory {path} for the database: {error}")]
    CreateDir {
        /// The directory.
        path: String,
        /// What went wrong.
        error: std::io::Error,
    },
    /// A revision the database has not reached (or 0).
    #[error("revision {revision} does not exist (the database is at revision {current})")]
    NoSuchRevision {
        /// The revision asked for.
        revision: u64,
        /// The newest revision.
        current: u64,
    },
    /// A query failed.
    #[error("database error: {error}")]
    Sql {
        /// The driver's error.
        error: sqlx::Error,
    },
    /// The object breaks the policy rules; every problem is listed, each naming its field.
    #[error("{}", invalid_message(what, errors))]
    Invalid {
        /// The object, e.g. `service "fmk"`.
        what: String,
        /// The problems, as the policy validator reports them.
        errors: Vec<ValidationError>,
    },
    /// A policy could not be written or read back for validation.
    #[error("{error}")]
    Policy {
        /// The policy module's error.
        error: PolicyError,
    },
    /// The object does not exist.
    #[error("{} does not exist", kind.describe(key))]
    NotFound {
        /// Its kind.
        kind: ObjectKind,
        /// Its id (name for a port alias).
        key: String,
    },
    /// An object with this id exists already.
    #[error("{} already exists", kind.describe(key))]
    Duplicate {
        /// Its kind.
        kind: ObjectKind,
        /// Its id.
        key: String,
    },
    /// The object is still referred to by others.
    #[error("cannot delete {}: {users}", kind.describe(key))]
    InUse {
        /// Its kind.
        kind: ObjectKind,
        /// Its id.
        key: String,
        /// Who uses it, e.g. `it has agreements 1001, 1002`.
        users: String,
    },
    /// Deleting the only endpoint of a service.
    #[error("{}", last_endpoint_message(service, agreements, *total))]
    LastEndpoint {
        /// The service.
        service: String,
        /// Up to 10 of the service's agreements.
        agreements: Vec<u32>,
        /// How many agreements the service has.
        total: u64,
    },
    /// Deleting the only prefix of a client.
    #[error(
        "cannot delete the last prefix of client {client:?}: a client needs at least one prefix; delete the client instead"
    )]
    LastPrefix {
        /// The client.
        client: String,
    },
    /// No endpoint of the service matches.
    #[error("service {service:?} has no endpoint {endpoint}")]
    NoSuchEndpoint {
        /// The service.
        service: String,
        /// The endpoint as asked for.
        endpoint: String,
    },
    /// Several endpoints match and no port set was given to tell them apart.
    #[error(
        "service {service:?} has {count} endpoints {endpoint}; give the ports to say which one"
    )]
    AmbiguousEndpoint {
        /// The service.
        service: String,
        /// The endpoint as asked for.
        endpoint: String,
        /// How many match.
        count: usize,
    },
    /// The client has no such prefix.
    #[error("client {client:?} has no prefix {prefix}")]
    NoSuchPrefix {
        /// The client.
        client: String,
        /// The prefix.
        prefix: String,
    },
    /// An agreement state change from the wrong state.
    #[error(
        "cannot {} agreement {id}: it is {}, and only a {} agreement can be {}",
        transition.name(),
        state.name(),
        transition.sources_text(),
        transition.to().name()
    )]
    BadTransition {
        /// The agreement.
        id: u32,
        /// Its state.
        state: AgreementState,
        /// What was asked.
        transition: Transition,
    },
    /// An edit that would move an agreement between states the lifecycle does not join.
    #[error(
        "cannot change agreement {id} from {} to {}: {}",
        from.name(),
        to.name(),
        super::lifecycle::RULES
    )]
    ForbiddenState {
        /// The agreement.
        id: u32,
        /// Its state.
        from: AgreementState,
        /// The state asked for.
        to: AgreementState,
    },
    /// The database's content breaks a rule of the policy (it was edited outside sdn-loader,
    /// which validates every change): nothing of it is applied.
    #[error("the agreement database's content is not a valid policy (edited outside sdn-loader?)")]
    InvalidContent {
        /// Every rule it breaks.
        #[source]
        error: Box<PolicyError>,
    },
    /// A value in the database that this version cannot read (written by hand or by a newer
    /// version).
    #[error("unreadable value in table {table}, row {key}: {value:?}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row's key.
        key: String,
        /// The value.
        value: String,
    },
    /// A time filter that is neither RFC 3339 nor a date.
    #[error("{text:?} is not a time (RFC 3339, e.g. 2030-01-01T12:00:00Z) or a date (YYYY-MM-DD)")]
    BadTime {
        /// The text as given.
        text: String,
    },
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        Self::Sql { error }
    }
}

impl From<sqlx::migrate::MigrateError> for DbError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        Self::Migrate { error }
    }
}

impl From<PolicyError> for DbError {
    fn from(error: PolicyError) -> Self {
        Self::Policy { error }
    }
}

/// `service "fmk": field `x`: ...` on one line for one problem, one per line for several.
fn invalid_message(what: &str, errors: &[ValidationError]) -> String {
    let line = |e: &ValidationError| {
        let endpoint = e
            .location
            .endpoint
            .map_or_else(String::new, |i| format!("endpoint[{i}]: "));
        format!("{endpoint}field `{}`: {}", e.field, e.kind)
    };
    match errors {
        [one] => format!("{what}: {}", line(one)),
        many => {
            let mut out = format!("{what}: {} problems:", many.len());
            for e in many {
                out.push_str("\n  ");
                out.push_str(&line(e));
            }
            out
        }
    }
}

fn last_endpoint_message(service: &str, agreements: &[u32], total: u64) -> String {
    if total == 0 {
        return format!(
            "cannot delete the last endpoint of service {service:?}: a service needs at least one endpoint; add another endpoint first, or delete the service"
        );
    }
    let ids: Vec<String> = agreements.iter().map(u32::to_string).collect();
    let more = if total > agreements.len() as u64 {
        format!(" and {} more", total - agreements.len() as u64)
    } else {
        String::new()
    };
    let (s, its) = if total == 1 {
        ("", "its")
    } else {
        ("s", "their")
    };
    format!(
        "cannot delete the last endpoint of service {service:?}: it has {total} agreement{s} ({}{more}) that would lose {its} destination; add another endpoint first, or delete the agreement{s} and then the service",
        ids.join(", ")
    )
}

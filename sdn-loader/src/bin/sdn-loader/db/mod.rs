//! `sdn-loader db ...`: the agreement database from the command line.
//!
//! Every change is made under a request id (`--request-id`, or a new UUID) and an actor
//! (`--actor`), both recorded in the audit log, and prints the revision it made:
//! `revision 7 (request 2c1f...)`, or `no change: already so (the database is at revision 6)`. Refusals print a message that
//! names the object and field and exit with status 1; the database is then unchanged.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, anyhow, bail};
use chrono::NaiveDate;
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use ipnet::IpNet;
use sdn_loader::db::{
    AgreementEdit, AgreementFilter, AuditEntry, AuditFilter, Committed, Db, ObjectKind, Origin,
    Transition, parse_time, port_alias_from_text, text,
};
use sdn_loader::policy::{
    self, Agreement, AgreementState, Client, Endpoint, Organisation, PortAlias, Service,
};

/// Output format of `db export`.
mod args;
mod objects;

pub(crate) use args::*;
use objects::{agreement, alias, client, endpoint, org, prefix, service};

/// The actor when `--actor` is not given: `$SUDO_USER`, `$USER` or `$LOGNAME`, else
/// `unknown`.
pub(crate) fn default_actor() -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .or_else(login_name)
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The name of this process's user from /etc/passwd (services and cron jobs often run
/// without $USER), or `uid:N` when it has no entry.
fn login_name() -> Option<String> {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_owned())
        })
        .or_else(|| Some(format!("uid:{uid}")))
}

/// What every `db` handler works with: the database, who changes it, and the output format.
pub(super) struct Ctx<'a> {
    pub(super) db: &'a Db,
    pub(super) origin: &'a Origin,
    /// `--json`.
    pub(super) json: bool,
}

impl Ctx<'_> {
    /// Prints `value` as JSON (`--json`), or runs `text` to print it as text.
    fn show(
        &self,
        value: impl FnOnce() -> serde_json::Value,
        text: impl FnOnce(),
    ) -> Result<ExitCode> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(&value())?);
        } else {
            text();
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Runs one `db` command against the database at `db_url`.
pub(crate) fn run(
    runtime: &tokio::runtime::Runtime,
    db_url: &str,
    actor: &str,
    request_id: Option<String>,
    allow_empty: bool,
    json: bool,
    cmd: DbCommand,
) -> Result<ExitCode> {
    let request_id = request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let origin = Origin::new(actor, request_id);
    runtime.block_on(async move {
        let options = sdn_loader::db::OpenOptions {
            create: matches!(cmd, DbCommand::Init | DbCommand::Import { .. }),
            // `db init` asks for a new empty database in so many words.
            allow_empty: allow_empty || matches!(cmd, DbCommand::Init),
        };
        let db = Db::open_with(db_url, options).await?;
        let cx = Ctx {
            db: &db,
            origin: &origin,
            json,
        };
        let result = dispatch(&cx, cmd).await;
        db.close().await;
        result
    })
}

/// Prints the outcome of a change.
fn changed(cx: &Ctx<'_>, done: Committed) -> ExitCode {
    let origin = cx.origin;
    if cx.json {
        println!(
            "{}",
            serde_json::json!({
                "revision": done.revision,
                "changed": done.changed,
                "request_id": origin.request_id,
            })
        );
    } else if done.changed {
        println!("revision {} (request {})", done.revision, origin.request_id);
    } else {
        // Not this change's revision: another change made it.
        println!(
            "no change: already so (the database is at revision {})",
            done.revision
        );
    }
    ExitCode::SUCCESS
}

/// Runs a change and reports it.
async fn change(
    cx: &Ctx<'_>,
    f: impl std::future::Future<Output = Result<Committed, sdn_loader::db::DbError>>,
) -> Result<ExitCode> {
    Ok(changed(cx, f.await?))
}

async fn dispatch(cx: &Ctx<'_>, cmd: DbCommand) -> Result<ExitCode> {
    let db = cx.db;
    match cmd {
        DbCommand::Init => {
            println!(
                "database ready: schema version {}, revision {}",
                db.schema_version().await?,
                db.revision().await?
            );
            Ok(ExitCode::SUCCESS)
        }
        DbCommand::Import { file } => import(cx, &file).await,
        DbCommand::Export { format, output } => {
            let p = db.export().await?;
            let out = match format {
                Format::Toml => policy::to_toml(&p)?,
                Format::Json => {
                    let mut s = serde_json::to_string_pretty(&text::policy_json(&p))?;
                    s.push('\n');
                    s
                }
            };
            match output {
                Some(path) => std::fs::write(&path, out)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => std::io::stdout().write_all(out.as_bytes())?,
            }
            Ok(ExitCode::SUCCESS)
        }
        DbCommand::Revision => {
            println!("{}", db.revision().await?);
            Ok(ExitCode::SUCCESS)
        }
        DbCommand::Org(c) => org(cx, c).await,
        DbCommand::Service(c) => service(cx, c).await,
        DbCommand::Endpoint(c) => endpoint(cx, c).await,
        DbCommand::Client(c) => client(cx, c).await,
        DbCommand::Prefix(c) => prefix(cx, c).await,
        DbCommand::Agreement(c) => agreement(cx, c).await,
        DbCommand::Alias(c) => alias(cx, c).await,
        DbCommand::Audit(a) => audit(cx, &a).await,
    }
}

async fn import(cx: &Ctx<'_>, file: &std::path::Path) -> Result<ExitCode> {
    let (db, origin) = (cx.db, cx.origin);
    let p = policy::load_file(file)?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} rows ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(format!("importing {}", file.display()));
    let progress_bar = bar.clone();
    let report = db
        .import_with_progress(&p, origin, &mut move |done, total| {
            progress_bar.set_length(total);
            progress_bar.set_position(done);
        })
        .await;
    bar.finish_and_clear();
    let report = report?;
    if report.changed() {
        println!(
            "{}: {} created, {} updated, {} deleted; revision {} (request {})",
            file.display(),
            report.created,
            report.updated,
            report.deleted,
            report.revision,
            origin.request_id
        );
    } else {
        println!(
            "{}: no change (revision {})",
            file.display(),
            report.revision
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn not_found(kind: ObjectKind, key: &str) -> anyhow::Error {
    anyhow!("{} does not exist", kind.describe(key))
}

fn audit_line(r: &AuditEntry) -> String {
    let object = if r.key.is_empty() {
        r.kind.clone()
    } else {
        format!("{} {}", r.kind, r.key)
    };
    format!(
        "{} r{}.{} {} {} {} {object}",
        r.at, r.revision, r.seq, r.actor, r.request_id, r.action
    )
}

async fn audit(cx: &Ctx<'_>, a: &AuditArgs) -> Result<ExitCode> {
    let db = cx.db;
    let (kind, key) = match &a.object {
        None => (None, None),
        Some(text) => {
            let (kind, key) = match text.split_once(':') {
                Some((k, v)) => (k, Some(v.to_owned())),
                None => (text.as_str(), None),
            };
            let kind = ObjectKind::from_name(kind).ok_or_else(|| {
                anyhow!(
                    "--object {text:?}: unknown kind {kind:?}; expected organisation, port_alias, service, client, agreement, infrastructure or policy"
                )
            })?;
            (Some(kind), key)
        }
    };
    let filter = AuditFilter {
        organisation: a.organisation.clone(),
        kind,
        key,
        request_id: a.request.clone(),
        since: a.since.as_deref().map(parse_time).transpose()?,
        until: a.until.as_deref().map(parse_time).transpose()?,
        limit: a.limit,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for r in db.audit(&filter).await? {
        if cx.json {
            writeln!(out, "{}", serde_json::to_string(&r)?)?;
        } else {
            writeln!(out, "{}", audit_line(&r))?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

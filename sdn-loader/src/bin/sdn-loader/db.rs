//! `sdn-loader db ...`: the agreement database from the command line.
//!
//! Every change is made under a request id (`--request-id`, or a new UUID) and an actor
//! (`--actor`), both recorded in the audit log, and prints the revision it made:
//! `revision 7 (request 2c1f...)`, or `no change (revision 6)`. Refusals print a message that
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
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Format {
    /// The TOML policy file.
    Toml,
    /// The same structure in JSON.
    Json,
}

/// An agreement state on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum State {
    /// Asked for, not yet decided.
    Requested,
    /// In force (unless expired).
    Approved,
    /// Refused.
    Rejected,
    /// Withdrawn.
    Revoked,
}

impl From<State> for AgreementState {
    fn from(s: State) -> Self {
        match s {
            State::Requested => Self::Requested,
            State::Approved => Self::Approved,
            State::Rejected => Self::Rejected,
            State::Revoked => Self::Revoked,
        }
    }
}

/// `sdn-loader db <command>`.
#[derive(Subcommand)]
pub(crate) enum DbCommand {
    /// Create the database (an SQLite file) if needed and bring its schema up to date.
    Init,
    /// Make the database hold exactly this policy file (TOML, or JSON by extension), in one
    /// transaction; only the differences are written and audited.
    Import {
        /// Policy file.
        file: PathBuf,
    },
    /// Print the whole database as a policy file.
    Export {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Toml)]
        format: Format,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Print the current revision.
    Revision,
    /// Organisations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Services (with their endpoints).
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Endpoints of a service.
    #[command(subcommand)]
    Endpoint(EndpointCommand),
    /// Clients (with their prefixes).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Prefixes of a client.
    #[command(subcommand)]
    Prefix(PrefixCommand),
    /// Agreements.
    #[command(subcommand)]
    Agreement(AgreementCommand),
    /// Port aliases.
    #[command(subcommand)]
    Alias(AliasCommand),
    /// The audit log, oldest first.
    Audit(AuditArgs),
}

/// `db org ...`
#[derive(Subcommand)]
pub(crate) enum OrgCommand {
    /// List organisations.
    List,
    /// Show an organisation with its services and clients.
    Show {
        /// Organisation id.
        id: String,
    },
    /// Create an organisation.
    Create {
        /// Organisation id (stable key).
        id: String,
        /// Display name.
        #[arg(long)]
        name: String,
    },
    /// Rename an organisation.
    Update {
        /// Organisation id.
        id: String,
        /// New display name.
        #[arg(long)]
        name: String,
    },
    /// Delete an organisation that owns no services or clients.
    Delete {
        /// Organisation id.
        id: String,
    },
}

/// `db service ...`
#[derive(Subcommand)]
pub(crate) enum ServiceCommand {
    /// List services.
    List {
        /// Only this organisation's.
        #[arg(long)]
        organisation: Option<String>,
    },
    /// Show a service with its endpoints and agreements.
    Show {
        /// Service id.
        id: String,
    },
    /// Create a service.
    Create {
        /// Service id (stable key).
        id: String,
        /// Owning organisation.
        #[arg(long)]
        organisation: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// An endpoint, "ADDRESS PROTOCOL [PORTS]", e.g. "203.0.113.10 tcp 443,8000-8100" or
        /// "203.0.113.20 tcp dicom" (an alias); at least one.
        #[arg(long = "endpoint", required = true)]
        endpoints: Vec<String>,
    },
    /// Rename a service.
    Update {
        /// Service id.
        id: String,
        /// New display name.
        #[arg(long)]
        name: String,
    },
    /// Move a service to another organisation (endpoints and agreements stay as they are).
    Move {
        /// Service id.
        id: String,
        /// The new organisation.
        #[arg(long)]
        to: String,
    },
    /// Delete a service that has no agreements.
    Delete {
        /// Service id.
        id: String,
    },
}

/// `db endpoint ...`
#[derive(Subcommand)]
pub(crate) enum EndpointCommand {
    /// Add an endpoint to a service.
    Add {
        /// Service id.
        service: String,
        /// Address or prefix.
        address: String,
        /// tcp, udp, sctp, icmp, icmpv6 or any.
        protocol: String,
        /// Ports ("443", "8000-8100", alias names; several, or comma-separated). None: every
        /// port.
        ports: Vec<String>,
    },
    /// Delete an endpoint of a service (refused for its last endpoint).
    Delete {
        /// Service id.
        service: String,
        /// Address or prefix.
        address: String,
        /// Protocol.
        protocol: String,
        /// Ports, to tell apart endpoints of the same address and protocol.
        ports: Vec<String>,
    },
}

/// `db client ...`
#[derive(Subcommand)]
pub(crate) enum ClientCommand {
    /// List clients.
    List {
        /// Only this organisation's.
        #[arg(long)]
        organisation: Option<String>,
    },
    /// Show a client with its prefixes and agreements.
    Show {
        /// Client id.
        id: String,
    },
    /// Create a client.
    Create {
        /// Client id (stable key).
        id: String,
        /// Owning organisation.
        #[arg(long)]
        organisation: String,
        /// A source prefix or address; at least one.
        #[arg(long = "prefix", required = true)]
        prefixes: Vec<String>,
    },
    /// Move a client to another organisation.
    Update {
        /// Client id.
        id: String,
        /// The new organisation.
        #[arg(long)]
        organisation: String,
    },
    /// Delete a client that has no agreements.
    Delete {
        /// Client id.
        id: String,
    },
}

/// `db prefix ...`
#[derive(Subcommand)]
pub(crate) enum PrefixCommand {
    /// Add a prefix to a client.
    Add {
        /// Client id.
        client: String,
        /// Prefix or address.
        prefix: String,
    },
    /// Delete a prefix of a client (refused for its last prefix).
    Delete {
        /// Client id.
        client: String,
        /// Prefix or address.
        prefix: String,
    },
}

/// `db agreement ...`
#[derive(Subcommand)]
pub(crate) enum AgreementCommand {
    /// List agreements.
    List {
        /// Only this client's.
        #[arg(long)]
        client: Option<String>,
        /// Only to this service.
        #[arg(long)]
        service: Option<String>,
        /// Only in this state.
        #[arg(long, value_enum)]
        state: Option<State>,
    },
    /// Show an agreement.
    Show {
        /// Agreement id.
        id: u32,
    },
    /// Create an agreement.
    Create {
        /// Agreement id (u32, unique, stable).
        id: u32,
        /// Client id.
        #[arg(long)]
        client: String,
        /// Service id.
        #[arg(long)]
        service: String,
        /// State.
        #[arg(long, value_enum, default_value_t = State::Requested)]
        state: State,
        /// Expiry date (YYYY-MM-DD, UTC); in force before it.
        #[arg(long)]
        expires: Option<NaiveDate>,
        /// VLAN 1-4094 (default: any VLAN and untagged).
        #[arg(long)]
        vlan: Option<u16>,
    },
    /// Change an agreement.
    Update {
        /// Agreement id.
        id: u32,
        /// New client.
        #[arg(long)]
        client: Option<String>,
        /// New service.
        #[arg(long)]
        service: Option<String>,
        /// New state.
        #[arg(long, value_enum)]
        state: Option<State>,
        /// New expiry date.
        #[arg(long, conflicts_with = "no_expiry")]
        expires: Option<NaiveDate>,
        /// Remove the expiry date.
        #[arg(long)]
        no_expiry: bool,
        /// New VLAN.
        #[arg(long, conflicts_with = "any_vlan")]
        vlan: Option<u16>,
        /// Match any VLAN (and untagged).
        #[arg(long)]
        any_vlan: bool,
    },
    /// Delete an agreement.
    Delete {
        /// Agreement id.
        id: u32,
    },
    /// Approve a requested agreement.
    Approve {
        /// Agreement id.
        id: u32,
    },
    /// Reject a requested agreement.
    Reject {
        /// Agreement id.
        id: u32,
    },
    /// Revoke an approved agreement.
    Revoke {
        /// Agreement id.
        id: u32,
    },
    /// Request a rejected or revoked agreement again (it then needs approval once more).
    Request {
        /// Agreement id.
        id: u32,
    },
}

/// `db alias ...`
#[derive(Subcommand)]
pub(crate) enum AliasCommand {
    /// List port aliases.
    List,
    /// Show the ports an alias stands for.
    Show {
        /// Alias name.
        name: String,
    },
    /// Create a port alias.
    Create {
        /// Alias name (starts with a letter).
        name: String,
        /// tcp, udp or sctp.
        protocol: String,
        /// Ports ("104", "8000-8100"; several, or comma-separated).
        #[arg(required = true)]
        ports: Vec<String>,
    },
    /// Delete a port alias (endpoints written with it keep their ports).
    Delete {
        /// Alias name.
        name: String,
    },
}

/// `db audit ...`
#[derive(Args)]
pub(crate) struct AuditArgs {
    /// Rows about this organisation's objects (for agreements: client's or service's side).
    #[arg(long)]
    organisation: Option<String>,
    /// Rows about one kind of object, or one object: `agreement`, `service:fmk`,
    /// `agreement:1001` (kinds: organisation, port_alias, service, client, agreement,
    /// infrastructure, policy).
    #[arg(long)]
    object: Option<String>,
    /// Rows made under this request id.
    #[arg(long)]
    request: Option<String>,
    /// Rows at or after this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long)]
    since: Option<String>,
    /// Rows before this time.
    #[arg(long)]
    until: Option<String>,
    /// Only the newest N rows.
    #[arg(long)]
    limit: Option<u32>,
    /// One JSON object per row, with before/after.
    #[arg(long)]
    json: bool,
}

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

/// Runs one `db` command against the database at `db_url`.
pub(crate) fn run(
    db_url: &str,
    actor: &str,
    request_id: Option<String>,
    cmd: DbCommand,
) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let request_id = request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let origin = Origin::new(actor, request_id);
    runtime.block_on(async move {
        let create = matches!(cmd, DbCommand::Init | DbCommand::Import { .. });
        let db = if create {
            Db::open(db_url).await?
        } else {
            Db::open_existing(db_url).await?
        };
        let result = dispatch(&db, &origin, cmd).await;
        db.close().await;
        result
    })
}

/// Prints the outcome of a change.
fn changed(origin: &Origin, done: Committed) -> ExitCode {
    if done.changed {
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
    origin: &Origin,
    f: impl std::future::Future<Output = Result<Committed, sdn_loader::db::DbError>>,
) -> Result<ExitCode> {
    Ok(changed(origin, f.await?))
}

async fn dispatch(db: &Db, origin: &Origin, cmd: DbCommand) -> Result<ExitCode> {
    match cmd {
        DbCommand::Init => {
            println!(
                "database ready: schema version {}, revision {}",
                db.schema_version().await?,
                db.revision().await?
            );
            Ok(ExitCode::SUCCESS)
        }
        DbCommand::Import { file } => import(db, origin, &file).await,
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
        DbCommand::Org(c) => org(db, origin, c).await,
        DbCommand::Service(c) => service(db, origin, c).await,
        DbCommand::Endpoint(c) => endpoint(db, origin, c).await,
        DbCommand::Client(c) => client(db, origin, c).await,
        DbCommand::Prefix(c) => prefix(db, origin, c).await,
        DbCommand::Agreement(c) => agreement(db, origin, c).await,
        DbCommand::Alias(c) => alias(db, origin, c).await,
        DbCommand::Audit(a) => audit(db, &a).await,
    }
}

async fn import(db: &Db, origin: &Origin, file: &std::path::Path) -> Result<ExitCode> {
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

async fn org(db: &Db, origin: &Origin, cmd: OrgCommand) -> Result<ExitCode> {
    match cmd {
        OrgCommand::List => {
            for o in db.organisations().await? {
                println!("{}\t{}", o.id, o.name);
            }
            Ok(ExitCode::SUCCESS)
        }
        OrgCommand::Show { id } => {
            let o = db
                .organisation(&id)
                .await?
                .ok_or_else(|| not_found(ObjectKind::Organisation, &id))?;
            println!("organisation {:?}: {}", o.id, o.name);
            for s in db.services().await?.iter().filter(|s| s.organisation == id) {
                println!("  service {:?}: {}", s.id, s.name);
            }
            for c in db.clients().await?.iter().filter(|c| c.organisation == id) {
                println!("  client {:?}", c.id);
            }
            Ok(ExitCode::SUCCESS)
        }
        OrgCommand::Create { id, name } => {
            change(
                origin,
                db.create_organisation(&Organisation { id, name }, origin),
            )
            .await
        }
        OrgCommand::Update { id, name } => {
            change(
                origin,
                db.update_organisation(&Organisation { id, name }, origin),
            )
            .await
        }
        OrgCommand::Delete { id } => change(origin, db.delete_organisation(&id, origin)).await,
    }
}

fn print_endpoint(e: &Endpoint) {
    let ports = if e.protocol.has_ports() && e.ports.is_empty() {
        " (every port)".to_owned()
    } else if e.ports.is_empty() {
        String::new()
    } else {
        format!(
            " {}",
            e.ports
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    println!("  endpoint {} {}{ports}", e.address, e.protocol.name());
}

fn agreement_line(a: &Agreement) -> String {
    let mut s = format!("{} {} -> {} {}", a.id, a.client, a.service, a.state.name());
    if let Some(e) = a.expires {
        s.push_str(&format!(" expires {e}"));
    }
    if let Some(v) = a.vlan {
        s.push_str(&format!(" vlan {v}"));
    }
    s
}

/// Splits port arguments on commas; `None` when there are none.
fn port_items(ports: &[String]) -> Option<Vec<String>> {
    let items: Vec<String> = ports
        .iter()
        .flat_map(|p| p.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    (!items.is_empty()).then_some(items)
}

async fn service(db: &Db, origin: &Origin, cmd: ServiceCommand) -> Result<ExitCode> {
    match cmd {
        ServiceCommand::List { organisation } => {
            for s in db.services().await? {
                if organisation.as_ref().is_none_or(|o| *o == s.organisation) {
                    println!(
                        "{}\t{}\t{}\t{} endpoint(s)",
                        s.id,
                        s.organisation,
                        s.name,
                        s.endpoints.len()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ServiceCommand::Show { id } => {
            let s = db
                .service(&id)
                .await?
                .ok_or_else(|| not_found(ObjectKind::Service, &id))?;
            println!(
                "service {:?}: {} (organisation {:?})",
                s.id, s.name, s.organisation
            );
            for e in &s.endpoints {
                print_endpoint(e);
            }
            let filter = AgreementFilter {
                service: Some(id),
                ..AgreementFilter::default()
            };
            for a in db.agreements(&filter).await? {
                println!("  agreement {}", agreement_line(&a));
            }
            Ok(ExitCode::SUCCESS)
        }
        ServiceCommand::Create {
            id,
            organisation,
            name,
            endpoints,
        } => {
            let mut parsed = Vec::new();
            for (i, spec) in endpoints.iter().enumerate() {
                let words: Vec<&str> = spec.split_whitespace().collect();
                let (address, protocol, ports) = match words.as_slice() {
                    [a, p] => (*a, *p, Vec::new()),
                    [a, p, rest @ ..] => (*a, *p, rest.iter().map(|s| (*s).to_owned()).collect()),
                    _ => bail!(
                        "service {id:?}: endpoint[{i}]: {spec:?} is not \"ADDRESS PROTOCOL [PORTS]\""
                    ),
                };
                let items = port_items(&ports);
                let e = db
                    .endpoint_from_text(address, protocol, items.as_deref())
                    .await
                    .with_context(|| format!("service {id:?}"))?;
                parsed.push(e);
            }
            let s = Service {
                id,
                organisation,
                name,
                endpoints: parsed,
            };
            change(origin, db.create_service(&s, origin)).await
        }
        ServiceCommand::Update { id, name } => {
            change(origin, db.rename_service(&id, &name, origin)).await
        }
        ServiceCommand::Move { id, to } => change(origin, db.move_service(&id, &to, origin)).await,
        ServiceCommand::Delete { id } => change(origin, db.delete_service(&id, origin)).await,
    }
}

async fn endpoint(db: &Db, origin: &Origin, cmd: EndpointCommand) -> Result<ExitCode> {
    match cmd {
        EndpointCommand::Add {
            service,
            address,
            protocol,
            ports,
        } => {
            let items = port_items(&ports);
            let e = db
                .endpoint_from_text(&address, &protocol, items.as_deref())
                .await?;
            change(origin, db.add_endpoint(&service, &e, origin)).await
        }
        EndpointCommand::Delete {
            service,
            address,
            protocol,
            ports,
        } => {
            let items = port_items(&ports);
            let e = db
                .endpoint_from_text(&address, &protocol, items.as_deref())
                .await?;
            change(
                origin,
                db.delete_endpoint(&service, &e, items.is_some(), origin),
            )
            .await
        }
    }
}

/// A prefix as typed (host bits are reported by validation, with the prefix meant).
fn parse_prefix(client: &str, text: &str) -> Result<IpNet> {
    text::parse_net(text).ok_or_else(|| {
        anyhow!("client {client:?}: field `prefixes`: {text:?} is not an IP address or prefix")
    })
}

async fn client(db: &Db, origin: &Origin, cmd: ClientCommand) -> Result<ExitCode> {
    match cmd {
        ClientCommand::List { organisation } => {
            for c in db.clients().await? {
                if organisation.as_ref().is_none_or(|o| *o == c.organisation) {
                    let prefixes: Vec<String> =
                        c.prefixes.iter().map(ToString::to_string).collect();
                    println!("{}\t{}\t{}", c.id, c.organisation, prefixes.join(" "));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Show { id } => {
            let c = db
                .client(&id)
                .await?
                .ok_or_else(|| not_found(ObjectKind::Client, &id))?;
            println!("client {:?} (organisation {:?})", c.id, c.organisation);
            for p in &c.prefixes {
                println!("  prefix {p}");
            }
            let filter = AgreementFilter {
                client: Some(id),
                ..AgreementFilter::default()
            };
            for a in db.agreements(&filter).await? {
                println!("  agreement {}", agreement_line(&a));
            }
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Create {
            id,
            organisation,
            prefixes,
        } => {
            let prefixes = prefixes
                .iter()
                .map(|p| parse_prefix(&id, p))
                .collect::<Result<Vec<_>>>()?;
            let c = Client {
                id,
                organisation,
                prefixes,
            };
            change(origin, db.create_client(&c, origin)).await
        }
        ClientCommand::Update { id, organisation } => {
            change(origin, db.move_client(&id, &organisation, origin)).await
        }
        ClientCommand::Delete { id } => change(origin, db.delete_client(&id, origin)).await,
    }
}

async fn prefix(db: &Db, origin: &Origin, cmd: PrefixCommand) -> Result<ExitCode> {
    match cmd {
        PrefixCommand::Add { client, prefix } => {
            let p = parse_prefix(&client, &prefix)?;
            change(origin, db.add_prefix(&client, p, origin)).await
        }
        PrefixCommand::Delete { client, prefix } => {
            let p = parse_prefix(&client, &prefix)?;
            change(origin, db.delete_prefix(&client, p, origin)).await
        }
    }
}

async fn agreement(db: &Db, origin: &Origin, cmd: AgreementCommand) -> Result<ExitCode> {
    match cmd {
        AgreementCommand::List {
            client,
            service,
            state,
        } => {
            let filter = AgreementFilter {
                client,
                service,
                state: state.map(Into::into),
            };
            for a in db.agreements(&filter).await? {
                println!("{}", agreement_line(&a));
            }
            Ok(ExitCode::SUCCESS)
        }
        AgreementCommand::Show { id } => {
            let a = db
                .agreement(id)
                .await?
                .ok_or_else(|| not_found(ObjectKind::Agreement, &id.to_string()))?;
            println!("agreement {}", agreement_line(&a));
            Ok(ExitCode::SUCCESS)
        }
        AgreementCommand::Create {
            id,
            client,
            service,
            state,
            expires,
            vlan,
        } => {
            let a = Agreement {
                id,
                client,
                service,
                state: state.into(),
                expires,
                vlan,
            };
            change(origin, db.create_agreement(&a, origin)).await
        }
        AgreementCommand::Update {
            id,
            client,
            service,
            state,
            expires,
            no_expiry,
            vlan,
            any_vlan,
        } => {
            // Only the fields given: the rest is read and kept inside the same transaction.
            let edit = AgreementEdit {
                client,
                service,
                state: state.map(Into::into),
                expires: (expires.is_some() || no_expiry).then_some(expires),
                vlan: (vlan.is_some() || any_vlan).then_some(vlan),
            };
            change(origin, db.update_agreement(id, &edit, origin)).await
        }
        AgreementCommand::Delete { id } => change(origin, db.delete_agreement(id, origin)).await,
        AgreementCommand::Approve { id } => {
            change(origin, db.transition(id, Transition::Approve, origin)).await
        }
        AgreementCommand::Reject { id } => {
            change(origin, db.transition(id, Transition::Reject, origin)).await
        }
        AgreementCommand::Revoke { id } => {
            change(origin, db.transition(id, Transition::Revoke, origin)).await
        }
        AgreementCommand::Request { id } => {
            change(origin, db.transition(id, Transition::Request, origin)).await
        }
    }
}

fn alias_line(a: &PortAlias) -> String {
    let ports: Vec<String> = a.ports.iter().map(ToString::to_string).collect();
    format!("{} {} {}", a.name, a.protocol.name(), ports.join(","))
}

async fn alias(db: &Db, origin: &Origin, cmd: AliasCommand) -> Result<ExitCode> {
    match cmd {
        AliasCommand::List => {
            for a in db.port_aliases().await? {
                println!("{}", alias_line(&a));
            }
            Ok(ExitCode::SUCCESS)
        }
        AliasCommand::Show { name } => {
            let a = db
                .port_alias(&name)
                .await?
                .ok_or_else(|| not_found(ObjectKind::PortAlias, &name))?;
            println!("{}", alias_line(&a));
            Ok(ExitCode::SUCCESS)
        }
        AliasCommand::Create {
            name,
            protocol,
            ports,
        } => {
            let items = port_items(&ports).unwrap_or_default();
            let a = port_alias_from_text(&name, &protocol, &items)?;
            change(origin, db.create_port_alias(&a, origin)).await
        }
        AliasCommand::Delete { name } => change(origin, db.delete_port_alias(&name, origin)).await,
    }
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

async fn audit(db: &Db, a: &AuditArgs) -> Result<ExitCode> {
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
        if a.json {
            writeln!(out, "{}", serde_json::to_string(&r)?)?;
        } else {
            writeln!(out, "{}", audit_line(&r))?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

//! The `db` command's subcommands and flags (clap).

#[allow(
    clippy::wildcard_imports,
    reason = "the db command's shared imports and helpers"
)]
use super::*;

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
    pub(crate) organisation: Option<String>,
    /// Rows about one kind of object, or one object: `agreement`, `service:fmk`,
    /// `agreement:1001` (kinds: organisation, port_alias, service, client, agreement,
    /// infrastructure, policy).
    #[arg(long)]
    pub(crate) object: Option<String>,
    /// Rows made under this request id.
    #[arg(long)]
    pub(crate) request: Option<String>,
    /// Rows at or after this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long)]
    pub(crate) since: Option<String>,
    /// Rows before this time.
    #[arg(long)]
    pub(crate) until: Option<String>,
    /// Only the newest N rows.
    #[arg(long)]
    pub(crate) limit: Option<u32>,
}

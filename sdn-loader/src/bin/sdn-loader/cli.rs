//! The command line: every command and flag (clap).

#[allow(
    clippy::wildcard_imports,
    reason = "the binary's shared imports and helpers"
)]
use super::*;

#[derive(Parser)]
#[command(
    name = "sdn-loader",
    version,
    about = "sdn-filter: per-agreement XDP allow lists for the health data network"
)]
pub(crate) struct Cli {
    /// Configuration file (default /etc/sdn/sdn.toml when it exists); flags override it.
    #[arg(long, global = true)]
    pub(crate) config: Option<PathBuf>,
    /// Log lines on standard error: text, or json (one object per line, for journald and
    /// SIEMs). Default: `log_format` of the configuration file, else text.
    #[arg(long, global = true, value_enum)]
    pub(crate) log_format: Option<sdn_loader::config::LogFormat>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// `sdn-loader config ...`
#[derive(Subcommand)]
pub(crate) enum ConfigCommand {
    /// Read and validate the configuration file (every key and the infrastructure allow
    /// list): exit 0 when it is valid, 1 naming what is wrong. Doubtful settings are warned
    /// about.
    Check,
    /// Print every setting in effect (flags over the file over the defaults) in the file's
    /// format, the database password masked.
    Show {
        /// Agreement database URL.
        #[arg(long)]
        db: Option<String>,
        /// Pin directory on bpffs.
        #[arg(long)]
        pin_dir: Option<PathBuf>,
        #[command(flatten)]
        fleet: FleetArgs,
    },
}

/// `--mode`: the configuration file's `mode` type.
pub(crate) use sdn_loader::config::XdpMode as Mode;

/// This router's identity and state (flags over the config file).
#[derive(clap::Args, Clone, Default)]
pub(crate) struct FleetArgs {
    /// This router's name in the database (default: `router` of the config file, else the
    /// host name).
    #[arg(long)]
    pub(crate) router: Option<String>,
    /// Where the loader keeps the policy in force (default /var/lib/sdn).
    #[arg(long)]
    pub(crate) state_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Validate and compile a policy file; print what it would load.
    Check {
        /// Policy file (TOML, or JSON by extension).
        #[arg(long)]
        policy: PathBuf,
        /// Judge expiry as of this UTC date (default: today).
        #[arg(long)]
        date: Option<NaiveDate>,
    },
    /// Run every frame of a pcap/pcapng file through a private instance of the program.
    Replay {
        /// Policy file.
        #[arg(long)]
        policy: PathBuf,
        /// Capture file (pcap or pcapng).
        #[arg(long)]
        pcap: PathBuf,
        /// One JSON object per frame.
        #[arg(long)]
        json: bool,
        /// Judge expiry as of this UTC date (default: today).
        #[arg(long)]
        date: Option<NaiveDate>,
    },
    /// Judge one synthesised packet and say which agreement and clause decided it, and why
    /// the agreements that could have carried it did not.
    Explain {
        /// Policy file. Without it: the policy in force on this router (kept in the state
        /// directory by the daemon), after checking that the running data plane's maps hold
        /// exactly its rules.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Pin directory of the running data plane (without --policy).
        #[arg(long, conflicts_with = "policy")]
        pin_dir: Option<PathBuf>,
        /// Where the daemon keeps the policy in force (without --policy; default: `state_dir`
        /// of the configuration file, else /var/lib/sdn).
        #[arg(long, conflicts_with = "policy")]
        state_dir: Option<PathBuf>,
        /// Source address.
        #[arg(value_parser = sdn_loader::policy::parse_addr)]
        src: IpAddr,
        /// Destination address.
        #[arg(value_parser = sdn_loader::policy::parse_addr)]
        dst: IpAddr,
        /// tcp, udp, sctp, icmp, icmpv6 or a protocol number.
        proto: String,
        /// Source port (ICMP: echo identifier).
        sport: Option<u16>,
        /// Destination port (ICMP: type; default 8/128, echo request).
        dport: Option<u16>,
        /// Tag the frame with this VLAN.
        #[arg(long)]
        vlan: Option<u16>,
        /// TCP: a SYN without ACK (default: an ACK segment).
        #[arg(long)]
        syn: bool,
        /// Judge expiry as of this UTC date (default: today).
        #[arg(long)]
        date: Option<NaiveDate>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Load the policy and attach the program to interfaces; pins keep it running after exit.
    Run {
        /// Interface(s) to attach to (default: `interfaces` of the config file).
        #[arg(long = "iface")]
        ifaces: Vec<String>,
        /// Policy file (load it and exit; the pins keep it enforced).
        #[arg(long, conflicts_with = "db")]
        policy: Option<PathBuf>,
        /// Follow this agreement database (sqlite://PATH or postgres://...): full sync, then
        /// every change by revision, until stopped (default: `database` of the config file).
        #[arg(long)]
        db: Option<String>,
        /// With --db: sync once and exit.
        #[arg(long)]
        once: bool,
        /// With --db: how often to check the revision, in milliseconds (default 50;
        /// PostgreSQL also wakes at once on NOTIFY).
        #[arg(long)]
        poll_ms: Option<u64>,
        /// XDP mode (default native).
        #[arg(long, value_enum)]
        mode: Option<Mode>,
        /// Pin directory on bpffs.
        #[arg(long)]
        pin_dir: Option<PathBuf>,
        /// Enter this network namespace (`ip netns` name) first.
        #[arg(long)]
        netns: Option<String>,
        #[command(flatten)]
        fleet: FleetArgs,
        /// Turn the blast-radius guard off.
        #[arg(long)]
        no_guard: bool,
        /// Enforce a policy (file or database) with no agreements at all, i.e. drop all
        /// traffic but the infrastructure allow list; refused without this. Also lets a
        /// 0-byte SQLite file be used as a new empty database.
        #[arg(long)]
        allow_empty: bool,
        /// Hold a sync removing more than this share (0-1) of the allow-list rules.
        #[arg(long)]
        guard_max_removed_share: Option<f64>,
        /// An agreement with traffic within this many hours is "recently active".
        #[arg(long)]
        guard_active_hours: Option<u64>,
        /// How often to sample per-agreement activity, in milliseconds (default 60000).
        #[arg(long, default_value_t = 60_000)]
        activity_ms: u64,
        /// Counter slots (agreements in force) when the maps are created.
        #[arg(long)]
        max_agreements: Option<u32>,
        /// Prefix entries (both generations) when the maps are created.
        #[arg(long)]
        max_prefixes: Option<u32>,
        /// Rule entries (both generations) when the maps are created.
        #[arg(long)]
        max_rules: Option<u32>,
        /// With --db: KPI collection and the read-only HTTP server.
        #[command(flatten)]
        kpi: kpi::DaemonKpi,
    },
    /// Show what the next sync would add and remove on this router, and the traffic of the
    /// agreements that would lose access.
    Plan {
        /// Agreement database (default: `database` of the config file).
        #[arg(long)]
        db: Option<String>,
        #[command(flatten)]
        fleet: FleetArgs,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Release a revision the blast-radius guard holds.
    Confirm {
        /// The held revision.
        revision: u64,
        /// Agreement database (default: `database` of the config file).
        #[arg(long)]
        db: Option<String>,
        #[command(flatten)]
        fleet: FleetArgs,
        /// Confirm it for every router following the database.
        #[arg(long)]
        all_routers: bool,
        /// Who confirms (default: the login name).
        #[arg(long, default_value_t = db::default_actor())]
        actor: String,
    },
    /// Provisioning status of the routers following the database (all, or one with
    /// --router), per router and per agreement.
    Status {
        /// Agreement database (default: `database` of the config file).
        #[arg(long)]
        db: Option<String>,
        /// Only this router, with its agreements.
        #[arg(long)]
        router: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Detach the program from an interface.
    Detach {
        /// Interface.
        #[arg(long = "iface", required = true)]
        ifaces: Vec<String>,
        /// Pin directory on bpffs (default: `pin_dir` of the configuration file, else
        /// /sys/fs/bpf/sdn).
        #[arg(long)]
        pin_dir: Option<PathBuf>,
        /// Enter this network namespace first.
        #[arg(long)]
        netns: Option<String>,
        /// Also remove the pinned program and maps (counters are lost) once no link remains.
        #[arg(long)]
        purge: bool,
    },
    /// Print every dropped packet (aya-log from the running program) until interrupted.
    Log {
        /// Pin directory on bpffs (default: `pin_dir` of the configuration file, else
        /// /sys/fs/bpf/sdn).
        #[arg(long)]
        pin_dir: Option<PathBuf>,
        /// Stop after this many seconds (default: until Ctrl-C).
        #[arg(long)]
        seconds: Option<u64>,
    },
    /// The agreement database: init, import/export, organisations, services, endpoints,
    /// clients, prefixes, agreements, port aliases, audit log.
    Db {
        /// Database URL: sqlite://PATH (relative), sqlite:///PATH (absolute) or
        /// postgres://USER@HOST/DB (default: `database` of the config file, else
        /// sqlite:///var/lib/sdn/sdn.db). Before or after the command's name.
        #[arg(long, global = true)]
        db: Option<String>,
        /// Who makes the change (recorded in the audit log; default: the login name).
        #[arg(long, global = true, default_value_t = db::default_actor())]
        actor: String,
        /// Request id recorded with every change (default: a new UUID, printed).
        #[arg(long, global = true)]
        request_id: Option<String>,
        /// Take a 0-byte SQLite file as a new empty database (refused without this, as
        /// what a failed copy or restore leaves; `db init` never needs it).
        #[arg(long, global = true)]
        allow_empty: bool,
        /// JSON output: lists as arrays, `show` as one object, changes as
        /// `{"revision", "changed", "request_id"}`, the audit log as one object per line.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: db::DbCommand,
    },
    /// Per-agreement traffic KPIs: queries, monthly report, HTML report, collector, HTTP.
    Kpi {
        /// Database URL (as for `db`; default: `database` of the config file). Before or
        /// after the command's name.
        #[arg(long, global = true)]
        db: Option<String>,
        #[command(subcommand)]
        command: kpi::KpiCommand,
    },
    /// Print a shell completion script to stdout (bash, zsh, fish, elvish, powershell), e.g.
    /// `sdn-loader completions bash > /usr/share/bash-completion/completions/sdn-loader`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (sdn-loader.1 and one page per command, sdn-loader-db-import.1
    /// and so on) into a directory.
    Man {
        /// Directory to write them into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Check the configuration file, or show every setting in effect.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Check what the data plane needs from this kernel.
    Probe {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// The rules in force, read back from the running data plane's maps (like `nft list
    /// ruleset`): agreement, client prefix, endpoint, protocol, ports and VLAN per line.
    Rules {
        /// Pin directory on bpffs (default: `pin_dir` of the configuration file, else
        /// /sys/fs/bpf/sdn).
        #[arg(long)]
        pin_dir: Option<PathBuf>,
        /// Only this agreement's lines.
        #[arg(long)]
        agreement: Option<u32>,
        /// Only the agreements where this organisation is the client's or the service's
        /// (names from the policy in force kept in the state directory).
        #[arg(long)]
        organisation: Option<String>,
        /// Where the loader keeps the policy in force (default: `state_dir` of the
        /// configuration file, else /var/lib/sdn).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// One JSON array of line objects.
        #[arg(long)]
        json: bool,
    },
    /// Per-agreement counters and drop reasons of the running data plane.
    Stats {
        /// Pin directory on bpffs (default: `pin_dir` of the configuration file, else
        /// /sys/fs/bpf/sdn).
        #[arg(long)]
        pin_dir: Option<PathBuf>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

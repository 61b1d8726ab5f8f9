//! The loader's configuration file (TOML, `/etc/sdn/sdn.toml` by default). Every key can be
//! overridden by a command-line flag; a missing default file means the defaults, a missing
//! file named with `--config` is an error.
//!
//! ```toml
//! router = "hub-aarhus-1"                 # default: the host name
//! interfaces = ["enp1s0f0", "enp1s0f1"]
//! database = "postgres://sdn@db.sdn.dk/sdn"
//! mode = "native"                         # or "generic"
//! pin_dir = "/sys/fs/bpf/sdn"
//! state_dir = "/var/lib/sdn"
//! log_format = "text"                     # or "json": one object per line
//!
//! [sync]
//! poll_ms = 50                            # revision check (PostgreSQL also wakes on NOTIFY)
//! reconcile_s = 300                       # full re-apply that repairs drift
//!
//! [maps]                                  # map sizes, fixed when the maps are created
//! agreements = 1048576
//! rules = 4194304
//!
//! [http]                                  # the read-only HTTP server of `run --db` and `kpi serve`
//! listen = "127.0.0.1:9640"               # or "off" (run --db only)
//! max_connections = 256
//! header_timeout_s = 10
//! idle_timeout_s = 60
//! request_timeout_s = 30
//!
//! [kpi]                                   # the KPI collector of `run --db` and `kpi collect`
//! interval_s = 60                         # 0: no collector (run --db only)
//! retention = "minutes=7d,hours=365d,days=forever"
//! metrics_agreements = "all"              # per-agreement series: all, none, or a number N (top N)
//!
//! [guard]                                 # the blast-radius guard
//! enabled = true
//! active_hours = 24                       # "carried traffic recently"
//! max_removed_share = 0.10                # share of allow-list rules one sync may remove
//!
//! [[infrastructure]]                      # this router's own infrastructure allow list,
//! prefix = "192.0.2.0/28"                 # same format as the policy file's
//! protocol = "tcp"
//! ports = "179"
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{
    dataplane::Capacities,
    policy::{InfraEntry, PolicyError, parse_toml},
};

/// The default configuration file.
pub const DEFAULT_PATH: &str = "/etc/sdn/sdn.toml";

/// Errors reading the configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown key or a wrong type.
    #[error("configuration file {path}: {error}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key and line).
        error: toml::de::Error,
    },
    /// The infrastructure allow list is invalid.
    #[error("configuration file {path}: {error}")]
    Infrastructure {
        /// The file.
        path: PathBuf,
        /// The policy validator's message (names the entry and field).
        error: Box<PolicyError>,
    },
    /// A value is out of range.
    #[error("configuration file {path}: {key} {message}")]
    Value {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// What is wrong.
        message: &'static str,
    },
    /// The configuration could not be written out as TOML.
    #[error("writing the configuration as TOML")]
    Render(#[source] toml::ser::Error),
}

/// The blast-radius guard's thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    /// Hold syncs that would do harm (on by default).
    pub enabled: bool,
    /// An agreement that carried traffic within this many hours is "recently active".
    pub active_hours: u64,
    /// Hold a sync that removes more than this share (0-1) of the allow-list rules.
    pub max_removed_share: f64,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            active_hours: 24,
            max_removed_share: 0.10,
        }
    }
}

/// The read-only HTTP server (`[http]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on (`off`: no server, for `run --db`).
    pub listen: String,
    /// Connections open at once.
    pub max_connections: u32,
    /// Seconds a client may take to send a request's headers.
    pub header_timeout_s: u64,
    /// Seconds a connection may stay open without a request.
    pub idle_timeout_s: u64,
    /// Seconds a request may take before it is answered 503.
    pub request_timeout_s: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: crate::kpi::http::DEFAULT_LISTEN.to_owned(),
            max_connections: 256,
            header_timeout_s: 10,
            idle_timeout_s: 60,
            request_timeout_s: 30,
        }
    }
}

/// The KPI collector and the metrics it exports (`[kpi]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KpiConfig {
    /// Seconds between collection passes (0: none, for `run --db`).
    pub interval_s: u64,
    /// How long buckets are kept (`minutes=7d,hours=365d,days=forever`).
    pub retention: String,
    /// Per-agreement series in /metrics: `all`, `none`, or a number N (the top N by bytes).
    pub metrics_agreements: String,
}

/// The default KPI retention.
pub const DEFAULT_RETENTION: &str = "minutes=7d,hours=365d,days=forever";

impl Default for KpiConfig {
    fn default() -> Self {
        Self {
            interval_s: 60,
            retention: DEFAULT_RETENTION.to_owned(),
            metrics_agreements: "all".to_owned(),
        }
    }
}

/// Live-sync timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// How often the revision is checked, in milliseconds.
    pub poll_ms: u64,
    /// How often the policy is re-applied without a change, in seconds.
    pub reconcile_s: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            poll_ms: 50,
            reconcile_s: 300,
        }
    }
}

/// Map sizes, fixed when the maps are first created (pinned maps keep theirs). A policy that
/// does not fit is refused whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MapsConfig {
    /// Counter slots (agreements in force).
    pub agreements: u32,
    /// Flow-table entries.
    pub flows: u32,
    /// Fragment-table entries.
    pub fragments: u32,
    /// Prefix entries (both policy generations).
    pub prefixes: u32,
    /// Rule entries (both policy generations).
    pub rules: u32,
}

impl Default for MapsConfig {
    fn default() -> Self {
        let c = Capacities::default();
        Self {
            agreements: c.slots,
            flows: c.flows,
            fragments: c.fragments,
            prefixes: c.prefixes,
            rules: c.rules,
        }
    }
}

impl From<MapsConfig> for Capacities {
    fn from(m: MapsConfig) -> Self {
        Self {
            slots: m.agreements,
            flows: m.flows,
            fragments: m.fragments,
            prefixes: m.prefixes,
            rules: m.rules,
        }
    }
}

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    router: Option<String>,
    #[serde(default)]
    interfaces: Vec<String>,
    database: Option<String>,
    mode: Option<String>,
    pin_dir: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    log_format: Option<String>,
    #[serde(default)]
    sync: SyncConfig,
    #[serde(default)]
    guard: GuardConfig,
    #[serde(default)]
    maps: MapsConfig,
    #[serde(default)]
    http: HttpConfig,
    #[serde(default)]
    kpi: KpiConfig,
    #[serde(default)]
    infrastructure: Vec<toml::Value>,
}

/// The configuration, file values with defaults filled in (flags are applied by the binary).
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Where it was read from (`None`: no file, defaults).
    pub path: Option<PathBuf>,
    /// This router's name in the database.
    pub router: String,
    /// Whether the file named the router (`false`: `router` is the host name).
    pub router_named: bool,
    /// Interfaces to attach to.
    pub interfaces: Vec<String>,
    /// Agreement database URL.
    pub database: Option<String>,
    /// How the program is attached.
    pub mode: Option<XdpMode>,
    /// Pin directory on bpffs.
    pub pin_dir: Option<PathBuf>,
    /// Where the loader keeps its own state (the policy in force, for `plan`).
    pub state_dir: PathBuf,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// Live-sync timing.
    pub sync: SyncConfig,
    /// Blast-radius guard.
    pub guard: GuardConfig,
    /// Map sizes.
    pub maps: MapsConfig,
    /// The HTTP server.
    pub http: HttpConfig,
    /// The KPI collector.
    pub kpi: KpiConfig,
    /// This router's infrastructure allow list (added to the database's).
    pub infrastructure: Vec<InfraEntry>,
}

/// How the program is attached to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum XdpMode {
    /// In the driver (fastest; veth and most 10G+ NICs).
    Native,
    /// In the kernel network stack (works everywhere, slower).
    Generic,
}

impl XdpMode {
    /// The name used in flags and the configuration file.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Generic => "generic",
        }
    }
}

/// How log lines are written to standard error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event (for journald and SIEMs).
    Json,
}

impl LogFormat {
    /// The name used in flags and the configuration file.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

/// The default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/sdn";

/// This machine's host name (the default router name).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "router".to_owned())
}

impl Default for Config {
    fn default() -> Self {
        Self {
            path: None,
            router: hostname(),
            router_named: false,
            interfaces: Vec::new(),
            database: None,
            mode: None,
            pin_dir: None,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            log_format: LogFormat::Text,
            sync: SyncConfig::default(),
            guard: GuardConfig::default(),
            maps: MapsConfig::default(),
            http: HttpConfig::default(),
            kpi: KpiConfig::default(),
            infrastructure: Vec::new(),
        }
    }
}

impl Config {
    /// Reads `path`, or the default file when `path` is `None` (absent: defaults).
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and what is wrong in it.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_PATH), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::default());
            }
            Err(error) => return Err(ConfigError::Read { path, error }),
        };
        Self::parse(&text, path)
    }

    /// Parses the text of a configuration file read from `path`.
    ///
    /// # Errors
    /// [`ConfigError`].
    pub fn parse(text: &str, path: PathBuf) -> Result<Self, ConfigError> {
        let raw: RawConfig = match toml::from_str(text) {
            Ok(r) => r,
            Err(error) => return Err(ConfigError::Parse { path, error }),
        };
        let value_err = |key, message| ConfigError::Value {
            path: path.clone(),
            key,
            message,
        };
        if !(0.0..=1.0).contains(&raw.guard.max_removed_share) {
            return Err(value_err(
                "guard.max_removed_share",
                "must be between 0 and 1",
            ));
        }
        let m = raw.maps;
        if [m.agreements, m.flows, m.fragments, m.prefixes, m.rules].contains(&0) {
            return Err(value_err("maps", "sizes must be at least 1"));
        }
        if raw.sync.poll_ms == 0 {
            return Err(value_err("sync.poll_ms", "must be at least 1"));
        }
        let h = &raw.http;
        if h.max_connections == 0
            || [h.header_timeout_s, h.idle_timeout_s, h.request_timeout_s].contains(&0)
        {
            return Err(value_err(
                "http",
                "max_connections and the timeouts must be at least 1",
            ));
        }
        if crate::kpi::Retention::parse(&raw.kpi.retention).is_err() {
            return Err(value_err(
                "kpi.retention",
                "must be like \"minutes=7d,hours=365d,days=forever\"",
            ));
        }
        if crate::kpi::metrics::Cardinality::parse(&raw.kpi.metrics_agreements).is_err() {
            return Err(value_err(
                "kpi.metrics_agreements",
                "must be \"all\", \"none\" or a number (the top N by bytes)",
            ));
        }
        let mode = match raw.mode.as_deref() {
            None => None,
            Some("native") => Some(XdpMode::Native),
            Some("generic") => Some(XdpMode::Generic),
            Some(_) => return Err(value_err("mode", "must be \"native\" or \"generic\"")),
        };
        let log_format = match raw.log_format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(_) => return Err(value_err("log_format", "must be \"text\" or \"json\"")),
        };
        if raw.router.as_deref().is_some_and(str::is_empty) {
            return Err(value_err("router", "must not be empty"));
        }
        // The infrastructure list has the policy file's format: let its validator judge it.
        let infrastructure = if raw.infrastructure.is_empty() {
            Vec::new()
        } else {
            let mut doc = toml::map::Map::new();
            doc.insert(
                "infrastructure".to_owned(),
                toml::Value::Array(raw.infrastructure),
            );
            let text = toml::to_string(&toml::Value::Table(doc)).unwrap_or_default();
            match parse_toml(&text) {
                Ok(p) => p.into_draft().infrastructure,
                Err(error) => {
                    return Err(ConfigError::Infrastructure {
                        path,
                        error: Box::new(error),
                    });
                }
            }
        };
        Ok(Self {
            router_named: raw.router.is_some(),
            router: raw.router.unwrap_or_else(hostname),
            interfaces: raw.interfaces,
            database: raw.database,
            mode,
            pin_dir: raw.pin_dir,
            state_dir: raw
                .state_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            log_format,
            sync: raw.sync,
            guard: raw.guard,
            maps: raw.maps,
            http: raw.http,
            kpi: raw.kpi,
            infrastructure,
            path: Some(path),
        })
    }
}

/// The configuration as a file states it, every key with its value in effect (`config show`).
#[derive(Serialize)]
struct Shown<'a> {
    router: &'a str,
    interfaces: &'a [String],
    database: String,
    mode: &'static str,
    pin_dir: &'a Path,
    state_dir: &'a Path,
    log_format: &'static str,
    sync: SyncConfig,
    guard: GuardConfig,
    maps: MapsConfig,
    http: &'a HttpConfig,
    kpi: &'a KpiConfig,
    infrastructure: Vec<ShownInfra>,
}

#[derive(Serialize)]
struct ShownInfra {
    prefix: String,
    protocol: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ports: Vec<String>,
}

impl Config {
    /// Every setting in effect, in the file's format: defaults filled in, the database URL's
    /// password masked. Parsing the text gives this configuration back (less the password).
    ///
    /// # Errors
    /// [`ConfigError::Render`] (a value TOML cannot hold).
    pub fn render(&self) -> Result<String, ConfigError> {
        let database = self
            .database
            .clone()
            .unwrap_or_else(|| crate::db::DEFAULT_URL.to_owned());
        let shown = Shown {
            router: &self.router,
            interfaces: &self.interfaces,
            database: crate::db::redact_url(&database),
            mode: self.mode.unwrap_or(XdpMode::Native).name(),
            pin_dir: self
                .pin_dir
                .as_deref()
                .unwrap_or_else(|| Path::new(crate::paths::DEFAULT_PIN_DIR)),
            state_dir: &self.state_dir,
            log_format: self.log_format.name(),
            sync: self.sync,
            guard: self.guard,
            maps: self.maps,
            http: &self.http,
            kpi: &self.kpi,
            infrastructure: (self.infrastructure.iter())
                .map(|i| ShownInfra {
                    prefix: i.prefix.to_string(),
                    protocol: i.protocol.name(),
                    ports: i.ports.iter().map(ToString::to_string).collect(),
                })
                .collect(),
        };
        toml::to_string(&shown).map_err(ConfigError::Render)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, PathBuf::from("test.toml"))
    }

    /// examples/sdn.toml (installed as /etc/sdn/sdn.toml) documents every key with its
    /// default: it parses, and all but the marked examples equal the defaults.
    #[test]
    fn the_example_file_is_valid_and_shows_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sdn.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let c = Config::parse(&text, path).unwrap();
        let d = Config::default();
        assert_eq!(c.router, "hub-example-1");
        assert_eq!(c.interfaces, ["enp1s0f0", "enp1s0f1"]);
        assert_eq!(c.infrastructure.len(), 1);
        assert_eq!(c.database.as_deref(), Some("sqlite:///var/lib/sdn/sdn.db"));
        assert_eq!(c.mode, Some(XdpMode::Native));
        assert_eq!(c.pin_dir.as_deref(), Some(Path::new("/sys/fs/bpf/sdn")));
        assert_eq!(
            (
                &c.state_dir,
                c.log_format,
                c.sync,
                c.guard,
                c.maps,
                &c.http,
                &c.kpi
            ),
            (
                &d.state_dir,
                d.log_format,
                d.sync,
                d.guard,
                d.maps,
                &d.http,
                &d.kpi
            )
        );
    }

    /// `config show` writes every setting in effect; reading it back gives the same
    /// configuration, but for the password, which is masked.
    #[test]
    fn the_rendered_configuration_reads_back_the_same_without_the_password() {
        let c = parse(
            r#"
router = "hub-1"
interfaces = ["veth0"]
database = "postgres://sdn:s3cret@db.example/sdn"
mode = "generic"
log_format = "json"
[kpi]
metrics_agreements = "100"
[[infrastructure]]
prefix = "192.0.2.0/28"
protocol = "tcp"
ports = ["179", "8000-8100"]
"#,
        )
        .unwrap();
        let text = c.render().unwrap();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("postgres://sdn:***@db.example/sdn"), "{text}");
        let back = parse(&text).unwrap();
        assert_eq!(
            back.database.as_deref(),
            Some("postgres://sdn:***@db.example/sdn")
        );
        let restore = |mut b: Config| {
            b.database.clone_from(&c.database);
            b
        };
        let mut want = c.clone();
        assert!(want.router_named);
        // Unset values are shown as the defaults they stand for.
        want.pin_dir = Some(PathBuf::from(crate::paths::DEFAULT_PIN_DIR));
        assert_eq!(restore(back), want);
        assert_eq!(want.log_format, LogFormat::Json);
        let defaults = Config::default().render().unwrap();
        for key in [
            "[sync]",
            "[guard]",
            "[maps]",
            "[http]",
            "[kpi]",
            "log_format = \"text\"",
        ] {
            assert!(defaults.contains(key), "{key} missing from\n{defaults}");
        }
    }

    #[test]
    fn full_file() {
        let c = parse(
            r#"
router = "hub-1"
interfaces = ["veth0", "veth1"]
database = "sqlite:///tmp/x.db"
mode = "generic"
state_dir = "/tmp/state"
[sync]
poll_ms = 50
[guard]
max_removed_share = 0.25
[[infrastructure]]
prefix = "192.0.2.0/28"
protocol = "tcp"
ports = "179"
"#,
        )
        .unwrap();
        assert_eq!(c.router, "hub-1");
        assert_eq!(c.interfaces, ["veth0", "veth1"]);
        assert_eq!(c.database.as_deref(), Some("sqlite:///tmp/x.db"));
        assert_eq!(c.sync.poll_ms, 50);
        assert_eq!(c.sync.reconcile_s, 300);
        assert!(c.guard.enabled);
        assert!((c.guard.max_removed_share - 0.25).abs() < 1e-9);
        assert_eq!(c.infrastructure.len(), 1);
        assert_eq!(c.infrastructure[0].prefix.to_string(), "192.0.2.0/28");
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse("routr = \"x\"").unwrap_err().to_string();
        assert!(e.contains("routr"), "{e}");
        let e = parse("[guard]\nmax_removed_share = 2.0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("guard.max_removed_share"), "{e}");
        let e = parse("mode = \"fast\"").unwrap_err().to_string();
        assert!(e.contains("mode"), "{e}");
        let e = parse("[[infrastructure]]\nprefix = \"192.0.2.0/33\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("infrastructure[0]"), "{e}");
    }

    #[test]
    fn missing_default_file_means_defaults_but_named_file_must_exist() {
        assert!(Config::load(Some(Path::new("/nonexistent/sdn.toml"))).is_err());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sdn.toml");
        std::fs::write(&p, "router = \"r9\"\n").unwrap();
        assert_eq!(Config::load(Some(&p)).unwrap().router, "r9");
    }
}

//! Errors of reading, validating and writing policy files.

use std::fmt;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use super::address::AddressError;
use super::model::Protocol;

/// Why a policy could not be read, parsed, validated or written.
///
/// The underlying errors are kept in `error` fields and are part of the message (they carry
/// the line and column), so they are not reported again as a `source`.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The policy file could not be read.
    #[error("cannot read policy file {}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// The text is not TOML, or not a policy document (wrong type, unknown or missing field).
    #[error("{}{}", in_file(path.as_deref()), error.to_string().trim_end())]
    Toml {
        /// The file, when read with `load_file`.
        path: Option<PathBuf>,
        /// The parser's error, with line and column.
        error: toml::de::Error,
    },
    /// The text is not JSON, or not a policy document (wrong type, unknown or missing field).
    #[error("{}JSON error: {error}", in_file(path.as_deref()))]
    Json {
        /// The file, when read with `load_file`.
        path: Option<PathBuf>,
        /// The parser's error, with line and column.
        error: serde_json::Error,
    },
    /// The document is well-formed but breaks the policy rules; every problem found is listed.
    #[error("{}", invalid_message(path.as_deref(), errors))]
    Invalid {
        /// The file, when read with `load_file`.
        path: Option<PathBuf>,
        /// Every problem, in file order (by section, then entry, then field).
        errors: Vec<ValidationError>,
    },
    /// A value could not be written as TOML.
    #[error("cannot write policy as TOML: {error}")]
    Serialize {
        /// The serializer's error.
        error: toml::ser::Error,
    },
}

impl PolicyError {
    /// Attaches the file name to a parse or validation error.
    pub(crate) fn with_path(self, file: &Path) -> Self {
        match self {
            Self::Toml { error, .. } => Self::Toml {
                path: Some(file.to_path_buf()),
                error,
            },
            Self::Json { error, .. } => Self::Json {
                path: Some(file.to_path_buf()),
                error,
            },
            Self::Invalid { errors, .. } => Self::Invalid {
                path: Some(file.to_path_buf()),
                errors,
            },
            other @ (Self::Io { .. } | Self::Serialize { .. }) => other,
        }
    }

    /// The validation errors, if this is an `Invalid` error.
    pub fn validation_errors(&self) -> &[ValidationError] {
        match self {
            Self::Invalid { errors, .. } => errors,
            _ => &[],
        }
    }
}

/// `"policy file <path>: "` or nothing.
fn in_file(path: Option<&Path>) -> String {
    path.map_or_else(String::new, |p| format!("policy file {}: ", p.display()))
}

/// A header line, then one error per line.
fn invalid_message(path: Option<&Path>, errors: &[ValidationError]) -> String {
    use fmt::Write as _;

    let mut out = format!(
        "{}invalid policy ({} error{}):",
        in_file(path),
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    for error in errors {
        // Writing to a String cannot fail.
        let _ = write!(out, "\n  {error}");
    }
    out
}

/// A section (top-level array of tables) of the policy file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Section {
    /// `[[organisation]]`
    Organisation,
    /// `[[port_alias]]`
    PortAlias,
    /// `[[service]]`
    Service,
    /// `[[client]]`
    Client,
    /// `[[agreement]]`
    Agreement,
    /// `[[infrastructure]]`
    Infrastructure,
}

impl Section {
    /// The section's name in the file.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Organisation => "organisation",
            Self::PortAlias => "port_alias",
            Self::Service => "service",
            Self::Client => "client",
            Self::Agreement => "agreement",
            Self::Infrastructure => "infrastructure",
        }
    }

    /// What an entry of the section is called in prose.
    const fn noun(self) -> &'static str {
        match self {
            Self::PortAlias => "port alias",
            other => other.name(),
        }
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where in the file a problem is: `agreement 1001 (agreement[3])`,
/// `service "fmk" (service[0]) endpoint[1]`, `infrastructure[0]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The section.
    pub section: Section,
    /// Index of the entry in its section, counting from 0 in file order.
    pub index: usize,
    /// The entry's id (name for port aliases), when it has a usable one.
    pub key: Option<String>,
    /// Index of the endpoint within a service.
    pub endpoint: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let section = self.section;
        match &self.key {
            Some(key) if section == Section::Agreement => {
                write!(f, "{section} {key} ({section}[{}])", self.index)?;
            }
            Some(key) => write!(f, "{section} {key:?} ({section}[{}])", self.index)?,
            None => write!(f, "{section}[{}]", self.index)?,
        }
        if let Some(endpoint) = self.endpoint {
            write!(f, " endpoint[{endpoint}]")?;
        }
        Ok(())
    }
}

/// One problem in a policy: where, which field, what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{location}: field `{field}`: {kind}")]
pub struct ValidationError {
    /// The entry.
    pub location: Location,
    /// The field's name in the file (`id`, `ports`, `address`, ...).
    pub field: &'static str,
    /// The problem.
    pub kind: ValidationErrorKind,
}

/// What is wrong with a field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidationErrorKind {
    /// An id or alias name is empty or blank.
    #[error("must not be empty")]
    EmptyId,
    /// An id or alias name starts or ends with white space.
    #[error("{id:?} must not start or end with white space")]
    IdWhitespace {
        /// The id as written.
        id: String,
    },
    /// An id, alias name or display name with a control character (tab, newline, BEL, DEL,
    /// C1...): it would be stored and printed raw.
    #[error(
        "contains the control character {ch:?} (U+{:04X}) at character {position}; control characters are not allowed",
        u32::from(*ch)
    )]
    ControlCharacter {
        /// The character.
        ch: char,
        /// Its position, counting characters from 1.
        position: usize,
    },
    /// An id or alias name with a character that prints as nothing, or any text with one that
    /// reorders the text after it (bidirectional embeddings, overrides and isolates).
    #[error(
        "contains the invisible formatting character U+{:04X} at character {position}; it would make the text read as something else",
        u32::from(*ch)
    )]
    InvisibleCharacter {
        /// The character.
        ch: char,
        /// Its position, counting characters from 1.
        position: usize,
    },
    /// An alias name that does not start with a letter (it would read as a port).
    #[error("port alias name {name:?} must start with a letter")]
    AliasName {
        /// The name as written.
        name: String,
    },
    /// The same id (alias name) is used twice in one section.
    #[error("duplicate: {id:?} is already used by {section}[{first_index}]")]
    DuplicateId {
        /// The id.
        id: String,
        /// The section.
        section: Section,
        /// Index of the entry that uses it first.
        first_index: usize,
    },
    /// A reference to an organisation, client or service that does not exist.
    #[error("unknown {} {id:?}{}", section.noun(), did_you_mean(suggestion.as_deref()))]
    UnknownReference {
        /// The section referred to.
        section: Section,
        /// The id as written.
        id: String,
        /// A similar existing id.
        suggestion: Option<String>,
    },
    /// A protocol name that is not one of the six.
    #[error("unknown protocol {text:?}; expected one of tcp, udp, sctp, icmp, icmpv6, any")]
    UnknownProtocol {
        /// The name as written.
        text: String,
    },
    /// A port alias of a protocol without ports.
    #[error("port aliases must be tcp, udp or sctp, not {}", protocol.name())]
    AliasProtocol {
        /// The alias's protocol.
        protocol: Protocol,
    },
    /// A port list on a protocol without ports.
    #[error("protocol {} has no ports; remove `ports`", protocol.name())]
    PortsNotAllowed {
        /// The protocol.
        protocol: Protocol,
    },
    /// `ports = []`.
    #[error("empty port list")]
    EmptyPortList,
    /// Text that is neither a port, a port range nor an alias name.
    #[error("{text:?} is not a port (\"443\") or a port range (\"8000-8100\")")]
    BadPort {
        /// The text as written.
        text: String,
    },
    /// A port number above 65535.
    #[error("port {text} is out of range 0-65535")]
    PortOutOfRange {
        /// The number as written.
        text: String,
    },
    /// A range whose first port is above its last.
    #[error("inverted port range {lo}-{hi}; did you mean {hi}-{lo}?")]
    InvertedRange {
        /// First port as written.
        lo: u16,
        /// Last port as written.
        hi: u16,
    },
    /// A port alias that does not exist.
    #[error("unknown port alias {name:?}{}", did_you_mean(suggestion.as_deref()))]
    UnknownAlias {
        /// The name as written.
        name: String,
        /// A similar existing alias name.
        suggestion: Option<String>,
    },
    /// A port alias used on an endpoint of another protocol.
    #[error(
        "port alias {alias:?} is for {}, not {}",
        alias_protocol.name(),
        protocol.name()
    )]
    AliasProtocolMismatch {
        /// The alias name.
        alias: String,
        /// The alias's protocol.
        alias_protocol: Protocol,
        /// The endpoint's protocol.
        protocol: Protocol,
    },
    /// An alias name inside a port alias's own ports.
    #[error("{text:?} is not a port or port range (port aliases cannot refer to other aliases)")]
    NestedAlias {
        /// The text as written.
        text: String,
    },
    /// Text that is not an IP address or prefix, or one with a leading zero in an IPv4 octet
    /// or in the prefix length.
    #[error("{error}")]
    BadAddress {
        /// What is wrong (it names the text).
        error: AddressError,
    },
    /// A prefix with bits set after the prefix length.
    #[error("prefix {given} has host bits set; did you mean {suggested}?")]
    HostBitsSet {
        /// The prefix as written.
        given: IpNet,
        /// The network it lies in.
        suggested: IpNet,
    },
    /// An `icmp` endpoint with an IPv6 address, or an `icmpv6` one with an IPv4 address.
    #[error(
        "protocol {} needs an {} address, but {address} is {}",
        protocol.name(),
        family_name(*protocol == Protocol::Icmpv6),
        family_name(matches!(address, IpNet::V6(_)))
    )]
    WrongFamily {
        /// `Icmp` or `Icmpv6`.
        protocol: Protocol,
        /// The address.
        address: IpNet,
    },
    /// An agreement id outside `u32`.
    #[error("agreement id {value} is out of range 0-4294967295")]
    AgreementIdOutOfRange {
        /// The number as written.
        value: i64,
    },
    /// A VLAN outside 1-4094.
    #[error("VLAN {value} is out of range 1-4094")]
    VlanOutOfRange {
        /// The number as written.
        value: i64,
    },
    /// An agreement state that is not one of the four.
    #[error("unknown state {text:?}; expected one of requested, approved, rejected, revoked")]
    UnknownState {
        /// The state as written.
        text: String,
    },
    /// An expiry that is not a date `YYYY-MM-DD`.
    #[error("{text:?} is not a valid date (YYYY-MM-DD)")]
    BadDate {
        /// The text as written.
        text: String,
    },
    /// A service without endpoints.
    #[error("a service needs at least one endpoint")]
    NoEndpoints,
    /// A client without prefixes.
    #[error("a client needs at least one prefix")]
    NoPrefixes,
    /// An endpoint equal to an earlier one of the same service (address, protocol and ports,
    /// after aliases are resolved and ports normalised).
    #[error(
        "duplicate endpoint {endpoint}: the same address, protocol and ports as endpoint[{first}]; remove one"
    )]
    DuplicateEndpoint {
        /// The endpoint, `203.0.113.10/32 tcp 443`.
        endpoint: String,
        /// Index of the earlier endpoint.
        first: usize,
    },
    /// A prefix listed twice by one client.
    #[error(
        "duplicate prefix {prefix}: prefixes[{index}] is the same as prefixes[{first}]; remove one"
    )]
    DuplicatePrefix {
        /// The prefix.
        prefix: IpNet,
        /// Index of the repeat in `prefixes`.
        index: usize,
        /// Index of the first one.
        first: usize,
    },
}

/// `; did you mean "x"?` or nothing.
fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!("; did you mean {s:?}?"))
}

const fn family_name(v6: bool) -> &'static str {
    if v6 { "IPv6" } else { "IPv4" }
}

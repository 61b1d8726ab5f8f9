//! The policy model. [`PolicyDraft`] holds a policy's parts as anyone may assemble them (the
//! database, a generator, a test); [`Policy`] is a draft that passed validation, with every
//! reference resolved, every value checked and port sets normalised. A `Policy` comes only out
//! of the validator: the parsers, or [`PolicyDraft::validate`]. It reads like its draft
//! (`Deref`); to change one, take its draft, edit it and validate again.

use chrono::NaiveDate;
use ipnet::IpNet;

/// Transport protocol of an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (6); has ports.
    Tcp,
    /// UDP (17); has ports.
    Udp,
    /// SCTP (132); has ports.
    Sctp,
    /// ICMP (1); IPv4 endpoints only, no ports.
    Icmp,
    /// ICMPv6 (58); IPv6 endpoints only, no ports.
    Icmpv6,
    /// Any protocol; no ports.
    Any,
}

impl Protocol {
    /// IP protocol number, `None` for `Any`.
    pub const fn number(self) -> Option<u8> {
        match self {
            Self::Tcp => Some(6),
            Self::Udp => Some(17),
            Self::Sctp => Some(132),
            Self::Icmp => Some(1),
            Self::Icmpv6 => Some(58),
            Self::Any => None,
        }
    }

    /// Whether endpoints of this protocol carry port sets.
    pub const fn has_ports(self) -> bool {
        matches!(self, Self::Tcp | Self::Udp | Self::Sctp)
    }

    /// The policy-file spelling.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
            Self::Icmp => "icmp",
            Self::Icmpv6 => "icmpv6",
            Self::Any => "any",
        }
    }
}

/// An inclusive port range, `lo <= hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    /// First port.
    pub lo: u16,
    /// Last port.
    pub hi: u16,
}

/// `443` or `8000-8100`, as the policy file writes ports.
impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

impl PortRange {
    /// Every port.
    pub const ALL: Self = Self {
        lo: 0,
        hi: u16::MAX,
    };

    /// Whether `port` lies in the range.
    pub const fn contains(self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }
}

/// An organisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Organisation {
    /// Stable key.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// A named port set of one protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortAlias {
    /// The alias name.
    pub name: String,
    /// tcp, udp or sctp.
    pub protocol: Protocol,
    /// The ports, resolved to ranges.
    pub ports: Vec<PortRange>,
}

/// One endpoint of a service.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Address or prefix (host bits clear).
    pub address: IpNet,
    /// Protocol.
    pub protocol: Protocol,
    /// Port ranges, aliases resolved; empty means every port.
    pub ports: Vec<PortRange>,
}

/// A service offered by an organisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// Stable key.
    pub id: String,
    /// Owning organisation id.
    pub organisation: String,
    /// Display name.
    pub name: String,
    /// At least one endpoint.
    pub endpoints: Vec<Endpoint>,
}

/// A client: source prefixes of one organisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// Stable key.
    pub id: String,
    /// Owning organisation id.
    pub organisation: String,
    /// Source prefixes (host bits clear).
    pub prefixes: Vec<IpNet>,
}

/// Agreement lifecycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AgreementState {
    /// Asked for, not yet decided.
    Requested,
    /// In force (unless expired).
    Approved,
    /// Refused.
    Rejected,
    /// Withdrawn.
    Revoked,
}

impl AgreementState {
    /// The policy-file spelling.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Revoked => "revoked",
        }
    }
}

/// An agreement: a client may reach a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agreement {
    /// Unique, stable id; counters are kept per id.
    pub id: u32,
    /// Client id.
    pub client: String,
    /// Service id.
    pub service: String,
    /// State.
    pub state: AgreementState,
    /// In force while today's UTC date is before this date.
    pub expires: Option<NaiveDate>,
    /// VLAN 1-4094, or any VLAN (and untagged) when `None`.
    pub vlan: Option<u16>,
}

impl Agreement {
    /// Whether the agreement is in force on `today` (a UTC date).
    pub fn in_force(&self, today: NaiveDate) -> bool {
        self.state == AgreementState::Approved && self.expires.is_none_or(|e| today < e)
    }
}

/// One entry of the infrastructure allow list: traffic to or from `prefix` (with the protocol
/// and, for tcp/udp/sctp, a source or destination port in `ports`) always passes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InfraEntry {
    /// The router's management network or a routing peer.
    pub prefix: IpNet,
    /// Protocol (`Any` by default).
    pub protocol: Protocol,
    /// Port ranges; empty means every port.
    pub ports: Vec<PortRange>,
}

/// A policy's parts, unchecked: what the database, a generator or a test assembles.
/// [`PolicyDraft::validate`] checks it with the rules of the policy file and gives a [`Policy`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyDraft {
    /// Organisations.
    pub organisations: Vec<Organisation>,
    /// Port aliases.
    pub port_aliases: Vec<PortAlias>,
    /// Services.
    pub services: Vec<Service>,
    /// Clients.
    pub clients: Vec<Client>,
    /// Agreements.
    pub agreements: Vec<Agreement>,
    /// Infrastructure allow list (`[[infrastructure]]`, docs/semantics.md).
    pub infrastructure: Vec<InfraEntry>,
}

/// A whole validated policy: only the validator makes one (`Default` is the empty policy,
/// which is valid). Its parts are read through `Deref` to [`PolicyDraft`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy(PolicyDraft);

impl std::ops::Deref for Policy {
    type Target = PolicyDraft;

    fn deref(&self) -> &PolicyDraft {
        &self.0
    }
}

impl Policy {
    /// Wraps a draft the validator has just accepted (the validator's own exit).
    pub(super) const fn validated(draft: PolicyDraft) -> Self {
        Self(draft)
    }

    /// The policy's parts, to edit (and validate again).
    pub fn into_draft(self) -> PolicyDraft {
        self.0
    }

    /// The same policy in export order: organisations, services and clients sorted by id,
    /// port aliases by name (byte order of the UTF-8 text), agreements by id; endpoints, client
    /// prefixes and infrastructure entries in the order they were written. Reordering keeps
    /// every rule, so the result needs no second validation.
    #[must_use]
    pub fn canonical(&self) -> Self {
        let mut p = self.0.clone();
        p.organisations.sort_by(|a, b| a.id.cmp(&b.id));
        p.port_aliases.sort_by(|a, b| a.name.cmp(&b.name));
        p.services.sort_by(|a, b| a.id.cmp(&b.id));
        p.clients.sort_by(|a, b| a.id.cmp(&b.id));
        p.agreements.sort_by_key(|a| a.id);
        Self(p)
    }
}

impl PolicyDraft {
    /// The agreements in force on `today`, each with its client and service (an agreement
    /// naming a missing one is left out: validation refuses those).
    pub fn in_force_with_parties(&self, today: NaiveDate) -> Vec<(&Agreement, &Client, &Service)> {
        let services: std::collections::HashMap<&str, &Service> =
            self.services.iter().map(|s| (s.id.as_str(), s)).collect();
        let clients: std::collections::HashMap<&str, &Client> =
            self.clients.iter().map(|c| (c.id.as_str(), c)).collect();
        (self.agreements.iter())
            .filter(|a| a.in_force(today))
            .filter_map(|a| {
                let c = clients.get(a.client.as_str())?;
                let s = services.get(a.service.as_str())?;
                Some((a, *c, *s))
            })
            .collect()
    }
}

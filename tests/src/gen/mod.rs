//! Seeded random generators for property tests: policies, frames and mutations.
//!
//! Every address generated is a documentation address (192.0.2.0/24, 198.51.100.0/24,
//! 203.0.113.0/24, 2001:db8::/32). Frames are built with `etherparse` header types; layouts
//! etherparse has no builder for (three VLAN tags, long IPv6 extension header chains, SCTP,
//! broken length fields) are assembled from its header structs or by hand.
//!
//! Frames are never shorter than 14 bytes (BPF_PROG_TEST_RUN refuses them) and never longer
//! than ~1,000 bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::{Days, NaiveDate};
use etherparse::{
    EtherType, Ethernet2Header, Icmpv4Type, Icmpv6Type, IpAuthHeader, IpFragOffset, IpNumber,
    Ipv4Header, Ipv4Options, Ipv6FlowLabel, Ipv6Header, Ipv6RawExtHeader, SingleVlanHeader,
    TcpHeader, UdpHeader, VlanId, VlanPcp,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rand::Rng;
use rand::seq::SliceRandom;
use sdn_loader::policy::{
    Agreement, AgreementState, Client, Endpoint, InfraEntry, Organisation, Policy, PolicyDraft,
    PortAlias, PortRange, Protocol, Service,
};

mod builder;
mod frames;
mod policies;

pub use builder::*;
pub use frames::*;
pub use policies::*;

// ---------------------------------------------------------------------------------------------
// Documentation address space
// ---------------------------------------------------------------------------------------------

/// The IPv4 documentation networks.
pub fn doc_v4() -> [Ipv4Net; 3] {
    [
        Ipv4Net::new(Ipv4Addr::new(192, 0, 2, 0), 24).unwrap(),
        Ipv4Net::new(Ipv4Addr::new(198, 51, 100, 0), 24).unwrap(),
        Ipv4Net::new(Ipv4Addr::new(203, 0, 113, 0), 24).unwrap(),
    ]
}

/// The IPv6 documentation network.
pub fn doc_v6() -> Ipv6Net {
    Ipv6Net::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32).unwrap()
}

/// Whether an address is a documentation address.
pub fn is_documentation(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => doc_v4().iter().any(|n| n.contains(&a)),
        IpAddr::V6(a) => doc_v6().contains(&a),
    }
}

/// Whether a prefix lies inside the documentation space.
pub fn is_documentation_net(net: &IpNet) -> bool {
    match net {
        IpNet::V4(n) => doc_v4().iter().any(|d| d.contains(n)),
        IpNet::V6(n) => doc_v6().contains(n),
    }
}

/// A fixed "today" for reproducible tests.
pub fn fixed_today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 6, 15).unwrap()
}

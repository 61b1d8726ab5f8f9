//! Self-test of the reference model (tests/src/oracle.rs) and the generators
//! (tests/src/gen.rs): one hand-written case per semantic clause, then variety checks on
//! generated policies and frames. No kernel needed.
//!
//! One module for the clauses and one for the generators; this file holds the fixtures.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

use sdn_tests as support;

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use chrono::{Days, NaiveDate};
use ipnet::IpNet;
use rand::SeedableRng;
use rand::rngs::StdRng;
use sdn_loader::policy::{
    Agreement, AgreementState, Client, Endpoint, InfraEntry, Organisation, Policy, PolicyDraft,
    PortRange, Protocol, Service,
};
use support::generate::{
    Ext, FrameGen, Packet, arp_frame, fixed_today, frame_with_tags, is_documentation,
    is_documentation_net, mutate, random_frame, random_policy, tcp,
};
use support::oracle::{Direction, Expected, Oracle, reason};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn today() -> NaiveDate {
    fixed_today()
}

fn ports(list: &[(u16, u16)]) -> Vec<PortRange> {
    list.iter().map(|&(lo, hi)| PortRange { lo, hi }).collect()
}

fn ep(address: &str, protocol: Protocol, p: &[(u16, u16)]) -> Endpoint {
    Endpoint {
        address: net(address),
        protocol,
        ports: ports(p),
    }
}

/// o1 ("One", the clients' organisation) and o2 ("Two", the services').
fn organisations() -> Vec<Organisation> {
    vec![
        Organisation {
            id: "o1".into(),
            name: "One".into(),
        },
        Organisation {
            id: "o2".into(),
            name: "Two".into(),
        },
    ]
}

fn client(id: &str, prefixes: &[&str]) -> Client {
    Client {
        id: id.into(),
        organisation: "o1".into(),
        prefixes: prefixes.iter().map(|p| net(p)).collect(),
    }
}

fn service(id: &str, endpoints: Vec<Endpoint>) -> Service {
    Service {
        id: id.into(),
        organisation: "o2".into(),
        name: id.into(),
        endpoints,
    }
}

fn agreement(id: u32, client: &str, service: &str) -> Agreement {
    Agreement {
        id,
        client: client.into(),
        service: service.into(),
        state: AgreementState::Approved,
        expires: None,
        vlan: None,
    }
}

/// c1 = 198.51.100.0/24 + 2001:db8:200::/48, c2 = 198.51.100.128/25 (nested in c1),
/// c3 = 192.0.2.0/28. web: tcp 443 / tcp 8000-8100 (v6) / icmp / icmpv6; dns: udp 53;
/// open: any. Agreements: 20 c1->web, 10 c2->web, 30 c1->dns (VLAN 100), 40 c3->open,
/// 50 c3->web revoked, 60 c3->web expired today, 70 c3->dns expiring tomorrow.
/// Infrastructure: 192.0.2.200/32 tcp 22.
fn main_policy() -> Policy {
    let mut a30 = agreement(30, "c1", "dns");
    a30.vlan = Some(100);
    let mut a50 = agreement(50, "c3", "web");
    a50.state = AgreementState::Revoked;
    let mut a60 = agreement(60, "c3", "web");
    a60.expires = Some(today());
    let mut a70 = agreement(70, "c3", "dns");
    a70.expires = today().checked_add_days(Days::new(1));
    PolicyDraft {
        organisations: organisations(),
        port_aliases: Vec::new(),
        services: vec![
            service(
                "web",
                vec![
                    ep("203.0.113.10/32", Protocol::Tcp, &[(443, 443)]),
                    ep("2001:db8:10::/64", Protocol::Tcp, &[(8000, 8100)]),
                    ep("203.0.113.30/32", Protocol::Icmp, &[]),
                    ep("2001:db8:10::/64", Protocol::Icmpv6, &[]),
                ],
            ),
            service(
                "dns",
                vec![ep("203.0.113.53/32", Protocol::Udp, &[(53, 53)])],
            ),
            service(
                "open",
                vec![
                    ep("203.0.113.64/26", Protocol::Any, &[]),
                    ep("2001:db8:64::/64", Protocol::Any, &[]),
                ],
            ),
        ],
        clients: vec![
            client("c1", &["198.51.100.0/24", "2001:db8:200::/48"]),
            client("c2", &["198.51.100.128/25"]),
            client("c3", &["192.0.2.0/28"]),
        ],
        // deliberately not sorted by id
        agreements: vec![
            a70,
            agreement(20, "c1", "web"),
            a60,
            agreement(40, "c3", "open"),
            agreement(10, "c2", "web"),
            a50,
            a30,
        ],
        infrastructure: vec![InfraEntry {
            prefix: net("192.0.2.200/32"),
            protocol: Protocol::Tcp,
            ports: ports(&[(22, 22)]),
        }],
    }
    .validate()
    .unwrap()
}

fn oracle() -> Oracle {
    Oracle::new(&main_policy(), today())
}

fn forward(id: u32, reason: &'static str, transaction: bool) -> Expected {
    Expected {
        pass: true,
        agreement: Some(id),
        direction: Some(Direction::Forward),
        transaction,
        reason,
    }
}

fn reply(id: u32, reason: &'static str) -> Expected {
    Expected {
        pass: true,
        agreement: Some(id),
        direction: Some(Direction::Reply),
        transaction: false,
        reason,
    }
}

fn dropped(reason: &'static str) -> Expected {
    Expected {
        pass: false,
        agreement: None,
        direction: None,
        transaction: false,
        reason,
    }
}

fn passed_plain(reason: &'static str) -> Expected {
    Expected {
        pass: true,
        agreement: None,
        direction: None,
        transaction: false,
        reason,
    }
}

fn syn(src: &str, dst: &str, sport: u16, dport: u16) -> Packet {
    Packet::tcp(ip(src), ip(dst), sport, dport, tcp::SYN)
}

const CLIENT: &str = "198.51.100.7";
const WEB: &str = "203.0.113.10";

mod clauses;
mod generators;

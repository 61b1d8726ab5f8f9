//! Self-test of the reference model (tests/support/oracle.rs) and the generators
//! (tests/support/gen.rs): one hand-written case per semantic clause, then variety checks on
//! generated policies and frames. No kernel needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use chrono::{Days, NaiveDate};
use ipnet::IpNet;
use rand::SeedableRng;
use rand::rngs::StdRng;
use sdn_loader::policy::{
    Agreement, AgreementState, Client, Endpoint, InfraEntry, Organisation, Policy, PortRange,
    Protocol, Service,
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
    Policy {
        organisations: vec![
            Organisation {
                id: "o1".into(),
                name: "One".into(),
            },
            Organisation {
                id: "o2".into(),
                name: "Two".into(),
            },
        ],
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

// ---------------------------------------------------------------------------------------------
// Clauses
// ---------------------------------------------------------------------------------------------

#[test]
fn reason_names_match_sdn_common() {
    let known: HashSet<&str> = (0..sdn_common::reason::COUNT)
        .map(sdn_common::reason::name)
        .collect();
    for r in reason::ALL {
        assert!(
            known.contains(r),
            "oracle reason {r:?} is not an sdn_common reason name"
        );
    }
}

#[test]
fn forward_pass_and_port_miss() {
    let mut o = oracle();
    assert_eq!(
        o.judge(&syn(CLIENT, WEB, 40000, 443).build()),
        forward(20, reason::FORWARD, true)
    );
    assert_eq!(
        o.judge(&syn(CLIENT, WEB, 40000, 444).build()),
        dropped(reason::NO_AGREEMENT)
    );
    assert_eq!(
        o.judge(&syn(CLIENT, "203.0.113.11", 40000, 443).build()),
        dropped(reason::NO_AGREEMENT)
    );
    // wrong protocol on the right port
    assert_eq!(
        o.judge(&Packet::udp(ip(CLIENT), ip(WEB), 40000, 443).build()),
        dropped(reason::NO_AGREEMENT)
    );
    // IPv6, port range edges
    for (port, ok) in [(7999, false), (8000, true), (8100, true), (8101, false)] {
        let f = syn("2001:db8:200::5", "2001:db8:10::1", 40000, port).build();
        let want = if ok {
            forward(20, reason::FORWARD, true)
        } else {
            dropped(reason::NO_AGREEMENT)
        };
        assert_eq!(o.judge(&f), want, "port {port}");
    }
}

#[test]
fn reply_and_reply_syn() {
    let mut o = oracle();
    let synack = Packet::tcp(ip(WEB), ip(CLIENT), 443, 40000, tcp::SYN | tcp::ACK).build();
    assert_eq!(o.judge(&synack), reply(20, reason::REPLY));
    assert_eq!(o.judge(&synack), reply(20, reason::ESTABLISHED_REPLY));
    // a SYN from the service on the established reply flow
    assert_eq!(
        o.judge(&syn(WEB, CLIENT, 443, 40000).build()),
        dropped(reason::REPLY_SYN)
    );

    let mut o = oracle();
    assert_eq!(
        o.judge(&syn(WEB, CLIENT, 443, 40000).build()),
        dropped(reason::REPLY_SYN)
    );
    // the reply-syn drop created no entry: an ACK is judged afresh
    let ack = Packet::tcp(ip(WEB), ip(CLIENT), 443, 40000, tcp::ACK).build();
    assert_eq!(o.judge(&ack), reply(20, reason::REPLY));
    // source port outside the endpoint's ports
    let ack = Packet::tcp(ip(WEB), ip(CLIENT), 80, 40000, tcp::ACK).build();
    assert_eq!(o.judge(&ack), dropped(reason::NO_AGREEMENT));
}

#[test]
fn vlan_rule() {
    let mut o = oracle();
    let dns = || Packet::udp(ip(CLIENT), ip("203.0.113.53"), 5353, 53);
    assert_eq!(o.judge(&dns().build()), dropped(reason::NO_AGREEMENT));
    assert_eq!(
        o.judge(&dns().vlan(0x8100, 200).build()),
        dropped(reason::NO_AGREEMENT)
    );
    assert_eq!(
        o.judge(&dns().vlan(0x8100, 100).build()),
        forward(30, reason::FORWARD, true)
    );
    // the innermost non-zero VID counts: VID 0 is a priority tag
    let mut o = oracle();
    assert_eq!(
        o.judge(&dns().vlan(0x88a8, 100).vlan(0x8100, 0).build()),
        forward(30, reason::FORWARD, true)
    );
    let mut o = oracle();
    assert_eq!(
        o.judge(&dns().vlan(0x88a8, 0).vlan(0x9100, 100).build()),
        forward(30, reason::FORWARD, true)
    );
    let mut o = oracle();
    assert_eq!(
        o.judge(&dns().vlan(0x88a8, 100).vlan(0x8100, 200).build()),
        dropped(reason::NO_AGREEMENT)
    );
    assert_eq!(
        o.judge(&dns().vlan(0x8100, 0).build()),
        dropped(reason::NO_AGREEMENT)
    );
    // agreements without a VLAN match tagged frames too
    assert_eq!(
        o.judge(&syn(CLIENT, WEB, 1, 443).vlan(0x8100, 999).build()),
        forward(20, reason::FORWARD, true)
    );
    // the flow key includes the VLAN: the same tuple on another VLAN is a new flow
    assert_eq!(
        o.judge(&syn(CLIENT, WEB, 1, 443).vlan(0x8100, 998).build()),
        forward(20, reason::FORWARD, true)
    );
    assert_eq!(
        o.judge(&syn(CLIENT, WEB, 1, 443).vlan(0x8100, 999).build()),
        forward(20, reason::ESTABLISHED_FORWARD, false)
    );
}

#[test]
fn lowest_id_wins_with_nested_prefixes() {
    let mut o = oracle();
    // 198.51.100.200 is in c1 (agreement 20) and c2 (agreement 10)
    assert_eq!(
        o.judge(&syn("198.51.100.200", WEB, 40000, 443).build()),
        forward(10, reason::FORWARD, true)
    );
    assert_eq!(
        o.judge(&syn("198.51.100.127", WEB, 40000, 443).build()),
        forward(20, reason::FORWARD, true)
    );
    assert_eq!(
        o.judge(&syn("198.51.100.128", WEB, 40000, 443).build()),
        forward(10, reason::FORWARD, true)
    );
    let ack = Packet::tcp(ip(WEB), ip("198.51.100.255"), 443, 40000, tcp::ACK).build();
    assert_eq!(o.judge(&ack), reply(10, reason::REPLY));
}

#[test]
fn forward_beats_reply() {
    // 5: b (203.0.113.0/24) -> s2 (198.51.100.0/24 tcp, all ports); 20: a -> s1 (203.0.113.10 tcp 443)
    let policy = Policy {
        organisations: vec![Organisation {
            id: "o1".into(),
            name: "One".into(),
        }],
        port_aliases: Vec::new(),
        services: vec![
            service(
                "s1",
                vec![ep("203.0.113.10/32", Protocol::Tcp, &[(443, 443)])],
            ),
            service("s2", vec![ep("198.51.100.0/24", Protocol::Tcp, &[])]),
        ],
        clients: vec![
            client("a", &["198.51.100.0/24"]),
            client("b", &["203.0.113.0/24"]),
        ],
        agreements: vec![agreement(20, "a", "s1"), agreement(5, "b", "s2")],
        infrastructure: Vec::new(),
    };
    let mut o = Oracle::new(&policy, today());
    // forward under 20 and reply under 5: forward wins although 5 < 20
    let ack = Packet::tcp(ip(CLIENT), ip(WEB), 40000, 443, tcp::ACK).build();
    assert_eq!(o.judge(&ack), forward(20, reason::FORWARD, false));
    // a SYN is not refused as a reply SYN when it also matches forward
    assert_eq!(
        o.judge(&syn(CLIENT, WEB, 40001, 443).build()),
        forward(20, reason::FORWARD, true)
    );
    // the other way round it is forward under 5
    assert_eq!(
        o.judge(&syn(WEB, CLIENT, 443, 40000).build()),
        forward(5, reason::FORWARD, true)
    );
}

#[test]
fn icmp_echo_directions() {
    let mut o = oracle();
    let icmp_ep = "203.0.113.30";
    assert_eq!(
        o.judge(&Packet::echo(ip(CLIENT), ip(icmp_ep), true, 7).build()),
        forward(20, reason::FORWARD, true)
    );
    assert_eq!(
        o.judge(&Packet::echo(ip(icmp_ep), ip(CLIENT), false, 7).build()),
        reply(20, reason::REPLY)
    );
    let mut o = oracle();
    // a request from the service, a reply from the client: no
    assert_eq!(
        o.judge(&Packet::echo(ip(icmp_ep), ip(CLIENT), true, 7).build()),
        dropped(reason::NO_AGREEMENT)
    );
    assert_eq!(
        o.judge(&Packet::echo(ip(CLIENT), ip(icmp_ep), false, 7).build()),
        dropped(reason::NO_AGREEMENT)
    );
    // echo to a tcp endpoint: no
    assert_eq!(
        o.judge(&Packet::echo(ip(CLIENT), ip(WEB), true, 7).build()),
        dropped(reason::NO_AGREEMENT)
    );
    // IPv6 echo under the icmpv6 endpoint
    let f = Packet::echo(ip("2001:db8:200::1"), ip("2001:db8:10::9"), true, 9).build();
    assert_eq!(o.judge(&f), forward(20, reason::FORWARD, true));
    // the echo identifier is part of the flow key
    assert_eq!(o.judge(&f), forward(20, reason::ESTABLISHED_FORWARD, false));
    let f = Packet::echo(ip("2001:db8:200::1"), ip("2001:db8:10::9"), true, 10).build();
    assert_eq!(o.judge(&f), forward(20, reason::FORWARD, true));
    // other ICMP types only under `any` endpoints, both ways
    let ts = |s: &str, d: &str| Packet::icmp(ip(s), ip(d), 13, 0, [0; 4]).build();
    assert_eq!(o.judge(&ts(CLIENT, icmp_ep)), dropped(reason::NO_AGREEMENT));
    assert_eq!(
        o.judge(&ts("192.0.2.5", "203.0.113.70")),
        forward(40, reason::FORWARD, true)
    );
    assert_eq!(
        o.judge(&ts("203.0.113.70", "192.0.2.5")),
        reply(40, reason::REPLY)
    );
    // echo under `any`: request forward only, reply reply only
    assert_eq!(
        o.judge(&Packet::echo(ip("203.0.113.70"), ip("192.0.2.5"), true, 1).build()),
        dropped(reason::NO_AGREEMENT)
    );
    assert_eq!(
        o.judge(&Packet::echo(ip("203.0.113.70"), ip("192.0.2.5"), false, 1).build()),
        reply(40, reason::REPLY)
    );
    // ICMPv6 protocol number in IPv4 is "another protocol": only `any` endpoints, no transport check
    let f = Packet::raw(ip("192.0.2.5"), ip("203.0.113.70"), 58).build();
    assert_eq!(o.judge(&f), forward(40, reason::FORWARD, true));
    let f = Packet::raw(ip(CLIENT), ip(icmp_ep), 58).build();
    assert_eq!(o.judge(&f), dropped(reason::NO_AGREEMENT));
}

fn quote(p: &Packet, transport_bytes: usize) -> Vec<u8> {
    let mut q = p.ip_bytes();
    q.truncate(p.l4_offset() - p.l3_offset() + transport_bytes);
    q
}

#[test]
fn icmp_error_judged_by_quoted_packet() {
    let mut o = oracle();
    let router = "192.0.2.99";
    // quoted: a forward packet (a SYN: flags do not matter) -> the error counts as a reply
    let q = quote(&syn(CLIENT, WEB, 40000, 443), 8);
    let e = Packet::icmp_error(ip(router), ip(CLIENT), 3, 4, q).build();
    assert_eq!(o.judge(&e), reply(20, reason::ICMP_ERROR));
    // quoted: a reply packet, even a SYN (no SYN exception) -> counts as forward
    let q = quote(&syn(WEB, CLIENT, 443, 40000), 8);
    let e = Packet::icmp_error(ip(router), ip(WEB), 11, 0, q).build();
    assert_eq!(o.judge(&e), forward(20, reason::ICMP_ERROR, false));
    // quoted packet without an agreement
    let q = quote(&syn(CLIENT, WEB, 40000, 444), 8);
    assert_eq!(
        o.judge(&Packet::icmp_error(ip(router), ip(CLIENT), 3, 1, q).build()),
        dropped(reason::ICMP_ERROR_NO_AGREEMENT)
    );
    // quoted transport cut to 4 bytes; quoted IP header cut; quoted IHL < 5
    let q = quote(&syn(CLIENT, WEB, 40000, 443), 4);
    assert_eq!(
        o.judge(&Packet::icmp_error(ip(router), ip(CLIENT), 3, 1, q).build()),
        dropped(reason::ICMP_ERROR_MALFORMED)
    );
    let mut q = quote(&syn(CLIENT, WEB, 40000, 443), 8);
    q.truncate(19);
    assert_eq!(
        o.judge(&Packet::icmp_error(ip(router), ip(CLIENT), 3, 1, q).build()),
        dropped(reason::ICMP_ERROR_MALFORMED)
    );
    let mut q = quote(&syn(CLIENT, WEB, 40000, 443), 8);
    q[0] = 0x44;
    assert_eq!(
        o.judge(&Packet::icmp_error(ip(router), ip(CLIENT), 3, 1, q).build()),
        dropped(reason::ICMP_ERROR_MALFORMED)
    );
    // the whole quoted packet is fine too; quoted length fields are not checked
    let q = syn(CLIENT, WEB, 40000, 443)
        .with_payload(vec![1; 30])
        .ip_bytes();
    assert_eq!(
        o.judge(&Packet::icmp_error(ip(router), ip(CLIENT), 12, 0, q).build()),
        reply(20, reason::ICMP_ERROR)
    );
    // ICMP errors touch no flow
    assert_eq!(o.flow_count(), 0);
    // quoted echo request -> forward only; quoted echo reply from the client -> nothing
    let q = quote(&Packet::echo(ip(CLIENT), ip("203.0.113.30"), true, 3), 8);
    assert_eq!(
        o.judge(&Packet::icmp_error(ip(router), ip(CLIENT), 3, 0, q).build()),
        reply(20, reason::ICMP_ERROR)
    );
    let q = quote(&Packet::echo(ip(CLIENT), ip("203.0.113.30"), false, 3), 8);
    assert_eq!(
        o.judge(&Packet::icmp_error(ip(router), ip(CLIENT), 3, 0, q).build()),
        dropped(reason::ICMP_ERROR_NO_AGREEMENT)
    );
    // the outer VLAN counts for the quoted packet
    let q = quote(&Packet::udp(ip(CLIENT), ip("203.0.113.53"), 5353, 53), 8);
    let e = Packet::icmp_error(ip(router), ip(CLIENT), 3, 3, q);
    assert_eq!(
        o.judge(&e.build()),
        dropped(reason::ICMP_ERROR_NO_AGREEMENT)
    );
    assert_eq!(
        o.judge(&e.vlan(0x8100, 100).build()),
        reply(30, reason::ICMP_ERROR)
    );
    // IPv6 packet too big, quoted packet with extension headers
    let inner = syn("2001:db8:200::5", "2001:db8:10::1", 40000, 8050)
        .with_exts(vec![Ext::HopByHop(0), Ext::DestOpts(1)]);
    let e = Packet::icmp_error(
        ip("2001:db8:ffff::1"),
        ip("2001:db8:200::5"),
        2,
        0,
        quote(&inner, 8),
    )
    .build();
    assert_eq!(o.judge(&e), reply(20, reason::ICMP_ERROR));
    // a quoted non-first fragment cannot be judged
    let inner =
        syn("2001:db8:200::5", "2001:db8:10::1", 40000, 8050).with_exts(vec![Ext::Fragment {
            offset: 3,
            more: true,
            id: 1,
        }]);
    let e = Packet::icmp_error(
        ip("2001:db8:ffff::1"),
        ip("2001:db8:200::5"),
        2,
        0,
        quote(&inner, 8),
    )
    .build();
    assert_eq!(o.judge(&e), dropped(reason::ICMP_ERROR_MALFORMED));
    // an ICMP error needs 8 bytes of ICMP header itself
    let mut e = Packet::icmp_error(ip(router), ip(CLIENT), 3, 1, Vec::new()).ip_bytes();
    e.truncate(20 + 4);
    e[2..4].copy_from_slice(&24u16.to_be_bytes());
    assert_eq!(
        o.judge(&frame_with_tags(&[], 0x0800, &e, false)),
        dropped(reason::MALFORMED_TRANSPORT)
    );
}

#[test]
fn neighbour_discovery_always_passes() {
    let mut o = Oracle::new(&Policy::default(), today());
    for ty in 133..=137 {
        let f = Packet::icmp(
            ip("2001:db8:ffff::1"),
            ip("2001:db8:ffff::2"),
            ty,
            0,
            [0; 4],
        )
        .build();
        assert_eq!(o.judge(&f), passed_plain(reason::NEIGHBOUR_DISCOVERY));
    }
    // type 135 in ICMPv4 is nothing special
    let f = Packet::icmp(ip("192.0.2.1"), ip("192.0.2.2"), 135, 0, [0; 4]).build();
    assert_eq!(o.judge(&f), dropped(reason::NO_AGREEMENT));
}

#[test]
fn fragments_follow_their_first() {
    for v6 in [false, true] {
        let (src, dst, port) = if v6 {
            ("2001:db8:200::5", "2001:db8:10::1", 8050)
        } else {
            (CLIENT, WEB, 443)
        };
        let mut p = syn(src, dst, 40000, port).with_payload(vec![7; 40]);
        p.ident = 0x77;
        let frags = p.fragments(24, 0);
        assert_eq!(frags.len(), 3);
        // in order
        let mut o = oracle();
        assert_eq!(o.judge(&frags[0]), forward(20, reason::FORWARD, true));
        assert_eq!(o.judge(&frags[1]), forward(20, reason::FRAGMENT, false));
        assert_eq!(o.judge(&frags[2]), forward(20, reason::FRAGMENT, false));
        // later before first
        let mut o = oracle();
        assert_eq!(o.judge(&frags[2]), dropped(reason::FRAGMENT_WITHOUT_HEAD));
        assert_eq!(o.judge(&frags[0]), forward(20, reason::FORWARD, true));
        assert_eq!(o.judge(&frags[2]), forward(20, reason::FRAGMENT, false));
        // a repeated first fragment is a flow-table hit and refreshes the entry
        assert_eq!(
            o.judge(&frags[0]),
            forward(20, reason::ESTABLISHED_FORWARD, false)
        );
        assert_eq!(o.judge(&frags[1]), forward(20, reason::FRAGMENT, false));
        // first dropped
        let bad_port = if v6 { 8101 } else { 444 };
        let mut bad = syn(src, dst, 40000, bad_port).with_payload(vec![7; 40]);
        bad.ident = 0x78;
        let frags = bad.fragments(24, 0);
        assert_eq!(o.judge(&frags[0]), dropped(reason::NO_AGREEMENT));
        assert_eq!(o.judge(&frags[1]), dropped(reason::FRAGMENT_OF_DROPPED));
        // a reply's fragments count as reply
        let mut r = Packet::tcp(ip(dst), ip(src), port, 40000, tcp::ACK).with_payload(vec![1; 40]);
        r.ident = 0x79;
        let frags = r.fragments(32, 0);
        assert_eq!(o.judge(&frags[0]), reply(20, reason::REPLY));
        assert_eq!(o.judge(&frags[1]), reply(20, reason::FRAGMENT));
    }
    // IPv6: the key protocol is the fragment header's next header (here a destination
    // options header inside the fragmentable part)
    let mut p = syn("2001:db8:200::5", "2001:db8:10::1", 40000, 8050)
        .with_exts(vec![Ext::HopByHop(0), Ext::DestOpts(0)])
        .with_payload(vec![3; 40]);
    p.ident = 0xdead_beef;
    let frags = p.fragments(32, 1);
    let mut o = oracle();
    assert_eq!(o.judge(&frags[0]), forward(20, reason::FORWARD, true));
    for f in &frags[1..] {
        assert_eq!(o.judge(f), forward(20, reason::FRAGMENT, false));
    }
    // a different id is another packet
    p.ident = 1;
    let other = p.fragments(32, 1);
    assert_eq!(o.judge(&other[1]), dropped(reason::FRAGMENT_WITHOUT_HEAD));
    // a single "atomic" fragment (offset 0, no MF) is no fragment at all
    let f = syn(CLIENT, WEB, 40002, 443).fragments(1000, 0);
    assert_eq!(f.len(), 1);
    assert_eq!(o.judge(&f[0]), forward(20, reason::FORWARD, true));
    assert_eq!(
        o.fragment_count(),
        1,
        "only the fragmented packet left an entry"
    );
}

#[test]
fn tiny_fragment() {
    for (src, dst, port) in [
        (CLIENT, WEB, 443),
        ("2001:db8:200::5", "2001:db8:10::1", 8050),
    ] {
        let mut o = oracle();
        let frags = syn(src, dst, 40000, port)
            .with_payload(vec![0; 16])
            .fragments(8, 0);
        assert_eq!(o.judge(&frags[0]), dropped(reason::TINY_FRAGMENT));
        assert_eq!(o.judge(&frags[1]), dropped(reason::FRAGMENT_OF_DROPPED));
        // UDP needs only 8 bytes
        let frags = Packet::udp(ip(src), ip(dst), 5353, 53)
            .with_payload(vec![0; 16])
            .fragments(8, 0);
        assert_eq!(o.judge(&frags[0]), dropped(reason::NO_AGREEMENT));
    }
    // the same short TCP header unfragmented is malformed-transport
    let mut o = oracle();
    let mut ipb = syn(CLIENT, WEB, 40000, 443).ip_bytes();
    ipb.truncate(20 + 8);
    ipb[2..4].copy_from_slice(&28u16.to_be_bytes());
    assert_eq!(
        o.judge(&frame_with_tags(&[], 0x0800, &ipb, true)),
        dropped(reason::MALFORMED_TRANSPORT)
    );
}

#[test]
fn non_ip_and_ethernet_limits() {
    let mut o = oracle();
    let arp = arp_frame(
        &[],
        "192.0.2.1".parse().unwrap(),
        "192.0.2.2".parse().unwrap(),
        false,
    );
    assert_eq!(o.judge(&arp), passed_plain(reason::NON_IP));
    let arp = arp_frame(
        &[(0x8100, 5), (0x8100, 6)],
        "192.0.2.1".parse().unwrap(),
        "192.0.2.2".parse().unwrap(),
        true,
    );
    assert_eq!(o.judge(&arp), passed_plain(reason::NON_IP));
    assert_eq!(o.judge(&arp[..13]), dropped(reason::TRUNCATED));
    // three tags, whatever is inside
    let three = syn(CLIENT, WEB, 1, 443)
        .vlan(0x88a8, 1)
        .vlan(0x8100, 2)
        .vlan(0x9100, 3)
        .build();
    assert_eq!(o.judge(&three), dropped(reason::TOO_MANY_VLAN_TAGS));
    let three = arp_frame(
        &[(0x8100, 0), (0x8100, 0), (0x8100, 0)],
        "192.0.2.1".parse().unwrap(),
        "192.0.2.2".parse().unwrap(),
        true,
    );
    assert_eq!(o.judge(&three), dropped(reason::TOO_MANY_VLAN_TAGS));
    // even when the third tag itself is cut off
    let two = syn(CLIENT, WEB, 1, 443)
        .vlan(0x88a8, 1)
        .vlan(0x8100, 2)
        .build();
    let mut f = two[..22].to_vec();
    f[20..22].copy_from_slice(&0x8100u16.to_be_bytes());
    assert_eq!(o.judge(&f), dropped(reason::TOO_MANY_VLAN_TAGS));
    // a tag cut short
    assert_eq!(o.judge(&two[..16]), dropped(reason::TRUNCATED));
    // IP header cut short
    assert_eq!(o.judge(&two[..18 + 4 + 19]), dropped(reason::TRUNCATED));
}

#[test]
fn ipv4_header_checks() {
    let mut o = oracle();
    let p = syn(CLIENT, WEB, 40000, 443);
    let good = p.build();
    let mut f = good.clone();
    f[14] = 0x44; // IHL 4
    assert_eq!(o.judge(&f), dropped(reason::MALFORMED_IPV4));
    let mut f = good.clone();
    f[14] = 0x4f; // IHL 15: 60 bytes, only 40 there
    assert_eq!(o.judge(&f), dropped(reason::TRUNCATED));
    let mut f = good.clone();
    f[16..18].copy_from_slice(&41u16.to_be_bytes()); // total length beyond the frame
    assert_eq!(o.judge(&f), dropped(reason::MALFORMED_IPV4));
    let mut f = good.clone();
    f[16..18].copy_from_slice(&19u16.to_be_bytes()); // shorter than the header
    assert_eq!(o.judge(&f), dropped(reason::MALFORMED_IPV4));
    let mut f = good.clone();
    f[16..18].copy_from_slice(&36u16.to_be_bytes()); // cuts the TCP header
    assert_eq!(o.judge(&f), dropped(reason::MALFORMED_TRANSPORT));
    // the version nibble is not checked
    let mut f = good.clone();
    f[14] = 0x65;
    assert_eq!(o.judge(&f), forward(20, reason::FORWARD, true));
    // Ethernet padding after the IP packet is ignored
    let mut padded = Packet::udp(ip("192.0.2.5"), ip("203.0.113.53"), 5353, 53);
    padded.pad_to_60 = true;
    let f = padded.build();
    assert_eq!(f.len(), 60);
    assert_eq!(o.judge(&f), forward(70, reason::FORWARD, true));
    // options
    let f = syn(CLIENT, WEB, 40001, 443)
        .with_v4_options(vec![1; 40])
        .build();
    assert_eq!(o.judge(&f), forward(20, reason::FORWARD, true));
    // TCP data offset < 5, and TCP options cut short
    let mut f = syn(CLIENT, WEB, 40002, 443).build();
    f[14 + 20 + 12] = 0x40;
    assert_eq!(o.judge(&f), dropped(reason::MALFORMED_TRANSPORT));
    let mut f = syn(CLIENT, WEB, 40002, 443).build();
    f[14 + 20 + 12] = 0x60;
    assert_eq!(o.judge(&f), dropped(reason::MALFORMED_TRANSPORT));
}

#[test]
fn ipv6_extension_headers() {
    let mut o = oracle();
    let eight = vec![
        Ext::HopByHop(0),
        Ext::DestOpts(0),
        Ext::Routing(1),
        Ext::Ah(1),
        Ext::DestOpts(2),
        Ext::Routing(0),
        Ext::Ah(0),
        Ext::Fragment {
            offset: 0,
            more: false,
            id: 5,
        },
    ];
    let p = syn("2001:db8:200::5", "2001:db8:10::1", 40000, 8050);
    let f = p.clone().with_exts(eight.clone()).build();
    assert_eq!(o.judge(&f), forward(20, reason::FORWARD, true));
    let mut nine = eight.clone();
    nine.push(Ext::DestOpts(0));
    let f = p.clone().with_exts(nine).build();
    assert_eq!(o.judge(&f), dropped(reason::TOO_MANY_EXTENSION_HEADERS));
    // an extension header longer than the packet
    let mut f = p.clone().with_exts(vec![Ext::HopByHop(0)]).build();
    f[14 + 41] = 40;
    assert_eq!(o.judge(&f), dropped(reason::TRUNCATED));
    // payload length beyond the frame
    let mut f = p.clone().build();
    let pl = u16::from_be_bytes([f[18], f[19]]) + 1;
    f[18..20].copy_from_slice(&pl.to_be_bytes());
    assert_eq!(o.judge(&f), dropped(reason::MALFORMED_IPV6));
    // payload length shorter: the TCP header is cut by the L3 end
    let mut f = p.clone().build();
    f[18..20].copy_from_slice(&19u16.to_be_bytes());
    assert_eq!(o.judge(&f), dropped(reason::MALFORMED_TRANSPORT));
    // header cut short
    let f = p.build();
    assert_eq!(o.judge(&f[..14 + 39]), dropped(reason::TRUNCATED));
}

#[test]
fn transactions() {
    let mut o = oracle();
    let s = syn(CLIENT, WEB, 40000, 443).build();
    assert_eq!(o.judge(&s), forward(20, reason::FORWARD, true));
    assert_eq!(
        o.judge(&s),
        forward(20, reason::ESTABLISHED_FORWARD, false),
        "a retransmitted SYN counts once"
    );
    let ack = Packet::tcp(ip(CLIENT), ip(WEB), 40000, 443, tcp::ACK).build();
    assert_eq!(
        o.judge(&ack),
        forward(20, reason::ESTABLISHED_FORWARD, false)
    );
    // a TCP flow first seen mid-stream is not a transaction
    let ack = Packet::tcp(ip(CLIENT), ip(WEB), 40001, 443, tcp::ACK | tcp::PSH).build();
    assert_eq!(o.judge(&ack), forward(20, reason::FORWARD, false));
    let synack = Packet::tcp(ip(CLIENT), ip(WEB), 40002, 443, tcp::SYN | tcp::ACK).build();
    assert_eq!(o.judge(&synack), forward(20, reason::FORWARD, false));
    // UDP: the first packet of a flow
    let u = Packet::udp(ip("192.0.2.5"), ip("203.0.113.53"), 5353, 53).build();
    assert_eq!(o.judge(&u), forward(70, reason::FORWARD, true));
    assert_eq!(o.judge(&u), forward(70, reason::ESTABLISHED_FORWARD, false));
    // other protocols too
    let g = Packet::raw(ip("192.0.2.5"), ip("203.0.113.99"), 47).build();
    assert_eq!(o.judge(&g), forward(40, reason::FORWARD, true));
    assert_eq!(o.judge(&g), forward(40, reason::ESTABLISHED_FORWARD, false));
    // SCTP under `any`
    let sc = Packet::sctp(ip("192.0.2.5"), ip("203.0.113.99"), 1, 2).build();
    assert_eq!(o.judge(&sc), forward(40, reason::FORWARD, true));
}

#[test]
fn agreements_not_in_force() {
    let mut o = oracle();
    // c3 -> web: 50 revoked, 60 expires today
    assert_eq!(
        o.judge(&syn("192.0.2.5", WEB, 40000, 443).build()),
        dropped(reason::NO_AGREEMENT)
    );
    // 70 expires tomorrow: in force
    let u = Packet::udp(ip("192.0.2.5"), ip("203.0.113.53"), 5353, 53).build();
    assert_eq!(o.judge(&u), forward(70, reason::FORWARD, true));
    let mut o = Oracle::new(
        &main_policy(),
        today().checked_add_days(Days::new(1)).unwrap(),
    );
    assert_eq!(o.judge(&u), dropped(reason::NO_AGREEMENT));
}

#[test]
fn infrastructure() {
    let mut o = oracle();
    let f = syn(CLIENT, "192.0.2.200", 40000, 22).build();
    assert_eq!(o.judge(&f), passed_plain(reason::INFRASTRUCTURE));
    assert_eq!(o.judge(&f), passed_plain(reason::INFRASTRUCTURE));
    // source side and source port count too; reply SYN rules do not apply
    let f = syn("192.0.2.200", CLIENT, 22, 40000).build();
    assert_eq!(o.judge(&f), passed_plain(reason::INFRASTRUCTURE));
    let f = syn(CLIENT, "192.0.2.200", 40000, 23).build();
    assert_eq!(o.judge(&f), dropped(reason::NO_AGREEMENT));
    let f = Packet::udp(ip(CLIENT), ip("192.0.2.200"), 40000, 22).build();
    assert_eq!(o.judge(&f), dropped(reason::NO_AGREEMENT));
}

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

fn check_policy(p: &Policy) {
    let mut ids = HashSet::new();
    assert!((3..=15).contains(&p.agreements.len()));
    assert!((2..=6).contains(&p.services.len()));
    assert!((2..=6).contains(&p.clients.len()));
    assert!((1..=4).contains(&p.port_aliases.len()));
    for a in &p.agreements {
        assert!(ids.insert(a.id), "duplicate id {}", a.id);
        assert!(p.clients.iter().any(|c| c.id == a.client));
        assert!(p.services.iter().any(|s| s.id == a.service));
        assert!(a.vlan.is_none_or(|v| (1..=4094).contains(&v)));
    }
    let check_net = |n: &IpNet| {
        assert!(is_documentation_net(n), "{n} outside documentation space");
        assert_eq!(*n, n.trunc(), "{n} has host bits set");
    };
    for s in &p.services {
        assert!((1..=3).contains(&s.endpoints.len()));
        for e in &s.endpoints {
            check_net(&e.address);
            match e.protocol {
                Protocol::Icmp => assert!(matches!(e.address, IpNet::V4(_))),
                Protocol::Icmpv6 => assert!(matches!(e.address, IpNet::V6(_))),
                _ => {}
            }
            assert!(e.protocol.has_ports() || e.ports.is_empty());
            assert!(e.ports.iter().all(|r| r.lo <= r.hi));
        }
    }
    for c in &p.clients {
        assert!((1..=3).contains(&c.prefixes.len()));
        c.prefixes.iter().for_each(check_net);
    }
    p.infrastructure.iter().for_each(|e| check_net(&e.prefix));
    // And the policy validator accepts it (no repeated endpoint or client prefix, say).
    let text = sdn_loader::db::text::policy_json(p).to_string();
    if let Err(e) = sdn_loader::policy::parse_json(&text) {
        panic!("the generated policy is not valid: {e}");
    }
}

/// Addresses of an IP frame (if the headers are there), for the documentation-only check.
fn frame_addresses(f: &[u8]) -> Vec<IpAddr> {
    let mut off = 14;
    if f.len() < 14 {
        return Vec::new();
    }
    let mut et = u16::from_be_bytes([f[12], f[13]]);
    while matches!(et, 0x8100 | 0x88a8 | 0x9100) && off + 4 <= f.len() {
        et = u16::from_be_bytes([f[off + 2], f[off + 3]]);
        off += 4;
    }
    let b = &f[off.min(f.len())..];
    match et {
        0x0800 if b.len() >= 20 => {
            vec![
                IpAddr::from(<[u8; 4]>::try_from(&b[12..16]).unwrap()),
                IpAddr::from(<[u8; 4]>::try_from(&b[16..20]).unwrap()),
            ]
        }
        0x86dd if b.len() >= 40 => {
            vec![
                IpAddr::from(<[u8; 16]>::try_from(&b[8..24]).unwrap()),
                IpAddr::from(<[u8; 16]>::try_from(&b[24..40]).unwrap()),
            ]
        }
        _ => Vec::new(),
    }
}

#[test]
fn generators_produce_variety() {
    let mut rng = StdRng::seed_from_u64(0x5d17);
    let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut shapes: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut agreements_hit = HashSet::new();
    let mut transactions = 0;
    let mut frames = 0;
    for _ in 0..20 {
        let policy = random_policy(&mut rng, today());
        check_policy(&policy);
        let mut g = FrameGen::new(&policy);
        let mut o = Oracle::new(&policy, today());
        for _ in 0..250 {
            let f = g.next(&mut rng);
            frames += 1;
            assert!(
                f.len() >= 14 && f.len() <= 1500,
                "frame of {} bytes",
                f.len()
            );
            for a in frame_addresses(&f) {
                assert!(is_documentation(a), "non-documentation address {a}");
            }
            let e = o.judge(&f);
            *reasons.entry(e.reason).or_default() += 1;
            if let Some(a) = e.agreement {
                agreements_hit.insert(a);
            }
            transactions += usize::from(e.transaction);
            assert_eq!(e.pass, reason::ALL[..9].contains(&e.reason));
            assert_eq!(e.agreement.is_some(), e.direction.is_some());
            // shapes
            let mut et = u16::from_be_bytes([f[12], f[13]]);
            let mut off = 14;
            let mut tags = 0;
            while matches!(et, 0x8100 | 0x88a8 | 0x9100) && off + 4 <= f.len() {
                et = u16::from_be_bytes([f[off + 2], f[off + 3]]);
                off += 4;
                tags += 1;
            }
            *shapes
                .entry(["0 tags", "1 tag", "2 tags", "3+ tags", "3+ tags"][tags.min(4)])
                .or_default() += 1;
            match et {
                0x0800 if f.len() >= off + 20 => {
                    *shapes.entry("ipv4").or_default() += 1;
                    if f[off] & 0x0f > 5 {
                        *shapes.entry("ipv4 options").or_default() += 1;
                    }
                    let fo = u16::from_be_bytes([f[off + 6], f[off + 7]]);
                    if fo & 0x1fff != 0 {
                        *shapes.entry("ipv4 later fragment").or_default() += 1;
                    } else if fo & 0x2000 != 0 {
                        *shapes.entry("ipv4 first fragment").or_default() += 1;
                    }
                    match f[off + 9] {
                        6 => *shapes.entry("tcp").or_default() += 1,
                        17 => *shapes.entry("udp").or_default() += 1,
                        132 => *shapes.entry("sctp").or_default() += 1,
                        1 => *shapes.entry("icmp").or_default() += 1,
                        _ => *shapes.entry("other protocol").or_default() += 1,
                    }
                }
                0x86dd if f.len() >= off + 40 => {
                    *shapes.entry("ipv6").or_default() += 1;
                    let mut nh = f[off + 6];
                    let mut pos = off + 40;
                    let mut n = 0;
                    while matches!(nh, 0 | 43 | 60 | 44 | 51) && pos + 8 <= f.len() {
                        if nh == 44 {
                            *shapes.entry("ipv6 fragment header").or_default() += 1;
                        }
                        let len = match nh {
                            44 => 8,
                            51 => (usize::from(f[pos + 1]) + 2) * 4,
                            _ => (usize::from(f[pos + 1]) + 1) * 8,
                        };
                        nh = f[pos];
                        pos += len;
                        n += 1;
                    }
                    *shapes
                        .entry(match n {
                            0 => "ipv6 0 ext",
                            1..=7 => "ipv6 1-7 ext",
                            8 => "ipv6 8 ext",
                            _ => "ipv6 9+ ext",
                        })
                        .or_default() += 1;
                    if nh == 58 && pos < f.len() {
                        *shapes.entry("icmpv6").or_default() += 1;
                    }
                }
                0x0800 | 0x86dd => *shapes.entry("short ip").or_default() += 1,
                _ => *shapes.entry("non-ip").or_default() += 1,
            }
        }
    }
    eprintln!(
        "{frames} frames, {transactions} transactions, {} agreements hit",
        agreements_hit.len()
    );
    eprintln!("reasons: {reasons:#?}");
    eprintln!("shapes: {shapes:#?}");
    for r in [
        reason::FORWARD,
        reason::REPLY,
        reason::ESTABLISHED_FORWARD,
        reason::ESTABLISHED_REPLY,
        reason::ICMP_ERROR,
        reason::FRAGMENT,
        reason::NON_IP,
        reason::NEIGHBOUR_DISCOVERY,
        reason::NO_AGREEMENT,
        reason::REPLY_SYN,
        reason::TOO_MANY_VLAN_TAGS,
        reason::TOO_MANY_EXTENSION_HEADERS,
        reason::TRUNCATED,
        reason::MALFORMED_IPV4,
        reason::MALFORMED_IPV6,
        reason::MALFORMED_TRANSPORT,
        reason::TINY_FRAGMENT,
        reason::FRAGMENT_WITHOUT_HEAD,
        reason::FRAGMENT_OF_DROPPED,
        reason::ICMP_ERROR_NO_AGREEMENT,
        reason::ICMP_ERROR_MALFORMED,
    ] {
        assert!(
            reasons.get(r).copied().unwrap_or(0) >= 3,
            "reason {r} seen {:?} times",
            reasons.get(r)
        );
    }
    for s in [
        "0 tags",
        "1 tag",
        "2 tags",
        "3+ tags",
        "ipv4",
        "ipv6",
        "ipv4 options",
        "ipv4 first fragment",
        "ipv4 later fragment",
        "ipv6 fragment header",
        "ipv6 0 ext",
        "ipv6 1-7 ext",
        "ipv6 8 ext",
        "ipv6 9+ ext",
        "tcp",
        "udp",
        "sctp",
        "icmp",
        "icmpv6",
        "other protocol",
        "non-ip",
    ] {
        assert!(
            shapes.get(s).copied().unwrap_or(0) >= 5,
            "shape {s} seen {:?} times",
            shapes.get(s)
        );
    }
    assert!(transactions >= 50);
    assert!(agreements_hit.len() >= 20);
}

#[test]
fn generators_are_deterministic() {
    let run = |seed| {
        let mut rng = StdRng::seed_from_u64(seed);
        let policy = random_policy(&mut rng, today());
        let mut g = FrameGen::new(&policy);
        let frames: Vec<Vec<u8>> = (0..200).map(|_| g.next(&mut rng)).collect();
        (policy, frames, random_frame(&mut rng, &Policy::default()))
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1).1, run(2).1);
}

#[test]
fn oracle_survives_mutations() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
    for _ in 0..10 {
        let policy = random_policy(&mut rng, today());
        let mut g = FrameGen::new(&policy);
        let mut o = Oracle::new(&policy, today());
        for _ in 0..1000 {
            let mut f = g.next(&mut rng);
            mutate(&mut rng, &mut f);
            assert!(f.len() >= 14);
            *reasons.entry(o.judge(&f).reason).or_default() += 1;
        }
    }
    eprintln!("after mutation: {reasons:#?}");
    assert!(reasons.len() >= 12);
}

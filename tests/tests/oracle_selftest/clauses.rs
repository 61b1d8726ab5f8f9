//! One hand-written case per semantic clause.

use super::*;

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
    let policy = PolicyDraft {
        // `service` and `client` place their objects under o2 and o1.
        organisations: organisations(),
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
    }
    .validate()
    .unwrap();
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

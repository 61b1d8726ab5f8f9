//! Rule 6: ICMP (echo, other types, errors, neighbour discovery).

use super::*;

#[test]
fn icmp_echo_errors_and_neighbour_discovery() {
    let (s30, s40, s50) = ("203.0.113.30", "203.0.113.40", "203.0.113.50");
    let (s30_6, s40_6, s50_6) = ("2001:db8:30::1", "2001:db8:40::1", "2001:db8:50::1");
    let c2 = "198.51.100.200";
    let allowed = tcp(C, s50, 40000, 443, SYN);
    let allowed6 = tcp(C6, s50_6, 40000, 443, SYN);
    let ns_payload = vec![0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    let nd = |ty: u8| {
        Packet::icmp(
            ip("2001:db8:ffff::1"),
            ip("2001:db8:ffff::2"),
            ty,
            0,
            [0; 4],
        )
        .with_payload(ns_payload.clone())
        .build()
    };
    let mut quoted_later_fragment = udp(C, s50, 40001, 53);
    quoted_later_fragment.v4_fragment = (1, false);
    let mut ihl3 = quote(&allowed);
    ihl3[0] = 0x43;
    let cases = [
        // Echo request: rule 4 only; echo reply: rule 5 only.
        forward(
            "echo request to icmp endpoint",
            echo(C, s30, true, 1).build(),
            7,
            true,
        ),
        est_forward("same echo request again", echo(C, s30, true, 1).build(), 7),
        forward(
            "echo request, other id: new flow",
            echo(C, s30, true, 2).build(),
            7,
            true,
        ),
        reply(
            "echo reply from icmp endpoint",
            echo(s30, C, false, 1).build(),
            7,
        ),
        est_reply("echo reply again", echo(s30, C, false, 1).build(), 7),
        dropped(
            "echo request from the service to the client",
            echo(s30, C, true, 3).build(),
            "no-agreement",
        ),
        dropped(
            "echo reply from the client to the service",
            echo(C, s30, false, 4).build(),
            "no-agreement",
        ),
        dropped(
            "echo request to a tcp/udp endpoint",
            echo(C, s50, true, 5).build(),
            "no-agreement",
        ),
        dropped(
            "echo request from outside the client",
            echo("192.0.2.77", s30, true, 6).build(),
            "no-agreement",
        ),
        forward(
            "echo request to any endpoint",
            echo(C, s40, true, 7).build(),
            7,
            true,
        ),
        reply(
            "echo reply from any endpoint",
            echo(s40, C, false, 7).build(),
            7,
        ),
        dropped(
            "echo request from any endpoint to client",
            echo(s40, C, true, 8).build(),
            "no-agreement",
        ),
        dropped(
            "echo reply from client to any endpoint",
            echo(C, s40, false, 9).build(),
            "no-agreement",
        ),
        // Other ICMP types: only under `any`, both ways.
        dropped(
            "timestamp (13) to icmp endpoint",
            icmp(C, s30, 13).build(),
            "no-agreement",
        ),
        dropped(
            "router advertisement v4 (9) to icmp endpoint",
            icmp(C, s30, 9).build(),
            "no-agreement",
        ),
        dropped(
            "type 134 in ICMPv4 is not ND",
            icmp(C, s30, 134).build(),
            "no-agreement",
        ),
        forward(
            "timestamp (13) to any endpoint",
            icmp(C, s40, 13).build(),
            7,
            true,
        ),
        est_forward("timestamp (13) again", icmp(C, s40, 13).build(), 7),
        reply(
            "timestamp reply (14) from any endpoint",
            icmp(s40, C, 14).build(),
            7,
        ),
        reply("redirect (5) from any endpoint", icmp(s40, C, 5).build(), 7),
        // ICMPv6.
        forward(
            "v6 echo request to icmpv6 endpoint",
            echo(C6, s30_6, true, 1).build(),
            7,
            true,
        ),
        reply(
            "v6 echo reply from icmpv6 endpoint",
            echo(s30_6, C6, false, 1).build(),
            7,
        ),
        dropped(
            "v6 echo request from the service",
            echo(s30_6, C6, true, 2).build(),
            "no-agreement",
        ),
        dropped(
            "v6 echo reply from the client",
            echo(C6, s30_6, false, 3).build(),
            "no-agreement",
        ),
        forward(
            "v6 echo request to any endpoint",
            echo(C6, s40_6, true, 4).build(),
            7,
            true,
        ),
        dropped(
            "v6 MLD query (130) to icmpv6 endpoint",
            icmp(C6, s30_6, 130).build(),
            "no-agreement",
        ),
        forward(
            "v6 MLD query (130) to any endpoint",
            icmp(C6, s40_6, 130).build(),
            7,
            true,
        ),
        reply(
            "v6 type 200 from any endpoint",
            icmp(s40_6, C6, 200).build(),
            7,
        ),
        dropped(
            "v6 echo request to a tcp endpoint",
            echo(C6, s50_6, true, 5).build(),
            "no-agreement",
        ),
        // ICMP errors pass iff the quoted packet would pass; they count to its agreement in the
        // opposite direction and are never transactions.
        counted(
            "v4 type 3/4 from a router quoting an allowed packet",
            icmp_error(R, C, 3, 4, quote(&allowed)).build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "same error again (errors make no flows)",
            icmp_error(R, C, 3, 4, quote(&allowed)).build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "v4 type 3/1 from the service itself",
            icmp_error(s50, C, 3, 1, quote(&allowed)).build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "v4 type 11 (time exceeded)",
            icmp_error(R, C, 11, 0, quote(&allowed)).build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "v4 type 12 (parameter problem)",
            icmp_error(R, C, 12, 0, quote(&allowed)).build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "v4 error quoting the whole packet",
            icmp_error(
                R,
                C,
                3,
                3,
                allowed.clone().with_payload(vec![0x42; 64]).ip_bytes(),
            )
            .build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "v4 error quoting a udp packet",
            icmp_error(R, C, 3, 3, quote(&udp(C, s50, 40002, 53))).build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "v4 error quoting a reply: counts forward",
            icmp_error(R, s50, 3, 1, quote(&tcp(s50, C, 443, 40000, SYN | ACK))).build(),
            "icmp-error",
            7,
            FWD,
        ),
        counted(
            "v4 error quoting a reply SYN (no SYN exception)",
            icmp_error(R, s50, 3, 1, quote(&tcp(s50, C, 443, 40003, SYN))).build(),
            "icmp-error",
            7,
            FWD,
        ),
        counted(
            "v4 error quoting an echo request",
            icmp_error(R, C, 3, 1, quote(&echo(C, s30, true, 9))).build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "v4 error quoting an echo reply",
            icmp_error(R, s30, 3, 1, quote(&echo(s30, C, false, 9))).build(),
            "icmp-error",
            7,
            FWD,
        ),
        counted(
            "v4 error quoting another client: lowest id 3",
            icmp_error(R, c2, 3, 4, quote(&tcp(c2, s50, 40004, 443, SYN))).build(),
            "icmp-error",
            3,
            REP,
        ),
        counted(
            "v4 error quoting IPv4 with options",
            icmp_error(
                R,
                C,
                3,
                4,
                quote(&allowed.clone().with_v4_options(vec![1; 8])),
            )
            .build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "v4 error under any, quoting other icmp type",
            icmp_error(R, C, 3, 1, quote(&icmp(C, s40, 13))).build(),
            "icmp-error",
            7,
            REP,
        ),
        dropped(
            "v4 error quoting a disallowed port",
            icmp_error(R, C, 3, 1, quote(&tcp(C, s50, 40005, 80, SYN))).build(),
            "icmp-error-no-agreement",
        ),
        dropped(
            "v4 error quoting an echo request from the service",
            icmp_error(R, s30, 3, 1, quote(&echo(s30, C, true, 10))).build(),
            "icmp-error-no-agreement",
        ),
        dropped(
            "v4 error quoting a packet between strangers",
            icmp_error(
                R,
                "192.0.2.1",
                11,
                0,
                quote(&udp("192.0.2.1", "192.0.2.2", 1, 2)),
            )
            .build(),
            "icmp-error-no-agreement",
        ),
        dropped(
            "v4 error quoting garbage (4 bytes)",
            icmp_error(R, C, 3, 1, vec![0xde, 0xad, 0xbe, 0xef]).build(),
            "icmp-error-malformed",
        ),
        dropped(
            "v4 error quoting nothing",
            icmp_error(R, C, 3, 1, Vec::new()).build(),
            "icmp-error-malformed",
        ),
        dropped(
            "v4 error quoting IHL 3",
            icmp_error(R, C, 3, 1, ihl3).build(),
            "icmp-error-malformed",
        ),
        dropped(
            "v4 error quoting only 4 transport bytes",
            icmp_error(R, C, 3, 1, quote(&allowed)[..24].to_vec()).build(),
            "icmp-error-malformed",
        ),
        dropped(
            "v4 error quoting a later fragment",
            icmp_error(R, C, 3, 1, quote(&quoted_later_fragment)).build(),
            "icmp-error-malformed",
        ),
        dropped(
            "v4 error quoting an IPv6 packet",
            icmp_error(R, C, 3, 1, quote(&allowed6)).build(),
            "icmp-error-malformed",
        ),
        dropped(
            "v4 error with a 7-byte ICMP header",
            raw(R, C, 1, vec![3, 4, 0, 0, 0, 0, 0]).build(),
            "malformed-transport",
        ),
        // ICMPv6 errors, types 1-4.
        counted(
            "v6 type 1 quoting an allowed packet",
            icmp_error(R6, C6, 1, 0, quote(&allowed6)).build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "v6 type 2 (packet too big)",
            icmp_error(R6, C6, 2, 0, quote(&allowed6)).build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "v6 type 3",
            icmp_error(R6, C6, 3, 0, quote(&allowed6)).build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "v6 type 4",
            icmp_error(R6, C6, 4, 0, quote(&allowed6)).build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "v6 type 1 quoting a reply",
            icmp_error(R6, s50_6, 1, 0, quote(&tcp(s50_6, C6, 443, 40000, ACK))).build(),
            "icmp-error",
            7,
            FWD,
        ),
        counted(
            "v6 type 1 quoting a packet with a hop-by-hop header",
            icmp_error(
                R6,
                C6,
                1,
                0,
                quote(&allowed6.clone().with_exts(vec![Ext::HopByHop(0)])),
            )
            .build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "v6 type 1 quoting an echo request",
            icmp_error(R6, C6, 1, 0, quote(&echo(C6, s30_6, true, 1))).build(),
            "icmp-error",
            7,
            REP,
        ),
        dropped(
            "v6 type 1 quoting a disallowed port",
            icmp_error(R6, C6, 1, 0, quote(&tcp(C6, s50_6, 40000, 80, SYN))).build(),
            "icmp-error-no-agreement",
        ),
        dropped(
            "v6 type 1 quoting garbage",
            icmp_error(R6, C6, 1, 0, vec![0x60, 0, 0, 0, 0, 8, 6, 64, 1, 2]).build(),
            "icmp-error-malformed",
        ),
        dropped(
            "v6 type 1 quoting an IPv4 packet",
            icmp_error(R6, C6, 1, 0, quote(&allowed)).build(),
            "icmp-error-malformed",
        ),
        dropped(
            "v6 type 1 quoting a later fragment",
            icmp_error(
                R6,
                C6,
                1,
                0,
                quote(&allowed6.clone().with_exts(vec![Ext::Fragment {
                    offset: 5,
                    more: false,
                    id: 9,
                }])),
            )
            .build(),
            "icmp-error-malformed",
        ),
        // Neighbour discovery: always passes, no agreement.
        plain(
            "ND router solicitation (133)",
            nd(133),
            "neighbour-discovery",
        ),
        plain(
            "ND router advertisement (134)",
            nd(134),
            "neighbour-discovery",
        ),
        plain(
            "ND neighbour solicitation (135)",
            nd(135),
            "neighbour-discovery",
        ),
        plain(
            "ND neighbour advertisement (136)",
            nd(136),
            "neighbour-discovery",
        ),
        plain("ND redirect (137)", nd(137), "neighbour-discovery"),
        plain(
            "ND between client and service",
            Packet::icmp(ip(s30_6), ip(C6), 136, 0, [0x60, 0, 0, 0])
                .with_payload(ns_payload.clone())
                .build(),
            "neighbour-discovery",
        ),
        dropped(
            "v6 type 138 is not ND",
            Packet::icmp(
                ip("2001:db8:ffff::1"),
                ip("2001:db8:ffff::2"),
                138,
                0,
                [0; 4],
            )
            .build(),
            "no-agreement",
        ),
        dropped(
            "ND with a 7-byte ICMPv6 header",
            raw(
                "2001:db8:ffff::1",
                "2001:db8:ffff::2",
                58,
                vec![135, 0, 0, 0, 0, 0, 0],
            )
            .build(),
            "malformed-transport",
        ),
    ];
    run(
        "icmp_echo_errors_and_neighbour_discovery",
        &with_header(include_str!("../../fixtures/crafted/icmp.toml")),
        &cases,
    );
}

//! Rule 1: non-IP frames and the infrastructure allow list.

use super::*;

#[test]
fn non_ip_and_infrastructure() {
    let mgmt = "192.0.2.1";
    let peer = "2001:db8:ffff::2";
    let lldp = [
        0x02, 0x07, 0x04, 0x02, 0x00, 0x5e, 0x10, 0x00, 0x02, 0x04, 0x03, 0x05, 0x65, 0x31, 0x06,
        0x02, 0x00, 0x78, 0x00, 0x00,
    ];
    let lacp = [
        0x01, 0x01, 0x01, 0x14, 0x80, 0x00, 0x02, 0x00, 0x5e, 0x10, 0x00, 0x02,
    ];
    let v6_frags =
        with_ident(udp(C6, peer, 4000, 161).with_payload(vec![7; 40]), 0x55).fragments(16, 0);
    let cases = [
        // Non-IP frames pass.
        plain(
            "ARP request",
            arp_frame(&[], v4("198.51.100.1"), v4("198.51.100.2"), false),
            "non-ip",
        ),
        plain(
            "ARP reply",
            arp_frame(&[], v4("198.51.100.2"), v4("198.51.100.1"), true),
            "non-ip",
        ),
        plain(
            "ARP tagged",
            arp_frame(&[(0x8100, 5)], v4("198.51.100.2"), v4("198.51.100.1"), true),
            "non-ip",
        ),
        plain(
            "LLDP 0x88cc",
            frame_with_tags(&[], 0x88cc, &lldp, true),
            "non-ip",
        ),
        plain(
            "LACP 0x8809",
            frame_with_tags(&[], 0x8809, &lacp, true),
            "non-ip",
        ),
        plain(
            "unknown ethertype 0x88b5",
            frame_with_tags(&[], 0x88b5, &[0; 46], false),
            "non-ip",
        ),
        plain(
            "bare Ethernet header, ARP ethertype",
            eth(0x0806, &[]),
            "non-ip",
        ),
        // Infrastructure: traffic to and from the listed prefix with a listed port.
        plain(
            "ssh to the router",
            tcp(C, mgmt, 50000, 22, SYN).build(),
            "infrastructure",
        ),
        plain(
            "ssh from the router",
            tcp(mgmt, C, 22, 50000, SYN | ACK).build(),
            "infrastructure",
        ),
        plain(
            "ssh to the router, established",
            tcp(C, mgmt, 50000, 22, ACK).build(),
            "infrastructure",
        ),
        plain(
            "ssh from the router, established",
            tcp(mgmt, C, 22, 50000, ACK).build(),
            "infrastructure",
        ),
        plain(
            "ssh from an address outside every client",
            tcp("192.0.2.100", mgmt, 50001, 22, SYN).build(),
            "infrastructure",
        ),
        dropped(
            "telnet to the router",
            tcp(C, mgmt, 50002, 23, SYN).build(),
            "no-agreement",
        ),
        dropped(
            "udp 22 to the router",
            udp(C, mgmt, 50003, 22).build(),
            "no-agreement",
        ),
        dropped(
            "ping to a tcp-only router entry",
            echo(C, mgmt, true, 1).build(),
            "no-agreement",
        ),
        dropped(
            "ssh to the next address",
            tcp(C, "192.0.2.2", 50004, 22, SYN).build(),
            "no-agreement",
        ),
        plain(
            "v6 peer, any protocol: udp",
            udp(C6, peer, 50005, 161).build(),
            "infrastructure",
        ),
        plain(
            "v6 peer, any protocol: SYN from it",
            tcp("2001:db8:ffff::3", C6, 179, 50006, SYN).build(),
            "infrastructure",
        ),
        plain(
            "v6 peer, any protocol: echo from it",
            echo("2001:db8:ffff::1", C6, true, 1).build(),
            "infrastructure",
        ),
        plain(
            "v6 peer, other ICMPv6 type",
            icmp("2001:db8:ffff::0", C6, 130).build(),
            "infrastructure",
        ),
        dropped(
            "v6 just outside the /126",
            udp(C6, "2001:db8:ffff::4", 50007, 161).build(),
            "no-agreement",
        ),
        plain(
            "v6 first fragment to the peer",
            v6_frags[0].clone(),
            "infrastructure",
        ),
        plain(
            "v6 later fragment to the peer",
            v6_frags[1].clone(),
            "fragment",
        ),
        // ICMP errors are judged by the quoted packet, not by infrastructure.
        dropped(
            "error from the v6 peer quoting a disallowed packet",
            icmp_error(
                peer,
                C6,
                1,
                0,
                quote(&tcp(C6, "2001:db8:10::1", 40000, 80, SYN)),
            )
            .build(),
            "icmp-error-no-agreement",
        ),
        counted(
            "error from the v6 peer quoting an allowed packet",
            icmp_error(
                peer,
                C6,
                1,
                0,
                quote(&tcp(C6, "2001:db8:10::1", 40000, 443, SYN)),
            )
            .build(),
            "icmp-error",
            1,
            REP,
        ),
        counted(
            "error from the router quoting an allowed packet",
            icmp_error(
                mgmt,
                C,
                3,
                4,
                quote(&tcp(C, "203.0.113.10", 40000, 443, SYN)),
            )
            .build(),
            "icmp-error",
            1,
            REP,
        ),
        // Agreement traffic is unaffected.
        forward(
            "agreement traffic alongside",
            tcp(C, "203.0.113.10", 40000, 443, SYN).build(),
            1,
            true,
        ),
    ];
    run(
        "non_ip_and_infrastructure",
        &with_header(include_str!("../../fixtures/crafted/infrastructure.toml")),
        &cases,
    );
}

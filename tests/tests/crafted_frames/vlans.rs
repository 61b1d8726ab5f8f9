//! Rule 2: VLANs.

use super::*;

#[test]
fn vlan_matching() {
    let s = "203.0.113.10";
    let o = "203.0.113.20";
    let syn = |sport: u16, dport: u16| tcp(C, s, sport, dport, SYN);
    let syn_o = |sport: u16| tcp(C, o, sport, 443, SYN);
    let tagged = |p: Packet, tags: &[(u16, u16)]| {
        let mut p = p;
        p.tags = tags.to_vec();
        p.build()
    };
    let cases = [
        // An agreement with a VLAN matches only that VLAN.
        dropped(
            "vlan agreement, untagged",
            syn(1, 443).build(),
            "no-agreement",
        ),
        forward(
            "vlan agreement, 0x8100 vid 100",
            syn(2, 443).vlan(0x8100, 100).build(),
            100,
            true,
        ),
        dropped(
            "vlan agreement, vid 101",
            syn(3, 443).vlan(0x8100, 101).build(),
            "no-agreement",
        ),
        forward(
            "vlan agreement, vid 4094 -> 300",
            syn(4, 443).vlan(0x8100, 4094).build(),
            300,
            true,
        ),
        forward(
            "TPID 0x88a8",
            syn(5, 443).vlan(0x88a8, 100).build(),
            100,
            true,
        ),
        forward(
            "TPID 0x9100",
            syn(6, 443).vlan(0x9100, 100).build(),
            100,
            true,
        ),
        forward(
            "PCP and DEI bits ignored",
            tagged(syn(7, 443), &[(0x8100, (5 << 13) | 0x1000 | 0x64)]),
            100,
            true,
        ),
        // An agreement without a VLAN matches tagged and untagged frames.
        forward("no-vlan agreement, untagged", syn_o(8).build(), 200, true),
        forward(
            "no-vlan agreement, vid 100",
            syn_o(9).vlan(0x8100, 100).build(),
            200,
            true,
        ),
        forward(
            "no-vlan agreement, vid 7",
            syn_o(10).vlan(0x8100, 7).build(),
            200,
            true,
        ),
        forward(
            "no-vlan agreement, two tags",
            syn_o(11).vlan(0x88a8, 7).vlan(0x8100, 8).build(),
            200,
            true,
        ),
        forward(
            "no-vlan agreement, v6 vid 3000",
            tcp(C6, "2001:db8:20::1", 12, 443, SYN)
                .vlan(0x8100, 3000)
                .build(),
            200,
            true,
        ),
        // VLAN and no-VLAN agreements on the same client/endpoint pair.
        forward(
            "vid 100 port 8000: 100",
            syn(13, 8000).vlan(0x8100, 100).build(),
            100,
            true,
        ),
        forward(
            "vid 100 port 8049: 100",
            syn(14, 8049).vlan(0x8100, 100).build(),
            100,
            true,
        ),
        forward(
            "vid 100 port 8050: no-vlan 90 is lower",
            syn(15, 8050).vlan(0x8100, 100).build(),
            90,
            true,
        ),
        forward(
            "vid 100 port 8101: no-vlan 90",
            syn(16, 8101).vlan(0x8100, 100).build(),
            90,
            true,
        ),
        dropped(
            "vid 100 port 8201",
            syn(17, 8201).vlan(0x8100, 100).build(),
            "no-agreement",
        ),
        forward("untagged port 8050: 90", syn(18, 8050).build(), 90, true),
        dropped("untagged port 8000", syn(19, 8000).build(), "no-agreement"),
        forward(
            "vid 101 port 8060: 90",
            syn(20, 8060).vlan(0x8100, 101).build(),
            90,
            true,
        ),
        forward(
            "vid 100 udp 53: no-vlan 150",
            udp(C, s, 21, 53).vlan(0x8100, 100).build(),
            150,
            true,
        ),
        dropped(
            "vid 100 udp 54",
            udp(C, s, 22, 54).vlan(0x8100, 100).build(),
            "no-agreement",
        ),
        forward(
            "vid 200 tcp 9999: any 110",
            syn(23, 9999).vlan(0x8100, 200).build(),
            110,
            true,
        ),
        forward(
            "vid 200 tcp 8060: no-vlan tcp 90 < any 110",
            syn(24, 8060).vlan(0x8100, 200).build(),
            90,
            true,
        ),
        forward(
            "vid 200 udp 53: 110 < 150",
            udp(C, s, 25, 53).vlan(0x8100, 200).build(),
            110,
            true,
        ),
        forward(
            "vid 200 icmp echo: 110",
            echo(C, s, true, 26).vlan(0x8100, 200).build(),
            110,
            true,
        ),
        dropped(
            "vid 201 tcp 9999",
            syn(27, 9999).vlan(0x8100, 201).build(),
            "no-agreement",
        ),
        // Two tags: the innermost non-zero VID counts.
        forward(
            "outer 300, inner 100",
            syn(28, 443).vlan(0x88a8, 300).vlan(0x8100, 100).build(),
            100,
            true,
        ),
        dropped(
            "outer 100, inner 300",
            syn(29, 443).vlan(0x88a8, 100).vlan(0x8100, 300).build(),
            "no-agreement",
        ),
        forward(
            "outer 100, inner priority tag 0",
            syn(30, 443).vlan(0x88a8, 100).vlan(0x8100, 0).build(),
            100,
            true,
        ),
        forward(
            "outer priority tag 0, inner 100",
            syn(31, 443).vlan(0x8100, 0).vlan(0x8100, 100).build(),
            100,
            true,
        ),
        forward(
            "0x9100 outer, 0x88a8 inner 4094",
            syn(32, 443).vlan(0x9100, 5).vlan(0x88a8, 4094).build(),
            300,
            true,
        ),
        // VID 0 counts as untagged.
        dropped(
            "priority tag only, vlan agreement",
            syn(33, 443).vlan(0x8100, 0).build(),
            "no-agreement",
        ),
        forward(
            "priority tag only, no-vlan agreement",
            syn_o(34).vlan(0x8100, 0).build(),
            200,
            true,
        ),
        dropped(
            "two priority tags, vlan agreement",
            syn(35, 443).vlan(0x88a8, 0).vlan(0x8100, 0).build(),
            "no-agreement",
        ),
        forward(
            "two priority tags, no-vlan agreement",
            syn_o(36).vlan(0x88a8, 0).vlan(0x8100, 0).build(),
            200,
            true,
        ),
        forward(
            "priority tag with PCP 7",
            tagged(syn_o(37), &[(0x8100, 7 << 13)]),
            200,
            true,
        ),
        // Three or more tags.
        dropped(
            "three tags",
            syn_o(38)
                .vlan(0x88a8, 1)
                .vlan(0x8100, 2)
                .vlan(0x8100, 3)
                .build(),
            "too-many-vlan-tags",
        ),
        dropped(
            "three priority tags",
            syn_o(39)
                .vlan(0x8100, 0)
                .vlan(0x8100, 0)
                .vlan(0x8100, 0)
                .build(),
            "too-many-vlan-tags",
        ),
        dropped(
            "three tags 0x9100",
            syn(40, 443)
                .vlan(0x9100, 100)
                .vlan(0x9100, 100)
                .vlan(0x9100, 100)
                .build(),
            "too-many-vlan-tags",
        ),
        dropped(
            "three tags around ARP",
            arp_frame(
                &[(0x88a8, 1), (0x8100, 2), (0x8100, 3)],
                v4("198.51.100.1"),
                v4("198.51.100.2"),
                false,
            ),
            "too-many-vlan-tags",
        ),
        dropped(
            "four tags",
            syn_o(41)
                .vlan(0x88a8, 1)
                .vlan(0x8100, 2)
                .vlan(0x8100, 3)
                .vlan(0x8100, 4)
                .build(),
            "too-many-vlan-tags",
        ),
        // Replies with VLANs.
        reply(
            "reply on vid 100",
            tcp(s, C, 443, 2, SYN | ACK).vlan(0x8100, 100).build(),
            100,
        ),
        dropped(
            "reply untagged",
            tcp(s, C, 443, 1, SYN | ACK).build(),
            "no-agreement",
        ),
        reply(
            "reply on vid 4094",
            tcp(s, C, 443, 4, SYN | ACK).vlan(0x8100, 4094).build(),
            300,
        ),
        dropped(
            "reply SYN on vid 100",
            tcp(s, C, 443, 999, SYN).vlan(0x8100, 100).build(),
            "reply-syn",
        ),
        // The VLAN is part of the flow key.
        forward("flow on untagged", syn_o(42).build(), 200, true),
        forward(
            "same tuple on vid 7 is a new flow",
            syn_o(42).vlan(0x8100, 7).build(),
            200,
            true,
        ),
        est_forward("same tuple untagged again", syn_o(42).build(), 200),
        est_forward(
            "same tuple on vid 7 again",
            syn_o(42).vlan(0x8100, 7).build(),
            200,
        ),
        forward(
            "same tuple on vid 0 = untagged",
            syn_o(43).build(),
            200,
            true,
        ),
        est_forward(
            "same tuple, priority tag: the untagged flow",
            syn_o(43).vlan(0x8100, 0).build(),
            200,
        ),
        dropped(
            "flow of vid 100 is not valid on vid 101",
            tcp(C, s, 2, 443, ACK).vlan(0x8100, 101).build(),
            "no-agreement",
        ),
        est_forward(
            "flow of vid 100 on vid 100",
            tcp(C, s, 2, 443, ACK).vlan(0x8100, 100).build(),
            100,
        ),
        // ICMP errors: the outer frame's VLAN counts.
        counted(
            "icmp error on vid 100 quoting a vid-100 flow",
            icmp_error(R, C, 3, 4, quote(&syn(44, 443)))
                .vlan(0x8100, 100)
                .build(),
            "icmp-error",
            100,
            REP,
        ),
        dropped(
            "same icmp error untagged",
            icmp_error(R, C, 3, 4, quote(&syn(44, 443))).build(),
            "icmp-error-no-agreement",
        ),
        counted(
            "same icmp error on vid 200: any 110",
            icmp_error(R, C, 3, 4, quote(&syn(44, 443)))
                .vlan(0x8100, 200)
                .build(),
            "icmp-error",
            110,
            REP,
        ),
        // Non-IP and ND under tags.
        plain(
            "ARP on vid 100",
            arp_frame(
                &[(0x8100, 100)],
                v4("198.51.100.1"),
                v4("198.51.100.2"),
                false,
            ),
            "non-ip",
        ),
        plain(
            "LLDP under two tags",
            frame_with_tags(
                &[(0x88a8, 10), (0x8100, 20)],
                0x88cc,
                &[0x02, 0x07, 0x04, 0, 0, 0, 0, 0, 1],
                true,
            ),
            "non-ip",
        ),
        plain(
            "neighbour solicitation on vid 100",
            Packet::icmp(ip("2001:db8:200::1"), ip("2001:db8:200::2"), 135, 0, [0; 4])
                .with_payload(vec![
                    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
                ])
                .vlan(0x8100, 100)
                .build(),
            "neighbour-discovery",
        ),
        // A tag cut short.
        dropped(
            "first tag cut short",
            eth(0x8100, &[0x00, 0x64]),
            "truncated-header",
        ),
        dropped(
            "second tag cut short",
            frame_with_tags(&[(0x88a8, 100)], 0x8100, &[0x00, 0x64, 0x08], false),
            "truncated-header",
        ),
        dropped(
            "tag complete, IPv4 header missing",
            frame_with_tags(&[(0x8100, 100)], 0x0800, &[], false),
            "truncated-header",
        ),
    ];
    run(
        "vlan_matching",
        &with_header(include_str!("../../fixtures/crafted/vlans.toml")),
        &cases,
    );
}

//! Rule 3: header parsing, malformed and truncated frames.

use super::*;

#[test]
fn malformed_and_truncated_frames() {
    let s = "203.0.113.10";
    let s6 = "2001:db8:10::1";
    let syn = |sport: u16| tcp(C, s, sport, 443, SYN);
    let syn6 = |sport: u16| tcp(C6, s6, sport, 443, SYN);
    let eight_exts = vec![
        Ext::HopByHop(0),
        Ext::DestOpts(0),
        Ext::Routing(1),
        Ext::Fragment {
            offset: 0,
            more: false,
            id: 1,
        },
        Ext::Ah(1),
        Ext::DestOpts(2),
        Ext::Routing(0),
        Ext::DestOpts(0),
    ];
    let mut nine_exts = eight_exts.clone();
    nine_exts.push(Ext::DestOpts(0));
    let mut ten_exts = nine_exts.clone();
    ten_exts.push(Ext::Ah(0));
    let record_route = {
        let mut o = vec![0u8; 40];
        o[0] = 7;
        o[1] = 39;
        o[2] = 4;
        o
    };
    let with_trailer = |mut f: Vec<u8>, n: usize| {
        f.extend(std::iter::repeat_n(0xee, n));
        f
    };
    let cases = [
        // Truncated Ethernet payload (test_run needs at least the 14-byte Ethernet header).
        dropped(
            "IPv4 ethertype, no IP header",
            eth(0x0800, &[]),
            "truncated-header",
        ),
        dropped(
            "IPv6 ethertype, no IP header",
            eth(0x86dd, &[]),
            "truncated-header",
        ),
        dropped(
            "IPv4 header cut at 19 bytes",
            v4_frame(&syn(1).ip_bytes()[..19]),
            "truncated-header",
        ),
        dropped(
            "IPv4 header cut at 1 byte",
            v4_frame(&syn(2).ip_bytes()[..1]),
            "truncated-header",
        ),
        dropped(
            "IPv6 header cut at 39 bytes",
            v6_frame(&syn6(3).ip_bytes()[..39]),
            "truncated-header",
        ),
        // IPv4 IHL and total length.
        dropped(
            "IHL 4",
            v4_frame(&edited(&syn(4), |b| b[0] = 0x44)),
            "malformed-ipv4",
        ),
        dropped(
            "IHL 0",
            v4_frame(&edited(&syn(5), |b| b[0] = 0x40)),
            "malformed-ipv4",
        ),
        dropped(
            "total length one more than the frame",
            v4_frame(&edited(&syn(6), |b| set16(b, 2, 41))),
            "malformed-ipv4",
        ),
        dropped(
            "total length 65535",
            v4_frame(&edited(&syn(7), |b| set16(b, 2, 0xffff))),
            "malformed-ipv4",
        ),
        dropped(
            "total length 19 < header",
            v4_frame(&edited(&syn(8), |b| set16(b, 2, 19))),
            "malformed-ipv4",
        ),
        dropped(
            "total length 0",
            v4_frame(&edited(&syn(9), |b| set16(b, 2, 0))),
            "malformed-ipv4",
        ),
        dropped(
            "total length 20 < IHL 6 header",
            v4_frame(&edited(&syn(10).with_v4_options(vec![1; 4]), |b| {
                set16(b, 2, 20);
            })),
            "malformed-ipv4",
        ),
        dropped(
            "IHL 6 header cut short by the frame",
            v4_frame(&edited(&syn(11), |b| {
                b[0] = 0x46;
                b.truncate(22);
                set16(b, 2, 22);
            })),
            "truncated-header",
        ),
        dropped(
            "IHL 15 header cut short by the frame",
            v4_frame(&syn(12).with_v4_options(vec![1; 40]).ip_bytes()[..40]),
            "truncated-header",
        ),
        forward(
            "Ethernet padding after a small datagram is ignored",
            {
                let mut p = udp(C, s, 13, 53);
                p.pad_to_60 = true;
                p.build()
            },
            5,
            true,
        ),
        forward(
            "trailing bytes after the IPv4 packet are ignored",
            with_trailer(syn(14).build(), 30),
            5,
            true,
        ),
        dropped(
            "total length cuts the TCP header",
            v4_frame(&edited(&syn(15), |b| set16(b, 2, 30))),
            "malformed-transport",
        ),
        // IPv4 options: the transport header is found after them.
        forward(
            "IHL 6 (4 bytes of NOP options)",
            syn(16).with_v4_options(vec![1; 4]).build(),
            5,
            true,
        ),
        forward(
            "IHL 10",
            syn(17).with_v4_options(vec![1; 20]).build(),
            5,
            true,
        ),
        forward(
            "IHL 15 (40 bytes of options)",
            syn(18).with_v4_options(vec![1; 40]).build(),
            5,
            true,
        ),
        forward(
            "IHL 15 with a record-route option",
            syn(19).with_v4_options(record_route.clone()).build(),
            5,
            true,
        ),
        dropped(
            "IHL 15, wrong port after the options",
            tcp(C, s, 20, 444, SYN).with_v4_options(vec![1; 40]).build(),
            "no-agreement",
        ),
        forward(
            "IHL 7 udp",
            udp(C, s, 21, 53).with_v4_options(vec![1; 8]).build(),
            5,
            true,
        ),
        // IPv6 payload length.
        dropped(
            "IPv6 payload length one more than the frame",
            v6_frame(&edited(&syn6(22), |b| set16(b, 4, 21))),
            "malformed-ipv6",
        ),
        dropped(
            "IPv6 payload length 65535",
            v6_frame(&edited(&syn6(23), |b| set16(b, 4, 0xffff))),
            "malformed-ipv6",
        ),
        forward(
            "trailing bytes after the IPv6 packet are ignored",
            with_trailer(syn6(24).build(), 30),
            5,
            true,
        ),
        dropped(
            "IPv6 payload length cuts the TCP header",
            v6_frame(&edited(&syn6(25), |b| set16(b, 4, 10))),
            "malformed-transport",
        ),
        // IPv6 extension headers.
        forward(
            "one hop-by-hop header",
            syn6(26).with_exts(vec![Ext::HopByHop(0)]).build(),
            5,
            true,
        ),
        forward(
            "AH with ICV",
            syn6(27).with_exts(vec![Ext::Ah(4)]).build(),
            5,
            true,
        ),
        forward(
            "eight extension headers",
            syn6(28).with_exts(eight_exts.clone()).build(),
            5,
            true,
        ),
        forward(
            "eight extension headers, udp",
            udp(C6, s6, 29, 53).with_exts(eight_exts.clone()).build(),
            5,
            true,
        ),
        dropped(
            "eight extension headers, wrong port",
            tcp(C6, s6, 30, 444, SYN)
                .with_exts(eight_exts.clone())
                .build(),
            "no-agreement",
        ),
        dropped(
            "nine extension headers",
            syn6(31).with_exts(nine_exts.clone()).build(),
            "too-many-extension-headers",
        ),
        dropped(
            "ten extension headers",
            syn6(32).with_exts(ten_exts).build(),
            "too-many-extension-headers",
        ),
        dropped(
            "extension header cut at 4 bytes",
            raw(C6, s6, 0, vec![6, 0, 0, 0]).build(),
            "truncated-header",
        ),
        dropped(
            "hop-by-hop claiming 16 bytes, 8 present",
            raw(C6, s6, 0, vec![6, 1, 0, 0, 0, 0, 0, 0]).build(),
            "truncated-header",
        ),
        dropped(
            "AH claiming 24 bytes, 8 present",
            raw(C6, s6, 51, vec![6, 4, 0, 0, 0, 0, 0, 0]).build(),
            "truncated-header",
        ),
        dropped(
            "dest-opts cut by the payload length, frame longer",
            with_trailer(raw(C6, s6, 60, vec![6, 1, 0, 0, 0, 0, 0, 0]).build(), 16),
            "truncated-header",
        ),
        dropped(
            "second extension header cut short",
            raw(C6, s6, 0, vec![60, 0, 1, 4, 0, 0, 0, 0, 6, 2, 0, 0]).build(),
            "truncated-header",
        ),
        dropped(
            "eight extension headers, TCP cut at 10 bytes",
            v6_frame(&edited(&syn6(33).with_exts(eight_exts.clone()), |b| {
                let n = b.len() - 10;
                b.truncate(n);
                let pl = (n - 40) as u16;
                set16(b, 4, pl);
            })),
            "malformed-transport",
        ),
        // Transport headers.
        dropped(
            "TCP data offset 4",
            raw_l4(&syn(34), |t| t[12] = 0x40).build(),
            "malformed-transport",
        ),
        dropped(
            "TCP data offset 0",
            raw_l4(&syn(35), |t| t[12] = 0x00).build(),
            "malformed-transport",
        ),
        dropped(
            "TCP data offset 6, options cut short",
            raw_l4(&syn(36), |t| t[12] = 0x60).build(),
            "malformed-transport",
        ),
        dropped(
            "TCP data offset 15, options cut short",
            raw_l4(&syn(37), |t| t[12] = 0xf0).build(),
            "malformed-transport",
        ),
        dropped(
            "TCP header cut at 19 bytes",
            raw_l4(&syn(38), |t| t.truncate(19)).build(),
            "malformed-transport",
        ),
        dropped(
            "TCP header cut at 0 bytes",
            raw_l4(&syn(39), std::vec::Vec::clear).build(),
            "malformed-transport",
        ),
        forward(
            "TCP with 40 bytes of options",
            with_tcp_options(syn(40), vec![1; 40]).build(),
            5,
            true,
        ),
        dropped(
            "v6 TCP data offset 4",
            raw_l4(&syn6(41), |t| t[12] = 0x40).build(),
            "malformed-transport",
        ),
        dropped(
            "v6 TCP cut at 19 bytes after a dest-opts header",
            raw_l4(&syn6(42).with_exts(vec![Ext::DestOpts(0)]), |t| {
                t.truncate(19);
            })
            .build(),
            "malformed-transport",
        ),
        dropped(
            "UDP 7 bytes",
            raw_l4(&udp(C, s, 43, 53), |t| t.truncate(7)).build(),
            "malformed-transport",
        ),
        dropped(
            "UDP 0 bytes",
            raw_l4(&udp(C, s, 44, 53), std::vec::Vec::clear).build(),
            "malformed-transport",
        ),
        forward("UDP exactly 8 bytes", udp(C, s, 45, 53).build(), 5, true),
        dropped(
            "v6 UDP 7 bytes",
            raw_l4(&udp(C6, s6, 46, 53), |t| t.truncate(7)).build(),
            "malformed-transport",
        ),
        dropped(
            "SCTP 11 bytes",
            raw_l4(&sctp(C, s, 47, 3868), |t| t.truncate(11)).build(),
            "malformed-transport",
        ),
        forward(
            "SCTP exactly 12 bytes",
            sctp(C, s, 48, 3868).build(),
            5,
            true,
        ),
        dropped(
            "ICMP 7 bytes",
            raw_l4(&echo(C, s, true, 49), |t| t.truncate(7)).build(),
            "malformed-transport",
        ),
        forward(
            "ICMP echo exactly 8 bytes",
            echo(C, s, true, 50).build(),
            5,
            true,
        ),
        dropped(
            "ICMPv6 7 bytes",
            raw_l4(&echo(C6, s6, true, 51), |t| t.truncate(7)).build(),
            "malformed-transport",
        ),
        forward(
            "ICMPv6 echo exactly 8 bytes",
            echo(C6, s6, true, 52).build(),
            5,
            true,
        ),
        forward(
            "GRE with no bytes needs no transport header",
            raw(C, "203.0.113.99", 47, Vec::new()).build(),
            5,
            true,
        ),
        // VLAN tags cut short.
        dropped(
            "VLAN tag cut short",
            eth(0x8100, &[0x00, 0x64]),
            "truncated-header",
        ),
        dropped(
            "VLAN tag then IPv4 cut short",
            frame_with_tags(&[(0x8100, 5)], 0x0800, &syn(53).ip_bytes()[..10], false),
            "truncated-header",
        ),
    ];
    run(
        "malformed_and_truncated_frames",
        &with_header(include_str!("../../fixtures/crafted/malformed.toml")),
        &cases,
    );
}

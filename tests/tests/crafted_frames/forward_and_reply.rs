//! Rules 4 and 5: forward and reply, protocols and port sets.

use super::*;

#[test]
fn forward_and_reply_protocols_and_ports() {
    let s10 = "203.0.113.10";
    let s6 = "2001:db8:10::1";
    let cases = [
        // TCP port range edges.
        forward(
            "tcp to range start 8000",
            tcp(C, s10, 40001, 8000, SYN).build(),
            100,
            true,
        ),
        forward(
            "tcp to range end 8100",
            tcp(C, s10, 40002, 8100, SYN).build(),
            100,
            true,
        ),
        forward(
            "tcp inside range 8050",
            tcp(C, s10, 40003, 8050, SYN).build(),
            100,
            true,
        ),
        dropped(
            "tcp just below range 7999",
            tcp(C, s10, 40004, 7999, SYN).build(),
            "no-agreement",
        ),
        dropped(
            "tcp just above range 8101",
            tcp(C, s10, 40005, 8101, SYN).build(),
            "no-agreement",
        ),
        // UDP: a single port and a range in one set.
        forward("udp to 53", udp(C, s10, 40006, 53).build(), 100, true),
        dropped("udp to 52", udp(C, s10, 40007, 52).build(), "no-agreement"),
        dropped("udp to 54", udp(C, s10, 40008, 54).build(), "no-agreement"),
        forward(
            "udp to range start 5000",
            udp(C, s10, 40009, 5000).build(),
            100,
            true,
        ),
        forward(
            "udp to range end 5010",
            udp(C, s10, 40010, 5010).build(),
            100,
            true,
        ),
        dropped(
            "udp to 4999",
            udp(C, s10, 40011, 4999).build(),
            "no-agreement",
        ),
        dropped(
            "udp to 5011",
            udp(C, s10, 40012, 5011).build(),
            "no-agreement",
        ),
        // SCTP.
        forward("sctp to 3868", sctp(C, s10, 40013, 3868).build(), 100, true),
        dropped(
            "sctp to 3867",
            sctp(C, s10, 40014, 3867).build(),
            "no-agreement",
        ),
        dropped(
            "sctp to 3869",
            sctp(C, s10, 40015, 3869).build(),
            "no-agreement",
        ),
        // Protocol must be equal.
        dropped(
            "tcp to the udp port 53",
            tcp(C, s10, 40016, 53, SYN).build(),
            "no-agreement",
        ),
        dropped(
            "udp to the tcp port 8000",
            udp(C, s10, 40017, 8000).build(),
            "no-agreement",
        ),
        dropped(
            "sctp to the tcp port 8000",
            sctp(C, s10, 40018, 8000).build(),
            "no-agreement",
        ),
        dropped(
            "gre to a tcp/udp/sctp endpoint",
            raw(C, s10, 47, vec![0; 4]).build(),
            "no-agreement",
        ),
        dropped(
            "icmp echo to a tcp/udp/sctp endpoint",
            echo(C, s10, true, 1).build(),
            "no-agreement",
        ),
        // Port alias.
        forward(
            "alias dicom port 104",
            tcp(C, "203.0.113.20", 40019, 104, SYN).build(),
            100,
            true,
        ),
        forward(
            "alias dicom port 11112",
            tcp(C, "203.0.113.20", 40020, 11112, SYN).build(),
            100,
            true,
        ),
        dropped(
            "alias dicom port 105",
            tcp(C, "203.0.113.20", 40021, 105, SYN).build(),
            "no-agreement",
        ),
        dropped(
            "alias dicom port 11111",
            tcp(C, "203.0.113.20", 40022, 11111, SYN).build(),
            "no-agreement",
        ),
        dropped(
            "alias dicom is tcp only",
            udp(C, "203.0.113.20", 40023, 104).build(),
            "no-agreement",
        ),
        forward(
            "alias plus port: 4242",
            tcp(C, "203.0.113.21", 40024, 4242, SYN).build(),
            100,
            true,
        ),
        forward(
            "alias plus port: 11112",
            tcp(C, "203.0.113.21", 40025, 11112, SYN).build(),
            100,
            true,
        ),
        dropped(
            "alias plus port: 4243",
            tcp(C, "203.0.113.21", 40026, 4243, SYN).build(),
            "no-agreement",
        ),
        // No port set: every port.
        forward(
            "no port set: port 1",
            tcp(C, "203.0.113.30", 40027, 1, SYN).build(),
            100,
            true,
        ),
        forward(
            "no port set: port 65535",
            tcp(C, "203.0.113.30", 40028, 65535, SYN).build(),
            100,
            true,
        ),
        forward(
            "no port set: port 0",
            tcp(C, "203.0.113.30", 40029, 0, SYN).build(),
            100,
            true,
        ),
        dropped(
            "no port set is still tcp only",
            udp(C, "203.0.113.30", 40030, 53).build(),
            "no-agreement",
        ),
        // Twelve single ports (more intervals than one rule value holds).
        forward(
            "many ports: first 1001",
            tcp(C, "203.0.113.50", 40031, 1001, SYN).build(),
            100,
            true,
        ),
        forward(
            "many ports: last 1023",
            tcp(C, "203.0.113.50", 40032, 1023, SYN).build(),
            100,
            true,
        ),
        forward(
            "many ports: middle 1013",
            tcp(C, "203.0.113.50", 40033, 1013, SYN).build(),
            100,
            true,
        ),
        dropped(
            "many ports: gap 1022",
            tcp(C, "203.0.113.50", 40034, 1022, SYN).build(),
            "no-agreement",
        ),
        dropped(
            "many ports: gap 1000",
            tcp(C, "203.0.113.50", 40035, 1000, SYN).build(),
            "no-agreement",
        ),
        dropped(
            "many ports: after 1024",
            tcp(C, "203.0.113.50", 40036, 1024, SYN).build(),
            "no-agreement",
        ),
        // Extreme port numbers.
        forward(
            "udp port 0",
            udp(C, "203.0.113.60", 40037, 0).build(),
            100,
            true,
        ),
        forward(
            "udp port 65535",
            udp(C, "203.0.113.60", 40038, 65535).build(),
            100,
            true,
        ),
        dropped(
            "udp port 1",
            udp(C, "203.0.113.60", 40039, 1).build(),
            "no-agreement",
        ),
        dropped(
            "udp port 65534",
            udp(C, "203.0.113.60", 40040, 65534).build(),
            "no-agreement",
        ),
        // Protocol any: every protocol and port.
        forward(
            "any: tcp 12345",
            tcp(C, "203.0.113.40", 40041, 12345, SYN).build(),
            100,
            true,
        ),
        forward(
            "any: udp 9",
            udp(C, "203.0.113.40", 40042, 9).build(),
            100,
            true,
        ),
        forward(
            "any: sctp 1",
            sctp(C, "203.0.113.40", 40043, 1).build(),
            100,
            true,
        ),
        forward(
            "any: gre",
            raw(C, "203.0.113.40", 47, vec![0, 0, 0x08, 0]).build(),
            100,
            true,
        ),
        forward(
            "any: esp",
            raw(C, "203.0.113.40", 50, vec![0; 8]).build(),
            100,
            true,
        ),
        forward(
            "any: icmp echo",
            echo(C, "203.0.113.40", true, 5).build(),
            100,
            true,
        ),
        // Client prefix and endpoint address edges.
        forward(
            "client prefix last address",
            tcp("198.51.100.127", s10, 40044, 8000, SYN).build(),
            100,
            true,
        ),
        forward(
            "client prefix first address",
            tcp("198.51.100.0", s10, 40045, 8000, SYN).build(),
            100,
            true,
        ),
        dropped(
            "client just outside prefix",
            tcp("198.51.100.128", s10, 40046, 8000, SYN).build(),
            "no-agreement",
        ),
        dropped(
            "endpoint address + 1",
            tcp(C, "203.0.113.11", 40047, 8000, SYN).build(),
            "no-agreement",
        ),
        dropped(
            "endpoint address - 1",
            tcp(C, "203.0.113.9", 40048, 8000, SYN).build(),
            "no-agreement",
        ),
        // IPv6.
        forward(
            "v6 tcp 443",
            tcp(C6, s6, 40049, 443, SYN).build(),
            100,
            true,
        ),
        forward(
            "v6 tcp 443, last address of the /64",
            tcp(C6, "2001:db8:10::ffff:ffff:ffff:ffff", 40050, 443, SYN).build(),
            100,
            true,
        ),
        dropped(
            "v6 tcp 444",
            tcp(C6, s6, 40051, 444, SYN).build(),
            "no-agreement",
        ),
        dropped(
            "v6 outside the endpoint /64",
            tcp(C6, "2001:db8:10:1::1", 40052, 443, SYN).build(),
            "no-agreement",
        ),
        dropped(
            "v6 client outside /48",
            tcp("2001:db8:201::7", s6, 40053, 443, SYN).build(),
            "no-agreement",
        ),
        forward(
            "v6 udp, no port set",
            udp(C6, s6, 40054, 9999).build(),
            100,
            true,
        ),
        forward(
            "v6 sctp 36412",
            sctp(C6, s6, 40055, 36412).build(),
            100,
            true,
        ),
        dropped(
            "v6 sctp 36413",
            sctp(C6, s6, 40056, 36413).build(),
            "no-agreement",
        ),
        dropped(
            "v4 client to v6-only port",
            tcp(C, s10, 40057, 443, SYN).build(),
            "no-agreement",
        ),
        // Rule 5: replies (source = endpoint with source port in the set).
        reply(
            "reply: tcp SYN+ACK from 8000",
            tcp(s10, C, 8000, 40001, SYN | ACK).build(),
            100,
        ),
        reply(
            "reply: tcp SYN+ACK from 8100",
            tcp(s10, C, 8100, 40002, SYN | ACK).build(),
            100,
        ),
        dropped(
            "reply: from port 7999",
            tcp(s10, C, 7999, 40004, SYN | ACK).build(),
            "no-agreement",
        ),
        dropped(
            "reply: to a client outside its prefix",
            tcp(s10, "198.51.100.128", 8000, 40046, SYN | ACK).build(),
            "no-agreement",
        ),
        reply("reply: udp from 53", udp(s10, C, 53, 40006).build(), 100),
        dropped(
            "reply: udp from 52",
            udp(s10, C, 52, 40007).build(),
            "no-agreement",
        ),
        reply(
            "reply: sctp from 3868",
            sctp(s10, C, 3868, 40013).build(),
            100,
        ),
        reply(
            "reply: from alias port 11112",
            tcp("203.0.113.20", C, 11112, 40020, ACK).build(),
            100,
        ),
        reply(
            "reply: v6 tcp from 443",
            tcp(s6, C6, 443, 40049, SYN | ACK).build(),
            100,
        ),
        reply(
            "reply: any endpoint, gre",
            raw("203.0.113.40", C, 47, vec![0, 0, 0x08, 0]).build(),
            100,
        ),
        // Reply SYN: a service may not open connections to its clients.
        dropped(
            "reply SYN from a no-port-set endpoint",
            tcp("203.0.113.30", C, 22, 41000, SYN).build(),
            "reply-syn",
        ),
        reply(
            "reply SYN+ACK of the same tuple passes",
            tcp("203.0.113.30", C, 22, 41000, SYN | ACK).build(),
            100,
        ),
        dropped(
            "reply SYN from 8000",
            tcp(s10, C, 8000, 41001, SYN).build(),
            "reply-syn",
        ),
        dropped(
            "reply SYN with ECE/CWR",
            tcp(s10, C, 8000, 41002, SYN | ECE | CWR).build(),
            "reply-syn",
        ),
        reply(
            "reply RST (no SYN) passes",
            tcp("203.0.113.30", C, 23, 41003, RST).build(),
            100,
        ),
        reply(
            "reply FIN+ACK passes",
            tcp("203.0.113.30", C, 24, 41004, FIN | ACK).build(),
            100,
        ),
        dropped(
            "reply SYN from an any endpoint",
            tcp("203.0.113.40", C, 80, 41005, SYN).build(),
            "reply-syn",
        ),
        dropped(
            "reply SYN v6",
            tcp(s6, C6, 443, 41006, SYN).build(),
            "reply-syn",
        ),
    ];
    run(
        "forward_and_reply_protocols_and_ports",
        &with_header(include_str!(
            "../../fixtures/crafted/forward_and_reply.toml"
        )),
        &cases,
    );
}

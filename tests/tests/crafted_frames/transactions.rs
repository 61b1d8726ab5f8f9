//! Rule 10: transactions.

use super::*;

#[test]
fn transactions() {
    let s = "203.0.113.10";
    let s6 = "2001:db8:10::1";
    let cases = [
        // TCP: the first SYN counts, nothing else does.
        forward("SYN", tcp(C, s, 40000, 443, SYN).build(), 42, true),
        est_forward("retransmitted SYN", tcp(C, s, 40000, 443, SYN).build(), 42),
        reply("SYN+ACK", tcp(s, C, 443, 40000, SYN | ACK).build(), 42),
        est_forward("ACK", tcp(C, s, 40000, 443, ACK).build(), 42),
        est_reply(
            "data from the service",
            tcp(s, C, 443, 40000, PSH | ACK)
                .with_payload(vec![1; 100])
                .build(),
            42,
        ),
        est_forward(
            "data to the service",
            tcp(C, s, 40000, 443, PSH | ACK)
                .with_payload(vec![2; 200])
                .build(),
            42,
        ),
        dropped(
            "SYN from the service on an established reply flow",
            tcp(s, C, 443, 40000, SYN).build(),
            "reply-syn",
        ),
        est_reply(
            "retransmitted SYN+ACK",
            tcp(s, C, 443, 40000, SYN | ACK).build(),
            42,
        ),
        est_forward("FIN", tcp(C, s, 40000, 443, FIN | ACK).build(), 42),
        forward(
            "mid-stream ACK of an unknown flow: passes, no transaction",
            tcp(C, s, 40001, 443, ACK).build(),
            42,
            false,
        ),
        est_forward(
            "SYN on that flow: already in the table",
            tcp(C, s, 40001, 443, SYN).build(),
            42,
        ),
        forward(
            "RST of an unknown flow: no transaction",
            tcp(C, s, 40002, 443, RST).build(),
            42,
            false,
        ),
        forward(
            "SYN with ECE+CWR counts",
            tcp(C, s, 40003, 443, SYN | ECE | CWR).build(),
            42,
            true,
        ),
        forward(
            "SYN+FIN counts (SYN without ACK)",
            tcp(C, s, 40004, 443, SYN | FIN).build(),
            42,
            true,
        ),
        forward(
            "another SYN, other port: new transaction",
            tcp(C, s, 40005, 443, SYN).build(),
            42,
            true,
        ),
        forward(
            "SYN from another client address",
            tcp("198.51.100.8", s, 40000, 443, SYN).build(),
            42,
            true,
        ),
        forward(
            "SYN with TCP options",
            with_tcp_options(
                tcp(C, s, 40006, 443, SYN),
                vec![2, 4, 0x05, 0xb4, 1, 1, 4, 2],
            )
            .build(),
            42,
            true,
        ),
        forward("v6 SYN", tcp(C6, s6, 40000, 443, SYN).build(), 42, true),
        est_forward(
            "v6 retransmitted SYN",
            tcp(C6, s6, 40000, 443, SYN).build(),
            42,
        ),
        reply("v6 SYN+ACK", tcp(s6, C6, 443, 40000, SYN | ACK).build(), 42),
        // UDP: the first forward packet counts.
        forward("UDP first", udp(C, s, 5353, 53).build(), 42, true),
        est_forward("UDP second", udp(C, s, 5353, 53).build(), 42),
        reply("UDP reply", udp(s, C, 53, 5353).build(), 42),
        est_reply("UDP reply again", udp(s, C, 53, 5353).build(), 42),
        est_forward("UDP third", udp(C, s, 5353, 53).build(), 42),
        forward(
            "UDP other source port",
            udp(C, s, 5354, 53).build(),
            42,
            true,
        ),
        reply(
            "UDP reply first (no forward yet): no transaction",
            udp(s, C, 53, 6000).build(),
            42,
        ),
        forward(
            "then the forward packet of that flow counts",
            udp(C, s, 6000, 53).build(),
            42,
            true,
        ),
        est_reply(
            "then the reply is established",
            udp(s, C, 53, 6000).build(),
            42,
        ),
        forward(
            "UDP same tuple, other VLAN: new flow",
            udp(C, s, 5353, 53).vlan(0x8100, 77).build(),
            42,
            true,
        ),
        est_forward(
            "UDP same tuple, that VLAN again",
            udp(C, s, 5353, 53).vlan(0x8100, 77).build(),
            42,
        ),
        // SCTP and other protocols.
        forward("SCTP first", sctp(C, s, 3868, 3868).build(), 42, true),
        est_forward("SCTP second", sctp(C, s, 3868, 3868).build(), 42),
        reply("SCTP reply", sctp(s, C, 3868, 3868).build(), 42),
        forward(
            "GRE first",
            raw(C, "203.0.113.99", 47, vec![0, 0, 0x08, 0]).build(),
            42,
            true,
        ),
        est_forward(
            "GRE second",
            raw(C, "203.0.113.99", 47, vec![0, 0, 0x08, 0]).build(),
            42,
        ),
        reply(
            "GRE reply",
            raw("203.0.113.99", C, 47, vec![0, 0, 0x08, 0]).build(),
            42,
        ),
        est_reply(
            "GRE reply again",
            raw("203.0.113.99", C, 47, vec![0, 0, 0x08, 0]).build(),
            42,
        ),
        forward(
            "ICMP echo first",
            echo(C, "203.0.113.99", true, 1).build(),
            42,
            true,
        ),
        est_forward(
            "ICMP echo second",
            echo(C, "203.0.113.99", true, 1).build(),
            42,
        ),
        reply(
            "ICMP echo reply",
            echo("203.0.113.99", C, false, 1).build(),
            42,
        ),
        forward(
            "TCP SYN to the any endpoint",
            tcp(C, "203.0.113.99", 40000, 80, SYN).build(),
            42,
            true,
        ),
        reply(
            "TCP SYN+ACK from the any endpoint",
            tcp("203.0.113.99", C, 80, 40000, SYN | ACK).build(),
            42,
        ),
        // Drops are never transactions.
        dropped(
            "SYN to a closed port",
            tcp(C, s, 40007, 444, SYN).build(),
            "no-agreement",
        ),
        dropped("reply SYN", tcp(s, C, 443, 40008, SYN).build(), "reply-syn"),
    ];
    run(
        "transactions",
        &with_header(include_str!("../../fixtures/crafted/transactions.toml")),
        &cases,
    );
}

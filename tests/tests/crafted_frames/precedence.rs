//! Rules 5 and 9: forward beats reply; the lowest agreement id wins and is what counts.

use super::*;

#[test]
fn forward_beats_reply_and_lowest_id_wins() {
    // Agreements are listed out of id order on purpose.
    let wide = "198.51.100.10";
    let narrow = "198.51.100.129";
    let host = "198.51.100.200";
    let cases = [
        // Nested client prefixes (/24 > /25 > /32), nested endpoints (/24 > /26 > /32) and
        // overlapping port ranges (1000-2000, 1500-2500, 1800): lowest id among all matches.
        forward(
            "wide client, big only",
            tcp(wide, "203.0.113.10", 50001, 1000, SYN).build(),
            70,
            true,
        ),
        forward(
            "wide client, big only, port 2000",
            tcp(wide, "203.0.113.10", 50002, 2000, SYN).build(),
            70,
            true,
        ),
        dropped(
            "wide client, big, port 2001",
            tcp(wide, "203.0.113.10", 50003, 2001, SYN).build(),
            "no-agreement",
        ),
        forward(
            "wide client, host addr 1800: small(50) < big(70)",
            tcp(wide, "203.0.113.70", 50004, 1800, SYN).build(),
            50,
            true,
        ),
        forward(
            "wide client, host addr 1499: big only",
            tcp(wide, "203.0.113.70", 50005, 1499, SYN).build(),
            70,
            true,
        ),
        forward(
            "wide client, host addr 2400: small only",
            tcp(wide, "203.0.113.70", 50006, 2400, SYN).build(),
            50,
            true,
        ),
        dropped(
            "wide client, host addr 2700: hostc only",
            tcp(wide, "203.0.113.70", 50007, 2700, SYN).build(),
            "no-agreement",
        ),
        forward(
            "host client, host addr 1800: narrow/big(30) beats 40/50/70",
            tcp(host, "203.0.113.70", 50008, 1800, SYN).build(),
            30,
            true,
        ),
        forward(
            "host client, host addr 2100: small(50)",
            tcp(host, "203.0.113.70", 50009, 2100, SYN).build(),
            50,
            true,
        ),
        forward(
            "host client, host addr 2700: hostc(40)",
            tcp(host, "203.0.113.70", 50010, 2700, SYN).build(),
            40,
            true,
        ),
        dropped(
            "host client, host addr 2600",
            tcp(host, "203.0.113.70", 50011, 2600, SYN).build(),
            "no-agreement",
        ),
        forward(
            "host client, other addr 1800: 30",
            tcp(host, "203.0.113.10", 50012, 1800, SYN).build(),
            30,
            true,
        ),
        forward(
            "narrow client, /26 1999: 30 beats 50, 70",
            tcp(narrow, "203.0.113.65", 50013, 1999, SYN).build(),
            30,
            true,
        ),
        forward(
            "narrow client, /26 2001: 50",
            tcp(narrow, "203.0.113.65", 50014, 2001, SYN).build(),
            50,
            true,
        ),
        forward(
            "narrow client, just above /26: 30",
            tcp(narrow, "203.0.113.128", 50015, 1800, SYN).build(),
            30,
            true,
        ),
        forward(
            "wide edge .127, /26 1999: 50",
            tcp("198.51.100.127", "203.0.113.65", 50016, 1999, SYN).build(),
            50,
            true,
        ),
        forward(
            "wide edge .127, just below /26: 70",
            tcp("198.51.100.127", "203.0.113.63", 50017, 1999, SYN).build(),
            70,
            true,
        ),
        // IPv6 nesting.
        forward(
            "v6 narrow client, small /64 5500: 25",
            udp("2001:db8:200:1::9", "2001:db8:10:5::1", 50018, 5500).build(),
            25,
            true,
        ),
        forward(
            "v6 narrow client, small /64 5501: 60",
            udp("2001:db8:200:1::9", "2001:db8:10:5::1", 50019, 5501).build(),
            60,
            true,
        ),
        forward(
            "v6 wide client, small /64 5500: 60",
            udp("2001:db8:200:2::9", "2001:db8:10:5::1", 50020, 5500).build(),
            60,
            true,
        ),
        dropped(
            "v6 outside both",
            udp("2001:db8:200:1::9", "2001:db8:11::1", 50021, 5500).build(),
            "no-agreement",
        ),
        // Replies follow the same rule.
        reply(
            "reply host addr 1800 -> host client: 30",
            tcp("203.0.113.70", host, 1800, 50008, SYN | ACK).build(),
            30,
        ),
        reply(
            "reply host addr 2100 -> host client: 50",
            tcp("203.0.113.70", host, 2100, 50009, SYN | ACK).build(),
            50,
        ),
        reply(
            "reply host addr 2700 -> host client: 40",
            tcp("203.0.113.70", host, 2700, 50010, SYN | ACK).build(),
            40,
        ),
        reply(
            "reply big 1000 -> wide client: 70",
            tcp("203.0.113.5", wide, 1000, 50001, SYN | ACK).build(),
            70,
        ),
        reply(
            "reply host addr 1800 -> wide client: 50",
            tcp("203.0.113.70", wide, 1800, 50004, SYN | ACK).build(),
            50,
        ),
        reply(
            "v6 reply small /64 5500 -> narrow: 25",
            udp("2001:db8:10:5::1", "2001:db8:200:1::9", 5500, 50018).build(),
            25,
        ),
        // Forward wins over reply: 192.0.2.1 -> 192.0.2.129 is forward under 90 and reply
        // under 6; the other way is forward under 6 and reply under 90.
        forward(
            "forward(90) beats reply(6)",
            tcp("192.0.2.1", "192.0.2.129", 5000, 6000, SYN).build(),
            90,
            true,
        ),
        forward(
            "back: forward(6) beats reply(90), SYN+ACK no transaction",
            tcp("192.0.2.129", "192.0.2.1", 6000, 5000, SYN | ACK).build(),
            6,
            false,
        ),
        forward(
            "SYN lower->upper half is forward(6), not reply-syn",
            tcp("192.0.2.130", "192.0.2.2", 7000, 8000, SYN).build(),
            6,
            true,
        ),
        forward(
            "its SYN+ACK is forward(90)",
            tcp("192.0.2.2", "192.0.2.130", 8000, 7000, SYN | ACK).build(),
            90,
            false,
        ),
        est_forward(
            "established keeps forward(90)",
            tcp("192.0.2.1", "192.0.2.129", 5000, 6000, ACK).build(),
            90,
        ),
        est_forward(
            "established keeps forward(6)",
            tcp("192.0.2.129", "192.0.2.1", 6000, 5000, ACK).build(),
            6,
        ),
    ];
    run(
        "forward_beats_reply_and_lowest_id_wins",
        &with_header(include_str!("../../fixtures/crafted/precedence.toml")),
        &cases,
    );
}

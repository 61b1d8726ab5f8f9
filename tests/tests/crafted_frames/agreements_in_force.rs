//! Rule 4: agreements in force (state and expiry).

use super::*;

#[test]
fn agreement_state_and_expiry() {
    let mut policy = format!(
        r#"{ORGS}
[[client]]
id = "cli"
organisation = "rsyd"
prefixes = ["198.51.100.0/24", "2001:db8:200::/48"]
"#
    );
    // One service per agreement, 203.0.113.<n>, tcp 443.
    for n in 1..=9 {
        let _ = write!(
            policy,
            r#"
[[service]]
id = "s{n}"
organisation = "sds"
name = "Service {n}"
endpoints = [{{ address = "203.0.113.{n}", protocol = "tcp", ports = "443" }}]
"#
        );
    }
    let agreements: [(u32, u32, &str, Option<String>); 12] = [
        (11, 1, "approved", None),
        (12, 2, "requested", None),
        (13, 3, "rejected", None),
        (14, 4, "revoked", None),
        (15, 5, "approved", Some(day(0))),
        (16, 6, "approved", Some(day(1))),
        (17, 7, "approved", Some(day(-1))),
        (18, 8, "approved", Some(day(3650))),
        // Lower ids on service 1 that are not in force must not take its traffic.
        (3, 1, "revoked", None),
        (4, 1, "approved", Some(day(-30))),
        (5, 1, "requested", None),
        (6, 1, "approved", Some(day(0))),
    ];
    for (id, svc, state, expires) in &agreements {
        let _ = write!(
            policy,
            "\n[[agreement]]\nid = {id}\nclient = \"cli\"\nservice = \"s{svc}\"\nstate = \"{state}\"\n"
        );
        if let Some(e) = expires {
            let _ = writeln!(policy, "expires = \"{e}\"");
        }
    }
    // Service 9: rejected with a far expiry, and approved on a VLAN that is never used.
    let _ = write!(
        policy,
        "\n[[agreement]]\nid = 19\nclient = \"cli\"\nservice = \"s9\"\nstate = \"rejected\"\nexpires = \"{}\"\n",
        day(100)
    );

    let to = |n: u8, sport: u16| tcp(C, &format!("203.0.113.{n}"), sport, 443, SYN).build();
    let back = |n: u8, dport: u16| tcp(&format!("203.0.113.{n}"), C, 443, dport, SYN | ACK).build();
    let cases = [
        forward(
            "approved, no expiry (lower ids not in force)",
            to(1, 1),
            11,
            true,
        ),
        dropped("requested", to(2, 2), "no-agreement"),
        dropped("rejected", to(3, 3), "no-agreement"),
        dropped("revoked", to(4, 4), "no-agreement"),
        dropped("expires today: expired", to(5, 5), "no-agreement"),
        forward("expires tomorrow: in force", to(6, 6), 16, true),
        dropped("expired yesterday", to(7, 7), "no-agreement"),
        forward("expires in ten years", to(8, 8), 18, true),
        dropped("rejected with a future expiry", to(9, 9), "no-agreement"),
        reply("reply, approved", back(1, 1), 11),
        dropped("reply, requested", back(2, 2), "no-agreement"),
        dropped("reply, rejected", back(3, 3), "no-agreement"),
        dropped("reply, revoked", back(4, 4), "no-agreement"),
        dropped("reply, expires today", back(5, 5), "no-agreement"),
        reply("reply, expires tomorrow", back(6, 6), 16),
        dropped("reply, expired yesterday", back(7, 7), "no-agreement"),
        dropped(
            "icmp error quoting a revoked agreement's packet",
            icmp_error(R, C, 3, 1, quote(&tcp(C, "203.0.113.4", 10, 443, SYN))).build(),
            "icmp-error-no-agreement",
        ),
        dropped(
            "icmp error quoting an expired agreement's packet",
            icmp_error(R, C, 3, 1, quote(&tcp(C, "203.0.113.5", 10, 443, SYN))).build(),
            "icmp-error-no-agreement",
        ),
        counted(
            "icmp error quoting an in-force agreement's packet",
            icmp_error(R, C, 3, 1, quote(&tcp(C, "203.0.113.6", 10, 443, SYN))).build(),
            "icmp-error",
            16,
            REP,
        ),
    ];
    run("agreement_state_and_expiry", &policy, &cases);
}

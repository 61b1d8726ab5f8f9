//! `explain`: allowed, denied, reply SYN, VLANs, and `--json` in the replay shape.

use super::*;

/// One `explain` of the CLI test policy: its arguments (split at spaces), what the first line
/// says (it starts with the verdict), and what the whole answer must and must not say.
struct Explained {
    args: &'static str,
    first: &'static [&'static str],
    says: &'static [&'static str],
    not: &'static [&'static str],
}

/// Checks every row against the CLI test policy; false (nothing checked) when skipped for
/// want of root.
fn explained(rows: &[Explained]) -> bool {
    if !support::netns::root_or_skip() {
        return false;
    }
    let policy = TempFile::with(".toml", POLICY.as_bytes());
    for row in rows {
        // 0 for a packet that passes, 2 for one that is dropped.
        let code = if row.first[0] == "PASS" { 0 } else { 2 };
        let run = explain(&policy, row.args).exits(code);
        let first = run.stdout.lines().next().unwrap_or_default();
        let shown = || format!("{}: {}", row.args, run.show());
        assert!(first.starts_with(row.first[0]), "{}", shown());
        for part in row.first {
            assert!(
                first.contains(part),
                "first line lacks {part:?}: {}",
                shown()
            );
        }
        for part in row.says {
            assert!(
                run.stdout.contains(part),
                "should say {part:?}: {}",
                shown()
            );
        }
        for part in row.not {
            assert!(
                !run.stdout.contains(part),
                "should not say {part:?}: {}",
                shown()
            );
        }
    }
    true
}

#[test]
fn explain_allowed() {
    explained(&[
        Explained {
            args: "198.51.100.10 203.0.113.10 tcp 40000 443 --syn",
            first: &["PASS", "forward"],
            says: &[
                "agreement: 1001",
                "\"clinic\"",
                "\"fmk\"",
                "endpoint 203.0.113.10/32 tcp 443",
                "starts a transaction",
            ],
            not: &[],
        },
        // IPv6 and ICMP echo (default type 8) too.
        Explained {
            args: "2001:db8:100::10 2001:db8:300::10 tcp 40000 443 --syn",
            first: &["PASS"],
            says: &["agreement: 1001", "endpoint 2001:db8:300::10/128 tcp 443"],
            not: &[],
        },
        Explained {
            args: "198.51.100.10 203.0.113.10 icmp",
            first: &["PASS"],
            says: &["agreement: 1001", "endpoint 203.0.113.10/32 icmp"],
            not: &[],
        },
    ]);
}

#[test]
fn explain_denied() {
    explained(&[
        // No endpoint on port 22.
        Explained {
            args: "198.51.100.10 203.0.113.10 tcp 40000 22 --syn",
            first: &["DROP"],
            says: &[
                "no-agreement",
                "not agreement 1001 (clinic -> fmk, forward): port 22 is not in the set 443",
            ],
            not: &["agreement: "],
        },
        // Revoked agreement 1002.
        Explained {
            args: "192.0.2.5 203.0.113.10 tcp 40000 443 --syn",
            first: &["DROP"],
            says: &[
                "no-agreement",
                "not agreement 1002 (lab -> fmk, forward): it is revoked",
            ],
            not: &[],
        },
    ]);
}

#[test]
fn explain_reply_syn() {
    explained(&[
        Explained {
            args: "203.0.113.10 198.51.100.10 tcp 443 40000 --syn",
            first: &["DROP"],
            says: &["reply-syn"],
            not: &[],
        },
        // Without --syn the same packet is an ACK: a reply.
        Explained {
            args: "203.0.113.10 198.51.100.10 tcp 443 40000",
            first: &["PASS"],
            says: &["reply", "agreement: 1001"],
            not: &[],
        },
    ]);
}

#[test]
fn explain_vlan() {
    // Agreement 1003 is for VLAN 100 only: not 200, not untagged.
    let ran = explained(&[
        Explained {
            args: "198.51.100.10 203.0.113.20 tcp 40000 104 --syn --vlan 100",
            first: &["PASS"],
            says: &["agreement: 1003", "vlan 100"],
            not: &[],
        },
        Explained {
            args: "198.51.100.10 203.0.113.20 tcp 40000 104 --syn --vlan 200",
            first: &["DROP"],
            says: &[
                "not agreement 1003 (clinic -> pacs, forward): it is for VLAN 100, the packet has VLAN 200",
            ],
            not: &[],
        },
        Explained {
            args: "198.51.100.10 203.0.113.20 tcp 40000 104 --syn",
            first: &["DROP"],
            says: &[
                "not agreement 1003 (clinic -> pacs, forward): it is for VLAN 100, the packet is untagged",
            ],
            not: &[],
        },
    ]);
    if ran {
        // A VLAN outside 1-4094 is an error naming it.
        let policy = TempFile::with(".toml", POLICY.as_bytes());
        let args = "198.51.100.10 203.0.113.20 tcp 40000 104 --syn --vlan 4095";
        explain(&policy, args).failure().stderr_has(&["4095"]);
    }
}

/// A TCP SYN from `src`:`sport` to `dst`:`dport`: `explain`'s arguments for it and the
/// frame they describe.
fn syn_case(src: &str, dst: &str, sport: u16, dport: u16) -> (String, Spec) {
    (
        format!("{src} {dst} tcp {sport} {dport} --syn"),
        Spec {
            src: ip(src),
            dst: ip(dst),
            protocol: 6,
            sport,
            dport,
            vlan: None,
            tcp_flags: 0x02,
            ext_headers: 0,
        },
    )
}

#[test]
fn explain_json_shape_and_values() {
    if !support::netns::root_or_skip() {
        return;
    }
    let policy = TempFile::with(".toml", POLICY.as_bytes());
    let p = parse_toml(POLICY).unwrap();
    let cases = [
        syn_case("198.51.100.10", "203.0.113.10", 40000, 443),
        syn_case("198.51.100.10", "203.0.113.10", 40000, 22),
        syn_case("203.0.113.10", "198.51.100.10", 443, 40000),
    ];
    for (args, spec) in cases {
        let frame = frames::build(&spec).unwrap();
        let v = Replayer::new(&p, date()).unwrap().judge(&frame).unwrap();
        let code = if v.passed() { 0 } else { 2 };
        let run = explain(&policy, &format!("{args} --json")).exits(code);
        let lines: Vec<&str> = run.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "one object: {}", run.show());
        let obj = parse_verdict_line(lines[0], &run);
        assert_eq!(obj, expected_object(&v), "{}", run.show());
    }
}

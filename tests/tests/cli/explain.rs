//! `explain`: allowed, denied, reply SYN, VLANs, and `--json` in the replay shape.

use super::*;

#[test]
fn explain_allowed() {
    if !support::netns::root_or_skip() {
        return;
    }
    let policy = TempFile::with(".toml", POLICY.as_bytes());
    let run = explain(
        &policy,
        &[
            "198.51.100.10",
            "203.0.113.10",
            "tcp",
            "40000",
            "443",
            "--syn",
        ],
    )
    .success();
    let first = run.stdout.lines().next().unwrap_or_default();
    assert!(first.starts_with("PASS"), "{}", run.show());
    assert!(first.contains("forward"), "{}", run.show());
    for part in [
        "agreement: 1001",
        "\"clinic\"",
        "\"fmk\"",
        "endpoint 203.0.113.10/32 tcp 443",
        "starts a transaction",
    ] {
        assert!(
            run.stdout.contains(part),
            "should say {part:?}: {}",
            run.show()
        );
    }

    // IPv6 and ICMP echo (default type 8) too.
    let run = explain(
        &policy,
        &[
            "2001:db8:100::10",
            "2001:db8:300::10",
            "tcp",
            "40000",
            "443",
            "--syn",
        ],
    )
    .success();
    assert!(run.stdout.starts_with("PASS"), "{}", run.show());
    assert!(run.stdout.contains("agreement: 1001"), "{}", run.show());
    assert!(
        run.stdout.contains("endpoint 2001:db8:300::10/128 tcp 443"),
        "{}",
        run.show()
    );
    let run = explain(&policy, &["198.51.100.10", "203.0.113.10", "icmp"]).success();
    assert!(run.stdout.starts_with("PASS"), "{}", run.show());
    assert!(run.stdout.contains("agreement: 1001"), "{}", run.show());
    assert!(
        run.stdout.contains("endpoint 203.0.113.10/32 icmp"),
        "{}",
        run.show()
    );
}

#[test]
fn explain_denied() {
    if !support::netns::root_or_skip() {
        return;
    }
    let policy = TempFile::with(".toml", POLICY.as_bytes());
    // No endpoint on port 22.
    let run = explain(
        &policy,
        &[
            "198.51.100.10",
            "203.0.113.10",
            "tcp",
            "40000",
            "22",
            "--syn",
        ],
    )
    .success();
    assert!(run.stdout.starts_with("DROP"), "{}", run.show());
    assert!(run.stdout.contains("no-agreement"), "{}", run.show());
    assert!(!run.stdout.contains("agreement: "), "{}", run.show());
    // Revoked agreement 1002.
    let run = explain(
        &policy,
        &["192.0.2.5", "203.0.113.10", "tcp", "40000", "443", "--syn"],
    )
    .success();
    assert!(run.stdout.starts_with("DROP"), "{}", run.show());
    assert!(run.stdout.contains("no-agreement"), "{}", run.show());
}

#[test]
fn explain_reply_syn() {
    if !support::netns::root_or_skip() {
        return;
    }
    let policy = TempFile::with(".toml", POLICY.as_bytes());
    let run = explain(
        &policy,
        &[
            "203.0.113.10",
            "198.51.100.10",
            "tcp",
            "443",
            "40000",
            "--syn",
        ],
    )
    .success();
    assert!(run.stdout.starts_with("DROP"), "{}", run.show());
    assert!(run.stdout.contains("reply-syn"), "{}", run.show());
    // Without --syn the same packet is an ACK: a reply.
    let run = explain(
        &policy,
        &["203.0.113.10", "198.51.100.10", "tcp", "443", "40000"],
    )
    .success();
    assert!(run.stdout.starts_with("PASS"), "{}", run.show());
    assert!(run.stdout.contains("reply"), "{}", run.show());
    assert!(run.stdout.contains("agreement: 1001"), "{}", run.show());
}

#[test]
fn explain_vlan() {
    if !support::netns::root_or_skip() {
        return;
    }
    let policy = TempFile::with(".toml", POLICY.as_bytes());
    let args = [
        "198.51.100.10",
        "203.0.113.20",
        "tcp",
        "40000",
        "104",
        "--syn",
    ];
    let run = explain(&policy, &[&args[..], &["--vlan", "100"]].concat()).success();
    assert!(run.stdout.starts_with("PASS"), "{}", run.show());
    assert!(run.stdout.contains("agreement: 1003"), "{}", run.show());
    assert!(run.stdout.contains("vlan 100"), "{}", run.show());
    let run = explain(&policy, &[&args[..], &["--vlan", "200"]].concat()).success();
    assert!(run.stdout.starts_with("DROP"), "{}", run.show());
    let run = explain(&policy, &args).success();
    assert!(run.stdout.starts_with("DROP"), "untagged: {}", run.show());
    // A VLAN outside 1-4094 is an error naming it.
    explain(&policy, &[&args[..], &["--vlan", "4095"]].concat())
        .failure()
        .stderr_has(&["4095"]);
}

#[test]
fn explain_json_shape_and_values() {
    if !support::netns::root_or_skip() {
        return;
    }
    let policy = TempFile::with(".toml", POLICY.as_bytes());
    let p = parse_toml(POLICY).unwrap();
    let cases: [(&[&str], Spec); 3] = [
        (
            &[
                "198.51.100.10",
                "203.0.113.10",
                "tcp",
                "40000",
                "443",
                "--syn",
            ],
            Spec {
                src: ip("198.51.100.10"),
                dst: ip("203.0.113.10"),
                protocol: 6,
                sport: 40000,
                dport: 443,
                vlan: None,
                tcp_flags: 0x02,
                ext_headers: 0,
            },
        ),
        (
            &[
                "198.51.100.10",
                "203.0.113.10",
                "tcp",
                "40000",
                "22",
                "--syn",
            ],
            Spec {
                src: ip("198.51.100.10"),
                dst: ip("203.0.113.10"),
                protocol: 6,
                sport: 40000,
                dport: 22,
                vlan: None,
                tcp_flags: 0x02,
                ext_headers: 0,
            },
        ),
        (
            &[
                "203.0.113.10",
                "198.51.100.10",
                "tcp",
                "443",
                "40000",
                "--syn",
            ],
            Spec {
                src: ip("203.0.113.10"),
                dst: ip("198.51.100.10"),
                protocol: 6,
                sport: 443,
                dport: 40000,
                vlan: None,
                tcp_flags: 0x02,
                ext_headers: 0,
            },
        ),
    ];
    for (args, spec) in cases {
        let run = explain(&policy, &[args, &["--json"]].concat()).success();
        let lines: Vec<&str> = run.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "one object: {}", run.show());
        let obj = parse_verdict_line(lines[0], &run);
        let frame = frames::build(&spec).unwrap();
        let v = Replayer::new(&p, date()).unwrap().judge(&frame).unwrap();
        assert_eq!(obj, expected_object(&v), "{}", run.show());
    }
}

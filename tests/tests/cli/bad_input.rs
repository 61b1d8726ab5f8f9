//! Bad input: invalid policies refused with a located message by every command; missing and non-capture files; mixed address families.

use super::*;

/// Runs `check`, `replay` and `explain` on an invalid policy; each must refuse it with the
/// same message parts.
fn refused_everywhere(policy_text: &str, parts: &[&str]) {
    let policy = TempFile::with(".toml", policy_text.as_bytes());
    let capture = write_pcap(&frames());
    let runs = [
        sdn_loader(&["check", "--policy", policy.arg(), "--date", DATE]),
        replay_run(&policy, &capture, &["--json", "--date", DATE]),
        explain(&policy, "198.51.100.10 203.0.113.10 tcp 40000 443 --syn"),
    ];
    for run in runs {
        let run = run.failure();
        run.stderr_has(parts).stderr_has(&[policy.arg()]);
        assert!(
            run.stdout.trim().is_empty(),
            "nothing on stdout for a refused policy: {}",
            run.show()
        );
    }
}

#[test]
fn refuses_prefix_with_host_bits() {
    let text = POLICY.replace(
        r#"prefixes = ["198.51.100.0/24", "2001:db8:100::/64"]"#,
        r#"prefixes = ["198.51.100.7/24", "2001:db8:100::/64"]"#,
    );
    assert_ne!(text, POLICY);
    refused_everywhere(
        &text,
        &[
            "client \"clinic\"",
            "`prefixes`",
            "198.51.100.7/24",
            "did you mean 198.51.100.0/24",
        ],
    );
}

#[test]
fn refuses_unknown_client() {
    let text = POLICY.replace(
        "id = 1003\nclient = \"clinic\"",
        "id = 1003\nclient = \"clinik\"",
    );
    assert_ne!(text, POLICY);
    refused_everywhere(
        &text,
        &["agreement 1003", "`client`", "unknown client \"clinik\""],
    );
}

#[test]
fn refuses_duplicate_agreement_id() {
    let text = POLICY.replace("id = 1002\n", "id = 1001\n");
    assert_ne!(text, POLICY);
    refused_everywhere(&text, &["agreement 1001", "`id`", "duplicate", "1001"]);
}

#[test]
fn refuses_inverted_port_range() {
    let text = POLICY.replace(
        r#"protocol = "tcp", ports = "443" },
  { address = "203.0.113.10", protocol = "icmp" }"#,
        r#"protocol = "tcp", ports = "500-400" },
  { address = "203.0.113.10", protocol = "icmp" }"#,
    );
    assert_ne!(text, POLICY);
    refused_everywhere(
        &text,
        &["service \"fmk\"", "endpoint[0]", "`ports`", "500-400"],
    );
}

#[test]
fn reports_every_error_at_once() {
    let text = POLICY
        .replace("198.51.100.0/24", "198.51.100.7/24")
        .replace("id = 1002\n", "id = 1001\n");
    let policy = TempFile::with(".toml", text.as_bytes());
    sdn_loader(&["check", "--policy", policy.arg()])
        .failure()
        .stderr_has(&["2 errors", "198.51.100.0/24", "duplicate"]);
}

#[test]
fn missing_policy_file() {
    let missing = TempFile::new(".toml");
    sdn_loader(&["check", "--policy", missing.arg()])
        .failure()
        .stderr_has(&[missing.arg()]);
}

#[test]
fn missing_pcap_file() {
    let policy = TempFile::with(".toml", POLICY.as_bytes());
    let missing = TempFile::new(".pcap");
    let run = replay_run(&policy, &missing, &["--json"]).failure();
    run.stderr_has(&[missing.arg()]);
    assert!(run.stdout.trim().is_empty(), "{}", run.show());
}

#[test]
fn not_a_capture_file() {
    let policy = TempFile::with(".toml", POLICY.as_bytes());
    for content in [
        &b"this is not a capture, just some text that is long enough\n"[..],
        &b""[..],
        // A pcap header followed by a packet record cut short.
        &{
            let mut v = std::fs::read(write_pcap(&frames()[..1]).path()).unwrap();
            v.truncate(24 + 10);
            v
        }[..],
    ] {
        let bogus = TempFile::with(".pcap", content);
        let run = replay_run(&policy, &bogus, &["--json"]).failure();
        run.stderr_has(&[bogus.arg()]);
    }
}

#[test]
fn explain_mixed_families() {
    let policy = TempFile::with(".toml", POLICY.as_bytes());
    explain(&policy, "198.51.100.10 2001:db8:300::10 tcp 40000 443")
        .failure()
        .stderr_has(&["198.51.100.10", "2001:db8:300::10", "famil"]);
    explain(&policy, "2001:db8:100::10 203.0.113.10 udp 40000 53")
        .failure()
        .stderr_has(&["2001:db8:100::10", "203.0.113.10", "famil"]);
}

#[test]
fn explain_bad_arguments() {
    let policy = TempFile::with(".toml", POLICY.as_bytes());
    explain(&policy, "198.51.100.10 203.0.113.10 tpc 40000 443")
        .failure()
        .stderr_has(&["tpc"]);
    explain(&policy, "198.51.100.300 203.0.113.10 tcp")
        .failure()
        .stderr_has(&["198.51.100.300"]);
    explain(&policy, "198.51.100.10 203.0.113.10 tcp 40000 70000")
        .failure()
        .stderr_has(&["70000"]);
}

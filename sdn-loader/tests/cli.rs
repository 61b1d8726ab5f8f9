//! Integration tests of the `sdn-loader` binary's operator surface: `replay`, `explain` and
//! `check`, run as a separate process the way an operator runs them.
//!
//! - `replay --json` on a pcap and on a pcapng of varied frames: every stdout line is an object
//!   with exactly the documented keys and types, and the values equal what the library's
//!   `Replayer` decides for the same frames in the same order (same policy, same date).
//! - `explain`: PASS with agreement and endpoint, DROP with the reason, a reply SYN, VLANs,
//!   `--json` in the replay shape.
//! - Bad input: invalid policies (host bits, unknown reference, duplicate id, inverted port
//!   range) are refused by `check`, `replay` and `explain` with a message naming the place;
//!   missing or non-capture pcap files and mixed address families are errors naming the input.
//! - `check` on `examples/demo-policy.toml`.
//!
//! Only documentation addresses are used. Needs root (the binary loads the real program).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::NaiveDate;
use pcap_file::DataLink;
use pcap_file::pcap::{PcapPacket, PcapWriter};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
use sdn_loader::policy::parse_toml;
use sdn_loader::tools::frames::{self, Spec};
use sdn_loader::tools::replay::{Replayer, Verdict};
use serde_json::Value;
use support::generate::{Packet, arp_frame, tcp};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// The date every policy is judged as of, on the command line and in the library.
const DATE: &str = "2025-06-15";

fn date() -> NaiveDate {
    NaiveDate::parse_from_str(DATE, "%Y-%m-%d").unwrap()
}

/// A valid policy: clinic (198.51.100.0/24, 2001:db8:100::/64) may reach fmk (tcp 443, icmp,
/// IPv6 tcp 443) under 1001, and pacs (dicom) only on VLAN 100 under 1003; the lab's
/// agreement 1002 is revoked.
const POLICY: &str = include_str!("fixtures/cli-policy.toml");

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A file under the temp directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    /// A new, unique, not yet existing path ending in `suffix`.
    fn new(suffix: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Self(std::env::temp_dir().join(format!(
            "sdn-cli-test-{}-{n}-{nanos}{suffix}",
            std::process::id()
        )))
    }

    /// A new file with this content.
    fn with(suffix: &str, content: &[u8]) -> Self {
        let f = Self::new(suffix);
        std::fs::write(&f.0, content).unwrap();
        f
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The replayed frames, with a name each for messages.
fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let client = v4([198, 51, 100, 10]);
    let service = v4([203, 0, 113, 10]);
    let lab = v4([192, 0, 2, 5]);
    let syn = Packet::tcp(client, service, 40000, 443, tcp::SYN);
    let syn_ack = {
        let mut p = Packet::tcp(service, client, 443, 40000, tcp::SYN | tcp::ACK);
        p.ident = 0x0202;
        p
    };
    let ack = Packet::tcp(client, service, 40000, 443, tcp::ACK);
    // An IPv4 header claiming IHL 4 (16 bytes): shorter than the minimum.
    let mut bad_ihl = Packet::tcp(client, service, 40001, 443, tcp::SYN).build();
    bad_ihl[14] = 0x44;
    // An IPv4 frame cut inside the IP header.
    let mut cut = Packet::tcp(client, service, 40002, 443, tcp::SYN).build();
    cut.truncate(14 + 12);
    vec![
        ("allowed forward SYN", syn.build()),
        ("its reply SYN+ACK", syn_ack.build()),
        ("established ACK", ack.build()),
        (
            "denied port 22",
            Packet::tcp(client, service, 40003, 22, tcp::SYN).build(),
        ),
        (
            "revoked agreement",
            Packet::tcp(lab, service, 40004, 443, tcp::SYN).build(),
        ),
        (
            "ARP",
            arp_frame(
                &[],
                Ipv4Addr::new(198, 51, 100, 10),
                Ipv4Addr::new(198, 51, 100, 1),
                false,
            ),
        ),
        ("malformed IHL", bad_ihl),
        ("truncated IPv4 header", cut),
        (
            "IPv6 SYN",
            Packet::tcp(
                ip("2001:db8:100::10"),
                ip("2001:db8:300::10"),
                40005,
                443,
                tcp::SYN,
            )
            .build(),
        ),
        (
            "ICMP echo request",
            Packet::echo(client, service, true, 7).build(),
        ),
        (
            "ICMP echo reply",
            Packet::echo(service, client, false, 7).build(),
        ),
        (
            "service opens a connection (reply SYN)",
            Packet::tcp(service, client, 443, 40006, tcp::SYN).build(),
        ),
        ("runt (10 bytes)", vec![0x02; 10]),
    ]
}

fn write_pcap(frames: &[(&str, Vec<u8>)]) -> TempFile {
    let f = TempFile::new(".pcap");
    let file = std::fs::File::create(f.path()).unwrap();
    let mut w = PcapWriter::new(file).unwrap();
    for (i, (_, data)) in frames.iter().enumerate() {
        let p = PcapPacket::new(Duration::from_millis(i as u64), data.len() as u32, data);
        w.write_packet(&p).unwrap();
    }
    drop(w);
    f
}

fn write_pcapng(frames: &[(&str, Vec<u8>)]) -> TempFile {
    let f = TempFile::new(".pcapng");
    let file = std::fs::File::create(f.path()).unwrap();
    let mut w = PcapNgWriter::new(file).unwrap();
    w.write_pcapng_block(InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen: 0xffff,
        options: vec![],
    })
    .unwrap();
    for (i, (_, data)) in frames.iter().enumerate() {
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_millis(i as u64),
            original_len: data.len() as u32,
            data: Cow::Borrowed(data),
            options: vec![],
        })
        .unwrap();
    }
    drop(w);
    f
}

// ---------------------------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------------------------

struct Run {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
    cmdline: String,
}

impl Run {
    fn show(&self) -> String {
        format!(
            "`{}` exited {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline, self.code, self.stdout, self.stderr
        )
    }

    fn success(self) -> Self {
        assert!(self.ok, "expected success: {}", self.show());
        self
    }

    fn failure(self) -> Self {
        assert!(!self.ok, "expected a non-zero exit: {}", self.show());
        assert!(
            self.code.is_some_and(|c| c != 0),
            "expected an exit code, not a signal: {}",
            self.show()
        );
        assert!(
            !self.stderr.trim().is_empty(),
            "expected an error message on stderr: {}",
            self.show()
        );
        self
    }

    /// Asserts stderr contains every string.
    fn stderr_has(&self, parts: &[&str]) -> &Self {
        for p in parts {
            assert!(
                self.stderr.contains(p),
                "stderr should mention {p:?}: {}",
                self.show()
            );
        }
        self
    }
}

fn sdn_loader(args: &[&str]) -> Run {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_sdn-loader"))
        .args(args)
        .env_remove("SDN_LOG")
        .output()
        .expect("running sdn-loader");
    Run {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
        cmdline: format!("sdn-loader {}", args.join(" ")),
    }
}

/// What the library decides for these frames, in order, in one instance.
fn library_verdicts(policy: &str, frames: &[(&str, Vec<u8>)]) -> Vec<Verdict> {
    let p = parse_toml(policy).unwrap();
    let mut r = Replayer::new(&p, date()).unwrap();
    frames.iter().map(|(_, f)| r.judge(f).unwrap()).collect()
}

const KEYS: [&str; 6] = [
    "index",
    "verdict",
    "agreement",
    "direction",
    "reason",
    "transaction",
];

/// Parses one `--json` line and checks its shape (exact keys, value types).
fn parse_verdict_line(line: &str, run: &Run) -> serde_json::Map<String, Value> {
    let v: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\n{}", run.show()));
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not a JSON object: {line:?}"))
        .clone();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = KEYS.to_vec();
    want.sort_unstable();
    assert_eq!(keys, want, "keys of {line:?}");
    assert!(obj["index"].is_u64(), "index of {line:?}");
    assert!(
        matches!(obj["verdict"].as_str(), Some("pass" | "drop")),
        "verdict of {line:?}"
    );
    assert!(
        obj["agreement"].is_null() || obj["agreement"].is_u64(),
        "agreement of {line:?}"
    );
    assert!(
        obj["direction"].is_null()
            || matches!(obj["direction"].as_str(), Some("forward" | "reply")),
        "direction of {line:?}"
    );
    assert!(
        obj["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "reason of {line:?}"
    );
    assert!(obj["transaction"].is_boolean(), "transaction of {line:?}");
    obj
}

/// The JSON object the library's verdict stands for.
fn expected_object(v: &Verdict) -> serde_json::Map<String, Value> {
    let direction = match v.direction {
        Some(sdn_loader::tools::replay::Direction::Forward) => Value::from("forward"),
        Some(sdn_loader::tools::replay::Direction::Reply) => Value::from("reply"),
        None => Value::Null,
    };
    let mut m = serde_json::Map::new();
    m.insert("index".into(), Value::from(v.index));
    m.insert(
        "verdict".into(),
        Value::from(if v.passed() { "pass" } else { "drop" }),
    );
    m.insert(
        "agreement".into(),
        v.agreement.map_or(Value::Null, Value::from),
    );
    m.insert("direction".into(), direction);
    m.insert("reason".into(), Value::from(v.reason));
    m.insert("transaction".into(), Value::from(v.transaction));
    m
}

// ---------------------------------------------------------------------------------------------
// 1. replay
// ---------------------------------------------------------------------------------------------

/// Sanity of the library's own answers for the fixture, so a broken fixture (or a program that
/// drops everything) cannot make the CLI comparison vacuous.
fn check_library_expectations(frames: &[(&str, Vec<u8>)], lib: &[Verdict]) {
    let by_name = |name: &str| {
        let i = frames.iter().position(|(n, _)| *n == name).unwrap();
        &lib[i]
    };
    let expect = |name: &str, pass: bool, agreement: Option<u32>, reason: &str, txn: bool| {
        let v = by_name(name);
        assert_eq!(
            (v.passed(), v.agreement, v.reason, v.transaction),
            (pass, agreement, reason, txn),
            "library verdict for {name}: {v:?}"
        );
    };
    expect("allowed forward SYN", true, Some(1001), "forward", true);
    expect("its reply SYN+ACK", true, Some(1001), "reply", false);
    expect(
        "established ACK",
        true,
        Some(1001),
        "established-forward",
        false,
    );
    expect("denied port 22", false, None, "no-agreement", false);
    expect("revoked agreement", false, None, "no-agreement", false);
    expect("ARP", true, None, "non-ip", false);
    expect("IPv6 SYN", true, Some(1001), "forward", true);
    expect("ICMP echo request", true, Some(1001), "forward", true);
    expect("ICMP echo reply", true, Some(1001), "reply", false);
    expect(
        "service opens a connection (reply SYN)",
        false,
        None,
        "reply-syn",
        false,
    );
    for name in ["malformed IHL", "truncated IPv4 header", "runt (10 bytes)"] {
        assert!(
            !by_name(name).passed(),
            "{name} must drop: {:?}",
            by_name(name)
        );
    }
}

/// Runs `replay --json` on `capture` and compares every line with the library.
fn replay_json_matches_library(capture: &TempFile) {
    let policy = TempFile::with(".toml", POLICY.as_bytes());
    let frames = frames();
    let lib = library_verdicts(POLICY, &frames);
    check_library_expectations(&frames, &lib);

    let run = sdn_loader(&[
        "replay",
        "--policy",
        policy.arg(),
        "--pcap",
        capture.arg(),
        "--json",
        "--date",
        DATE,
    ])
    .success();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        frames.len(),
        "one line per frame: {}",
        run.show()
    );
    for (i, line) in lines.iter().enumerate() {
        let obj = parse_verdict_line(line, &run);
        assert_eq!(obj["index"], Value::from(i), "index in order: {line}");
        assert_eq!(
            obj,
            expected_object(&lib[i]),
            "frame {i} ({}): CLI vs library",
            frames[i].0
        );
    }
    let summary = run
        .stderr
        .lines()
        .find(|l| l.contains("frames"))
        .unwrap_or_else(|| panic!("no summary line on stderr: {}", run.show()));
    let passed = lib.iter().filter(|v| v.passed()).count();
    let transactions = lib.iter().filter(|v| v.transaction).count();
    for part in [
        format!("{} frames", frames.len()),
        format!("{passed} passed"),
        format!("{} dropped", frames.len() - passed),
        format!("{transactions} transactions"),
    ] {
        assert!(
            summary.contains(&part),
            "summary {summary:?} should say {part:?}"
        );
    }
    assert!(
        !run.stdout.contains(" frames: "),
        "the summary belongs on stderr, not stdout: {}",
        run.show()
    );
}

#[test]
fn replay_json_pcap_matches_library() {
    if !support::netns::root_or_skip() {
        return;
    }
    let capture = write_pcap(&frames());
    replay_json_matches_library(&capture);
}

#[test]
fn replay_json_pcapng_matches_library() {
    if !support::netns::root_or_skip() {
        return;
    }
    let capture = write_pcapng(&frames());
    replay_json_matches_library(&capture);
}

#[test]
fn replay_text_one_line_per_frame() {
    if !support::netns::root_or_skip() {
        return;
    }
    let policy = TempFile::with(".toml", POLICY.as_bytes());
    let frames = frames();
    let lib = library_verdicts(POLICY, &frames);
    for capture in [write_pcap(&frames), write_pcapng(&frames)] {
        let run = sdn_loader(&[
            "replay",
            "--policy",
            policy.arg(),
            "--pcap",
            capture.arg(),
            "--date",
            DATE,
        ])
        .success();
        let lines: Vec<&str> = run.stdout.lines().collect();
        assert_eq!(
            lines.len(),
            frames.len(),
            "one line per frame: {}",
            run.show()
        );
        for (i, (line, v)) in lines.iter().zip(&lib).enumerate() {
            let words: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(
                words.first(),
                Some(&i.to_string().as_str()),
                "index: {line:?}"
            );
            let verdict = if v.passed() { "pass" } else { "drop" };
            assert!(
                words.contains(&verdict),
                "frame {i}: {line:?} should say {verdict}"
            );
            assert!(
                words.contains(&v.reason),
                "frame {i}: {line:?} should say {}",
                v.reason
            );
            if let Some(a) = v.agreement {
                assert!(
                    words.contains(&a.to_string().as_str()),
                    "frame {i}: {line:?} should name agreement {a}"
                );
            }
            assert_eq!(
                words.contains(&"transaction"),
                v.transaction,
                "frame {i}: {line:?} transaction flag"
            );
        }
        assert!(
            run.stderr.contains(&format!("{} frames", frames.len())),
            "summary on stderr: {}",
            run.show()
        );
    }
}

#[test]
fn replay_empty_capture() {
    if !support::netns::root_or_skip() {
        return;
    }
    let policy = TempFile::with(".toml", POLICY.as_bytes());
    let capture = write_pcap(&[]);
    let run = sdn_loader(&[
        "replay",
        "--policy",
        policy.arg(),
        "--pcap",
        capture.arg(),
        "--json",
        "--date",
        DATE,
    ])
    .success();
    assert!(run.stdout.trim().is_empty(), "{}", run.show());
    run.stderr_has(&["0 frames"]);
}

#[test]
fn replay_refuses_captures_that_are_not_ethernet() {
    let policy = TempFile::with(".toml", POLICY.as_bytes());
    let capture = TempFile::new(".pcap");
    let file = std::fs::File::create(capture.path()).unwrap();
    let header = pcap_file::pcap::PcapHeader {
        datalink: DataLink::RAW,
        ..Default::default()
    };
    let mut w = PcapWriter::with_header(file, header).unwrap();
    let frame = frames()[0].1.clone();
    w.write_packet(&PcapPacket::new(
        Duration::ZERO,
        frame.len() as u32,
        &frame[14..],
    ))
    .unwrap();
    drop(w);
    let run = sdn_loader(&["replay", "--policy", policy.arg(), "--pcap", capture.arg()]).failure();
    run.stderr_has(&[capture.arg(), "link type", "not Ethernet"]);
    assert!(run.stdout.trim().is_empty(), "{}", run.show());
}

// ---------------------------------------------------------------------------------------------
// 2. explain
// ---------------------------------------------------------------------------------------------

fn explain(policy: &TempFile, args: &[&str]) -> Run {
    let mut all = vec!["explain", "--policy", policy.arg(), "--date", DATE];
    all.extend_from_slice(args);
    sdn_loader(&all)
}

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

// ---------------------------------------------------------------------------------------------
// 3. Bad input
// ---------------------------------------------------------------------------------------------

/// Runs `check`, `replay` and `explain` on an invalid policy; each must refuse it with the
/// same message parts.
fn refused_everywhere(policy_text: &str, parts: &[&str]) {
    let policy = TempFile::with(".toml", policy_text.as_bytes());
    let capture = write_pcap(&frames());
    let runs = [
        sdn_loader(&["check", "--policy", policy.arg(), "--date", DATE]),
        sdn_loader(&[
            "replay",
            "--policy",
            policy.arg(),
            "--pcap",
            capture.arg(),
            "--json",
            "--date",
            DATE,
        ]),
        explain(
            &policy,
            &[
                "198.51.100.10",
                "203.0.113.10",
                "tcp",
                "40000",
                "443",
                "--syn",
            ],
        ),
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
    let run = sdn_loader(&[
        "replay",
        "--policy",
        policy.arg(),
        "--pcap",
        missing.arg(),
        "--json",
    ])
    .failure();
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
        let run = sdn_loader(&[
            "replay",
            "--policy",
            policy.arg(),
            "--pcap",
            bogus.arg(),
            "--json",
        ])
        .failure();
        run.stderr_has(&[bogus.arg()]);
    }
}

#[test]
fn explain_mixed_families() {
    let policy = TempFile::with(".toml", POLICY.as_bytes());
    explain(
        &policy,
        &["198.51.100.10", "2001:db8:300::10", "tcp", "40000", "443"],
    )
    .failure()
    .stderr_has(&["198.51.100.10", "2001:db8:300::10", "famil"]);
    explain(
        &policy,
        &["2001:db8:100::10", "203.0.113.10", "udp", "40000", "53"],
    )
    .failure()
    .stderr_has(&["2001:db8:100::10", "203.0.113.10", "famil"]);
}

#[test]
fn explain_bad_arguments() {
    let policy = TempFile::with(".toml", POLICY.as_bytes());
    explain(
        &policy,
        &["198.51.100.10", "203.0.113.10", "tpc", "40000", "443"],
    )
    .failure()
    .stderr_has(&["tpc"]);
    explain(&policy, &["198.51.100.300", "203.0.113.10", "tcp"])
        .failure()
        .stderr_has(&["198.51.100.300"]);
    explain(
        &policy,
        &["198.51.100.10", "203.0.113.10", "tcp", "40000", "70000"],
    )
    .failure()
    .stderr_has(&["70000"]);
}

// ---------------------------------------------------------------------------------------------
// 4. check
// ---------------------------------------------------------------------------------------------

#[test]
fn check_demo_policy() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo-policy.toml");
    let demo_arg = demo.to_str().unwrap();
    let run = sdn_loader(&["check", "--policy", demo_arg, "--date", DATE]).success();
    // The counts, as the library computes them for the same file and date.
    let p = sdn_loader::policy::load_file(&demo).unwrap();
    let c = sdn_loader::compile::compile(&p, date()).unwrap();
    for part in [
        format!("{} organisations", p.organisations.len()),
        format!("{} services", p.services.len()),
        format!("{} clients", p.clients.len()),
        format!("{} agreements", p.agreements.len()),
        format!("{} in force on {DATE}", c.agreements.len()),
        format!("{} prefix entries", c.prefixes.len()),
        format!("{} rule entries", c.rule_entries()),
    ] {
        assert!(
            run.stdout.contains(&part),
            "should say {part:?}: {}",
            run.show()
        );
    }
    // Without --date (today) it succeeds too.
    sdn_loader(&["check", "--policy", demo_arg]).success();
}

#[test]
fn check_counts_of_fixture() {
    let policy = TempFile::with(".toml", POLICY.as_bytes());
    let run = sdn_loader(&["check", "--policy", policy.arg(), "--date", DATE]).success();
    for part in [
        "2 organisations",
        "2 services",
        "2 clients",
        "3 agreements",
        &format!("(2 in force on {DATE})"),
    ] {
        assert!(
            run.stdout.contains(part),
            "should say {part:?}: {}",
            run.show()
        );
    }
    // JSON policies with the same structure are accepted as well.
    let value: toml::Value = toml::from_str(POLICY).unwrap();
    let json = TempFile::with(".json", serde_json::to_string(&value).unwrap().as_bytes());
    let run = sdn_loader(&["check", "--policy", json.arg(), "--date", DATE]).success();
    assert!(
        run.stdout.contains("3 agreements (2 in force"),
        "{}",
        run.show()
    );
}

#[test]
fn run_refuses_a_missing_interface_and_leaves_nothing_behind() {
    let policy = TempFile::with(".toml", POLICY.as_bytes());
    let pin_dir = format!("/sys/fs/bpf/sdn-cli-test-{}", std::process::id());
    let run = sdn_loader(&[
        "run",
        "--iface",
        "sdnnosuch0",
        "--policy",
        policy.arg(),
        "--pin-dir",
        &pin_dir,
    ])
    .failure();
    run.stderr_has(&["sdnnosuch0", "does not exist"]);
    assert!(
        !std::path::Path::new(&pin_dir).exists(),
        "a failed run left pins in {pin_dir}"
    );
}

#[test]
fn run_refuses_a_bad_policy_before_touching_anything() {
    let bad = POLICY.replace("198.51.100.0/24", "198.51.100.7/24");
    assert_ne!(bad, POLICY, "the test policy must contain 198.51.100.0/24");
    let policy = TempFile::with(".toml", bad.as_bytes());
    let pin_dir = format!("/sys/fs/bpf/sdn-cli-test-bad-{}", std::process::id());
    let run = sdn_loader(&[
        "run",
        "--iface",
        "sdnnosuch1",
        "--policy",
        policy.arg(),
        "--pin-dir",
        &pin_dir,
    ])
    .failure();
    run.stderr_has(&["198.51.100.7/24", "198.51.100.0/24"]);
    assert!(
        !std::path::Path::new(&pin_dir).exists(),
        "a refused policy left pins in {pin_dir}"
    );
}

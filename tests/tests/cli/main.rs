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
//!
//! One module per command (replay, explain, check) and one for bad input; this file holds
//! the fixtures and the runner.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

use sdn_tests as support;

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
const POLICY: &str = include_str!("../../fixtures/cli-policy.toml");

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

    /// Exactly exit code `code` (README "Exit codes").
    fn exits(self, code: i32) -> Self {
        assert_eq!(self.code, Some(code), "exit code: {}", self.show());
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
    let out: Output = Command::new(&*support::netns::LOADER)
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

/// `sdn-loader replay --policy P --pcap C` and `extra` arguments (`--date` is the caller's).
fn replay_run(policy: &TempFile, capture: &TempFile, extra: &[&str]) -> Run {
    let mut all = vec!["replay", "--policy", policy.arg(), "--pcap", capture.arg()];
    all.extend_from_slice(extra);
    sdn_loader(&all)
}

/// Runs `explain` on `policy` as of [`DATE`] with `args`, split at spaces (written as one
/// string, the way a user types them).
fn explain(policy: &TempFile, args: &str) -> Run {
    let mut all = vec!["explain", "--policy", policy.arg(), "--date", DATE];
    all.extend(args.split(' '));
    sdn_loader(&all)
}

mod bad_input;
mod check;
mod explain;
mod replay;

//! Table-driven tests of crafted frames through the real XDP program (BPF_PROG_TEST_RUN via
//! `Replayer`), one table per group of clauses of docs/semantics.md "Verdict rules" (summarised in
//! the header of `tests/support/oracle.rs`).
//!
//! Each table runs in order through ONE program instance, so flows and fragments recorded by
//! earlier cases are seen by later ones. Every case states the verdict, the agreement and
//! direction it counts to, the reason and whether it starts a transaction. After the table, the
//! per-agreement counters (packets, bytes, transactions per direction) and the per-reason
//! counters must equal what the table implies, so counting follows the same answers.
//!
//! Only documentation addresses are used (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
//! 2001:db8::/32). "Today" is fixed; expiry dates are written relative to it.
//!
//! Needs root (BPF).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use chrono::{Days, NaiveDate};
use sdn_loader::policy::parse_toml;
use sdn_loader::tools::replay::{Action, Direction, Replayer};
use support::generate::{Ext, L4, Packet, arp_frame, frame_with_tags};

// ---------------------------------------------------------------------------------------------
// Fixed date
// ---------------------------------------------------------------------------------------------

/// The UTC date the policies are compiled for.
const TODAY: (i32, u32, u32) = (2025, 6, 15);

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(TODAY.0, TODAY.1, TODAY.2).unwrap()
}

/// `today + days` as a policy date string (negative: in the past).
fn day(days: i64) -> String {
    let d = if days >= 0 {
        today().checked_add_days(Days::new(days.unsigned_abs()))
    } else {
        today().checked_sub_days(Days::new(days.unsigned_abs()))
    };
    d.unwrap().format("%Y-%m-%d").to_string()
}

// ---------------------------------------------------------------------------------------------
// Cases and the runner
// ---------------------------------------------------------------------------------------------

/// One crafted frame and everything the program must decide about it.
struct Case {
    name: &'static str,
    frame: Vec<u8>,
    verdict: Action,
    agreement: Option<u32>,
    direction: Option<Direction>,
    reason: &'static str,
    transaction: bool,
}

const FWD: Option<Direction> = Some(Direction::Forward);
const REP: Option<Direction> = Some(Direction::Reply);

/// A first forward packet under agreement `id`.
fn forward(name: &'static str, frame: Vec<u8>, id: u32, transaction: bool) -> Case {
    Case {
        name,
        frame,
        verdict: Action::Pass,
        agreement: Some(id),
        direction: FWD,
        reason: "forward",
        transaction,
    }
}

/// A first reply packet under agreement `id` (never a transaction).
fn reply(name: &'static str, frame: Vec<u8>, id: u32) -> Case {
    Case {
        name,
        frame,
        verdict: Action::Pass,
        agreement: Some(id),
        direction: REP,
        reason: "reply",
        transaction: false,
    }
}

/// A forward packet of a flow in the flow table.
fn est_forward(name: &'static str, frame: Vec<u8>, id: u32) -> Case {
    Case {
        name,
        frame,
        verdict: Action::Pass,
        agreement: Some(id),
        direction: FWD,
        reason: "established-forward",
        transaction: false,
    }
}

/// A reply packet of a flow in the flow table.
fn est_reply(name: &'static str, frame: Vec<u8>, id: u32) -> Case {
    Case {
        name,
        frame,
        verdict: Action::Pass,
        agreement: Some(id),
        direction: REP,
        reason: "established-reply",
        transaction: false,
    }
}

/// A pass counted to an agreement that is never a transaction (`icmp-error`, `fragment`).
fn counted(
    name: &'static str,
    frame: Vec<u8>,
    reason: &'static str,
    id: u32,
    direction: Option<Direction>,
) -> Case {
    Case {
        name,
        frame,
        verdict: Action::Pass,
        agreement: Some(id),
        direction,
        reason,
        transaction: false,
    }
}

/// A pass counted to no agreement (`non-ip`, `infrastructure`, `neighbour-discovery`, ...).
fn plain(name: &'static str, frame: Vec<u8>, reason: &'static str) -> Case {
    Case {
        name,
        frame,
        verdict: Action::Pass,
        agreement: None,
        direction: None,
        reason,
        transaction: false,
    }
}

/// A drop.
fn dropped(name: &'static str, frame: Vec<u8>, reason: &'static str) -> Case {
    Case {
        name,
        frame,
        verdict: Action::Drop,
        agreement: None,
        direction: None,
        reason,
        transaction: false,
    }
}

fn hex(frame: &[u8]) -> String {
    frame.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Per-agreement counters as the table implies them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    forward_packets: u64,
    forward_bytes: u64,
    reply_packets: u64,
    reply_bytes: u64,
    transactions: u64,
}

/// Runs `cases` in order through one program instance loaded with `policy_toml`; checks every
/// field of every verdict, then the agreement and reason counters.
fn run(table: &str, policy_toml: &str, cases: &[Case]) {
    let policy = parse_toml(policy_toml).unwrap_or_else(|e| panic!("{table}: policy: {e}"));
    let mut kernel =
        Replayer::new(&policy, today()).unwrap_or_else(|e| panic!("{table}: load: {e}"));

    let mut names = std::collections::HashSet::new();
    for c in cases {
        assert!(
            names.insert(c.name),
            "{table}: duplicate case name {:?}",
            c.name
        );
        assert!(
            c.frame.len() >= 14,
            "{table}: case {:?} is shorter than 14 bytes",
            c.name
        );
    }

    let mut failures = Vec::new();
    let mut want_counts: BTreeMap<u32, Counts> = BTreeMap::new();
    let mut want_reasons: BTreeMap<&str, u64> = BTreeMap::new();
    for (i, c) in cases.iter().enumerate() {
        let got = kernel
            .judge(&c.frame)
            .unwrap_or_else(|e| panic!("{table}: case {i} {:?}: test run failed: {e}", c.name));
        let mut bad = Vec::new();
        if got.verdict != c.verdict {
            bad.push(format!("verdict {:?} (want {:?})", got.verdict, c.verdict));
        }
        if got.reason != c.reason {
            bad.push(format!("reason {:?} (want {:?})", got.reason, c.reason));
        }
        if got.agreement != c.agreement {
            bad.push(format!(
                "agreement {:?} (want {:?})",
                got.agreement, c.agreement
            ));
        }
        if got.direction != c.direction {
            bad.push(format!(
                "direction {:?} (want {:?})",
                got.direction, c.direction
            ));
        }
        if got.transaction != c.transaction {
            bad.push(format!(
                "transaction {} (want {})",
                got.transaction, c.transaction
            ));
        }
        if !bad.is_empty() {
            failures.push(format!(
                "  case {i} {:?}: {}\n    frame {}",
                c.name,
                bad.join(", "),
                hex(&c.frame)
            ));
        }

        *want_reasons.entry(c.reason).or_default() += 1;
        if let (Action::Pass, Some(id), Some(dir)) = (c.verdict, c.agreement, c.direction) {
            let e = want_counts.entry(id).or_default();
            let len = c.frame.len() as u64;
            match dir {
                Direction::Forward => {
                    e.forward_packets += 1;
                    e.forward_bytes += len;
                }
                Direction::Reply => {
                    e.reply_packets += 1;
                    e.reply_bytes += len;
                }
            }
            e.transactions += u64::from(c.transaction);
        }
    }

    // Counting: every passed packet counts to exactly the agreement and direction above.
    let got_counts: BTreeMap<u32, Counts> = kernel
        .dataplane()
        .agreement_counters()
        .unwrap_or_else(|e| panic!("{table}: counters: {e}"))
        .into_iter()
        .map(|(id, c)| {
            (
                id,
                Counts {
                    forward_packets: c.forward_packets,
                    forward_bytes: c.forward_bytes,
                    reply_packets: c.reply_packets,
                    reply_bytes: c.reply_bytes,
                    transactions: c.transactions,
                },
            )
        })
        .filter(|(_, c)| *c != Counts::default())
        .collect();
    if got_counts != want_counts {
        failures.push(format!(
            "  agreement counters differ:\n    kernel {got_counts:?}\n    table  {want_counts:?}"
        ));
    }

    // Every frame counts to exactly one reason.
    let got_reasons: BTreeMap<&str, u64> = kernel
        .dataplane()
        .reason_counts()
        .unwrap_or_else(|e| panic!("{table}: reason counters: {e}"))
        .into_iter()
        .filter(|(_, n)| *n != 0)
        .map(|(r, n)| (sdn_common::reason::name(r), n))
        .collect();
    if got_reasons != want_reasons {
        failures.push(format!(
            "  reason counters differ:\n    kernel {got_reasons:?}\n    table  {want_reasons:?}"
        ));
    }

    assert!(
        failures.is_empty(),
        "{table}: {} problem(s) in {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!("{table}: {} cases agree", cases.len());
}

// ---------------------------------------------------------------------------------------------
// Frame helpers
// ---------------------------------------------------------------------------------------------

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;
const ECE: u8 = 0x40;
const CWR: u8 = 0x80;

/// A client address (in every table's client prefix).
const C: &str = "198.51.100.7";
/// An IPv6 client address.
const C6: &str = "2001:db8:200::7";
/// A router that is neither client nor service (sends ICMP errors).
const R: &str = "192.0.2.254";
/// An IPv6 router.
const R6: &str = "2001:db8:ffff:ff::1";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp(src: &str, dst: &str, sport: u16, dport: u16, flags: u8) -> Packet {
    Packet::tcp(ip(src), ip(dst), sport, dport, flags)
}

fn udp(src: &str, dst: &str, sport: u16, dport: u16) -> Packet {
    Packet::udp(ip(src), ip(dst), sport, dport)
}

fn sctp(src: &str, dst: &str, sport: u16, dport: u16) -> Packet {
    Packet::sctp(ip(src), ip(dst), sport, dport)
}

/// Echo request (`request`) or reply with identifier `id`.
fn echo(src: &str, dst: &str, request: bool, id: u16) -> Packet {
    Packet::echo(ip(src), ip(dst), request, id)
}

/// Any ICMP / ICMPv6 type with a little payload.
fn icmp(src: &str, dst: &str, ty: u8) -> Packet {
    Packet::icmp(ip(src), ip(dst), ty, 0, [0, 1, 0, 2]).with_payload(vec![0x11; 12])
}

/// Any protocol number with `header` as its verbatim transport bytes.
fn raw(src: &str, dst: &str, protocol: u8, header: Vec<u8>) -> Packet {
    let mut p = Packet::raw(ip(src), ip(dst), protocol);
    p.l4 = L4::Raw { protocol, header };
    p
}

fn with_tcp_options(mut p: Packet, opts: Vec<u8>) -> Packet {
    if let L4::Tcp { options, .. } = &mut p.l4 {
        *options = opts;
    }
    p
}

fn with_ident(mut p: Packet, ident: u32) -> Packet {
    p.ident = ident;
    p
}

/// The packet as an ICMP error quotes it: IP header(s) and the first 8 transport bytes.
fn quote(p: &Packet) -> Vec<u8> {
    let mut b = p.ip_bytes();
    b.truncate(p.l4_offset() - p.l3_offset() + 8);
    b
}

/// An ICMP (v4 or v6, by the addresses) error of type `ty` quoting `quoted`.
fn icmp_error(src: &str, dst: &str, ty: u8, code: u8, quoted: Vec<u8>) -> Packet {
    Packet::icmp_error(ip(src), ip(dst), ty, code, quoted)
}

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    frame_with_tags(&[], ethertype, payload, false)
}

fn v4_frame(ip: &[u8]) -> Vec<u8> {
    eth(0x0800, ip)
}

fn v6_frame(ip: &[u8]) -> Vec<u8> {
    eth(0x86dd, ip)
}

fn set16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// IP bytes of `p` with `edit` applied.
fn edited(p: &Packet, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = p.ip_bytes();
    edit(&mut b);
    b
}

/// The transport bytes of `p` with `edit` applied, sent as that protocol's raw header.
fn raw_l4(p: &Packet, edit: impl FnOnce(&mut Vec<u8>)) -> Packet {
    let mut b = p.l4_bytes();
    edit(&mut b);
    let mut q = p.clone();
    q.l4 = L4::Raw {
        protocol: p.protocol(),
        header: b,
    };
    q.payload = Vec::new();
    q
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

const ORGS: &str = include_str!("fixtures/crafted-frames-header.toml");

// ---------------------------------------------------------------------------------------------
// Rules 4 and 5: forward and reply, protocols and port sets
// ---------------------------------------------------------------------------------------------

#[test]
fn forward_and_reply_protocols_and_ports() {
    if !support::netns::root_or_skip() {
        return;
    }
    let policy = format!(
        r#"{ORGS}
[[port_alias]]
name = "dicom"
protocol = "tcp"
ports = ["104", "11112"]

[[service]]
id = "svc"
organisation = "sds"
name = "Mixed service"
endpoints = [
  {{ address = "203.0.113.10", protocol = "tcp", ports = "8000-8100" }},
  {{ address = "203.0.113.10", protocol = "udp", ports = ["53", "5000-5010"] }},
  {{ address = "203.0.113.10", protocol = "sctp", ports = "3868" }},
  {{ address = "203.0.113.20", protocol = "tcp", ports = "dicom" }},
  {{ address = "203.0.113.21", protocol = "tcp", ports = ["dicom", "4242"] }},
  {{ address = "203.0.113.30", protocol = "tcp" }},
  {{ address = "203.0.113.40", protocol = "any" }},
  {{ address = "203.0.113.50", protocol = "tcp", ports = ["1001", "1003", "1005", "1007", "1009", "1011", "1013", "1015", "1017", "1019", "1021", "1023"] }},
  {{ address = "203.0.113.60", protocol = "udp", ports = ["0", "65535"] }},
  {{ address = "2001:db8:10::/64", protocol = "tcp", ports = "443" }},
  {{ address = "2001:db8:10::/64", protocol = "udp" }},
  {{ address = "2001:db8:10::/64", protocol = "sctp", ports = "36412" }},
]

[[client]]
id = "cli"
organisation = "rsyd"
prefixes = ["198.51.100.0/25", "2001:db8:200::/48"]

[[agreement]]
id = 100
client = "cli"
service = "svc"
state = "approved"
"#
    );
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
    run("forward_and_reply_protocols_and_ports", &policy, &cases);
}

// ---------------------------------------------------------------------------------------------
// Rules 5 and 9: forward beats reply; the lowest agreement id wins and is what counts
// ---------------------------------------------------------------------------------------------

#[test]
fn forward_beats_reply_and_lowest_id_wins() {
    if !support::netns::root_or_skip() {
        return;
    }
    // Agreements are listed out of id order on purpose.
    let policy = format!(
        r#"{ORGS}
[[service]]
id = "big"
organisation = "sds"
name = "Whole /24"
endpoints = [{{ address = "203.0.113.0/24", protocol = "tcp", ports = "1000-2000" }}]

[[service]]
id = "small"
organisation = "sds"
name = "A /26 inside"
endpoints = [{{ address = "203.0.113.64/26", protocol = "tcp", ports = "1500-2500" }}]

[[service]]
id = "host"
organisation = "sds"
name = "One host inside"
endpoints = [{{ address = "203.0.113.70", protocol = "tcp", ports = ["1800", "2700"] }}]

[[service]]
id = "v6big"
organisation = "sds"
name = "v6 /48"
endpoints = [{{ address = "2001:db8:10::/48", protocol = "udp", ports = "5000-6000" }}]

[[service]]
id = "v6small"
organisation = "sds"
name = "v6 /64 inside"
endpoints = [{{ address = "2001:db8:10:5::/64", protocol = "udp", ports = "5500" }}]

[[service]]
id = "lab-svc"
organisation = "rsyd"
name = "Lab upper half"
endpoints = [{{ address = "192.0.2.128/25", protocol = "tcp" }}]

[[service]]
id = "lab2-svc"
organisation = "sds"
name = "Lab lower half"
endpoints = [{{ address = "192.0.2.0/25", protocol = "tcp" }}]

[[client]]
id = "wide"
organisation = "rsyd"
prefixes = ["198.51.100.0/24", "2001:db8:200::/48"]

[[client]]
id = "narrow"
organisation = "rsyd"
prefixes = ["198.51.100.128/25", "2001:db8:200:1::/64"]

[[client]]
id = "hostc"
organisation = "rsyd"
prefixes = ["198.51.100.200/32"]

[[client]]
id = "lab"
organisation = "sds"
prefixes = ["192.0.2.0/25"]

[[client]]
id = "lab2"
organisation = "rsyd"
prefixes = ["192.0.2.128/25"]

[[agreement]]
id = 70
client = "wide"
service = "big"
state = "approved"

[[agreement]]
id = 50
client = "wide"
service = "small"
state = "approved"

[[agreement]]
id = 40
client = "hostc"
service = "host"
state = "approved"

[[agreement]]
id = 30
client = "narrow"
service = "big"
state = "approved"

[[agreement]]
id = 60
client = "wide"
service = "v6big"
state = "approved"

[[agreement]]
id = 25
client = "narrow"
service = "v6small"
state = "approved"

[[agreement]]
id = 90
client = "lab"
service = "lab-svc"
state = "approved"

[[agreement]]
id = 6
client = "lab2"
service = "lab2-svc"
state = "approved"
"#
    );
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
    run("forward_beats_reply_and_lowest_id_wins", &policy, &cases);
}

// ---------------------------------------------------------------------------------------------
// Rule 2: VLANs
// ---------------------------------------------------------------------------------------------

#[test]
fn vlan_matching() {
    if !support::netns::root_or_skip() {
        return;
    }
    let policy = format!(
        r#"{ORGS}
[[service]]
id = "va"
organisation = "sds"
name = "VLAN service a"
endpoints = [{{ address = "203.0.113.10", protocol = "tcp", ports = ["443", "8000-8100"] }}]

[[service]]
id = "vb"
organisation = "sds"
name = "Same address, other ports"
endpoints = [{{ address = "203.0.113.10", protocol = "tcp", ports = "8050-8200" }}]

[[service]]
id = "vc"
organisation = "sds"
name = "Same address, udp"
endpoints = [{{ address = "203.0.113.10", protocol = "udp", ports = "53" }}]

[[service]]
id = "vd"
organisation = "sds"
name = "Same address, any"
endpoints = [{{ address = "203.0.113.10", protocol = "any" }}]

[[service]]
id = "open"
organisation = "sds"
name = "No VLAN"
endpoints = [
  {{ address = "203.0.113.20", protocol = "tcp", ports = "443" }},
  {{ address = "2001:db8:20::1", protocol = "tcp", ports = "443" }},
]

[[client]]
id = "cli"
organisation = "rsyd"
prefixes = ["198.51.100.0/24", "2001:db8:200::/48"]

[[agreement]]
id = 100
client = "cli"
service = "va"
state = "approved"
vlan = 100

[[agreement]]
id = 90
client = "cli"
service = "vb"
state = "approved"

[[agreement]]
id = 150
client = "cli"
service = "vc"
state = "approved"

[[agreement]]
id = 110
client = "cli"
service = "vd"
state = "approved"
vlan = 200

[[agreement]]
id = 300
client = "cli"
service = "va"
state = "approved"
vlan = 4094

[[agreement]]
id = 200
client = "cli"
service = "open"
state = "approved"
"#
    );
    let s = "203.0.113.10";
    let o = "203.0.113.20";
    let syn = |sport: u16, dport: u16| tcp(C, s, sport, dport, SYN);
    let syn_o = |sport: u16| tcp(C, o, sport, 443, SYN);
    let tagged = |p: Packet, tags: &[(u16, u16)]| {
        let mut p = p;
        p.tags = tags.to_vec();
        p.build()
    };
    let cases = [
        // An agreement with a VLAN matches only that VLAN.
        dropped(
            "vlan agreement, untagged",
            syn(1, 443).build(),
            "no-agreement",
        ),
        forward(
            "vlan agreement, 0x8100 vid 100",
            syn(2, 443).vlan(0x8100, 100).build(),
            100,
            true,
        ),
        dropped(
            "vlan agreement, vid 101",
            syn(3, 443).vlan(0x8100, 101).build(),
            "no-agreement",
        ),
        forward(
            "vlan agreement, vid 4094 -> 300",
            syn(4, 443).vlan(0x8100, 4094).build(),
            300,
            true,
        ),
        forward(
            "TPID 0x88a8",
            syn(5, 443).vlan(0x88a8, 100).build(),
            100,
            true,
        ),
        forward(
            "TPID 0x9100",
            syn(6, 443).vlan(0x9100, 100).build(),
            100,
            true,
        ),
        forward(
            "PCP and DEI bits ignored",
            tagged(syn(7, 443), &[(0x8100, (5 << 13) | 0x1000 | 100)]),
            100,
            true,
        ),
        // An agreement without a VLAN matches tagged and untagged frames.
        forward("no-vlan agreement, untagged", syn_o(8).build(), 200, true),
        forward(
            "no-vlan agreement, vid 100",
            syn_o(9).vlan(0x8100, 100).build(),
            200,
            true,
        ),
        forward(
            "no-vlan agreement, vid 7",
            syn_o(10).vlan(0x8100, 7).build(),
            200,
            true,
        ),
        forward(
            "no-vlan agreement, two tags",
            syn_o(11).vlan(0x88a8, 7).vlan(0x8100, 8).build(),
            200,
            true,
        ),
        forward(
            "no-vlan agreement, v6 vid 3000",
            tcp(C6, "2001:db8:20::1", 12, 443, SYN)
                .vlan(0x8100, 3000)
                .build(),
            200,
            true,
        ),
        // VLAN and no-VLAN agreements on the same client/endpoint pair.
        forward(
            "vid 100 port 8000: 100",
            syn(13, 8000).vlan(0x8100, 100).build(),
            100,
            true,
        ),
        forward(
            "vid 100 port 8049: 100",
            syn(14, 8049).vlan(0x8100, 100).build(),
            100,
            true,
        ),
        forward(
            "vid 100 port 8050: no-vlan 90 is lower",
            syn(15, 8050).vlan(0x8100, 100).build(),
            90,
            true,
        ),
        forward(
            "vid 100 port 8101: no-vlan 90",
            syn(16, 8101).vlan(0x8100, 100).build(),
            90,
            true,
        ),
        dropped(
            "vid 100 port 8201",
            syn(17, 8201).vlan(0x8100, 100).build(),
            "no-agreement",
        ),
        forward("untagged port 8050: 90", syn(18, 8050).build(), 90, true),
        dropped("untagged port 8000", syn(19, 8000).build(), "no-agreement"),
        forward(
            "vid 101 port 8060: 90",
            syn(20, 8060).vlan(0x8100, 101).build(),
            90,
            true,
        ),
        forward(
            "vid 100 udp 53: no-vlan 150",
            udp(C, s, 21, 53).vlan(0x8100, 100).build(),
            150,
            true,
        ),
        dropped(
            "vid 100 udp 54",
            udp(C, s, 22, 54).vlan(0x8100, 100).build(),
            "no-agreement",
        ),
        forward(
            "vid 200 tcp 9999: any 110",
            syn(23, 9999).vlan(0x8100, 200).build(),
            110,
            true,
        ),
        forward(
            "vid 200 tcp 8060: no-vlan tcp 90 < any 110",
            syn(24, 8060).vlan(0x8100, 200).build(),
            90,
            true,
        ),
        forward(
            "vid 200 udp 53: 110 < 150",
            udp(C, s, 25, 53).vlan(0x8100, 200).build(),
            110,
            true,
        ),
        forward(
            "vid 200 icmp echo: 110",
            echo(C, s, true, 26).vlan(0x8100, 200).build(),
            110,
            true,
        ),
        dropped(
            "vid 201 tcp 9999",
            syn(27, 9999).vlan(0x8100, 201).build(),
            "no-agreement",
        ),
        // Two tags: the innermost non-zero VID counts.
        forward(
            "outer 300, inner 100",
            syn(28, 443).vlan(0x88a8, 300).vlan(0x8100, 100).build(),
            100,
            true,
        ),
        dropped(
            "outer 100, inner 300",
            syn(29, 443).vlan(0x88a8, 100).vlan(0x8100, 300).build(),
            "no-agreement",
        ),
        forward(
            "outer 100, inner priority tag 0",
            syn(30, 443).vlan(0x88a8, 100).vlan(0x8100, 0).build(),
            100,
            true,
        ),
        forward(
            "outer priority tag 0, inner 100",
            syn(31, 443).vlan(0x8100, 0).vlan(0x8100, 100).build(),
            100,
            true,
        ),
        forward(
            "0x9100 outer, 0x88a8 inner 4094",
            syn(32, 443).vlan(0x9100, 5).vlan(0x88a8, 4094).build(),
            300,
            true,
        ),
        // VID 0 counts as untagged.
        dropped(
            "priority tag only, vlan agreement",
            syn(33, 443).vlan(0x8100, 0).build(),
            "no-agreement",
        ),
        forward(
            "priority tag only, no-vlan agreement",
            syn_o(34).vlan(0x8100, 0).build(),
            200,
            true,
        ),
        dropped(
            "two priority tags, vlan agreement",
            syn(35, 443).vlan(0x88a8, 0).vlan(0x8100, 0).build(),
            "no-agreement",
        ),
        forward(
            "two priority tags, no-vlan agreement",
            syn_o(36).vlan(0x88a8, 0).vlan(0x8100, 0).build(),
            200,
            true,
        ),
        forward(
            "priority tag with PCP 7",
            tagged(syn_o(37), &[(0x8100, 7 << 13)]),
            200,
            true,
        ),
        // Three or more tags.
        dropped(
            "three tags",
            syn_o(38)
                .vlan(0x88a8, 1)
                .vlan(0x8100, 2)
                .vlan(0x8100, 3)
                .build(),
            "too-many-vlan-tags",
        ),
        dropped(
            "three priority tags",
            syn_o(39)
                .vlan(0x8100, 0)
                .vlan(0x8100, 0)
                .vlan(0x8100, 0)
                .build(),
            "too-many-vlan-tags",
        ),
        dropped(
            "three tags 0x9100",
            syn(40, 443)
                .vlan(0x9100, 100)
                .vlan(0x9100, 100)
                .vlan(0x9100, 100)
                .build(),
            "too-many-vlan-tags",
        ),
        dropped(
            "three tags around ARP",
            arp_frame(
                &[(0x88a8, 1), (0x8100, 2), (0x8100, 3)],
                v4("198.51.100.1"),
                v4("198.51.100.2"),
                false,
            ),
            "too-many-vlan-tags",
        ),
        dropped(
            "four tags",
            syn_o(41)
                .vlan(0x88a8, 1)
                .vlan(0x8100, 2)
                .vlan(0x8100, 3)
                .vlan(0x8100, 4)
                .build(),
            "too-many-vlan-tags",
        ),
        // Replies with VLANs.
        reply(
            "reply on vid 100",
            tcp(s, C, 443, 2, SYN | ACK).vlan(0x8100, 100).build(),
            100,
        ),
        dropped(
            "reply untagged",
            tcp(s, C, 443, 1, SYN | ACK).build(),
            "no-agreement",
        ),
        reply(
            "reply on vid 4094",
            tcp(s, C, 443, 4, SYN | ACK).vlan(0x8100, 4094).build(),
            300,
        ),
        dropped(
            "reply SYN on vid 100",
            tcp(s, C, 443, 999, SYN).vlan(0x8100, 100).build(),
            "reply-syn",
        ),
        // The VLAN is part of the flow key.
        forward("flow on untagged", syn_o(42).build(), 200, true),
        forward(
            "same tuple on vid 7 is a new flow",
            syn_o(42).vlan(0x8100, 7).build(),
            200,
            true,
        ),
        est_forward("same tuple untagged again", syn_o(42).build(), 200),
        est_forward(
            "same tuple on vid 7 again",
            syn_o(42).vlan(0x8100, 7).build(),
            200,
        ),
        forward(
            "same tuple on vid 0 = untagged",
            syn_o(43).build(),
            200,
            true,
        ),
        est_forward(
            "same tuple, priority tag: the untagged flow",
            syn_o(43).vlan(0x8100, 0).build(),
            200,
        ),
        dropped(
            "flow of vid 100 is not valid on vid 101",
            tcp(C, s, 2, 443, ACK).vlan(0x8100, 101).build(),
            "no-agreement",
        ),
        est_forward(
            "flow of vid 100 on vid 100",
            tcp(C, s, 2, 443, ACK).vlan(0x8100, 100).build(),
            100,
        ),
        // ICMP errors: the outer frame's VLAN counts.
        counted(
            "icmp error on vid 100 quoting a vid-100 flow",
            icmp_error(R, C, 3, 4, quote(&syn(44, 443)))
                .vlan(0x8100, 100)
                .build(),
            "icmp-error",
            100,
            REP,
        ),
        dropped(
            "same icmp error untagged",
            icmp_error(R, C, 3, 4, quote(&syn(44, 443))).build(),
            "icmp-error-no-agreement",
        ),
        counted(
            "same icmp error on vid 200: any 110",
            icmp_error(R, C, 3, 4, quote(&syn(44, 443)))
                .vlan(0x8100, 200)
                .build(),
            "icmp-error",
            110,
            REP,
        ),
        // Non-IP and ND under tags.
        plain(
            "ARP on vid 100",
            arp_frame(
                &[(0x8100, 100)],
                v4("198.51.100.1"),
                v4("198.51.100.2"),
                false,
            ),
            "non-ip",
        ),
        plain(
            "LLDP under two tags",
            frame_with_tags(
                &[(0x88a8, 10), (0x8100, 20)],
                0x88cc,
                &[0x02, 0x07, 0x04, 0, 0, 0, 0, 0, 1],
                true,
            ),
            "non-ip",
        ),
        plain(
            "neighbour solicitation on vid 100",
            Packet::icmp(ip("2001:db8:200::1"), ip("2001:db8:200::2"), 135, 0, [0; 4])
                .with_payload(vec![
                    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
                ])
                .vlan(0x8100, 100)
                .build(),
            "neighbour-discovery",
        ),
        // A tag cut short.
        dropped(
            "first tag cut short",
            eth(0x8100, &[0x00, 0x64]),
            "truncated-header",
        ),
        dropped(
            "second tag cut short",
            frame_with_tags(&[(0x88a8, 100)], 0x8100, &[0x00, 0x64, 0x08], false),
            "truncated-header",
        ),
        dropped(
            "tag complete, IPv4 header missing",
            frame_with_tags(&[(0x8100, 100)], 0x0800, &[], false),
            "truncated-header",
        ),
    ];
    run("vlan_matching", &policy, &cases);
}

// ---------------------------------------------------------------------------------------------
// Rule 4: agreements in force (state and expiry)
// ---------------------------------------------------------------------------------------------

#[test]
fn agreement_state_and_expiry() {
    if !support::netns::root_or_skip() {
        return;
    }
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

// ---------------------------------------------------------------------------------------------
// Rule 6: ICMP (echo, other types, errors, neighbour discovery)
// ---------------------------------------------------------------------------------------------

#[test]
fn icmp_echo_errors_and_neighbour_discovery() {
    if !support::netns::root_or_skip() {
        return;
    }
    let policy = format!(
        r#"{ORGS}
[[service]]
id = "svc"
organisation = "sds"
name = "ICMP service"
endpoints = [
  {{ address = "203.0.113.30", protocol = "icmp" }},
  {{ address = "203.0.113.40", protocol = "any" }},
  {{ address = "203.0.113.50", protocol = "tcp", ports = "443" }},
  {{ address = "203.0.113.50", protocol = "udp", ports = "53" }},
  {{ address = "2001:db8:30::1", protocol = "icmpv6" }},
  {{ address = "2001:db8:40::1", protocol = "any" }},
  {{ address = "2001:db8:50::1", protocol = "tcp", ports = "443" }},
]

[[service]]
id = "svc2"
organisation = "sds"
name = "Same tcp endpoint"
endpoints = [{{ address = "203.0.113.50", protocol = "tcp", ports = "443" }}]

[[client]]
id = "cli"
organisation = "rsyd"
prefixes = ["198.51.100.0/24", "2001:db8:200::/48"]

[[client]]
id = "cli2"
organisation = "rsyd"
prefixes = ["198.51.100.128/25"]

[[agreement]]
id = 7
client = "cli"
service = "svc"
state = "approved"

[[agreement]]
id = 3
client = "cli2"
service = "svc2"
state = "approved"
"#
    );
    let (s30, s40, s50) = ("203.0.113.30", "203.0.113.40", "203.0.113.50");
    let (s30_6, s40_6, s50_6) = ("2001:db8:30::1", "2001:db8:40::1", "2001:db8:50::1");
    let c2 = "198.51.100.200";
    let allowed = tcp(C, s50, 40000, 443, SYN);
    let allowed6 = tcp(C6, s50_6, 40000, 443, SYN);
    let ns_payload = vec![0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    let nd = |ty: u8| {
        Packet::icmp(
            ip("2001:db8:ffff::1"),
            ip("2001:db8:ffff::2"),
            ty,
            0,
            [0; 4],
        )
        .with_payload(ns_payload.clone())
        .build()
    };
    let mut quoted_later_fragment = udp(C, s50, 40001, 53);
    quoted_later_fragment.v4_fragment = (1, false);
    let mut ihl3 = quote(&allowed);
    ihl3[0] = 0x43;
    let cases = [
        // Echo request: rule 4 only; echo reply: rule 5 only.
        forward(
            "echo request to icmp endpoint",
            echo(C, s30, true, 1).build(),
            7,
            true,
        ),
        est_forward("same echo request again", echo(C, s30, true, 1).build(), 7),
        forward(
            "echo request, other id: new flow",
            echo(C, s30, true, 2).build(),
            7,
            true,
        ),
        reply(
            "echo reply from icmp endpoint",
            echo(s30, C, false, 1).build(),
            7,
        ),
        est_reply("echo reply again", echo(s30, C, false, 1).build(), 7),
        dropped(
            "echo request from the service to the client",
            echo(s30, C, true, 3).build(),
            "no-agreement",
        ),
        dropped(
            "echo reply from the client to the service",
            echo(C, s30, false, 4).build(),
            "no-agreement",
        ),
        dropped(
            "echo request to a tcp/udp endpoint",
            echo(C, s50, true, 5).build(),
            "no-agreement",
        ),
        dropped(
            "echo request from outside the client",
            echo("192.0.2.77", s30, true, 6).build(),
            "no-agreement",
        ),
        forward(
            "echo request to any endpoint",
            echo(C, s40, true, 7).build(),
            7,
            true,
        ),
        reply(
            "echo reply from any endpoint",
            echo(s40, C, false, 7).build(),
            7,
        ),
        dropped(
            "echo request from any endpoint to client",
            echo(s40, C, true, 8).build(),
            "no-agreement",
        ),
        dropped(
            "echo reply from client to any endpoint",
            echo(C, s40, false, 9).build(),
            "no-agreement",
        ),
        // Other ICMP types: only under `any`, both ways.
        dropped(
            "timestamp (13) to icmp endpoint",
            icmp(C, s30, 13).build(),
            "no-agreement",
        ),
        dropped(
            "router advertisement v4 (9) to icmp endpoint",
            icmp(C, s30, 9).build(),
            "no-agreement",
        ),
        dropped(
            "type 134 in ICMPv4 is not ND",
            icmp(C, s30, 134).build(),
            "no-agreement",
        ),
        forward(
            "timestamp (13) to any endpoint",
            icmp(C, s40, 13).build(),
            7,
            true,
        ),
        est_forward("timestamp (13) again", icmp(C, s40, 13).build(), 7),
        reply(
            "timestamp reply (14) from any endpoint",
            icmp(s40, C, 14).build(),
            7,
        ),
        reply("redirect (5) from any endpoint", icmp(s40, C, 5).build(), 7),
        // ICMPv6.
        forward(
            "v6 echo request to icmpv6 endpoint",
            echo(C6, s30_6, true, 1).build(),
            7,
            true,
        ),
        reply(
            "v6 echo reply from icmpv6 endpoint",
            echo(s30_6, C6, false, 1).build(),
            7,
        ),
        dropped(
            "v6 echo request from the service",
            echo(s30_6, C6, true, 2).build(),
            "no-agreement",
        ),
        dropped(
            "v6 echo reply from the client",
            echo(C6, s30_6, false, 3).build(),
            "no-agreement",
        ),
        forward(
            "v6 echo request to any endpoint",
            echo(C6, s40_6, true, 4).build(),
            7,
            true,
        ),
        dropped(
            "v6 MLD query (130) to icmpv6 endpoint",
            icmp(C6, s30_6, 130).build(),
            "no-agreement",
        ),
        forward(
            "v6 MLD query (130) to any endpoint",
            icmp(C6, s40_6, 130).build(),
            7,
            true,
        ),
        reply(
            "v6 type 200 from any endpoint",
            icmp(s40_6, C6, 200).build(),
            7,
        ),
        dropped(
            "v6 echo request to a tcp endpoint",
            echo(C6, s50_6, true, 5).build(),
            "no-agreement",
        ),
        // ICMP errors pass iff the quoted packet would pass; they count to its agreement in the
        // opposite direction and are never transactions.
        counted(
            "v4 type 3/4 from a router quoting an allowed packet",
            icmp_error(R, C, 3, 4, quote(&allowed)).build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "same error again (errors make no flows)",
            icmp_error(R, C, 3, 4, quote(&allowed)).build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "v4 type 3/1 from the service itself",
            icmp_error(s50, C, 3, 1, quote(&allowed)).build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "v4 type 11 (time exceeded)",
            icmp_error(R, C, 11, 0, quote(&allowed)).build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "v4 type 12 (parameter problem)",
            icmp_error(R, C, 12, 0, quote(&allowed)).build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "v4 error quoting the whole packet",
            icmp_error(
                R,
                C,
                3,
                3,
                allowed.clone().with_payload(vec![0x42; 64]).ip_bytes(),
            )
            .build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "v4 error quoting a udp packet",
            icmp_error(R, C, 3, 3, quote(&udp(C, s50, 40002, 53))).build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "v4 error quoting a reply: counts forward",
            icmp_error(R, s50, 3, 1, quote(&tcp(s50, C, 443, 40000, SYN | ACK))).build(),
            "icmp-error",
            7,
            FWD,
        ),
        counted(
            "v4 error quoting a reply SYN (no SYN exception)",
            icmp_error(R, s50, 3, 1, quote(&tcp(s50, C, 443, 40003, SYN))).build(),
            "icmp-error",
            7,
            FWD,
        ),
        counted(
            "v4 error quoting an echo request",
            icmp_error(R, C, 3, 1, quote(&echo(C, s30, true, 9))).build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "v4 error quoting an echo reply",
            icmp_error(R, s30, 3, 1, quote(&echo(s30, C, false, 9))).build(),
            "icmp-error",
            7,
            FWD,
        ),
        counted(
            "v4 error quoting another client: lowest id 3",
            icmp_error(R, c2, 3, 4, quote(&tcp(c2, s50, 40004, 443, SYN))).build(),
            "icmp-error",
            3,
            REP,
        ),
        counted(
            "v4 error quoting IPv4 with options",
            icmp_error(
                R,
                C,
                3,
                4,
                quote(&allowed.clone().with_v4_options(vec![1; 8])),
            )
            .build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "v4 error under any, quoting other icmp type",
            icmp_error(R, C, 3, 1, quote(&icmp(C, s40, 13))).build(),
            "icmp-error",
            7,
            REP,
        ),
        dropped(
            "v4 error quoting a disallowed port",
            icmp_error(R, C, 3, 1, quote(&tcp(C, s50, 40005, 80, SYN))).build(),
            "icmp-error-no-agreement",
        ),
        dropped(
            "v4 error quoting an echo request from the service",
            icmp_error(R, s30, 3, 1, quote(&echo(s30, C, true, 10))).build(),
            "icmp-error-no-agreement",
        ),
        dropped(
            "v4 error quoting a packet between strangers",
            icmp_error(
                R,
                "192.0.2.1",
                11,
                0,
                quote(&udp("192.0.2.1", "192.0.2.2", 1, 2)),
            )
            .build(),
            "icmp-error-no-agreement",
        ),
        dropped(
            "v4 error quoting garbage (4 bytes)",
            icmp_error(R, C, 3, 1, vec![0xde, 0xad, 0xbe, 0xef]).build(),
            "icmp-error-malformed",
        ),
        dropped(
            "v4 error quoting nothing",
            icmp_error(R, C, 3, 1, Vec::new()).build(),
            "icmp-error-malformed",
        ),
        dropped(
            "v4 error quoting IHL 3",
            icmp_error(R, C, 3, 1, ihl3).build(),
            "icmp-error-malformed",
        ),
        dropped(
            "v4 error quoting only 4 transport bytes",
            icmp_error(R, C, 3, 1, quote(&allowed)[..24].to_vec()).build(),
            "icmp-error-malformed",
        ),
        dropped(
            "v4 error quoting a later fragment",
            icmp_error(R, C, 3, 1, quote(&quoted_later_fragment)).build(),
            "icmp-error-malformed",
        ),
        dropped(
            "v4 error quoting an IPv6 packet",
            icmp_error(R, C, 3, 1, quote(&allowed6)).build(),
            "icmp-error-malformed",
        ),
        dropped(
            "v4 error with a 7-byte ICMP header",
            raw(R, C, 1, vec![3, 4, 0, 0, 0, 0, 0]).build(),
            "malformed-transport",
        ),
        // ICMPv6 errors, types 1-4.
        counted(
            "v6 type 1 quoting an allowed packet",
            icmp_error(R6, C6, 1, 0, quote(&allowed6)).build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "v6 type 2 (packet too big)",
            icmp_error(R6, C6, 2, 0, quote(&allowed6)).build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "v6 type 3",
            icmp_error(R6, C6, 3, 0, quote(&allowed6)).build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "v6 type 4",
            icmp_error(R6, C6, 4, 0, quote(&allowed6)).build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "v6 type 1 quoting a reply",
            icmp_error(R6, s50_6, 1, 0, quote(&tcp(s50_6, C6, 443, 40000, ACK))).build(),
            "icmp-error",
            7,
            FWD,
        ),
        counted(
            "v6 type 1 quoting a packet with a hop-by-hop header",
            icmp_error(
                R6,
                C6,
                1,
                0,
                quote(&allowed6.clone().with_exts(vec![Ext::HopByHop(0)])),
            )
            .build(),
            "icmp-error",
            7,
            REP,
        ),
        counted(
            "v6 type 1 quoting an echo request",
            icmp_error(R6, C6, 1, 0, quote(&echo(C6, s30_6, true, 1))).build(),
            "icmp-error",
            7,
            REP,
        ),
        dropped(
            "v6 type 1 quoting a disallowed port",
            icmp_error(R6, C6, 1, 0, quote(&tcp(C6, s50_6, 40000, 80, SYN))).build(),
            "icmp-error-no-agreement",
        ),
        dropped(
            "v6 type 1 quoting garbage",
            icmp_error(R6, C6, 1, 0, vec![0x60, 0, 0, 0, 0, 8, 6, 64, 1, 2]).build(),
            "icmp-error-malformed",
        ),
        dropped(
            "v6 type 1 quoting an IPv4 packet",
            icmp_error(R6, C6, 1, 0, quote(&allowed)).build(),
            "icmp-error-malformed",
        ),
        dropped(
            "v6 type 1 quoting a later fragment",
            icmp_error(
                R6,
                C6,
                1,
                0,
                quote(&allowed6.clone().with_exts(vec![Ext::Fragment {
                    offset: 5,
                    more: false,
                    id: 9,
                }])),
            )
            .build(),
            "icmp-error-malformed",
        ),
        // Neighbour discovery: always passes, no agreement.
        plain(
            "ND router solicitation (133)",
            nd(133),
            "neighbour-discovery",
        ),
        plain(
            "ND router advertisement (134)",
            nd(134),
            "neighbour-discovery",
        ),
        plain(
            "ND neighbour solicitation (135)",
            nd(135),
            "neighbour-discovery",
        ),
        plain(
            "ND neighbour advertisement (136)",
            nd(136),
            "neighbour-discovery",
        ),
        plain("ND redirect (137)", nd(137), "neighbour-discovery"),
        plain(
            "ND between client and service",
            Packet::icmp(ip(s30_6), ip(C6), 136, 0, [0x60, 0, 0, 0])
                .with_payload(ns_payload.clone())
                .build(),
            "neighbour-discovery",
        ),
        dropped(
            "v6 type 138 is not ND",
            Packet::icmp(
                ip("2001:db8:ffff::1"),
                ip("2001:db8:ffff::2"),
                138,
                0,
                [0; 4],
            )
            .build(),
            "no-agreement",
        ),
        dropped(
            "ND with a 7-byte ICMPv6 header",
            raw(
                "2001:db8:ffff::1",
                "2001:db8:ffff::2",
                58,
                vec![135, 0, 0, 0, 0, 0, 0],
            )
            .build(),
            "malformed-transport",
        ),
    ];
    run("icmp_echo_errors_and_neighbour_discovery", &policy, &cases);
}

// ---------------------------------------------------------------------------------------------
// Rule 7: fragments (and rule 3's tiny fragments)
// ---------------------------------------------------------------------------------------------

#[test]
fn fragments() {
    if !support::netns::root_or_skip() {
        return;
    }
    let policy = format!(
        r#"{ORGS}
[[service]]
id = "svc"
organisation = "sds"
name = "Fragmenting service"
endpoints = [
  {{ address = "203.0.113.60", protocol = "udp", ports = "5000" }},
  {{ address = "203.0.113.60", protocol = "tcp", ports = "443" }},
  {{ address = "203.0.113.60", protocol = "icmp" }},
  {{ address = "2001:db8:60::1", protocol = "udp", ports = "5000" }},
  {{ address = "2001:db8:60::1", protocol = "tcp", ports = "443" }},
]

[[client]]
id = "cli"
organisation = "rsyd"
prefixes = ["198.51.100.0/24", "2001:db8:200::/48"]

[[agreement]]
id = 61
client = "cli"
service = "svc"
state = "approved"
"#
    );
    let s = "203.0.113.60";
    let s6 = "2001:db8:60::1";
    let data = |n: usize| vec![0xab; n];
    // IPv4 UDP, 48 transport bytes in 16-byte pieces: 3 fragments.
    let a = with_ident(udp(C, s, 4000, 5000).with_payload(data(40)), 0x1001).fragments(16, 0);
    let a_other_src = with_ident(
        udp("198.51.100.8", s, 4000, 5000).with_payload(data(40)),
        0x1001,
    )
    .fragments(16, 0);
    let a_other_id =
        with_ident(udp(C, s, 4000, 5000).with_payload(data(40)), 0x1fff).fragments(16, 0);
    let a_other_proto =
        with_ident(tcp(C, s, 4000, 443, ACK).with_payload(data(40)), 0x1001).fragments(16, 0);
    let a_again = with_ident(udp(C, s, 4000, 5000).with_payload(data(40)), 0x1009).fragments(16, 0);
    let b = with_ident(udp(C, s, 4001, 5000).with_payload(data(40)), 0x1002).fragments(16, 0);
    let rep = with_ident(udp(s, C, 5000, 4000).with_payload(data(40)), 0x2001).fragments(16, 0);
    let bad = with_ident(udp(C, s, 4002, 5001).with_payload(data(40)), 0x1004).fragments(16, 0);
    let tiny = with_ident(tcp(C, s, 4003, 443, SYN), 0x1005).fragments(8, 0);
    let udp8 = with_ident(udp(C, s, 4004, 5000).with_payload(data(16)), 0x1006).fragments(8, 0);
    let ping = with_ident(echo(C, s, true, 0x77).with_payload(data(32)), 0x1007).fragments(16, 0);
    let tagged = with_ident(udp(C, s, 4007, 5000).with_payload(data(40)), 0x1008);
    let tagged_frags = tagged.clone().vlan(0x8100, 10).fragments(16, 0);
    let untagged_frags = tagged.fragments(16, 0);
    // IPv6.
    let v =
        with_ident(udp(C6, s6, 4000, 5000).with_payload(data(40)), 0xabcd_0001).fragments(16, 0);
    let w =
        with_ident(udp(C6, s6, 4001, 5000).with_payload(data(40)), 0xabcd_0002).fragments(16, 0);
    let v_bad =
        with_ident(udp(C6, s6, 4002, 5001).with_payload(data(40)), 0xabcd_0003).fragments(16, 0);
    let v_tiny = with_ident(tcp(C6, s6, 4003, 443, SYN), 0xabcd_0004).fragments(8, 0);
    let v_dest = with_ident(
        udp(C6, s6, 4005, 5000)
            .with_payload(data(40))
            .with_exts(vec![Ext::DestOpts(0)]),
        0xabcd_0005,
    )
    .fragments(24, 0);
    let v_hbh = with_ident(
        udp(C6, s6, 4006, 5000)
            .with_payload(data(40))
            .with_exts(vec![Ext::HopByHop(0)]),
        0xabcd_0006,
    )
    .fragments(16, 1);
    let v_dest_tiny = with_ident(
        udp(C6, s6, 4007, 5000)
            .with_payload(data(40))
            .with_exts(vec![Ext::DestOpts(1)]),
        0xabcd_0007,
    )
    .fragments(16, 0);
    let v_dest_cut = with_ident(
        udp(C6, s6, 4008, 5000)
            .with_payload(data(40))
            .with_exts(vec![Ext::DestOpts(2)]),
        0xabcd_0008,
    )
    .fragments(16, 0);
    let v_atomic =
        with_ident(udp(C6, s6, 4009, 5000).with_payload(data(8)), 0xabcd_0009).fragments(64, 0);
    let v_rep =
        with_ident(udp(s6, C6, 5000, 4000).with_payload(data(40)), 0xabcd_000a).fragments(16, 0);
    assert_eq!(a.len(), 3);
    assert_eq!(tiny.len(), 3);
    assert_eq!(v_atomic.len(), 1);
    assert_eq!(v_dest_tiny.len(), 4);

    let cases = [
        // First fragment judged with its ports; later ones follow it.
        forward("v4 first fragment", a[0].clone(), 61, true),
        counted("v4 second fragment", a[1].clone(), "fragment", 61, FWD),
        counted("v4 last fragment", a[2].clone(), "fragment", 61, FWD),
        counted(
            "v4 duplicate second fragment",
            a[1].clone(),
            "fragment",
            61,
            FWD,
        ),
        est_forward(
            "unfragmented packet of the same flow",
            udp(C, s, 4000, 5000).build(),
            61,
        ),
        est_forward(
            "first fragment of a new datagram, same flow",
            a_again[0].clone(),
            61,
        ),
        counted(
            "later fragment of the new datagram",
            a_again[1].clone(),
            "fragment",
            61,
            FWD,
        ),
        // The fragment key: VLAN, source, destination, protocol, id.
        dropped(
            "same id, other source",
            a_other_src[1].clone(),
            "fragment-without-head",
        ),
        dropped(
            "same tuple, other id",
            a_other_id[1].clone(),
            "fragment-without-head",
        ),
        dropped(
            "same id, other protocol",
            a_other_proto[1].clone(),
            "fragment-without-head",
        ),
        forward("tagged first fragment", tagged_frags[0].clone(), 61, true),
        dropped(
            "its later fragment untagged",
            untagged_frags[1].clone(),
            "fragment-without-head",
        ),
        counted(
            "its later fragment tagged",
            tagged_frags[1].clone(),
            "fragment",
            61,
            FWD,
        ),
        // A later fragment before its first.
        dropped(
            "v4 last fragment before the first",
            b[2].clone(),
            "fragment-without-head",
        ),
        dropped(
            "v4 middle fragment before the first",
            b[1].clone(),
            "fragment-without-head",
        ),
        forward("v4 first fragment arrives", b[0].clone(), 61, true),
        counted(
            "v4 middle fragment now passes",
            b[1].clone(),
            "fragment",
            61,
            FWD,
        ),
        counted(
            "v4 last fragment now passes",
            b[2].clone(),
            "fragment",
            61,
            FWD,
        ),
        // Replies.
        reply("v4 reply first fragment", rep[0].clone(), 61),
        counted(
            "v4 reply later fragment",
            rep[1].clone(),
            "fragment",
            61,
            REP,
        ),
        // A dropped first fragment.
        dropped(
            "v4 first fragment to a closed port",
            bad[0].clone(),
            "no-agreement",
        ),
        dropped(
            "its second fragment",
            bad[1].clone(),
            "fragment-of-dropped-head",
        ),
        dropped(
            "its last fragment",
            bad[2].clone(),
            "fragment-of-dropped-head",
        ),
        // Tiny fragments (RFC 1858).
        dropped(
            "v4 tcp first fragment with 8 of 20 header bytes",
            tiny[0].clone(),
            "tiny-fragment",
        ),
        dropped(
            "later fragment of the tiny one",
            tiny[1].clone(),
            "fragment-of-dropped-head",
        ),
        dropped(
            "last fragment of the tiny one",
            tiny[2].clone(),
            "fragment-of-dropped-head",
        ),
        forward(
            "v4 udp first fragment with exactly 8 bytes",
            udp8[0].clone(),
            61,
            true,
        ),
        counted(
            "later fragment after the 8-byte udp head",
            udp8[1].clone(),
            "fragment",
            61,
            FWD,
        ),
        forward("v4 icmp echo first fragment", ping[0].clone(), 61, true),
        counted(
            "v4 icmp echo later fragment",
            ping[1].clone(),
            "fragment",
            61,
            FWD,
        ),
        // IPv6 (the support builder writes the fragment header correctly).
        forward("v6 first fragment", v[0].clone(), 61, true),
        counted("v6 second fragment", v[1].clone(), "fragment", 61, FWD),
        counted("v6 last fragment", v[2].clone(), "fragment", 61, FWD),
        dropped(
            "v6 later fragment before the first",
            w[1].clone(),
            "fragment-without-head",
        ),
        forward("v6 first fragment arrives", w[0].clone(), 61, true),
        counted(
            "v6 later fragment now passes",
            w[1].clone(),
            "fragment",
            61,
            FWD,
        ),
        dropped(
            "v6 first fragment to a closed port",
            v_bad[0].clone(),
            "no-agreement",
        ),
        dropped(
            "v6 fragment of a dropped head",
            v_bad[1].clone(),
            "fragment-of-dropped-head",
        ),
        dropped(
            "v6 tcp tiny first fragment",
            v_tiny[0].clone(),
            "tiny-fragment",
        ),
        dropped(
            "v6 fragment of the tiny one",
            v_tiny[1].clone(),
            "fragment-of-dropped-head",
        ),
        forward(
            "v6 first fragment, dest-opts after the fragment header",
            v_dest[0].clone(),
            61,
            true,
        ),
        counted(
            "v6 later fragment, key protocol = dest-opts",
            v_dest[1].clone(),
            "fragment",
            61,
            FWD,
        ),
        forward(
            "v6 first fragment after hop-by-hop",
            v_hbh[0].clone(),
            61,
            true,
        ),
        counted(
            "v6 later fragment after hop-by-hop",
            v_hbh[1].clone(),
            "fragment",
            61,
            FWD,
        ),
        dropped(
            "v6 first fragment holding only dest-opts",
            v_dest_tiny[0].clone(),
            "tiny-fragment",
        ),
        dropped(
            "later fragment of the dest-opts-only head",
            v_dest_tiny[1].clone(),
            "fragment-of-dropped-head",
        ),
        dropped(
            "v6 first fragment with dest-opts cut by the fragment end",
            v_dest_cut[0].clone(),
            "truncated-header",
        ),
        dropped(
            "its later fragment has no head",
            v_dest_cut[1].clone(),
            "fragment-without-head",
        ),
        forward(
            "v6 atomic fragment (offset 0, no M) is no fragment",
            v_atomic[0].clone(),
            61,
            true,
        ),
        est_forward(
            "v6 atomic fragment again: same flow",
            v_atomic[0].clone(),
            61,
        ),
        reply("v6 reply first fragment", v_rep[0].clone(), 61),
        counted(
            "v6 reply later fragment",
            v_rep[1].clone(),
            "fragment",
            61,
            REP,
        ),
    ];
    run("fragments", &policy, &cases);
}

// ---------------------------------------------------------------------------------------------
// Rule 10: transactions
// ---------------------------------------------------------------------------------------------

#[test]
fn transactions() {
    if !support::netns::root_or_skip() {
        return;
    }
    let policy = format!(
        r#"{ORGS}
[[service]]
id = "svc"
organisation = "sds"
name = "Transactional service"
endpoints = [
  {{ address = "203.0.113.10", protocol = "tcp", ports = "443" }},
  {{ address = "203.0.113.10", protocol = "udp", ports = "53" }},
  {{ address = "203.0.113.10", protocol = "sctp", ports = "3868" }},
  {{ address = "203.0.113.99", protocol = "any" }},
  {{ address = "2001:db8:10::1", protocol = "tcp", ports = "443" }},
]

[[client]]
id = "cli"
organisation = "rsyd"
prefixes = ["198.51.100.0/24", "2001:db8:200::/48"]

[[agreement]]
id = 42
client = "cli"
service = "svc"
state = "approved"
"#
    );
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
    run("transactions", &policy, &cases);
}

// ---------------------------------------------------------------------------------------------
// Rule 1: non-IP frames and the infrastructure allow list
// ---------------------------------------------------------------------------------------------

#[test]
fn non_ip_and_infrastructure() {
    if !support::netns::root_or_skip() {
        return;
    }
    let policy = format!(
        r#"{ORGS}
[[service]]
id = "svc"
organisation = "sds"
name = "A service"
endpoints = [
  {{ address = "203.0.113.10", protocol = "tcp", ports = "443" }},
  {{ address = "2001:db8:10::1", protocol = "tcp", ports = "443" }},
]

[[client]]
id = "cli"
organisation = "rsyd"
prefixes = ["198.51.100.0/24", "2001:db8:200::/48"]

[[agreement]]
id = 1
client = "cli"
service = "svc"
state = "approved"

[[infrastructure]]
prefix = "192.0.2.1/32"
protocol = "tcp"
ports = ["22"]

[[infrastructure]]
prefix = "2001:db8:ffff::/126"
"#
    );
    let mgmt = "192.0.2.1";
    let peer = "2001:db8:ffff::2";
    let lldp = [
        0x02, 0x07, 0x04, 0x02, 0x00, 0x5e, 0x10, 0x00, 0x02, 0x04, 0x03, 0x05, 0x65, 0x31, 0x06,
        0x02, 0x00, 0x78, 0x00, 0x00,
    ];
    let lacp = [
        0x01, 0x01, 0x01, 0x14, 0x80, 0x00, 0x02, 0x00, 0x5e, 0x10, 0x00, 0x02,
    ];
    let v6_frags =
        with_ident(udp(C6, peer, 4000, 161).with_payload(vec![7; 40]), 0x55).fragments(16, 0);
    let cases = [
        // Non-IP frames pass.
        plain(
            "ARP request",
            arp_frame(&[], v4("198.51.100.1"), v4("198.51.100.2"), false),
            "non-ip",
        ),
        plain(
            "ARP reply",
            arp_frame(&[], v4("198.51.100.2"), v4("198.51.100.1"), true),
            "non-ip",
        ),
        plain(
            "ARP tagged",
            arp_frame(&[(0x8100, 5)], v4("198.51.100.2"), v4("198.51.100.1"), true),
            "non-ip",
        ),
        plain(
            "LLDP 0x88cc",
            frame_with_tags(&[], 0x88cc, &lldp, true),
            "non-ip",
        ),
        plain(
            "LACP 0x8809",
            frame_with_tags(&[], 0x8809, &lacp, true),
            "non-ip",
        ),
        plain(
            "unknown ethertype 0x88b5",
            frame_with_tags(&[], 0x88b5, &[0; 46], false),
            "non-ip",
        ),
        plain(
            "bare Ethernet header, ARP ethertype",
            eth(0x0806, &[]),
            "non-ip",
        ),
        // Infrastructure: traffic to and from the listed prefix with a listed port.
        plain(
            "ssh to the router",
            tcp(C, mgmt, 50000, 22, SYN).build(),
            "infrastructure",
        ),
        plain(
            "ssh from the router",
            tcp(mgmt, C, 22, 50000, SYN | ACK).build(),
            "infrastructure",
        ),
        plain(
            "ssh to the router, established",
            tcp(C, mgmt, 50000, 22, ACK).build(),
            "infrastructure",
        ),
        plain(
            "ssh from the router, established",
            tcp(mgmt, C, 22, 50000, ACK).build(),
            "infrastructure",
        ),
        plain(
            "ssh from an address outside every client",
            tcp("192.0.2.100", mgmt, 50001, 22, SYN).build(),
            "infrastructure",
        ),
        dropped(
            "telnet to the router",
            tcp(C, mgmt, 50002, 23, SYN).build(),
            "no-agreement",
        ),
        dropped(
            "udp 22 to the router",
            udp(C, mgmt, 50003, 22).build(),
            "no-agreement",
        ),
        dropped(
            "ping to a tcp-only router entry",
            echo(C, mgmt, true, 1).build(),
            "no-agreement",
        ),
        dropped(
            "ssh to the next address",
            tcp(C, "192.0.2.2", 50004, 22, SYN).build(),
            "no-agreement",
        ),
        plain(
            "v6 peer, any protocol: udp",
            udp(C6, peer, 50005, 161).build(),
            "infrastructure",
        ),
        plain(
            "v6 peer, any protocol: SYN from it",
            tcp("2001:db8:ffff::3", C6, 179, 50006, SYN).build(),
            "infrastructure",
        ),
        plain(
            "v6 peer, any protocol: echo from it",
            echo("2001:db8:ffff::1", C6, true, 1).build(),
            "infrastructure",
        ),
        plain(
            "v6 peer, other ICMPv6 type",
            icmp("2001:db8:ffff::0", C6, 130).build(),
            "infrastructure",
        ),
        dropped(
            "v6 just outside the /126",
            udp(C6, "2001:db8:ffff::4", 50007, 161).build(),
            "no-agreement",
        ),
        plain(
            "v6 first fragment to the peer",
            v6_frags[0].clone(),
            "infrastructure",
        ),
        plain(
            "v6 later fragment to the peer",
            v6_frags[1].clone(),
            "fragment",
        ),
        // ICMP errors are judged by the quoted packet, not by infrastructure.
        dropped(
            "error from the v6 peer quoting a disallowed packet",
            icmp_error(
                peer,
                C6,
                1,
                0,
                quote(&tcp(C6, "2001:db8:10::1", 40000, 80, SYN)),
            )
            .build(),
            "icmp-error-no-agreement",
        ),
        counted(
            "error from the v6 peer quoting an allowed packet",
            icmp_error(
                peer,
                C6,
                1,
                0,
                quote(&tcp(C6, "2001:db8:10::1", 40000, 443, SYN)),
            )
            .build(),
            "icmp-error",
            1,
            REP,
        ),
        counted(
            "error from the router quoting an allowed packet",
            icmp_error(
                mgmt,
                C,
                3,
                4,
                quote(&tcp(C, "203.0.113.10", 40000, 443, SYN)),
            )
            .build(),
            "icmp-error",
            1,
            REP,
        ),
        // Agreement traffic is unaffected.
        forward(
            "agreement traffic alongside",
            tcp(C, "203.0.113.10", 40000, 443, SYN).build(),
            1,
            true,
        ),
    ];
    run("non_ip_and_infrastructure", &policy, &cases);
}

// ---------------------------------------------------------------------------------------------
// Rule 3: header parsing, malformed and truncated frames
// ---------------------------------------------------------------------------------------------

#[test]
fn malformed_and_truncated_frames() {
    if !support::netns::root_or_skip() {
        return;
    }
    let policy = format!(
        r#"{ORGS}
[[service]]
id = "svc"
organisation = "sds"
name = "Parsing service"
endpoints = [
  {{ address = "203.0.113.10", protocol = "tcp", ports = "443" }},
  {{ address = "203.0.113.10", protocol = "udp", ports = "53" }},
  {{ address = "203.0.113.10", protocol = "sctp", ports = "3868" }},
  {{ address = "203.0.113.10", protocol = "icmp" }},
  {{ address = "203.0.113.99", protocol = "any" }},
  {{ address = "2001:db8:10::1", protocol = "tcp", ports = "443" }},
  {{ address = "2001:db8:10::1", protocol = "udp", ports = "53" }},
  {{ address = "2001:db8:10::1", protocol = "icmpv6" }},
]

[[client]]
id = "cli"
organisation = "rsyd"
prefixes = ["198.51.100.0/24", "2001:db8:200::/48"]

[[agreement]]
id = 5
client = "cli"
service = "svc"
state = "approved"
"#
    );
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
                set16(b, 2, 20)
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
            raw_l4(&syn(39), |t| t.clear()).build(),
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
                t.truncate(19)
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
            raw_l4(&udp(C, s, 44, 53), |t| t.clear()).build(),
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
    run("malformed_and_truncated_frames", &policy, &cases);
}

/// Pins the calling thread to one CPU (false when the machine has no such CPU).
fn pin_to_cpu(cpu: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity only
    // read and write that local set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// The decision read back after a test run is the one that run made, whichever CPU the thread
/// ran on before. (Regression: a per-CPU record went stale when the thread moved to a CPU that
/// had seen fewer frames, and the 6.1 check in CI reported another frame's reason.)
#[test]
fn decision_record_follows_the_thread_across_cpus() {
    if !support::netns::root_or_skip() {
        return;
    }
    let policy = format!(
        r#"{ORGS}
[[service]]
id = "svc"
organisation = "sds"
name = "Web"
endpoints = [ {{ address = "203.0.113.10", protocol = "tcp", ports = "443" }} ]

[[client]]
id = "cli"
organisation = "rsyd"
prefixes = ["198.51.100.0/25"]

[[agreement]]
id = 7
client = "cli"
service = "svc"
state = "approved"
"#
    );
    let policy = parse_toml(&policy).unwrap();
    let mut kernel = Replayer::new(&policy, today()).unwrap();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    for round in 0..4u16 {
        let busy = usize::from(round) % cpus;
        let quiet = (busy + 1) % cpus;
        // Many denied frames on one CPU, then one allowed frame on another (or the same one
        // on a single-CPU machine): the record must describe the allowed frame.
        assert!(pin_to_cpu(busy), "cannot pin to CPU {busy}");
        for i in 0..50u16 {
            let v = kernel
                .judge(&tcp(C, "203.0.113.10", 2000 + i, 22, SYN).build())
                .unwrap();
            assert_eq!(v.reason, "no-agreement");
        }
        assert!(pin_to_cpu(quiet), "cannot pin to CPU {quiet}");
        let v = kernel
            .judge(&tcp(C, "203.0.113.10", 30000 + round, 443, SYN).build())
            .unwrap();
        assert_eq!(
            (v.verdict, v.agreement, v.reason),
            (Action::Pass, Some(7), "forward"),
            "round {round}: CPU {busy} then {quiet}"
        );
    }
}

/// An established flow of an agreement that is revoked stays dropped through later policy
/// changes. (Regression: flow entries remembered only the parity of the policy generation,
/// so two applies later an idle flow of a revoked agreement passed for current again.)
#[test]
fn a_revoked_flow_stays_revoked_when_the_generation_parity_comes_round() {
    if !support::netns::root_or_skip() {
        return;
    }
    use sdn_common::flags;
    use sdn_loader::compile::compile;
    use sdn_loader::dataplane::{Capacities, Dataplane};

    let policy = |state: &str, extra: &str| {
        parse_toml(&format!(
            r#"{ORGS}
[[service]]
id = "svc"
organisation = "sds"
name = "Web"
endpoints = [ {{ address = "203.0.113.10", protocol = "tcp", ports = "443" }} ]

[[client]]
id = "cli"
organisation = "rsyd"
prefixes = ["198.51.100.0/25"]

[[client]]
id = "other"
organisation = "rsyd"
prefixes = ["192.0.2.0/24"]

[[agreement]]
id = 7
client = "cli"
service = "svc"
state = "{state}"
{extra}"#
        ))
        .unwrap()
    };
    let on = compile(&policy("approved", ""), today()).unwrap();
    let off = compile(&policy("revoked", ""), today()).unwrap();
    let off_plus = compile(
        &policy(
            "revoked",
            "\n[[agreement]]\nid = 8\nclient = \"other\"\nservice = \"svc\"\nstate = \"approved\"\n",
        ),
        today(),
    )
    .unwrap();
    let mut dp = Dataplane::load_private(Capacities::for_replay(&off_plus)).unwrap();
    dp.set_flags(flags::RECORD_LAST, 0).unwrap();
    let reason = |dp: &mut Dataplane, frame: &[u8]| {
        let r = dp.run_frame(frame).unwrap();
        sdn_common::reason::name(r.last.reason)
    };
    let (syn, ack) = (
        tcp(C, "203.0.113.10", 40123, 443, SYN).build(),
        tcp(C, "203.0.113.10", 40123, 443, ACK).build(),
    );
    dp.apply(&on).unwrap();
    assert_eq!(reason(&mut dp, &syn), "forward");
    assert_eq!(reason(&mut dp, &ack), "established-forward");
    // Revoked, then an unrelated change: the generation's parity is back where the flow was
    // decided, and the flow was idle in between.
    dp.apply(&off).unwrap();
    dp.apply(&off_plus).unwrap();
    assert_eq!(reason(&mut dp, &ack), "no-agreement");
    // And once more round: still dropped.
    dp.apply(&off).unwrap();
    dp.apply(&off_plus).unwrap();
    assert_eq!(reason(&mut dp, &ack), "no-agreement");
}

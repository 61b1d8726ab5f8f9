//! Table-driven tests of crafted frames through the real XDP program (BPF_PROG_TEST_RUN via
//! `Replayer`), one table per group of clauses of docs/semantics.md "Verdict rules" (summarised in
//! the header of the oracle, `tests/src/oracle.rs`).
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
//! One module per group of rules; this file holds the runner and the frame helpers.
//!
//! Needs root (BPF).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

use sdn_tests as support;

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

/// A pass: the one shape every pass constructor below fills in.
fn pass(
    name: &'static str,
    frame: Vec<u8>,
    agreement: Option<u32>,
    direction: Option<Direction>,
    reason: &'static str,
    transaction: bool,
) -> Case {
    Case {
        name,
        frame,
        verdict: Action::Pass,
        agreement,
        direction,
        reason,
        transaction,
    }
}

/// A first forward packet under agreement `id`.
fn forward(name: &'static str, frame: Vec<u8>, id: u32, transaction: bool) -> Case {
    pass(name, frame, Some(id), FWD, "forward", transaction)
}

/// A first reply packet under agreement `id` (never a transaction).
fn reply(name: &'static str, frame: Vec<u8>, id: u32) -> Case {
    counted(name, frame, "reply", id, REP)
}

/// A forward packet of a flow in the flow table.
fn est_forward(name: &'static str, frame: Vec<u8>, id: u32) -> Case {
    counted(name, frame, "established-forward", id, FWD)
}

/// A reply packet of a flow in the flow table.
fn est_reply(name: &'static str, frame: Vec<u8>, id: u32) -> Case {
    counted(name, frame, "established-reply", id, REP)
}

/// A pass counted to an agreement that is never a transaction (`icmp-error`, `fragment`).
fn counted(
    name: &'static str,
    frame: Vec<u8>,
    reason: &'static str,
    id: u32,
    direction: Option<Direction>,
) -> Case {
    pass(name, frame, Some(id), direction, reason, false)
}

/// A pass counted to no agreement (`non-ip`, `infrastructure`, `neighbour-discovery`, ...).
fn plain(name: &'static str, frame: Vec<u8>, reason: &'static str) -> Case {
    pass(name, frame, None, None, reason, false)
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
/// field of every verdict, then the agreement and reason counters. Needs root (skips, or fails
/// under SDN_REQUIRE_ROOT=1).
fn run(table: &str, policy_toml: &str, cases: &[Case]) {
    if !support::netns::root_or_skip() {
        return;
    }
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

const ORGS: &str = include_str!("../../fixtures/crafted-frames-header.toml");

/// A table's policy: the shared header (organisations, the dicom alias), then the table's own
/// part (a fixture in `tests/fixtures/crafted/`).
fn with_header(own: &str) -> String {
    format!("{ORGS}\n{own}")
}

mod agreements_in_force;
mod forward_and_reply;
mod fragments;
mod icmp;
mod infrastructure;
mod malformed;
mod precedence;
mod program_state;
mod transactions;
mod vlans;

//! Frames larger than a page: the attached program and replay must give them the same verdict.
//!
//! The kernel's test run (what `replay` uses) keeps about 3.5 KB of a frame linear and puts the
//! rest in page fragments; an attached program that is not frags-aware always sees a linear
//! frame. The program reads the whole frame's length, not `data_end - data`, for its IP length
//! checks and byte counters, so a 5,000-byte UDP frame is judged `forward` both ways (it once
//! came out `malformed-ipv4` in replay only), and a frame too large for a test run is named,
//! skipped and the replay goes on.
//!
//! What is checked:
//! - live, MTU 9000 on every interface of the topology (generic XDP: native XDP on veth
//!   refuses an MTU above a page for a program that is not frags-aware): 5,000- and
//!   9,014-byte UDP frames of agreement 1001 arrive whole and count their full length; one to
//!   a port outside the agreement is a `no-agreement` drop;
//! - replay of the same frames gives the same verdicts, plus: an IPv4 total length longer than
//!   the (large) frame is `malformed-ipv4`, a 60,000-byte frame passes, a 262,144-byte frame is
//!   `ReplayError::TooLarge` with its index and the next frame is judged;
//! - `sdn-loader replay --json` on a capture holding such a frame prints a `not-judged` line
//!   for it, verdicts for the others, and exits 2.
//!
//! Needs root (BPF, namespaces). Documentation addresses only.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

use sdn_tests as support;

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    process::Command,
    time::Duration,
};

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use sdn_loader::{
    policy::parse_toml,
    tools::replay::{Action, ReplayError, Replayer},
};
use support::{
    generate::{Packet, fixed_today},
    netns::{ETH_HLEN, LOADER, Topology, run, run_ok, udp_bind},
};

/// The demo agreements; 1001 ouh-clinic -> fmk allows UDP 5000-5010.
const POLICY: &str = include_str!("../fixtures/end-to-end-policy.toml");
const FMK_AGREEMENT: u32 = 1001;
/// ouh-clinic.
const CLINIC: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10));
/// fmk.
const FMK: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));
/// UDP payloads giving 5,000- and 9,014-byte frames (the latter a full 9,000-byte IP packet).
const PAYLOADS: [usize; 2] = [5_000 - 14 - 20 - 8, 9_000 - 20 - 8];
const JUMBO_MTU: &str = "9000";
const IO_TIMEOUT: Duration = Duration::from_secs(3);

fn sa(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

fn udp_frame(payload: usize, dport: u16) -> Vec<u8> {
    Packet::udp(CLINIC, FMK, 40_000, dport)
        .with_payload((0..payload).map(|i| (i % 251) as u8).collect())
        .build()
}

/// Puts every interface of the topology at MTU 9000 and re-attaches the filter in generic mode.
fn jumbo(topo: &Topology) {
    let out = topo.detach_purge();
    assert!(out.status.success(), "detach --purge: {out:?}");
    let [hc, hs] = topo.hub_ifaces();
    for (ns, iface) in [
        (topo.client(), topo.client_iface()),
        (topo.hub(), hc.clone()),
        (topo.hub(), hs.clone()),
        (topo.service(), topo.service_iface()),
    ] {
        run_ok(
            Command::new("ip").args(["-n", &ns, "link", "set", "dev", &iface, "mtu", JUMBO_MTU]),
        );
    }
    run_ok(
        Command::new(&*LOADER)
            .args([
                "run",
                "--netns",
                &topo.hub(),
                "--iface",
                &hc,
                "--iface",
                &hs,
            ])
            .arg("--pin-dir")
            .arg(&topo.pin_dir)
            .arg("--policy")
            .arg(&topo.policy)
            .args(["--mode", "generic"]),
    );
}

#[test]
fn jumbo_udp_frames_pass_live_and_count_their_full_length() {
    if !support::netns::root_or_skip() {
        return;
    }
    let topo = Topology::up("j", POLICY);
    jumbo(&topo);
    let server = udp_bind(&topo.service(), sa(FMK, 5000));
    server.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let client = udp_bind(&topo.client(), sa(CLINIC, 40_000));
    let before = topo.stats();
    let mut frame_bytes = 0;
    for (i, size) in PAYLOADS.into_iter().enumerate() {
        let data: Vec<u8> = (0..size).map(|j| (j % 251) as u8 ^ i as u8).collect();
        client.send_to(&data, sa(FMK, 5000)).unwrap();
        let mut buf = vec![0u8; size + 100];
        let (n, from) = server
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("the {size}-byte datagram did not arrive: {e}"));
        assert_eq!((n, from), (size, sa(CLINIC, 40_000)));
        assert_eq!(
            &buf[..n],
            &data[..],
            "the {size}-byte datagram arrived changed"
        );
        frame_bytes += ETH_HLEN + 20 + 8 + size as u64;
    }
    // A port outside the agreement: dropped, nothing arrives.
    let other = udp_bind(&topo.service(), sa(FMK, 6000));
    other
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    client
        .send_to(&vec![7u8; PAYLOADS[0]], sa(FMK, 6000))
        .unwrap();
    let mut buf = vec![0u8; PAYLOADS[0] + 100];
    assert!(
        other.recv_from(&mut buf).is_err(),
        "a jumbo datagram to a port outside the agreement arrived"
    );
    let after = topo.stats();
    let g = after.grown(&before, FMK_AGREEMENT);
    assert_eq!(
        (g.forward_packets, g.forward_bytes, g.transactions),
        (PAYLOADS.len() as u64, frame_bytes, 1),
        "agreement {FMK_AGREEMENT}: {g:?}"
    );
    assert_eq!(after.reason_grown(&before, "no-agreement"), 1);
    assert_eq!(after.reason_grown(&before, "malformed-ipv4"), 0);
}

#[test]
fn replay_judges_jumbo_frames_as_the_attached_program_and_names_those_it_cannot() {
    if !support::netns::root_or_skip() {
        return;
    }
    let policy = parse_toml(POLICY).unwrap();
    let mut r = Replayer::new(&policy, fixed_today()).unwrap();
    let judged = |r: &mut Replayer, frame: &[u8]| {
        r.judge(frame)
            .unwrap_or_else(|e| panic!("{}-byte frame: {e}", frame.len()))
    };
    for (i, size) in PAYLOADS.into_iter().enumerate() {
        let v = judged(&mut r, &udp_frame(size, 5000));
        assert_eq!(
            (v.verdict, v.agreement, v.reason, v.transaction),
            (
                Action::Pass,
                Some(FMK_AGREEMENT),
                if i == 0 {
                    "forward"
                } else {
                    "established-forward"
                },
                i == 0
            ),
            "{size}-byte payload: {v:?}"
        );
    }
    let v = judged(&mut r, &udp_frame(PAYLOADS[0], 6000));
    assert_eq!((v.verdict, v.reason), (Action::Drop, "no-agreement"));
    // IPv4 total length (bytes 16-17 of the frame) 100 bytes beyond the frame's end.
    let mut lying = udp_frame(PAYLOADS[0], 5001);
    let total = (lying.len() - 14 + 100) as u16;
    lying[16..18].copy_from_slice(&total.to_be_bytes());
    let v = judged(&mut r, &lying);
    assert_eq!((v.verdict, v.reason), (Action::Drop, "malformed-ipv4"));
    // Larger than any MTU but still within a test run: judged.
    let v = judged(&mut r, &udp_frame(60_000 - 42, 5002));
    assert_eq!((v.verdict, v.reason), (Action::Pass, "forward"));
    // Too large for a test run: named with its index, and the replay goes on.
    let huge = vec![0u8; 262_144];
    match r.judge(&huge) {
        Err(ReplayError::TooLarge { index, bytes, .. }) => {
            assert_eq!((index, bytes), (5, huge.len()));
        }
        other => panic!("a 262,144-byte frame: {other:?}"),
    }
    let v = judged(&mut r, &udp_frame(10, 5003));
    assert_eq!((v.index, v.verdict, v.reason), (6, Action::Pass, "forward"));
}

/// A capture in the temporary directory, removed on drop.
struct Capture(PathBuf);

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn write_capture(name: &str, frames: &[Vec<u8>]) -> Capture {
    let path = std::env::temp_dir().join(format!("sdn-jumbo-{}-{name}", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    let header = PcapHeader {
        snaplen: 262_144,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(file, header).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write_packet(&PcapPacket::new(
            Duration::from_millis(i as u64),
            f.len() as u32,
            f,
        ))
        .unwrap();
    }
    Capture(path)
}

#[test]
fn replay_cli_reports_frames_it_cannot_judge_and_exits_2() {
    if !support::netns::root_or_skip() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("sdn-jumbo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let cap = write_capture(
        "cli.pcap",
        &[
            udp_frame(10, 5000),
            udp_frame(PAYLOADS[0], 5000),
            vec![0u8; 262_144],
            udp_frame(60_000 - 42, 5001),
        ],
    );
    let out = run(Command::new(&*LOADER)
        .arg("replay")
        .arg("--policy")
        .arg(&policy)
        .arg("--pcap")
        .arg(&cap.0)
        .args(["--json", "--date", "2025-06-15"]));
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    let verdicts: Vec<&str> = lines
        .iter()
        .map(|l| l["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["pass", "pass", "not-judged", "pass"], "{stdout}");
    assert_eq!(lines[2]["index"], 2);
    assert_eq!(lines[2]["bytes"], 262_144);
    assert!(
        lines[2]["error"].as_str().unwrap().contains("not judged"),
        "{stdout}"
    );
    assert!(stderr.contains("1 not judged"), "{stderr}");
}

//! Upgrading the filter under traffic. `Topology` attaches the XDP program to the hub's two
//! interfaces with `sdn-loader run` (pinned bpf_links); while a ping stream and a TCP transfer
//! go through the hub, a second `sdn-loader run` for the same interfaces and pin directory
//! loads a fresh program instance and swaps it into the existing links
//! (`sdn-loader/src/dataplane/attach.rs`, outcome `Replaced`).
//!
//! What is checked:
//! - a replacement really happened: the second `run` says it replaced the program in the
//!   existing link of both interfaces, and the program id the kernel runs on each hub
//!   interface (`ip -d link show`) changed; before and after, both interfaces run the pinned
//!   program (`PIN_DIR/prog`), and the replaced program is released by the kernel;
//! - no ping was lost: ping's own summary says all of its echo requests (one every 2 ms,
//!   started before the upgrade and still running after it) got their replies;
//! - the TCP transfer (client -> pacs, port 104, written in paced chunks before, during and
//!   after the upgrade, several MB) arrives complete and byte for byte as sent, and the
//!   service's answer (the byte count it received) comes back;
//! - the counters continue: read just before and just after the second `run`, no
//!   per-agreement counter and no reason count went down; and from before the traffic to the
//!   end they grew by exactly what was sent: agreement 1001 by the pings (N echo requests
//!   forward and N replies, 98 bytes each, one transaction: one echo identifier is one flow),
//!   agreement 1003 by the TCP segments the client and the service put on the wire (their
//!   kernels' counts; bytes are their IP bytes, pings subtracted, plus 14 per frame) as one
//!   transaction (docs/semantics.md rule 10 and "Policy changes": the second `run` starts a
//!   new policy generation, a flow already in the table is judged again but is no new
//!   transaction); and the filter dropped nothing but (as `no-agreement`, rule 6) the
//!   endpoints' own IPv6 MLD reports, at most as many as the endpoints sent IPv6 packets.
//!
//! Needs root, `ip` (iproute2) and `ping` (iputils). The namespaces (prefix "e2e" + pid +
//! "u") and pin directory are removed on drop, also when the test fails; the ping process is
//! killed then. Run with
//! `SDN_REQUIRE_ROOT=1 cargo test --release -p sdn-tests --test upgrade -- --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]

use sdn_tests as support;

use std::{
    io::{self, Read, Write},
    net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    thread,
    time::{Duration, Instant},
};

use support::netns::{
    ETH_HLEN, Snapshot, Stats, Topology, accept_within, eventually, run_ok, tcp_connect, tcp_listen,
};

/// The demo policy's agreements (see `end_to_end.rs`): 1001 ouh-clinic -> fmk (tcp 443, udp
/// 5000-5010, icmp), 1002 lab -> fmk revoked, 1003 ouh-clinic -> pacs (tcp 104, 11112).
const POLICY: &str = include_str!("../fixtures/end-to-end-policy.toml");

/// The pings' agreement (fmk allows ICMP echo).
const FMK_AGREEMENT: u32 = 1001;
/// The TCP transfer's agreement.
const PACS_AGREEMENT: u32 = 1003;

/// ouh-clinic.
const CLINIC: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10));
/// fmk.
const FMK: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));
/// pacs.
const PACS: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 20));
/// pacs's dicom port.
const PACS_PORT: u16 = 104;

/// Echo requests in the ping stream, one every [`PING_INTERVAL`]: at least 6 s of pings, far
/// longer than an upgrade takes.
const PINGS: u32 = 3000;
/// `ping -i` (root may go below 2 ms; 2 ms keeps ping's own pace steady on 2 cores).
const PING_INTERVAL: &str = "0.002";
/// An echo request or reply with `ping -s 56`, as an IP packet: IPv4 20 + ICMP 8 + 56.
const PING_IP: u64 = 20 + 8 + 56;
/// The same as a frame.
const PING_FRAME: u64 = ETH_HLEN + PING_IP;
/// Pings counted before the upgrade starts.
const PINGS_BEFORE: u64 = 50;

/// The TCP writer's chunk and its pause between chunks (at most about 8 MB/s, so that the
/// transfer spans the upgrade rather than finishing before it).
const CHUNK: usize = 16 * 1024;
const PACE: Duration = Duration::from_millis(2);
/// Bytes transferred before the upgrade starts, and at least as many again after it ends.
const BYTES_BEFORE: u64 = 512 * 1024;
const BYTES_AFTER: u64 = 1024 * 1024;

/// Connecting where the filter lets the SYN through.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Reads and writes on the established connection.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Waiting for traffic to reach a mark (generous: a loaded 2-core machine).
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(20);
/// How long counters may lag the traffic (a last ACK still in flight).
const SETTLE: Duration = Duration::from_secs(3);

/// Byte `i` of the TCP stream: position-dependent, so a lost, repeated or reordered chunk
/// shows.
fn stream_byte(i: u64) -> u8 {
    ((i.wrapping_mul(0x9e37_79b9) >> 11) as u8) ^ (i as u8) ^ ((i >> 16) as u8)
}

/// The program id the kernel runs on hub interface `iface` (`ip -d link show`).
fn attached_prog_id(topo: &Topology, iface: &str) -> u32 {
    let out =
        run_ok(Command::new("ip").args(["-n", &topo.hub(), "-d", "link", "show", "dev", iface]));
    out.split("prog/xdp id ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no XDP program id on {iface}:\n{out}"))
}

/// The id of the program pinned at `PIN_DIR/prog`.
fn pinned_prog_id(topo: &Topology) -> u32 {
    let pin = topo.pin_dir.join(sdn_loader::paths::PROGRAM_PIN);
    aya::programs::ProgramInfo::from_pin(&pin)
        .unwrap_or_else(|e| panic!("{}: {e}", pin.display()))
        .id()
}

/// The program id both hub interfaces run, checked to be the pinned program's.
fn running_prog_id(topo: &Topology) -> u32 {
    let ids = topo.hub_ifaces().map(|i| attached_prog_id(topo, &i));
    let pinned = pinned_prog_id(topo);
    assert_eq!(
        ids,
        [pinned; 2],
        "the hub interfaces {:?} must both run the pinned program",
        topo.hub_ifaces()
    );
    pinned
}

/// A child process that is killed (by its pid) and reaped if the test ends before it does.
struct Reaped(Option<Child>);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sets the flag when dropped: tells the writer thread to stop, also when the test panics
/// (so that the thread scope can end).
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// (transmitted, received) from ping's summary line
/// ("3000 packets transmitted, 3000 received, 0% packet loss, time 6101ms").
fn ping_summary(stdout: &str, stderr: &str) -> (u64, u64) {
    let line = stdout
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("ping: no summary\nstdout: {stdout}\nstderr: {stderr}"));
    let nums: Vec<u64> = line
        .split(',')
        .filter_map(|part| part.split_whitespace().next()?.parse().ok())
        .collect();
    (nums[0], nums[1])
}

/// No per-agreement counter and no reason count of `earlier` is higher in `later`.
fn assert_not_reset(earlier: &Stats, later: &Stats) {
    for row in &earlier.agreements {
        // Panics naming the counter that went down.
        later.grown(earlier, row.agreement);
    }
    for (name, n) in &earlier.reasons {
        assert!(
            later.reason(name) >= *n,
            "reason {name} went down from {n} to {} across the upgrade",
            later.reason(name)
        );
    }
}

/// From `before` (no traffic yet) to now: agreement 1001 counted exactly the `pings` echo
/// requests and their replies as one transaction; agreement 1003 exactly the TCP segments
/// both endpoints sent (their IP bytes less the pings' plus 14 per frame, exact because
/// [`Topology::one_segment_per_packet`] makes every IP packet one frame) as one transaction;
/// nothing dropped but the endpoints' own IPv6 control packets. Errors with every difference.
fn check_totals(now: &Snapshot, before: &Snapshot, pings: u64) -> Result<(), String> {
    let mut errors = Vec::new();
    let g = now.stats.grown(&before.stats, FMK_AGREEMENT);
    let expected = (pings, pings * PING_FRAME, pings, pings * PING_FRAME, 1);
    let got = (
        g.forward_packets,
        g.forward_bytes,
        g.reply_packets,
        g.reply_bytes,
        g.transactions,
    );
    if got != expected {
        errors.push(format!(
            "agreement {FMK_AGREEMENT} (pings) grew by (forward packets, bytes, reply packets, bytes, transactions) {got:?}, expected {expected:?}"
        ));
    }
    let g = now.stats.grown(&before.stats, PACS_AGREEMENT);
    if g.transactions != 1 {
        errors.push(format!(
            "agreement {PACS_AGREEMENT}: {} transactions, expected 1 (one connection)",
            g.transactions
        ));
    }
    for (what, counted_packets, counted_bytes, now_c, before_c) in [
        (
            "forward (client)",
            g.forward_packets,
            g.forward_bytes,
            &now.client,
            &before.client,
        ),
        (
            "reply (service)",
            g.reply_packets,
            g.reply_bytes,
            &now.service,
            &before.service,
        ),
    ] {
        let segs = now_c.tcp_segments_sent() - before_c.tcp_segments_sent();
        let (p1, o1) = now_c.ipv4_out();
        let (p0, o0) = before_c.ipv4_out();
        let (ip_packets, ip_bytes) = (p1 - p0, o1 - o0);
        if ip_packets != segs + pings {
            errors.push(format!(
                "{what}: the endpoint sent {ip_packets} IPv4 packets, not its {segs} TCP segments + {pings} pings"
            ));
            continue;
        }
        let tcp_frame_bytes = ip_bytes - pings * PING_IP + ETH_HLEN * segs;
        if (counted_packets, counted_bytes) != (segs, tcp_frame_bytes) {
            errors.push(format!(
                "agreement {PACS_AGREEMENT} {what}: counted {counted_packets} packets / {counted_bytes} bytes, the endpoint sent {segs} TCP segments / {tcp_frame_bytes} frame bytes"
            ));
        }
    }
    // Every packet of the test's traffic was counted above, so none of it dropped. The only
    // drops allowed are of the endpoints' own IPv6 control packets: the namespaces' IPv6
    // stacks send MLD reports after the topology comes up, which no agreement covers (rule 6:
    // only an `any` endpoint passes them), so they drop as `no-agreement`.
    let dropped = now.stats.dropped - before.stats.dropped;
    let no_agreement = now.stats.reason_grown(&before.stats, "no-agreement");
    let ipv6_sent = (now.client.ipv6_out().0 - before.client.ipv6_out().0)
        + (now.service.ipv6_out().0 - before.service.ipv6_out().0);
    if dropped != no_agreement || no_agreement > ipv6_sent {
        errors.push(format!(
            "the filter dropped {dropped} packets ({no_agreement} no-agreement) while the endpoints sent {ipv6_sent} IPv6 packets: {:?}",
            now.stats.drops
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

#[test]
fn upgrade_under_traffic_swaps_the_program_without_loss_and_keeps_counting() {
    if !support::netns::root_or_skip() {
        return;
    }
    let started = Instant::now();
    let topo = Topology::up("u", POLICY);
    topo.one_segment_per_packet();
    let listener = tcp_listen(&topo.service(), SocketAddr::new(PACS, PACS_PORT));
    let old_id = running_prog_id(&topo);
    let before = topo.snapshot();

    let ping = Command::new("ip")
        .args(["netns", "exec", &topo.client(), "ping"])
        .args(["-4", "-n", "-q", "-c", &PINGS.to_string()])
        .args(["-i", PING_INTERVAL, "-W", "2", "-s", "56", &FMK.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting ping");
    let mut ping = Reaped(Some(ping));

    let written = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let (total, received, answer, upgrade) = thread::scope(|s| {
        let _stop = SetOnDrop(&stop);
        let server = s.spawn(|| -> io::Result<u64> {
            let mut conn = accept_within(&listener, CONNECT_TIMEOUT + Duration::from_secs(1))?;
            conn.set_read_timeout(Some(IO_TIMEOUT))?;
            conn.set_write_timeout(Some(IO_TIMEOUT))?;
            let mut buf = vec![0u8; 64 * 1024];
            let mut off = 0u64;
            loop {
                let n = conn.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                if let Some(j) = (0..n).find(|&j| buf[j] != stream_byte(off + j as u64)) {
                    return Err(io::Error::other(format!(
                        "byte {} of the stream arrived changed",
                        off + j as u64
                    )));
                }
                off += n as u64;
            }
            conn.write_all(format!("{off}\n").as_bytes())?;
            Ok(off)
        });
        let writer = s.spawn(|| -> io::Result<(u64, String)> {
            let mut c = tcp_connect(
                &topo.client(),
                CLINIC,
                SocketAddr::new(PACS, PACS_PORT),
                CONNECT_TIMEOUT,
            )?;
            c.set_read_timeout(Some(IO_TIMEOUT))?;
            c.set_write_timeout(Some(IO_TIMEOUT))?;
            let mut buf = vec![0u8; CHUNK];
            let mut off = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for (j, b) in buf.iter_mut().enumerate() {
                    *b = stream_byte(off + j as u64);
                }
                c.write_all(&buf)?;
                off += CHUNK as u64;
                written.store(off, Ordering::Relaxed);
                // Pacing, not waiting for anything.
                thread::sleep(PACE);
            }
            c.shutdown(Shutdown::Write)?;
            let mut answer = String::new();
            c.read_to_string(&mut answer)?;
            Ok((off, answer))
        });

        // Both streams are flowing through the first program.
        eventually(PROGRESS_TIMEOUT, || {
            let pings = topo
                .stats()
                .grown(&before.stats, FMK_AGREEMENT)
                .forward_packets;
            let bytes = written.load(Ordering::Relaxed);
            if pings >= PINGS_BEFORE && bytes >= BYTES_BEFORE {
                Ok(())
            } else {
                Err(format!(
                    "before the upgrade: {pings} pings counted (want {PINGS_BEFORE}), {bytes} bytes written (want {BYTES_BEFORE}); TCP writer ended early: {}",
                    writer.is_finished()
                ))
            }
        });

        // The upgrade: a second `run`, same interfaces, same pins.
        let mid = topo.stats();
        let bytes_at_start = written.load(Ordering::Relaxed);
        let t = Instant::now();
        let out = topo.attach();
        let took = t.elapsed();
        let bytes_at_end = written.load(Ordering::Relaxed);
        let post = topo.stats();
        for iface in topo.hub_ifaces() {
            assert!(
                out.contains(&format!(
                    "replaced the program in the existing link of {iface} "
                )),
                "the second run did not replace the program on {iface}:\n{out}"
            );
        }
        assert!(
            ping.0.as_mut().unwrap().try_wait().unwrap().is_none(),
            "ping ended before the upgrade did ({took:?}): raise PINGS"
        );
        assert_not_reset(&mid, &post);

        // Both streams go on through the new program.
        eventually(PROGRESS_TIMEOUT, || {
            let bytes = written.load(Ordering::Relaxed);
            if bytes >= bytes_at_end + BYTES_AFTER {
                Ok(())
            } else {
                Err(format!(
                    "after the upgrade: {bytes} bytes written, want {}; TCP writer ended early: {}",
                    bytes_at_end + BYTES_AFTER,
                    writer.is_finished()
                ))
            }
        });
        stop.store(true, Ordering::Relaxed);
        let (total, answer) = writer
            .join()
            .expect("writer thread panicked")
            .unwrap_or_else(|e| panic!("client: {e}"));
        let received = server
            .join()
            .expect("server thread panicked")
            .unwrap_or_else(|e| panic!("service: {e}"));
        eprintln!(
            "upgrade: second run took {took:?}; {} bytes written during it, {bytes_at_start} before; generation {} -> {}",
            bytes_at_end - bytes_at_start,
            mid.generation,
            post.generation
        );
        (total, received, answer, post)
    });

    let new_id = running_prog_id(&topo);
    assert_ne!(
        new_id, old_id,
        "the program id did not change: nothing was replaced"
    );
    // Nothing holds the old instance any more (link, pin and its loader are gone): the kernel
    // frees it, so upgrades do not pile up programs.
    eventually(SETTLE, || {
        let loaded = aya::programs::loaded_programs().any(|p| p.is_ok_and(|p| p.id() == old_id));
        if loaded {
            Err(format!("the replaced program {old_id} is still loaded"))
        } else {
            Ok(())
        }
    });

    let out = ping.0.take().unwrap().wait_with_output().expect("ping");
    let (transmitted, replies) = ping_summary(
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(
        (transmitted, replies),
        (u64::from(PINGS), u64::from(PINGS)),
        "ping (transmitted, received): every echo request must be answered"
    );

    assert_eq!(
        received, total,
        "the service received {received} of the {total} bytes written"
    );
    assert_eq!(
        answer,
        format!("{total}\n"),
        "the service's answer did not come back intact"
    );

    let mut last = None;
    eventually(SETTLE, || {
        let now = topo.snapshot();
        let result = check_totals(&now, &before, transmitted);
        last = Some(now);
        result
    });
    let last = last.expect("checked at least once");
    // What the new program counted on top of what the old one had.
    let after_fmk = last.stats.grown(&upgrade, FMK_AGREEMENT);
    let after_pacs = last.stats.grown(&upgrade, PACS_AGREEMENT);
    assert!(
        after_fmk.forward_packets > 0 && after_pacs.forward_packets > 0,
        "nothing counted after the upgrade: {after_fmk:?} {after_pacs:?}"
    );
    eprintln!(
        "upgrade: prog id {old_id} -> {new_id}; ping {transmitted} transmitted, {replies} received; TCP {total} bytes; \
         counters from the start: {:?} {:?}; of which after the upgrade: {after_fmk:?} {after_pacs:?}; \
         IPv6 control packets dropped: {}; test took {:?}",
        last.stats.grown(&before.stats, FMK_AGREEMENT),
        last.stats.grown(&before.stats, PACS_AGREEMENT),
        last.stats.reason_grown(&before.stats, "no-agreement"),
        started.elapsed()
    );
}

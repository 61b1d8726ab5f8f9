//! VLAN-tagged probes. This kernel has no 802.1Q devices (no `8021q` module), so tagged
//! frames are written whole by an `AF_PACKET` socket on the client's interface, and seen
//! behind the filter by an `AF_PACKET` tap on the hub's client-side interface: XDP runs
//! before the taps, so a frame the tap sees is a frame the filter passed (the hub's stack
//! then discards it, having no VLAN device).

use std::{
    collections::BTreeMap,
    io,
    net::Ipv4Addr,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
};

use anyhow::{Context as _, Result, anyhow, bail};

use super::traffic::{join, spawn_in};

/// The MAC address of `dev` in namespace `ns`.
fn mac(ns: &str, dev: &str) -> Result<[u8; 6]> {
    let out = Command::new("ip")
        .args(["-n", ns, "-j", "link", "show", "dev", dev])
        .output()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("ip -j link")?;
    let text = v[0]["address"]
        .as_str()
        .ok_or_else(|| anyhow!("no MAC address for {dev} in {ns}"))?;
    let mut m = [0u8; 6];
    for (i, part) in text.split(':').enumerate().take(6) {
        m[i] = u8::from_str_radix(part, 16)?;
    }
    Ok(m)
}

/// An `AF_PACKET` socket bound to `dev` (in the calling thread's namespace).
fn packet_socket(dev: &str) -> Result<OwnedFd> {
    let all = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(all),
        )
    };
    if fd < 0 {
        bail!("AF_PACKET socket: {}", io::Error::last_os_error());
    }
    // SAFETY: fd is a new socket that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let name = std::ffi::CString::new(dev)?;
    // SAFETY: a NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        bail!("no interface {dev}");
    }
    // SAFETY: an all-zero sockaddr_ll is valid; the fields that matter are set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = all;
    sll.sll_ifindex = i32::try_from(index)?;
    // SAFETY: sll is a valid sockaddr_ll of the given size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sll).cast(),
            u32::try_from(size_of::<libc::sockaddr_ll>())?,
        )
    };
    if rc != 0 {
        bail!("bind AF_PACKET to {dev}: {}", io::Error::last_os_error());
    }
    Ok(fd)
}

/// Classic BPF: only IPv4 UDP to ports 7000-7999 (or any frame still carrying its tag),
/// so the tap does not copy the ping flood and the TCP stream to user space.
fn attach_filter(fd: &OwnedFd) -> Result<()> {
    let f = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    let prog = [
        f(0x28, 0, 0, 12),     // ldh [12]          ethertype
        f(0x15, 6, 0, 0x8100), // tag still inline  -> accept
        f(0x15, 0, 6, 0x0800), // not IPv4          -> drop
        f(0x30, 0, 0, 23),     // ldb [23]          protocol
        f(0x15, 0, 4, 17),     // not UDP           -> drop
        f(0x28, 0, 0, 36),     // ldh [36]          destination port (IHL 5)
        f(0x35, 0, 2, 7000),   // < 7000            -> drop
        f(0x25, 1, 0, 7999),   // > 7999            -> drop
        f(0x06, 0, 0, 65535),  // accept
        f(0x06, 0, 0, 0),      // drop
    ];
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len())?,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: fprog points at `prog`, alive for the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&raw const fprog).cast(),
            u32::try_from(size_of::<libc::sock_fprog>())?,
        )
    };
    if rc != 0 {
        bail!("SO_ATTACH_FILTER: {}", io::Error::last_os_error());
    }
    super::ping::receive_timeout_100ms(fd)
}

fn ip_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !u16::try_from(sum).unwrap_or(0)
}

/// Bytes of a tagged probe frame as XDP sees it: Ethernet, 802.1Q tag, IPv4, UDP, token.
pub(crate) const TAGGED_FRAME: u64 = 14 + 4 + 20 + 8 + 8;

/// Tagged probes: a writer on the client's interface, a tap behind the filter.
pub(crate) struct Tagged {
    tx: OwnedFd,
    frame_head: [u8; 12],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    /// Tokens seen by the tap, per destination port.
    seen: Arc<Mutex<BTreeMap<u16, Vec<u64>>>>,
    stop: Arc<AtomicBool>,
    tap: Option<JoinHandle<()>>,
}

impl Tagged {
    /// Opens the writer on `prefix`c0 and the tap on `prefix`hc.
    pub(crate) fn start(prefix: &str, src: Ipv4Addr, dst: Ipv4Addr) -> Result<Self> {
        let (client, hub) = (format!("{prefix}-client"), format!("{prefix}-hub"));
        let (c0, hc) = (format!("{prefix}c0"), format!("{prefix}hc"));
        let mut frame_head = [0u8; 12];
        frame_head[..6].copy_from_slice(&mac(&hub, &hc)?);
        frame_head[6..].copy_from_slice(&mac(&client, &c0)?);
        let tx = join(spawn_in(&client, "vlan-tx", move || packet_socket(&c0))?)?;
        let rx = join(spawn_in(&hub, "vlan-tap", move || {
            let fd = packet_socket(&hc)?;
            attach_filter(&fd)?;
            Ok(fd)
        })?)?;
        let seen: Arc<Mutex<BTreeMap<u16, Vec<u64>>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let tap = {
            let (seen, stop) = (seen.clone(), stop.clone());
            thread::Builder::new()
                .name("vlan-tap".into())
                .spawn(move || {
                    let mut buf = [0u8; 2048];
                    while !stop.load(Ordering::Relaxed) {
                        // SAFETY: buf is valid for its length.
                        let n = unsafe {
                            libc::recv(rx.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
                        };
                        let Ok(n) = usize::try_from(n) else { continue };
                        let mut f = &buf[..n];
                        // The stack moves the tag out of the frame before the taps; keep both.
                        if f.len() >= 18 && f[12..14] == [0x81, 0x00] {
                            f = &f[4..];
                        }
                        if f.len() < 14 + 20 + 8 + 8 || f[12..14] != [0x08, 0x00] || f[23] != 17 {
                            continue;
                        }
                        let ihl = usize::from(f[14] & 0x0f) * 4;
                        let udp = &f[14 + ihl..];
                        if udp.len() < 16 || f[30..34] != dst.octets() {
                            continue;
                        }
                        let port = u16::from_be_bytes([udp[2], udp[3]]);
                        let mut t = [0u8; 8];
                        t.copy_from_slice(&udp[8..16]);
                        if let Ok(mut m) = seen.lock() {
                            m.entry(port).or_default().push(u64::from_be_bytes(t));
                        }
                    }
                })?
        };
        Ok(Self {
            tx,
            frame_head,
            src,
            dst,
            seen,
            stop,
            tap: Some(tap),
        })
    }

    /// Writes one UDP datagram carrying `token` to `port`, tagged with `vlan`.
    pub(crate) fn send(&self, token: u64, port: u16, vlan: u16) -> Result<()> {
        let mut f = Vec::with_capacity(64);
        f.extend_from_slice(&self.frame_head);
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&(vlan & 0x0fff).to_be_bytes());
        f.extend_from_slice(&[0x08, 0x00]);
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(20u16 + 8 + 8).to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&self.src.octets());
        ip[16..20].copy_from_slice(&self.dst.octets());
        let c = ip_checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&(41000 + vlan).to_be_bytes());
        f.extend_from_slice(&port.to_be_bytes());
        f.extend_from_slice(&16u16.to_be_bytes());
        f.extend_from_slice(&[0, 0]); // no UDP checksum (allowed over IPv4)
        f.extend_from_slice(&token.to_be_bytes());
        // SAFETY: f is valid for its length; the socket is bound to the interface.
        let n = unsafe { libc::send(self.tx.as_raw_fd(), f.as_ptr().cast(), f.len(), 0) };
        if n < 0 {
            bail!("writing a tagged frame: {}", io::Error::last_os_error());
        }
        Ok(())
    }

    /// Whether the tap saw `token` at `port`.
    pub(crate) fn saw(&self, token: u64, port: u16) -> bool {
        self.seen
            .lock()
            .is_ok_and(|m| m.get(&port).is_some_and(|v| v.contains(&token)))
    }

    /// Stops the tap; returns the tagged frames (tokens with a variant) it saw per port.
    pub(crate) fn finish(mut self) -> Result<BTreeMap<u16, u64>> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.tap.take() {
            t.join().map_err(|_| anyhow!("the VLAN tap panicked"))?;
        }
        let m = self.seen.lock().map_err(|_| anyhow!("poisoned"))?;
        // The tap also sees the untagged probes on their way to the service: not counted.
        Ok(m.iter()
            .map(|(p, v)| (*p, v.iter().filter(|t| **t % 4 != 0).count() as u64))
            .collect())
    }
}

//! The sentinel echo floods: a paced ICMP (or ICMPv6) echo flood over a raw socket in the
//! client namespace, a sequence number in every payload, so each lost request has its send
//! time (and can be placed in or outside a fault window).

use std::{
    io,
    net::{IpAddr, SocketAddr},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering},
    },
    thread::{self, JoinHandle, sleep},
    time::{Duration, Instant},
};

use anyhow::{Result, anyhow, bail};

use super::{Clock, traffic::spawn_in};

/// Echo payload bytes (after the 8-byte ICMP header): magic, sequence number, padding.
const PAYLOAD: usize = 56;
const MAGIC: &[u8; 4] = b"SOAK";

/// What one echo flood saw.
#[derive(Debug, Default)]
pub(crate) struct PingResult {
    /// Echo requests sent.
    pub(crate) sent: u64,
    /// Distinct replies received.
    pub(crate) received: u64,
    /// Replies received more than once.
    pub(crate) duplicates: u64,
    /// Send times (soak seconds) of the requests that got no reply.
    pub(crate) lost_at: Vec<f64>,
    /// Bytes of one request frame as XDP sees it (Ethernet + IP + ICMP + payload).
    pub(crate) frame_bytes: u64,
    /// The longest gap between two replies while sending (ms).
    pub(crate) max_gap_ms: f64,
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is valid; we fill one family's fields below.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned.
            unsafe { std::ptr::write((&raw mut ss).cast(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write((&raw mut ss).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, libc::socklen_t::try_from(len).unwrap_or(0))
}

fn raw_icmp(src: IpAddr) -> Result<OwnedFd> {
    let (dom, proto) = match src {
        IpAddr::V4(_) => (libc::AF_INET, libc::IPPROTO_ICMP),
        IpAddr::V6(_) => (libc::AF_INET6, libc::IPPROTO_ICMPV6),
    };
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe { libc::socket(dom, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        bail!("raw ICMP socket: {}", io::Error::last_os_error());
    }
    // SAFETY: fd is a new socket that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let (sa, len) = sockaddr(SocketAddr::new(src, 0));
    // SAFETY: sa/len describe a valid sockaddr of the socket's family.
    if unsafe { libc::bind(fd.as_raw_fd(), (&raw const sa).cast(), len) } != 0 {
        bail!("bind {src}: {}", io::Error::last_os_error());
    }
    // A receive timeout, so the receiver notices the end of the run.
    receive_timeout_100ms(&fd)?;
    Ok(fd)
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !u16::try_from(sum).unwrap_or(0)
}

/// An echo flood from `src` to `dst` at `rate` per second until `stop`; replies are waited
/// for 1 s after the last request. At most `cap` requests.
pub(crate) fn ping_flood(
    ns: &str,
    src: IpAddr,
    dst: IpAddr,
    rate: u32,
    cap: usize,
    clock: Clock,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<Result<PingResult>>> {
    let v6 = dst.is_ipv6();
    spawn_in(ns, if v6 { "ping6" } else { "ping4" }, move || {
        let sock = raw_icmp(src)?;
        let rx = sock.try_clone()?;
        let id: u16 = (std::process::id() as u16) ^ if v6 { 0x6666 } else { 0x4444 };
        let got: Arc<Vec<AtomicU8>> = Arc::new((0..cap).map(|_| AtomicU8::new(0)).collect());
        let done = Arc::new(AtomicBool::new(false));
        let max_gap = Arc::new(AtomicU64::new(0));
        let receiver = {
            let (got, done, max_gap) = (got.clone(), done.clone(), max_gap.clone());
            thread::Builder::new()
                .name("ping-rx".into())
                .spawn(move || {
                    let mut buf = [0u8; 2048];
                    let mut last = Instant::now();
                    while !done.load(Ordering::Relaxed) {
                        // SAFETY: buf is valid for its length.
                        let n = unsafe {
                            libc::recv(rx.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
                        };
                        let Ok(n) = usize::try_from(n) else { continue };
                        let icmp = if v6 {
                            &buf[..n]
                        } else {
                            let ihl = usize::from(buf[0] & 0x0f) * 4;
                            &buf[ihl.min(n)..n]
                        };
                        let reply = if v6 { 129 } else { 0 };
                        if icmp.len() < 8 + 12
                            || icmp[0] != reply
                            || u16::from_be_bytes([icmp[4], icmp[5]]) != id
                            || &icmp[8..12] != MAGIC
                        {
                            continue;
                        }
                        let mut s = [0u8; 8];
                        s.copy_from_slice(&icmp[12..20]);
                        if let Some(slot) = usize::try_from(u64::from_be_bytes(s))
                            .ok()
                            .and_then(|i| got.get(i))
                        {
                            slot.fetch_add(1, Ordering::Relaxed);
                            let gap = u64::try_from(last.elapsed().as_micros()).unwrap_or(0);
                            max_gap.fetch_max(gap, Ordering::Relaxed);
                            last = Instant::now();
                        }
                    }
                })?
        };
        let (sa, len) = sockaddr(SocketAddr::new(dst, 0));
        let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
        let mut sent_at: Vec<f64> = Vec::with_capacity(cap);
        let mut next = Instant::now();
        let mut pkt = [0u8; 8 + PAYLOAD];
        while !stop.load(Ordering::Relaxed) && sent_at.len() < cap {
            let seq = sent_at.len() as u64;
            pkt.fill(0);
            pkt[0] = if v6 { 128 } else { 8 };
            pkt[4..6].copy_from_slice(&id.to_be_bytes());
            pkt[6..8].copy_from_slice(&(seq as u16).to_be_bytes());
            pkt[8..12].copy_from_slice(MAGIC);
            pkt[12..20].copy_from_slice(&seq.to_be_bytes());
            if !v6 {
                // The kernel fills in ICMPv6 checksums itself, not ICMPv4 ones.
                let c = checksum(&pkt);
                pkt[2..4].copy_from_slice(&c.to_be_bytes());
            }
            let t = clock.t();
            // SAFETY: pkt and sa are valid for their lengths.
            let n = unsafe {
                libc::sendto(
                    sock.as_raw_fd(),
                    pkt.as_ptr().cast(),
                    pkt.len(),
                    0,
                    (&raw const sa).cast(),
                    len,
                )
            };
            if n < 0 {
                // Not sent (e.g. no neighbour yet): not a request, so not a loss either.
                sleep(interval);
                continue;
            }
            sent_at.push(t);
            next += interval;
            let now = Instant::now();
            if next > now {
                sleep(next - now);
            } else if now - next > Duration::from_millis(500) {
                // Starved of CPU: carry on at the rate, no burst to catch up.
                next = now;
            }
        }
        sleep(Duration::from_secs(1));
        done.store(true, Ordering::Relaxed);
        receiver
            .join()
            .map_err(|_| anyhow!("ping receiver panicked"))?;
        let mut r = PingResult {
            sent: sent_at.len() as u64,
            frame_bytes: if v6 { 14 + 40 } else { 14 + 20 } + 8 + PAYLOAD as u64,
            max_gap_ms: max_gap.load(Ordering::Relaxed) as f64 / 1000.0,
            ..PingResult::default()
        };
        for (i, t) in sent_at.iter().enumerate() {
            match got[i].load(Ordering::Relaxed) {
                0 => r.lost_at.push(*t),
                n => {
                    r.received += 1;
                    r.duplicates += u64::from(n - 1);
                }
            }
        }
        Ok(r)
    })
}

/// Gives a socket a 100 ms receive timeout, so that a receiver notices the end of a run.
pub(super) fn receive_timeout_100ms(fd: &OwnedFd) -> Result<()> {
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    // SAFETY: a valid timeval and its size, on a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            libc::socklen_t::try_from(size_of::<libc::timeval>())?,
        )
    };
    if rc != 0 {
        bail!("SO_RCVTIMEO: {}", io::Error::last_os_error());
    }
    Ok(())
}

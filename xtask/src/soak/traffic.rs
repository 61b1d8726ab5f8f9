//! Traffic through the hub: a paced ICMP echo flood per address family (raw sockets, a
//! sequence number in every payload, so each lost packet has a send time), a long TCP stream
//! and short TCP transfers, and UDP probes of the pool agreements. Every socket is opened
//! by a thread that entered the namespace with `setns` (a socket stays in the namespace it
//! was created in).

use std::{
    collections::BTreeMap,
    fs::File,
    io::{self, Read as _, Write as _},
    net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::{self, JoinHandle, sleep},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};

use super::{Clock, vlan::Tagged};

/// Runs `f` on a new thread that first enters network namespace `ns` (an `ip netns` name).
pub(crate) fn spawn_in<T: Send + 'static>(
    ns: &str,
    name: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<JoinHandle<Result<T>>> {
    let path = format!("/run/netns/{ns}");
    Ok(thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let file = File::open(&path).with_context(|| path.clone())?;
            // SAFETY: setns on a namespace file we hold open; it changes this thread only.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                bail!("setns {path}: {}", io::Error::last_os_error());
            }
            f()
        })?)
}

/// Joins a traffic thread.
pub(crate) fn join<T>(h: JoinHandle<Result<T>>) -> Result<T> {
    h.join().map_err(|_| anyhow!("a traffic thread panicked"))?
}

/// Kernel counters of namespace `ns` (`/proc/net/snmp` as `Group.Name`).
pub(crate) fn snmp(ns: &str) -> Result<BTreeMap<String, u64>> {
    join(spawn_in(ns, "snmp", || {
        let text = std::fs::read_to_string("/proc/thread-self/net/snmp")?;
        let lines: Vec<&str> = text.lines().collect();
        let mut m = BTreeMap::new();
        for pair in lines.chunks(2) {
            let [names, values] = pair else { continue };
            let mut n = names.split_whitespace();
            let mut v = values.split_whitespace();
            let (Some(group), Some(_)) = (n.next(), v.next()) else {
                continue;
            };
            for (name, value) in n.zip(v) {
                if let Ok(value) = value.parse::<i64>() {
                    m.insert(
                        format!("{}.{name}", group.trim_end_matches(':')),
                        u64::try_from(value).unwrap_or(0),
                    );
                }
            }
        }
        Ok(m)
    })?)
}

/// What the TCP traffic saw.
#[derive(Debug, Default)]
pub(crate) struct TcpResult {
    /// Bytes the stream client wrote.
    pub(crate) stream_sent: u64,
    /// Bytes the stream server read, in order and intact.
    pub(crate) stream_received: u64,
    /// Stream connections that broke (error or corrupt byte), with the time.
    pub(crate) stream_breaks: Vec<(f64, String)>,
    /// Longest time the stream server waited for data while the client was sending (ms).
    pub(crate) stream_max_stall_ms: f64,
    /// Short transfers tried, and those that failed (time, error).
    pub(crate) short_tried: u64,
    /// Failed short transfers.
    pub(crate) short_failed: Vec<(f64, String)>,
    /// TCP connections the client opened.
    pub(crate) connections: u64,
    /// Each short transfer's local port, start and end (soak seconds): a port used again
    /// while its earlier flow is still in the flow table is no new flow (rule 10).
    pub(crate) short_ports: Vec<(u16, f64, f64)>,
}

const STREAM_CHUNK: usize = 16 * 1024;
const SHORT_BYTES: usize = 16 * 1024;

fn pattern(offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = ((offset + i as u64) % 251) as u8;
    }
}

/// Running TCP traffic: servers in the service namespace, clients in the client namespace.
pub(crate) struct Tcp {
    threads: Vec<JoinHandle<Result<TcpResult>>>,
    /// Connections opened so far (read by the checkpoints).
    pub(crate) opened: Arc<AtomicU64>,
}

/// Starts the stream (port 5001, `rate` bytes/s) and the short transfers (port 5002, every
/// 100 ms) to `dst`, until `stop`.
pub(crate) fn tcp_start(
    client_ns: &str,
    service_ns: &str,
    dst: Ipv4Addr,
    rate: u64,
    clock: Clock,
    stop: Arc<AtomicBool>,
) -> Result<Tcp> {
    let stream_addr = SocketAddr::from((dst, 5001));
    let short_addr = SocketAddr::from((dst, 5002));
    let l1 = join(spawn_in(service_ns, "tcp-listen", move || {
        Ok((
            TcpListener::bind(stream_addr)?,
            TcpListener::bind(short_addr)?,
        ))
    })?)?;
    let (stream_l, short_l) = l1;
    let sending = Arc::new(AtomicBool::new(true));
    let opened = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    // Stream server: verifies every byte, measures stalls.
    {
        let (sending, stop) = (sending.clone(), stop.clone());
        threads.push(
            thread::Builder::new()
                .name("tcp-sink".into())
                .spawn(move || {
                    let mut r = TcpResult::default();
                    stream_l.set_nonblocking(true)?;
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut want = vec![0u8; 64 * 1024];
                    'accept: loop {
                        let (mut s, _) = match stream_l.accept() {
                            Ok(x) => x,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                if stop.load(Ordering::Relaxed) && !sending.load(Ordering::Relaxed)
                                {
                                    return Ok(r);
                                }
                                sleep(Duration::from_millis(5));
                                continue;
                            }
                            Err(e) => return Err(e.into()),
                        };
                        s.set_nonblocking(false)?;
                        s.set_read_timeout(Some(Duration::from_millis(100)))?;
                        let mut offset = 0u64;
                        let mut last = Instant::now();
                        loop {
                            match s.read(&mut buf) {
                                Ok(0) => {
                                    r.stream_received += offset;
                                    let _ = s.write_all(&offset.to_be_bytes());
                                    continue 'accept;
                                }
                                Ok(n) => {
                                    pattern(offset, &mut want[..n]);
                                    if buf[..n] != want[..n] {
                                        r.stream_breaks.push((
                                            clock.t(),
                                            format!("corrupt data at byte {offset}"),
                                        ));
                                        r.stream_received += offset;
                                        continue 'accept;
                                    }
                                    offset += n as u64;
                                    if sending.load(Ordering::Relaxed) {
                                        let stall = last.elapsed().as_secs_f64() * 1000.0;
                                        r.stream_max_stall_ms = r.stream_max_stall_ms.max(stall);
                                    }
                                    last = Instant::now();
                                }
                                Err(e)
                                    if matches!(
                                        e.kind(),
                                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                                    ) =>
                                {
                                    // A client that went away without a FIN: give up at the end.
                                    if stop.load(Ordering::Relaxed)
                                        && !sending.load(Ordering::Relaxed)
                                        && last.elapsed() > Duration::from_secs(5)
                                    {
                                        r.stream_received += offset;
                                        return Ok(r);
                                    }
                                }
                                Err(_) => {
                                    r.stream_received += offset;
                                    continue 'accept;
                                }
                            }
                        }
                    }
                })?,
        );
    }
    // Short-transfer server: reads to EOF, answers the byte count.
    {
        let stop = stop.clone();
        threads.push(
            thread::Builder::new()
                .name("tcp-short-srv".into())
                .spawn(move || {
                    short_l.set_nonblocking(true)?;
                    loop {
                        match short_l.accept() {
                            Ok((mut s, _)) => {
                                s.set_nonblocking(false)?;
                                s.set_read_timeout(Some(Duration::from_secs(3)))?;
                                let mut n = 0u64;
                                let mut buf = [0u8; 8192];
                                while let Ok(k) = s.read(&mut buf) {
                                    if k == 0 {
                                        let _ = s.write_all(&n.to_be_bytes());
                                        break;
                                    }
                                    n += k as u64;
                                }
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                if stop.load(Ordering::Relaxed) {
                                    return Ok(TcpResult::default());
                                }
                                sleep(Duration::from_millis(2));
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                })?,
        );
    }
    // Stream client: paced writes of the pattern; reconnects after a break.
    {
        let (sending, stop, opened) = (sending, stop.clone(), opened.clone());
        threads.push(spawn_in(client_ns, "tcp-stream", move || {
            let mut r = TcpResult::default();
            let mut chunk = vec![0u8; STREAM_CHUNK];
            let every = Duration::from_secs_f64(STREAM_CHUNK as f64 / rate.max(1) as f64);
            while !stop.load(Ordering::Relaxed) {
                r.connections += 1;
                opened.fetch_add(1, Ordering::SeqCst);
                let mut s = match TcpStream::connect_timeout(&stream_addr, Duration::from_secs(3)) {
                    Ok(s) => s,
                    Err(e) => {
                        r.stream_breaks.push((clock.t(), format!("connect: {e}")));
                        sleep(Duration::from_millis(200));
                        continue;
                    }
                };
                let mut offset = 0u64;
                let mut next = Instant::now();
                let mut broke = false;
                while !stop.load(Ordering::Relaxed) {
                    pattern(offset, &mut chunk);
                    if let Err(e) = s.write_all(&chunk) {
                        r.stream_breaks.push((clock.t(), format!("write: {e}")));
                        broke = true;
                        break;
                    }
                    offset += chunk.len() as u64;
                    next += every;
                    let now = Instant::now();
                    if next > now {
                        sleep(next - now);
                    } else {
                        next = now;
                    }
                }
                r.stream_sent += offset;
                if broke {
                    continue;
                }
                sending.store(false, Ordering::Relaxed);
                s.shutdown(Shutdown::Write)?;
                s.set_read_timeout(Some(Duration::from_secs(10)))?;
                let mut count = [0u8; 8];
                if let Err(e) = s.read_exact(&mut count) {
                    r.stream_breaks
                        .push((clock.t(), format!("reading the final count: {e}")));
                } else if u64::from_be_bytes(count) != offset {
                    r.stream_breaks.push((
                        clock.t(),
                        format!("server counted {} of {offset}", u64::from_be_bytes(count)),
                    ));
                }
            }
            sending.store(false, Ordering::Relaxed);
            Ok(r)
        })?);
    }
    // Short transfers.
    let counter = opened.clone();
    threads.push(spawn_in(client_ns, "tcp-short", move || {
        let mut r = TcpResult::default();
        let data = vec![7u8; SHORT_BYTES];
        while !stop.load(Ordering::Relaxed) {
            r.short_tried += 1;
            r.connections += 1;
            counter.fetch_add(1, Ordering::SeqCst);
            let t0 = clock.t();
            let mut port = None;
            let res = (|| -> io::Result<()> {
                let mut s = TcpStream::connect_timeout(&short_addr, Duration::from_secs(3))?;
                port = Some(s.local_addr()?.port());
                s.set_read_timeout(Some(Duration::from_secs(3)))?;
                s.write_all(&data)?;
                s.shutdown(Shutdown::Write)?;
                let mut count = [0u8; 8];
                s.read_exact(&mut count)?;
                if u64::from_be_bytes(count) != SHORT_BYTES as u64 {
                    return Err(io::Error::other(format!(
                        "server counted {}",
                        u64::from_be_bytes(count)
                    )));
                }
                Ok(())
            })();
            if let Err(e) = res {
                r.short_failed.push((clock.t(), e.to_string()));
            }
            if let Some(p) = port {
                r.short_ports.push((p, t0, clock.t()));
            }
            sleep(Duration::from_millis(100));
        }
        Ok(r)
    })?);
    Ok(Tcp { threads, opened })
}

/// Short transfers whose source port an earlier one used less than the flow idle timeout
/// (120 s, docs/semantics.md) before: the same flow, no new transaction. Returns (surely
/// the same flow, within a second or two of the timeout either way).
pub(crate) fn port_reuse(ports: &[(u16, f64, f64)]) -> (u64, u64) {
    let mut sorted = ports.to_vec();
    sorted.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut last: BTreeMap<u16, f64> = BTreeMap::new();
    let (mut reused, mut unsure) = (0, 0);
    for (port, start, end) in sorted {
        if let Some(prev) = last.get(&port) {
            // The last-seen time is refreshed at most once a second.
            match start - prev {
                g if g < 118.0 => reused += 1,
                g if g <= 122.0 => unsure += 1,
                _ => {}
            }
        }
        last.insert(port, end);
    }
    (reused, unsure)
}

impl TcpResult {
    /// [`port_reuse`] of the short transfers.
    pub(crate) fn port_reuse(&self) -> (u64, u64) {
        port_reuse(&self.short_ports)
    }
}

impl Tcp {
    /// Waits for the TCP threads (after `stop`) and sums what they saw.
    pub(crate) fn finish(self) -> Result<TcpResult> {
        let mut all = TcpResult::default();
        for t in self.threads {
            let r = join(t)?;
            all.stream_sent += r.stream_sent;
            all.stream_received += r.stream_received;
            all.stream_breaks.extend(r.stream_breaks);
            all.stream_max_stall_ms = all.stream_max_stall_ms.max(r.stream_max_stall_ms);
            all.short_tried += r.short_tried;
            all.short_failed.extend(r.short_failed);
            all.connections += r.connections;
            all.short_ports.extend(r.short_ports);
        }
        Ok(all)
    }
}

/// The VLAN of each probe variant: untagged, then tagged 100 and 200.
pub(crate) const VARIANTS: [Option<u16>; 3] = [None, Some(100), Some(200)];

/// Bytes of an untagged probe frame as XDP sees it: Ethernet, IPv4, UDP, token.
pub(crate) const UNTAGGED_FRAME: u64 = 14 + 20 + 8 + 8;

/// UDP probes of the pool agreements: untagged datagrams from the client namespace to one
/// socket per pool port in the service namespace, and tagged frames ([`Tagged`]).
pub(crate) struct Probes {
    sender: UdpSocket,
    dst: Ipv4Addr,
    tagged: Tagged,
    /// Tokens received, per port.
    seen: Arc<Mutex<BTreeMap<u16, Vec<u64>>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// Datagrams (untagged, at the service) and frames (tagged, at the tap) per port.
pub(crate) type ProbeCounts = (BTreeMap<u16, u64>, BTreeMap<u16, u64>);

impl Probes {
    /// Binds `dst:ports` in the service namespace and a sender on `src` in the client's.
    pub(crate) fn start(
        prefix: &str,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        ports: Vec<u16>,
    ) -> Result<Self> {
        let (client_ns, service_ns) = (format!("{prefix}-client"), format!("{prefix}-service"));
        let socks = join(spawn_in(&service_ns, "udp-bind", move || {
            ports
                .iter()
                .map(|p| Ok((*p, UdpSocket::bind((dst, *p))?)))
                .collect::<Result<Vec<_>>>()
        })?)?;
        let sender = join(spawn_in(&client_ns, "udp-send", move || {
            Ok(UdpSocket::bind((src, 0))?)
        })?)?;
        let seen: Arc<Mutex<BTreeMap<u16, Vec<u64>>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (port, s) in socks {
            s.set_read_timeout(Some(Duration::from_millis(100)))?;
            let (seen, stop) = (seen.clone(), stop.clone());
            threads.push(
                thread::Builder::new()
                    .name("udp-rx".into())
                    .spawn(move || {
                        let mut buf = [0u8; 64];
                        while !stop.load(Ordering::Relaxed) {
                            if let Ok(8) = s.recv(&mut buf) {
                                let mut t = [0u8; 8];
                                t.copy_from_slice(&buf[..8]);
                                if let Ok(mut m) = seen.lock() {
                                    m.entry(port).or_default().push(u64::from_be_bytes(t));
                                }
                            }
                        }
                    })?,
            );
        }
        Ok(Self {
            sender,
            dst,
            tagged: Tagged::start(prefix, src, dst)?,
            seen,
            stop,
            threads,
        })
    }

    /// Sends each variant once to each port (token `round * 4 + variant`), waits 300 ms,
    /// returns the (port, variant) that arrived behind the filter.
    pub(crate) fn round(&self, round: u64, ports: &[u16]) -> Result<Vec<(u16, usize)>> {
        for p in ports {
            self.sender
                .send_to(&(round * 4).to_be_bytes(), (self.dst, *p))
                .with_context(|| format!("sending a probe to port {p}"))?;
            for (v, vlan) in VARIANTS.iter().enumerate().skip(1) {
                self.tagged
                    .send(round * 4 + v as u64, *p, vlan.unwrap_or(0))?;
            }
        }
        sleep(Duration::from_millis(300));
        let m = self.seen.lock().map_err(|_| anyhow!("poisoned"))?;
        let mut got = Vec::new();
        for p in ports {
            if m.get(p).is_some_and(|v| v.contains(&(round * 4))) {
                got.push((*p, 0));
            }
            for v in 1..VARIANTS.len() {
                if self.tagged.saw(round * 4 + v as u64, *p) {
                    got.push((*p, v));
                }
            }
        }
        Ok(got)
    }

    /// Stops the receivers; returns what arrived per port.
    pub(crate) fn finish(self) -> Result<ProbeCounts> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().map_err(|_| anyhow!("a UDP receiver panicked"))?;
        }
        let tagged = self.tagged.finish()?;
        let m = self.seen.lock().map_err(|_| anyhow!("poisoned"))?;
        Ok((
            m.iter().map(|(p, v)| (*p, v.len() as u64)).collect(),
            tagged,
        ))
    }
}

/// The client's addresses and the service's, from scripts/topology.sh.
pub(crate) const CLINIC4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
/// The second client address (the pool's client).
pub(crate) const LAB4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 20);
/// The client's IPv6 address.
pub(crate) const CLINIC6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x10);
/// The service address of the sentinels.
pub(crate) const SERVICE4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// The service address of the pool.
pub(crate) const POOL4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 20);
/// The service's IPv6 address.
pub(crate) const SERVICE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x300, 0, 0, 0, 0, 0x10);

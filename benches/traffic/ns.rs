//! Network namespaces for the traffic benchmark: the client/hub/service topology of
//! scripts/topology.sh under the prefix "bn", entering namespaces, interface counters.

use std::{
    fs::File,
    os::fd::AsRawFd as _,
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

/// Namespace prefix of everything this benchmark creates.
pub(crate) const PREFIX: &str = "bn";
/// Generator (client side), hub and service namespaces.
pub(crate) const CLIENT: &str = "bn-client";
/// The hub: filters and forwards.
pub(crate) const HUB: &str = "bn-hub";
/// The service side: counts what the hub forwarded.
pub(crate) const SERVICE: &str = "bn-service";
/// Generator's interface (in `CLIENT`), the hub's ingress (in `HUB`), the service's interface.
pub(crate) const GEN_IF: &str = "bnc0";
/// Hub ingress, where the filters attach.
pub(crate) const HUB_IN: &str = "bnhc";
/// Service-side interface.
pub(crate) const SERVICE_IF: &str = "bns0";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/topology.sh")
}

/// Runs a command, failing with its stderr when it fails.
pub(crate) fn run(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip netns exec NS args...`.
pub(crate) fn in_ns(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(args);
    c
}

/// The topology; removed on drop (also when a measurement fails).
pub(crate) struct Topology;

impl Topology {
    /// Creates it (removing a leftover one first) and routes the synthetic policy's service
    /// ranges (198.19.0.0/16, 2001:db8:5000::/48) from the hub to the service namespace.
    pub(crate) fn up() -> Result<Self> {
        run(Command::new("bash").arg(script()).args(["up", PREFIX]))?;
        let t = Self;
        for args in [
            &["route", "add", "198.19.0.0/16", "via", "203.0.113.10"][..],
            &["route", "add", "198.18.0.0/16", "via", "198.51.100.10"],
            &[
                "-6",
                "route",
                "add",
                "2001:db8:5000::/48",
                "via",
                "2001:db8:300::10",
            ],
            &[
                "-6",
                "route",
                "add",
                "2001:db8:1000::/48",
                "via",
                "2001:db8:100::10",
            ],
        ] {
            run(Command::new("ip").args(["-n", HUB]).args(args))?;
        }
        run(&mut in_ns(
            HUB,
            &[
                "sysctl",
                "-qw",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.bnhc.rp_filter=0",
            ],
        ))?;
        // Resolve the service's neighbour entries before any measurement.
        run(&mut in_ns(HUB, &["ping", "-c1", "-W1", "203.0.113.10"]))?;
        run(&mut in_ns(
            HUB,
            &["ping", "-6", "-c1", "-W1", "2001:db8:300::10"],
        ))?;
        Ok(t)
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if std::env::var_os("SDN_BENCH_KEEP").is_some() {
            eprintln!("SDN_BENCH_KEEP: leaving the bn-* namespaces in place");
            return;
        }
        let _ = run(Command::new("bash").arg(script()).args(["down", PREFIX]));
    }
}

/// While alive, the calling thread is in another network namespace; drop returns it.
pub(crate) struct Entered {
    home: File,
}

impl Entered {
    /// Enters the `ip netns` namespace `name`.
    pub(crate) fn new(name: &str) -> Result<Self> {
        let home = File::open("/proc/thread-self/ns/net").context("own network namespace")?;
        setns(&PathBuf::from("/run/netns").join(name))?;
        Ok(Self { home })
    }
}

fn setns(path: &PathBuf) -> Result<()> {
    let f = File::open(path).with_context(|| format!("{}", path.display()))?;
    set(&f).with_context(|| format!("setns {}", path.display()))
}

fn set(f: &File) -> std::io::Result<()> {
    // SAFETY: setns on a namespace file descriptor we own; affects only this thread.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        if let Err(e) = set(&self.home) {
            eprintln!("returning to the original network namespace: {e}");
        }
    }
}

/// One interface's JSON record from `ip -s -j link show`.
fn link_json(ns: &str, iface: &str) -> Result<serde_json::Value> {
    let out = run(Command::new("ip").args(["-n", ns, "-s", "-j", "link", "show", "dev", iface]))?;
    let v: serde_json::Value = serde_json::from_str(&out).context("ip -j output")?;
    v.get(0).cloned().context("no such interface")
}

/// Interface counters.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counters {
    /// Received packets.
    pub(crate) rx: u64,
    /// Packets dropped on receive.
    pub(crate) rx_dropped: u64,
    /// Packets dropped on transmit.
    pub(crate) tx_dropped: u64,
}

/// Reads an interface's counters.
pub(crate) fn counters(ns: &str, iface: &str) -> Result<Counters> {
    let v = link_json(ns, iface)?;
    let get = |dir: &str, what: &str| {
        v.pointer(&format!("/stats64/{dir}/{what}"))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    Ok(Counters {
        rx: get("rx", "packets"),
        rx_dropped: get("rx", "dropped"),
        tx_dropped: get("tx", "dropped"),
    })
}

/// An interface's index and MAC address.
pub(crate) fn index_and_mac(ns: &str, iface: &str) -> Result<(u32, [u8; 6])> {
    let v = link_json(ns, iface)?;
    let index = v
        .get("ifindex")
        .and_then(serde_json::Value::as_u64)
        .context("ifindex")? as u32;
    let text = v
        .get("address")
        .and_then(serde_json::Value::as_str)
        .context("address")?;
    let mut mac = [0u8; 6];
    for (i, part) in text.split(':').enumerate().take(6) {
        mac[i] = u8::from_str_radix(part, 16).context("MAC address")?;
    }
    Ok((index, mac))
}

/// Id of the XDP program attached to an interface, if any.
pub(crate) fn xdp_prog_id(ns: &str, iface: &str) -> Result<Option<u64>> {
    let v = link_json(ns, iface)?;
    Ok(v.pointer("/xdp/prog/id")
        .or_else(|| v.pointer("/xdp/attached/0/prog/id"))
        .and_then(serde_json::Value::as_u64))
}

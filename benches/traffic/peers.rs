//! The filters compared on the hub's ingress, each configured from the same synthetic policy:
//! no filter, sdn-filter, xdp-filter (xdp-tools), nftables (concatenated interval sets),
//! iptables with ipset. Every configuration lives in the "bn" namespaces only.

use std::{collections::BTreeSet, fmt::Write as _, net::IpAddr, process::Command, time::Instant};

use anyhow::{Context as _, Result, bail};
use ipnet::IpNet;
use sdn_loader::{
    compile::compile,
    dataplane::{Capacities, Dataplane, Program},
    policy::{Policy, Protocol},
};

use crate::ns::{self, Entered, HUB, HUB_IN, in_ns, run};

/// A filter configuration on the hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Peer {
    /// No filter: a bare XDP_PASS program on the ingress, then the kernel forwards.
    None,
    /// sdn-filter on the ingress.
    SdnFilter,
    /// xdp-tools' xdp-filter, allow list of source addresses (its closest configuration).
    XdpFilter,
    /// nftables: forward chain, concatenated interval sets (XDP_PASS on the ingress).
    Nftables,
    /// iptables (nf_tables backend) with ipset hash:ip,port,net (XDP_PASS on the ingress).
    Iptables,
}

impl Peer {
    /// Name in tables.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::None => "no filter (XDP_PASS)",
            Self::SdnFilter => "sdn-filter",
            Self::XdpFilter => "xdp-filter",
            Self::Nftables => "nftables",
            Self::Iptables => "iptables+ipset",
        }
    }
}

/// What is installed; keeps the XDP program attached while alive.
pub(crate) struct Installed {
    /// The loaded instance (sdn-filter, or the XDP_PASS program under the netfilter peers).
    pub(crate) _attached: Option<Dataplane>,
    /// Seconds to configure the rules.
    pub(crate) setup_s: f64,
    /// Rules/elements/entries installed.
    pub(crate) entries: usize,
}

/// One flattened rule: client prefix, endpoint prefix, protocol name, port range.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Tuple {
    /// Client prefix.
    pub(crate) client: IpNet,
    /// Endpoint address.
    pub(crate) endpoint: IpNet,
    /// "tcp" or "udp".
    pub(crate) proto: &'static str,
    /// Ports.
    pub(crate) ports: (u16, u16),
}

/// The policy's agreements as (client prefix, endpoint, protocol, ports) tuples of one
/// family (the synthetic policies have TCP and UDP endpoints with ports only).
pub(crate) fn tuples(policy: &Policy) -> Vec<Tuple> {
    let clients: std::collections::HashMap<_, _> =
        policy.clients.iter().map(|c| (c.id.as_str(), c)).collect();
    let services: std::collections::HashMap<_, _> =
        policy.services.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut out = BTreeSet::new();
    for a in &policy.agreements {
        let (Some(c), Some(s)) = (
            clients.get(a.client.as_str()),
            services.get(a.service.as_str()),
        ) else {
            continue;
        };
        for p in &c.prefixes {
            for e in &s.endpoints {
                let proto = match e.protocol {
                    Protocol::Tcp => "tcp",
                    Protocol::Udp => "udp",
                    _ => continue,
                };
                if p.addr().is_ipv4() != e.address.addr().is_ipv4() {
                    continue;
                }
                for r in &e.ports {
                    out.insert(Tuple {
                        client: *p,
                        endpoint: e.address,
                        proto,
                        ports: (r.lo, r.hi),
                    });
                }
            }
        }
    }
    out.into_iter().collect()
}

fn small_caps() -> Capacities {
    Capacities {
        slots: 64,
        flows: 1024,
        fragments: 64,
        prefixes: 64,
        rules: 64,
    }
}

/// Loads an instance in the hub namespace and attaches `which` to the hub's ingress.
fn attach(which: Program, policy: Option<&Policy>) -> Result<Dataplane> {
    let _inside = Entered::new(HUB)?;
    let mut dp = match policy {
        Some(p) => {
            let compiled = compile(p, crate::today()?)?;
            let mut caps = Capacities::for_replay(&compiled);
            caps.flows = 1 << 20;
            let mut dp = Dataplane::load_private(caps)?;
            dp.apply(&compiled)?;
            dp
        }
        None => Dataplane::load_private(small_caps())?,
    };
    dp.attach_native(which, HUB_IN)?;
    Ok(dp)
}

/// Installs `filter` on the hub for `policy`.
pub(crate) fn install(filter: Peer, policy: &Policy) -> Result<Installed> {
    let t0 = Instant::now();
    let (dp, entries) = match filter {
        Peer::None => (Some(attach(Program::Pass, None)?), 0),
        Peer::SdnFilter => (
            Some(attach(Program::Filter, Some(policy))?),
            policy.agreements.len(),
        ),
        Peer::XdpFilter => (None, xdp_filter(policy)?),
        Peer::Nftables => {
            let dp = attach(Program::Pass, None)?;
            (Some(dp), nftables(policy)?)
        }
        Peer::Iptables => {
            let dp = attach(Program::Pass, None)?;
            (Some(dp), iptables(policy)?)
        }
    };
    Ok(Installed {
        _attached: dp,
        setup_s: t0.elapsed().as_secs_f64(),
        entries,
    })
}

/// Removes a temporary file unless SDN_BENCH_KEEP asks to keep it (for debugging).
fn remove(path: &std::path::Path) {
    if std::env::var_os("SDN_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_file(path);
    }
}

fn tmp_file(name: &str, text: &str) -> Result<std::path::PathBuf> {
    let path = std::env::temp_dir().join(format!("bn-{}-{name}", std::process::id()));
    std::fs::write(&path, text).with_context(|| format!("{}", path.display()))?;
    Ok(path)
}

/// nftables: one set per family with (saddr . daddr . l4proto . dport) elements; forward
/// direction by the destination port, replies by the source port; policy drop.
fn nftables(policy: &Policy) -> Result<usize> {
    let all = tuples(policy);
    let mut text = String::from("table inet bn {\n");
    let mut rules = String::new();
    let mut n = 0;
    for (set, v4, ty, ip) in [
        ("agr4", true, "ipv4_addr . ipv4_addr", "ip"),
        ("agr6", false, "ipv6_addr . ipv6_addr", "ip6"),
    ] {
        let elems: Vec<String> = all
            .iter()
            .filter(|t| t.client.addr().is_ipv4() == v4)
            .map(|t| {
                let port = if t.ports.0 == t.ports.1 {
                    t.ports.0.to_string()
                } else {
                    format!("{}-{}", t.ports.0, t.ports.1)
                };
                format!(
                    "{} . {} . {} . {port}",
                    t.client,
                    t.endpoint.addr(),
                    t.proto
                )
            })
            .collect();
        if elems.is_empty() {
            continue;
        }
        n += elems.len();
        let _ = writeln!(
            text,
            "  set {set} {{\n    type {ty} . inet_proto . inet_service\n    flags interval\n    elements = {{ {} }}\n  }}",
            elems.join(",\n      ")
        );
        let _ = writeln!(
            rules,
            "    {ip} saddr . {ip} daddr . meta l4proto . th dport @{set} accept\n    {ip} daddr . {ip} saddr . meta l4proto . th sport @{set} accept"
        );
    }
    let _ = writeln!(
        text,
        "  chain forward_bn {{\n    type filter hook forward priority filter; policy drop;\n{rules}  }}\n}}"
    );
    let path = tmp_file("rules.nft", &text)?;
    let res = run(&mut in_ns(HUB, &["nft", "-f", &path.to_string_lossy()]));
    remove(&path);
    res?;
    Ok(n)
}

/// iptables + ipset: hash:ip,port,net sets per family (endpoint, protocol:port, client
/// prefix; this kernel has no hash:net,port,net), FORWARD policy DROP.
fn iptables(policy: &Policy) -> Result<usize> {
    let all = tuples(policy);
    let mut text = String::new();
    // ipset expands a port range into one element per port.
    let elements = |v4: bool| -> usize {
        all.iter()
            .filter(|t| t.client.addr().is_ipv4() == v4)
            .map(|t| usize::from(t.ports.1 - t.ports.0) + 1)
            .sum()
    };
    let (n4, n6) = (elements(true), elements(false));
    let _ = writeln!(
        text,
        "create bn4 hash:ip,port,net family inet hashsize {} maxelem {}\ncreate bn6 hash:ip,port,net family inet6 hashsize {} maxelem {}",
        (n4 * 2).max(1024).next_power_of_two(),
        (n4 * 2).max(1024),
        (n6 * 2).max(1024).next_power_of_two(),
        (n6 * 2).max(1024)
    );
    for t in &all {
        let set = if t.client.addr().is_ipv4() {
            "bn4"
        } else {
            "bn6"
        };
        let port = if t.ports.0 == t.ports.1 {
            t.ports.0.to_string()
        } else {
            format!("{}-{}", t.ports.0, t.ports.1)
        };
        let _ = writeln!(
            text,
            "add {set} {},{}:{port},{}",
            t.endpoint.addr(),
            t.proto,
            t.client
        );
    }
    let path = tmp_file("ipset", &text)?;
    let res = run(&mut in_ns(
        HUB,
        &["ipset", "restore", "-file", &path.to_string_lossy()],
    ));
    remove(&path);
    res?;
    for (cmd, set) in [("iptables", "bn4"), ("ip6tables", "bn6")] {
        run(&mut in_ns(HUB, &[cmd, "-P", "FORWARD", "DROP"]))?;
        // Element: endpoint address, protocol:port, client prefix. Forward: (daddr, dport,
        // saddr); reply: (saddr, sport, daddr).
        for dirs in ["dst,dst,src", "src,src,dst"] {
            run(&mut in_ns(
                HUB,
                &[
                    cmd,
                    "-A",
                    "FORWARD",
                    "-m",
                    "set",
                    "--match-set",
                    set,
                    dirs,
                    "-j",
                    "ACCEPT",
                ],
            ))?;
        }
    }
    Ok(all.len())
}

/// xdp-filter's closest configuration: policy deny (allow list) of source addresses: every
/// client address (a /28 expanded to its 16 addresses; an IPv6 /80 only by its first
/// address, xdp-filter has no prefixes) and every service address (for replies). It cannot
/// express the pairing of client and service, protocols or ports: traffic from a known
/// client to a port without agreement passes. Its pins go into a private bpffs (a mount
/// namespace of its own); the program stays attached after the script exits.
fn xdp_filter(policy: &Policy) -> Result<usize> {
    let mut addrs = BTreeSet::new();
    for c in &policy.clients {
        for p in &c.prefixes {
            match p {
                IpNet::V4(n) if n.prefix_len() >= 24 => {
                    addrs.extend(n.hosts().map(IpAddr::V4).chain([IpAddr::V4(n.network())]));
                }
                other => {
                    addrs.insert(other.network());
                }
            }
        }
    }
    for s in &policy.services {
        for e in &s.endpoints {
            addrs.insert(e.address.network());
        }
    }
    let v4 = addrs.iter().filter(|a| a.is_ipv4()).count();
    if v4 > 10_000 || addrs.len() - v4 > 10_000 {
        bail!(
            "xdp-filter's address maps hold 10,000 entries per family; this policy needs {v4} IPv4 and {} IPv6",
            addrs.len() - v4
        );
    }
    let mut batch = String::new();
    for a in &addrs {
        let (map, bytes) = match a {
            IpAddr::V4(v) => ("filter_ipv4", v.octets().to_vec()),
            IpAddr::V6(v) => ("filter_ipv6", v.octets().to_vec()),
        };
        let key: Vec<String> = bytes.iter().map(u8::to_string).collect();
        let _ = writeln!(
            batch,
            "map update pinned /sys/fs/bpf/xdp-filter/{map} key {} value 1 0 0 0 0 0 0 0",
            key.join(" ")
        );
    }
    let batch_path = tmp_file("xdp-filter.batch", &batch)?;
    let script = format!(
        "set -e\nmount -t bpf bpf /sys/fs/bpf\nxdp-filter load -m native -p deny -f tcp,udp,ipv4,ipv6 {HUB_IN}\nbpftool batch file {}\n",
        batch_path.display()
    );
    let res = run(Command::new("unshare")
        .args([
            "-m",
            "--propagation",
            "private",
            "nsenter",
            &format!("--net=/run/netns/{HUB}"),
            "bash",
            "-c",
        ])
        .arg(&script));
    remove(&batch_path);
    res?;
    Ok(addrs.len())
}

/// Mean in-kernel ns/packet of an attached program (by id) on `frame`, through bpftool
/// (xdp-filter is not ours to load): `bpftool prog run ... repeat`.
pub(crate) fn bpftool_time(prog_id: u64, frame: &[u8], repeat: u32) -> Result<(f64, u32)> {
    let path = std::env::temp_dir().join(format!("bn-{}-frame", std::process::id()));
    std::fs::write(&path, frame)?;
    let out = run(Command::new("bpftool").args([
        "prog",
        "run",
        "id",
        &prog_id.to_string(),
        "data_in",
        &path.to_string_lossy(),
        "repeat",
        &repeat.to_string(),
    ]));
    remove(&path);
    let out = out?;
    // "Return value: 2, duration (average): 57ns"
    let ret = out
        .split("Return value: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.trim().parse().ok())
        .context("bpftool output: return value")?;
    let ns = out
        .split("duration (average): ")
        .nth(1)
        .and_then(|s| s.split("ns").next())
        .and_then(|s| s.trim().parse().ok())
        .context("bpftool output: duration")?;
    Ok((ns, ret))
}

/// The XDP program id on the hub's ingress.
pub(crate) fn hub_prog_id() -> Result<u64> {
    ns::xdp_prog_id(HUB, HUB_IN)?.context("no XDP program on the hub's ingress")
}

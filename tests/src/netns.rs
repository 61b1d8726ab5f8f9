//! Network-namespace helpers for end-to-end tests (need root).
//!
//! [`Topology`] builds the client / hub / service namespaces of `scripts/topology.sh` under a
//! prefix unique to this process and test, writes the test's policy to a private temporary
//! directory, attaches the real XDP program to both hub interfaces with `sdn-loader run`, and
//! on drop (also when the test panics) detaches and purges the pins and deletes the
//! namespaces. Only namespaces it created and documentation addresses are touched.
//! [`HubPair`] does the same for a client and a service joined by two hubs (an active/passive
//! pair), each with its own pin directory.
//!
//! Sockets are opened inside a namespace by a thread that entered it with `setns` (a
//! socket stays in the namespace it was created in, whichever thread uses it later); kernel
//! counters (`/proc/net/snmp`, `netstat`, `snmp6`) are read the same way through
//! `/proc/thread-self/net`.

use std::{
    collections::BTreeMap,
    fs::{self, File},
    io::{self, Write as _},
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::LazyLock,
    thread,
    time::{Duration, Instant},
};

use serde::Deserialize;

/// The loader binary built for this test run: this package's `sdn-loader-under-test`, built
/// from the loader's source, beside the test executables' `deps/` directory.
pub static LOADER: LazyLock<PathBuf> = LazyLock::new(|| {
    let exe = std::env::current_exe().expect("the test executable's path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("sdn-loader-under-test"))
        .expect("test executables live in target/PROFILE/deps");
    assert!(
        bin.is_file(),
        "{} is missing: run these tests with `cargo test -p sdn-tests` (it builds the binary)",
        bin.display()
    );
    bin
});
/// Where `ip netns` keeps named namespaces.
const NETNS_DIR: &str = "/run/netns";
/// bpffs mount point; each topology pins under its own subdirectory.
const BPFFS: &str = "/sys/fs/bpf";
/// Ethernet header bytes in front of every IP packet the XDP program sees (no VLAN, no FCS).
pub const ETH_HLEN: u64 = 14;

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives inside the workspace")
        .to_path_buf()
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether a test that needs root (BPF, namespaces, XDP) may run. As root: yes. Otherwise it
/// prints that the test is skipped and why, and the test returns early, unless
/// `SDN_REQUIRE_ROOT=1` (set by `cargo xtask test` and so by CI): then a missing privilege is
/// a failure, so a green run never hides skipped tests.
pub fn root_or_skip() -> bool {
    if is_root() {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_owned();
    assert!(
        std::env::var_os("SDN_REQUIRE_ROOT").is_none_or(|v| v != "1"),
        "{test} needs root (BPF, network namespaces) and SDN_REQUIRE_ROOT=1 is set"
    );
    // Straight to the terminal: the test harness captures eprintln! of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "skipped {test}: needs root (loads BPF programs or builds network namespaces)"
    );
    false
}

/// Whether a command succeeded, and its stderr; panics if it cannot be started.
pub fn outcome(cmd: &mut Command) -> (bool, String) {
    let out = run(cmd);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a command and returns its output; panics if it cannot be started.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"))
}

/// Runs a command that must succeed; panics with its output otherwise. Returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A client / hub / service topology with the filter attached on the hub; torn down on drop.
#[derive(Debug)]
pub struct Topology {
    /// Name prefix of namespaces and interfaces (also the pin directory's name).
    pub prefix: String,
    /// Pin directory on bpffs.
    pub pin_dir: PathBuf,
    /// The policy file the filter was started with.
    pub policy: PathBuf,
    tmp: PathBuf,
}

/// `iface` in namespace `ns` hands the stack one segment per packet (no GSO batching).
fn one_segment(ns: &str, iface: &str) {
    run_ok(Command::new("ip").args(["-n", ns, "link", "set", "dev", iface, "gso_max_segs", "1"]));
}

/// The name prefix of one test's namespaces and interfaces: `kind` + this process's id in
/// hex (<= 6 digits) + `tag` (1-2 characters unique among the tests of a binary); interface
/// names add 2 characters and must stay within 15. Panics (the test fails) without root.
fn test_prefix(kind: &str, tag: &str) -> String {
    assert!(
        is_root(),
        "these tests need root (network namespaces, XDP, bpffs)"
    );
    assert!(
        (1..=2).contains(&tag.len()) && tag.chars().all(|c| c.is_ascii_alphanumeric()),
        "tag {tag:?}: 1-2 alphanumeric characters"
    );
    let prefix = format!("{kind}{:x}{tag}", std::process::id());
    assert!(prefix.len() + 2 <= 15, "prefix {prefix} too long");
    prefix
}

impl Topology {
    /// Builds the topology for a test (`tag`: 1-2 characters unique among the tests of this
    /// binary), writes `policy` (TOML) to a temporary file and attaches the filter.
    pub fn up(tag: &str, policy: &str) -> Self {
        let prefix = test_prefix("e2e", tag);
        let tmp = std::env::temp_dir().join(format!("sdn-{prefix}"));
        let topo = Self {
            pin_dir: Path::new(BPFFS).join(&prefix),
            policy: tmp.join("policy.toml"),
            prefix,
            tmp,
        };
        // From here on the guard exists: a panic below still tears down what was built.
        // Leftovers of a crashed earlier process with the same pid are ours by name.
        topo.remove_pins();
        let _ = fs::remove_dir_all(&topo.tmp);
        fs::create_dir_all(&topo.tmp).expect("creating the temporary directory");
        fs::write(&topo.policy, policy).expect("writing the policy");
        run_ok(
            Command::new("bash")
                .arg(workspace_root().join("scripts/topology.sh"))
                .args(["up", &topo.prefix]),
        );
        topo.attach();
        topo
    }

    /// The client namespace.
    pub fn client(&self) -> String {
        format!("{}-client", self.prefix)
    }

    /// The hub namespace.
    pub fn hub(&self) -> String {
        format!("{}-hub", self.prefix)
    }

    /// The service namespace.
    pub fn service(&self) -> String {
        format!("{}-service", self.prefix)
    }

    /// The client's interface (in the client namespace).
    pub fn client_iface(&self) -> String {
        format!("{}c0", self.prefix)
    }

    /// The service's interface (in the service namespace).
    pub fn service_iface(&self) -> String {
        format!("{}s0", self.prefix)
    }

    /// The hub's interfaces facing the client and the service: where the filter sits.
    pub fn hub_ifaces(&self) -> [String; 2] {
        [format!("{}hc", self.prefix), format!("{}hs", self.prefix)]
    }

    fn iface_args(&self) -> Vec<String> {
        let mut args = vec!["--netns".to_owned(), self.hub()];
        for i in self.hub_ifaces() {
            args.push("--iface".to_owned());
            args.push(i);
        }
        args.push("--pin-dir".to_owned());
        args.push(self.pin_dir.display().to_string());
        args
    }

    /// `sdn-loader run` with the policy: attaches (or swaps the program into the pinned
    /// links). Panics on failure. Returns stdout.
    pub fn attach(&self) -> String {
        run_ok(
            Command::new(&*LOADER)
                .arg("run")
                .args(self.iface_args())
                .arg("--policy")
                .arg(&self.policy),
        )
    }

    /// `sdn-loader detach` (pins stay). Returns the raw output.
    pub fn detach(&self) -> Output {
        run(Command::new(&*LOADER).arg("detach").args(self.iface_args()))
    }

    /// `sdn-loader detach --purge`. Returns the raw output.
    pub fn detach_purge(&self) -> Output {
        run(Command::new(&*LOADER)
            .arg("detach")
            .args(self.iface_args())
            .arg("--purge"))
    }

    /// `sdn-loader stats --json`.
    pub fn stats(&self) -> Stats {
        read_stats(&self.pin_dir)
    }

    /// Limits the client's and the service's interfaces to one segment per GSO packet, so
    /// that every IP packet the kernel counts (`OutTransmits`, `OutOctets`) is exactly one
    /// frame on the wire. (TCP segments are split before the hub either way; this only makes
    /// the endpoints' own IP counters an exact, independent tally of frames and bytes.)
    pub fn one_segment_per_packet(&self) {
        for (ns, iface) in [
            (self.client(), self.client_iface()),
            (self.service(), self.service_iface()),
        ] {
            one_segment(&ns, &iface);
        }
    }

    fn remove_pins(&self) {
        if self.pin_dir.exists() {
            if let Err(e) = fs::remove_dir_all(&self.pin_dir) {
                eprintln!("removing {}: {e}", self.pin_dir.display());
            }
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if self.pin_dir.exists() {
            let out = self.detach_purge();
            if !out.status.success() && self.pin_dir.exists() {
                eprintln!(
                    "cleanup: detach --purge: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        // If detaching failed (e.g. the namespace is already gone), removing the pins still
        // releases program, maps and links; deleting the namespaces releases the interfaces.
        self.remove_pins();
        let down = Command::new("bash")
            .arg(workspace_root().join("scripts/topology.sh"))
            .args(["down", &self.prefix])
            .output();
        if !down.as_ref().is_ok_and(|o| o.status.success()) {
            eprintln!("cleanup: topology.sh down {}: {down:?}", self.prefix);
        }
        let _ = fs::remove_dir_all(&self.tmp);
    }
}

/// One of the two hubs of a [`HubPair`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hub {
    /// The hub the routes point to after [`HubPair::up`] (the active one).
    A,
    /// The other hub (the passive one, until the routes move to it).
    B,
}

impl Hub {
    /// Both hubs.
    pub const BOTH: [Self; 2] = [Self::A, Self::B];

    /// `'a'` or `'b'`: the letter in the hub's interface and pin directory names.
    pub fn letter(self) -> char {
        match self {
            Self::A => 'a',
            Self::B => 'b',
        }
    }
}

/// Transit link `k` of a [`HubPair`] (0: client-A, 1: client-B, 2: service-A, 3: service-B)
/// is 192.0.2.(4k)/30: the client's or the service's end is .(4k+1), the hub's .(4k+2).
fn hub_pair_link(k: u8, hub_end: bool) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 4 * k + 1 + u8::from(hub_end))
}

/// A client and a service joined by two hubs, A and B (an active/passive hub pair), each
/// routing between the two sides with its own `sdn-loader` pin directory and the same policy
/// attached to both of its interfaces; torn down on drop (also when the test panics).
///
/// ```text
///                 PREFIX-client (198.51.100.10 on lo)
///        PREFIXca 192.0.2.1/30        PREFIXcb 192.0.2.5/30
///              |                            |
///        PREFIXac 192.0.2.2/30        PREFIXbc 192.0.2.6/30
///           PREFIX-hubA                  PREFIX-hubB
///        PREFIXas 192.0.2.10/30       PREFIXbs 192.0.2.14/30
///              |                            |
///        PREFIXsa 192.0.2.9/30        PREFIXsb 192.0.2.13/30
///                 PREFIX-service (203.0.113.10 on lo)
/// ```
///
/// The client's address ([`HubPair::CLIENT`]) and the service's ([`HubPair::SERVICE`]) sit on
/// their loopback interfaces; which hub carries the traffic is only a matter of the client's
/// route to 203.0.113.0/24 and the service's route to 198.51.100.0/24 ([`HubPair::route_via`]).
/// Both hubs always have routes to both sides. Every neighbour entry on the transit links is
/// permanent (no ARP, so moving the routes never queues a packet behind address resolution),
/// IPv6 is disabled in the four namespaces (no neighbour discovery or MLD frames: the only IP
/// packets are the test's), and reverse-path filtering is off (while the routes move, a
/// packet may come back over the other hub). Only namespaces it created and documentation
/// addresses are touched.
#[derive(Debug)]
pub struct HubPair {
    /// Name prefix of namespaces, interfaces and pin directories.
    pub prefix: String,
    /// The policy file both hubs were started with.
    pub policy: PathBuf,
    tmp: PathBuf,
}

impl HubPair {
    /// The client's address (on its loopback interface).
    pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
    /// The service's address (on its loopback interface).
    pub const SERVICE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

    /// Builds the four namespaces for a test (`tag`: 1-2 characters unique among the tests of
    /// this binary), writes `policy` (TOML), attaches the filter on both hubs and routes both
    /// directions through hub A.
    pub fn up(tag: &str, policy: &str) -> Self {
        let prefix = test_prefix("hp", tag);
        let tmp = std::env::temp_dir().join(format!("sdn-{prefix}"));
        let pair = Self {
            policy: tmp.join("policy.toml"),
            prefix,
            tmp,
        };
        // From here on the guard exists: a panic below still tears down what was built.
        // Leftovers of a crashed earlier process with the same pid are ours by name.
        pair.remove_pins();
        pair.delete_namespaces();
        let _ = fs::remove_dir_all(&pair.tmp);
        fs::create_dir_all(&pair.tmp).expect("creating the temporary directory");
        fs::write(&pair.policy, policy).expect("writing the policy");
        pair.build();
        for hub in Hub::BOTH {
            pair.attach(hub);
        }
        pair.route_via(Hub::A);
        pair
    }

    /// The client namespace.
    pub fn client(&self) -> String {
        format!("{}-client", self.prefix)
    }

    /// The service namespace.
    pub fn service(&self) -> String {
        format!("{}-service", self.prefix)
    }

    /// A hub's namespace.
    pub fn hub(&self, hub: Hub) -> String {
        match hub {
            Hub::A => format!("{}-hubA", self.prefix),
            Hub::B => format!("{}-hubB", self.prefix),
        }
    }

    /// A hub's interfaces facing the client and the service: where its filter sits.
    pub fn hub_ifaces(&self, hub: Hub) -> [String; 2] {
        let l = hub.letter();
        [
            format!("{}{l}c", self.prefix),
            format!("{}{l}s", self.prefix),
        ]
    }

    /// The client's interfaces towards hub A and hub B.
    pub fn client_ifaces(&self) -> [String; 2] {
        [format!("{}ca", self.prefix), format!("{}cb", self.prefix)]
    }

    /// The service's interfaces towards hub A and hub B.
    pub fn service_ifaces(&self) -> [String; 2] {
        [format!("{}sa", self.prefix), format!("{}sb", self.prefix)]
    }

    /// A hub's pin directory on bpffs.
    pub fn pin_dir(&self, hub: Hub) -> PathBuf {
        Path::new(BPFFS).join(format!("{}-{}", self.prefix, hub.letter()))
    }

    fn namespaces(&self) -> [String; 4] {
        [
            self.client(),
            self.hub(Hub::A),
            self.hub(Hub::B),
            self.service(),
        ]
    }

    fn iface_args(&self, hub: Hub) -> Vec<String> {
        let mut args = vec!["--netns".to_owned(), self.hub(hub)];
        for i in self.hub_ifaces(hub) {
            args.push("--iface".to_owned());
            args.push(i);
        }
        args.push("--pin-dir".to_owned());
        args.push(self.pin_dir(hub).display().to_string());
        args
    }

    fn build(&self) {
        for ns in self.namespaces() {
            run_ok(Command::new("ip").args(["netns", "add", &ns]));
            run_ok(Command::new("ip").args(["-n", &ns, "link", "set", "lo", "up"]));
            run_ok(
                Command::new("ip")
                    .args(["netns", "exec", &ns, "sysctl", "-qw"])
                    .args([
                        "net.ipv4.conf.all.rp_filter=0",
                        "net.ipv4.conf.default.rp_filter=0",
                        "net.ipv6.conf.all.disable_ipv6=1",
                        "net.ipv6.conf.default.disable_ipv6=1",
                    ]),
            );
        }
        for hub in Hub::BOTH {
            run_ok(Command::new("ip").args([
                "netns",
                "exec",
                &self.hub(hub),
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ]));
        }
        let [ca, cb] = self.client_ifaces();
        let [sa, sb] = self.service_ifaces();
        let [ac, as_] = self.hub_ifaces(Hub::A);
        let [bc, bs] = self.hub_ifaces(Hub::B);
        let links = [
            (self.client(), ca, Hub::A, ac),
            (self.client(), cb, Hub::B, bc),
            (self.service(), sa, Hub::A, as_),
            (self.service(), sb, Hub::B, bs),
        ];
        for (k, (end_ns, end, hub, hub_if)) in (0u8..).zip(&links) {
            let hub_ns = self.hub(*hub);
            run_ok(Command::new("ip").args([
                "link", "add", end, "netns", end_ns, "type", "veth", "peer", "name", hub_if,
                "netns", &hub_ns,
            ]));
            for (ns, iface, addr) in [
                (end_ns, end, hub_pair_link(k, false)),
                (&hub_ns, hub_if, hub_pair_link(k, true)),
            ] {
                run_ok(Command::new("ip").args([
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{addr}/30"),
                    "dev",
                    iface,
                ]));
                run_ok(Command::new("ip").args(["-n", ns, "link", "set", iface, "up"]));
            }
            // Permanent neighbours both ways.
            for (ns, iface, peer_ns, peer_if, peer_addr) in [
                (end_ns, end, &hub_ns, hub_if, hub_pair_link(k, true)),
                (&hub_ns, hub_if, end_ns, end, hub_pair_link(k, false)),
            ] {
                let mac = mac_of(peer_ns, peer_if);
                run_ok(Command::new("ip").args([
                    "-n",
                    ns,
                    "neigh",
                    "replace",
                    &peer_addr.to_string(),
                    "lladdr",
                    &mac,
                    "dev",
                    iface,
                    "nud",
                    "permanent",
                ]));
            }
        }
        for (ns, addr) in [
            (self.client(), Self::CLIENT),
            (self.service(), Self::SERVICE),
        ] {
            run_ok(Command::new("ip").args([
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/32"),
                "dev",
                "lo",
            ]));
        }
        // Each hub reaches the client's side over link 0/1 and the service's over link 2/3.
        for (hub, to_client, to_service) in [(Hub::A, 0, 2), (Hub::B, 1, 3)] {
            for (dst, k) in [
                ("198.51.100.0/24", to_client),
                ("203.0.113.0/24", to_service),
            ] {
                run_ok(Command::new("ip").args([
                    "-n",
                    &self.hub(hub),
                    "route",
                    "add",
                    dst,
                    "via",
                    &hub_pair_link(k, false).to_string(),
                ]));
            }
        }
    }

    /// Routes both directions through `hub`: the client's route to 203.0.113.0/24 first,
    /// then the service's route to 198.51.100.0/24 (`ip route replace`, so established
    /// sockets follow on their next packet).
    pub fn route_via(&self, hub: Hub) {
        let (client_link, service_link) = match hub {
            Hub::A => (0, 2),
            Hub::B => (1, 3),
        };
        for (ns, dst, k, src) in [
            (self.client(), "203.0.113.0/24", client_link, Self::CLIENT),
            (
                self.service(),
                "198.51.100.0/24",
                service_link,
                Self::SERVICE,
            ),
        ] {
            run_ok(Command::new("ip").args([
                "-n",
                &ns,
                "route",
                "replace",
                dst,
                "via",
                &hub_pair_link(k, true).to_string(),
                "src",
                &src.to_string(),
            ]));
        }
    }

    /// `sdn-loader run` with the policy on `hub`'s two interfaces and its own pin directory:
    /// attaches (or swaps the program into the pinned links). Panics on failure. Returns
    /// stdout.
    pub fn attach(&self, hub: Hub) -> String {
        run_ok(
            Command::new(&*LOADER)
                .arg("run")
                .args(self.iface_args(hub))
                .arg("--policy")
                .arg(&self.policy),
        )
    }

    /// `sdn-loader stats --json` of `hub`.
    pub fn stats(&self, hub: Hub) -> Stats {
        read_stats(&self.pin_dir(hub))
    }

    /// One segment per GSO packet on the client's and the service's four interfaces (see
    /// [`Topology::one_segment_per_packet`]): their IP counters then count frames.
    pub fn one_segment_per_packet(&self) {
        for (ns, ifaces) in [
            (self.client(), self.client_ifaces()),
            (self.service(), self.service_ifaces()),
        ] {
            for iface in ifaces {
                one_segment(&ns, &iface);
            }
        }
    }

    fn remove_pins(&self) {
        for hub in Hub::BOTH {
            let dir = self.pin_dir(hub);
            if dir.exists() {
                if let Err(e) = fs::remove_dir_all(&dir) {
                    eprintln!("removing {}: {e}", dir.display());
                }
            }
        }
    }

    fn delete_namespaces(&self) {
        for ns in self.namespaces() {
            if Path::new(NETNS_DIR).join(&ns).exists() {
                let (ok, err) = outcome(Command::new("ip").args(["netns", "del", &ns]));
                if !ok {
                    eprintln!("cleanup: ip netns del {ns}: {}", err.trim());
                }
            }
        }
    }
}

impl Drop for HubPair {
    fn drop(&mut self) {
        for hub in Hub::BOTH {
            if self.pin_dir(hub).exists() {
                let out = run(Command::new(&*LOADER)
                    .arg("detach")
                    .args(self.iface_args(hub))
                    .arg("--purge"));
                if !out.status.success() && self.pin_dir(hub).exists() {
                    eprintln!(
                        "cleanup: hub {hub:?}: detach --purge: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
            }
        }
        // As for Topology: removing the pins releases what detaching could not, deleting the
        // namespaces releases the interfaces.
        self.remove_pins();
        self.delete_namespaces();
        let _ = fs::remove_dir_all(&self.tmp);
    }
}

/// The MAC address of `iface` in namespace `ns`.
fn mac_of(ns: &str, iface: &str) -> String {
    let out = run_ok(Command::new("ip").args(["-n", ns, "-o", "link", "show", "dev", iface]));
    let mut words = out.split_whitespace();
    words
        .find(|w| *w == "link/ether")
        .and_then(|_| words.next())
        .unwrap_or_else(|| panic!("no MAC address of {iface} in {ns}: {out}"))
        .to_owned()
}

/// `sdn-loader stats --json` of the data plane pinned under `pin_dir`, with the checks every
/// stats call of the tests makes (each reason once, on the side the program's table says;
/// totals are their sums).
pub fn read_stats(pin_dir: &Path) -> Stats {
    let out = run_ok(
        Command::new(&*LOADER)
            .args(["stats", "--json", "--pin-dir"])
            .arg(pin_dir),
    );
    let stats: Stats =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("stats --json: {e}:\n{out}"));
    // The pass/drop split is every reason once, on the side the program's table says.
    for (name, n) in &stats.reasons {
        let passes = (0..sdn_common::reason::COUNT)
            .find(|&r| sdn_common::reason::name(r) == name)
            .is_some_and(sdn_common::reason::passes);
        let side = if passes { &stats.passes } else { &stats.drops };
        assert_eq!(
            side.get(name),
            Some(n),
            "stats --json: {name} split wrongly:\n{out}"
        );
    }
    assert_eq!(
        stats.passes.len() + stats.drops.len(),
        stats.reasons.len(),
        "{out}"
    );
    assert_eq!(stats.passed, stats.passes.values().sum::<u64>(), "{out}");
    assert_eq!(stats.dropped, stats.drops.values().sum::<u64>(), "{out}");
    stats
}

/// `sdn-loader stats --json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Stats {
    /// Active policy generation.
    pub generation: u32,
    /// Interfaces with a pinned link.
    pub interfaces: Vec<String>,
    /// Per-agreement counters.
    pub agreements: Vec<AgreementRow>,
    /// Packets per reason name.
    pub reasons: BTreeMap<String, u64>,
    /// The reasons that pass, with their packets.
    pub passes: BTreeMap<String, u64>,
    /// The reasons that drop, with their packets.
    pub drops: BTreeMap<String, u64>,
    /// Packets passed in all.
    pub passed: u64,
    /// Packets dropped in all.
    pub dropped: u64,
    /// What the IPv4 flow table holds.
    pub flow_table: FlowTable,
}

/// `stats --json`'s `flow_table`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct FlowTable {
    /// Entries in all.
    pub capacity: u64,
    /// Passing flows of the policy in force.
    pub flows: u64,
    /// Remembered denials of the policy in force.
    pub denials: u64,
}

/// One agreement's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct AgreementRow {
    /// Agreement id.
    pub agreement: u32,
    /// Packets towards the service.
    pub forward_packets: u64,
    /// Bytes (whole frames as XDP sees them) towards the service.
    pub forward_bytes: u64,
    /// Packets from the service.
    pub reply_packets: u64,
    /// Bytes from the service.
    pub reply_bytes: u64,
    /// New flows.
    pub transactions: u64,
}

impl Stats {
    /// The counters of agreement `id` (panics if it is not in force).
    pub fn agreement(&self, id: u32) -> AgreementRow {
        self.agreements
            .iter()
            .find(|r| r.agreement == id)
            .copied()
            .unwrap_or_else(|| panic!("agreement {id} not in stats: {self:?}"))
    }

    /// The count of reason `name` (panics on an unknown name).
    pub fn reason(&self, name: &str) -> u64 {
        *self
            .reasons
            .get(name)
            .unwrap_or_else(|| panic!("reason {name:?} not in stats: {:?}", self.reasons))
    }

    /// Growth of agreement `id`'s counters since `before` (panics if any counter shrank).
    pub fn grown(&self, before: &Self, id: u32) -> AgreementRow {
        let (a, b) = (self.agreement(id), before.agreement(id));
        let d = |x: u64, y: u64, what: &str| {
            x.checked_sub(y)
                .unwrap_or_else(|| panic!("agreement {id}: {what} went down from {y} to {x}"))
        };
        AgreementRow {
            agreement: id,
            forward_packets: d(a.forward_packets, b.forward_packets, "forward_packets"),
            forward_bytes: d(a.forward_bytes, b.forward_bytes, "forward_bytes"),
            reply_packets: d(a.reply_packets, b.reply_packets, "reply_packets"),
            reply_bytes: d(a.reply_bytes, b.reply_bytes, "reply_bytes"),
            transactions: d(a.transactions, b.transactions, "transactions"),
        }
    }

    /// Growth of reason `name` since `before`.
    pub fn reason_grown(&self, before: &Self, name: &str) -> u64 {
        self.reason(name)
            .checked_sub(before.reason(name))
            .unwrap_or_else(|| panic!("reason {name} went down"))
    }
}

/// Runs `f` on a thread that entered network namespace `ns` (an `ip netns` name).
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = Path::new(NETNS_DIR).join(ns);
    thread::scope(|s| {
        s.spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            // SAFETY: setns on a namespace file we own; it changes this thread only.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "setns {}: {}",
                path.display(),
                io::Error::last_os_error()
            );
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// A TCP listener in namespace `ns`.
pub fn tcp_listen(ns: &str, addr: SocketAddr) -> TcpListener {
    in_netns(ns, || TcpListener::bind(addr)).unwrap_or_else(|e| panic!("listen {addr}: {e}"))
}

/// A UDP socket bound in namespace `ns`.
pub fn udp_bind(ns: &str, addr: SocketAddr) -> UdpSocket {
    in_netns(ns, || UdpSocket::bind(addr)).unwrap_or_else(|e| panic!("bind udp {addr}: {e}"))
}

/// Accepts one connection within `timeout` (`TimedOut` otherwise).
pub fn accept_within(listener: &TcpListener, timeout: Duration) -> io::Result<TcpStream> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)?;
                return Ok(s);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
}

fn sockaddr(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&raw mut ss).cast::<libc::sockaddr_in>(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&raw mut ss).cast::<libc::sockaddr_in6>(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// Connects from `src` (any port) to `dst` inside namespace `ns`, giving up after
/// `timeout` with `TimedOut`. (std cannot bind a TCP socket before connecting.)
pub fn tcp_connect(
    ns: &str,
    src: IpAddr,
    dst: SocketAddr,
    timeout: Duration,
) -> io::Result<TcpStream> {
    in_netns(ns, || {
        let family = if dst.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        // SAFETY: plain socket(2).
        let fd = unsafe {
            libc::socket(
                family,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let (sa, len) = sockaddr(SocketAddr::new(src, 0));
        // SAFETY: sa/len describe a valid socket address.
        if unsafe { libc::bind(fd.as_raw_fd(), (&raw const sa).cast(), len) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let (sa, len) = sockaddr(dst);
        // SAFETY: as above.
        if unsafe { libc::connect(fd.as_raw_fd(), (&raw const sa).cast(), len) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(e);
            }
            let deadline = Instant::now() + timeout;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                let mut pfd = libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                };
                let ms = i32::try_from(left.as_millis().max(1)).unwrap_or(i32::MAX);
                // SAFETY: one valid pollfd.
                let n = unsafe { libc::poll(&raw mut pfd, 1, ms) };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(e);
                }
                if n > 0 {
                    break;
                }
            }
            let mut err: libc::c_int = 0;
            let mut l = size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: err/l are a valid int buffer and its length.
            let rc = unsafe {
                libc::getsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_ERROR,
                    (&raw mut err).cast(),
                    &raw mut l,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            if err != 0 {
                return Err(io::Error::from_raw_os_error(err));
            }
        }
        let stream = TcpStream::from(fd);
        stream.set_nonblocking(false)?;
        Ok(stream)
    })
}

/// Kernel network counters of one namespace: `/proc/net/snmp` and `/proc/net/netstat` as
/// `"Group.Name"` (e.g. `"Tcp.OutSegs"`, `"IpExt.OutOctets"`) and `/proc/net/snmp6` by name
/// (e.g. `"Ip6OutOctets"`), the numbers `nstat` shows.
#[derive(Debug, Clone, Default)]
pub struct NetCounters(pub BTreeMap<String, u64>);

/// The counters an end-to-end check compares: the data plane's and both endpoints' kernels'.
pub struct Snapshot {
    /// `sdn-loader stats --json` of the topology's pins.
    pub stats: Stats,
    /// The client namespace's kernel counters.
    pub client: NetCounters,
    /// The service namespace's kernel counters.
    pub service: NetCounters,
}

impl Topology {
    /// The data plane's and both endpoints' counters now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            stats: self.stats(),
            client: NetCounters::read(&self.client()),
            service: NetCounters::read(&self.service()),
        }
    }
}

impl NetCounters {
    /// Reads the counters of namespace `ns`.
    pub fn read(ns: &str) -> Self {
        in_netns(ns, || {
            let base = Path::new("/proc/thread-self/net");
            let mut m = BTreeMap::new();
            for file in ["snmp", "netstat"] {
                let text = fs::read_to_string(base.join(file))
                    .unwrap_or_else(|e| panic!("reading {file}: {e}"));
                let lines: Vec<&str> = text.lines().collect();
                for pair in lines.chunks(2) {
                    let [names, values] = pair else { continue };
                    let mut n = names.split_whitespace();
                    let mut v = values.split_whitespace();
                    let (Some(group), Some(_)) = (n.next(), v.next()) else {
                        continue;
                    };
                    let group = group.trim_end_matches(':');
                    for (name, value) in n.zip(v) {
                        if let Ok(value) = value.parse::<i64>() {
                            m.insert(format!("{group}.{name}"), value.max(0) as u64);
                        }
                    }
                }
            }
            let text = fs::read_to_string(base.join("snmp6")).unwrap_or_default();
            for line in text.lines() {
                let mut it = line.split_whitespace();
                if let (Some(name), Some(value)) = (it.next(), it.next()) {
                    if let Ok(value) = value.parse() {
                        m.insert(name.to_owned(), value);
                    }
                }
            }
            Self(m)
        })
    }

    /// One counter (panics if the kernel has no such counter).
    pub fn get(&self, name: &str) -> u64 {
        *self
            .0
            .get(name)
            .unwrap_or_else(|| panic!("no counter {name}"))
    }

    /// The first of `names` the kernel has (counter names differ across kernel versions).
    pub fn first_of(&self, names: &[&str]) -> u64 {
        names
            .iter()
            .find_map(|n| self.0.get(*n).copied())
            .unwrap_or_else(|| panic!("none of the counters {names:?}"))
    }

    /// TCP segments put on the wire: new segments (`OutSegs`, RSTs included) plus
    /// retransmissions (`RetransSegs`, which `OutSegs` leaves out). IPv4 and IPv6 share
    /// these counters.
    pub fn tcp_segments_sent(&self) -> u64 {
        self.get("Tcp.OutSegs") + self.get("Tcp.RetransSegs")
    }

    /// IPv4 packets handed to the device, and their bytes (IP header included).
    pub fn ipv4_out(&self) -> (u64, u64) {
        (
            self.first_of(&["Ip.OutTransmits", "Ip.OutRequests"]),
            self.get("IpExt.OutOctets"),
        )
    }

    /// IPv6 packets handed to the device, and their bytes (IPv6 header included).
    pub fn ipv6_out(&self) -> (u64, u64) {
        (
            self.first_of(&["Ip6OutTransmits", "Ip6OutRequests"]),
            self.get("Ip6OutOctets"),
        )
    }
}

/// `ping` (`-6` for IPv6 destinations) from namespace `ns`: `count` echo requests with
/// `size` bytes of payload, 0.2 s apart. Returns (transmitted, received).
pub fn ping(ns: &str, dst: IpAddr, count: u32, size: usize) -> (u32, u32) {
    let deadline = (count / 5 + 5).to_string();
    let out = run(Command::new("ip")
        .args(["netns", "exec", ns, "ping"])
        .args([
            if dst.is_ipv4() { "-4" } else { "-6" },
            "-n",
            "-q",
            "-c",
            &count.to_string(),
            "-i",
            "0.2",
            "-W",
            "2",
            "-w",
            &deadline,
            "-s",
            &size.to_string(),
            &dst.to_string(),
        ]));
    let text = String::from_utf8_lossy(&out.stdout);
    // "5 packets transmitted, 5 received, 0% packet loss, time 803ms"
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| {
            panic!(
                "ping {dst} from {ns}: no summary\nstdout: {text}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let nums: Vec<u32> = line
        .split(',')
        .filter_map(|part| part.split_whitespace().next()?.parse().ok())
        .collect();
    (nums[0], nums[1])
}

/// Retries `check` every 50 ms until it returns `Ok` or `timeout` passes, then panics with
/// its last message. For counters that may still be catching up with packets in flight
/// (a final ACK), never to paper over a count that is wrong.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(()) => return,
            Err(e) if Instant::now() >= deadline => panic!("{e}"),
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Bytes written to TCP socket `s` that the peer has not acknowledged yet, unsent ones
/// included (`SIOCOUTQ`). Zero once everything sent was acknowledged.
pub fn unacknowledged_bytes(s: &TcpStream) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (= TIOCOUTQ) writes one int through the pointer.
    let rc = unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ, &raw mut n) };
    assert_eq!(rc, 0, "SIOCOUTQ: {}", io::Error::last_os_error());
    usize::try_from(n).unwrap_or(0)
}

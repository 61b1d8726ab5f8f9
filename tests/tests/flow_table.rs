//! The IPv4 flow table, through the real program (BPF_PROG_TEST_RUN): remembered denials,
//! replacement in a full bucket, and what a policy change does to both. Needs root.
#![allow(unused_crate_dependencies, reason = "one dependency list per package")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use sdn_tests as support;

use std::net::IpAddr;

use chrono::NaiveDate;
use sdn_common::{FLOW_WAYS, FlowBucket4, flags, reason};
use sdn_loader::compile::{Compiled, compile};
use sdn_loader::dataplane::{Capacities, Dataplane};
use sdn_loader::policy::parse_toml;
use support::generate::Packet;

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const CLIENT: &str = "198.51.100.7";
const SERVICE: &str = "203.0.113.10";

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 6, 15).unwrap()
}

/// One client allowed to `SERVICE` on TCP 443 and UDP `udp_ports` (a TOML value).
fn policy(udp_ports: &str) -> Compiled {
    let toml = format!(
        r#"
[[organisation]]
id = "sds"
name = "SDS"

[[organisation]]
id = "rsyd"
name = "Region Syddanmark"

[[service]]
id = "svc"
organisation = "sds"
name = "Web"
endpoints = [
  {{ address = "{SERVICE}", protocol = "tcp", ports = "443" }},
  {{ address = "{SERVICE}", protocol = "udp", ports = {udp_ports} }},
]

[[client]]
id = "cli"
organisation = "rsyd"
prefixes = ["198.51.100.0/24"]

[[agreement]]
id = 7
client = "cli"
service = "svc"
state = "approved"
"#
    );
    compile(&parse_toml(&toml).unwrap(), today()).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn udp(sport: u16, dport: u16) -> Vec<u8> {
    Packet::udp(ip(CLIENT), ip(SERVICE), sport, dport).build()
}

fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    Packet::tcp(ip(CLIENT), ip(SERVICE), sport, dport, flags).build()
}

/// A private instance whose IPv4 flow table has `buckets` buckets.
fn load(buckets: u32, compiled: &Compiled) -> Dataplane {
    assert!(
        support::netns::is_root(),
        "the flow-table tests load BPF programs and must run as root"
    );
    let mut caps = Capacities::for_replay(compiled);
    caps.flows = buckets * FLOW_WAYS as u32;
    let mut dp = Dataplane::load_private(caps).unwrap();
    dp.set_flags(flags::RECORD_LAST, 0).unwrap();
    dp.apply(compiled).unwrap();
    dp
}

/// (reason name, transaction) of one frame.
fn judge(dp: &mut Dataplane, frame: &[u8]) -> (&'static str, bool) {
    let r = dp.run_frame(frame).unwrap();
    (reason::name(r.last.reason), r.last.transaction != 0)
}

/// Drops of one reason so far (all CPUs).
fn drops(dp: &Dataplane, why: u32) -> u64 {
    dp.reason_counts().unwrap().get(&why).copied().unwrap_or(0)
}

#[test]
fn a_remembered_denial_drops_again_and_ends_with_the_policy() {
    if !support::netns::root_or_skip() {
        return;
    }
    let narrow = policy(r#""53""#);
    let mut dp = load(1 << 10, &narrow);
    // Denied the first time (judged) and every time after (remembered): same reason, counted.
    for _ in 0..3 {
        assert_eq!(judge(&mut dp, &udp(40000, 5353)), ("no-agreement", false));
    }
    assert_eq!(drops(&dp, reason::NO_AGREEMENT), 3);
    // The policy now allows the port: the remembered denial is of an older generation, the
    // packet is judged again, and since a denial was never a flow, it is a new transaction.
    dp.apply(&policy(r#"["53", "5353"]"#)).unwrap();
    assert_eq!(judge(&mut dp, &udp(40000, 5353)), ("forward", true));
    assert_eq!(
        judge(&mut dp, &udp(40000, 5353)),
        ("established-forward", false)
    );
    // And back: the passing flow's entry is of an older generation, so it drops at once.
    dp.apply(&narrow).unwrap();
    assert_eq!(judge(&mut dp, &udp(40000, 5353)), ("no-agreement", false));
}

#[test]
fn a_reply_syn_is_never_remembered_as_a_denial() {
    if !support::netns::root_or_skip() {
        return;
    }
    let mut dp = load(1 << 10, &policy(r#""53""#));
    let reply = |flags| Packet::tcp(ip(SERVICE), ip(CLIENT), 443, 40001, flags).build();
    // The reply SYN drops by its flags; the same tuple's SYN-ACK passes as a reply.
    assert_eq!(judge(&mut dp, &reply(SYN)), ("reply-syn", false));
    assert_eq!(judge(&mut dp, &reply(SYN | ACK)), ("reply", false));
    assert_eq!(judge(&mut dp, &reply(SYN)), ("reply-syn", false));
    assert_eq!(judge(&mut dp, &reply(ACK)), ("established-reply", false));
}

#[test]
fn denials_never_push_a_live_flow_out_of_a_full_bucket() {
    if !support::netns::root_or_skip() {
        return;
    }
    // One bucket: every flow shares it.
    let mut dp = load(1, &policy(r#""53""#));
    assert_eq!(judge(&mut dp, &udp(40000, 53)), ("forward", true));
    // Many more denied flows than the bucket has entries.
    for port in 0..(4 * FLOW_WAYS as u16) {
        assert_eq!(
            judge(&mut dp, &udp(41000 + port, 9999)),
            ("no-agreement", false)
        );
    }
    // The passing flow is still known: no second transaction.
    assert_eq!(
        judge(&mut dp, &udp(40000, 53)),
        ("established-forward", false)
    );
}

#[test]
fn a_full_bucket_gives_up_its_least_recently_seen_flow() {
    if !support::netns::root_or_skip() {
        return;
    }
    let mut dp = load(1, &policy(r#""53""#));
    // Fill the bucket with passing flows, the first one seen first (timestamps are jiffies,
    // so let time pass between them).
    for port in 0..FLOW_WAYS as u16 {
        assert_eq!(
            judge(&mut dp, &tcp(40000 + port, 443, SYN)),
            ("forward", true)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // One more flow takes the oldest entry.
    assert_eq!(judge(&mut dp, &tcp(45000, 443, SYN)), ("forward", true));
    assert_eq!(
        judge(&mut dp, &tcp(45000, 443, ACK)),
        ("established-forward", false)
    );
    // The newer flows are still there; the oldest was judged again (a SYN would count anew).
    for port in 1..FLOW_WAYS as u16 {
        assert_eq!(
            judge(&mut dp, &tcp(40000 + port, 443, ACK)),
            ("established-forward", false),
            "flow {port}"
        );
    }
    assert_eq!(judge(&mut dp, &tcp(40000, 443, ACK)), ("forward", false));
}

#[test]
fn a_flow_of_an_older_policy_is_not_pushed_out_by_a_new_one_while_there_is_room() {
    if !support::netns::root_or_skip() {
        return;
    }
    // One bucket with room for four flows.
    let p = policy(r#""53""#);
    let mut dp = load(1, &p);
    assert_eq!(judge(&mut dp, &udp(40000, 53)), ("forward", true));
    // A policy change: the flow's entry is now of an older generation.
    dp.apply(&p).unwrap();
    // A new flow must take a free entry, not the older policy's live flow.
    assert_eq!(judge(&mut dp, &udp(40001, 53)), ("forward", true));
    // The first flow is judged again under the new policy, and it is no new transaction.
    assert_eq!(judge(&mut dp, &udp(40000, 53)), ("forward", false));
    assert_eq!(
        judge(&mut dp, &udp(40000, 53)),
        ("established-forward", false)
    );
}

/// A pin directory of this test process on bpffs, removed when dropped.
struct Pins(std::path::PathBuf);

impl Pins {
    fn new(tag: &str) -> Self {
        Self(format!("/sys/fs/bpf/sdn-{tag}-{}", std::process::id()).into())
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The program's IPv4 flow table, opened through the pins of an instance loaded with
/// `Dataplane::load_pinned`.
fn pinned_table(pin: &std::path::Path) -> aya::maps::Array<aya::maps::MapData, FlowBucket4> {
    let data =
        aya::maps::MapData::from_pin(pin.join("maps").join(sdn_common::maps::FLOWS4)).unwrap();
    aya::maps::Array::try_from(aya::maps::Map::Array(data)).unwrap()
}

#[test]
fn an_entry_torn_by_a_concurrent_writer_is_never_taken_for_a_decision() {
    if !support::netns::root_or_skip() {
        return;
    }
    let pins = Pins::new("flowtable");
    let pin = pins.0.clone();
    let compiled = policy(r#""53""#);
    let mut caps = Capacities::for_replay(&compiled);
    caps.flows = FLOW_WAYS as u32; // one bucket
    let mut dp = Dataplane::load_pinned(caps, &pin).unwrap();
    dp.set_flags(flags::RECORD_LAST, 0).unwrap();
    dp.apply(&compiled).unwrap();
    let mut table = pinned_table(&pin);

    // A passing flow and a remembered denial share the bucket.
    assert_eq!(judge(&mut dp, &tcp(40000, 443, SYN)), ("forward", true));
    assert_eq!(judge(&mut dp, &udp(40001, 9999)), ("no-agreement", false));
    let bucket = table.get(&0, 0).unwrap();
    let find = |b: &FlowBucket4, sport: u16| {
        b.ways
            .iter()
            .position(|e| e.check != 0 && e.key.src_port == sport)
            .unwrap_or_else(|| panic!("no entry for source port {sport}"))
    };
    let (pass, deny) = (find(&bucket, 40000), find(&bucket, 40001));

    // Half of another write: the passing flow's entry says "denied", the denial's entry
    // says "forward under agreement 7", and neither check word was rewritten.
    let mut torn = bucket;
    torn.ways[pass].kind = sdn_common::kind::DROP;
    torn.ways[deny].kind = sdn_common::kind::FORWARD;
    torn.ways[deny].agreement = torn.ways[pass].agreement;
    torn.ways[deny].slot = torn.ways[pass].slot;
    table.set(0, torn, 0).unwrap();

    // Both are judged by the policy again: the flow passes (known, so no new transaction),
    // the denied flow stays denied.
    assert_eq!(judge(&mut dp, &tcp(40000, 443, ACK)), ("forward", false));
    assert_eq!(judge(&mut dp, &udp(40001, 9999)), ("no-agreement", false));
    // Judging rewrote both entries whole: they count again.
    assert_eq!(
        judge(&mut dp, &tcp(40000, 443, ACK)),
        ("established-forward", false)
    );
    let again = table.get(&0, 0).unwrap();
    assert_eq!(
        again.ways[find(&again, 40000)].kind,
        sdn_common::kind::FORWARD
    );
    assert_eq!(again.ways[find(&again, 40001)].kind, sdn_common::kind::DROP);
}

/// Creates and pins an array map with these sizes (what an earlier build left behind).
fn pin_array(path: &std::path::Path, key_size: u32, value_size: u32) {
    use std::os::unix::ffi::OsStrExt;
    // union bpf_attr for BPF_MAP_CREATE: map_type, key_size, value_size, max_entries, ...
    let mut attr = [0u32; 32];
    attr[0] = 2; // BPF_MAP_TYPE_ARRAY
    attr[1] = key_size;
    attr[2] = value_size;
    attr[3] = 1;
    // SAFETY: a valid bpf_attr of the size passed.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, 0, attr.as_ptr(), 128) };
    assert!(
        fd >= 0,
        "BPF_MAP_CREATE: {}",
        std::io::Error::last_os_error()
    );
    let name = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // BPF_OBJ_PIN: pathname (u64), bpf_fd (u32), file_flags.
    let mut pin = [0u32; 32];
    let ptr = name.as_ptr() as u64;
    pin[0] = ptr as u32;
    pin[1] = (ptr >> 32) as u32;
    pin[2] = fd as u32;
    // SAFETY: as above; `name` outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, 6, pin.as_ptr(), 128) };
    assert!(rc == 0, "BPF_OBJ_PIN: {}", std::io::Error::last_os_error());
    // SAFETY: our own descriptor; the pin keeps the map.
    unsafe { libc::close(fd as i32) };
}

#[test]
fn pins_of_a_build_with_another_map_layout_are_refused_by_name() {
    if !support::netns::root_or_skip() {
        return;
    }
    let pins = Pins::new("oldpins");
    let pin = pins.0.clone();
    let maps = pin.join("maps");
    std::fs::create_dir_all(&maps).unwrap();
    // The configuration of a build before the array flow table: 32-byte values.
    pin_array(&maps.join(sdn_common::maps::CONFIG), 4, 32);
    let compiled = policy(r#""53""#);
    let err = Dataplane::load_pinned(Capacities::for_replay(&compiled), &pin)
        .err()
        .expect("pins of another layout must be refused");
    let text = err.to_string();
    assert!(
        text.contains(sdn_common::maps::CONFIG)
            && text.contains("different build")
            && text.contains("--purge"),
        "unclear error: {text}"
    );
    // Nothing else was pinned beside the refused map.
    let left: Vec<_> = std::fs::read_dir(&maps).unwrap().flatten().collect();
    assert_eq!(left.len(), 1, "{left:?}");
}

/// The benchmark object (loaded on first use) shares the filter's flow table: its flow floor
/// passes a flow the filter let in and drops one it never saw, and `sdn_pass` passes all.
#[test]
fn the_benchmark_programs_share_the_filters_flow_table() {
    if !support::netns::root_or_skip() {
        return;
    }
    use sdn_common::action;
    use sdn_loader::dataplane::Program;
    let compiled = policy(r#""53""#);
    let mut dp = load(1 << 10, &compiled);
    let established = tcp(40000, 443, SYN);
    assert_eq!(judge(&mut dp, &established), ("forward", true));
    let unknown = tcp(40001, 443, ACK);
    let action_of =
        |dp: &mut Dataplane, frame: &[u8], which| dp.time_frame(frame, 1, which).unwrap().1;
    assert_eq!(
        action_of(&mut dp, &established, Program::FlowFloor),
        action::PASS
    );
    assert_eq!(
        action_of(&mut dp, &unknown, Program::FlowFloor),
        action::DROP
    );
    assert_eq!(action_of(&mut dp, &unknown, Program::Pass), action::PASS);
    // Once the filter has let the second flow in (after the benchmark object was loaded), the
    // floor finds it too: one table, not a copy.
    assert_eq!(judge(&mut dp, &unknown).0, "forward");
    assert_eq!(
        action_of(&mut dp, &unknown, Program::FlowFloor),
        action::PASS
    );
}

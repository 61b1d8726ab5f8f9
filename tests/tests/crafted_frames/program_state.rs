//! What the program keeps between frames: the decision record across CPUs, and policy
//! generations.

use super::*;

/// The service `svc` (203.0.113.10 tcp 443) and the client `cli` (198.51.100.0/25) both
/// tests here judge frames between; follows [`ORGS`].
const WEB_AND_CLIENT: &str = r#"
[[service]]
id = "svc"
organisation = "sds"
name = "Web"
endpoints = [ { address = "203.0.113.10", protocol = "tcp", ports = "443" } ]

[[client]]
id = "cli"
organisation = "rsyd"
prefixes = ["198.51.100.0/25"]
"#;

/// Pins the calling thread to one CPU (false when the machine has no such CPU).
fn pin_to_cpu(cpu: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity only
    // read and write that local set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &raw const set) == 0
    }
}

/// The decision read back after a test run is the one that run made, whichever CPU the thread
/// ran on before. (Regression: a per-CPU record went stale when the thread moved to a CPU that
/// had seen fewer frames, and the 6.1 check in CI reported another frame's reason.)
#[test]
fn decision_record_follows_the_thread_across_cpus() {
    if !support::netns::root_or_skip() {
        return;
    }
    let policy = format!(
        r#"{ORGS}{WEB_AND_CLIENT}
[[agreement]]
id = 7
client = "cli"
service = "svc"
state = "approved"
"#
    );
    let policy = parse_toml(&policy).unwrap();
    let mut kernel = Replayer::new(&policy, today()).unwrap();
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    for round in 0..4u16 {
        let busy = usize::from(round) % cpus;
        let quiet = (busy + 1) % cpus;
        // Many denied frames on one CPU, then one allowed frame on another (or the same one
        // on a single-CPU machine): the record must describe the allowed frame.
        assert!(pin_to_cpu(busy), "cannot pin to CPU {busy}");
        for i in 0..50u16 {
            let v = kernel
                .judge(&tcp(C, "203.0.113.10", 2000 + i, 22, SYN).build())
                .unwrap();
            assert_eq!(v.reason, "no-agreement");
        }
        assert!(pin_to_cpu(quiet), "cannot pin to CPU {quiet}");
        let v = kernel
            .judge(&tcp(C, "203.0.113.10", 30000 + round, 443, SYN).build())
            .unwrap();
        assert_eq!(
            (v.verdict, v.agreement, v.reason),
            (Action::Pass, Some(7), "forward"),
            "round {round}: CPU {busy} then {quiet}"
        );
    }
}

/// An established flow of an agreement that is revoked stays dropped through later policy
/// changes. (Regression: flow entries remembered only the parity of the policy generation,
/// so two applies later an idle flow of a revoked agreement passed for current again.)
#[test]
fn a_revoked_flow_stays_revoked_when_the_generation_parity_comes_round() {
    if !support::netns::root_or_skip() {
        return;
    }
    use sdn_common::flags;
    use sdn_loader::compile::compile;
    use sdn_loader::dataplane::{Capacities, Dataplane};

    let policy = |state: &str, extra: &str| {
        parse_toml(&format!(
            r#"{ORGS}{WEB_AND_CLIENT}
[[client]]
id = "other"
organisation = "rsyd"
prefixes = ["192.0.2.0/24"]

[[agreement]]
id = 7
client = "cli"
service = "svc"
state = "{state}"
{extra}"#
        ))
        .unwrap()
    };
    let on = compile(&policy("approved", ""), today()).unwrap();
    let off = compile(&policy("revoked", ""), today()).unwrap();
    let off_plus = compile(
        &policy(
            "revoked",
            "\n[[agreement]]\nid = 8\nclient = \"other\"\nservice = \"svc\"\nstate = \"approved\"\n",
        ),
        today(),
    )
    .unwrap();
    let mut dp = Dataplane::load_private(Capacities::for_replay(&off_plus)).unwrap();
    dp.set_flags(flags::RECORD_LAST, 0).unwrap();
    let reason = |dp: &mut Dataplane, frame: &[u8]| {
        let r = dp.run_frame(frame).unwrap();
        sdn_common::reason::name(r.last.reason)
    };
    let (syn, ack) = (
        tcp(C, "203.0.113.10", 40123, 443, SYN).build(),
        tcp(C, "203.0.113.10", 40123, 443, ACK).build(),
    );
    dp.apply(&on).unwrap();
    assert_eq!(reason(&mut dp, &syn), "forward");
    assert_eq!(reason(&mut dp, &ack), "established-forward");
    // Revoked, then an unrelated change: the generation's parity is back where the flow was
    // decided, and the flow was idle in between.
    dp.apply(&off).unwrap();
    dp.apply(&off_plus).unwrap();
    assert_eq!(reason(&mut dp, &ack), "no-agreement");
    // And once more round: still dropped.
    dp.apply(&off).unwrap();
    dp.apply(&off_plus).unwrap();
    assert_eq!(reason(&mut dp, &ack), "no-agreement");
}

//! The generators: valid policies, variety, determinism, and an oracle that survives mutated frames.

use super::*;

fn check_policy(p: &Policy) {
    let mut ids = HashSet::new();
    assert!((3..=15).contains(&p.agreements.len()));
    assert!((2..=6).contains(&p.services.len()));
    assert!((2..=6).contains(&p.clients.len()));
    assert!((1..=4).contains(&p.port_aliases.len()));
    for a in &p.agreements {
        assert!(ids.insert(a.id), "duplicate id {}", a.id);
        assert!(p.clients.iter().any(|c| c.id == a.client));
        assert!(p.services.iter().any(|s| s.id == a.service));
        assert!(a.vlan.is_none_or(|v| (1..=4094).contains(&v)));
    }
    let check_net = |n: &IpNet| {
        assert!(is_documentation_net(n), "{n} outside documentation space");
        assert_eq!(*n, n.trunc(), "{n} has host bits set");
    };
    for s in &p.services {
        assert!((1..=3).contains(&s.endpoints.len()));
        for e in &s.endpoints {
            check_net(&e.address);
            match e.protocol {
                Protocol::Icmp => assert!(matches!(e.address, IpNet::V4(_))),
                Protocol::Icmpv6 => assert!(matches!(e.address, IpNet::V6(_))),
                _ => {}
            }
            assert!(e.protocol.has_ports() || e.ports.is_empty());
            assert!(e.ports.iter().all(|r| r.lo <= r.hi));
        }
    }
    for c in &p.clients {
        assert!((1..=3).contains(&c.prefixes.len()));
        c.prefixes.iter().for_each(check_net);
    }
    p.infrastructure.iter().for_each(|e| check_net(&e.prefix));
    // And the policy validator accepts it (no repeated endpoint or client prefix, say).
    let text = sdn_loader::db::text::policy_json(p).to_string();
    if let Err(e) = sdn_loader::policy::parse_json(&text) {
        panic!("the generated policy is not valid: {e}");
    }
}

/// Addresses of an IP frame (if the headers are there), for the documentation-only check.
fn frame_addresses(f: &[u8]) -> Vec<IpAddr> {
    let mut off = 14;
    if f.len() < 14 {
        return Vec::new();
    }
    let mut et = u16::from_be_bytes([f[12], f[13]]);
    while matches!(et, 0x8100 | 0x88a8 | 0x9100) && off + 4 <= f.len() {
        et = u16::from_be_bytes([f[off + 2], f[off + 3]]);
        off += 4;
    }
    let b = &f[off.min(f.len())..];
    match et {
        0x0800 if b.len() >= 20 => {
            vec![
                IpAddr::from(<[u8; 4]>::try_from(&b[12..16]).unwrap()),
                IpAddr::from(<[u8; 4]>::try_from(&b[16..20]).unwrap()),
            ]
        }
        0x86dd if b.len() >= 40 => {
            vec![
                IpAddr::from(<[u8; 16]>::try_from(&b[8..24]).unwrap()),
                IpAddr::from(<[u8; 16]>::try_from(&b[24..40]).unwrap()),
            ]
        }
        _ => Vec::new(),
    }
}

#[test]
fn generators_produce_variety() {
    let mut rng = StdRng::seed_from_u64(0x5d17);
    let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut shapes: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut agreements_hit = HashSet::new();
    let mut transactions = 0;
    let mut frames = 0;
    for _ in 0..20 {
        let policy = random_policy(&mut rng, today());
        check_policy(&policy);
        let mut g = FrameGen::new(&policy);
        let mut o = Oracle::new(&policy, today());
        for _ in 0..250 {
            let f = g.next(&mut rng);
            frames += 1;
            assert!(
                f.len() >= 14 && f.len() <= 1500,
                "frame of {} bytes",
                f.len()
            );
            for a in frame_addresses(&f) {
                assert!(is_documentation(a), "non-documentation address {a}");
            }
            let e = o.judge(&f);
            *reasons.entry(e.reason).or_default() += 1;
            if let Some(a) = e.agreement {
                agreements_hit.insert(a);
            }
            transactions += usize::from(e.transaction);
            assert_eq!(e.pass, reason::ALL[..9].contains(&e.reason));
            assert_eq!(e.agreement.is_some(), e.direction.is_some());
            // shapes
            let mut et = u16::from_be_bytes([f[12], f[13]]);
            let mut off = 14;
            let mut tags = 0;
            while matches!(et, 0x8100 | 0x88a8 | 0x9100) && off + 4 <= f.len() {
                et = u16::from_be_bytes([f[off + 2], f[off + 3]]);
                off += 4;
                tags += 1;
            }
            *shapes
                .entry(["0 tags", "1 tag", "2 tags", "3+ tags", "3+ tags"][tags.min(4)])
                .or_default() += 1;
            match et {
                0x0800 if f.len() >= off + 20 => {
                    *shapes.entry("ipv4").or_default() += 1;
                    if f[off] & 0x0f > 5 {
                        *shapes.entry("ipv4 options").or_default() += 1;
                    }
                    let fo = u16::from_be_bytes([f[off + 6], f[off + 7]]);
                    if fo & 0x1fff != 0 {
                        *shapes.entry("ipv4 later fragment").or_default() += 1;
                    } else if fo & 0x2000 != 0 {
                        *shapes.entry("ipv4 first fragment").or_default() += 1;
                    }
                    match f[off + 9] {
                        6 => *shapes.entry("tcp").or_default() += 1,
                        17 => *shapes.entry("udp").or_default() += 1,
                        132 => *shapes.entry("sctp").or_default() += 1,
                        1 => *shapes.entry("icmp").or_default() += 1,
                        _ => *shapes.entry("other protocol").or_default() += 1,
                    }
                }
                0x86dd if f.len() >= off + 40 => {
                    *shapes.entry("ipv6").or_default() += 1;
                    let mut nh = f[off + 6];
                    let mut pos = off + 40;
                    let mut n = 0;
                    while matches!(nh, 0 | 43 | 60 | 44 | 51) && pos + 8 <= f.len() {
                        if nh == 44 {
                            *shapes.entry("ipv6 fragment header").or_default() += 1;
                        }
                        let len = match nh {
                            44 => 8,
                            51 => (usize::from(f[pos + 1]) + 2) * 4,
                            _ => (usize::from(f[pos + 1]) + 1) * 8,
                        };
                        nh = f[pos];
                        pos += len;
                        n += 1;
                    }
                    *shapes
                        .entry(match n {
                            0 => "ipv6 0 ext",
                            1..=7 => "ipv6 1-7 ext",
                            8 => "ipv6 8 ext",
                            _ => "ipv6 9+ ext",
                        })
                        .or_default() += 1;
                    if nh == 58 && pos < f.len() {
                        *shapes.entry("icmpv6").or_default() += 1;
                    }
                }
                0x0800 | 0x86dd => *shapes.entry("short ip").or_default() += 1,
                _ => *shapes.entry("non-ip").or_default() += 1,
            }
        }
    }
    eprintln!(
        "{frames} frames, {transactions} transactions, {} agreements hit",
        agreements_hit.len()
    );
    eprintln!("reasons: {reasons:#?}");
    eprintln!("shapes: {shapes:#?}");
    for r in [
        reason::FORWARD,
        reason::REPLY,
        reason::ESTABLISHED_FORWARD,
        reason::ESTABLISHED_REPLY,
        reason::ICMP_ERROR,
        reason::FRAGMENT,
        reason::NON_IP,
        reason::NEIGHBOUR_DISCOVERY,
        reason::NO_AGREEMENT,
        reason::REPLY_SYN,
        reason::TOO_MANY_VLAN_TAGS,
        reason::TOO_MANY_EXTENSION_HEADERS,
        reason::TRUNCATED,
        reason::MALFORMED_IPV4,
        reason::MALFORMED_IPV6,
        reason::MALFORMED_TRANSPORT,
        reason::TINY_FRAGMENT,
        reason::FRAGMENT_WITHOUT_HEAD,
        reason::FRAGMENT_OF_DROPPED,
        reason::ICMP_ERROR_NO_AGREEMENT,
        reason::ICMP_ERROR_MALFORMED,
    ] {
        assert!(
            reasons.get(r).copied().unwrap_or(0) >= 3,
            "reason {r} seen {:?} times",
            reasons.get(r)
        );
    }
    for s in [
        "0 tags",
        "1 tag",
        "2 tags",
        "3+ tags",
        "ipv4",
        "ipv6",
        "ipv4 options",
        "ipv4 first fragment",
        "ipv4 later fragment",
        "ipv6 fragment header",
        "ipv6 0 ext",
        "ipv6 1-7 ext",
        "ipv6 8 ext",
        "ipv6 9+ ext",
        "tcp",
        "udp",
        "sctp",
        "icmp",
        "icmpv6",
        "other protocol",
        "non-ip",
    ] {
        assert!(
            shapes.get(s).copied().unwrap_or(0) >= 5,
            "shape {s} seen {:?} times",
            shapes.get(s)
        );
    }
    assert!(transactions >= 50);
    assert!(agreements_hit.len() >= 20);
}

#[test]
fn generators_are_deterministic() {
    let run = |seed| {
        let mut rng = StdRng::seed_from_u64(seed);
        let policy = random_policy(&mut rng, today());
        let mut g = FrameGen::new(&policy);
        let frames: Vec<Vec<u8>> = (0..200).map(|_| g.next(&mut rng)).collect();
        (policy, frames, random_frame(&mut rng, &Policy::default()))
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1).1, run(2).1);
}

#[test]
fn oracle_survives_mutations() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
    for _ in 0..10 {
        let policy = random_policy(&mut rng, today());
        let mut g = FrameGen::new(&policy);
        let mut o = Oracle::new(&policy, today());
        for _ in 0..1000 {
            let mut f = g.next(&mut rng);
            mutate(&mut rng, &mut f);
            assert!(f.len() >= 14);
            *reasons.entry(o.judge(&f).reason).or_default() += 1;
        }
    }
    eprintln!("after mutation: {reasons:#?}");
    assert!(reasons.len() >= 12);
}

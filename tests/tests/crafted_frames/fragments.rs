//! Rule 7: fragments (and rule 3's tiny fragments).

use super::*;

#[test]
fn fragments() {
    let s = "203.0.113.60";
    let s6 = "2001:db8:60::1";
    let data = |n: usize| vec![0xab; n];
    // IPv4 UDP, 48 transport bytes in 16-byte pieces: 3 fragments.
    let a = with_ident(udp(C, s, 4000, 5000).with_payload(data(40)), 0x1001).fragments(16, 0);
    let a_other_src = with_ident(
        udp("198.51.100.8", s, 4000, 5000).with_payload(data(40)),
        0x1001,
    )
    .fragments(16, 0);
    let a_other_id =
        with_ident(udp(C, s, 4000, 5000).with_payload(data(40)), 0x1fff).fragments(16, 0);
    let a_other_proto =
        with_ident(tcp(C, s, 4000, 443, ACK).with_payload(data(40)), 0x1001).fragments(16, 0);
    let a_again = with_ident(udp(C, s, 4000, 5000).with_payload(data(40)), 0x1009).fragments(16, 0);
    let b = with_ident(udp(C, s, 4001, 5000).with_payload(data(40)), 0x1002).fragments(16, 0);
    let rep = with_ident(udp(s, C, 5000, 4000).with_payload(data(40)), 0x2001).fragments(16, 0);
    let bad = with_ident(udp(C, s, 4002, 5001).with_payload(data(40)), 0x1004).fragments(16, 0);
    let tiny = with_ident(tcp(C, s, 4003, 443, SYN), 0x1005).fragments(8, 0);
    let udp8 = with_ident(udp(C, s, 4004, 5000).with_payload(data(16)), 0x1006).fragments(8, 0);
    let ping = with_ident(echo(C, s, true, 0x77).with_payload(data(32)), 0x1007).fragments(16, 0);
    let tagged = with_ident(udp(C, s, 4007, 5000).with_payload(data(40)), 0x1008);
    let tagged_frags = tagged.clone().vlan(0x8100, 10).fragments(16, 0);
    let untagged_frags = tagged.fragments(16, 0);
    // IPv6.
    let v =
        with_ident(udp(C6, s6, 4000, 5000).with_payload(data(40)), 0xabcd_0001).fragments(16, 0);
    let w =
        with_ident(udp(C6, s6, 4001, 5000).with_payload(data(40)), 0xabcd_0002).fragments(16, 0);
    let v_bad =
        with_ident(udp(C6, s6, 4002, 5001).with_payload(data(40)), 0xabcd_0003).fragments(16, 0);
    let v_tiny = with_ident(tcp(C6, s6, 4003, 443, SYN), 0xabcd_0004).fragments(8, 0);
    let v_dest = with_ident(
        udp(C6, s6, 4005, 5000)
            .with_payload(data(40))
            .with_exts(vec![Ext::DestOpts(0)]),
        0xabcd_0005,
    )
    .fragments(24, 0);
    let v_hbh = with_ident(
        udp(C6, s6, 4006, 5000)
            .with_payload(data(40))
            .with_exts(vec![Ext::HopByHop(0)]),
        0xabcd_0006,
    )
    .fragments(16, 1);
    let v_dest_tiny = with_ident(
        udp(C6, s6, 4007, 5000)
            .with_payload(data(40))
            .with_exts(vec![Ext::DestOpts(1)]),
        0xabcd_0007,
    )
    .fragments(16, 0);
    let v_dest_cut = with_ident(
        udp(C6, s6, 4008, 5000)
            .with_payload(data(40))
            .with_exts(vec![Ext::DestOpts(2)]),
        0xabcd_0008,
    )
    .fragments(16, 0);
    let v_atomic =
        with_ident(udp(C6, s6, 4009, 5000).with_payload(data(8)), 0xabcd_0009).fragments(64, 0);
    let v_rep =
        with_ident(udp(s6, C6, 5000, 4000).with_payload(data(40)), 0xabcd_000a).fragments(16, 0);
    assert_eq!(a.len(), 3);
    assert_eq!(tiny.len(), 3);
    assert_eq!(v_atomic.len(), 1);
    assert_eq!(v_dest_tiny.len(), 4);

    let cases = [
        // First fragment judged with its ports; later ones follow it.
        forward("v4 first fragment", a[0].clone(), 61, true),
        counted("v4 second fragment", a[1].clone(), "fragment", 61, FWD),
        counted("v4 last fragment", a[2].clone(), "fragment", 61, FWD),
        counted(
            "v4 duplicate second fragment",
            a[1].clone(),
            "fragment",
            61,
            FWD,
        ),
        est_forward(
            "unfragmented packet of the same flow",
            udp(C, s, 4000, 5000).build(),
            61,
        ),
        est_forward(
            "first fragment of a new datagram, same flow",
            a_again[0].clone(),
            61,
        ),
        counted(
            "later fragment of the new datagram",
            a_again[1].clone(),
            "fragment",
            61,
            FWD,
        ),
        // The fragment key: VLAN, source, destination, protocol, id.
        dropped(
            "same id, other source",
            a_other_src[1].clone(),
            "fragment-without-head",
        ),
        dropped(
            "same tuple, other id",
            a_other_id[1].clone(),
            "fragment-without-head",
        ),
        dropped(
            "same id, other protocol",
            a_other_proto[1].clone(),
            "fragment-without-head",
        ),
        forward("tagged first fragment", tagged_frags[0].clone(), 61, true),
        dropped(
            "its later fragment untagged",
            untagged_frags[1].clone(),
            "fragment-without-head",
        ),
        counted(
            "its later fragment tagged",
            tagged_frags[1].clone(),
            "fragment",
            61,
            FWD,
        ),
        // A later fragment before its first.
        dropped(
            "v4 last fragment before the first",
            b[2].clone(),
            "fragment-without-head",
        ),
        dropped(
            "v4 middle fragment before the first",
            b[1].clone(),
            "fragment-without-head",
        ),
        forward("v4 first fragment arrives", b[0].clone(), 61, true),
        counted(
            "v4 middle fragment now passes",
            b[1].clone(),
            "fragment",
            61,
            FWD,
        ),
        counted(
            "v4 last fragment now passes",
            b[2].clone(),
            "fragment",
            61,
            FWD,
        ),
        // Replies.
        reply("v4 reply first fragment", rep[0].clone(), 61),
        counted(
            "v4 reply later fragment",
            rep[1].clone(),
            "fragment",
            61,
            REP,
        ),
        // A dropped first fragment.
        dropped(
            "v4 first fragment to a closed port",
            bad[0].clone(),
            "no-agreement",
        ),
        dropped(
            "its second fragment",
            bad[1].clone(),
            "fragment-of-dropped-head",
        ),
        dropped(
            "its last fragment",
            bad[2].clone(),
            "fragment-of-dropped-head",
        ),
        // Tiny fragments (RFC 1858).
        dropped(
            "v4 tcp first fragment with 8 of 20 header bytes",
            tiny[0].clone(),
            "tiny-fragment",
        ),
        dropped(
            "later fragment of the tiny one",
            tiny[1].clone(),
            "fragment-of-dropped-head",
        ),
        dropped(
            "last fragment of the tiny one",
            tiny[2].clone(),
            "fragment-of-dropped-head",
        ),
        forward(
            "v4 udp first fragment with exactly 8 bytes",
            udp8[0].clone(),
            61,
            true,
        ),
        counted(
            "later fragment after the 8-byte udp head",
            udp8[1].clone(),
            "fragment",
            61,
            FWD,
        ),
        forward("v4 icmp echo first fragment", ping[0].clone(), 61, true),
        counted(
            "v4 icmp echo later fragment",
            ping[1].clone(),
            "fragment",
            61,
            FWD,
        ),
        // IPv6 (the support builder writes the fragment header correctly).
        forward("v6 first fragment", v[0].clone(), 61, true),
        counted("v6 second fragment", v[1].clone(), "fragment", 61, FWD),
        counted("v6 last fragment", v[2].clone(), "fragment", 61, FWD),
        dropped(
            "v6 later fragment before the first",
            w[1].clone(),
            "fragment-without-head",
        ),
        forward("v6 first fragment arrives", w[0].clone(), 61, true),
        counted(
            "v6 later fragment now passes",
            w[1].clone(),
            "fragment",
            61,
            FWD,
        ),
        dropped(
            "v6 first fragment to a closed port",
            v_bad[0].clone(),
            "no-agreement",
        ),
        dropped(
            "v6 fragment of a dropped head",
            v_bad[1].clone(),
            "fragment-of-dropped-head",
        ),
        dropped(
            "v6 tcp tiny first fragment",
            v_tiny[0].clone(),
            "tiny-fragment",
        ),
        dropped(
            "v6 fragment of the tiny one",
            v_tiny[1].clone(),
            "fragment-of-dropped-head",
        ),
        forward(
            "v6 first fragment, dest-opts after the fragment header",
            v_dest[0].clone(),
            61,
            true,
        ),
        counted(
            "v6 later fragment, key protocol = dest-opts",
            v_dest[1].clone(),
            "fragment",
            61,
            FWD,
        ),
        forward(
            "v6 first fragment after hop-by-hop",
            v_hbh[0].clone(),
            61,
            true,
        ),
        counted(
            "v6 later fragment after hop-by-hop",
            v_hbh[1].clone(),
            "fragment",
            61,
            FWD,
        ),
        dropped(
            "v6 first fragment holding only dest-opts",
            v_dest_tiny[0].clone(),
            "tiny-fragment",
        ),
        dropped(
            "later fragment of the dest-opts-only head",
            v_dest_tiny[1].clone(),
            "fragment-of-dropped-head",
        ),
        dropped(
            "v6 first fragment with dest-opts cut by the fragment end",
            v_dest_cut[0].clone(),
            "truncated-header",
        ),
        dropped(
            "its later fragment has no head",
            v_dest_cut[1].clone(),
            "fragment-without-head",
        ),
        forward(
            "v6 atomic fragment (offset 0, no M) is no fragment",
            v_atomic[0].clone(),
            61,
            true,
        ),
        est_forward(
            "v6 atomic fragment again: same flow",
            v_atomic[0].clone(),
            61,
        ),
        reply("v6 reply first fragment", v_rep[0].clone(), 61),
        counted(
            "v6 reply later fragment",
            v_rep[1].clone(),
            "fragment",
            61,
            REP,
        ),
    ];
    run(
        "fragments",
        &with_header(include_str!("../../fixtures/crafted/fragments.toml")),
        &cases,
    );
}

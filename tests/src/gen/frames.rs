//! Random frames aimed at a policy, and mutations of them.

use super::*;

pub(super) fn pick_port(rng: &mut impl Rng, ranges: &[PortRange]) -> u16 {
    let Some(r) = ranges.choose(rng) else {
        return if rng.gen_bool(0.6) {
            *INTERESTING_PORTS.choose(rng).unwrap()
        } else {
            rng.r#gen()
        };
    };
    match rng.gen_range(0..100) {
        0..=44 => rng.gen_range(r.lo..=r.hi),
        45..=59 => r.lo,
        60..=74 => r.hi,
        75..=84 => r.lo.wrapping_sub(1),
        85..=94 => r.hi.wrapping_add(1),
        _ => rng.r#gen(),
    }
}

pub(super) fn ephemeral_port(rng: &mut impl Rng) -> u16 {
    match rng.gen_range(0..100) {
        0..=69 => rng.gen_range(32768..=60999),
        70..=84 => *INTERESTING_PORTS.choose(rng).unwrap(),
        _ => rng.r#gen(),
    }
}

pub(super) fn random_tcp_flags(rng: &mut impl Rng) -> u8 {
    use tcp::*;
    match rng.gen_range(0..100) {
        0..=29 => SYN,
        30..=49 => SYN | ACK,
        50..=74 => ACK,
        75..=82 => PSH | ACK,
        83..=87 => FIN | ACK,
        88..=91 => RST,
        _ => rng.r#gen(),
    }
}

pub(super) fn random_payload(rng: &mut impl Rng) -> Vec<u8> {
    let len = match rng.gen_range(0..100) {
        0..=29 => 0,
        30..=84 => rng.gen_range(1..64),
        _ => rng.gen_range(64..400),
    };
    (0..len).map(|_| rng.r#gen()).collect()
}

/// Protocols outside tcp/udp/sctp/icmp that are not IPv6 extension headers.
pub(super) const OTHER_PROTOCOLS: [u8; 8] = [4, 41, 47, 50, 59, 89, 103, 112];

/// What a flow generator is aiming at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Aim {
    Tcp,
    Udp,
    Sctp,
    Icmp,
    Other,
}

/// A stateful frame generator: it remembers recent flows (to send more packets of them, either
/// way round) and queues the later fragments of fragmented packets (sent afterwards, in random
/// order, so some arrive before their first fragment).
#[derive(Debug, Clone)]
pub struct FrameGen {
    policy: Policy,
    vlans: Vec<u16>,
    recent: Vec<Packet>,
    pending: Vec<Vec<u8>>,
}

impl FrameGen {
    /// A generator aiming at `policy`'s addresses, ports and VLANs.
    pub fn new(policy: &Policy) -> Self {
        let mut vlans: Vec<u16> = policy.agreements.iter().filter_map(|a| a.vlan).collect();
        vlans.sort_unstable();
        vlans.dedup();
        Self {
            policy: policy.clone(),
            vlans,
            recent: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// Number of queued fragments not sent yet.
    pub fn pending_fragments(&self) -> usize {
        self.pending.len()
    }

    /// The next frame.
    pub fn next(&mut self, rng: &mut impl Rng) -> Vec<u8> {
        if !self.pending.is_empty() && rng.gen_bool(0.3) {
            let i = rng.gen_range(0..self.pending.len());
            return self.pending.swap_remove(i);
        }
        match rng.gen_range(0..100) {
            0..=3 => self.non_ip(rng),
            4..=24 if !self.recent.is_empty() => {
                let mut p = self.recent.choose(rng).unwrap().clone();
                if rng.gen_bool(0.5) {
                    p = p.reversed();
                }
                if let L4::Tcp { flags, .. } = &mut p.l4 {
                    *flags = random_tcp_flags(rng);
                }
                if rng.gen_bool(0.1) {
                    p.tags = self.random_tags(rng, None);
                }
                p.payload = random_payload(rng);
                self.finish(rng, p)
            }
            _ => {
                let p = self.random_packet(rng, 0);
                if !matches!(p.l4, L4::Icmp { .. }) || rng.gen_bool(0.3) {
                    self.recent.push(p.clone());
                    if self.recent.len() > 64 {
                        let i = rng.gen_range(0..self.recent.len());
                        self.recent.swap_remove(i);
                    }
                }
                self.finish(rng, p)
            }
        }
    }

    /// Fragmenting, corruption, padding.
    fn finish(&mut self, rng: &mut impl Rng, mut p: Packet) -> Vec<u8> {
        p.pad_to_60 = rng.gen_bool(0.4);
        if rng.gen_bool(0.12) {
            p.ident = if p.is_v6() {
                *[1u32, 2, 0xdead_beef, rng.r#gen()].choose(rng).unwrap()
            } else {
                u32::from(*[1u16, 2, 0x4242, rng.r#gen()].choose(rng).unwrap())
            };
            // one fragment header per packet: drop any atomic one first
            p.exts.retain(|e| !matches!(e, Ext::Fragment { .. }));
            let piece = 8 * rng.gen_range(1..=8);
            let frag_at = rng.gen_range(0..=p.exts.len());
            let mut frames = p.fragments(piece, frag_at);
            if self.pending.len() > 48 {
                self.pending.drain(..16);
            }
            return match rng.gen_range(0..10) {
                0..=5 => {
                    let first = frames.remove(0);
                    self.pending.extend(frames);
                    first
                }
                6..=7 => {
                    self.pending.extend(frames);
                    let i = rng.gen_range(0..self.pending.len());
                    self.pending.swap_remove(i)
                }
                _ => {
                    // a lone fragment (later fragments without their head, or a first alone)
                    let i = rng.gen_range(0..frames.len());
                    frames.swap_remove(i)
                }
            };
        }
        let mut frame = p.build();
        if rng.gen_bool(0.07) {
            corrupt(rng, &p, &mut frame);
        }
        frame
    }

    fn non_ip(&mut self, rng: &mut impl Rng) -> Vec<u8> {
        let tags = self.random_tags(rng, None);
        let nets = doc_v4();
        let (na, nb) = (*nets.choose(rng).unwrap(), *nets.choose(rng).unwrap());
        let a = random_in(rng, IpNet::V4(na));
        let b = random_in(rng, IpNet::V4(nb));
        match rng.gen_range(0..4) {
            0 | 1 => arp_frame(
                &tags,
                Ipv4Addr::from(v4_of(a)),
                Ipv4Addr::from(v4_of(b)),
                rng.r#gen(),
            ),
            2 => {
                let payload: Vec<u8> = (0..rng.gen_range(0..60)).map(|_| rng.r#gen()).collect();
                let ethertype = *[0x88ccu16, 0x8809, 0x88b5, 0x0806, 0x8847]
                    .choose(rng)
                    .unwrap();
                frame_with_tags(&tags, ethertype, &payload, rng.r#gen())
            }
            _ => {
                // a tag cut short, or a lone Ethernet header
                let mut f = frame_with_tags(&tags, 0x0800, &[], false);
                if !tags.is_empty() && rng.r#gen() {
                    f.truncate(14 + rng.gen_range(0..4));
                }
                f
            }
        }
    }

    /// 0-4 VLAN tags (mostly 0-2), VIDs often one of the policy's, sometimes 0.
    fn random_tags(&self, rng: &mut impl Rng, want: Option<u16>) -> Vec<(u16, u16)> {
        let n = match rng.gen_range(0..100) {
            0..=44 => 0,
            45..=75 => 1,
            76..=96 => 2,
            97..=98 => 3,
            _ => 4,
        };
        let n = if want.is_some() && n == 0 && rng.gen_bool(0.7) {
            1
        } else {
            n
        };
        let mut tags: Vec<(u16, u16)> = (0..n)
            .map(|i| {
                let tpid = if n >= 2 && i == 0 && rng.gen_bool(0.6) {
                    0x88a8
                } else {
                    *[0x8100u16, 0x88a8, 0x9100].choose(rng).unwrap()
                };
                let vid = match rng.gen_range(0..100) {
                    0..=14 => 0,
                    15..=64 if !self.vlans.is_empty() => *self.vlans.choose(rng).unwrap(),
                    15..=39 => *VLAN_POOL.choose(rng).unwrap(),
                    _ => rng.gen_range(1..4096),
                };
                let pcp: u16 = if rng.gen_bool(0.2) {
                    rng.gen_range(0..16) << 12
                } else {
                    0
                };
                (tpid, pcp | vid)
            })
            .collect();
        if let Some(v) = want {
            if !tags.is_empty() && rng.gen_bool(0.8) {
                let i = rng.gen_range(0..tags.len());
                tags[i].1 = (tags[i].1 & 0xf000) | v;
                for t in tags.iter_mut().skip(i + 1) {
                    if rng.gen_bool(0.7) {
                        t.1 &= 0xf000; // priority tags inside
                    }
                }
            }
        }
        tags
    }

    /// An address biased towards the policy's prefixes.
    fn random_addr(&self, rng: &mut impl Rng, v6: bool) -> IpAddr {
        let fam = |n: &&IpNet| matches!(n, IpNet::V6(_)) == v6;
        let pick: Vec<IpNet> = match rng.gen_range(0..100) {
            0..=29 => self
                .policy
                .clients
                .iter()
                .flat_map(|c| c.prefixes.iter())
                .filter(fam)
                .copied()
                .collect(),
            30..=59 => self
                .policy
                .services
                .iter()
                .flat_map(|s| s.endpoints.iter().map(|e| &e.address))
                .filter(fam)
                .copied()
                .collect(),
            60..=69 => self
                .policy
                .infrastructure
                .iter()
                .map(|e| &e.prefix)
                .filter(fam)
                .copied()
                .collect(),
            _ => Vec::new(),
        };
        if let Some(net) = pick.choose(rng) {
            addr_near(rng, *net)
        } else {
            let net = fresh_prefix(rng, v6);
            random_in(rng, net)
        }
    }

    /// A packet of some flow: (client, service) addresses from an agreement or anywhere, either
    /// direction, a transport aimed at the endpoint's protocol and ports.
    fn random_packet(&self, rng: &mut impl Rng, depth: u8) -> Packet {
        let mut vlan_want = None;
        // Mostly approved agreements (the others only give drops).
        let approved: Vec<&Agreement> = self
            .policy
            .agreements
            .iter()
            .filter(|a| a.state == AgreementState::Approved)
            .collect();
        let chosen = if !approved.is_empty() && rng.gen_bool(0.7) {
            approved.choose(rng).copied()
        } else {
            self.policy.agreements.choose(rng)
        };
        let (client, service, service_port, aim) = match chosen {
            Some(a) if rng.gen_bool(0.8) => {
                let client = self.policy.clients.iter().find(|c| c.id == a.client);
                let service = self.policy.services.iter().find(|s| s.id == a.service);
                let ep = service.and_then(|s| s.endpoints.choose(rng));
                match (client, ep) {
                    (Some(client), Some(ep)) => {
                        let v6 = matches!(ep.address, IpNet::V6(_));
                        let cp: Vec<IpNet> = client
                            .prefixes
                            .iter()
                            .filter(|p| matches!(p, IpNet::V6(_)) == v6)
                            .copied()
                            .collect();
                        let caddr = match cp.choose(rng) {
                            Some(p) => addr_near(rng, *p),
                            None => self.random_addr(rng, v6),
                        };
                        vlan_want = a.vlan;
                        let aim = match ep.protocol {
                            Protocol::Tcp => Aim::Tcp,
                            Protocol::Udp => Aim::Udp,
                            Protocol::Sctp => Aim::Sctp,
                            Protocol::Icmp | Protocol::Icmpv6 => Aim::Icmp,
                            Protocol::Any => {
                                *[Aim::Tcp, Aim::Udp, Aim::Sctp, Aim::Icmp, Aim::Other]
                                    .choose(rng)
                                    .unwrap()
                            }
                        };
                        (
                            caddr,
                            addr_near(rng, ep.address),
                            pick_port(rng, &ep.ports),
                            aim,
                        )
                    }
                    _ => self.random_pair(rng),
                }
            }
            _ => self.random_pair(rng),
        };
        let aim = if rng.gen_bool(0.1) {
            *[Aim::Tcp, Aim::Udp, Aim::Sctp, Aim::Icmp, Aim::Other]
                .choose(rng)
                .unwrap()
        } else {
            aim
        };
        let client_port = ephemeral_port(rng);
        let forward = rng.gen_bool(0.6);
        let (src, dst, sport, dport) = if forward {
            (client, service, client_port, service_port)
        } else {
            (service, client, service_port, client_port)
        };
        let v6 = src.is_ipv6();

        let mut p = match aim {
            Aim::Tcp => {
                let mut p = Packet::tcp(src, dst, sport, dport, random_tcp_flags(rng));
                if rng.gen_bool(0.2) {
                    if let L4::Tcp { options, .. } = &mut p.l4 {
                        let words = rng.gen_range(1..=10);
                        *options = vec![1; 4 * words]; // NOPs
                        options[0] = 2; // MSS
                        options[1] = 4;
                        options[2] = 0x05;
                        options[3] = 0xb4;
                    }
                }
                p
            }
            Aim::Udp => Packet::udp(src, dst, sport, dport),
            Aim::Sctp => Packet::sctp(src, dst, sport, dport),
            Aim::Other => {
                let wrong_icmp = if v6 { 1 } else { 58 };
                let proto = if rng.gen_bool(0.2) {
                    wrong_icmp
                } else {
                    *OTHER_PROTOCOLS.choose(rng).unwrap()
                };
                Packet::raw(src, dst, proto)
            }
            Aim::Icmp => self.random_icmp(rng, src, dst, depth),
        };
        if !matches!(p.l4, L4::Icmp { .. }) || p.payload.is_empty() {
            p.payload = random_payload(rng);
        }
        if depth == 0 {
            p.tags = self.random_tags(rng, vlan_want);
        }
        if v6 {
            p.exts = random_exts(rng);
        } else if rng.gen_bool(0.2) {
            p.v4_options = random_v4_options(rng);
        }
        p
    }

    fn random_pair(&self, rng: &mut impl Rng) -> (IpAddr, IpAddr, u16, Aim) {
        let v6 = rng.gen_bool(0.4);
        let aim = *[Aim::Tcp, Aim::Udp, Aim::Sctp, Aim::Icmp, Aim::Other]
            .choose(rng)
            .unwrap();
        (
            self.random_addr(rng, v6),
            self.random_addr(rng, v6),
            pick_port(rng, &[]),
            aim,
        )
    }

    fn random_icmp(&self, rng: &mut impl Rng, src: IpAddr, dst: IpAddr, depth: u8) -> Packet {
        let v6 = src.is_ipv6();
        let id = *[1u16, 2, 0x1234, rng.r#gen()].choose(rng).unwrap();
        match rng.gen_range(0..100) {
            0..=29 => Packet::echo(src, dst, true, id),
            30..=49 => Packet::echo(src, dst, false, id),
            50..=59 => {
                let ty = if v6 {
                    *[130u8, 131, 132, 138, 139, 200, 255].choose(rng).unwrap()
                } else {
                    *[5u8, 9, 10, 13, 14, 17, 42, 255].choose(rng).unwrap()
                };
                Packet::icmp(src, dst, ty, 0, rng.r#gen())
            }
            60..=69 if v6 => {
                let ty = rng.gen_range(133..=137);
                let mut p = Packet::icmp(src, dst, ty, 0, [0; 4]);
                p.payload = (0..16).map(|_| rng.r#gen()).collect();
                p
            }
            _ if depth == 0 => self.random_icmp_error(rng, src, dst),
            _ => Packet::echo(src, dst, true, id),
        }
    }

    /// An ICMP error quoting a packet the error's destination (usually) sent.
    fn random_icmp_error(&self, rng: &mut impl Rng, src: IpAddr, dst: IpAddr) -> Packet {
        let v6 = src.is_ipv6();
        let mut inner = self.random_packet(rng, 1);
        // keep the quoted packet in the outer family
        if inner.is_v6() != v6 {
            inner.src = self.random_addr(rng, v6);
            inner.dst = self.random_addr(rng, v6);
            inner.exts.clear();
            inner.v4_options.clear();
            if let L4::Icmp { ty, .. } = &mut inner.l4 {
                *ty = if v6 { 128 } else { 8 };
            }
        }
        // the error usually goes back to the quoted packet's source
        let (outer_src, outer_dst) = match rng.gen_range(0..10) {
            0..=4 => (inner.dst, inner.src),
            5..=7 => (src, inner.src),
            _ => (src, dst),
        };
        if v6 && rng.gen_bool(0.1) {
            // quoted first or later fragment
            let offset = if rng.r#gen() {
                0
            } else {
                rng.gen_range(1..100)
            };
            let at = rng.gen_range(0..=inner.exts.len());
            inner.exts.insert(
                at,
                Ext::Fragment {
                    offset,
                    more: true,
                    id: 7,
                },
            );
        }
        let mut quoted = inner.ip_bytes();
        let l4_at = inner.l4_offset() - inner.l3_offset();
        let keep = match rng.gen_range(0..100) {
            0..=54 => l4_at + 8,
            55..=74 => quoted.len(),
            75..=84 => l4_at + rng.gen_range(0..8),
            _ => l4_at + rng.gen_range(8..=28),
        };
        quoted.truncate(keep.min(quoted.len()));
        if rng.gen_bool(0.03) && !v6 && !quoted.is_empty() {
            quoted[0] = 0x40 | rng.gen_range(0..5); // IHL < 5
        }
        let ty = if v6 {
            rng.gen_range(1..=4)
        } else {
            *[3u8, 3, 11, 12].choose(rng).unwrap()
        };
        let code = if !v6 && ty == 3 {
            rng.gen_range(0..=4)
        } else {
            0
        };
        let mut p = Packet::icmp_error(outer_src, outer_dst, ty, code, quoted);
        if let L4::Icmp { rest, .. } = &mut p.l4 {
            if (v6 && ty == 2) || (!v6 && ty == 3 && code == 4) {
                *rest = [0, 0, 0x05, 0xdc];
            }
        }
        p
    }
}

pub(super) fn random_exts(rng: &mut impl Rng) -> Vec<Ext> {
    let n = match rng.gen_range(0..100) {
        0..=54 => 0,
        55..=64 => 1,
        65..=72 => 2,
        73..=84 => rng.gen_range(3..=7),
        85..=90 => 8,
        91..=96 => 9,
        _ => 10,
    };
    let mut atomic_used = false;
    (0..n)
        .map(|_| {
            let size = if rng.gen_bool(0.8) {
                0
            } else {
                rng.gen_range(1..=3)
            };
            match rng.gen_range(0..100) {
                0..=24 => Ext::HopByHop(size),
                25..=49 => Ext::Routing(size),
                50..=74 => Ext::DestOpts(size),
                75..=94 => Ext::Ah(*[0u8, 1, 2, 4].choose(rng).unwrap()),
                _ if !atomic_used => {
                    atomic_used = true;
                    Ext::Fragment {
                        offset: 0,
                        more: false,
                        id: rng.r#gen(),
                    }
                }
                _ => Ext::DestOpts(size),
            }
        })
        .collect()
}

pub(super) fn random_v4_options(rng: &mut impl Rng) -> Vec<u8> {
    let words = rng.gen_range(1..=10);
    let len = 4 * words;
    match rng.gen_range(0..3) {
        0 => vec![1; len], // NOPs
        1 => {
            // record route, then end of list
            let mut o = vec![0u8; len];
            let rr = (len - 1).min(39) as u8;
            o[0] = 7;
            o[1] = rr - (rr - 3) % 4;
            o[2] = 4;
            o
        }
        _ => (0..len).map(|_| rng.r#gen()).collect(),
    }
}

/// Breaks a length field or cuts the frame (keeps at least 14 bytes).
pub(super) fn corrupt(rng: &mut impl Rng, p: &Packet, frame: &mut Vec<u8>) {
    let l3 = p.l3_offset();
    let l4 = p.l4_offset();
    match rng.gen_range(0..6) {
        0 | 1 => {
            if frame.len() > 14 {
                let n = rng.gen_range(14..frame.len());
                frame.truncate(n);
            }
        }
        2 if !p.is_v6() => {
            let header = 20 + p.v4_options.len();
            let total = u16::from_be_bytes([frame[l3 + 2], frame[l3 + 3]]);
            let new = match rng.gen_range(0..4) {
                0 => rng.gen_range(0..header as u16),
                1 => total.saturating_add(rng.gen_range(1..64)),
                2 => total
                    .saturating_sub(rng.gen_range(1..16))
                    .max(header as u16),
                _ => rng.r#gen(),
            };
            frame[l3 + 2..l3 + 4].copy_from_slice(&new.to_be_bytes());
        }
        3 if !p.is_v6() => {
            frame[l3] = 0x40 | *[0u8, 1, 4, 6, 15].choose(rng).unwrap();
        }
        2 | 3 => {
            let pl = u16::from_be_bytes([frame[l3 + 4], frame[l3 + 5]]);
            let new = if rng.r#gen() {
                pl.saturating_add(rng.gen_range(1..64))
            } else {
                rng.r#gen()
            };
            frame[l3 + 4..l3 + 6].copy_from_slice(&new.to_be_bytes());
        }
        4 if matches!(p.l4, L4::Tcp { .. }) && l4 + 13 < frame.len() => {
            frame[l4 + 12] = (rng.gen_range(0u8..16) << 4) | (frame[l4 + 12] & 0x0f);
        }
        _ => {
            if p.is_v6() && !p.exts.is_empty() && l3 + 41 < frame.len() {
                frame[l3 + 41] = rng.r#gen(); // first extension header's length byte
            } else if frame.len() > 14 {
                let n = rng.gen_range(14..frame.len());
                frame.truncate(n);
            }
        }
    }
}

/// One random frame for `policy` (a fresh `FrameGen`: no flow or fragment memory; use
/// `FrameGen` for sequences).
pub fn random_frame(rng: &mut impl Rng, policy: &Policy) -> Vec<u8> {
    FrameGen::new(policy).next(rng)
}

/// `n` frames from one `FrameGen`, so flows recur and later fragments follow first ones.
pub fn random_frames(rng: &mut impl Rng, policy: &Policy, n: usize) -> Vec<Vec<u8>> {
    let mut g = FrameGen::new(policy);
    (0..n).map(|_| g.next(rng)).collect()
}

/// Flips, overwrites, appends or truncates a few bytes (headers most often). A frame of at least
/// 14 bytes stays at least 14 bytes long.
pub fn mutate(rng: &mut impl Rng, frame: &mut Vec<u8>) {
    if frame.is_empty() {
        return;
    }
    for _ in 0..rng.gen_range(1..=3) {
        let len = frame.len();
        let at = if rng.gen_bool(0.75) && len > 12 {
            rng.gen_range(12..len.min(100))
        } else {
            rng.gen_range(0..len)
        };
        match rng.gen_range(0..10) {
            0..=4 => frame[at] ^= rng.gen_range(1..=255u8),
            5..=6 => {
                frame[at] = *[
                    0u8, 0xff, 0x05, 0x45, 0x81, 0x86, 0x2c, 0x3c, 0x3a, 0x06, 0x11,
                ]
                .choose(rng)
                .unwrap();
            }
            7 => {
                if len > 14 {
                    let n = rng.gen_range(14..len);
                    frame.truncate(n);
                }
            }
            8 => frame.extend((0..rng.gen_range(1..16)).map(|_| rng.r#gen::<u8>())),
            _ => {
                // swap two header bytes
                let b = rng.gen_range(0..len);
                frame.swap(at, b);
            }
        }
    }
}

//! The flow mix: template frames for allowed and denied IPv4/IPv6 traffic of a synthetic
//! policy, and the generator loop that sends them with live frames.

use std::{net::IpAddr, time::Duration};

use anyhow::{Result, bail};
use sdn_loader::{
    dataplane::Dataplane,
    dataplane::generator::Burst,
    tools::frames::{Spec, build},
    tools::policies::{self, Shape},
};

/// What to send.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mix {
    /// Distinct flows per template (random source ports).
    pub(crate) flows: u32,
    /// Share of frames a filter that enforces the agreements must drop (0..=1).
    pub(crate) deny_share: f64,
    /// Share of IPv6 frames (0..=1).
    pub v6_share: f64,
    /// Frame size in bytes (without FCS), at least 64 (78 with IPv6 is rounded up).
    pub(crate) size: usize,
    /// Frames to send in all.
    pub(crate) packets: u64,
}

/// Agreements whose traffic the mix uses (templates per class).
const PAIRS: usize = 4;
/// Frames per live-frames run (the mix is interleaved at this granularity).
pub(crate) const CHUNK: u32 = 8_192;

/// One template frame and its share of the traffic.
pub(crate) struct Template {
    /// The frame, addressed to the hub's ingress.
    pub(crate) frame: Vec<u8>,
    /// Transport header offset.
    pub l4_offset: u32,
    /// Share of all frames.
    pub(crate) share: f64,
    /// Whether an agreement allows it.
    pub(crate) allowed: bool,
    /// IPv6.
    pub v6: bool,
}

/// Sets MACs, pads to `size`, fixes IP lengths and the IPv4 header checksum.
fn finish(mut f: Vec<u8>, size: usize, dst_mac: [u8; 6], src_mac: [u8; 6]) -> Vec<u8> {
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    // The frame as seen on the wire without FCS: size - 4.
    let len = size.saturating_sub(4).max(f.len());
    f.resize(len, 0);
    if f[12..14] == [0x08, 0x00] {
        let tot = (len - 14) as u16;
        f[16..18].copy_from_slice(&tot.to_be_bytes());
        f[24..26].copy_from_slice(&[0, 0]);
        let mut sum = 0u32;
        for w in f[14..34].chunks(2) {
            sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        f[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    } else {
        let payload = (len - 54) as u16;
        f[18..20].copy_from_slice(&payload.to_be_bytes());
    }
    f
}

/// Templates for `shape`'s first agreements: allowed and denied (a port the agreement does
/// not allow), IPv4 and IPv6 (agreements whose client and service have IPv6 addresses).
pub(crate) fn templates(
    shape: &Shape,
    mix: &Mix,
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
) -> Result<Vec<Template>> {
    let mut out = Vec::new();
    let classes = [
        (false, true, (1.0 - mix.v6_share) * (1.0 - mix.deny_share)),
        (false, false, (1.0 - mix.v6_share) * mix.deny_share),
        (true, true, mix.v6_share * (1.0 - mix.deny_share)),
        (true, false, mix.v6_share * mix.deny_share),
    ];
    for (v6, allowed, share) in classes {
        if share <= 0.0 {
            continue;
        }
        let mut pairs = Vec::new();
        let mut k = 0;
        while pairs.len() < PAIRS && k < shape.agreements {
            let (c, s) = policies::agreement_pair(k, shape);
            k += 1;
            // Client c and service s have IPv6 addresses when both are multiples of 5.
            if !v6 || (c % 5 == 0 && s % 5 == 0) {
                pairs.push((c, s));
            }
        }
        if pairs.is_empty() {
            bail!("no agreement of this policy has IPv6 on both sides; use --v6-share 0");
        }
        for &(c, s) in &pairs {
            let (src, dst, port) = if v6 {
                let src = match policies::client_prefix6(c) {
                    ipnet::IpNet::V6(n) => IpAddr::V6(n.network()),
                    ipnet::IpNet::V4(_) => bail!("not IPv6"),
                };
                (src, IpAddr::V6(policies::service_addr6(s)), 443)
            } else {
                (
                    IpAddr::V4(policies::client_addr(c)),
                    IpAddr::V4(policies::service_addr(s)),
                    policies::service_port(s),
                )
            };
            let frame = build(&Spec {
                src,
                dst,
                protocol: 6,
                sport: 10_000,
                dport: if allowed { port } else { port.wrapping_add(1) },
                vlan: None,
                tcp_flags: 0x10,
                ext_headers: 0,
            })?;
            out.push(Template {
                frame: finish(frame, mix.size, dst_mac, src_mac),
                l4_offset: if v6 { 54 } else { 34 },
                share: share / pairs.len() as f64,
                allowed,
                v6,
            });
        }
    }
    Ok(out)
}

/// Sends `mix.packets` frames in chunks, each template in proportion to its share
/// (deficit round robin), out of `ifindex`. Returns frames sent and the wall time.
pub(crate) fn send(
    generator: &mut Dataplane,
    templates: &[Template],
    mix: &Mix,
    ifindex: u32,
) -> Result<(u64, Duration)> {
    let mut credit = vec![0.0f64; templates.len()];
    let mut sent = 0u64;
    let mut wall = Duration::ZERO;
    while sent < mix.packets {
        for (c, t) in credit.iter_mut().zip(templates) {
            *c += t.share;
        }
        let Some((i, _)) = credit.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)) else {
            bail!("no templates");
        };
        credit[i] -= 1.0;
        let t = &templates[i];
        let count = CHUNK.min(u32::try_from(mix.packets - sent).unwrap_or(CHUNK));
        wall += generator.live_frames(
            &Burst {
                frame: &t.frame,
                count,
                flows: mix.flows,
                first_port: 10_000,
                l4_offset: t.l4_offset,
            },
            ifindex,
        )?;
        sent += u64::from(count);
    }
    Ok((sent, wall))
}

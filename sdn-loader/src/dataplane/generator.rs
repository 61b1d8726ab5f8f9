//! In-kernel packet generation for benchmarks: BPF_PROG_RUN with `BPF_F_TEST_XDP_LIVE_FRAMES`
//! runs the `sdn_gen` program on a template frame `repeat` times, and the kernel really
//! transmits every frame the program returns XDP_TX for, out of the interface named in the
//! run's context (`struct xdp_md`'s `ingress_ifindex`). `sdn_gen` restores the template's
//! headers in every frame (live frames recycle pages without re-initialising them: a page
//! forwarded by the hub comes back with the hub's Ethernet header and a decremented TTL) and
//! gives each frame a random source port out of `flows` ports, so one template makes many
//! flows.
//!
//! aya 0.14's `TestRunOptions` carries `ctx_in` and `TestRunAttrs::xdp_live_frames`, so no
//! raw bpf(2) call is needed. Kernel 5.18 or newer.

use std::time::{Duration, Instant};

use aya::{
    maps::{Array, MapError},
    programs::{ProgramError, TestRun, TestRunAttrs, TestRunOptions, Xdp, xdp::XdpMode},
};
use sdn_common::{GEN_HEADER_MAP, GEN_MAP, generator};

use crate::dataplane::{Dataplane, DataplaneError, Program};

/// Errors of the generator.
#[derive(Debug, thiserror::Error)]
pub enum GeneratorError {
    /// The benchmark object could not be loaded.
    #[error("loading the benchmark programs")]
    Load(#[source] Box<DataplaneError>),
    /// A program or map is missing from the object.
    #[error("{0} missing from the XDP object")]
    Missing(&'static str),
    /// Writing the generator's settings or header template failed.
    #[error("generator maps")]
    Map(#[source] MapError),
    /// The program could not be found, attached or run.
    #[error("program {name}")]
    Program {
        /// Program name.
        name: &'static str,
        /// Cause.
        #[source]
        source: ProgramError,
    },
    /// The template's transport header is not at an offset the generator can rewrite.
    #[error(
        "template frame: the transport header must be at offset 34 (IPv4, no options, no VLAN) or 54 (IPv6, no extension headers); got {0}"
    )]
    Offset(u32),
}

/// What one live-frames run sends.
#[derive(Clone, Copy, Debug)]
pub struct Burst<'a> {
    /// The template frame (Ethernet onwards, addresses of the receiving interface).
    pub frame: &'a [u8],
    /// Frames to send.
    pub count: u32,
    /// Distinct source ports (flows) to spread the frames over (0 or 1: the template's own).
    pub flows: u32,
    /// First source port of the range.
    pub first_port: u16,
    /// Offset of the transport header in `frame` (34 for IPv4, 54 for IPv6).
    pub l4_offset: u32,
}

/// Frames the kernel prepares per batch (the kernel's default is 64).
pub const BATCH: u32 = 64;

/// `struct xdp_md` as the kernel reads it from `ctx_in`: `data` 0, `data_end` the frame's
/// length (the kernel insists), `ingress_ifindex` the interface to transmit on.
fn xdp_md(len: usize, ifindex: u32) -> [u8; 24] {
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&(len as u32).to_ne_bytes());
    ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
    ctx
}

impl Dataplane {
    /// An XDP program of the object, to attach it as a benchmark reference.
    pub fn xdp_mut(&mut self, which: Program) -> Result<&mut Xdp, GeneratorError> {
        let name = which.name();
        self.object_of(which)
            .map_err(|e| GeneratorError::Load(Box::new(e)))?
            .program_mut(name)
            .ok_or(GeneratorError::Missing(name))?
            .try_into()
            .map_err(|source| GeneratorError::Program { name, source })
    }

    /// Attaches one of the object's programs to `iface` in native (driver) mode, in the
    /// calling thread's network namespace. The attachment lasts as long as this instance.
    pub fn attach_native(&mut self, which: Program, iface: &str) -> Result<(), GeneratorError> {
        let name = which.name();
        self.xdp_mut(which)?
            .attach(iface, XdpMode::Driver)
            .map(drop)
            .map_err(|source| GeneratorError::Program { name, source })
    }

    /// Sends `burst` out of interface `ifindex` (in the calling thread's network namespace)
    /// with live frames. Returns the wall time of the run: the kernel's own `duration` is
    /// not filled in for live frames.
    pub fn live_frames(
        &mut self,
        burst: &Burst<'_>,
        ifindex: u32,
    ) -> Result<Duration, GeneratorError> {
        if !matches!(burst.l4_offset, 34 | 54) {
            return Err(GeneratorError::Offset(burst.l4_offset));
        }
        {
            let map = self
                .object_of(Program::Gen)
                .map_err(|e| GeneratorError::Load(Box::new(e)))?
                .map_mut(GEN_MAP)
                .ok_or(GeneratorError::Missing(GEN_MAP))?;
            let mut settings: Array<_, u32> = Array::try_from(map).map_err(GeneratorError::Map)?;
            for (i, v) in [
                (generator::FLOWS, burst.flows),
                (generator::L4_OFFSET, burst.l4_offset),
                (generator::FIRST_PORT, u32::from(burst.first_port)),
            ] {
                settings.set(i, v, 0).map_err(GeneratorError::Map)?;
            }
        }
        {
            let map = self
                .object_of(Program::Gen)
                .map_err(|e| GeneratorError::Load(Box::new(e)))?
                .map_mut(GEN_HEADER_MAP)
                .ok_or(GeneratorError::Missing(GEN_HEADER_MAP))?;
            let mut header_map: Array<_, [u8; generator::HEADER_BYTES]> =
                Array::try_from(map).map_err(GeneratorError::Map)?;
            let mut header = [0u8; generator::HEADER_BYTES];
            let n = burst.frame.len().min(generator::HEADER_BYTES);
            header[..n].copy_from_slice(&burst.frame[..n]);
            header_map.set(0, header, 0).map_err(GeneratorError::Map)?;
        }
        let ctx = xdp_md(burst.frame.len(), ifindex);
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(burst.frame);
        opts.ctx_in = Some(&ctx);
        opts.repeat = burst.count;
        opts.attrs = TestRunAttrs::new().xdp_live_frames(BATCH);
        let name = Program::Gen.name();
        let prog = self.xdp_mut(Program::Gen)?;
        if prog.fd().is_err() {
            prog.load()
                .map_err(|source| GeneratorError::Program { name, source })?;
        }
        let t0 = Instant::now();
        prog.test_run(opts)
            .map_err(|source| GeneratorError::Program { name, source })?;
        Ok(t0.elapsed())
    }
}

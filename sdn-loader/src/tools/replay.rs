//! Replay: frames from a pcap/pcapng file, in order, through a private, unattached instance of
//! the real XDP program (BPF_PROG_TEST_RUN) loaded with a policy. Also the engine behind
//! `explain` and the tests.

use std::{fs::File, io::BufReader, path::Path};

use chrono::NaiveDate;
use pcap_file::{
    DataLink,
    pcap::PcapReader,
    pcapng::{Block, PcapNgReader},
};
use sdn_common::{action, direction, flags, reason};
use serde::Serialize;

use crate::{
    compile::{CompileError, compile},
    dataplane::{Capacities, Dataplane, DataplaneError},
    policy::Policy,
};

/// Smallest frame the kernel will run (an Ethernet header).
pub const MIN_FRAME: usize = 14;

/// Largest frame the test run is known to take whole: 4,096 - 256 (headroom) - 320 (shared
/// info) bytes linear plus 17 fragments of 4,096. A frame above a page is split that way, and
/// the program reads its length with `bpf_xdp_get_buff_len`, so it is judged as a linear frame
/// of that size on an attached interface would be.
pub const MAX_JUDGED_FRAME: usize = LINEAR_FRAME + 17 * 4_096;

/// Frames up to this size are always linear in a test run; a failure below it is a real one.
const LINEAR_FRAME: usize = 3_520;

/// Errors of replay and explain.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The policy does not compile.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// The data plane failed.
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    /// The capture could not be opened.
    #[error("cannot open capture {path}")]
    Open {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The capture could not be read.
    #[error("{path}: not a pcap or pcapng file, or cut short ({message})")]
    Capture {
        /// File.
        path: String,
        /// What the reader said.
        message: String,
    },
    /// A record of the capture could not be read.
    #[error(
        "{path}: frame {index} (0-based) cannot be read, the file may be cut short ({message}); no frame was run"
    )]
    Record {
        /// File.
        path: String,
        /// Index of the bad frame.
        index: usize,
        /// What the reader said.
        message: String,
    },
    /// A pcapng packet block names an interface its section has not described, so its link
    /// type is unknown (it is not taken to be Ethernet).
    #[error(
        "{path}: pcapng block {block} (counting the first section header as block 0) is a packet of interface {interface}, but its section has {described} interface description block(s) before it: the link type is unknown; no frame was run"
    )]
    NoInterface {
        /// File.
        path: String,
        /// Index of the packet block in the file.
        block: usize,
        /// The interface the packet names (0 for a simple packet block).
        interface: u32,
        /// Interface description blocks seen in the section so far.
        described: usize,
    },
    /// The capture is not of Ethernet frames.
    #[error("{path}: link type {link} is not Ethernet; the filter sees Ethernet frames")]
    LinkType {
        /// File.
        path: String,
        /// The capture's link type.
        link: String,
    },
    /// A frame larger than the kernel's test run takes (a linear part of about 3.5 KB plus
    /// 17 page fragments, ~73 KB: more than any interface MTU carries). The frame is not
    /// judged; a replay reports it and goes on with the next.
    #[error(
        "frame {index} (0-based, {bytes} bytes) was not judged: the kernel's test run refused it ({source}); frames of up to {MAX_JUDGED_FRAME} bytes, more than any interface MTU carries, are judged"
    )]
    TooLarge {
        /// Frame index.
        index: usize,
        /// Frame size.
        bytes: usize,
        /// What the kernel said.
        #[source]
        source: DataplaneError,
    },
    /// The kernel returned an action the program never returns on purpose.
    #[error("frame {index}: the XDP program returned action {action} (aborted or unknown)")]
    BadAction {
        /// Frame index.
        index: usize,
        /// Action.
        action: u32,
    },
}

/// Direction a packet counted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Client to service.
    Forward,
    /// Service to client.
    Reply,
}

/// Pass or drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// XDP_PASS.
    Pass,
    /// XDP_DROP.
    Drop,
}

/// One frame's verdict, as the program decided and recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// 0-based frame index.
    pub index: usize,
    /// Pass or drop.
    pub verdict: Action,
    /// Agreement the frame counted to.
    pub agreement: Option<u32>,
    /// Direction it counted in.
    pub direction: Option<Direction>,
    /// Why it passed or dropped (`sdn_common::reason` names).
    pub reason: &'static str,
    /// Whether it started a transaction.
    pub transaction: bool,
}

impl Verdict {
    /// Whether the frame passed.
    pub fn passed(&self) -> bool {
        self.verdict == Action::Pass
    }
}

/// A private program instance loaded with one policy.
pub struct Replayer {
    dp: Dataplane,
    next_index: usize,
}

impl Replayer {
    /// Compiles `policy` as in force on `today` and loads it into a private instance.
    pub fn new(policy: &Policy, today: NaiveDate) -> Result<Self, ReplayError> {
        let compiled = compile(policy, today)?;
        let mut dp = Dataplane::load_private(Capacities::for_replay(&compiled))?;
        dp.apply(&compiled)?;
        dp.set_flags(flags::RECORD_LAST, 0)?;
        Ok(Self { dp, next_index: 0 })
    }

    /// The data plane (counters, stats).
    pub fn dataplane(&self) -> &Dataplane {
        &self.dp
    }

    /// Runs the next frame through the program.
    pub fn judge(&mut self, frame: &[u8]) -> Result<Verdict, ReplayError> {
        let index = self.next_index;
        self.next_index += 1;
        if frame.len() < MIN_FRAME {
            // BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header; a NIC never
            // hands such a frame to XDP either.
            return Ok(Verdict {
                index,
                verdict: Action::Drop,
                agreement: None,
                direction: None,
                reason: reason::name(reason::TRUNCATED),
                transaction: false,
            });
        }
        let r = match self.dp.run_frame(frame) {
            Ok(r) => r,
            Err(source) if frame.len() > LINEAR_FRAME => {
                return Err(ReplayError::TooLarge {
                    index,
                    bytes: frame.len(),
                    source,
                });
            }
            Err(e) => return Err(e.into()),
        };
        let verdict = match r.action {
            action::PASS => Action::Pass,
            action::DROP => Action::Drop,
            other => {
                return Err(ReplayError::BadAction {
                    index,
                    action: other,
                });
            }
        };
        let l = r.last;
        Ok(Verdict {
            index,
            verdict,
            agreement: (l.has_agreement != 0).then_some(l.agreement),
            direction: match l.direction {
                direction::FORWARD => Some(Direction::Forward),
                direction::REPLY => Some(Direction::Reply),
                _ => None,
            },
            reason: reason::name(l.reason),
            transaction: l.transaction != 0,
        })
    }
}

/// Reads every frame of a pcap or pcapng file, in order. The capture must be of Ethernet
/// frames, and every pcapng packet must name an interface described before it in its
/// section (one without is refused, not taken as Ethernet); a damaged record fails the whole read (naming the record), so that a replay never
/// silently judges only part of a file.
pub fn read_capture(path: &Path) -> Result<Vec<Vec<u8>>, ReplayError> {
    let name = path.display().to_string();
    let open = || {
        File::open(path).map_err(|source| ReplayError::Open {
            path: name.clone(),
            source,
        })
    };
    let record_err = |index: usize, e: pcap_file::PcapError| ReplayError::Record {
        path: name.clone(),
        index,
        message: e.to_string(),
    };
    let link_err = |link: DataLink| ReplayError::LinkType {
        path: name.clone(),
        link: format!("{link:?}"),
    };
    let mut frames = Vec::new();
    if let Ok(mut r) = PcapReader::new(BufReader::new(open()?)) {
        let link = r.header().datalink;
        if link != DataLink::ETHERNET {
            return Err(link_err(link));
        }
        while let Some(p) = r.next_packet() {
            frames.push(
                p.map_err(|e| record_err(frames.len(), e))?
                    .data
                    .into_owned(),
            );
        }
        return Ok(frames);
    }
    let mut r = PcapNgReader::new(BufReader::new(open()?)).map_err(|e| ReplayError::Capture {
        path: name.clone(),
        message: e.to_string(),
    })?;
    // Interfaces described in the current section (a section header starts a new list):
    // a packet must name one of them, or its link type is unknown.
    let mut described = 0usize;
    let mut block = 0usize;
    while let Some(b) = r.next_block() {
        block += 1;
        let b = b.map_err(|e| record_err(frames.len(), e))?;
        let interface = match &b {
            Block::EnhancedPacket(p) => Some(p.interface_id),
            Block::Packet(p) => Some(u32::from(p.interface_id)),
            Block::SimplePacket(_) => Some(0),
            _ => None,
        };
        if let Some(interface) =
            interface.filter(|&i| usize::try_from(i).is_ok_and(|i| i >= described))
        {
            return Err(ReplayError::NoInterface {
                path: name.clone(),
                block,
                interface,
                described,
            });
        }
        match b {
            Block::SectionHeader(_) => described = 0,
            Block::InterfaceDescription(i) if i.linktype != DataLink::ETHERNET => {
                return Err(link_err(i.linktype));
            }
            Block::InterfaceDescription(_) => described += 1,
            Block::EnhancedPacket(p) => frames.push(p.data.into_owned()),
            Block::SimplePacket(p) => frames.push(p.data.into_owned()),
            Block::Packet(p) => frames.push(p.data.into_owned()),
            _ => {}
        }
    }
    Ok(frames)
}

/// Counts of a replay, for the summary line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Frames run.
    pub frames: usize,
    /// Passed.
    pub passed: usize,
    /// Dropped.
    pub dropped: usize,
    /// Transactions started.
    pub transactions: usize,
    /// Frames the kernel's test run would not take ([`ReplayError::TooLarge`]).
    pub not_judged: usize,
}

impl Summary {
    /// Adds one verdict.
    pub fn add(&mut self, v: &Verdict) {
        self.frames += 1;
        if v.passed() {
            self.passed += 1;
        } else {
            self.dropped += 1;
        }
        self.transactions += usize::from(v.transaction);
    }
}

//! Attaching to interfaces: network namespaces, pinned program and links, detaching.
//!
//! Layout under the pin directory (default `/sys/fs/bpf/sdn`): `maps/<MAP>` (policy and
//! counters), `prog` (the attached program), `links/<ifname>` (one bpf_link per interface).
//! The links keep the program attached after the loader exits; a new `run` re-uses the maps
//! (counters kept) and swaps the program into the existing links atomically.

use std::{
    fs::File,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

use aya::programs::{
    ProgramError,
    links::{FdLink, PinnedLink},
    xdp::{XdpLink, XdpMode},
};

use crate::{dataplane::Dataplane, paths};

/// Errors of attaching and detaching.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The network namespace could not be entered.
    #[error("entering network namespace {name:?} ({path})")]
    Netns {
        /// Namespace name.
        name: String,
        /// Its file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// No bpffs where pins go.
    #[error("{0} is not on a BPF filesystem (mount it with: mount -t bpf bpf /sys/fs/bpf)")]
    NoBpffs(PathBuf),
    /// The interface does not exist.
    #[error("interface {0:?} does not exist (in this network namespace)")]
    NoInterface(String),
    /// Native mode is not supported.
    #[error("interface {iface:?}: the driver refused native XDP; try --mode generic")]
    NativeRefused {
        /// Interface.
        iface: String,
        /// Cause.
        #[source]
        source: ProgramError,
    },
    /// Attaching failed otherwise.
    #[error("interface {iface:?}: attaching the XDP program")]
    Attach {
        /// Interface.
        iface: String,
        /// Cause.
        #[source]
        source: ProgramError,
    },
    /// A pin of a link or of the program could not be made, opened or removed.
    #[error("{path}: {what}")]
    Link {
        /// Pin path.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// Cause (aya's link or pin error).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Pin file operations.
    #[error("{path}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Data-plane errors.
    #[error(transparent)]
    Dataplane(#[from] crate::dataplane::DataplaneError),
    /// The pin tree is refused or cannot be made.
    #[error(transparent)]
    PinTree(#[from] crate::dataplane::pins::PinTreeError),
}

/// The network namespace the calling thread was in before [`enter_netns`]; it goes back
/// there when this is dropped.
#[derive(Debug)]
pub struct NetnsGuard {
    original: File,
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        // SAFETY: setns on a namespace file descriptor we own.
        if unsafe { libc::setns(self.original.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            tracing::warn!(
                "cannot return to the original network namespace: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Moves the calling thread into the named network namespace (`ip netns` name) until the
/// returned guard is dropped. Only the network namespace changes: pins still go to the host's
/// bpffs. Interfaces are looked up and links created inside; sockets (the database) must be
/// opened outside, where the host's addresses are.
pub fn enter_netns(name: &str) -> Result<NetnsGuard, AttachError> {
    let path = Path::new(paths::NETNS_DIR).join(name);
    let err = |source| AttachError::Netns {
        name: name.to_owned(),
        path: path.clone(),
        source,
    };
    let original = File::open("/proc/thread-self/ns/net").map_err(err)?;
    let f = File::open(&path).map_err(err)?;
    // SAFETY: setns on a namespace file descriptor we own; it changes this thread only.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    Ok(NetnsGuard { original })
}

/// Checks that every interface exists (before anything is loaded or pinned).
pub fn check_interfaces(ifaces: &[String]) -> Result<(), AttachError> {
    for iface in ifaces {
        let name = std::ffi::CString::new(iface.as_bytes())
            .map_err(|_| AttachError::NoInterface(iface.clone()))?;
        // SAFETY: a valid C string; the call only reads it.
        if unsafe { libc::if_nametoindex(name.as_ptr()) } == 0 {
            return Err(AttachError::NoInterface(iface.clone()));
        }
    }
    Ok(())
}

/// Checks that `dir`'s nearest existing ancestor is on bpffs.
pub fn check_bpffs(dir: &Path) -> Result<(), AttachError> {
    const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
    let mut p = dir;
    while !p.exists() {
        match p.parent() {
            Some(parent) => p = parent,
            None => return Err(AttachError::NoBpffs(dir.to_path_buf())),
        }
    }
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| AttachError::NoBpffs(dir.to_path_buf()))?;
    // SAFETY: statfs fills the zeroed struct; the path is a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c.as_ptr(), &raw mut st) };
    if rc != 0 || st.f_type as i64 != BPF_FS_MAGIC {
        return Err(AttachError::NoBpffs(dir.to_path_buf()));
    }
    Ok(())
}

fn link_path(pin_dir: &Path, iface: &str) -> PathBuf {
    pin_dir.join(paths::LINKS_SUBDIR).join(iface)
}

/// How an interface was attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attached {
    /// A new link was created and pinned.
    New,
    /// The existing pinned link now runs the new program (atomic replacement).
    Replaced,
}

/// The error of a failed attach (or link hand-over) to `iface`.
fn attach_failed(iface: &str) -> impl Fn(ProgramError) -> AttachError + '_ {
    move |source| AttachError::Attach {
        iface: iface.to_owned(),
        source,
    }
}

/// Attaches the loaded program to `iface` (or swaps it into the interface's pinned link) and
/// pins the link and the program.
pub fn attach(
    dp: &mut Dataplane,
    pin_dir: &Path,
    iface: &str,
    mode: XdpMode,
) -> Result<Attached, AttachError> {
    crate::dataplane::pins::secure_tree(pin_dir)?;
    let lpath = link_path(pin_dir, iface);
    if lpath.exists() {
        if let Some(problem) = crate::dataplane::pins::link_problem(&lpath) {
            // A link whose interface went away (deleted and created again, say) holds no
            // interface: swapping a program into it would leave the new interface unfiltered.
            tracing::warn!("{}: {problem}; attaching anew", lpath.display());
            std::fs::remove_file(&lpath).map_err(|source| AttachError::Io {
                path: lpath.clone(),
                source,
            })?;
        }
    }
    let program = dp.program_mut()?;
    let how = if lpath.exists() {
        let pinned = PinnedLink::from_pin(&lpath).map_err(|e| AttachError::Link {
            path: lpath.clone(),
            what: "opening the pinned link",
            source: Box::new(e),
        })?;
        let fd_link: FdLink = pinned.into();
        let link = XdpLink::try_from(fd_link).map_err(|e| AttachError::Link {
            path: lpath.clone(),
            what: "the pinned link is not an XDP link",
            source: Box::new(e),
        })?;
        let id = program.attach_to_link(link).map_err(attach_failed(iface))?;
        // The pin still holds the link; closing our descriptor leaves it attached.
        let link = program.take_link(id).map_err(attach_failed(iface))?;
        drop(link);
        Attached::Replaced
    } else {
        let id = program.attach(iface, mode).map_err(|source| match source {
            ProgramError::UnknownInterface { .. } => AttachError::NoInterface(iface.to_owned()),
            source if mode == XdpMode::Driver => AttachError::NativeRefused {
                iface: iface.to_owned(),
                source,
            },
            source => attach_failed(iface)(source),
        })?;
        let link = program.take_link(id).map_err(attach_failed(iface))?;
        let fd_link = FdLink::try_from(link).map_err(|e| AttachError::Link {
            path: lpath.clone(),
            what: "the kernel gave no bpf_link (XDP links need Linux 5.9+)",
            source: Box::new(e),
        })?;
        fd_link.pin(&lpath).map_err(|e| AttachError::Link {
            path: lpath.clone(),
            what: "pinning the link",
            source: Box::new(e),
        })?;
        Attached::New
    };
    for (file, logger) in [(paths::PROGRAM_PIN, false), (paths::LOGGER_PIN, true)] {
        let ppath = pin_dir.join(file);
        if ppath.exists() {
            std::fs::remove_file(&ppath).map_err(|source| AttachError::Io {
                path: ppath.clone(),
                source,
            })?;
        }
        let prog = if logger {
            dp.logger_mut()?
        } else {
            dp.program_mut()?
        };
        prog.pin(&ppath).map_err(|e| AttachError::Link {
            path: ppath.clone(),
            what: "pinning the program",
            source: Box::new(e),
        })?;
    }
    crate::dataplane::pins::record_interface(pin_dir, iface)?;
    Ok(how)
}

/// Detaches from `iface` by removing its pinned link. Returns false when none was pinned.
pub fn detach(pin_dir: &Path, iface: &str) -> Result<bool, AttachError> {
    let lpath = link_path(pin_dir, iface);
    // Asked for by an operator: no longer configured, so no alarm.
    crate::dataplane::pins::forget_interface(pin_dir, iface)?;
    if !lpath.exists() {
        return Ok(false);
    }
    let pinned = PinnedLink::from_pin(&lpath).map_err(|e| AttachError::Link {
        path: lpath.clone(),
        what: "opening the pinned link",
        source: Box::new(e),
    })?;
    // Unpinning drops the last reference: the kernel detaches the program.
    pinned.unpin().map_err(|e| AttachError::Link {
        path: lpath.clone(),
        what: "unpinning the link",
        source: Box::new(e),
    })?;
    Ok(true)
}

/// Interfaces with a pinned link.
pub fn attached_interfaces(pin_dir: &Path) -> Vec<String> {
    crate::dataplane::pins::names_in(&pin_dir.join(paths::LINKS_SUBDIR))
}

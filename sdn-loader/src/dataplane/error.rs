//! What can go wrong loading, applying and reading the data plane.

#[allow(clippy::wildcard_imports, reason = "the data plane's shared imports")]
use super::*;

/// Errors of the data plane.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// The binary was built without the XDP program.
    #[error(
        "this sdn-loader was built without the XDP program (the BPF toolchain was missing): run scripts/setup.sh, then rebuild"
    )]
    NoObject,
    /// The kernel lacks something the data plane needs (one sentence per missing feature).
    #[error("{}", .0.refusal().unwrap_or_default())]
    Kernel(Box<crate::dataplane::probe::Report>),
    /// Loading the object failed.
    #[error("loading the XDP object")]
    Load(#[from] aya::EbpfError),
    /// The verifier or the kernel refused the program.
    #[error("loading the XDP program into the kernel")]
    Program(#[from] ProgramError),
    /// A map operation failed.
    #[error("map {map}")]
    Map {
        /// Map name.
        map: &'static str,
        /// Cause.
        #[source]
        source: MapError,
    },
    /// The verifier or the kernel refused one of the programs.
    #[error("loading the XDP program {name} into the kernel")]
    ProgramLoad {
        /// Program name.
        name: &'static str,
        /// Cause (with the verifier log).
        #[source]
        source: ProgramError,
    },
    /// A program in the object is missing.
    #[error("program {0} missing from the XDP object")]
    MissingProgram(&'static str),
    /// A map in the object is missing.
    #[error("map {0} missing from the XDP object")]
    MissingMap(&'static str),
    /// The new policy does not fit.
    #[error(
        "the policy does not fit the data plane: {what} needs {needed} entries, {available} are free (capacity {capacity}); nothing was changed"
    )]
    Full {
        /// Which map.
        what: &'static str,
        /// Entries needed.
        needed: usize,
        /// Free entries.
        available: usize,
        /// Map capacity.
        capacity: u32,
    },
    /// Too many agreements for the counter slots.
    #[error(
        "{needed} agreements need counter slots but only {capacity} exist; nothing was changed"
    )]
    SlotsFull {
        /// Slots needed.
        needed: usize,
        /// Slots in the map.
        capacity: u32,
    },
    /// A test run failed.
    #[error("BPF_PROG_TEST_RUN")]
    TestRun(#[source] ProgramError),
    /// Getting the CPU count failed.
    #[error("reading the possible CPUs")]
    Cpus(#[source] std::io::Error),
    /// A pinned map left by a build whose map layout differs from this one's.
    #[error(
        "the pinned map {path} was made by a different build of sdn-filter (key {found_key} and value {found_value} bytes; this build needs {want_key} and {want_value}): detach with `sdn-loader detach --iface IF --purge` (that drops the pinned counters: collect KPIs first), then run again"
    )]
    PinMismatch {
        /// The pin.
        path: PathBuf,
        /// Key size of the pinned map.
        found_key: u32,
        /// Value size of the pinned map.
        found_value: u32,
        /// Key size this build uses.
        want_key: u32,
        /// Value size this build uses.
        want_value: u32,
    },
    /// The pin tree is refused or cannot be made.
    #[error(transparent)]
    PinTree(#[from] crate::dataplane::pins::PinTreeError),
    /// Pinning a map the benchmark object shares with the filter failed (is the BPF
    /// filesystem mounted at /sys/fs/bpf?).
    #[error("pinning {path} for the benchmark programs")]
    BenchPin {
        /// The pin.
        path: PathBuf,
        /// Cause.
        #[source]
        source: aya::pin::PinError,
    },
    /// Pin directory problems.
    #[error("pin directory {path}")]
    PinDir {
        /// The directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

pub(super) fn map_err(map: &'static str) -> impl FnOnce(MapError) -> DataplaneError {
    move |source| DataplaneError::Map { map, source }
}

/// What to tell a user whose command failed for want of privileges: `Some` when a cause
/// in `error`'s chain is "operation not permitted" or "permission denied" (creating maps,
/// loading programs, reading pins owned by root).
pub fn permission_hint(error: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(io.raw_os_error(), Some(libc::EPERM | libc::EACCES))
        {
            return Some(PERMISSION_HINT);
        }
        cause = e.source();
    }
    None
}

/// The privileges the data plane needs, in one sentence.
pub const PERMISSION_HINT: &str = "the data plane needs root, or the capabilities CAP_BPF, \
    CAP_NET_ADMIN and CAP_PERFMON (CAP_SYS_ADMIN on kernels before 5.8); the pin tree is \
    readable by root only";

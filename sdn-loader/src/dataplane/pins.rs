//! The pin tree's ownership and what it says about the interfaces the filter is meant to run
//! on.
//!
//! Whoever can write a directory on the way to a pin can unlink it, and unlinking a link's pin
//! detaches the filter. bpffs mounted without a mode is world-writable (1777), so the loader
//! owns its tree: it creates the pin directory and its subdirectories 0700, and refuses to use
//! one that another user owns or that group or others can write, or whose ancestors another
//! user could rename (a writable ancestor without the sticky bit).
//!
//! The interfaces a `run` was asked to enforce on are recorded as empty directories under
//! `ifaces/` beside the links (bpffs holds directories and pins, nothing else), so `stats`,
//! `/metrics` and the daemon can tell when one of them has no program attached, whoever
//! removed it. `detach` forgets an interface.

use std::{
    ffi::CString,
    os::unix::fs::{DirBuilderExt as _, MetadataExt as _},
    path::{Path, PathBuf},
};

use crate::paths;

/// Subdirectory that records the interfaces the filter is configured on.
pub const IFACES_SUBDIR: &str = "ifaces";

/// Why a pin tree is refused or cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum PinTreeError {
    /// A directory of the tree belongs to another user.
    #[error(
        "{path} is owned by uid {owner}, not by this process (uid {euid}): another user could \
         unlink the filter's pins and so detach it; remove it (as root: rm -r {path}) or choose \
         another --pin-dir"
    )]
    Owner {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// This process's effective uid.
        euid: u32,
    },
    /// A directory of the tree, or an ancestor without the sticky bit, is writable by others.
    #[error(
        "{path} is writable by group or others (mode {mode:04o}): they could unlink the \
         filter's pins and so detach it; fix it with `chmod go-w {path}` (mount bpffs with \
         -o mode=0700) or choose another --pin-dir"
    )]
    Writable {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Something that should be a directory is not one (a symbolic link, a pin).
    #[error("{path} is not a directory (symbolic links are not followed in the pin tree)")]
    NotDirectory {
        /// The path.
        path: PathBuf,
    },
    /// A file operation failed.
    #[error("{path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PinTreeError + '_ {
    move |source| PinTreeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Checks a directory this process must own alone.
fn check_own(path: &Path) -> Result<(), PinTreeError> {
    let md = std::fs::symlink_metadata(path).map_err(io(path))?;
    if !md.file_type().is_dir() {
        return Err(PinTreeError::NotDirectory {
            path: path.to_path_buf(),
        });
    }
    let me = euid();
    if md.uid() != me {
        return Err(PinTreeError::Owner {
            path: path.to_path_buf(),
            owner: md.uid(),
            euid: me,
        });
    }
    if md.mode() & 0o022 != 0 {
        return Err(PinTreeError::Writable {
            path: path.to_path_buf(),
            mode: md.mode() & 0o7777,
        });
    }
    Ok(())
}

/// Checks an ancestor: owned by root or by us, and not writable by others unless sticky (then
/// others cannot rename or remove what we own in it).
fn check_ancestor(path: &Path) -> Result<(), PinTreeError> {
    let md = std::fs::metadata(path).map_err(io(path))?;
    let me = euid();
    if md.uid() != 0 && md.uid() != me {
        return Err(PinTreeError::Owner {
            path: path.to_path_buf(),
            owner: md.uid(),
            euid: me,
        });
    }
    if md.mode() & 0o022 != 0 && md.mode() & 0o1000 == 0 {
        return Err(PinTreeError::Writable {
            path: path.to_path_buf(),
            mode: md.mode() & 0o7777,
        });
    }
    Ok(())
}

/// Creates `path` 0700 when missing, then checks that this process owns it alone.
fn own_dir(path: &Path) -> Result<(), PinTreeError> {
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(path)(e)),
    }
    check_own(path)
}

/// Makes (or checks) the pin tree under `pin_dir`: the directory itself and its `maps/`,
/// `links/` and `ifaces/` subdirectories, each 0700 and owned by this process, and every
/// existing ancestor safe from other users.
///
/// # Errors
/// [`PinTreeError`] naming the directory and what is wrong with it; nothing is pinned then.
pub fn secure_tree(pin_dir: &Path) -> Result<(), PinTreeError> {
    // The nearest existing directory on the way; those above it must be safe from others,
    // those below it are made here.
    let mut missing = Vec::new();
    let mut existing = Some(pin_dir);
    while let Some(p) = existing.filter(|p| std::fs::symlink_metadata(p).is_err()) {
        missing.push(p);
        existing = p.parent().filter(|q| !q.as_os_str().is_empty());
    }
    let above = match existing {
        Some(p) if p == pin_dir => p.parent(),
        other => other,
    };
    for a in above
        .into_iter()
        .flat_map(Path::ancestors)
        .filter(|a| !a.as_os_str().is_empty())
    {
        check_ancestor(a)?;
    }
    for dir in missing.iter().rev() {
        own_dir(dir)?;
    }
    own_dir(pin_dir)?;
    for sub in [paths::MAPS_SUBDIR, paths::LINKS_SUBDIR, IFACES_SUBDIR] {
        own_dir(&pin_dir.join(sub))?;
    }
    Ok(())
}

/// The pins under a tree's `maps/` and its program pin as they were before a `run`: what a
/// refused run pinned (a half-made data plane, hundreds of MiB of maps) is what is not here.
#[derive(Clone, Debug, Default)]
pub struct PinSnapshot {
    maps: Vec<String>,
    program: bool,
}

impl PinSnapshot {
    /// What `pin_dir` holds now.
    pub fn take(pin_dir: &Path) -> Self {
        Self {
            maps: names_in(&pin_dir.join(paths::MAPS_SUBDIR)),
            program: pin_dir.join(paths::PROGRAM_PIN).exists(),
        }
    }

    /// Unpins what was pinned since the snapshot (maps and the program; links are made only
    /// after a run succeeded, and are left alone). Returns the paths removed.
    pub fn remove_new(&self, pin_dir: &Path) -> Vec<PathBuf> {
        let mut removed = Vec::new();
        let maps = pin_dir.join(paths::MAPS_SUBDIR);
        for name in names_in(&maps) {
            if !self.maps.contains(&name) {
                let p = maps.join(&name);
                if std::fs::remove_file(&p).is_ok() {
                    removed.push(p);
                }
            }
        }
        let prog = pin_dir.join(paths::PROGRAM_PIN);
        if !self.program && std::fs::remove_file(&prog).is_ok() {
            removed.push(prog);
        }
        removed
    }
}

/// Records that the filter is meant to run on `iface`.
///
/// # Errors
/// [`PinTreeError::Io`].
pub fn record_interface(pin_dir: &Path, iface: &str) -> Result<(), PinTreeError> {
    own_dir(&pin_dir.join(IFACES_SUBDIR).join(iface))
}

/// Forgets `iface` (after a deliberate `detach`).
///
/// # Errors
/// [`PinTreeError::Io`] (a missing record is no error).
pub fn forget_interface(pin_dir: &Path, iface: &str) -> Result<(), PinTreeError> {
    let path = pin_dir.join(IFACES_SUBDIR).join(iface);
    match std::fs::remove_dir(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path)(e)),
        _ => Ok(()),
    }
}

/// The names in `dir`, sorted (none when it is missing).
pub(crate) fn names_in(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    out.sort();
    out
}

/// How one interface of the pin tree stands.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct InterfaceHealth {
    /// The interface.
    pub interface: String,
    /// A `run` was asked to enforce on it (and no `detach` since).
    pub configured: bool,
    /// Its link is pinned and attached to a live interface.
    pub attached: bool,
    /// Why it is not attached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl InterfaceHealth {
    /// A configured interface that has no program attached: the filter is not enforcing there.
    pub fn alarm(&self) -> Option<String> {
        (self.configured && !self.attached).then(|| {
            format!(
                "ALARM: interface {} is configured but has no sdn-filter program attached ({}): \
                 traffic there is not filtered",
                self.interface,
                self.problem.as_deref().unwrap_or("unknown")
            )
        })
    }
}

/// Every interface the tree knows of (configured or with a pinned link), and whether the filter
/// is attached there.
pub fn interface_health(pin_dir: &Path) -> Vec<InterfaceHealth> {
    let configured = names_in(&pin_dir.join(IFACES_SUBDIR));
    let linked = names_in(&pin_dir.join(paths::LINKS_SUBDIR));
    let mut all: Vec<String> = configured.iter().chain(&linked).cloned().collect();
    all.sort();
    all.dedup();
    all.into_iter()
        .map(|iface| {
            let problem = if linked.contains(&iface) {
                link_problem(&pin_dir.join(paths::LINKS_SUBDIR).join(&iface))
            } else {
                Some("its link pin is gone".to_owned())
            };
            InterfaceHealth {
                configured: configured.contains(&iface),
                attached: problem.is_none(),
                problem,
                interface: iface,
            }
        })
        .collect()
}

/// The alarms of [`interface_health`].
pub fn alarms(pin_dir: &Path) -> Vec<String> {
    interface_health(pin_dir)
        .iter()
        .filter_map(InterfaceHealth::alarm)
        .collect()
}

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_TYPE_XDP: u32 = 6;

/// The bpf(2) system call with `attr` as its `union bpf_attr`.
///
/// # Safety
/// Every pointer `attr` holds must be valid for what the command reads or writes there.
unsafe fn bpf(cmd: libc::c_long, attr: &mut [u64]) -> libc::c_long {
    // SAFETY: the caller vouches for the pointers inside; attr itself is a live buffer of
    // the size passed.
    unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr),
        )
    }
}

/// Why the pinned link at `path` does not hold the program on an interface, or `None` when it
/// does. aya's `LinkInfo` does not expose the interface, so this asks the kernel directly.
pub fn link_problem(path: &Path) -> Option<String> {
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return Some("unusable pin path".to_owned());
    };
    // union bpf_attr for BPF_OBJ_GET: pathname, bpf_fd, file_flags (zero rest).
    let mut attr = [0u64; 4];
    attr[0] = c.as_ptr() as u64;
    // SAFETY: the path is a valid C string that outlives the call.
    let fd = unsafe { bpf(BPF_OBJ_GET, &mut attr) };
    if fd < 0 {
        return Some(format!(
            "its link pin cannot be opened: {}",
            std::io::Error::last_os_error()
        ));
    }
    let Ok(fd) = i32::try_from(fd) else {
        return Some("its link pin cannot be opened".to_owned());
    };
    // SAFETY: the kernel just gave us this descriptor; OwnedFd closes it.
    let owned = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // struct bpf_link_info: type, id, prog_id, then a union (8-aligned) whose xdp member
    // starts with ifindex.
    let mut info = [0u32; 64];
    let mut attr = [0u64; 2];
    attr[0] = u64::from(fd.cast_unsigned()) | ((std::mem::size_of_val(&info) as u64) << 32);
    attr[1] = info.as_mut_ptr() as u64;
    // SAFETY: the info buffer outlives the call; the kernel writes at most info_len bytes.
    let rc = unsafe { bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) };
    drop(owned);
    if rc != 0 {
        return Some(format!(
            "its link cannot be read: {}",
            std::io::Error::last_os_error()
        ));
    }
    if info[0] != BPF_LINK_TYPE_XDP {
        return Some(format!("its pin is not an XDP link (type {})", info[0]));
    }
    if info[4] == 0 {
        return Some("its link is defunct: the interface went away".to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn creates_the_tree_0700() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("a/sdn");
        secure_tree(&dir).unwrap();
        for d in [
            dir.clone(),
            dir.join("maps"),
            dir.join("links"),
            dir.join("ifaces"),
        ] {
            let mode = std::fs::metadata(&d).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
        // Idempotent.
        secure_tree(&dir).unwrap();
    }

    #[test]
    fn refuses_a_writable_tree() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("sdn");
        secure_tree(&dir).unwrap();
        std::fs::set_permissions(dir.join("links"), std::fs::Permissions::from_mode(0o777))
            .unwrap();
        let err = secure_tree(&dir).unwrap_err();
        assert!(matches!(err, PinTreeError::Writable { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("links is writable by group or others (mode 0777)"),
            "{err}"
        );
    }

    #[test]
    fn refuses_a_writable_ancestor_without_sticky_bit() {
        let t = tempfile::tempdir().unwrap();
        let open = t.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = secure_tree(&open.join("sdn")).unwrap_err();
        assert!(matches!(err, PinTreeError::Writable { .. }), "{err}");
        // Sticky (like /tmp or bpffs mounted 1777): others cannot move our entries.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        secure_tree(&open.join("sdn")).unwrap();
    }

    #[test]
    fn refuses_a_symlink() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real");
        secure_tree(&real).unwrap();
        let link = t.path().join("sdn");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = secure_tree(&link).unwrap_err();
        assert!(matches!(err, PinTreeError::NotDirectory { .. }), "{err}");
    }

    #[test]
    fn refuses_a_tree_of_another_user() {
        if euid() != 0 {
            eprintln!("skipped: only root can give a directory to another user");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("sdn");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        let err = secure_tree(&dir).unwrap_err();
        assert!(
            matches!(err, PinTreeError::Owner { owner: 65534, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("is owned by uid 65534"), "{err}");
    }

    #[test]
    fn configured_interface_without_link_is_an_alarm() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("sdn");
        secure_tree(&dir).unwrap();
        record_interface(&dir, "veth-a").unwrap();
        let h = interface_health(&dir);
        assert_eq!(h.len(), 1);
        assert!(!h[0].attached);
        let alarm = h[0].alarm().unwrap();
        assert!(
            alarm.contains("interface veth-a is configured but has no sdn-filter program"),
            "{alarm}"
        );
        forget_interface(&dir, "veth-a").unwrap();
        assert!(alarms(&dir).is_empty());
    }
}

//! The loader's own state on disk: the policy in force and its revision, kept so that `plan`
//! (another process) and the blast-radius guard after a restart can compare the next sync
//! with what the data plane enforces.

use std::{
    io::Write as _,
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use crate::policy::{Policy, PolicyError, parse_toml, to_toml};

const POLICY_FILE: &str = "applied-policy.toml";
const REVISION_FILE: &str = "applied-revision";

/// Errors reading or writing the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The kept policy is not a valid policy file.
    #[error("{path}: {error}")]
    Policy {
        /// The file.
        path: PathBuf,
        /// Why.
        error: Box<PolicyError>,
    },
    /// The kept revision is not a number.
    #[error("{path}: not a revision number")]
    Revision {
        /// The file.
        path: PathBuf,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |error| StateError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Writes `path` whole or not at all (a temporary file renamed over it).
/// Mode of the state files: owner reads and writes, group reads.
const STATE_FILE_MODE: u32 = 0o640;

fn write_atomic(path: &Path, text: &str) -> Result<(), StateError> {
    let tmp = path.with_extension("tmp");
    // The policy names every client's prefixes: owner and group only, like the database.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(STATE_FILE_MODE)
        .open(&tmp)
        .map_err(io(&tmp))?;
    // An existing file keeps its mode on open: set it.
    f.set_permissions(std::fs::Permissions::from_mode(STATE_FILE_MODE))
        .map_err(io(&tmp))?;
    f.write_all(text.as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Keeps `policy` as the one in force at `revision`.
///
/// # Errors
/// [`StateError`].
pub fn save(dir: &Path, revision: u64, policy: &Policy) -> Result<(), StateError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(crate::db::DIR_MODE)
        .create(dir)
        .map_err(io(dir))?;
    let policy_path = dir.join(POLICY_FILE);
    let text = to_toml(policy).map_err(|error| StateError::Policy {
        path: policy_path.clone(),
        error: Box::new(error),
    })?;
    // The revision goes last: a crash in between leaves a policy newer than its revision
    // number, which only makes the next plan compare against the newer policy.
    write_atomic(&policy_path, &text)?;
    write_atomic(&dir.join(REVISION_FILE), &format!("{revision}\n"))
}

/// The policy in force and its revision, `None` when nothing was kept.
///
/// # Errors
/// [`StateError`] when the files exist but cannot be read.
pub fn load(dir: &Path) -> Result<Option<(u64, Policy)>, StateError> {
    let rev_path = dir.join(REVISION_FILE);
    let text = match std::fs::read_to_string(&rev_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(StateError::Io {
                path: rev_path,
                error,
            });
        }
    };
    let revision = text
        .trim()
        .parse()
        .map_err(|_| StateError::Revision { path: rev_path })?;
    let policy_path = dir.join(POLICY_FILE);
    let text = std::fs::read_to_string(&policy_path).map_err(io(&policy_path))?;
    let policy = parse_toml(&text).map_err(|error| StateError::Policy {
        path: policy_path,
        error: Box::new(error),
    })?;
    Ok(Some((revision, policy)))
}

//! What the long-running commands share: the process's [`Shutdown`] handle, and the rule that
//! decides when `run` may attach the program to an interface.
//!
//! A freshly loaded program with no policy in force drops all IP traffic but the
//! infrastructure allow list, so it is attached only once a policy is in force: a policy file
//! compiled and applied, a data plane already running from the pins (it keeps its policy
//! until the new one is in), or the first successful sync from the database. [`ready_to_attach`]
//! holds that rule.

pub mod notify;
pub mod shutdown;

pub use shutdown::Shutdown;

/// Where the policy in force when `run` attaches comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FirstPolicy<'a> {
    /// A policy file, compiled and applied before anything is attached.
    File,
    /// A data plane already running from the pins, with the policy it had.
    AlreadyRunning,
    /// The first sync from the database: the revision it applied, or `None` when it never
    /// succeeded (the daemon was stopped while the database was unreachable).
    FirstSync {
        /// The database (named in the error).
        url: &'a str,
        /// The revision applied by the first sync.
        applied: Option<u64>,
    },
}

/// Why `run` does not attach.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Stopped before the first sync put a policy in force.
    #[error("stopped before the first sync from {url}; nothing was attached")]
    NoFirstSync {
        /// The database (credentials redacted).
        url: String,
    },
}

/// Whether the program may be attached: only with a policy in force, never the empty
/// (deny-all) one of a freshly loaded program.
pub fn ready_to_attach(first: &FirstPolicy<'_>) -> Result<(), DaemonError> {
    match first {
        FirstPolicy::File
        | FirstPolicy::AlreadyRunning
        | FirstPolicy::FirstSync {
            applied: Some(_), ..
        } => Ok(()),
        FirstPolicy::FirstSync { url, applied: None } => Err(DaemonError::NoFirstSync {
            url: crate::db::redact_url(url),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attaches_only_with_a_policy_in_force() {
        let url = "postgres://sdn:secret@127.0.0.1/sdn";
        assert!(ready_to_attach(&FirstPolicy::File).is_ok());
        assert!(ready_to_attach(&FirstPolicy::AlreadyRunning).is_ok());
        let synced = FirstPolicy::FirstSync {
            url,
            applied: Some(1),
        };
        assert!(ready_to_attach(&synced).is_ok());
        let e = ready_to_attach(&FirstPolicy::FirstSync { url, applied: None })
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("nothing was attached"), "{e}");
        assert!(!e.contains("secret"), "{e}");
    }
}

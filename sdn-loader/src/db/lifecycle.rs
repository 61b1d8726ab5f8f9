//! The agreement lifecycle: which state changes exist, for every editing path alike.
//!
//! ```text
//! requested --approve--> approved --revoke--> revoked
//!     |                                          |
//!     +--reject--> rejected                      |
//!                     |                          |
//!   requested <--request-------------------------+
//! ```
//!
//! Only approval puts an agreement in force, and only a requested agreement can be approved:
//! a revoked or rejected agreement must be requested again first. `import`, which makes the
//! database equal a file, is the one path that may set any state.

use crate::policy::AgreementState;

/// The lifecycle in one line, for error messages.
pub(crate) const RULES: &str = "an agreement goes requested -> approved or rejected, \
    approved -> revoked, and rejected or revoked -> requested";

/// A named agreement state change (`agreement approve|reject|revoke`, or an edit of the state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// requested -> approved.
    Approve,
    /// requested -> rejected.
    Reject,
    /// approved -> revoked.
    Revoke,
    /// rejected or revoked -> requested (asked for again; approval is needed once more).
    Request,
}

impl Transition {
    /// Every transition.
    pub const ALL: [Self; 4] = [Self::Approve, Self::Reject, Self::Revoke, Self::Request];

    /// The verb (also the audit action).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
            Self::Revoke => "revoke",
            Self::Request => "request",
        }
    }

    /// The states an agreement may be in for this transition.
    pub const fn sources(self) -> &'static [AgreementState] {
        match self {
            Self::Approve | Self::Reject => &[AgreementState::Requested],
            Self::Revoke => &[AgreementState::Approved],
            Self::Request => &[AgreementState::Rejected, AgreementState::Revoked],
        }
    }

    /// The sources as words: `requested`, `rejected or revoked`.
    pub fn sources_text(self) -> String {
        let names: Vec<&str> = self.sources().iter().map(|s| s.name()).collect();
        names.join(" or ")
    }

    /// The state it gets.
    pub const fn to(self) -> AgreementState {
        match self {
            Self::Approve => AgreementState::Approved,
            Self::Reject => AgreementState::Rejected,
            Self::Revoke => AgreementState::Revoked,
            Self::Request => AgreementState::Requested,
        }
    }

    /// Whether an agreement in `state` may take this transition.
    pub fn applies_to(self, state: AgreementState) -> bool {
        self.sources().contains(&state)
    }

    /// The transition that takes `from` to `to`, if the lifecycle has one.
    pub fn between(from: AgreementState, to: AgreementState) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.to() == to && t.applies_to(from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AgreementState::{Approved, Rejected, Requested, Revoked};

    #[test]
    fn lifecycle_table() {
        let all = [Requested, Approved, Rejected, Revoked];
        let mut allowed = Vec::new();
        for from in all {
            for to in all {
                if let Some(t) = Transition::between(from, to) {
                    allowed.push((from, to, t));
                }
            }
        }
        assert_eq!(
            allowed,
            [
                (Requested, Approved, Transition::Approve),
                (Requested, Rejected, Transition::Reject),
                (Approved, Revoked, Transition::Revoke),
                (Rejected, Requested, Transition::Request),
                (Revoked, Requested, Transition::Request),
            ]
        );
        // Nothing returns to force without a new request.
        assert_eq!(Transition::between(Revoked, Approved), None);
        assert_eq!(Transition::between(Rejected, Approved), None);
    }
}

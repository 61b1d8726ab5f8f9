//! The policy file: parsing (TOML or JSON), validation into a [`Policy`], and writing back.
//!
//! The file format is the one in docs/semantics.md ("Policy file format"), with
//! `[[infrastructure]]` entries (`prefix`, optional `protocol` defaulting to `"any"`, optional
//! `ports`). A JSON document has the same structure (`{"organisation": [...], ...}`).
//!
//! Validation collects every problem rather than stopping at the first, and each message names
//! the place in the file and the field, e.g.
//! ``agreement 1001 (agreement[3]): field `client`: unknown client "ouh-rsi"``.
//! Nothing is returned unless the whole document is valid.
//!
//! Leniencies of the parser: a port may also be written as a bare integer (`ports = 443`,
//! `ports = [80, 443]`), and in TOML an expiry may be a bare date (`expires = 2030-01-01`).
//! Port sets are normalised (sorted, overlapping and adjacent ranges merged), and an endpoint
//! or infrastructure port set covering 0-65535 becomes the empty list ("every port").
//!
//! Strictness (docs/semantics.md, "Addresses, ids and names"): addresses are read by
//! [`parse_net`], which refuses leading zeros in IPv4 octets and prefix lengths; ids, alias
//! names and names may not hold control characters (nor, for ids, invisible ones); a service
//! may not repeat an endpoint, nor a client a prefix. The database and the command line use
//! the same parser and this validator, so every path refuses the same inputs.

pub mod model;

mod address;
mod chars;
mod error;
mod parse;
mod raw;
mod write;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_strict;

use std::path::Path;

pub use address::{AddressError, parse_addr, parse_net};
pub use error::{Location, PolicyError, Section, ValidationError, ValidationErrorKind};
pub use model::*;

/// Parses and validates a policy file in TOML.
///
/// # Errors
/// [`PolicyError::Toml`] for syntax and structure errors (with line and column),
/// [`PolicyError::Invalid`] listing every rule the document breaks.
pub fn parse_toml(text: &str) -> Result<Policy, PolicyError> {
    let doc: raw::Document =
        toml::from_str(text).map_err(|error| PolicyError::Toml { path: None, error })?;
    validate(doc)
}

/// Parses and validates a policy document in JSON (the same structure as the TOML file).
///
/// # Errors
/// [`PolicyError::Json`] for syntax and structure errors (with line and column),
/// [`PolicyError::Invalid`] listing every rule the document breaks.
pub fn parse_json(text: &str) -> Result<Policy, PolicyError> {
    let doc: raw::Document =
        serde_json::from_str(text).map_err(|error| PolicyError::Json { path: None, error })?;
    validate(doc)
}

/// Reads, parses and validates a policy file: JSON when its extension is `.json` (in any
/// case), TOML otherwise.
///
/// # Errors
/// [`PolicyError::Io`] when the file cannot be read; otherwise the errors of [`parse_toml`]
/// or [`parse_json`], with the file's path attached.
pub fn load_file(path: &Path) -> Result<Policy, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|error| PolicyError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let is_json = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
    let parsed = if is_json {
        parse_json(&text)
    } else {
        parse_toml(&text)
    };
    parsed.map_err(|e| e.with_path(path))
}

/// Writes a policy as a TOML policy file: port aliases with their ports, endpoints with their
/// resolved ports (`"443"`, `"8000-8100"`, a list when several), host prefixes as bare
/// addresses.
///
/// For every policy `p` returned by the parsers, `parse_toml(&to_toml(&p)?)` equals `p`. A
/// policy built by hand round-trips too when its port lists are normalised (sorted, merged,
/// and empty for every port) and it satisfies the validation rules.
///
/// # Errors
/// [`PolicyError::Serialize`] if the toml crate cannot write a value (not expected for
/// policy data).
pub fn to_toml(policy: &Policy) -> Result<String, PolicyError> {
    write::to_toml(policy)
}

impl PolicyDraft {
    /// Checks the draft with the rules of the policy file (docs/semantics.md) and gives the
    /// validated policy, port sets normalised.
    ///
    /// # Errors
    /// [`PolicyError::Invalid`] listing every rule the draft breaks, each placed as in a
    /// file (`agreement 1001 (agreement[3]): field ...`).
    pub fn validate(&self) -> Result<Policy, PolicyError> {
        validate(write::document(self))
    }
}

impl Policy {
    /// This policy with `entries` added to its infrastructure allow list (a router's own, from
    /// its configuration). Only the entries are checked: they refer to nothing else in the
    /// policy.
    ///
    /// # Errors
    /// [`PolicyError::Invalid`] naming the entries that break a rule.
    pub fn with_infrastructure(self, entries: &[InfraEntry]) -> Result<Self, PolicyError> {
        if entries.is_empty() {
            return Ok(self);
        }
        let checked = PolicyDraft {
            infrastructure: entries.to_vec(),
            ..PolicyDraft::default()
        }
        .validate()?;
        let mut draft = self.into_draft();
        draft
            .infrastructure
            .extend(checked.into_draft().infrastructure);
        Ok(Self::validated(draft))
    }
}

fn validate(doc: raw::Document) -> Result<Policy, PolicyError> {
    parse::validate(doc).map_err(|errors| PolicyError::Invalid { path: None, errors })
}

//! Addresses and prefixes as text: the one parser behind the policy file, the database's
//! columns and the command line, so that every path accepts exactly the same spellings.
//!
//! The address is read by the standard library, which refuses leading zeros in IPv4 octets
//! (also in an IPv4 address embedded in IPv6, `::ffff:198.51.100.10`). The ipnet crate's own
//! parser accepts them (`"198.051.100.010/32"` was read as 198.51.100.10 while the bare
//! address was refused), so it is not used: C's `inet_aton` reads `010` as octal 8, and an
//! address that means one thing here and another in an operator's other tools is refused.

use std::net::IpAddr;

use ipnet::IpNet;

/// Why a text is not an IP address or prefix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Neither an address nor `address/length` (with a length in range).
    #[error("{text:?} is not an IP address or prefix")]
    Syntax {
        /// The text as written.
        text: String,
    },
    /// An IPv4 octet or a prefix length with a leading zero (`010`, `00`; `0` alone is fine).
    #[error(
        "{text:?}: {part} {digits:?} has leading zeros, which are ambiguous (octal or decimal?); write it without them"
    )]
    LeadingZeros {
        /// The text as written.
        text: String,
        /// `IPv4 octet` or `prefix length`.
        part: &'static str,
        /// The digits as written.
        digits: String,
    },
}

/// Parses an IPv4 or IPv6 address (no prefix length, no white space).
///
/// # Errors
/// [`AddressError::LeadingZeros`] when an IPv4 octet has a leading zero and the text would
/// otherwise be an address; [`AddressError::Syntax`] for anything else that is not one.
pub fn parse_addr(text: &str) -> Result<IpAddr, AddressError> {
    address_part(text, text)
}

/// Parses a prefix `address/length` or a bare address (a /32 or /128). Host bits are kept as
/// written, so that validation can report them with the network meant. No white space.
///
/// # Errors
/// [`AddressError::LeadingZeros`] for a leading zero in an IPv4 octet or in the length;
/// [`AddressError::Syntax`] for anything else that is not an address or prefix (including a
/// length beyond 32 or 128).
pub fn parse_net(text: &str) -> Result<IpNet, AddressError> {
    let Some((addr_text, len_text)) = text.split_once('/') else {
        return address_part(text, text).map(IpNet::from);
    };
    let addr = address_part(text, addr_text)?;
    let syntax = || AddressError::Syntax {
        text: text.to_owned(),
    };
    if len_text.is_empty() || !len_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax());
    }
    if has_leading_zero(len_text) {
        return Err(AddressError::LeadingZeros {
            text: text.to_owned(),
            part: "prefix length",
            digits: len_text.to_owned(),
        });
    }
    let len: u8 = len_text.parse().map_err(|_| syntax())?;
    IpNet::new(addr, len).map_err(|_| syntax())
}

/// Reads `addr_text` (a part of `text`, or all of it) as an address.
fn address_part(text: &str, addr_text: &str) -> Result<IpAddr, AddressError> {
    addr_text.parse::<IpAddr>().map_err(|_| {
        leading_zero_octet(addr_text).map_or_else(
            || AddressError::Syntax {
                text: text.to_owned(),
            },
            |octet| AddressError::LeadingZeros {
                text: text.to_owned(),
                part: "IPv4 octet",
                digits: octet.to_owned(),
            },
        )
    })
}

/// `0` alone is a number; `00`, `010` have a leading zero.
fn has_leading_zero(digits: &str) -> bool {
    digits.len() > 1 && digits.starts_with('0')
}

/// The first IPv4 octet of `addr_text` with a leading zero, when the zeros are all that keeps
/// it from being an address (so that other mistakes get the plain message).
fn leading_zero_octet(addr_text: &str) -> Option<&str> {
    // The dotted part: all of an IPv4 address, the last group of an IPv6 one.
    let dotted = addr_text.rsplit(':').next().unwrap_or(addr_text);
    if !dotted.contains('.') {
        return None;
    }
    let octet = dotted
        .split('.')
        .find(|o| has_leading_zero(o) && o.bytes().all(|b| b.is_ascii_digit()))?;
    let stripped: Vec<&str> = dotted
        .split('.')
        .map(|o| {
            let digits = o.trim_start_matches('0');
            if digits.is_empty() && !o.is_empty() {
                "0"
            } else {
                digits
            }
        })
        .collect();
    let head = &addr_text[..addr_text.len() - dotted.len()];
    let fixed = format!("{head}{}", stripped.join("."));
    fixed.parse::<IpAddr>().is_ok().then_some(octet)
}

//! Which characters ids and names may hold. Ids and names are stored as given and printed raw
//! (tab-separated `db ... list` lines, logs, the audit log), so a character that moves the
//! cursor, ends a line or reorders the text around it would change what the operator reads.

/// What a text is, for the characters it may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TextKind {
    /// An id or port alias name: a key that others refer to and that must look like itself.
    Id,
    /// A display name: free text, in any script.
    Name,
}

/// Why a character is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `char::is_control`: C0 (tab, newline, BEL, ...), DEL and C1.
    Control,
    /// A formatting character that is not shown, or that reorders the text after it.
    Invisible,
}

/// The first refused character of `text`: its 1-based position, the character and why.
pub(crate) fn refused(text: &str, kind: TextKind) -> Option<(usize, char, Refusal)> {
    text.chars().enumerate().find_map(|(i, c)| {
        let why = if c.is_control() {
            Refusal::Control
        } else if is_bidi_control(c) || (kind == TextKind::Id && is_zero_width(c)) {
            Refusal::Invisible
        } else {
            return None;
        };
        Some((i + 1, c, why))
    })
}

/// Embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069): they reorder what
/// follows them on the printed line ("Trojan Source"). The marks (U+200E, U+200F, U+061C)
/// only nudge neutral characters and are part of writing right-to-left names, so names may
/// hold them (ids may not: see [`is_zero_width`]).
const fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Characters that print as nothing, so that two different ids look the same. Refused in ids
/// only: joiners (U+200C, U+200D) are needed to write some scripts' names.
const fn is_zero_width(c: char) -> bool {
    matches!(
        c,
        '\u{200b}'..='\u{200f}' | '\u{061c}' | '\u{2060}'..='\u{2064}' | '\u{feff}'
    )
}

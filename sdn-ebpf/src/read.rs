//! Reads from the frame, one set for every parser (the general path's and the fast path's):
//! `at` checks a range against the frame end; the others read inside a range already checked.
//! And the IP protocol numbers both parsers match on.

pub(crate) const PROTO_ICMP: u8 = 1;
pub(crate) const PROTO_TCP: u8 = 6;
pub(crate) const PROTO_UDP: u8 = 17;
pub(crate) const PROTO_ICMPV6: u8 = 58;
pub(crate) const PROTO_SCTP: u8 = 132;

/// `len` bytes at `off`, or `None` past the end of the frame.
#[inline(always)]
pub(crate) fn at(start: usize, end: usize, off: usize, len: usize) -> Option<*const u8> {
    let p = start + off;
    if p + len > end {
        None
    } else {
        Some(p as *const u8)
    }
}

#[inline(always)]
pub(crate) fn u8_at(p: *const u8, i: usize) -> u8 {
    // SAFETY: callers only read inside a range they checked against the frame end (with
    // `at`, or directly in the fast path).
    unsafe { *p.add(i) }
}

#[inline(always)]
pub(crate) fn be16_at(p: *const u8, i: usize) -> u16 {
    // SAFETY: see u8_at.
    unsafe { u16::from_be(core::ptr::read_unaligned(p.add(i) as *const u16)) }
}

/// A 32-bit word kept in network byte order (as stored in map keys).
#[inline(always)]
pub(crate) fn word_at(p: *const u8, i: usize) -> u32 {
    // SAFETY: see u8_at.
    unsafe { core::ptr::read_unaligned(p.add(i) as *const u32) }
}

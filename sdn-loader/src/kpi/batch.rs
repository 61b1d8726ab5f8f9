//! `BPF_MAP_LOOKUP_BATCH` (Linux 5.6+; arrays and hashes), which aya 0.14 does not wrap:
//! one system call returns thousands of entries, where aya's iterators make two per entry.
//! The collector reads every counter slot and the rules in force each pass, so this is what
//! keeps a pass over 100,000 agreements short.

use std::os::fd::{AsFd, AsRawFd as _};

/// `BPF_MAP_LOOKUP_BATCH` from `include/uapi/linux/bpf.h`.
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Reads up to `limit` entries of a map, in batches of `per_call`, starting from the first
/// (or, for an array, after index `after`).
/// Returns the raw keys (`key_size` bytes each) and values (`value_size` bytes each; for a
/// per-CPU map `value_size` must be the per-CPU value size rounded up to 8 times the number of
/// possible CPUs, as the kernel lays them out).
///
/// Both arrays and hash maps use a `u32` batch cursor.
///
/// # Errors
/// The system call's error (e.g. `EINVAL` on a kernel without batch support for this map).
pub(crate) fn lookup_all(
    fd: impl AsFd,
    after: Option<u32>,
    key_size: usize,
    value_size: usize,
    limit: usize,
    per_call: usize,
) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let raw = fd.as_fd().as_raw_fd();
    let mut keys_out = Vec::new();
    let mut values_out = Vec::new();
    let mut cursor: u32 = after.unwrap_or(0);
    let mut first = after.is_none();
    let mut got = 0usize;
    loop {
        let want = per_call.min(limit - got);
        if want == 0 {
            break;
        }
        let mut keys = vec![0u8; want * key_size];
        let mut values = vec![0u8; want * value_size];
        let mut next: u32 = 0;
        let mut attr = BatchAttr {
            in_batch: if first {
                0
            } else {
                std::ptr::from_ref(&cursor) as u64
            },
            out_batch: std::ptr::from_mut(&mut next) as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: u32::try_from(want).unwrap_or(u32::MAX),
            map_fd: u32::try_from(raw).unwrap_or_default(),
            ..Default::default()
        };
        // SAFETY: `attr` points at buffers of `count` keys and values of the sizes the map
        // was created with, and at two u32 cursors; all outlive the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                std::ptr::from_mut(&mut attr),
                std::mem::size_of::<BatchAttr>(),
            )
        };
        let err = (rc < 0).then(std::io::Error::last_os_error);
        // ENOENT means "no more entries"; the entries filled before it are valid.
        if let Some(e) = &err {
            if e.raw_os_error() != Some(libc::ENOENT) {
                return Err(std::io::Error::from_raw_os_error(
                    e.raw_os_error().unwrap_or(libc::EIO),
                ));
            }
        }
        let n = attr.count as usize;
        keys_out.extend_from_slice(&keys[..n * key_size]);
        values_out.extend_from_slice(&values[..n * value_size]);
        got += n;
        if err.is_some() || n == 0 {
            break;
        }
        cursor = next;
        first = false;
    }
    Ok((keys_out, values_out))
}

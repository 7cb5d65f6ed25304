//! Fresh DICOM UIDs under the `2.25` root (ISO/IEC 9834-8: a UUID as one decimal integer).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new UID `2.25.<122 random bits as a decimal integer>`, at most 64 characters.
///
/// The randomness comes from the standard library's per-process random hasher keys mixed with
/// the time, the process id and a counter, so two calls never return the same UID in practice.
pub(crate) fn new_uid() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut words = [0u64; 2];
    for (i, w) in words.iter_mut().enumerate() {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u64(n);
        h.write_u32(std::process::id());
        h.write_usize(i);
        *w = h.finish();
    }
    let mut v = (u128::from(words[0]) << 64) | u128::from(words[1]);
    // Shape it like a version-4 UUID (as the 2.25 root expects), which also keeps it < 2^128.
    v &= !(0xF000u128 << 64);
    v |= 0x4000u128 << 64;
    v &= !(0xC000_0000_0000_0000u128);
    v |= 0x8000_0000_0000_0000u128;
    format!("2.25.{v}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_valid_and_distinct() {
        let a = new_uid();
        let b = new_uid();
        assert_ne!(a, b);
        for u in [&a, &b] {
            assert!(u.len() <= 64, "{u}");
            assert!(u.starts_with("2.25."));
            let tail = &u[5..];
            assert!(tail.chars().all(|c| c.is_ascii_digit()));
            assert!(!tail.starts_with('0'));
        }
    }
}

//! Safe file names from untrusted identifiers.
//!
//! A SeriesInstanceUID, a PatientID or a file name read from an archive may hold anything:
//! `../../evil`, `/etc/passwd`, a NUL byte, ten kilobytes of text, or two names that differ only in
//! case. Before any of them becomes part of a path under `--out`, it goes through [`safe_name`]
//! (one path component made of `[A-Za-z0-9._-]`, never starting with a dot, at most
//! [`MAX_NAME_LEN`] bytes) and the set of names of one run goes through [`assign_unique`] (names
//! that would collide — even on a case-insensitive file system — get a deterministic suffix).

use std::collections::BTreeSet;

/// Longest name [`safe_name`] returns, in bytes (well under every file system's 255).
pub const MAX_NAME_LEN: usize = 96;

/// FNV-1a, 64 bit: a hash that is the same on every platform and Rust version (the standard
/// library's is not), so the suffixes it makes are stable across runs and machines.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// One safe path component for `raw`.
///
/// Characters outside `[A-Za-z0-9._-]` become `_`; a leading `.` or `-` gets a `_` prefix (no
/// hidden files, no `..`, nothing that looks like a flag); an empty result becomes `_`. When the
/// result differs from `raw` (the mapping lost information) or had to be shortened, an 8-hex-digit
/// hash of `raw` is appended so that two different identifiers never share a name by accident.
pub fn safe_name(raw: &str) -> String {
    let mut cleaned: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() || cleaned.starts_with('.') || cleaned.starts_with('-') {
        cleaned.insert(0, '_');
    }
    let lossy = cleaned != raw;
    let suffix_len = 9; // "-" + 8 hex digits
    if lossy || cleaned.len() > MAX_NAME_LEN {
        // `cleaned` is ASCII, so byte truncation is a char boundary.
        cleaned.truncate(MAX_NAME_LEN - suffix_len);
        // A name may not end in '.' on some file systems; keep it tidy.
        while cleaned.ends_with('.') {
            cleaned.pop();
        }
        let h = fnv1a64(raw.as_bytes()) & 0xffff_ffff;
        cleaned.push_str(&format!("-{h:08x}"));
    }
    cleaned
}

/// Unique safe names for `raws`, in the same order.
///
/// Each name is [`safe_name`] of its raw identifier; a name already taken (compared
/// case-insensitively) gets `-2`, `-3`, ... The result depends only on the order of `raws`, so
/// callers sort them first.
pub fn assign_unique<S: AsRef<str>>(raws: &[S]) -> Vec<String> {
    let mut taken = BTreeSet::new();
    let mut out = Vec::with_capacity(raws.len());
    for raw in raws {
        let base = safe_name(raw.as_ref());
        let mut name = base.clone();
        let mut k = 2u64;
        while taken.contains(&name.to_ascii_lowercase()) {
            let suffix = format!("-{k}");
            let mut b = base.clone();
            b.truncate(MAX_NAME_LEN - suffix.len());
            name = format!("{b}{suffix}");
            k += 1;
        }
        taken.insert(name.to_ascii_lowercase());
        out.push(name);
    }
    out
}

/// True when `name` is a single component [`safe_name`] could have produced.
pub fn is_safe_component(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_uids_are_kept() {
        assert_eq!(safe_name("1.2.840.113619.2.55"), "1.2.840.113619.2.55");
        assert_eq!(safe_name("case_01-a"), "case_01-a");
    }

    #[test]
    fn traversal_and_separators_are_neutralised() {
        for raw in [
            "../../evil",
            "..",
            ".",
            "/etc/passwd",
            "a/b\\c",
            "-rf",
            "x\0y",
            "",
        ] {
            let n = safe_name(raw);
            assert!(is_safe_component(&n), "{raw:?} -> {n:?}");
            assert!(n != "." && n != "..");
            assert!(!n.contains('/') && !n.contains('\\'));
        }
        assert_ne!(safe_name("a/b"), safe_name("a_b"));
    }

    #[test]
    fn long_names_are_capped_and_distinct() {
        let a = "1".repeat(500);
        let b = format!("{}2", "1".repeat(499));
        assert!(safe_name(&a).len() <= MAX_NAME_LEN);
        assert_ne!(safe_name(&a), safe_name(&b));
    }

    #[test]
    fn collisions_get_suffixes_case_insensitively() {
        let names = assign_unique(&["ABC", "abc", "ABC", "x"]);
        assert_eq!(names, vec!["ABC", "abc-2", "ABC-3", "x"]);
    }

    proptest! {
        #[test]
        fn every_name_is_one_safe_component(raw in ".{0,300}") {
            let n = safe_name(&raw);
            prop_assert!(is_safe_component(&n));
            let p = std::path::Path::new("/out").join(&n);
            prop_assert_eq!(p.parent(), Some(std::path::Path::new("/out")));
        }

        #[test]
        fn unique_names_are_unique(raws in proptest::collection::vec("[a-cA-C./]{0,4}", 0..30)) {
            let names = assign_unique(&raws);
            let set: BTreeSet<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
            prop_assert_eq!(set.len(), names.len());
        }
    }
}

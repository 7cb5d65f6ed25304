//! New UIDs and the date and time written into each object.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where new UIDs and the content date and time come from.
///
/// [`Stamp::now`] gives fresh random UIDs under the `2.25` root (ISO/IEC 9834-8, PS3.5 §B.2: a
/// UUID written as one decimal integer) and the current UTC date and time. [`Stamp::fixed`]
/// derives every UID from a seed and uses a given date and time, so that the same inputs give
/// byte-identical files: for tests, and for reproducing an object exactly.
#[derive(Debug)]
pub struct Stamp {
    date: String,
    time: String,
    seed: Option<u64>,
    counter: AtomicU64,
}

impl Stamp {
    /// Random UIDs, the current UTC date (`YYYYMMDD`) and time (`HHMMSS`).
    pub fn now() -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (date, time) = civil_utc(secs);
        Self {
            date,
            time,
            seed: None,
            counter: AtomicU64::new(0),
        }
    }

    /// UIDs derived from `seed` (the n-th UID asked for is the same on every run) and the given
    /// date (`YYYYMMDD`) and time (`HHMMSS`), written as they are.
    pub fn fixed(seed: u64, date: &str, time: &str) -> Self {
        Self {
            date: date.to_string(),
            time: time.to_string(),
            seed: Some(seed),
            counter: AtomicU64::new(0),
        }
    }

    /// The content date, `YYYYMMDD`.
    pub fn date(&self) -> &str {
        &self.date
    }

    /// The content time, `HHMMSS`.
    pub fn time(&self) -> &str {
        &self.time
    }

    /// A new UID, `2.25.<decimal>`, at most 44 characters.
    pub fn uid(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let words: [u64; 2] = match self.seed {
            Some(seed) => {
                [0u8, 1].map(|i| fnv1a64(&[seed.to_le_bytes(), n.to_le_bytes(), [i; 8]].concat()))
            }
            None => {
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                [0usize, 1].map(|i| {
                    let mut h = RandomState::new().build_hasher();
                    h.write_u128(nanos);
                    h.write_u64(n);
                    h.write_u32(std::process::id());
                    h.write_usize(i);
                    h.finish()
                })
            }
        };
        uuid_uid(words)
    }
}

/// `2.25.<n>` for a 128-bit value shaped like a version-4 UUID.
fn uuid_uid(words: [u64; 2]) -> String {
    let mut v = (u128::from(words[0]) << 64) | u128::from(words[1]);
    v &= !(0xF000u128 << 64);
    v |= 0x4000u128 << 64;
    v &= !0xC000_0000_0000_0000u128;
    v |= 0x8000_0000_0000_0000u128;
    format!("2.25.{v}")
}

/// A stable UID for a name (the same name always gives the same UID): the Device Observer UID
/// of the algorithm.
pub(crate) fn name_uid(name: &str) -> String {
    let a = fnv1a64(name.as_bytes());
    let b = fnv1a64(&[name.as_bytes(), b"#2"].concat());
    uuid_uid([a, b])
}

/// FNV-1a, 64 bits.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// `(YYYYMMDD, HHMMSS)` of a Unix time, UTC (the proleptic Gregorian calendar).
fn civil_utc(secs: u64) -> (String, String) {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        format!("{y:04}{m:02}{d:02}"),
        format!("{:02}{:02}{:02}", rem / 3600, (rem % 3600) / 60, rem % 60),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(u: &str) {
        assert!(u.len() <= 64, "{u}");
        let tail = u.strip_prefix("2.25.").expect("2.25 root");
        assert!(
            tail.chars().all(|c| c.is_ascii_digit()) && !tail.starts_with('0'),
            "{u}"
        );
    }

    #[test]
    fn uids_are_valid_distinct_and_seeded_ones_repeat() {
        let s = Stamp::now();
        let (a, b) = (s.uid(), s.uid());
        assert_ne!(a, b);
        valid(&a);
        valid(&b);
        let f1 = Stamp::fixed(7, "20240101", "120000");
        let f2 = Stamp::fixed(7, "20240101", "120000");
        let one: Vec<String> = (0..3).map(|_| f1.uid()).collect();
        let two: Vec<String> = (0..3).map(|_| f2.uid()).collect();
        assert_eq!(one, two);
        assert_ne!(one[0], one[1]);
        one.iter().for_each(|u| valid(u));
        assert_ne!(Stamp::fixed(8, "", "").uid(), one[0]);
        valid(&name_uid("Speck 0.1.0"));
        assert_eq!(name_uid("x"), name_uid("x"));
    }

    #[test]
    fn civil_dates_are_right() {
        assert_eq!(civil_utc(0), ("19700101".into(), "000000".into()));
        // 2024-02-29 13:14:15 UTC
        assert_eq!(
            civil_utc(1_709_212_455),
            ("20240229".into(), "131415".into())
        );
        assert_eq!(civil_utc(951_782_400).0, "20000229");
    }
}

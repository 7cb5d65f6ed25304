//! `--shard K/N`: which part of an archive this process scans.
//!
//! Every shard discovers the same full list of scans, sorts it by scan id, and keeps the scans
//! whose position modulo `N` is `K` (0-based). The split is therefore deterministic, balanced to
//! within one scan, and needs no coordination between machines, as long as the archive does not
//! change while the job array runs.

use std::fmt;

/// Why a shard could not be worked out; the messages name the value and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShardError {
    /// A shard count of zero.
    #[error("shard count must be at least 1")]
    ZeroCount,
    /// An index not below the count.
    #[error("shard index {index} is out of range for {count} shards (indices are 0-based: 0..{})", count - 1)]
    IndexOutOfRange {
        /// The index asked for.
        index: u32,
        /// The number of shards.
        count: u32,
    },
    /// `--shard` that is not `K/N` with non-negative integers.
    #[error("--shard {value:?}: {expected}")]
    BadFlag {
        /// The flag's value.
        value: String,
        /// What was expected instead.
        expected: &'static str,
    },
    /// A scheduler variable that is set but not a non-negative integer.
    #[error("{name}={value:?} is not a non-negative integer")]
    BadVariable {
        /// The variable.
        name: String,
        /// Its value.
        value: String,
    },
    /// `SLURM_ARRAY_TASK_ID` below `SLURM_ARRAY_TASK_MIN`.
    #[error("SLURM_ARRAY_TASK_ID={id} is below SLURM_ARRAY_TASK_MIN={min}")]
    BelowArrayMin {
        /// `SLURM_ARRAY_TASK_ID`.
        id: u32,
        /// `SLURM_ARRAY_TASK_MIN`.
        min: u32,
    },
    /// `JOB_COMPLETION_INDEX` without a shard count.
    #[error(
        "JOB_COMPLETION_INDEX={index} is set but the number of shards is not: pass \
         --shard-count N or set SPECK_SHARD_COUNT (the Job's `completions`)"
    )]
    MissingCount {
        /// `JOB_COMPLETION_INDEX`.
        index: u32,
    },
    /// A scheduler's variables gave a shard out of range.
    #[error("from {scheduler}: {reason}")]
    FromScheduler {
        /// `Slurm` or `Kubernetes`.
        scheduler: &'static str,
        /// What was wrong with the values (in the message already, so not a `source`).
        reason: Box<ShardError>,
    },
}

/// One part out of `count` (`index` is 0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This part, `0..count`.
    pub index: u32,
    /// Number of parts, at least 1.
    pub count: u32,
}

impl Shard {
    /// The whole input as one part.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// A shard after checking `index < count` and `count >= 1`.
    ///
    /// # Errors
    /// [`ShardError::ZeroCount`] or [`ShardError::IndexOutOfRange`].
    pub fn new(index: u32, count: u32) -> Result<Self, ShardError> {
        if count == 0 {
            return Err(ShardError::ZeroCount);
        }
        if index >= count {
            return Err(ShardError::IndexOutOfRange { index, count });
        }
        Ok(Self { index, count })
    }

    /// Parse `K/N` (0-based `K`).
    ///
    /// # Errors
    /// [`ShardError::BadFlag`] saying what the accepted form is, or those of [`Shard::new`].
    pub fn parse(s: &str) -> Result<Self, ShardError> {
        let bad = |expected| ShardError::BadFlag {
            value: s.to_string(),
            expected,
        };
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| bad("expected K/N, e.g. 0/4"))?;
        let k: u32 = k
            .trim()
            .parse()
            .map_err(|_| bad("K is not a non-negative integer"))?;
        let n: u32 = n
            .trim()
            .parse()
            .map_err(|_| bad("N is not a positive integer"))?;
        Self::new(k, n)
    }

    /// Whether this is more than one part.
    pub fn is_split(&self) -> bool {
        self.count > 1
    }

    /// Whether the scan at `position` (in the sorted list of all scans) belongs to this shard.
    pub fn owns(&self, position: usize) -> bool {
        position % self.count as usize == self.index as usize
    }

    /// Folder-name form, `K-of-N`.
    pub fn dir_name(&self) -> String {
        format!("{}-of-{}", self.index, self.count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Where the shard came from, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSource {
    /// No sharding.
    None,
    /// `--shard`.
    Flag,
    /// `SLURM_ARRAY_TASK_ID` / `SLURM_ARRAY_TASK_COUNT` (and `SLURM_ARRAY_TASK_MIN`).
    Slurm,
    /// `JOB_COMPLETION_INDEX` with `--shard-count` or `SPECK_SHARD_COUNT`.
    Kubernetes,
}

/// Resolve the shard from the flag, then the environment (`env` is a lookup so tests need not
/// touch the process environment).
///
/// - `--shard K/N` wins.
/// - Slurm job arrays: `SLURM_ARRAY_TASK_ID` and `SLURM_ARRAY_TASK_COUNT`; the index is made
///   0-based with `SLURM_ARRAY_TASK_MIN` (so `--array=1-8` works as well as `--array=0-7`).
/// - Kubernetes Indexed Jobs: `JOB_COMPLETION_INDEX` with the count from `count_flag`
///   (`--shard-count`) or `SPECK_SHARD_COUNT` (Kubernetes does not export the completion count).
///
/// # Errors
/// A [`ShardError`] when a variable is present but not a number, or the result is out of range.
pub fn resolve(
    flag: Option<&str>,
    count_flag: Option<u32>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(Shard, ShardSource), ShardError> {
    if let Some(s) = flag {
        return Ok((Shard::parse(s)?, ShardSource::Flag));
    }
    let num = |name: &str| -> Result<Option<u32>, ShardError> {
        match env(name) {
            None => Ok(None),
            Some(v) if v.trim().is_empty() => Ok(None),
            Some(v) => v
                .trim()
                .parse::<u32>()
                .map(Some)
                .map_err(|_| ShardError::BadVariable {
                    name: name.to_string(),
                    value: v,
                }),
        }
    };
    if let (Some(id), Some(count)) = (num("SLURM_ARRAY_TASK_ID")?, num("SLURM_ARRAY_TASK_COUNT")?) {
        let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let index = id
            .checked_sub(min)
            .ok_or(ShardError::BelowArrayMin { id, min })?;
        return Ok((
            Shard::new(index, count).map_err(|e| scheduler("Slurm", e))?,
            ShardSource::Slurm,
        ));
    }
    if let Some(index) = num("JOB_COMPLETION_INDEX")? {
        let count = match count_flag {
            Some(c) => Some(c),
            None => num("SPECK_SHARD_COUNT")?,
        };
        let count = count.ok_or(ShardError::MissingCount { index })?;
        return Ok((
            Shard::new(index, count).map_err(|e| scheduler("Kubernetes", e))?,
            ShardSource::Kubernetes,
        ));
    }
    Ok((Shard::WHOLE, ShardSource::None))
}

fn scheduler(name: &'static str, e: ShardError) -> ShardError {
    ShardError::FromScheduler {
        scheduler: name,
        reason: Box::new(e),
    }
}

/// One shard's part of a run's items.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Share {
    /// The items this shard processes, in the order of the full list.
    pub items: Vec<crate::Item>,
    /// Items of the full list to be scanned (or failed already), all shards together.
    pub n_planned: usize,
    /// Items of the full list skipped as not CT image series, all shards together.
    pub n_skipped: usize,
}

/// The items of `all` (sorted by id, as [`crate::discover::discover`] returns them) that `shard`
/// owns. Scans (and failed items) and skipped items are dealt out separately, so skipped items
/// do not unbalance the scans between shards.
pub fn share(all: &[crate::Item], shard: Shard) -> Share {
    let (mut n_planned, mut n_skipped) = (0usize, 0usize);
    let items = all
        .iter()
        .filter(|it| {
            let counter = if matches!(it.plan, crate::Plan::Skip { .. }) {
                &mut n_skipped
            } else {
                &mut n_planned
            };
            let position = *counter;
            *counter += 1;
            shard.owns(position)
        })
        .cloned()
        .collect();
    Share {
        items,
        n_planned,
        n_skipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_string())
        }
    }

    #[test]
    fn flag_parses_and_checks_range() {
        assert_eq!(Shard::parse("1/4"), Ok(Shard { index: 1, count: 4 }));
        assert!(Shard::parse("4/4").is_err());
        assert!(Shard::parse("0/0").is_err());
        assert!(Shard::parse("a/2").is_err());
        assert!(Shard::parse("3").is_err());
    }

    #[test]
    fn errors_say_which_value_and_what_is_accepted() {
        let msg = |r: Result<Shard, ShardError>| r.expect_err("error").to_string();
        assert_eq!(
            msg(Shard::parse("4/4")),
            "shard index 4 is out of range for 4 shards (indices are 0-based: 0..3)"
        );
        assert_eq!(msg(Shard::parse("0/0")), "shard count must be at least 1");
        assert_eq!(
            msg(Shard::parse("a/2")),
            "--shard \"a/2\": K is not a non-negative integer"
        );
        assert_eq!(
            msg(Shard::parse("3")),
            "--shard \"3\": expected K/N, e.g. 0/4"
        );
        let slurm = resolve(
            None,
            None,
            env_of(&[
                ("SLURM_ARRAY_TASK_ID", "4"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
            ]),
        );
        assert_eq!(
            slurm.expect_err("out of range").to_string(),
            "from Slurm: shard index 4 is out of range for 4 shards (indices are 0-based: 0..3)"
        );
        let k8s = resolve(None, None, env_of(&[("JOB_COMPLETION_INDEX", "x")]));
        assert_eq!(
            k8s.expect_err("not a number"),
            ShardError::BadVariable {
                name: "JOB_COMPLETION_INDEX".into(),
                value: "x".into()
            }
        );
    }

    #[test]
    fn every_position_has_exactly_one_owner() {
        let n = 5;
        for pos in 0..100 {
            let owners = (0..n)
                .filter(|&k| Shard::new(k, n).expect("shard").owns(pos))
                .count();
            assert_eq!(owners, 1);
        }
    }

    #[test]
    fn slurm_and_kubernetes_variables() {
        let (s, src) = resolve(
            None,
            None,
            env_of(&[
                ("SLURM_ARRAY_TASK_ID", "3"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
                ("SLURM_ARRAY_TASK_MIN", "1"),
            ]),
        )
        .expect("slurm");
        assert_eq!((s, src), (Shard { index: 2, count: 4 }, ShardSource::Slurm));

        let (s, src) =
            resolve(None, Some(3), env_of(&[("JOB_COMPLETION_INDEX", "2")])).expect("k8s");
        assert_eq!(
            (s, src),
            (Shard { index: 2, count: 3 }, ShardSource::Kubernetes)
        );
        let (s, _) = resolve(
            None,
            None,
            env_of(&[("JOB_COMPLETION_INDEX", "0"), ("SPECK_SHARD_COUNT", "2")]),
        )
        .expect("k8s env");
        assert_eq!(s, Shard { index: 0, count: 2 });
        assert!(resolve(None, None, env_of(&[("JOB_COMPLETION_INDEX", "0")])).is_err());
        assert!(resolve(None, Some(2), env_of(&[("JOB_COMPLETION_INDEX", "x")])).is_err());

        // The flag wins over the environment.
        let (s, src) =
            resolve(Some("0/2"), None, env_of(&[("SLURM_ARRAY_TASK_ID", "1")])).expect("flag");
        assert_eq!((s, src), (Shard { index: 0, count: 2 }, ShardSource::Flag));
        assert_eq!(
            resolve(None, None, env_of(&[])).expect("none"),
            (Shard::WHOLE, ShardSource::None)
        );
    }
}

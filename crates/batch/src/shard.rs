//! `--shard K/N`: which part of an archive this process scans.
//!
//! Every shard discovers the same full list of scans, sorts it by scan id, and keeps the scans
//! whose position modulo `N` is `K` (0-based). The split is therefore deterministic, balanced to
//! within one scan, and needs no coordination between machines, as long as the archive does not
//! change while the job array runs.

use std::fmt;

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
    /// A message naming the bad values.
    pub fn new(index: u32, count: u32) -> Result<Self, String> {
        if count == 0 {
            return Err("shard count must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "shard index {index} is out of range for {count} shards (indices are 0-based: 0..{})",
                count - 1
            ));
        }
        Ok(Self { index, count })
    }

    /// Parse `K/N` (0-based `K`).
    ///
    /// # Errors
    /// A message saying what the accepted form is.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("--shard {s:?}: expected K/N, e.g. 0/4"))?;
        let k: u32 = k
            .trim()
            .parse()
            .map_err(|_| format!("--shard {s:?}: K is not a non-negative integer"))?;
        let n: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("--shard {s:?}: N is not a positive integer"))?;
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
/// A message when a variable is present but not a number, or the result is out of range.
pub fn resolve(
    flag: Option<&str>,
    count_flag: Option<u32>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(Shard, ShardSource), String> {
    if let Some(s) = flag {
        return Ok((Shard::parse(s)?, ShardSource::Flag));
    }
    let num = |name: &str| -> Result<Option<u32>, String> {
        match env(name) {
            None => Ok(None),
            Some(v) if v.trim().is_empty() => Ok(None),
            Some(v) => v
                .trim()
                .parse::<u32>()
                .map(Some)
                .map_err(|_| format!("{name}={v:?} is not a non-negative integer")),
        }
    };
    if let (Some(id), Some(count)) = (num("SLURM_ARRAY_TASK_ID")?, num("SLURM_ARRAY_TASK_COUNT")?) {
        let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let index = id.checked_sub(min).ok_or_else(|| {
            format!("SLURM_ARRAY_TASK_ID={id} is below SLURM_ARRAY_TASK_MIN={min}")
        })?;
        return Ok((
            Shard::new(index, count).map_err(|e| format!("from Slurm: {e}"))?,
            ShardSource::Slurm,
        ));
    }
    if let Some(index) = num("JOB_COMPLETION_INDEX")? {
        let count = match count_flag {
            Some(c) => Some(c),
            None => num("SPECK_SHARD_COUNT")?,
        };
        let count = count.ok_or_else(|| {
            format!(
                "JOB_COMPLETION_INDEX={index} is set but the number of shards is not: pass \
                 --shard-count N or set SPECK_SHARD_COUNT (the Job's `completions`)"
            )
        })?;
        return Ok((
            Shard::new(index, count).map_err(|e| format!("from Kubernetes: {e}"))?,
            ShardSource::Kubernetes,
        ));
    }
    Ok((Shard::WHOLE, ShardSource::None))
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

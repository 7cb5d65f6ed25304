//! Benchmarks live in `benches/*.rs`; this library holds what several of them share.

/// The best wall time in seconds of `repeats` calls of `f` after one warm-up call, and the last
/// result (so the work cannot be optimised away and the caller can check it).
pub fn best_of<T>(repeats: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut v = f(); // warm-up
    let mut best = f64::INFINITY;
    for _ in 0..repeats {
        let t = std::time::Instant::now();
        v = f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    (best, v)
}

/// The number a peer script printed for `key` in its one-line JSON summary on stdout
/// (`{"seconds": 1.2, "files": 300}`); NaN when the value is not a number.
///
/// # Panics
/// When `key` is missing: the peer's output changed and the benchmark cannot compare.
pub fn peer_number(stdout: &str, key: &str) -> f64 {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON summary in {stdout}"));
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("peer summary {line}: {e}"));
    let field = v.get(key).unwrap_or_else(|| panic!("{key} in {line}"));
    field
        .as_f64()
        .or_else(|| field.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::peer_number;

    #[test]
    fn reads_the_last_json_line_after_other_output() {
        let out = "reading 300 files\n{\"seconds\": 1.5, \"files\": 300, \"sum\": \"-42\"}\n";
        assert_eq!(peer_number(out, "seconds"), 1.5);
        assert_eq!(peer_number(out, "files"), 300.0);
        assert_eq!(peer_number(out, "sum"), -42.0);
    }

    #[test]
    #[should_panic(expected = "series in")]
    fn a_missing_key_is_loud() {
        peer_number("{\"seconds\": 1}", "series");
    }
}

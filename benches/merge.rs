//! Guards: 3D candidate merging stays near-linear (spatial hash grid), i.e. 100k candidates
//! merge in well under a second. Peer: the same greedy rule with a brute-force neighbour search
//! (O(n²)), measured in the same run; the bench prints times and the speed-up ratio and checks
//! that both give the same clusters.
//!
//! Run: `cargo bench -p speck-benches --bench merge`

use std::time::Instant;

use speck::candidates::{merge, Candidate, MergeOptions, Stage};
use speck::volume::{ContinuousIndex, WorldPoint};

struct Rng(u64);
impl Rng {
    fn f(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` candidates in a 350 x 350 x 300 mm chest: every nodule reported by 8 windows with
/// one-voxel jitter (1 x 0.7 x 0.7 mm), plus a quarter of scattered false positives.
fn scene(n: usize, seed: u64) -> Vec<Candidate> {
    let mut r = Rng(seed | 1);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let (x, y, z) = (r.f() * 350.0, r.f() * 350.0, r.f() * 300.0);
        let d = 2.1 + r.f() * 10.0;
        if r.f() < 0.25 {
            out.push(cand(x, y, z, r.f() as f32 * 0.5, Some(d)));
            continue;
        }
        for _ in 0..8 {
            if out.len() == n {
                break;
            }
            let j = |r: &mut Rng, s: f64| ((r.f() * 3.0).floor() - 1.0) * s;
            out.push(cand(
                x + j(&mut r, 0.7),
                y + j(&mut r, 0.7),
                z + j(&mut r, 1.0),
                0.5 + r.f() as f32 * 0.5,
                Some(d),
            ));
        }
    }
    out
}

fn cand(x: f64, y: f64, z: f64, p: f32, d: Option<f64>) -> Candidate {
    let mut c = Candidate::new(
        WorldPoint::new(x, y, z),
        ContinuousIndex::new(z, y / 0.7, x / 0.7),
        p,
        Stage::Coarse,
    );
    c.diameter_mm = d;
    c
}

/// The peer: the same greedy leader clustering, neighbours found by scanning everything.
fn brute_force_count(cands: &[Candidate], o: &MergeOptions) -> usize {
    let mut s: Vec<Candidate> = cands.to_vec();
    s.sort_by(speck::candidates::canonical_order);
    let r: Vec<f64> = s
        .iter()
        .map(|c| {
            c.diameter_mm
                .map_or(0.0, |d| (d / 2.0).min(o.max_radius_mm))
        })
        .collect();
    let mut taken = vec![false; s.len()];
    let mut clusters = 0;
    for i in 0..s.len() {
        if taken[i] {
            continue;
        }
        clusters += 1;
        taken[i] = true;
        for j in i + 1..s.len() {
            if !taken[j] && s[i].world.distance_mm(s[j].world) < o.merge_distance_mm(r[i], r[j]) {
                taken[j] = true;
            }
        }
    }
    clusters
}

/// Process CPU time (user + system) in seconds, from `/proc/self/stat` (Linux; 10 ms ticks).
/// On a shared machine wall time mostly measures the neighbours, CPU time measures us.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// `runs` runs of `f`: (best wall seconds, mean CPU seconds per run, last value).
fn measure<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, Option<f64>, T) {
    let mut best = f64::INFINITY;
    let cpu0 = cpu_seconds();
    let mut last = f();
    for _ in 0..runs {
        let t = Instant::now();
        last = f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    let cpu = match (cpu0, cpu_seconds()) {
        (Some(a), Some(b)) => Some((b - a) / (runs + 1) as f64),
        _ => None,
    };
    (best, cpu, last)
}

fn fmt_cpu(c: Option<f64>) -> String {
    c.map_or_else(|| "n/a".into(), |c| format!("{c:.4} s"))
}

fn main() {
    let o = MergeOptions::default();
    println!("merge bench: best wall time of the runs, and mean process CPU time per run");
    for n in [5_000usize, 20_000] {
        let c = scene(n, 42);
        let (t_grid, cpu_grid, merged) = measure(20, || merge(&c, &o));
        let (t_brute, cpu_brute, count) = measure(2, || brute_force_count(&c, &o));
        assert_eq!(
            merged.len(),
            count,
            "grid and brute force disagree at n={n}"
        );
        let ratio = match (cpu_grid, cpu_brute) {
            (Some(g), Some(b)) if g > 0.0 => format!("{:.1}x", b / g),
            _ => format!("{:.1}x (wall)", t_brute / t_grid),
        };
        println!(
            "n={n:>7}: grid wall {t_grid:.4} s cpu {}; brute force wall {t_brute:.4} s cpu {}; brute/grid {ratio}; {} clusters",
            fmt_cpu(cpu_grid),
            fmt_cpu(cpu_brute),
            merged.len()
        );
    }
    for n in [100_000usize, 400_000] {
        let c = scene(n, 7);
        let (t, cpu, merged) = measure(10, || merge(&c, &o));
        println!(
            "n={n:>7}: grid wall {t:.4} s cpu {} ({:.0} ns/candidate cpu); {} clusters",
            fmt_cpu(cpu),
            cpu.unwrap_or(t) * 1e9 / n as f64,
            merged.len()
        );
    }
}

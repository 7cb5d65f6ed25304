//! Measured size against phantom truth: every reference nodule of small seeded phantoms is
//! measured at its true centre and the equivalent diameter compared with the truth
//! (`Nodule::diameter_mm`, the equivalent-sphere diameter of the whole nodule, halo included).
//!
//! Run with `-- --nocapture` to see the table per size, density and attachment;
//! docs/evaluation.md ("Measured size") quotes it.

use speck_candidates::measure::{measure, Reliability};
use speck_phantom::{generate, Attachment, Density, DensityMix, PhantomOptions, SizeMix};

struct Row {
    truth_mm: f64,
    measured_mm: f64,
    density: Density,
    attachment: Attachment,
    slice_mm: f64,
    reliability: Reliability,
}

impl Row {
    fn rel(&self) -> f64 {
        self.measured_mm / self.truth_mm - 1.0
    }
}

fn density_mix(seed: u64) -> DensityMix {
    // Every density class in turn, so each gets enough nodules.
    let one = |s, p, g| DensityMix {
        solid: s,
        part_solid: p,
        ground_glass: g,
    };
    match seed % 3 {
        0 => one(1.0, 0.0, 0.0),
        1 => one(0.0, 1.0, 0.0),
        _ => one(0.0, 0.0, 1.0),
    }
}

fn rows_for(seeds: std::ops::Range<u64>, shape: [usize; 3], spacing: [f64; 3]) -> Vec<Row> {
    let mut rows = Vec::new();
    for seed in seeds {
        let opts = PhantomOptions::new(seed)
            .shape(shape)
            .spacing(spacing)
            .nodules(5)
            .size_mix(SizeMix::Luna16)
            .density_mix(density_mix(seed));
        let phantom = match generate(&opts) {
            Ok(p) => p,
            Err(e) => panic!("phantom {seed}: {e}"),
        };
        for n in phantom.truth.reference_nodules() {
            let m = match measure(&phantom.volume, n.centre, None) {
                Ok(m) => m,
                Err(e) => panic!("seed {seed} nodule {}: {e}", n.id),
            };
            let rel = m.equivalent_diameter_mm / n.diameter_mm - 1.0;
            if verbose() || rel.abs() > 0.15 {
                eprintln!(
                "seed {seed:3} id {} {:>12} {:>8} {:>9} truth {:5.2} measured {:5.2} ({:+5.1} %) B {:.0} L {:.0} T {:.0} {}",
                n.id,
                n.density,
                n.attachment,
                n.shape.as_str(),
                n.diameter_mm,
                m.equivalent_diameter_mm,
                100.0 * (m.equivalent_diameter_mm / n.diameter_mm - 1.0),
                m.parenchyma_hu,
                m.lesion_hu,
                m.threshold_hu,
                m.reliability
            );
            }
            rows.push(Row {
                truth_mm: n.diameter_mm,
                measured_mm: m.equivalent_diameter_mm,
                density: n.density,
                attachment: n.attachment,
                slice_mm: spacing[0],
                reliability: m.reliability,
            });
        }
    }
    rows
}

/// `MEASURED_SIZE_VERBOSE=1` prints every nodule, not only those off by more than 15 %.
fn verbose() -> bool {
    std::env::var_os("MEASURED_SIZE_VERBOSE").is_some()
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// `(n, median |error| %, median signed error %)` of a group.
fn stats<'a>(rows: impl Iterator<Item = &'a Row>) -> (usize, f64, f64) {
    let rel: Vec<f64> = rows.map(Row::rel).collect();
    (
        rel.len(),
        100.0 * median(rel.iter().map(|r| r.abs()).collect()),
        100.0 * median(rel.clone()),
    )
}

fn size_bin(d_mm: f64) -> &'static str {
    if d_mm < 4.0 {
        "<4 mm"
    } else if d_mm < 6.0 {
        "4-6 mm"
    } else if d_mm < 10.0 {
        "6-10 mm"
    } else {
        ">=10 mm"
    }
}

/// Which rows a group holds.
type Filter = Box<dyn Fn(&Row) -> bool>;

/// Print one table line per group and return the groups' stats by label.
fn table(rows: &[Row]) -> Vec<(String, (usize, f64, f64))> {
    let mut groups: Vec<(String, Filter)> = Vec::new();
    groups.push(("all >= 4 mm".into(), Box::new(|r: &Row| r.truth_mm >= 4.0)));
    for bin in ["<4 mm", "4-6 mm", "6-10 mm", ">=10 mm"] {
        groups.push((
            format!("size {bin}"),
            Box::new(move |r: &Row| size_bin(r.truth_mm) == bin),
        ));
    }
    for d in [Density::Solid, Density::PartSolid, Density::GroundGlass] {
        groups.push((
            format!("density {d} (>= 4 mm)"),
            Box::new(move |r: &Row| r.density == d && r.truth_mm >= 4.0),
        ));
    }
    for a in [Attachment::Isolated, Attachment::Vessel, Attachment::Pleura] {
        groups.push((
            format!("attachment {a} (>= 4 mm)"),
            Box::new(move |r: &Row| r.attachment == a && r.truth_mm >= 4.0),
        ));
    }
    for z in [1.0, 2.0] {
        groups.push((
            format!("slices {z} mm (>= 4 mm)"),
            Box::new(move |r: &Row| r.slice_mm == z && r.truth_mm >= 4.0),
        ));
    }
    groups.push((
        "flagged reliable (>= 4 mm)".into(),
        Box::new(|r: &Row| r.reliability == Reliability::Reliable && r.truth_mm >= 4.0),
    ));
    eprintln!("| group | n | median abs error | median signed error |");
    eprintln!("|---|---|---|---|");
    let mut out = Vec::new();
    for (label, keep) in groups {
        let st = stats(rows.iter().filter(|r| keep(r)));
        eprintln!("| {label} | {} | {:.1} % | {:+.1} % |", st.0, st.1, st.2);
        out.push((label, st));
    }
    let flagged = rows
        .iter()
        .filter(|r| r.reliability != Reliability::Reliable)
        .count();
    eprintln!("{flagged} of {} nodules flagged unreliable", rows.len());
    out
}

#[test]
fn equivalent_diameter_matches_phantom_truth() {
    // Seeds the method was never tuned on (the ray method was tuned on 400-429 and 500-514, see
    // `tuning_seeds_table`; the earlier one on 0-14 and 100-109); docs/evaluation.md gives the
    // tables.
    let mut rows = rows_for(200..215, [64, 160, 160], [1.0, 0.7, 0.7]);
    rows.extend(rows_for(300..310, [40, 160, 160], [2.0, 0.7, 0.7]));
    let groups = table(&rows);
    let get = |label: &str| {
        groups
            .iter()
            .find(|g| g.0 == label)
            .map(|g| g.1)
            .unwrap_or((0, f64::NAN, f64::NAN))
    };
    // Issue 16 asks for a median |error| <= 10 % and no bias above 5 % for nodules >= 4 mm
    // (4.7 % and +2.6 % when written).
    let (n, abs, signed) = get("all >= 4 mm");
    assert!(n >= 50, "only {n} nodules >= 4 mm");
    assert!(abs <= 10.0, "median |error| {abs:.1} % > 10 %");
    assert!(signed.abs() <= 5.0, "median signed error {signed:+.1} %");
    // Every size >= 4 mm, density and attachment within the 10 %; the bias of a group is
    // reported (4-6 mm nodules ran +5.5 % when written: a one-voxel margin is 12-17 % there).
    for (label, (n, abs, signed)) in &groups {
        let held = label.starts_with("size ") && label != "size <4 mm"
            || label.starts_with("density ")
            || label.starts_with("attachment ");
        if held {
            assert!(*abs <= 10.0, "{label}: n {n}, {abs:.1} %");
        }
        if held && signed.abs() > 5.0 {
            eprintln!("NOTE: {label}: n {n}, {abs:.1} %, signed {signed:+.1} %");
        }
    }
}

/// The seeds the method is tuned on (never the ones above): run with
/// `cargo test -p speck-candidates --release --test measured_size -- --ignored --nocapture`.
#[test]
#[ignore = "tuning set: prints its table, asserts nothing"]
fn tuning_seeds_table() {
    let mut rows = rows_for(400..430, [64, 160, 160], [1.0, 0.7, 0.7]);
    rows.extend(rows_for(500..515, [40, 160, 160], [2.0, 0.7, 0.7]));
    table(&rows);
}

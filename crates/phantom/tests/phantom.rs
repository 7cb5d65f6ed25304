//! Integration tests of the phantom generator on small (64 x 160 x 160) phantoms.

use ndarray::Array3;
use speck_phantom::{
    annotations_csv, excluded_csv, generate, Attachment, Density, Phantom, PhantomOptions, SizeMix,
    ANNOTATIONS_HEADER, EXCLUDED_HEADER,
};
use speck_volume::{VoxelIndex, WorldPoint};

fn small(seed: u64) -> PhantomOptions {
    PhantomOptions::new(seed)
        .shape([64, 160, 160])
        .spacing([1.0, 0.7, 0.7])
        .nodules(6)
        .size_mix(SizeMix::Small)
        .with_lung_mask(true)
}

fn gen(opts: &PhantomOptions) -> Phantom {
    generate(opts).expect("phantom")
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool")
        .install(f)
}

#[test]
fn same_seed_is_bit_identical_with_one_or_two_threads() {
    let opts = small(11);
    let a = in_pool(1, || gen(&opts));
    let b = in_pool(2, || gen(&opts));
    assert_eq!(a.volume.voxels(), b.volume.voxels());
    assert_eq!(a.truth.nodules, b.truth.nodules);
    assert_eq!(a.truth.lung_mask, b.truth.lung_mask);
    assert_eq!(a.truth.series_uid, b.truth.series_uid);
    assert_eq!(a.volume.geometry(), b.volume.geometry());
    let c = gen(&small(12));
    assert_ne!(a.volume.voxels(), c.volume.voxels());
    assert_ne!(a.truth.series_uid, c.truth.series_uid);
}

#[test]
fn nodules_are_dense_inside_the_lungs_and_apart() {
    for seed in [1u64, 2, 3] {
        let p = gen(&small(seed).noise_sd_hu(Some(10.0)));
        let mask = p.truth.lung_mask.as_ref().expect("mask");
        assert_eq!(p.truth.nodules.len(), 6);
        for n in &p.truth.nodules {
            let v = p
                .volume
                .world_to_voxel(n.centre)
                .expect("centre inside the volume");
            assert_ne!(
                mask[v.to_array()],
                0,
                "seed {seed} nodule {} outside the lung mask",
                n.id
            );
            assert!(p.truth.lung_at(n.centre).is_some());
            let sd = p.truth.lung_signed_distance_mm(n.centre);
            assert!(sd < 0.0);
            match n.attachment {
                // Juxtapleural: the surface is within the nodule's radius.
                Attachment::Pleura => assert!(
                    sd > -0.5 * n.diameter_mm,
                    "seed {seed} pleural nodule {} is {sd:.2} mm deep",
                    n.id
                ),
                // Isolated: the whole nodule clears the surface.
                Attachment::Isolated => assert!(sd < -0.5 * n.diameter_mm),
                _ => {}
            }
            let hu = p.volume.get(v).expect("voxel");
            // The brightest voxel next to the centre: a 3-voxel nodule is blurred to ~75 % of
            // its contrast and the nearest voxel centre may be half a voxel off.
            let mut peak = i16::MIN;
            for dz in 0..3 {
                for dy in 0..3 {
                    for dx in 0..3 {
                        let q = VoxelIndex::new(
                            (v.z + dz).saturating_sub(1),
                            (v.y + dy).saturating_sub(1),
                            (v.x + dx).saturating_sub(1),
                        );
                        peak = peak.max(p.volume.get(q).unwrap_or(i16::MIN));
                    }
                }
            }
            if n.density == Density::Solid && n.diameter_vox >= 3.0 {
                assert!(
                    peak > -300,
                    "seed {seed} solid nodule {} peaks at {peak} HU",
                    n.id
                );
            }
            if n.density == Density::Solid && n.diameter_vox >= 4.5 {
                assert!(
                    hu > -300,
                    "seed {seed} solid nodule {} centre at {hu} HU",
                    n.id
                );
            }
            if n.density == Density::PartSolid && n.diameter_mm >= 6.0 {
                assert!(
                    hu > -500,
                    "seed {seed} part-solid nodule {} centre at {hu} HU",
                    n.id
                );
            }
        }
        for (i, a) in p.truth.nodules.iter().enumerate() {
            for b in &p.truth.nodules[i + 1..] {
                let d = a.centre.distance_mm(b.centre);
                assert!(
                    d > 0.5 * (a.diameter_mm + b.diameter_mm),
                    "seed {seed}: nodules {} and {} overlap ({d:.2} mm apart)",
                    a.id,
                    b.id
                );
            }
        }
    }
}

/// Annotated world centres land on the nodules: the contrast a nodule adds (phantom with nodules
/// minus the same seed without, both noiseless) has its centroid at the annotated centre.
#[test]
fn annotated_world_centres_map_back_to_nodule_voxels() {
    let opts = small(5)
        .noise_sd_hu(Some(0.0))
        .density_mix("solid".parse().expect("mix"));
    let with = gen(&opts);
    let without = gen(&opts.clone().nodules(0));
    let a = with.volume.voxels();
    let b = without.volume.voxels();
    let diff: Array3<f64> = ndarray::Zip::from(&a)
        .and(&b)
        .map_collect(|&x, &y| f64::from(x) - f64::from(y));
    let g = with.volume.geometry();
    for n in &with.truth.nodules {
        let c = with.volume.world_to_index(n.centre);
        let r = n.diameter_mm; // search radius: one diameter around the centre
        let (mut w, mut acc) = (0.0, [0.0; 3]);
        for ((z, y, x), &d) in diff.indexed_iter() {
            if d <= 0.0 {
                continue;
            }
            let p = g.voxel_to_world(VoxelIndex::new(z, y, x));
            if p.distance_mm(n.centre) > r {
                continue;
            }
            w += d;
            acc[0] += d * p.x_mm;
            acc[1] += d * p.y_mm;
            acc[2] += d * p.z_mm;
        }
        assert!(w > 0.0, "nodule {} added no contrast around {c:?}", n.id);
        let centroid = WorldPoint::new(acc[0] / w, acc[1] / w, acc[2] / w);
        let err = centroid.distance_mm(n.centre);
        let tol = 0.25 * n.diameter_mm + 0.35;
        assert!(
            err < tol,
            "nodule {} ({:?}, {:.2} mm): contrast centroid {err:.2} mm from the annotation",
            n.id,
            n.attachment,
            n.diameter_mm
        );
    }
}

#[test]
fn tissues_have_realistic_attenuation() {
    let p = gen(&small(21).noise_sd_hu(Some(0.0)).nodules(0));
    let v = p.volume.voxels();
    let mask = p.truth.lung_mask.as_ref().expect("mask");
    let mut lung: Vec<i16> = v
        .iter()
        .zip(mask.iter())
        .filter(|(_, m)| **m != 0)
        .map(|(x, _)| *x)
        .collect();
    assert!(
        lung.len() > 10_000,
        "lungs too small: {} voxels",
        lung.len()
    );
    lung.sort_unstable();
    let median = lung[lung.len() / 2];
    assert!((-910..=-800).contains(&median), "lung median {median} HU");
    // Vessels make a few per cent of the lung bright.
    let bright = lung.iter().filter(|x| **x > -500).count() as f64 / lung.len() as f64;
    assert!((0.005..0.25).contains(&bright), "vessel fraction {bright}");
    let count = |lo: i16, hi: i16| v.iter().filter(|x| (lo..=hi).contains(*x)).count();
    let n = v.len();
    assert!(count(-1010, -990) > n / 10, "air");
    assert!(count(-120, -70) > n / 200, "fat");
    assert!(count(30, 65) > n / 50, "muscle");
    assert!(count(600, 1000) > n / 2000, "cortical bone");
    let (mn, mx, _) = p.volume.hu_stats();
    assert!(mn >= -3024 && mx <= 3071);
    assert!(
        mask.iter().any(|&m| m == 1) && mask.iter().any(|&m| m == 2),
        "both lungs"
    );
}

#[test]
fn noise_has_the_requested_sd() {
    let opts = small(8).nodules(0);
    let clean = gen(&opts.clone().noise_sd_hu(Some(0.0)));
    let noisy = gen(&opts.noise_sd_hu(Some(20.0)));
    let (a, b) = (noisy.volume.voxels(), clean.volume.voxels());
    let d: Vec<f64> = a
        .iter()
        .zip(b.iter())
        .filter(|(x, y)| **x > -1000 && **y > -1000 && **x < 3000 && **y > -990)
        .map(|(x, y)| f64::from(*x) - f64::from(*y))
        .collect();
    let mean = d.iter().sum::<f64>() / d.len() as f64;
    let sd = (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / d.len() as f64).sqrt();
    assert!((sd - 20.0).abs() < 1.5, "noise sd {sd}");
    assert!(mean.abs() < 1.0, "noise mean {mean}");
}

#[test]
fn annotation_csvs_have_the_luna16_columns() {
    let p = gen(&small(3).nodules(8));
    let csv = annotations_csv([&p.truth]).expect("csv");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some(ANNOTATIONS_HEADER));
    assert_eq!(
        ANNOTATIONS_HEADER,
        "seriesuid,coordX,coordY,coordZ,diameter_mm,diameter_vox,density,attachment"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let reference: Vec<_> = p.truth.reference_nodules().collect();
    assert_eq!(rows.len(), reference.len());
    for (row, n) in rows.iter().zip(&reference) {
        assert_eq!(row.len(), 8);
        assert_eq!(row[0], p.truth.series_uid);
        let num = |i: usize| row[i].parse::<f64>().expect("number");
        assert!((num(1) - n.centre.x_mm).abs() < 1e-3);
        assert!((num(2) - n.centre.y_mm).abs() < 1e-3);
        assert!((num(3) - n.centre.z_mm).abs() < 1e-3);
        assert!((num(4) - n.diameter_mm).abs() < 1e-3);
        assert!((num(5) - n.diameter_mm / 0.7).abs() < 1e-3);
        assert!(num(5) >= 3.0);
        assert!(["solid", "part-solid", "ground-glass"].contains(&row[6]));
        assert!(["isolated", "vessel", "pleura"].contains(&row[7]));
    }
    let ex = excluded_csv([&p.truth]).expect("csv");
    let mut lines = ex.lines();
    assert_eq!(lines.next(), Some(EXCLUDED_HEADER));
    let n_ex = lines.count();
    assert_eq!(n_ex + rows.len(), p.truth.nodules.len());
    assert!(p.truth.excluded_nodules().all(|n| n.diameter_vox < 3.0));
    assert!(p.truth.series_uid.starts_with("2.25.") && p.truth.series_uid.len() <= 64);
    assert_eq!(
        p.truth.series_uid,
        speck_phantom::series_uid(&small(3).nodules(8))
    );
}

/// Issue 21, item 2: `--seed 3` at two sizes gave the same SeriesInstanceUID, so two different
/// scans (and their annotations) shared one id. The UID now depends on every generation
/// parameter, and stays deterministic.
#[test]
fn series_uids_depend_on_every_generation_parameter_not_only_the_seed() {
    let tiny = |seed: u64| {
        PhantomOptions::new(seed)
            .shape([24, 64, 64])
            .spacing([2.0, 1.5, 1.5])
            .nodules(1)
            .size_mix(SizeMix::Small)
    };
    let a = gen(&tiny(3));
    let b = gen(&tiny(3).shape([24, 72, 72]));
    assert_ne!(a.truth.series_uid, b.truth.series_uid, "two sizes, one UID");
    assert_eq!(a.truth.series_uid, gen(&tiny(3)).truth.series_uid);
    assert_eq!(a.truth.series_uid, speck_phantom::series_uid(&tiny(3)));
    let uid = |o: &PhantomOptions| speck_phantom::series_uid(o);
    let base = uid(&tiny(3));
    let variants = [
        tiny(4),
        tiny(3).spacing([2.0, 1.5, 1.4]),
        tiny(3).nodules(2),
        tiny(3).size_mix(SizeMix::Luna16),
        tiny(3).noise_sd_hu(Some(20.0)),
        tiny(3).density_mix("solid".parse().expect("mix")),
        tiny(3).attachment_mix("pleura".parse().expect("mix")),
        PhantomOptions {
            reference_min_vox: 2.5,
            ..tiny(3)
        },
        PhantomOptions {
            psf_sigma_mm: 0.6,
            ..tiny(3)
        },
    ];
    let mut seen = std::collections::BTreeSet::from([base.clone()]);
    for v in &variants {
        assert!(seen.insert(uid(v)), "{v:?} shares a UID");
    }
    // The lung mask is an extra output, not another image.
    assert_eq!(uid(&tiny(3).with_lung_mask(true)), base);
}

#[test]
fn impossible_requests_are_errors_not_panics() {
    let too_many = small(1).nodules(60).size_mix(SizeMix::Uniform);
    assert!(matches!(
        generate(&too_many),
        Err(speck_phantom::PhantomError::Placement { .. })
    ));
    assert!(matches!(
        generate(&small(1).shape([8, 160, 160])),
        Err(speck_phantom::PhantomError::InvalidOptions(_))
    ));
}

/// The annotation files are byte-identical to the format written before they went through
/// `speck_volume::luna16`'s rows: four decimals, `\n` line ends, no quoting, the header even
/// without rows.
#[test]
fn annotation_csv_bytes_are_pinned() {
    use std::fmt::Write as _;
    let truths: Vec<_> = [11, 12]
        .into_iter()
        .map(|seed| gen(&small(seed).nodules(6)).truth)
        .collect();
    let mut ann = format!("{ANNOTATIONS_HEADER}\n");
    let mut ex = format!("{EXCLUDED_HEADER}\n");
    for t in &truths {
        for n in t.reference_nodules() {
            let c = n.centre;
            let _ = writeln!(
                ann,
                "{},{:.4},{:.4},{:.4},{:.4},{:.4},{},{}",
                t.series_uid,
                c.x_mm,
                c.y_mm,
                c.z_mm,
                n.diameter_mm,
                n.diameter_vox,
                n.density,
                n.attachment
            );
        }
        for n in t.excluded_nodules() {
            let c = n.centre;
            let _ = writeln!(
                ex,
                "{},{:.4},{:.4},{:.4},{:.4}",
                t.series_uid, c.x_mm, c.y_mm, c.z_mm, n.diameter_mm
            );
        }
    }
    assert!(
        ann.lines().count() > 2 && ex.lines().count() > 1,
        "{ann}{ex}"
    );
    assert_eq!(annotations_csv(&truths).expect("csv"), ann);
    assert_eq!(excluded_csv(&truths).expect("csv"), ex);
    let none: [&speck_phantom::GroundTruth; 0] = [];
    assert_eq!(
        annotations_csv(none).expect("csv"),
        format!("{ANNOTATIONS_HEADER}\n")
    );
}

#[test]
fn writes_scan_and_annotations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = gen(&small(7).nodules(3));
    speck_phantom::write_annotations(dir.path(), [&p.truth]).expect("annotations");
    let text = std::fs::read_to_string(dir.path().join("annotations.csv")).expect("read");
    assert!(text.starts_with(ANNOTATIONS_HEADER));
    assert!(dir.path().join("annotations_excluded.csv").exists());
    match speck_phantom::write_scan(&p, dir.path(), speck_phantom::OutputFormat::Nifti) {
        Ok(path) => {
            assert_eq!(
                path,
                dir.path().join(format!("{}.nii.gz", p.truth.series_uid))
            );
            if let Ok(back) = speck_volume::open(&path) {
                assert_eq!(back.shape_zyx(), p.volume.shape_zyx());
                assert_eq!(back.voxels(), p.volume.voxels());
                let (g0, g1) = (back.geometry(), p.volume.geometry());
                assert!(g0.origin.distance_mm(g1.origin) < 1e-3);
            }
        }
        Err(e) => eprintln!("note: NIfTI writer not available yet: {e}"),
    }
}

//! The LUNA16 protocol on small, hand-computed cases.

use speck_eval::{
    evaluate, parse_annotations, parse_candidates, parse_excluded, EvalOptions, Evaluation,
    ExcludedFinding, Nodule, ScoredCandidate,
};
use speck_volume::WorldPoint;

fn nod(s: &str, x: f64, y: f64, z: f64, d: f64) -> Nodule {
    Nodule {
        seriesuid: s.into(),
        center: WorldPoint::new(x, y, z),
        diameter_mm: d,
        diameter_vox: None,
        density: None,
        attachment: None,
        n_readers: None,
    }
}

fn cand(s: &str, x: f64, y: f64, z: f64, p: f64) -> ScoredCandidate {
    ScoredCandidate {
        seriesuid: s.into(),
        center: WorldPoint::new(x, y, z),
        probability: p,
    }
}

fn sens(e: &Evaluation) -> Vec<f64> {
    e.sensitivity_at_fp
        .iter()
        .map(|p| p.sensitivity.expect("nodules"))
        .collect()
}

fn no_bootstrap() -> EvalOptions {
    EvalOptions::default().with_bootstrap(0)
}

/// The worked example of docs/evaluation.md.
fn example() -> (Vec<Nodule>, Vec<ExcludedFinding>, Vec<ScoredCandidate>) {
    let nodules = vec![
        nod("s1", 0.0, 0.0, 0.0, 6.0),
        nod("s1", 50.0, 0.0, 0.0, 6.0),
        nod("s2", 0.0, 0.0, 0.0, 6.0),
        nod("s3", 0.0, 0.0, 0.0, 6.0),
    ];
    let excluded = vec![ExcludedFinding {
        seriesuid: "s3".into(),
        center: WorldPoint::new(40.0, 0.0, 0.0),
        diameter_mm: -1.0,
    }];
    let candidates = vec![
        cand("s1", 0.0, 0.0, 0.0, 0.9),   // hits n1
        cand("s1", 1.0, 1.0, 1.0, 0.5),   // hits n1 again: ignored
        cand("s1", 54.0, 0.0, 0.0, 0.4),  // 4 mm from n2 (radius 3): FP
        cand("s1", 20.0, 0.0, 0.0, 0.3),  // FP
        cand("s2", 2.0, 2.0, 0.0, 0.4),   // 2.83 mm from n3: hit
        cand("s2", -30.0, 0.0, 0.0, 0.4), // FP, tied with the hit
        cand("s3", 43.0, 0.0, 0.0, 0.95), // 3 mm from the excluded finding (10 mm): ignored
        cand("s3", 0.0, 3.0, 0.0, 0.6),   // exactly on n4's radius: not a hit, FP
        cand("s4", 0.0, 0.0, 0.0, 0.2),   // scan without nodules: FP
        cand("s4", 10.0, 0.0, 0.0, 0.1),  // FP
    ];
    (nodules, excluded, candidates)
}

#[test]
fn exact_centres_give_sensitivity_one_and_cpm_one() {
    let nodules: Vec<Nodule> = (0..12)
        .map(|i| {
            nod(
                &format!("scan{}", i % 5),
                f64::from(i) * 13.0,
                -40.0,
                100.0,
                3.0 + f64::from(i % 4),
            )
        })
        .collect();
    let cands: Vec<ScoredCandidate> = nodules
        .iter()
        .enumerate()
        .map(|(i, n)| ScoredCandidate {
            seriesuid: n.seriesuid.clone(),
            center: n.center,
            probability: 0.5 + i as f64 / 100.0,
        })
        .collect();
    let e = evaluate(&nodules, &[], &cands, None, &EvalOptions::default()).expect("eval");
    assert_eq!(sens(&e), vec![1.0; 7]);
    assert_eq!(e.cpm, 1.0);
    assert_eq!(e.cpm_ci95, Some([1.0, 1.0]));
    assert_eq!(e.candidates.false_positives, 0);
    for g in &e.by_size.mm {
        if g.n_nodules > 0 {
            assert_eq!(g.cpm, Some(1.0), "{g:?}");
        }
    }
}

#[test]
fn hand_computed_cpm() {
    let (nodules, excluded, candidates) = example();
    let e = evaluate(&nodules, &excluded, &candidates, None, &no_bootstrap()).expect("eval");
    // Kept entries (score, kind), by descending score:
    //   0.9 TP(n1) | 0.6 FP(s3) | 0.4 TP(n3), FP(s1), FP(s2) | 0.3 FP | 0.2 FP | 0.1 FP
    //   (0.5: duplicate hit on n1, ignored; 0.95: on the excluded finding, ignored;
    //    n2 and n4 are missed). 4 nodules, 4 scans, 6 false positives.
    // FROC points (FP/scan = FPs/4, sensitivity = TPs/4):
    //   (0, 0) → 0.9: (0, 0.25) → 0.6: (0.25, 0.25) → 0.4: (0.75, 0.5) → 0.3: (1.0, 0.5)
    //   → 0.2: (1.25, 0.5) → 0.1: (1.5, 0.5)
    // numpy.interp at the seven rates:
    //   1/8: between (0, 0.25) and (0.25, 0.25)        → 0.25
    //   1/4: on (0.25, 0.25)                           → 0.25
    //   1/2: between (0.25, 0.25) and (0.75, 0.5)      → 0.25 + 0.25 × (0.25 / 0.5) = 0.375
    //   1:   on (1.0, 0.5)                             → 0.5
    //   2, 4, 8: past the last point (1.5, 0.5)        → 0.5
    // CPM = (0.25 + 0.25 + 0.375 + 0.5 + 0.5 + 0.5 + 0.5) / 7 = 2.875 / 7 = 0.4107142857…
    let expected = [0.25, 0.25, 0.375, 0.5, 0.5, 0.5, 0.5];
    for (got, want) in sens(&e).iter().zip(expected) {
        assert!((got - want).abs() < 1e-12, "{:?}", sens(&e));
    }
    assert!((e.cpm - 2.875 / 7.0).abs() < 1e-12, "{}", e.cpm);
    assert_eq!(e.n_scans, 4);
    assert_eq!(e.n_nodules, 4);
    assert_eq!(e.n_detected, 2);
    let c = e.candidates;
    assert_eq!(
        (
            c.false_positives,
            c.duplicate_hits,
            c.on_excluded,
            c.on_nodules
        ),
        (6, 1, 1, 3)
    );
    assert!((e.max_sensitivity - 0.5).abs() < 1e-12);
    assert!((e.max_fp_per_scan - 1.5).abs() < 1e-12);
    // The FROC curve is the one written out above.
    let pts: Vec<(f64, f64)> = e
        .froc
        .iter()
        .map(|p| (p.fp_per_scan, p.sensitivity))
        .collect();
    let want = [
        (0.0, 0.0),
        (0.0, 0.25),
        (0.25, 0.25),
        (0.75, 0.5),
        (1.0, 0.5),
        (1.25, 0.5),
        (1.5, 0.5),
    ];
    assert_eq!(pts.len(), want.len());
    for (a, b) in pts.iter().zip(want) {
        assert!(
            (a.0 - b.0).abs() < 1e-12 && (a.1 - b.1).abs() < 1e-12,
            "{pts:?}"
        );
    }
}

#[test]
fn scans_without_nodules_or_candidates_count_in_fp_per_scan() {
    let (nodules, excluded, candidates) = example();
    let series: Vec<String> = ["s1", "s2", "s3", "s4", "s5"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let e = evaluate(
        &nodules,
        &excluded,
        &candidates,
        Some(&series),
        &no_bootstrap(),
    )
    .expect("eval");
    // Same entries, 5 scans: FP/scan = FPs/5.
    //   points (0, 0.25), (0.2, 0.25), (0.6, 0.5), (0.8, 0.5), (1.0, 0.5), (1.2, 0.5)
    //   1/8 → 0.25; 1/4 → 0.25 + 0.25 × (0.05 / 0.4) = 0.28125;
    //   1/2 → 0.25 + 0.25 × (0.3 / 0.4) = 0.4375; 1, 2, 4, 8 → 0.5
    // CPM = (0.25 + 0.28125 + 0.4375 + 4 × 0.5) / 7 = 2.96875 / 7
    assert_eq!(e.n_scans, 5);
    assert!((e.cpm - 2.96875 / 7.0).abs() < 1e-12, "{}", e.cpm);
    let s = sens(&e);
    assert!(
        (s[1] - 0.28125).abs() < 1e-12 && (s[2] - 0.4375).abs() < 1e-12,
        "{s:?}"
    );
}

#[test]
fn excluded_findings_are_ignored_not_false_positives() {
    let (nodules, _, candidates) = example();
    let e = evaluate(&nodules, &[], &candidates, None, &no_bootstrap()).expect("eval");
    // Without the excluded list the 0.95 mark becomes the first FP:
    //   (0, 0) → 0.95: (0.25, 0) → 0.9: (0.25, 0.25) → 0.6: (0.5, 0.25) → 0.4: (1.0, 0.5) …
    //   1/8 → 0; 1/4 → 0.25; 1/2 → 0.25; 1, 2, 4, 8 → 0.5. CPM = 2.5 / 7.
    assert_eq!(e.candidates.on_excluded, 0);
    assert_eq!(e.candidates.false_positives, 7);
    assert!((e.cpm - 2.5 / 7.0).abs() < 1e-12, "{}", e.cpm);
}

#[test]
fn multiple_hits_count_once_at_the_highest_probability() {
    let nodules = vec![
        nod("a", 0.0, 0.0, 0.0, 10.0),
        nod("a", 100.0, 0.0, 0.0, 10.0),
    ];
    let c = vec![
        cand("a", 1.0, 0.0, 0.0, 0.3),
        cand("a", 0.0, 2.0, 0.0, 0.8),
        cand("a", 0.0, 0.0, -3.0, 0.5),
        cand("a", 60.0, 0.0, 0.0, 0.6), // one FP in one scan: 1 FP/scan
    ];
    let e = evaluate(&nodules, &[], &c, None, &no_bootstrap()).expect("eval");
    assert_eq!(e.candidates.duplicate_hits, 2);
    assert_eq!(e.candidates.false_positives, 1);
    // Points: (0,0) → 0.8: (0, 0.5) → 0.6: (1, 0.5). The duplicates at 0.5 and 0.3 would
    // have pushed FP/scan to 3 had they counted.
    assert_eq!(sens(&e), vec![0.5; 7]);
    assert!((e.max_fp_per_scan - 1.0).abs() < 1e-12);
}

#[test]
fn cap_of_100_marks_per_scan_like_the_official_script() {
    let nodules = vec![nod("a", 0.0, 0.0, 0.0, 6.0)];
    // 150 FPs at descending scores, and the hit ranked 120th: dropped by the cap.
    let mut c: Vec<ScoredCandidate> = (0..150)
        .map(|i| {
            cand(
                "a",
                100.0 + f64::from(i) * 10.0,
                0.0,
                0.0,
                1.0 - f64::from(i) / 1000.0,
            )
        })
        .collect();
    c.push(cand("a", 0.0, 0.0, 0.0, 1.0 - 119.5 / 1000.0));
    let e = evaluate(&nodules, &[], &c, None, &no_bootstrap()).expect("eval");
    assert_eq!(e.candidates.over_cap, 51);
    assert_eq!(e.n_detected, 0);
    assert_eq!(e.cpm, 0.0);
    let opts = no_bootstrap().with_max_marks_per_scan(None);
    let e = evaluate(&nodules, &[], &c, None, &opts).expect("eval");
    assert_eq!(e.n_detected, 1);
    // The hit comes after 120 FPs in one scan: sensitivity 0 up to 8 FP/scan, then 1 at the
    // end of the curve (150 FP/scan).
    assert_eq!(sens(&e), vec![0.0; 7]);
    assert_eq!(e.max_sensitivity, 1.0);
}

#[test]
fn bootstrap_is_deterministic_and_brackets_the_estimate() {
    // 40 scans, 60 nodules, detected with scores that overlap the FP scores.
    let mut nodules = Vec::new();
    let mut cands = Vec::new();
    let mut s: u64 = 12345;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % 10_000) as f64 / 10_000.0
    };
    for scan in 0..40 {
        let id = format!("scan{scan:02}");
        for k in 0..(scan % 3) {
            let x = f64::from(k) * 40.0;
            nodules.push(nod(&id, x, 0.0, 0.0, 5.0));
            if rnd() < 0.8 {
                cands.push(cand(&id, x + 1.0, 0.0, 0.0, 0.3 + 0.7 * rnd()));
            }
        }
        for k in 0..6 {
            cands.push(cand(&id, 500.0 + f64::from(k) * 20.0, 0.0, 0.0, rnd()));
        }
    }
    let opts = EvalOptions::default().with_bootstrap(300).with_seed(7);
    let a = evaluate(&nodules, &[], &cands, None, &opts).expect("eval");
    let b = evaluate(&nodules, &[], &cands, None, &opts).expect("eval");
    assert_eq!(a, b);
    let [lo, hi] = a.cpm_ci95.expect("ci");
    assert!(lo <= a.cpm && a.cpm <= hi && lo < hi, "{lo} {} {hi}", a.cpm);
    for p in &a.sensitivity_at_fp {
        let [lo, hi] = p.ci95.expect("ci");
        let v = p.sensitivity.expect("s");
        assert!(lo <= v && v <= hi, "{p:?}");
    }
    let c = evaluate(&nodules, &[], &cands, None, &opts.clone().with_seed(8)).expect("eval");
    assert_ne!(a.cpm_ci95, c.cpm_ci95);
    assert_eq!(a.cpm, c.cpm);
    // Same result on one thread.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let d = pool.install(|| evaluate(&nodules, &[], &cands, None, &opts).expect("eval"));
    assert_eq!(a, d);
}

#[test]
fn size_bins_density_attachment_and_readers() {
    let text =
        "seriesuid,coordX,coordY,coordZ,diameter_mm,diameter_vox,density,attachment,n_readers\n\
                a,0,0,0,2.1,3,solid,isolated,4\n\
                a,50,0,0,2.8,4,ground-glass,vessel,1\n\
                b,0,0,0,3.5,5,solid,pleura,2\n\
                b,50,0,0,7.0,10,part-solid,isolated,3\n\
                c,0,0,0,12.0,17.1,solid,isolated,4\n";
    let ann = parse_annotations(std::path::Path::new("a.csv"), text).expect("ann");
    // Hit every nodule except the 4-voxel one; one FP per scan at low score.
    let cands = parse_candidates(
        std::path::Path::new("c.csv"),
        "seriesuid,coordX,coordY,coordZ,probability\n\
         a,0,0,0,0.9\nb,0,0,0,0.8\nb,50,0,0,0.7\nc,0,0,0,0.6\n\
         a,-90,0,0,0.1\nb,-90,0,0,0.1\nc,-90,0,0,0.1\n",
    )
    .expect("cands");
    let e = evaluate(&ann.nodules, &[], &cands, None, &no_bootstrap()).expect("eval");
    let vox = e.by_size.vox.as_ref().expect("vox bins");
    let got: Vec<(&str, usize, usize)> = vox
        .iter()
        .map(|g| (g.label.as_str(), g.n_nodules, g.n_detected))
        .collect();
    assert_eq!(
        got,
        [
            ("3", 1, 1),
            ("4", 1, 0),
            ("5", 1, 1),
            ("6-8", 0, 0),
            ("9+", 2, 2)
        ]
    );
    assert_eq!(vox[1].cpm, Some(0.0));
    assert_eq!(vox[0].cpm, Some(1.0));
    assert_eq!(vox[3].cpm, None);
    let mm: Vec<(&str, usize)> = e
        .by_size
        .mm
        .iter()
        .map(|g| (g.label.as_str(), g.n_nodules))
        .collect();
    assert_eq!(mm, [("<4", 3), ("4-6", 0), ("6-10", 1), (">=10", 1)]);
    let den: Vec<(&str, usize)> = e
        .by_density
        .as_ref()
        .expect("density")
        .iter()
        .map(|g| (g.label.as_str(), g.n_nodules))
        .collect();
    assert_eq!(den, [("ground-glass", 1), ("part-solid", 1), ("solid", 3)]);
    assert_eq!(e.by_attachment.as_ref().expect("att").len(), 3);
    let rd: Vec<(&str, usize, usize)> = e
        .by_readers
        .as_ref()
        .expect("readers")
        .iter()
        .map(|g| (g.label.as_str(), g.n_nodules, g.n_detected))
        .collect();
    assert_eq!(
        rd,
        [(">=1", 5, 4), (">=2", 4, 4), (">=3", 3, 3), (">=4", 2, 2)]
    );
    // Consensus >=2 as the reference: the 1-reader nodule becomes an excluded finding.
    let opts = no_bootstrap().with_min_readers(2);
    let e2 = evaluate(&ann.nodules, &[], &cands, None, &opts).expect("eval");
    assert_eq!((e2.n_nodules, e2.n_below_min_readers), (4, 1));
    assert_eq!(e2.cpm, 1.0);
    // Reader threshold without reader information is refused.
    let plain: Vec<Nodule> = ann
        .nodules
        .iter()
        .cloned()
        .map(|mut n| {
            n.n_readers = None;
            n
        })
        .collect();
    assert!(evaluate(&plain, &[], &cands, None, &opts).is_err());
}

#[test]
fn voxel_bins_from_voxel_size_and_excluded_csv() {
    let ann = parse_annotations(
        std::path::Path::new("a.csv"),
        "seriesuid,coordX,coordY,coordZ,diameter_mm\na,0,0,0,2.1\na,9,0,0,3.5\n",
    )
    .expect("ann");
    let ex = parse_excluded(
        std::path::Path::new("e.csv"),
        "seriesuid,coordX,coordY,coordZ,diameter_mm\na,30,0,0,-1\n",
    )
    .expect("ex");
    let cands = parse_candidates(
        std::path::Path::new("c.csv"),
        "seriesuid,coordX,coordY,coordZ,probability,extra\na,0,0,0,0.9,x\na,34.9,0,0,0.95,y\n",
    )
    .expect("cands");
    let e = evaluate(&ann.nodules, &ex, &cands, None, &no_bootstrap()).expect("eval");
    assert!(e.by_size.vox.is_none());
    assert_eq!(e.candidates.on_excluded, 1);
    let opts = no_bootstrap().with_voxel_mm(Some(0.7));
    let e = evaluate(&ann.nodules, &ex, &cands, None, &opts).expect("eval");
    let vox = e.by_size.vox.expect("vox");
    assert_eq!((vox[0].n_nodules, vox[2].n_nodules), (1, 1));
    assert_eq!(vox[0].cpm, Some(1.0));
    assert_eq!(vox[2].cpm, Some(0.0));
}

#[test]
fn no_nodules_is_an_error() {
    let c = vec![cand("a", 0.0, 0.0, 0.0, 0.5)];
    let err = evaluate(&[], &[], &c, None, &no_bootstrap()).expect_err("no nodules");
    assert!(err.to_string().contains("no included nodules"), "{err}");
}

//! Properties: any orthonormal direction (proper or improper), spacing and origin survives a
//! NIfTI and a MetaImage write/read; and no mutation of a valid file's header makes the readers
//! panic (they return a volume or a typed error).

use ndarray::Array3;
use proptest::prelude::*;
use speck_volume::metaimage::{read_metaimage, write_metaimage};
use speck_volume::nifti::{read_nifti, write_nifti};
use speck_volume::{Direction, Geometry, LoadOptions, Provenance, Spacing, Volume, WorldPoint};

fn rotation(a: f64, b: f64, c: f64, flip: bool) -> Direction {
    let (ca, sa, cb, sb, cc, sc) = (a.cos(), a.sin(), b.cos(), b.sin(), c.cos(), c.sin());
    let rx = [[1.0, 0.0, 0.0], [0.0, ca, -sa], [0.0, sa, ca]];
    let ry = [[cb, 0.0, sb], [0.0, 1.0, 0.0], [-sb, 0.0, cb]];
    let rz = [[cc, -sc, 0.0], [sc, cc, 0.0], [0.0, 0.0, 1.0]];
    let mul = |p: [[f64; 3]; 3], q: [[f64; 3]; 3]| -> [[f64; 3]; 3] {
        std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| p[i][k] * q[k][j]).sum()))
    };
    let mut m = mul(rz, mul(ry, rx));
    if flip {
        for row in m.iter_mut() {
            row[1] = -row[1];
        }
    }
    Direction::from_rows(m).expect("rotation")
}

fn volume(g: Geometry) -> Volume {
    let v = Array3::from_shape_fn((2, 3, 4), |(z, y, x)| {
        (z * 12 + y * 4 + x) as i16 * 37 - 400
    });
    Volume::new(v, g, Provenance::default()).expect("volume")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn geometry_survives_nifti_and_metaimage(
        a in -3.2f64..3.2, b in -1.5f64..1.5, c in -3.2f64..3.2, flip: bool,
        sx in 0.2f64..6.0, sy in 0.2f64..6.0, sz in 0.2f64..6.0,
        ox in -400.0f64..400.0, oy in -400.0f64..400.0, oz in -1000.0f64..1000.0,
    ) {
        let g = Geometry::new(
            Spacing::new(sx, sy, sz).expect("spacing"),
            WorldPoint::new(ox, oy, oz),
            rotation(a, b, c, flip),
        );
        let v = volume(g);
        let dir = tempfile::tempdir().expect("tempdir");
        let nii = dir.path().join("p.nii");
        write_nifti(&v, &nii).expect("write nifti");
        let n = read_nifti(&nii, &LoadOptions::default()).expect("read nifti");
        let mhd = dir.path().join("p.mhd");
        write_metaimage(&v, &mhd).expect("write mhd");
        let m = read_metaimage(&mhd, &LoadOptions::default()).expect("read mhd");
        prop_assert_eq!(n.voxels(), v.voxels());
        prop_assert_eq!(m.voxels(), v.voxels());
        // f32 in NIfTI: relative 1e-6 of the largest coordinate.
        for (back, tol) in [(&n, 2e-4), (&m, 1e-9)] {
            let (p, q) = (back.geometry(), v.geometry());
            for i in 0..3 {
                prop_assert!((p.origin.to_array()[i] - q.origin.to_array()[i]).abs() < tol);
                prop_assert!((p.spacing.xyz()[i] - q.spacing.xyz()[i]).abs() < tol);
                for j in 0..3 {
                    let (x, y) = (p.direction.rows()[i][j], q.direction.rows()[i][j]);
                    prop_assert!((x - y).abs() < tol.max(1e-6), "{:?} vs {:?}", p.direction, q.direction);
                }
            }
        }
    }

    #[test]
    fn mutated_nifti_headers_never_panic(
        edits in proptest::collection::vec((0usize..352, any::<u8>()), 1..6),
        gzip: bool,
    ) {
        let g = Geometry::new(Spacing::isotropic(1.0).expect("s"), WorldPoint::default(), Direction::IDENTITY);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(if gzip { "m.nii.gz" } else { "m.nii" });
        let plain = dir.path().join("plain.nii");
        write_nifti(&volume(g), &plain).expect("write");
        let mut bytes = std::fs::read(&plain).expect("read");
        for (off, val) in edits {
            bytes[off] = val;
        }
        if gzip {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&bytes).expect("gz");
            bytes = e.finish().expect("gz");
        }
        std::fs::write(&path, &bytes).expect("write");
        let _ = read_nifti(&path, &LoadOptions::default());
    }

    #[test]
    fn mutated_metaimage_headers_never_panic(
        line in 0usize..12,
        value in "[ -~]{0,24}",
    ) {
        let g = Geometry::new(Spacing::isotropic(1.0).expect("s"), WorldPoint::default(), Direction::IDENTITY);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.mha");
        write_metaimage(&volume(g), &path).expect("write");
        let bytes = std::fs::read(&path).expect("read");
        let text_len = bytes.windows(15).position(|w| w == b"ElementDataFile").expect("key") + 24;
        let text = String::from_utf8_lossy(&bytes[..text_len]).into_owned();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let k = line % lines.len();
        if let Some((key, _)) = lines[k].clone().split_once('=') {
            lines[k] = format!("{key}= {value}");
        }
        let mut out = lines.join("\n").into_bytes();
        out.push(b'\n');
        out.extend_from_slice(&bytes[text_len..]);
        std::fs::write(&path, &out).expect("write");
        let _ = read_metaimage(&path, &LoadOptions::default());
    }
}

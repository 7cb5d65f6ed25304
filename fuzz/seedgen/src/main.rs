//! Writes the seed corpora of every fuzz target into `fuzz/corpus/<target>/` (gitignored), from
//! small volumes written by Speck's own writers, so nothing large is committed.
//!
//! Usage (from `fuzz/`): `cargo run -p speck-fuzz-seedgen -- [EXTRA_DICOM_DIR]`. When given,
//! every `.dcm` under 256 KiB in `EXTRA_DICOM_DIR` (e.g. pydicom's `data/test_files`, which has
//! JPEG, JPEG-LS, JPEG 2000, RLE, deflate, big-endian and multi-frame files) is added to the
//! `dicom_file` corpus too.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::Array3;
use speck_volume::dicom::{write_series, DicomWriteOptions};
use speck_volume::metaimage::{write_metaimage_with, MetaImageWriteOptions};
use speck_volume::nifti::{write_nifti, write_nifti_f32};
use speck_volume::{Direction, Geometry, Provenance, Spacing, Volume, WorldPoint};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn volume(shape: (usize, usize, usize), oblique: bool) -> Res<Volume> {
    let direction = if oblique {
        let (c, s) = (0.3f64.cos(), 0.3f64.sin());
        Direction::from_rows([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])?
    } else {
        Direction::IDENTITY
    };
    let g = Geometry::new(
        Spacing::new(0.7, 0.8, 2.5)?,
        WorldPoint::new(-180.0, -170.0, -300.0),
        direction,
    );
    let v = Array3::from_shape_fn(shape, |(z, y, x)| (z * 100 + y * 10 + x) as i16 - 1000);
    Ok(Volume::new(v, g, Provenance::default())?)
}

fn corpus(root: &Path, target: &str) -> Res<PathBuf> {
    let d = root.join(target);
    fs::create_dir_all(&d)?;
    Ok(d)
}

fn main() -> Res<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let tmp = std::env::temp_dir().join(format!("speck-seedgen-{}", std::process::id()));
    fs::create_dir_all(&tmp)?;
    let small = volume((3, 4, 5), false)?;
    let oblique = volume((4, 3, 3), true)?;

    // NIfTI: int16 and float32, plain and gzipped, and a qform-only copy.
    let d = corpus(&root, "nifti")?;
    write_nifti(&small, &d.join("small.nii"))?;
    write_nifti(&oblique, &d.join("oblique.nii"))?;
    write_nifti(&small, &tmp.join("small.nii.gz"))?;
    fs::copy(tmp.join("small.nii.gz"), d.join("small_gz"))?;
    let f = small.to_f32();
    write_nifti_f32(f.view(), small.geometry(), &d.join("float.nii"))?;
    let mut q = fs::read(d.join("oblique.nii"))?;
    q[254..256].copy_from_slice(&0i16.to_le_bytes()); // sform_code = 0: geometry from the qform
    fs::write(d.join("qform_only.nii"), q)?;

    // MetaImage: .mha (raw and zlib) and .mhd + d.raw joined by the target's marker.
    let d = corpus(&root, "metaimage")?;
    for (name, compress) in [("plain", false), ("zlib", true)] {
        let p = tmp.join(format!("{name}.mha"));
        write_metaimage_with(&oblique, &p, MetaImageWriteOptions { compress })?;
        fs::copy(&p, d.join(format!("{name}.mha")))?;
        let p = tmp.join("d.mhd");
        write_metaimage_with(&small, &p, MetaImageWriteOptions { compress })?;
        let raw = tmp.join(if compress { "d.zraw" } else { "d.raw" });
        let header = fs::read_to_string(&p)?.replace("d.zraw", "d.raw");
        let mut joined = header.into_bytes();
        if joined.last() == Some(&b'\n') {
            joined.pop();
        }
        joined.extend_from_slice(b"\n@@DATA@@\n");
        joined.extend_from_slice(&fs::read(raw)?);
        fs::write(d.join(format!("{name}_mhd")), joined)?;
    }

    // DICOM: each file of two small series alone, and whole series joined by the marker.
    let d1 = corpus(&root, "dicom_file")?;
    let ds = corpus(&root, "dicom_series")?;
    for (name, v) in [("axial", &small), ("oblique", &oblique)] {
        let dir = tmp.join(name);
        write_series(v, &dir, &DicomWriteOptions::default())?;
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        files.sort();
        let mut joined = Vec::new();
        for (k, f) in files.iter().enumerate() {
            let bytes = fs::read(f)?;
            fs::write(d1.join(format!("{name}_{k}.dcm")), &bytes)?;
            if k > 0 {
                joined.extend_from_slice(b"@@SPECK@@");
            }
            joined.extend_from_slice(&bytes);
        }
        fs::write(ds.join(name), &joined)?;
        // The same series with its slices in reverse order and the first one twice.
        let mut rev = Vec::new();
        for f in files.iter().rev().chain(files.first()) {
            if !rev.is_empty() {
                rev.extend_from_slice(b"@@SPECK@@");
            }
            rev.extend_from_slice(&fs::read(f)?);
        }
        fs::write(ds.join(format!("{name}_rev_dup")), rev)?;
    }
    if let Some(extra) = std::env::args().nth(1) {
        let mut n = 0;
        for e in fs::read_dir(&extra)? {
            let p = e?.path();
            let is_dcm = p.extension().is_some_and(|x| x == "dcm");
            if is_dcm && fs::metadata(&p)?.len() < 256 * 1024 {
                if let Some(name) = p.file_name() {
                    fs::copy(&p, d1.join(name))?;
                    n += 1;
                }
            }
        }
        eprintln!("{n} extra DICOM files from {extra}");
    }

    // CSV: the first byte picks the reader (0 annotations, 1 excluded, 2 candidates, 3 series).
    let d = corpus(&root, "csv")?;
    let csvs: [(&str, u8, &str); 6] = [
        ("annotations", 0, "seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2.3,-10.5,20,-300.25,4.2\n1.2.3,1,2,3,-1\n"),
        ("annotations_readers", 0, "seriesuid,coordX,coordY,coordZ,diameter_mm,reader,density,attachment\n1.2,0,0,0,4,1,solid,none\n1.2,0.5,0,0,4.5,2,solid,none\n\"1.3\",5,5,5,3,1,NA,\n"),
        ("annotations_nreaders", 0, "seriesuid,coordX,coordY,coordZ,diameter_mm,diameter_vox,n_readers\r\n1.2,0,0,0,4,5.5,3\r\n"),
        ("excluded", 1, "seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2.3,1,2,3,-1\n"),
        ("candidates", 2, "\u{feff}seriesuid,coordX,coordY,coordZ,probability\n1.2.3,1e1,-2.5,3,0.99\n\"1.2,4\",1,2,3,0.1\n"),
        ("series", 3, "seriesuid\n1.2.3\n1.2.4\n1.2.3\n"),
    ];
    for (name, which, text) in csvs {
        let mut f = fs::File::create(d.join(name))?;
        f.write_all(&[which])?;
        f.write_all(text.as_bytes())?;
    }

    // Model contract: key=value lines as ONNX metadata_props.
    let d = corpus(&root, "model_contract")?;
    let base = "speck.role=coarse\nspeck.version=1.0.0\nspeck.spacing_mm=1.0,0.7,0.7\n\
                speck.patch_size=32,64,64\nspeck.output_stride=2,2,2\nspeck.hu_window=-1000,400\n\
                speck.normalization=window_to_unit\nspeck.output_channels=prob,diameter_mm,dz,dy,dx\n\
                speck.threshold=0.5\n";
    fs::write(d.join("coarse"), base)?;
    fs::write(
        d.join("fine_zscore"),
        base.replace("coarse", "fine")
            .replace("window_to_unit", "zscore:-500,250"),
    )?;

    // ONNX models: the repository's analytic test models (valid and invalid).
    let d = corpus(&root, "onnx_model")?;
    let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/test");
    if let Ok(entries) = fs::read_dir(&models) {
        for e in entries {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "onnx") {
                if let Some(name) = p.file_name() {
                    fs::copy(&p, d.join(name))?;
                }
            }
        }
    }
    fs::remove_dir_all(&tmp)?;
    eprintln!("seed corpora written under {}", root.display());
    Ok(())
}

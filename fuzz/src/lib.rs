//! Helpers shared by Speck's fuzz targets: a per-process scratch folder on tmpfs (the readers
//! take paths, so every input is written to a file first), a one-thread rayon pool, and the
//! invariants every successfully loaded volume must satisfy (a loader may refuse a file, but what it
//! accepts must be usable: finite geometry, consistent shape).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use speck_volume::{LoadOptions, Volume, VoxelIndex};

/// A folder private to this process (under `/dev/shm` when it exists), created once.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        contain_decoder_panics();
        // One rayon thread: libFuzzer measures one input at a time, and the machine is shared.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build_global();
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("speck-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch folder");
        dir
    })
}

/// Source paths of third-party pixel decoders whose panics Speck contains: it calls them inside
/// `catch_unwind` and reports a corrupt frame (`crates/volume/src/dicom/decode.rs`, fuzz finding
/// 5, `regression_dicom_file_4`).
const CONTAINED: &[&str] = &[
    "dicom-transfer-syntax-registry",
    "jpeg-decoder",
    "jpeg2k",
    "openjp",
];

/// libfuzzer-sys installs a panic hook that aborts on *every* panic, caught or not, so a decoder
/// panic that Speck catches and turns into an error would still end the run. This hook lets
/// panics raised inside [`CONTAINED`] crates unwind (Speck's `catch_unwind` must then catch them:
/// one that escapes reaches libfuzzer-sys's own `catch_unwind`, which aborts, so an uncontained
/// panic is still a finding); every other panic aborts as before.
fn contain_decoder_panics() {
    let abort_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let contained = info
            .location()
            .is_some_and(|l| CONTAINED.iter().any(|c| l.file().contains(c)));
        if contained {
            eprintln!("speck-fuzz: contained decoder panic: {info}");
        } else {
            abort_hook(info);
        }
    }));
}

/// An empty sub-folder `name` of [`scratch`] (emptied on every call).
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = scratch().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch sub-folder");
    dir
}

/// Write `bytes` to `name` in [`scratch`] and return its path.
pub fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let p = scratch().join(name);
    std::fs::write(&p, bytes).expect("scratch write");
    p
}

/// The options the targets load with: the defaults (what `speck scan` uses), so that an
/// allocation blow-up under the default limits is a finding.
pub fn options() -> LoadOptions {
    LoadOptions::default()
}

/// Panics (a finding) when an accepted volume is not usable.
pub fn check_volume(v: &Volume) {
    let [nz, ny, nx] = v.shape_zyx();
    assert!(nz > 0 && ny > 0 && nx > 0, "empty volume accepted");
    assert_eq!(v.voxels().len(), nz * ny * nx);
    let g = v.geometry();
    for s in g.spacing.xyz() {
        assert!(s.is_finite() && s > 0.0, "spacing {s}");
    }
    let d = g.direction.determinant();
    assert!(d.is_finite() && d.abs() > 1e-6, "direction determinant {d}");
    let slices = &v.provenance().slices;
    assert!(slices.is_empty() || slices.len() == nz, "slice records");
    for idx in [
        VoxelIndex::new(0, 0, 0),
        VoxelIndex::new(nz - 1, ny - 1, nx - 1),
    ] {
        let p = v.voxel_to_world(idx);
        assert!(
            p.x_mm.is_finite() && p.y_mm.is_finite() && p.z_mm.is_finite(),
            "voxel {idx:?} is at a non-finite world position {p:?} (geometry {g:?})"
        );
    }
}

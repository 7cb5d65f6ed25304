//! `speck scan` on archives laid out as they arrive (issue 20): a TCIA download, a PACS study
//! export, a DICOMDIR-rooted media export and a folder with a broken CT series. Every item found
//! is scanned, failed (errors.csv: it should have been a scan) or skipped (skipped.csv: not a CT
//! image series); each test asserts the outcome of every item and the exit code.
//!
//! Everything is generated here: small phantoms written as DICOM series by Speck's own writer
//! (`speck_volume::dicom::write_series`), then retagged with dicom-rs (kernel, frame of
//! reference, localizer), and the non-image objects (dose report, presentation state, key object
//! selection, DICOMDIR) written with dicom-rs. Models: the analytic test models of `models/test/`.

mod scan_support;

use std::collections::BTreeMap;
use std::path::Path;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use scan_support::*;
use speck_volume::dicom::{write_series, DicomWriteOptions};
use speck_volume::{Direction, Geometry, Provenance, Spacing, Volume, WorldPoint};

/// A phantom as the volume to write (48 x 128 x 128 at 2.0 x 1.2 x 1.2 mm).
fn ct_volume(seed: u64) -> Volume {
    phantom(seed).volume
}

/// Every second slice of `v` (a thicker reconstruction of the same acquisition).
fn thick(v: &Volume) -> Volume {
    let g = v.geometry();
    let voxels = v.voxels().slice(ndarray::s![..;2, .., ..]).to_owned();
    let s = g.spacing;
    let geometry = Geometry::new(
        Spacing::new(s.x_mm(), s.y_mm(), s.z_mm() * 2.0).expect("spacing"),
        g.origin,
        g.direction,
    );
    Volume::new(voxels, geometry, Provenance::default()).expect("volume")
}

/// A one-image "scout": 1 x 64 x 96.
fn scout_volume() -> Volume {
    let voxels = ndarray::Array3::from_shape_fn((1, 64, 96), |(_, y, x)| {
        if (20..44).contains(&y) && (10..86).contains(&x) {
            40
        } else {
            -1000
        }
    });
    let geometry = Geometry::new(
        Spacing::new(4.0, 4.0, 1.0).expect("spacing"),
        WorldPoint::new(-190.0, 0.0, -100.0),
        Direction::IDENTITY,
    );
    Volume::new(voxels, geometry, Provenance::default()).expect("volume")
}

/// Write `v` as a CT series into `dir` for `patient`/`study` with SeriesInstanceUID `series`.
fn write_ct(v: &Volume, dir: &Path, patient: &str, study: &str, series: &str) {
    let o = DicomWriteOptions {
        series_uid: Some(series.into()),
        study_uid: Some(study.into()),
        patient_id: Some(patient.into()),
    };
    write_series(v, dir, &o).expect("write series");
}

/// Rewrite every DICOM file under `dir` with `edit` applied to its data set.
fn retag(dir: &Path, edit: impl Fn(&mut InMemDicomObject)) {
    for p in files_under(dir) {
        let p = dir.join(p);
        let mut obj = dicom_object::open_file(&p).expect("open");
        edit(&mut obj);
        obj.write_to_file(&p).expect("write");
    }
}

fn put(obj: &mut InMemDicomObject, tag: dicom_core::Tag, vr: VR, v: impl Into<PrimitiveValue>) {
    obj.put(DataElement::new(tag, vr, v.into()));
}

/// A CT series's reconstruction tags: kernel and frame of reference.
fn recon(dir: &Path, kernel: &str, frame: &str) {
    retag(dir, |o| {
        put(o, tags::CONVOLUTION_KERNEL, VR::SH, kernel);
        put(o, tags::FRAME_OF_REFERENCE_UID, VR::UI, frame);
    });
}

/// Write a DICOM object without an image (Part 10, explicit VR little endian).
#[allow(clippy::too_many_arguments)]
fn non_image(
    path: &Path,
    sop_class: &str,
    modality: &str,
    patient: &str,
    study: &str,
    series: &str,
    instance: &str,
) {
    let mut obj = InMemDicomObject::new_empty();
    put(&mut obj, tags::SOP_CLASS_UID, VR::UI, sop_class);
    put(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, instance);
    put(&mut obj, tags::MODALITY, VR::CS, modality);
    put(&mut obj, tags::PATIENT_ID, VR::LO, patient);
    put(&mut obj, tags::STUDY_INSTANCE_UID, VR::UI, study);
    put(&mut obj, tags::SERIES_INSTANCE_UID, VR::UI, series);
    put(&mut obj, tags::SERIES_DESCRIPTION, VR::LO, modality);
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax("1.2.840.10008.1.2.1")
                .media_storage_sop_class_uid(sop_class)
                .media_storage_sop_instance_uid(instance),
        )
        .expect("meta");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    file.write_to_file(path).expect("write");
}

/// A DICOMDIR (media storage directory) with an empty record sequence.
fn dicomdir(path: &Path) {
    let mut obj = InMemDicomObject::new_empty();
    put(&mut obj, tags::FILE_SET_ID, VR::CS, "SPECKTEST");
    obj.put(DataElement::new(
        tags::DIRECTORY_RECORD_SEQUENCE,
        VR::SQ,
        dicom_core::value::DataSetSequence::<InMemDicomObject>::empty(),
    ));
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax("1.2.840.10008.1.2.1")
                .media_storage_sop_class_uid("1.2.840.10008.1.3.10")
                .media_storage_sop_instance_uid("2.25.1234567"),
        )
        .expect("meta");
    file.write_to_file(path).expect("write");
}

fn text(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, body).expect("write");
}

/// The rows of a run's CSV file.
fn rows(out: &Path, name: &str) -> Vec<BTreeMap<String, String>> {
    read_csv(&out.join(name))
}

/// The skipped rows as (file or folder name, kind), sorted.
fn skipped_kinds(out: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = rows(out, "skipped.csv")
        .iter()
        .map(|r| {
            let name = Path::new(&r["input"])
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, r["kind"].clone())
        })
        .collect();
    v.sort();
    v
}

fn kinds(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = list
        .iter()
        .map(|(a, b)| ((*a).to_string(), (*b).to_string()))
        .collect();
    v.sort();
    v
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn scan_json(out: &Path, id: &str) -> serde_json::Value {
    let p = out.join("scans").join(id).join("scan.json");
    serde_json::from_slice(&std::fs::read(&p).expect("scan.json")).expect("json")
}

/// A TCIA download: `LICENSE` and `metadata.csv` beside the collection, two patients' CT series
/// each with the XML annotation file of its readers. The CT series are scanned, every document
/// is skipped, and the run is a success (exit 0, errors.csv empty): before issue 20 the two text
/// files made a failed row and exit code 1.
#[test]
fn a_tcia_download_scans_its_ct_series_and_skips_its_documents() {
    if !ort_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("manifest-1600709154662");
    text(&root.join("LICENSE"), "Creative Commons Attribution 3.0\n");
    text(
        &root.join("metadata.csv"),
        "Series UID,Collection,Subject ID\n1.2.3,LIDC-IDRI,LIDC-IDRI-0001\n",
    );
    text(
        &root.join("ATTRIBUTION.txt"),
        "Data from The Cancer Imaging Archive.\n",
    );
    let mut uids = Vec::new();
    for (k, seed) in [(1u64, 21u64), (2, 22)] {
        let series_dir = root.join(format!(
            "LIDC-IDRI/LIDC-IDRI-000{k}/01-01-2000-NA-3017{k}/3000566.000000-NA-0319{k}"
        ));
        let uid = format!("1.3.6.1.4.1.14519.5.2.1.6279.{k}");
        write_ct(
            &ct_volume(seed),
            &series_dir,
            &format!("LIDC-IDRI-000{k}"),
            &format!("1.3.6.1.4.1.14519.5.2.1.6279.9{k}"),
            &uid,
        );
        text(
            &series_dir.join(format!("06{k}.xml")),
            "<?xml version=\"1.0\"?>\n<LidcReadMessage><ResponseHeader/></LidcReadMessage>\n",
        );
        uids.push(uid);
    }
    let out = dir.path().join("out");
    let o = scan(&[&root], &out, &[], &[]);
    assert_eq!(code(&o), 0, "every planned scan succeeded: exit 0");
    let summary = rows(&out, "summary.csv");
    assert_eq!(summary.len(), 2, "{summary:?}");
    for (row, uid) in summary.iter().zip(&uids) {
        assert_eq!(row["status"], "ok");
        assert_eq!(&row["seriesuid"], uid);
        assert!(row["patient_id"].starts_with("LIDC-IDRI-000"), "{row:?}");
        assert!(!row["study_uid"].is_empty());
    }
    assert!(rows(&out, "errors.csv").is_empty());
    assert_eq!(
        skipped_kinds(&out),
        kinds(&[
            ("061.xml", "not-dicom"),
            ("062.xml", "not-dicom"),
            ("ATTRIBUTION.txt", "not-dicom"),
            ("LICENSE", "not-dicom"),
            ("metadata.csv", "not-dicom"),
        ])
    );
    let err = stderr(&o);
    assert!(
        err.contains("2 ok (0 from an earlier run), 0 failed, 5 skipped"),
        "{err}"
    );
    let report = std::fs::read_to_string(out.join("report.html")).expect("report");
    assert!(
        report.contains("Skipped: not CT image series (5)"),
        "{report}"
    );
    assert!(report.contains("patient LIDC-IDRI-0001, study"));
    keep_if_asked(dir);
}

const PATIENT: &str = "PACS-0042";
const STUDY: &str = "1.2.826.0.1.3680043.8.498.100";
const LUNG: &str = "1.2.826.0.1.3680043.8.498.101";
const SOFT: &str = "1.2.826.0.1.3680043.8.498.102";
const SCOUT: &str = "1.2.826.0.1.3680043.8.498.103";
const FRAME: &str = "1.2.826.0.1.3680043.8.498.199";

/// A study as a PACS exports it: a thin lung-kernel CT series, a thick soft-tissue reconstruction
/// of the same acquisition, a scout, a dose report, a presentation state and a key object note.
fn pacs_study(root: &Path) {
    let study = root.join(PATIENT).join("20240117_CT_CHEST");
    let v = ct_volume(31);
    write_ct(&v, &study.join("2_LUNG_2mm"), PATIENT, STUDY, LUNG);
    recon(&study.join("2_LUNG_2mm"), "B70f", FRAME);
    write_ct(&thick(&v), &study.join("3_SOFT_4mm"), PATIENT, STUDY, SOFT);
    recon(&study.join("3_SOFT_4mm"), "B30f", FRAME);
    write_ct(
        &scout_volume(),
        &study.join("1_TOPOGRAM"),
        PATIENT,
        STUDY,
        SCOUT,
    );
    retag(&study.join("1_TOPOGRAM"), |o| {
        put(
            o,
            tags::IMAGE_TYPE,
            VR::CS,
            PrimitiveValue::Strs(
                ["ORIGINAL", "PRIMARY", "LOCALIZER"]
                    .iter()
                    .map(|s| (*s).to_string())
                    .collect(),
            ),
        );
    });
    let objects = [
        (
            "1.2.840.10008.5.1.4.1.1.88.67",
            "SR",
            "990_DOSE",
            "dose.dcm",
        ),
        ("1.2.840.10008.5.1.4.1.1.11.1", "PR", "991_PR", "ps.dcm"),
        ("1.2.840.10008.5.1.4.1.1.88.59", "KO", "992_KO", "ko.dcm"),
    ];
    for (i, (class, modality, folder, name)) in objects.iter().enumerate() {
        non_image(
            &study.join(folder).join(name),
            class,
            modality,
            PATIENT,
            STUDY,
            &format!("1.2.826.0.1.3680043.8.498.11{i}"),
            &format!("1.2.826.0.1.3680043.8.498.12{i}"),
        );
    }
}

/// A PACS study: both reconstructions are scanned under `--series-policy all` (each `scan.json`
/// names the other), only the thin lung one under `best` (the soft one is skipped with the
/// reason); the scout, dose report, presentation state and key object note are skipped; rows are
/// grouped by patient and study. Exit 0 both times, and 1 with `--strict-skips`.
#[test]
fn a_pacs_study_scans_its_ct_reconstructions_and_skips_the_rest() {
    if !ort_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("export");
    pacs_study(&root);
    let not_ct = [
        ("1_TOPOGRAM", "localizer"),
        ("dose.dcm", "non-image"),
        ("ps.dcm", "non-image"),
        ("ko.dcm", "non-image"),
    ];

    // All reconstructions.
    let out = dir.path().join("all");
    let o = scan(&[&root], &out, &[], &[]);
    assert_eq!(code(&o), 0);
    let summary = rows(&out, "summary.csv");
    let ids: Vec<&str> = summary.iter().map(|r| r["scan_id"].as_str()).collect();
    assert_eq!(ids, vec![LUNG, SOFT], "{summary:?}");
    for r in &summary {
        assert_eq!(r["status"], "ok");
        assert_eq!(r["patient_id"], PATIENT);
        assert_eq!(r["study_uid"], STUDY);
    }
    assert!(rows(&out, "errors.csv").is_empty());
    assert_eq!(skipped_kinds(&out), kinds(&not_ct));
    let skipped = rows(&out, "skipped.csv");
    let dose = skipped
        .iter()
        .find(|r| r["input"].ends_with("dose.dcm"))
        .expect("dose report");
    assert!(
        dose["reason"].contains("SR, X-ray radiation dose report"),
        "{dose:?}"
    );
    assert!(skipped
        .iter()
        .all(|r| r["patient_id"] == PATIENT && r["study_uid"] == STUDY));
    for (id, other) in [(LUNG, SOFT), (SOFT, LUNG)] {
        let choice = &scan_json(&out, id)["series_choice"];
        assert_eq!(choice["policy"], "all");
        assert_eq!(choice["others"], serde_json::json!([other]));
    }
    assert!(scan_json(&out, LUNG)["series_choice"]["reason"]
        .as_str()
        .expect("reason")
        .contains("rank 1 of 2"));
    let report = std::fs::read_to_string(out.join("report.html")).expect("report");
    assert!(
        report.contains(&format!("patient {PATIENT}, study {STUDY}: 2 series")),
        "{report}"
    );
    let studies = rows(&out, "studies.csv");
    assert_eq!(studies.len(), 1, "{studies:?}");
    let st = &studies[0];
    assert_eq!(
        (
            st["patient_id"].as_str(),
            st["study_uid"].as_str(),
            st["scanned"].as_str(),
            st["failed"].as_str(),
            st["skipped"].as_str(),
            st["scan_ids"].clone()
        ),
        (PATIENT, STUDY, "2", "0", "4", format!("{LUNG} {SOFT}"))
    );

    // --resume keeps both scans; with another policy the chosen series is scanned again, since
    // its record would no longer say why it was scanned.
    let o = scan(&[&root], &out, &["--resume"], &[]);
    assert_eq!(code(&o), 0);
    assert!(
        stderr(&o).contains("2 ok (2 from an earlier run)"),
        "{}",
        stderr(&o)
    );
    let o = scan(
        &[&root],
        &out,
        &["--resume", "--series-policy", "best"],
        &[],
    );
    assert_eq!(code(&o), 0);
    assert!(
        stderr(&o).contains("1 ok (0 from an earlier run)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(scan_json(&out, LUNG)["series_choice"]["policy"], "best");

    // The best series only.
    let out = dir.path().join("best");
    let o = scan(&[&root], &out, &["--series-policy", "best"], &[]);
    assert_eq!(code(&o), 0);
    let summary = rows(&out, "summary.csv");
    assert_eq!(summary.len(), 1, "{summary:?}");
    assert_eq!(summary[0]["scan_id"], LUNG);
    let mut expected = not_ct.to_vec();
    expected.push(("3_SOFT_4mm", "not-chosen"));
    assert_eq!(skipped_kinds(&out), kinds(&expected));
    let soft = rows(&out, "skipped.csv")
        .into_iter()
        .find(|r| r["kind"] == "not-chosen")
        .expect("soft");
    assert_eq!(soft["series"], SOFT);
    assert!(
        soft["reason"].contains(LUNG)
            && soft["reason"].contains("thinner slices (2.00 mm against 4.00 mm)"),
        "{soft:?}"
    );
    let choice = &scan_json(&out, LUNG)["series_choice"];
    assert_eq!(choice["policy"], "best");
    assert_eq!(choice["others"], serde_json::json!([SOFT]));
    assert!(
        choice["reason"]
            .as_str()
            .expect("reason")
            .contains("thinner slices (2.00 mm against 4.00 mm)"),
        "{choice}"
    );
    assert!(!out.join("scans").join(SOFT).exists());
    // `speck merge` carries the skipped items and the studies over unchanged.
    let merged = dir.path().join("merged");
    let o = speck(
        &[
            "merge",
            out.to_str().expect("utf-8"),
            "--out",
            merged.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(code(&o), 0);
    for f in ["skipped.csv", "studies.csv", "summary.csv"] {
        assert_eq!(
            std::fs::read(merged.join(f)).expect("merged"),
            std::fs::read(out.join(f)).expect("run"),
            "{f}"
        );
    }

    // Strictness: the same run with skips as failures (resumed, nothing rescanned).
    let o = scan(
        &[&root],
        &out,
        &["--series-policy", "best", "--strict-skips", "--resume"],
        &[],
    );
    assert_eq!(code(&o), 1);
    let errors = rows(&out, "errors.csv");
    assert_eq!(errors.len(), 5, "{errors:?}");
    assert!(errors.iter().all(|e| e["stage"] == "skipped"));
    assert_eq!(rows(&out, "skipped.csv").len(), 5);
    assert!(stderr(&o).contains("1 ok (1 from an earlier run), 0 failed, 5 skipped"));
    keep_if_asked(dir);
}

/// A CD/DVD export: `DICOMDIR` at the root, images in `DICOM/PAT1/STU1/SER1/` as files without
/// an extension, and the media's viewer and readme. Scanning the folder or the DICOMDIR itself
/// gives the same scan; the DICOMDIR and the viewer files are skipped.
#[test]
fn a_dicomdir_media_export_scans_its_series() {
    if !ort_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let media = dir.path().join("CDROM");
    let series = media.join("DICOM/PAT1/STU1/SER1");
    let uid = "1.2.826.0.1.3680043.8.498.201";
    write_ct(
        &ct_volume(41),
        &series,
        "CD-01",
        "1.2.826.0.1.3680043.8.498.200",
        uid,
    );
    for f in files_under(&series) {
        let p = series.join(&f);
        let stem = p.file_stem().expect("stem").to_owned();
        std::fs::rename(&p, series.join(stem)).expect("rename");
    }
    dicomdir(&media.join("DICOMDIR"));
    text(&media.join("README.TXT"), "Open VIEWER.EXE to view.\n");
    text(
        &media.join("AUTORUN.INF"),
        "[autorun]\nopen=VIEWER\\VIEWER.EXE\n",
    );
    std::fs::create_dir_all(media.join("VIEWER")).expect("mkdir");
    std::fs::write(
        media.join("VIEWER/VIEWER.EXE"),
        b"MZ\x90\x00\x03\x00\x00\x00",
    )
    .expect("exe");

    let out = dir.path().join("out");
    let o = scan(&[&media], &out, &[], &[]);
    assert_eq!(code(&o), 0);
    let summary = rows(&out, "summary.csv");
    assert_eq!(summary.len(), 1, "{summary:?}");
    assert_eq!(summary[0]["seriesuid"], uid);
    assert_eq!(summary[0]["status"], "ok");
    assert!(rows(&out, "errors.csv").is_empty());
    assert_eq!(
        skipped_kinds(&out),
        kinds(&[
            ("AUTORUN.INF", "not-dicom"),
            ("DICOMDIR", "dicomdir"),
            ("README.TXT", "not-dicom"),
            ("VIEWER.EXE", "not-dicom"),
        ])
    );

    // The DICOMDIR named as the input stands for its media.
    let out2 = dir.path().join("out2");
    let o = scan(&[&media.join("DICOMDIR")], &out2, &[], &[]);
    assert_eq!(code(&o), 0);
    assert_eq!(
        rows(&out2, "summary.csv")[0]["scan_id"],
        summary[0]["scan_id"]
    );
    assert_eq!(skipped_kinds(&out2), skipped_kinds(&out));
    keep_if_asked(dir);
}

/// A folder with truly broken CT: a series with two slices cut short (its load fails, naming
/// the file), a study whose every file is truncated inside its header, and a `.dcm` that is
/// empty. Each is a failed item (exit 1); the `LICENSE` beside them is only skipped.
#[test]
fn a_broken_ct_series_is_a_failure_and_documents_beside_it_are_not() {
    if !ort_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("incoming");
    let cut_uid = "1.2.826.0.1.3680043.8.498.301";
    let cut = root.join("P1/cut");
    write_ct(
        &ct_volume(51),
        &cut,
        "P1",
        "1.2.826.0.1.3680043.8.498.300",
        cut_uid,
    );
    let mut slices = files_under(&cut);
    slices.sort();
    for f in [&slices[10], &slices[11]] {
        let p = cut.join(f);
        let b = std::fs::read(&p).expect("read");
        std::fs::write(&p, &b[..b.len() - 5000]).expect("truncate");
    }
    let headers = root.join("P2/headers");
    write_ct(
        &ct_volume(52),
        &headers,
        "P2",
        "1.2.826.0.1.3680043.8.498.310",
        "1.2.826.0.1.3680043.8.498.311",
    );
    for f in files_under(&headers) {
        let p = headers.join(f);
        let b = std::fs::read(&p).expect("read");
        std::fs::write(&p, &b[..300]).expect("truncate");
    }
    text(&root.join("P3/IM000001.dcm"), "");
    text(&root.join("LICENSE"), "CC BY 4.0\n");

    let out = dir.path().join("out");
    let o = scan(&[&root], &out, &[], &[]);
    assert_eq!(code(&o), 1, "broken CT series are failures: exit 1");
    let summary = rows(&out, "summary.csv");
    assert_eq!(summary.len(), 3, "{summary:?}");
    assert!(summary.iter().all(|r| r["status"] == "failed"));
    let errors = rows(&out, "errors.csv");
    assert_eq!(errors.len(), 3, "{errors:?}");
    let by = |folder: &str| {
        errors
            .iter()
            .find(|e| e["input"].ends_with(folder))
            .unwrap_or_else(|| panic!("{folder}: {errors:?}"))
    };
    let e = by("P1/cut");
    assert_eq!(
        (e["stage"].as_str(), e["series"].as_str()),
        ("load", cut_uid)
    );
    assert!(
        e["reason"].contains(&slices[10].display().to_string()),
        "{e:?}"
    );
    let e = by("P2/headers");
    assert_eq!(e["stage"], "discover");
    assert!(e["reason"].contains("not a readable image series"), "{e:?}");
    let e = by("P3");
    assert_eq!(e["stage"], "discover");
    assert!(
        e["reason"].contains("named as DICOM but are not DICOM")
            && e["reason"].contains("IM000001.dcm"),
        "{e:?}"
    );
    assert_eq!(skipped_kinds(&out), kinds(&[("LICENSE", "not-dicom")]));
    keep_if_asked(dir);
}

/// Skipped items are dealt out among shards like scans, separately from them: each is listed by
/// exactly one shard (`--dry-run` prints them as `skip` with kind, reason and path).
#[test]
fn skipped_items_are_dealt_out_once_across_shards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("export");
    pacs_study(&root);
    text(&root.join("LICENSE"), "CC BY 4.0\n");
    let out = dir.path().join("out");
    let list = |extra: &[&str]| {
        let mut args = vec![
            "scan",
            root.to_str().expect("utf-8"),
            "--out",
            out.to_str().expect("utf-8"),
            "--dry-run",
        ];
        args.extend_from_slice(extra);
        let o = speck(&args, &[]);
        assert_eq!(code(&o), 0);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let whole = list(&["--series-policy", "best"]);
    let skips: Vec<&String> = whole.iter().filter(|l| l.contains("\tskip\t")).collect();
    assert_eq!(skips.len(), 6, "{whole:?}");
    assert!(skips
        .iter()
        .any(|l| l.contains("not-chosen") && l.contains(SOFT)));
    assert_eq!(whole.len(), 7, "one scan and six skipped items: {whole:?}");
    let mut parts = Vec::new();
    for k in 0..3 {
        let shard = format!("{k}/3");
        let part = list(&["--series-policy", "best", "--shard", &shard]);
        // Six skipped items over three shards: two each.
        assert_eq!(
            part.iter().filter(|l| l.contains("\tskip\t")).count(),
            2,
            "{part:?}"
        );
        parts.extend(part);
    }
    parts.sort();
    let mut sorted = whole.clone();
    sorted.sort();
    assert_eq!(parts, sorted);
    assert!(!out.exists(), "a dry run writes nothing");
}

/// Real data: the two Lung-PET-CT-Dx patients of `../shared/data/` (a TCIA download, each patient
/// reconstructed twice) under `--series-policy best`: the Siemens B70f series is kept over its
/// B40f twin, the Philips `L` (lung) one over its `B` twin, and every annotation XML and the
/// licence texts are skipped, nothing fails. Skips (prints a note) when `../shared` is absent.
#[test]
fn the_lung_pet_ct_dx_download_keeps_the_lung_kernel_of_each_patient() {
    let data = repo().join("../shared/data/lung-pet-ct-dx");
    if !data.is_dir() {
        eprintln!("SKIPPED: {} not found", data.display());
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let o = speck(
        &[
            "scan",
            data.to_str().expect("utf-8"),
            "--out",
            out.to_str().expect("utf-8"),
            "--dry-run",
            "--series-policy",
            "best",
        ],
        &[],
    );
    assert_eq!(code(&o), 0);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let field = |l: &str, i: usize| l.split('\t').nth(i).unwrap_or_default().to_string();
    let mut scanned: Vec<String> = stdout
        .lines()
        .filter(|l| field(l, 2) == "dicom")
        .map(|l| field(l, 3))
        .collect();
    scanned.sort();
    assert_eq!(
        scanned,
        [
            data.join("Lung_Dx-A0001/2.000000-5mm-40805")
                .display()
                .to_string(),
            data.join("Lung_Dx-A0002/2.000000-ThoraxRoutine__8.0.0__B70f-62919")
                .display()
                .to_string(),
        ]
    );
    let not_chosen: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("not-chosen"))
        .collect();
    assert_eq!(not_chosen.len(), 2, "{stdout}");
    assert!(not_chosen
        .iter()
        .any(|l| l.contains("B70f, sharp, against B40f, soft tissue") && l.contains("B40f-10983")));
    assert!(not_chosen
        .iter()
        .any(|l| l.contains("L, lung, against B, soft tissue") && l.contains("5mm-41315")));
    let documents = files_under(&data)
        .iter()
        .filter(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".xml") || n == "LICENSE" || n == "ATTRIBUTION"
        })
        .count();
    let not_dicom = stdout
        .lines()
        .filter(|l| l.contains("\tskip\tnot-dicom"))
        .count();
    assert_eq!(not_dicom, documents, "{stdout}");
    assert_eq!(
        stdout.lines().count(),
        4 + documents,
        "nothing else, nothing failed: {stdout}"
    );
}

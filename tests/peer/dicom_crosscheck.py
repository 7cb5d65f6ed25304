#!/usr/bin/env python3
"""Reference readings of real DICOM files from PyPI `pydicom-data` (and pydicom's own test files),
for `crates/volume/tests/dicom_peer.rs` to compare Speck's decoding and geometry against.

Setup (once; the venv is gitignored):
    python3 -m venv .venv-peer
    .venv-peer/bin/pip install pydicom pydicom-data numpy SimpleITK \
        pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg pylibjpeg-rle
Run:
    .venv-peer/bin/python tests/peer/dicom_crosscheck.py [OUT_DIR]   # default target/peer-ref

For each file it writes OUT_DIR/<name>.f64 (the modality values, RescaleSlope * stored +
RescaleIntercept per frame, as float64 little endian, [frame, row, col]) and an entry in
OUT_DIR/manifest.json with the file's path, transfer syntax, shape, SimpleITK's geometry where
SimpleITK reads it, and per-frame positions for enhanced files. Files Speck must refuse are listed
with "expect": "unsupported".
"""
import json
import os
import sys

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut

try:
    import SimpleITK as sitk
except ImportError:  # geometry checks are skipped without it
    sitk = None

# (file name, why it is here, tolerance on modality values)
DECODE = [
    ("CT_small.dcm", "CT, explicit VR little endian, signed 16-bit", 0.0),
    ("MR_small_implicit.dcm", "implicit VR little endian", 0.0),
    ("MR_small_RLE.dcm", "RLE lossless", 0.0),
    ("MR_small_jpeg_ls_lossless.dcm", "JPEG-LS lossless", 0.0),
    ("MR_small_jp2klossless.dcm", "JPEG 2000 lossless", 0.0),
    ("693_UNCR.dcm", "CT, 14 bits stored, signed", 0.0),
    ("693_J2KR.dcm", "CT, JPEG 2000 lossless", 0.0),
    ("693_J2KI.dcm", "CT, JPEG 2000 lossy", 0.0),
    ("JPEG-LL.dcm", "JPEG lossless (process 14, SV1), 16-bit", 0.0),
    ("JPGLosslessP14SV1_1s_1f_8b.dcm", "JPEG lossless, 8-bit", 0.0),
    ("bad_sequence.dcm", "CT, JPEG lossless, 12-bit", 0.0),
    ("image_dfl.dcm", "deflated explicit VR little endian", 0.0),
    ("eCT_Supplemental.dcm", "enhanced CT, multi-frame with functional groups", 0.0),
    ("emri_small_RLE.dcm", "multi-frame (10), RLE", 0.0),
    ("emri_small_jpeg_ls_lossless.dcm", "multi-frame (10), JPEG-LS", 0.0),
    ("emri_small_jpeg_2k_lossless.dcm", "multi-frame (10), JPEG 2000 lossless", 0.0),
]
UNSUPPORTED = [
    ("JPGExtended.dcm", "12-bit JPEG extended (1.2.840.10008.1.2.4.51)"),
    ("JPEG-lossy.dcm", "12-bit JPEG extended (1.2.840.10008.1.2.4.51)"),
]


def sitk_geometry(path):
    if sitk is None:
        return None
    try:
        img = sitk.ReadImage(path)
    except Exception as e:  # noqa: BLE001 - report, do not fail
        return {"error": str(e)}
    arr = sitk.GetArrayFromImage(img)
    return {
        "size_xyz": list(img.GetSize()),
        "spacing_xyz_mm": list(img.GetSpacing()),
        "origin_lps_mm": list(img.GetOrigin()),
        "direction": [list(img.GetDirection()[3 * r: 3 * r + 3]) for r in range(3)],
        "sum": float(arr.astype(np.float64).sum()),
    }


def frame_positions(ds):
    """Per-frame ImagePositionPatient of an enhanced image, plus the shared/per-frame orientation."""
    pf = ds.get("PerFrameFunctionalGroupsSequence")
    if pf is None:
        return None
    shared = ds.get("SharedFunctionalGroupsSequence", [None])[0]
    out = {"ipp": [], "iop": None, "pixel_spacing": None}
    for item in pf:
        out["ipp"].append([float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient])
        for grp in (item, shared):
            if grp is not None and "PlaneOrientationSequence" in grp and out["iop"] is None:
                out["iop"] = [float(v) for v in grp.PlaneOrientationSequence[0].ImageOrientationPatient]
            if grp is not None and "PixelMeasuresSequence" in grp and out["pixel_spacing"] is None:
                out["pixel_spacing"] = [float(v) for v in grp.PixelMeasuresSequence[0].PixelSpacing]
    return out


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "target", "peer-ref")
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    manifest = {"pydicom": pydicom.__version__,
                "simpleitk": sitk.Version_VersionString() if sitk else None,
                "files": []}
    for name, why, tol in DECODE:
        path = get_testdata_file(name)
        if path is None:
            print(f"skip {name}: not found", file=sys.stderr)
            continue
        ds = pydicom.dcmread(path)
        arr = ds.pixel_array
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
        if n_frames == 1:
            arr = arr[np.newaxis]
        if "PerFrameFunctionalGroupsSequence" in ds:
            values = np.stack([apply_modality_lut(arr[i], ds) if False else arr[i].astype(np.float64)
                               for i in range(n_frames)])
            # Per-frame rescale from the functional groups (pydicom applies only the first).
            pf = ds.PerFrameFunctionalGroupsSequence
            shared = ds.get("SharedFunctionalGroupsSequence", [None])[0]
            for i in range(n_frames):
                slope, intercept = 1.0, 0.0
                for grp in (pf[i], shared):
                    if grp is not None and "PixelValueTransformationSequence" in grp:
                        pvt = grp.PixelValueTransformationSequence[0]
                        slope = float(pvt.get("RescaleSlope", 1.0))
                        intercept = float(pvt.get("RescaleIntercept", 0.0))
                        break
                values[i] = values[i] * slope + intercept
        else:
            values = np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)
        values = np.ascontiguousarray(values, dtype="<f8")
        stem = os.path.splitext(name)[0]
        values.tofile(os.path.join(out_dir, stem + ".f64"))
        manifest["files"].append({
            "name": name,
            "path": path,
            "why": why,
            "expect": "decode",
            "transfer_syntax": str(ds.file_meta.TransferSyntaxUID),
            "shape": list(values.shape),
            "values": stem + ".f64",
            "tolerance": tol,
            "has_position": "ImagePositionPatient" in ds,
            "sitk": sitk_geometry(path) if "ImagePositionPatient" in ds else None,
            "frames": frame_positions(ds),
        })
        print(f"{name}: {values.shape} {ds.file_meta.TransferSyntaxUID.name}")
    for name, why in UNSUPPORTED:
        path = get_testdata_file(name)
        if path is None:
            continue
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        manifest["files"].append({"name": name, "path": path, "why": why, "expect": "unsupported",
                                  "transfer_syntax": str(ds.file_meta.TransferSyntaxUID)})
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"wrote {len(manifest['files'])} references to {out_dir}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Print SimpleITK's reading of a DICOM series folder as JSON (the peer for Speck's geometry).

Usage: python tests/peer/lidc_sitk.py FOLDER [--samples "x,y,z;..."] [--pydicom]

Prints {"size_xyz", "spacing_xyz_mm", "origin_lps_mm", "direction" (row-major 3x3, columns are
the x, y, z axes), "n_files", "hu_min", "hu_max", "hu_sum", "series_uid", "samples": [...]} where each
sample is the HU at a voxel index [x, y, z] listed with --samples "x,y,z;x,y,z".
With --pydicom, every file is also read by pydicom with strict validation (any invalid value
raises) and "pydicom_files" / "pydicom_sum" (sum of RescaleSlope * stored + RescaleIntercept) are
added. Needs SimpleITK (and pydicom for --pydicom) in the interpreter running it.
"""
import json
import sys

import SimpleITK as sitk


def main():
    folder = sys.argv[1]
    samples = []
    args = sys.argv[2:]
    if "--samples" in args:
        spec = args[args.index("--samples") + 1]
        samples = [tuple(int(v) for v in s.split(",")) for s in spec.split(";") if s]
    reader = sitk.ImageSeriesReader()
    uids = reader.GetGDCMSeriesIDs(folder)
    # The largest series, as Speck picks for a folder of one axial CT series.
    best = max(uids, key=lambda u: len(reader.GetGDCMSeriesFileNames(folder, u)))
    files = reader.GetGDCMSeriesFileNames(folder, best)
    reader.SetFileNames(files)
    img = reader.Execute()
    arr = sitk.GetArrayViewFromImage(img)
    out = {
        "size_xyz": list(img.GetSize()),
        "spacing_xyz_mm": list(img.GetSpacing()),
        "origin_lps_mm": list(img.GetOrigin()),
        "direction": [list(img.GetDirection()[3 * r: 3 * r + 3]) for r in range(3)],
        "n_files": len(files),
        "hu_min": int(arr.min()),
        "hu_max": int(arr.max()),
        "hu_sum": int(arr.astype("int64").sum()),
        "series_uid": best,
        "samples": [int(arr[z, y, x]) for (x, y, z) in samples],
    }
    if "--pydicom" in args:
        import pydicom
        from pydicom import config
        config.settings.reading_validation_mode = config.RAISE
        total = 0.0
        for f in files:
            ds = pydicom.dcmread(f)
            values = ds.pixel_array.astype("float64") * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            total += float(values.sum())
        out["pydicom_files"] = len(files)
        out["pydicom_sum"] = total
    print(json.dumps(out))


if __name__ == "__main__":
    main()

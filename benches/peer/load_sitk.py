"""Time SimpleITK loading the benchmark's DICOM series and .nii.gz (peer for benches/load.rs).

Usage: .venv-peer/bin/python benches/peer/load_sitk.py DICOM_DIR FILE.nii.gz REPEATS
Prints JSON: the best wall time of REPEATS loads of each (after one warm-up load), and the sum
of the voxels, so the Rust side can check that both read the same data.
The DICOM timing includes finding the series' files (GetGDCMSeriesFileNames), as Speck's does.
"""
import json
import sys
import time

import numpy as np
import SimpleITK as sitk

dicom_dir, nii, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])


def load_dicom():
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(dicom_dir))
    return reader.Execute()


def load_nii():
    return sitk.ReadImage(nii)


def best(fn):
    img = fn()  # warm-up (page cache, lazy imports)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        img = fn()
        times.append(time.perf_counter() - t)
    return min(times), img


t_dicom, img_dicom = best(load_dicom)
t_nii, img_nii = best(load_nii)
print(json.dumps({
    "simpleitk_version": sitk.Version.VersionString(),
    "threads": sitk.ProcessObject.GetGlobalDefaultNumberOfThreads(),
    "dicom_s": t_dicom,
    "nifti_s": t_nii,
    "dicom_sum": int(sitk.GetArrayViewFromImage(img_dicom).astype(np.int64).sum()),
    "nifti_sum": int(sitk.GetArrayViewFromImage(img_nii).astype(np.int64).sum()),
    "dicom_pixel_type": img_dicom.GetPixelIDTypeAsString(),
}))

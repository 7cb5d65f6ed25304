"""Convert a DICOM series folder with SimpleITK into the given files (.nii.gz, .mha, .mhd...),
zlib-compressed, and print SimpleITK's geometry of the series as JSON.

Usage: .venv-peer/bin/python benches/peer/convert_sitk.py DICOM_DIR OUT [OUT...]
Used by crates/volume/tests/open_dispatch.rs (real LIDC series, when present).
"""
import json
import sys

import SimpleITK as sitk

src, outs = sys.argv[1], sys.argv[2:]
reader = sitk.ImageSeriesReader()
reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(src))
img = sitk.Cast(reader.Execute(), sitk.sitkInt16)
for out in outs:
    sitk.WriteImage(img, out, useCompression=True)
print(json.dumps({
    "origin": list(img.GetOrigin()),
    "spacing": list(img.GetSpacing()),
    "direction": list(img.GetDirection()),
    "size_xyz": list(img.GetSize()),
}))

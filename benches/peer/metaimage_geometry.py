"""SimpleITK as the peer for Speck's MetaImage reader and writer.

Usage:
  .venv-peer/bin/python benches/peer/metaimage_geometry.py read FILE.mhd|FILE.mha
      print SimpleITK's origin, spacing, direction (row-major, columns = axis directions, LPS)
      and the voxel at [z=4, y=2, x=6], as JSON.
  .venv-peer/bin/python benches/peer/metaimage_geometry.py write FILE.mhd|FILE.mha DIRECTION9
      write a 7x6x5 (x, y, z) int16 image whose voxel [z, y, x] = 100 z + 10 y + x - 500, spacing
      (0.7, 0.8, 2.5), origin (-100.5, 30.25, -200), the given row-major direction, zlib-compressed,
      then print the same JSON as `read`.
Used by crates/volume/tests/metaimage_io.rs when the peer venv exists.
"""
import json
import sys

import numpy as np
import SimpleITK as sitk


def describe(img):
    arr = sitk.GetArrayViewFromImage(img)
    return {
        "origin": list(img.GetOrigin()),
        "spacing": list(img.GetSpacing()),
        "direction": list(img.GetDirection()),
        "size_xyz": list(img.GetSize()),
        "value_z4_y2_x6": int(arr[4, 2, 6]),
    }


mode, path = sys.argv[1], sys.argv[2]
if mode == "write":
    z, y, x = np.meshgrid(np.arange(5), np.arange(6), np.arange(7), indexing="ij")
    arr = (100 * z + 10 * y + x - 500).astype(np.int16)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.7, 0.8, 2.5))
    img.SetOrigin((-100.5, 30.25, -200.0))
    img.SetDirection([float(v) for v in sys.argv[3].split(",")])
    sitk.WriteImage(img, path, useCompression=True)
print(json.dumps(describe(sitk.ReadImage(path))))

"""Print how nibabel and SimpleITK read a NIfTI file's geometry, as JSON (peer check for Speck).

Usage: .venv-peer/bin/python benches/peer/nifti_geometry.py FILE.nii[.gz] [NIFTI2_OUT.nii.gz]
With NIFTI2_OUT, nibabel also re-saves the image as NIfTI-2 (sform and qform from its affine).
Used by crates/volume/tests/nifti_io.rs when the peer venv exists.
"""
import json
import sys

import nibabel as nib
import numpy as np
import SimpleITK as sitk

path = sys.argv[1]
img = nib.load(path)
data = np.asarray(img.dataobj)  # nibabel: array indexed [i, j, k] = [x, y, z]
if len(sys.argv) > 2:
    out = nib.Nifti2Image(data, img.affine)
    out.set_qform(img.affine, code=1)
    out.set_sform(img.affine, code=1)
    nib.save(out, sys.argv[2])
sitk_img = sitk.ReadImage(path)
arr = sitk.GetArrayViewFromImage(sitk_img)  # SimpleITK: [z, y, x]
print(json.dumps({
    "nibabel_affine": img.affine.tolist(),
    "nibabel_sform_code": int(img.header["sform_code"]),
    "nibabel_qform_code": int(img.header["qform_code"]),
    "nibabel_value_z4_y2_x6": int(data[6, 2, 4]),
    "sitk_origin": list(sitk_img.GetOrigin()),
    "sitk_spacing": list(sitk_img.GetSpacing()),
    "sitk_direction": list(sitk_img.GetDirection()),
    "sitk_value_z4_y2_x6": int(arr[4, 2, 6]),
}))

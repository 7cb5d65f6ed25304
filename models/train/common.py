"""Shared helpers for the Speck training recipe: volume I/O, annotations, geometry, lung masks.

Axis order everywhere in this recipe is (z, y, x) for arrays and voxel indices; world coordinates
are LPS millimetres in (x, y, z) order, exactly as in LUNA16-style `annotations.csv` files.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi


@dataclass
class Scan:
    """A CT volume in HU, int16, indexed [z, y, x], with its LPS geometry."""

    hu: np.ndarray
    origin_xyz: np.ndarray  # world LPS mm of voxel (0,0,0)
    spacing_zyx: np.ndarray  # mm
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))  # columns = x,y,z index axes in LPS

    def world_to_index(self, xyz: np.ndarray) -> np.ndarray:
        """World LPS mm (x,y,z) -> continuous voxel index (z,y,x)."""
        sp_xyz = self.spacing_zyx[::-1]
        m = self.direction @ np.diag(sp_xyz)
        ijk = np.linalg.solve(m, np.asarray(xyz, float) - self.origin_xyz)
        return ijk[::-1]

    def index_to_world(self, zyx: np.ndarray) -> np.ndarray:
        """Continuous voxel index (z,y,x) -> world LPS mm (x,y,z)."""
        sp_xyz = self.spacing_zyx[::-1]
        m = self.direction @ np.diag(sp_xyz)
        return self.origin_xyz + m @ np.asarray(zyx, float)[::-1]


def _read_mhd(path: str) -> Scan:
    """A MetaImage (.mhd + data file), read by SimpleITK (ITK's MetaImageIO and its geometry)."""
    import SimpleITK as sitk

    return _from_sitk(sitk.ReadImage(path))


def _from_sitk(img) -> Scan:
    """A SimpleITK image as a Scan (HU cast to int16)."""
    import SimpleITK as sitk

    hu = sitk.GetArrayFromImage(img).astype(np.int16)
    # GetDirection is row-major with the x, y, z index axes as columns, as Scan.direction wants.
    return Scan(hu, np.array(img.GetOrigin()), np.array(img.GetSpacing()[::-1]),
                np.array(img.GetDirection()).reshape(3, 3))


def _read_nifti(path: str) -> Scan:
    import nibabel as nib

    img = nib.load(path)
    arr = np.asanyarray(img.dataobj)
    slope, inter = img.dataobj.slope, img.dataobj.inter
    if slope is not None and (slope != 1 or (inter or 0) != 0):
        arr = arr * slope + (inter or 0)
    hu = np.ascontiguousarray(np.transpose(arr, (2, 1, 0))).astype(np.int16)
    aff = img.affine.copy()
    ras2lps = np.diag([-1.0, -1.0, 1.0])
    m = ras2lps @ aff[:3, :3]
    origin = ras2lps @ aff[:3, 3]
    sp_xyz = np.linalg.norm(m, axis=0)
    d = m / sp_xyz
    return Scan(hu, origin, sp_xyz[::-1].copy(), d)


def read_scan(path: str) -> Scan:
    """Read a .mhd/.mha or .nii/.nii.gz scan; DICOM folders need SimpleITK (not used in training)."""
    if path.endswith(".mhd"):
        return _read_mhd(path)
    if path.endswith(".nii") or path.endswith(".nii.gz"):
        return _read_nifti(path)
    if os.path.isdir(path):
        import SimpleITK as sitk  # optional, only for DICOM

        r = sitk.ImageSeriesReader()
        r.SetFileNames(r.GetGDCMSeriesFileNames(path))
        return _from_sitk(r.Execute())
    raise ValueError(f"unsupported scan path {path}")


@dataclass
class Nodule:
    seriesuid: str
    xyz: np.ndarray
    diameter_mm: float
    diameter_vox: float
    density: str
    attachment: str
    excluded: bool = False


def read_annotations(path: str, excluded: bool = False) -> list[Nodule]:
    """Read a LUNA16-style annotations.csv with Speck's optional extra columns."""
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for row in csv.DictReader(f):
            d = float(row["diameter_mm"])
            if d <= 0:
                d = 10.0  # LUNA16: excluded findings without a size count as 10 mm
            out.append(Nodule(row["seriesuid"],
                              np.array([float(row["coordX"]), float(row["coordY"]), float(row["coordZ"])]),
                              d, float(row.get("diameter_vox") or d / 0.7),
                              row.get("density", "solid") or "solid",
                              row.get("attachment", "isolated") or "isolated", excluded))
    return out


def lung_mask(hu: np.ndarray, spacing_zyx) -> np.ndarray:
    """Classical lung mask: air below -400 HU not connected to the outside, two largest parts,
    holes filled per slice (so vessels and nodules inside the lungs are in the mask) and a small closing."""
    air = hu < -400
    lab, n = ndi.label(air)
    if n == 0:
        return np.zeros_like(air)
    border = np.unique(np.concatenate([lab[:, 0, :].ravel(), lab[:, -1, :].ravel(),
                                       lab[:, :, 0].ravel(), lab[:, :, -1].ravel()]))
    sizes = ndi.sum(np.ones_like(lab, dtype=np.uint8), lab, index=np.arange(1, n + 1))
    sizes[border[border > 0] - 1] = 0
    order = np.argsort(sizes)[::-1]
    keep = [i + 1 for i in order[:2] if sizes[i] > 0.05 * max(sizes.max(), 1)]
    m = np.isin(lab, keep)
    # close: ~3 mm ball
    r = np.maximum(1, np.round(3.0 / np.asarray(spacing_zyx)).astype(int))
    zz, yy, xx = np.ogrid[-r[0]:r[0] + 1, -r[1]:r[1] + 1, -r[2]:r[2] + 1]
    ball = (zz / r[0]) ** 2 + (yy / r[1]) ** 2 + (xx / r[2]) ** 2 <= 1.0
    m = ndi.binary_closing(np.pad(m, [(r[0],) * 2, (r[1],) * 2, (r[2],) * 2]), ball)[
        r[0]:-r[0], r[1]:-r[1], r[2]:-r[2]]
    for z in range(m.shape[0]):
        m[z] = ndi.binary_fill_holes(m[z])
    return m

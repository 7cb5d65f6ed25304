#!/usr/bin/env python3
"""Regenerates the tiny files in this folder (standard library only): `python3 make_bad.py`.

Each must make `speck_volume::open` fail cleanly with the error listed in
`../bad_inputs.rs` (`COMMITTED`); see README.md for what each one is.
"""
import gzip
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent


def nifti_header(dims, datatype=4, bitpix=16, vox_offset=352.0, sizeof_hdr=348):
    h = bytearray(352)
    struct.pack_into("<i", h, 0, sizeof_hdr)
    d = [len(dims)] + list(dims) + [1] * (7 - len(dims))
    struct.pack_into("<8h", h, 40, *d)
    struct.pack_into("<hh", h, 70, datatype, bitpix)
    struct.pack_into("<8f", h, 76, 1.0, 0.7, 0.7, 2.5, 1.0, 1.0, 1.0, 1.0)
    struct.pack_into("<f", h, 108, vox_offset)
    struct.pack_into("<f", h, 112, 1.0)
    h[123] = 2
    struct.pack_into("<hh", h, 252, 0, 1)  # qform_code 0, sform_code 1
    for r, row in enumerate([[0.7, 0, 0, 0], [0, 0.7, 0, 0], [0, 0, 2.5, 0]]):
        struct.pack_into("<4f", h, 280 + 16 * r, *row)
    h[344:348] = b"n+1\0"
    return bytes(h)


def main():
    # A header cut at 200 bytes.
    (HERE / "truncated_header.nii").write_bytes(nifti_header([4, 4, 4])[:200])
    # A complete header declaring 512 x 512 x 300 int16 voxels, and no voxels.
    (HERE / "lying_dims.nii").write_bytes(nifti_header([512, 512, 300]))
    # The same header gzipped, claiming 2^31 voxels (2048 x 1024 x 1024).
    (HERE / "two_to_31.nii.gz").write_bytes(
        gzip.compress(nifti_header([2048, 1024, 1024]), mtime=0)
    )
    # A 4-D image (dim[4] = 10).
    (HERE / "four_d.nii").write_bytes(nifti_header([2, 2, 2, 10]) + bytes(160))
    # Text with a .dcm name.
    (HERE / "not_dicom.dcm").write_bytes(b"this is not a DICOM file\n")
    # MetaImage header without ElementDataFile.
    (HERE / "no_data_file.mhd").write_text(
        "ObjectType = Image\nNDims = 3\nDimSize = 2 2 2\nElementType = MET_SHORT\n"
    )
    # MetaImage header whose data file does not exist.
    (HERE / "missing_data.mhd").write_text(
        "ObjectType = Image\nNDims = 3\nDimSize = 2 2 2\nElementType = MET_SHORT\n"
        "ElementDataFile = missing_data.raw\n"
    )


if __name__ == "__main__":
    main()

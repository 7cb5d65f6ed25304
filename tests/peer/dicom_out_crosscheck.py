"""Cross-check Speck's DICOM outputs (sr.dcm, seg.dcm) against its candidates.csv with highdicom
and pydicom, the reference Python readers of DICOM SR and SEG.

Usage: dicom_out_crosscheck.py SCAN_DIR SERIES_DIR
  SCAN_DIR    a `speck scan` scan folder holding candidates.csv, sr.dcm and (optionally) seg.dcm
  SERIES_DIR  the source CT series the scan read

Checks, failing with exit code 1 and a message naming the first difference:
- the report reads as a highdicom MeasurementReport whose TID 1410 measurement groups are the
  candidates at or above the operating point, in rank order (none: a Qualitative Evaluation
  Nodule = Absent instead): tracking identifier, finding
  (Nodule) and site (Lung, laterality = side), the SCOORD3D POINT within 0.01 mm of
  coordX/Y/Z, in the series' frame of reference;
- the diameter (measured_diameter_mm, else diameter_mm), volume (measured_volume_mm3) and the
  probability (Certainty of Finding / 100) agree; each measurement's source image is the slice
  whose plane is nearest to the point (for a multi-frame source such as one Enhanced CT image:
  that image and the Referenced Frame Number of the nearest frame);
- the evidence references exactly the instances of the series, and the same study and patient;
- the segmentation reads with highdicom; segment k carries group k's tracking UID; the centroid
  of each segment lies within half a voxel diagonal of its finding; every frame references a
  slice (or a frame of a multi-frame image) of the series at its own position.
Prints one summary line when everything agrees.
"""
import csv
import glob
import os
import sys

import highdicom as hd
import numpy as np
import pydicom


def fail(msg):
    print(f"MISMATCH: {msg}")
    sys.exit(1)


def main(scan_dir, series_dir):
    rows = [r for r in csv.DictReader(open(os.path.join(scan_dir, "candidates.csv")))]
    rows = sorted((r for r in rows if r["above_operating_point"] == "true"), key=lambda r: int(r["rank"]))
    slices = []
    for p in sorted(glob.glob(os.path.join(series_dir, "**", "*"), recursive=True)):
        if os.path.isfile(p):
            try:
                slices.append(pydicom.dcmread(p, stop_before_pixels=True))
            except Exception:
                pass
    uids = {s.SOPInstanceUID for s in slices}
    ct = slices[0]

    # The planes of the series: (SOP Instance UID, frame number or None, position, orientation);
    # a multi-frame image gives one per frame, from its functional groups (PS3.3 C.7.6.16).
    planes = []
    for s in slices:
        if int(s.get("NumberOfFrames", 1) or 1) > 1 and "PerFrameFunctionalGroupsSequence" in s:
            shared = s.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in s else None
            for k, fr in enumerate(s.PerFrameFunctionalGroupsSequence, start=1):
                group = lambda name: fr.get(name) or (shared.get(name) if shared is not None else None)
                ipp = group("PlanePositionSequence")[0].ImagePositionPatient
                iop = group("PlaneOrientationSequence")[0].ImageOrientationPatient
                planes.append((s.SOPInstanceUID, k, np.array(ipp, float), np.array(iop, float)))
        else:
            planes.append((s.SOPInstanceUID, None, np.array(s.ImagePositionPatient, float), np.array(s.ImageOrientationPatient, float)))
    frame_of_reference = ct.get("FrameOfReferenceUID")

    def nearest(point):
        best = None
        for uid, frame, ipp, o in planes:
            d = abs(np.dot(point - ipp, np.cross(o[:3], o[3:])))
            if best is None or d < best[0]:
                best = (d, (uid, frame))
        return best[1]

    sr = hd.sr.srread(os.path.join(scan_dir, "sr.dcm"))
    for attr in ["StudyInstanceUID", "PatientID", "PatientName", "StudyDate", "AccessionNumber"]:
        if str(sr.get(attr, "")) != str(ct.get(attr, "")):
            fail(f"{attr}: SR {sr.get(attr)!r}, series {ct.get(attr)!r}")
    evidence = set()
    for study in sr.CurrentRequestedProcedureEvidenceSequence:
        for series in study.ReferencedSeriesSequence:
            if series.SeriesInstanceUID != ct.SeriesInstanceUID:
                fail(f"evidence series {series.SeriesInstanceUID}")
            evidence |= {r.ReferencedSOPInstanceUID for r in series.ReferencedSOPSequence}
    if evidence != uids:
        fail(f"evidence lists {len(evidence)} instances, the series has {len(uids)}")

    groups = sr.content.get_planar_roi_measurement_groups()
    if len(groups) != len(rows):
        fail(f"{len(groups)} measurement groups for {len(rows)} reported candidates")
    worst = 0.0
    for g, r in zip(groups, rows):
        if g.tracking_identifier != f"Nodule {r['rank']}":
            fail(f"tracking identifier {g.tracking_identifier!r} for rank {r['rank']}")
        if g.finding_type.value != "27925004":
            fail(f"finding {g.finding_type}")
        site = g.finding_sites[0]
        if site.value.value != "39607008":
            fail(f"finding site {site}")
        lat = [c for c in site.ContentSequence if c.ConceptNameCodeSequence[0].CodeValue == "272741003"] if "ContentSequence" in site else []
        side = {"24028007": "right", "7771000": "left"}.get(lat[0].ConceptCodeSequence[0].CodeValue) if lat else ""
        if side != r["side"]:
            fail(f"rank {r['rank']}: laterality {side!r}, side {r['side']!r}")
        roi = g.roi
        if roi.GraphicType != "POINT" or roi.ReferencedFrameOfReferenceUID != frame_of_reference:
            fail(f"rank {r['rank']}: region {roi.GraphicType} in {roi.ReferencedFrameOfReferenceUID}")
        point = np.array(roi.value[0], float)
        want = np.array([float(r["coordX"]), float(r["coordY"]), float(r["coordZ"])])
        err = float(np.max(np.abs(point - want)))
        worst = max(worst, err)
        if err > 0.01:
            fail(f"rank {r['rank']}: point {point} vs candidates.csv {want}")
        meas = {m.name.value: m for m in g.get_measurements()}
        diameter = r["measured_diameter_mm"] if r["measured_diameter_mm"] and float(r["measured_diameter_mm"]) > 0 else r["diameter_mm"]
        checks = [("81827009", diameter, 1.0, "mm"), ("118565006", r["measured_volume_mm3"], 1.0, "mm3"), ("111012", r["probability"], 100.0, "%")]
        for code, value, scale, unit in checks:
            if value == "" or float(value) <= 0 and code != "111012":
                if code in meas:
                    fail(f"rank {r['rank']}: {code} present without a value in candidates.csv")
                continue
            m = meas.get(code)
            if m is None:
                fail(f"rank {r['rank']}: no measurement {code}")
            if m.unit.value != unit or abs(float(m.value) / scale - float(value)) > 1e-6:
                fail(f"rank {r['rank']}: {code} = {m.value} {m.unit.value}, candidates.csv {value}")
            src = [(i.referenced_sop_instance_uid, (i.referenced_frame_numbers or [None])[0]) for i in m.referenced_images]
            if src != [nearest(point)]:
                fail(f"rank {r['rank']}: {code} inferred from {src}, nearest slice (and frame) {nearest(point)}")
    summary = f"sr: {len(groups)} groups agree (max coordinate difference {worst:.4f} mm)"
    if not rows:
        # Nothing reported: the report says so under Qualitative Evaluations (TID 1500 row 12).
        qe = [i for i in sr.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "C0034375"]
        said = {(i.ConceptNameCodeSequence[0].CodeValue, i.ConceptCodeSequence[0].CodeValue)
                for q in qe for i in q.get("ContentSequence", []) if i.ValueType == "CODE"}
        if ("27925004", "272519000") not in said:
            fail(f"no finding, but no Qualitative Evaluation Nodule = Absent: {said}")
        summary += "; no finding: Qualitative Evaluations say Nodule = Absent"

    seg_path = os.path.join(scan_dir, "seg.dcm")
    if os.path.exists(seg_path):
        seg = hd.seg.segread(seg_path)
        if seg.StudyInstanceUID != ct.StudyInstanceUID or seg.FrameOfReferenceUID != frame_of_reference:
            fail("segmentation study or frame of reference")
        if list(seg.get_segment_numbers()) != list(range(1, len(rows) + 1)):
            fail(f"segments {seg.get_segment_numbers()} for {len(rows)} findings")
        px = seg.pixel_array
        if px.ndim == 2:
            px = px[None]
        shared = seg.SharedFunctionalGroupsSequence[0]
        row_mm, col_mm = (float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing)
        o = np.array(shared.PlaneOrientationSequence[0].ImageOrientationPatient, float)
        thickness = float(shared.PixelMeasuresSequence[0].get("SliceThickness", 1.0) or 1.0)
        half_diag = 0.5 * np.sqrt(row_mm**2 + col_mm**2 + thickness**2)
        sums = {}
        for k, fr in enumerate(seg.PerFrameFunctionalGroupsSequence):
            n = int(fr.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
            src = fr.DerivationImageSequence[0].SourceImageSequence[0]
            ref = (src.ReferencedSOPInstanceUID, int(src.ReferencedFrameNumber) if "ReferencedFrameNumber" in src else None)
            ipp = np.array(fr.PlanePositionSequence[0].ImagePositionPatient, float)
            cited = [p for p in planes if (p[0], p[1]) == ref]
            if not cited:
                fail(f"frame {k + 1} references {ref}, not a slice (or frame) of the series")
            if np.max(np.abs(cited[0][2] - ipp)) > 1e-3:
                fail(f"frame {k + 1} at {ipp} references {ref} at {cited[0][2]}")
            j, i = np.nonzero(px[k])
            pts = ipp + np.outer(i * col_mm, o[:3]) + np.outer(j * row_mm, o[3:])
            s = sums.setdefault(n, [np.zeros(3), 0])
            s[0] += pts.sum(axis=0)
            s[1] += len(pts)
        worst_c = 0.0
        for n, r in enumerate(rows, start=1):
            d = seg.get_segment_description(n)
            if d.tracking_uid != groups[n - 1].tracking_uid:
                fail(f"segment {n} tracking UID {d.tracking_uid} vs group {groups[n - 1].tracking_uid}")
            total, count = sums.get(n, [None, 0])
            if count == 0:
                fail(f"segment {n} is empty")
            c = total / count
            want = np.array([float(r["coordX"]), float(r["coordY"]), float(r["coordZ"])])
            dist = float(np.linalg.norm(c - want))
            worst_c = max(worst_c, dist)
            if dist > half_diag:
                fail(f"segment {n} centroid {c} is {dist:.2f} mm from its finding {want} (> {half_diag:.2f})")
        summary += f"; seg: {len(rows)} segments, {len(seg.PerFrameFunctionalGroupsSequence)} frames, centroids within {worst_c:.2f} mm"
    print(summary)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    main(sys.argv[1], sys.argv[2])

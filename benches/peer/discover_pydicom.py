"""Discover the series of a flat DICOM export with pydicom (peer for benches/discover.rs).

Usage: .venv-peer/bin/python benches/peer/discover_pydicom.py FOLDER REPEATS
What a simple archive crawler does: list the folder, read every file's header only
(`dcmread(..., stop_before_pixels=True)`), group the files by SeriesInstanceUID in one dict pass.
Prints JSON: the best wall time of REPEATS crawls (after one warm-up crawl, files in the page
cache), the number of files read and of series found, and the smallest and largest series.
"""
import json
import os
import sys
import time

import pydicom

folder, repeats = sys.argv[1], int(sys.argv[2])


def crawl():
    series = {}
    n = 0
    for entry in os.scandir(folder):
        if not entry.is_file():
            continue
        ds = pydicom.dcmread(entry.path, stop_before_pixels=True)
        series.setdefault(str(ds.SeriesInstanceUID), []).append(entry.path)
        n += 1
    return n, series


crawl()
best = float("inf")
for _ in range(repeats):
    t = time.perf_counter()
    n, series = crawl()
    best = min(best, time.perf_counter() - t)
sizes = [len(v) for v in series.values()]
print(json.dumps({
    "seconds": best,
    "files": n,
    "series": len(series),
    "min_files": min(sizes),
    "max_files": max(sizes),
    "pydicom": pydicom.__version__,
}))

#!/usr/bin/env python3
"""Generate the LUNA16 nodule-diameter quantile table embedded in
crates/phantom/src/sizes.rs (`LUNA16_DIAMETER_QUANTILES_MM`).

Reads the 1,186 reference nodules of ../shared/data/luna16/annotations.csv (diameter_mm column)
and prints 41 quantiles (every 2.5 %) as a Rust array. The phantom samples sizes by linear
interpolation of this inverse CDF.

    .venv-peer/bin/python tests/peer/calibrate_luna16_sizes.py [path/to/annotations.csv]
"""
import csv
import sys

import numpy as np


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/luna16/annotations.csv"
    with open(path, newline="") as f:
        d = np.array([float(r["diameter_mm"]) for r in csv.DictReader(f)])
    q = np.percentile(d, np.linspace(0, 100, 41))
    print(f"// {len(d)} LUNA16 diameters from {path}; quantiles at 0, 2.5, ..., 100 %.")
    print("pub(crate) const LUNA16_DIAMETER_QUANTILES_MM: [f64; 41] = [")
    for i in range(0, 41, 6):
        print("    " + " ".join(f"{v:.3}," for v in q[i:i + 6]))
    print("];")


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Idempotent: create .venv-peer with the peer tools (pydicom + pydicom-data, SimpleITK, nibabel,
# scikit-learn, highdicom) that the cross-check tests compare Speck against, and write the pydicom
# reference voxels into target/peer-ref/. Tests that need them skip cleanly without this step; CI runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv-peer/bin/python -c "import pydicom, SimpleITK, nibabel, sklearn, scipy, highdicom" 2>/dev/null; then
    python3 -m venv .venv-peer
    .venv-peer/bin/pip install --quiet -r tests/peer/requirements.txt
fi
.venv-peer/bin/python tests/peer/dicom_crosscheck.py

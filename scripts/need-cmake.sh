#!/usr/bin/env bash
# Speck's DICOM reader decodes JPEG-LS with CharLS, which cargo builds from source with cmake.
# Without cmake that build fails deep in a build script; say so up front instead.
if ! command -v cmake >/dev/null 2>&1; then
    echo "speck: building needs cmake (CharLS, the JPEG-LS decoder, is built from source)." >&2
    echo "       install it, e.g.:  sudo apt-get install cmake   (Debian/Ubuntu)" >&2
    exit 1
fi

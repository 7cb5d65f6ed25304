//! DICOM series reading and writing (in progress).

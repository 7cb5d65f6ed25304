//! NIfTI-1 reading and writing (in progress).

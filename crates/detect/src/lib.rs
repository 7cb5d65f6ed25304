//! speck-detect (in progress).

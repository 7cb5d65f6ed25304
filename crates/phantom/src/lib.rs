//! speck-phantom (in progress).

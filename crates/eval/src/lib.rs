//! speck-eval (in progress).

//! Resampling, cropping and padding (in progress).

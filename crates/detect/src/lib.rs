//! # speck-detect
//!
//! The detection engine (in progress).

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod contract;
mod error;
pub mod model;
pub mod runtime;

pub use contract::{ModelContract, ModelRole, Normalization};
pub use error::{DetectError, Result};
pub use model::{Model, SessionOptions};
pub use runtime::{find_ort_library, Device};

//! The machinery behind `speck scan`, `speck merge` and `speck demo`: discovery of scans in
//! archives, safe names, sharding, the memory budget, atomic outputs, thumbnails, the report, and
//! the batch runner.

pub mod atomic;
pub mod detector;
pub mod discover;
pub mod engine;
pub mod identity;
pub mod memory;
pub mod models;
pub mod names;
pub mod output;
pub mod report;
pub mod run;
pub mod shard;
pub mod thumbs;

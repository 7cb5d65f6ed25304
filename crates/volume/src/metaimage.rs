//! MetaImage (.mhd/.raw, .mha) reading and writing (in progress).

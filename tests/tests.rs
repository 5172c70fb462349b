//! The one integration-test binary: every module lives under `tests/it/`.
//!
//! - `roundtrip`: the library (`nngpu::compress` / `nngpu::decompress`) on edge cases, random
//!   and repetitive data, the seed's digit data and real text, plus determinism.
//! - `cli`: the `nngpu` binary's file naming, standard streams, overwrite rules and flags.
//! - `corrupt`: flipped bits, truncation, foreign files and trailing bytes are errors, never
//!   panics and never a half-written output.
//!
//! Each test works in its own temporary directory and runs the CPU twin, so the suite needs no
//! GPU; the GPU backend's own tests live beside it in `src/backend/gpu/`.

mod it;

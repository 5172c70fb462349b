//! The one integration-test binary: every module lives under `tests/it/`.
//!
//! - `roundtrip`: the library (`nngpu::compress` / `nngpu::decompress`) on edge cases, random
//!   and repetitive data, the seed's digit data and real text, plus determinism.
//! - `cli`: the `nngpu` binary's file naming, standard streams, overwrite rules and flags.
//! - `habits`: zstd's and xz's habits, one test per row of README.md's habits table.
//! - `streaming`: the binary as a stream: more than a mebibyte through pipes, joined archives,
//!   `-T` that leaves the archive unchanged, outputs refused before any work, and SIGINT and
//!   SIGTERM that leave no temporary file behind.
//! - `parallel_decode`: `-T` decompression of several frames at once: the same data for
//!   every thread count, whole frames written in order, the first damaged frame reported,
//!   frames too large to hold streamed.
//! - `terminal`: terminals on standard input and output, under a pseudo-terminal (`script`).
//! - `corrupt`: flipped bits, truncation, foreign files and trailing bytes are errors, never
//!   panics and never a half-written output.
//! - `golden`: the committed golden archive still decodes, and compressing its input still
//!   gives exactly its bytes (`NNGPU_REGENERATE_GOLDEN=1` rewrites it after a version bump).
//! - `simd`: the CPU twin's scalar and vector paths write the same archive bytes.
//! - `cross_backend`: GPU and CPU archives are identical and decode on either backend (skipped
//!   without an adapter unless `NNGPU_REQUIRE_GPU=1`).
//!
//! Each test works in its own temporary directory. The GPU kernels' own tests against the CPU
//! twin live beside them in `src/backend/gpu/`.

mod it;

//! Integration-test modules and the helpers they share.

mod cli;
mod corrupt;
mod cross_backend;
mod golden;
mod habits;
mod parallel_decode;
mod roundtrip;
mod simd;
mod streaming;
mod terminal;
mod util;

//! Integration-test modules and the helpers they share.

mod cli;
mod corrupt;
mod roundtrip;
mod util;

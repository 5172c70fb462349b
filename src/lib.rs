//! nngpu: lossless compression with an LSTM trained while it codes.
//!
//! The encoder and the decoder train the same integer LSTM on the same symbols in the same
//! order, so the model is never stored. Every value that can influence a probability is integer
//! arithmetic (`fixed`), so any backend (the CPU twin or a GPU through wgpu) reproduces the
//! same bits and an archive decodes on any machine.
//!
//! Architecture: `format` (the container), `coder` (the binary arithmetic coder), `model`
//! (shape, parameters, presets), `backend` (the CPU twin and the GPU backend, which run the
//! LSTM), `mix` (the context-mixing stage that turns the LSTM's byte predictions into bit
//! probabilities beside context and match models), `codec` (the schedule that ties them
//! together). The `nngpu` binary is a thin CLI over `codec`.

pub mod backend;
pub mod codec;
pub mod coder;
pub mod error;
pub mod fixed;
pub mod format;
pub mod mix;
pub mod model;

pub use codec::{
    Options, Outcome, Progress, Report, compress, compress_stream, compress_with_progress,
    decompress, decompress_stream, decompress_with_progress,
};
pub use error::Error;

//! Backends run the model: one forward step for all streams, and training over a window.
//! The compressor above does not know which backend runs; every backend gives the same bits.

pub mod cpu;
pub mod gpu;

use crate::error::Error;

/// What runs the model, step by step.
///
/// The caller alternates `forward` calls (one per step) and, every `window` steps, one
/// `train` call over the steps forwarded since the last one. The streams that take part in a
/// step are always a prefix `0..n` of all streams, and that prefix never grows.
pub trait Backend {
    /// A human-readable name: the backend and, for a GPU, its adapter.
    fn describe(&self) -> String;

    /// Runs consecutive steps of the current window: at step `i`, streams `0..steps[i].len()`
    /// whose previous symbols are `steps[i]`. Returns their frequency tables, step after step
    /// and stream after stream, 256 entries each, every entry at least 1 and every table
    /// summing to exactly 2^16. The decoder passes one step at a time (it needs each step's
    /// symbols before the next); the encoder knows its input and may pass a whole window.
    fn forward(&mut self, steps: &[&[u8]]) -> Result<&[u32], Error>;

    /// Back-propagates over the steps forwarded since the last `train` and updates the weights
    /// once, with Adam's learning rate `learning_rate_q24` (Q24; see
    /// `model::schedule::learning_rate_q24`). `targets` holds, step by step, the symbol each
    /// active stream actually had.
    fn train(&mut self, targets: &[u8], learning_rate_q24: u32) -> Result<(), Error>;
}

/// Which backend the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    /// A hardware GPU if there is one (or the adapter named, even a software one), else the
    /// CPU twin; also the CPU twin when the GPU cannot hold the model.
    Auto,
    /// A GPU adapter through wgpu (hardware or software); an error if none can run the model.
    Gpu,
    /// The CPU twin.
    Cpu,
}

/// Opens the backend `choice` names for a model of `params`. `adapter`, if given, is a
/// substring of the GPU adapter's name to prefer.
pub fn open(
    choice: BackendChoice,
    adapter: Option<&str>,
    params: &crate::model::params::ModelParams,
) -> Result<Box<dyn Backend>, Error> {
    match choice {
        BackendChoice::Cpu => Ok(Box::new(cpu::CpuBackend::new(params))),
        BackendChoice::Gpu => Ok(Box::new(gpu::GpuBackend::open(adapter, params)?)),
        // A software adapter runs these kernels far slower than the CPU twin (see the
        // benchmark figures in README.md), so `auto` never picks one by itself, only when
        // the user names it. `auto` falls back to the CPU twin when the GPU cannot hold
        // this model (a limit, a missing feature); the archive is the same either way.
        BackendChoice::Auto => match gpu::usable_adapters(adapter).first() {
            Some(best) if adapter.is_some() || !gpu::is_software(&best.get_info()) => {
                match gpu::GpuBackend::on(best, params) {
                    Ok(gpu) => Ok(Box::new(gpu)),
                    Err(Error::BackendUnavailable(_)) => Ok(Box::new(cpu::CpuBackend::new(params))),
                    Err(other) => Err(other),
                }
            }
            _ => Ok(Box::new(cpu::CpuBackend::new(params))),
        },
    }
}

//! Backends run the model: one forward step for all streams, and training over a window.
//! The compressor above does not know which backend runs; every backend gives the same bits.

pub mod cpu;
pub mod gpu;

use crate::error::Error;
use crate::model::params::ModelParams;

/// What runs the model, step by step.
///
/// The caller alternates `forward` calls (each one or more whole steps, or one part of a
/// step) and, every `window` steps, one `train` call over the steps forwarded since the last
/// one; or, when it knows the data, runs whole windows with `forward_window_ahead`. The
/// streams that take part in a step are always a prefix `0..n` of all streams, and that
/// prefix never grows.
///
/// A backend is `Send`: the encoder runs it on a thread of its own, ahead of the coder.
pub trait Backend: Send {
    /// A human-readable name: the backend and, for a GPU, its adapter.
    fn describe(&self) -> String;

    /// Runs consecutive steps of the current window, or the rest of one: at step `i`, streams
    /// `first_stream..first_stream + steps[i].len()` whose previous symbols are `steps[i]`.
    /// Returns their frequency tables, step after step and stream after stream, 256 entries
    /// each, every entry at least 1 and every table summing to exactly 2^16.
    ///
    /// With `first_stream == 0` every entry of `steps` starts a new step. With
    /// `first_stream > 0`, `steps` holds exactly one entry, which continues the step last
    /// started, whose streams so far end exactly at `first_stream` (a backend panics
    /// otherwise). So a step may run in parts, `0..a` then `a..b`, and the window's record
    /// (and hence `train`) is the same as for the whole step `0..b` at once.
    ///
    /// The encoder knows its input and may pass a whole window; the decoder needs each step's
    /// symbols before the next, so it passes one step, or one part of a step, at a time.
    fn forward(&mut self, first_stream: usize, steps: &[&[u8]]) -> Result<&[u32], Error>;

    /// Back-propagates over the steps forwarded since the last `train` and updates the weights
    /// once, with Adam's learning rate `learning_rate_q24` (Q24; see
    /// `model::schedule::learning_rate_q24`). `targets` holds, step by step, the symbol each
    /// active stream actually had.
    fn train(&mut self, targets: &[u8], learning_rate_q24: u32) -> Result<(), Error>;

    /// Runs one whole window of known data and trains on it: `forward(0, steps)` then
    /// `train(targets, learning_rate_q24)`, with the same record and the same weights after
    /// it, but without waiting for the window's tables. Instead it may give those of the
    /// window before: it puts into `tables`, in place of what it held, the tables of the oldest
    /// window run this way whose tables it has not given yet, laid out as `forward` returns
    /// them, and says whether it did (if not, `tables` is left as it was). Each window's
    /// tables come back exactly once, in order, at most one call late; `finish_windows` gives
    /// the last ones.
    ///
    /// The call must start a window (every earlier `forward` trained), and a run of these
    /// calls must end with `finish_windows` before any other call but `describe` (a backend
    /// may panic otherwise). This default runs `forward` and `train` and gives the window's
    /// own tables at once; a GPU submits the window and reads the one before while it runs.
    fn forward_window_ahead(
        &mut self,
        steps: &[&[u8]],
        targets: &[u8],
        learning_rate_q24: u32,
        tables: &mut Vec<u32>,
    ) -> Result<bool, Error> {
        tables.clear();
        tables.extend_from_slice(self.forward(0, steps)?);
        self.train(targets, learning_rate_q24)?;
        Ok(true)
    }

    /// Ends a run of `forward_window_ahead` calls: puts into `tables`, as that does, the
    /// tables of its last window if they have not been given yet, and says whether it did.
    /// Afterwards every window's tables have been given and the backend takes any call again.
    fn finish_windows(&mut self, _tables: &mut Vec<u32>) -> Result<bool, Error> {
        Ok(false)
    }
}

/// Which backend the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    /// A hardware GPU if there is one and its LSTM steps run enough streams
    /// (`AUTO_GPU_MIN_STREAMS_PER_STEP_ENCODING`, `…_DECODING`), or the adapter named (even a
    /// software one); else the CPU twin; also the CPU twin when the GPU cannot hold the model.
    Auto,
    /// A GPU adapter through wgpu (hardware or software); an error if none can run the model.
    Gpu,
    /// The CPU twin.
    Cpu,
}

/// What the backend will run: the work `auto` weighs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Workload {
    /// Whether the run decodes (one step at a time, waiting for each step's bytes) rather
    /// than encodes (whole windows at once, ahead of the coder).
    pub decoding: bool,
    /// Mean streams one LSTM step runs over the frame, as far as it is known
    /// (`model::schedule::mean_streams_per_step`): the batch a GPU step computes at once, whose
    /// cost grows far more slowly with it on a GPU than on the CPU twin. At a stride of 1, the
    /// bytes a decoder step codes, which is how the thresholds below were measured.
    pub streams_per_step: f64,
}

/// Opens the backend `choice` names for a model of `params` running `work`. `adapter`, if
/// given, is a substring of the GPU adapter's name to prefer.
pub fn open(
    choice: BackendChoice,
    adapter: Option<&str>,
    params: &ModelParams,
    work: Workload,
) -> Result<Box<dyn Backend>, Error> {
    match choice {
        BackendChoice::Cpu => Ok(Box::new(cpu::CpuBackend::new(params))),
        BackendChoice::Gpu => Ok(Box::new(gpu::GpuBackend::open(adapter, params)?)),
        BackendChoice::Auto => auto(adapter, params, work),
    }
}

/// Fewest mean streams per LSTM step for which `auto` compresses on a hardware GPU that the
/// user did not name. Measured on an NVIDIA H200 against the CPU twin on the host's 16 cores at `-5`
/// (README, Results; `scripts/gpu-host-check.sh`, format version 3 with one dispatch per
/// layer): one stream, 3.5 KB/s on the GPU against 22.0 KB/s; 64 streams (64 bytes per step),
/// 131.0 against 113.2 KB/s, where the GPU first wins.
pub const AUTO_GPU_MIN_STREAMS_PER_STEP_ENCODING: f64 = 64.0;

/// The same for decompression, which waits on every step: at 64 bytes per step the H200 decoded
/// at 71.6 KB/s against the twin's 80.9 (894 µs per step against 791), and at 8.8 bytes per
/// step (the schedule's first megabyte) at 19.2 KB/s. A GPU step's time grows far more slowly
/// with the stream count than the twin's, which is linear, so the crossover is taken at twice
/// the last measured loss; larger widths were not measured.
pub const AUTO_GPU_MIN_STREAMS_PER_STEP_DECODING: f64 = 128.0;

/// What `auto` runs, and why. A software adapter runs these kernels far slower than the CPU
/// twin (README, Results), so `auto` never picks one by itself, only when the user names it;
/// it falls back to the CPU twin when the GPU cannot hold this model (a limit, a missing
/// feature). The archive is the same whichever runs.
fn auto(
    adapter: Option<&str>,
    params: &ModelParams,
    work: Workload,
) -> Result<Box<dyn Backend>, Error> {
    let cpu = |why: String| -> Box<dyn Backend> {
        Box::new(Chosen {
            backend: Box::new(cpu::CpuBackend::new(params)),
            why,
        })
    };
    let needed = if work.decoding {
        AUTO_GPU_MIN_STREAMS_PER_STEP_DECODING
    } else {
        AUTO_GPU_MIN_STREAMS_PER_STEP_ENCODING
    };
    if adapter.is_none() && work.streams_per_step < needed {
        return Ok(cpu(format!(
            "{:.1} streams per LSTM step: a GPU was measured faster only from {needed}",
            work.streams_per_step
        )));
    }
    match gpu::usable_adapters(adapter).first() {
        Some(best) if adapter.is_some() || !gpu::is_software(&best.get_info()) => {
            match gpu::GpuBackend::on(best, params) {
                Ok(gpu) => Ok(Box::new(Chosen {
                    backend: Box::new(gpu),
                    why: match adapter {
                        Some(name) => format!("the adapter matching {name:?}"),
                        None => format!(
                            "{:.1} streams per LSTM step on a hardware GPU",
                            work.streams_per_step
                        ),
                    },
                })),
                Err(Error::BackendUnavailable(e)) => Ok(cpu(format!("the GPU cannot run it: {e}"))),
                Err(other) => Err(other),
            }
        }
        _ => Ok(cpu("no hardware GPU".to_string())),
    }
}

/// A backend `auto` chose, with the reason `describe` (and so `-v`) gives.
struct Chosen {
    backend: Box<dyn Backend>,
    why: String,
}

impl Backend for Chosen {
    fn describe(&self) -> String {
        format!("{}, chosen by auto: {}", self.backend.describe(), self.why)
    }

    fn forward(&mut self, first_stream: usize, steps: &[&[u8]]) -> Result<&[u32], Error> {
        self.backend.forward(first_stream, steps)
    }

    fn train(&mut self, targets: &[u8], learning_rate_q24: u32) -> Result<(), Error> {
        self.backend.train(targets, learning_rate_q24)
    }

    fn forward_window_ahead(
        &mut self,
        steps: &[&[u8]],
        targets: &[u8],
        learning_rate_q24: u32,
        tables: &mut Vec<u32>,
    ) -> Result<bool, Error> {
        self.backend
            .forward_window_ahead(steps, targets, learning_rate_q24, tables)
    }

    fn finish_windows(&mut self, tables: &mut Vec<u32>) -> Result<bool, Error> {
        self.backend.finish_windows(tables)
    }
}

//! One block through the model: the input cut into streams, the LSTM run step by step on a
//! backend, and each step's bytes coded through the frame's mixing stage. The encoder and the
//! decoder share this one schedule (`run_block`), which is what keeps their models in lockstep.

mod halves;
#[cfg(test)]
mod tests;

use std::sync::mpsc;

use crate::backend::Backend;
use crate::error::Error;
use crate::fixed::SYMBOLS;
use crate::format::Segments;
use crate::model::params::ModelParams;
use crate::model::schedule;

/// The tables of `streams` streams out of a backend's output, starting at `tables[at]`.
fn tables_of(tables: &[u32], at: usize, streams: usize) -> Result<&[u32], Error> {
    tables
        .get(at..at + streams * SYMBOLS)
        .ok_or(Error::InvalidTable)
}

/// Bytes between two progress reports.
const PROGRESS_INTERVAL: u64 = 1 << 14;

/// Where a block sits in its frame, and how it is cut.
pub struct BlockPlan {
    /// The frame's model.
    pub params: ModelParams,
    /// Bytes of the frame coded before this block (the learning-rate schedule's position).
    pub position: u64,
    /// Bytes in the block, at least 1.
    pub len: usize,
    /// Streams the block is cut into, `1..=len`.
    pub streams: u32,
    /// Bytes of each stream per LSTM step, at least 1 (the block record's).
    pub stride: u8,
}

impl BlockPlan {
    /// How the block is cut into its streams' segments.
    pub fn segments(&self) -> Segments {
        Segments::new(self.len, self.streams as usize)
    }

    /// Bytes of each stream per LSTM step, at least 1.
    pub fn stride(&self) -> usize {
        usize::from(self.stride.max(1))
    }
}

/// Windows of tables the model may run ahead of the coder when the data is known.
const WINDOWS_AHEAD: usize = 2;

/// Runs the model over one block. The LSTM runs `Segments::model_steps(stride)` steps, each
/// predicting the first byte of a run of `stride` bytes of every active stream
/// (`Segments::sub_steps`) from the byte before the run (0 at a segment's start). `code(step,
/// first, tables, symbols)` codes (or decodes) LSTM step `step`'s bytes of the `n` streams
/// `first..first + n`, given their LSTM tables (`tables`, 256 entries a stream, `n` of them):
/// `symbols` holds `n` bytes for each of the step's sub-steps, `symbols[j · n + i]` the byte
/// of stream `first + i` at its `j`-th sub-step (untouched where that stream has no byte), and
/// `code` leaves the bytes there. Every path calls it step by step, each step's streams in one
/// or two parts, stream 0 upward, together `0..Segments::active(step · stride)`; two parts
/// only at a stride of 1.
/// `known` is the block's data when it is known in advance (encoding, or replaying a raw
/// block): the backend then runs a whole window of steps at once, up to `WINDOWS_AHEAD`
/// windows ahead of `code`, which runs on a thread of its own, since neither the model's
/// inputs nor its training targets wait for the coder. Otherwise (decoding) each step runs
/// after the previous step's bytes are decoded: from `halves::MIN_STREAMS` streams on in two
/// halves, each half's model step overlapping the coder's work on the other half; below, one
/// whole step at a time. Either way the backend records the same steps in the same order. The
/// model trains after every `window` steps and on the block's last, partial window, so each
/// block leaves the backend ready for the next. `progress` receives the bytes of the block
/// done so far, now and then.
pub fn run_block(
    backend: &mut dyn Backend,
    plan: &BlockPlan,
    known: Option<&[u8]>,
    progress: &mut dyn FnMut(u64),
    code: impl FnMut(usize, usize, &[u32], &mut [u8]) -> Result<(), Error> + Send,
) -> Result<(), Error> {
    let seg = plan.segments();
    match known {
        Some(data) => run_ahead(backend, plan, &seg, data, progress, code),
        None if plan.streams >= halves::MIN_STREAMS && plan.stride() == 1 => {
            halves::run_in_halves(backend, plan, &seg, progress, code)
        }
        None => run_step_by_step(backend, plan, &seg, progress, code),
    }?;
    progress(plan.len as u64);
    Ok(())
}

/// The windows of a block of `steps` LSTM steps: `(first step, steps)`, each ending at a
/// multiple of `window` or at the block's last step.
fn windows(steps: usize, window: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..steps)
        .step_by(window)
        .map(move |t| (t, window.min(steps - t)))
}

/// Whether LSTM step `t` of a block of `steps` is the last of its window (`windows`): the
/// model trains after it.
fn ends_window(steps: usize, window: usize, t: usize) -> bool {
    (t + 1).is_multiple_of(window) || t + 1 == steps
}

/// Bytes of LSTM step `t` at `stride`: one for every active stream of each of its sub-steps.
fn bytes_of_step(seg: &Segments, stride: usize, t: usize) -> u64 {
    seg.sub_steps(t, stride).map(|u| seg.active(u) as u64).sum()
}

/// Trains the model on `targets` (the stream-steps run since the last update, `done` bytes of
/// the block coded by their end).
fn train(
    backend: &mut dyn Backend,
    plan: &BlockPlan,
    targets: &[u8],
    done: u64,
) -> Result<(), Error> {
    backend.train(targets, learning_rate_q24(plan, done))
}

/// The learning rate (Q24) of the update that ends with `done` bytes of the block coded.
fn learning_rate_q24(plan: &BlockPlan, done: u64) -> u32 {
    schedule::learning_rate_q24(&plan.params, plan.position + done, plan.streams)
}

/// The known-data path: this thread runs the model window by window and hands each window's
/// tables to a coder thread. It never waits for the window it has just given the backend:
/// `Backend::forward_window_ahead` may give a window's tables one call later, once the next
/// window runs (the coder gets them in order either way, so the archive is the same). The
/// model stays on the caller's thread because the CPU twin runs on rayon's pool: called from
/// one of rayon's workers (a caller's `par_iter`), the twin's work keeps flowing, whereas a
/// rayon worker blocked on the coder would starve it.
fn run_ahead(
    backend: &mut dyn Backend,
    plan: &BlockPlan,
    seg: &Segments,
    data: &[u8],
    progress: &mut dyn FnMut(u64),
    mut code: impl FnMut(usize, usize, &[u32], &mut [u8]) -> Result<(), Error> + Send,
) -> Result<(), Error> {
    let window = plan.params.window as usize;
    let stride = plan.stride();
    let model_steps = seg.model_steps(stride);
    let (tables_tx, tables_rx) = mpsc::sync_channel::<Vec<u32>>(WINDOWS_AHEAD);
    // Used table buffers go back to the model's thread, so no window allocates.
    let (spare_tx, spare_rx) = mpsc::channel::<Vec<u32>>();
    std::thread::scope(|scope| {
        let coder = scope.spawn(move || -> Result<(), Error> {
            let mut symbols = vec![0u8; seg.streams() * stride];
            for (t, batch) in windows(model_steps, window) {
                // A closed channel means the model failed: its error is reported.
                let Ok(freqs) = tables_rx.recv() else {
                    return Ok(());
                };
                let mut at = 0;
                for u in t..t + batch {
                    let active = seg.active(u * stride);
                    let bytes = active * seg.sub_steps(u, stride).len();
                    code(u, 0, tables_of(&freqs, at, active)?, &mut symbols[..bytes])?;
                    at += active * SYMBOLS;
                }
                let _ = spare_tx.send(freqs);
            }
            Ok(())
        });
        let modelled = (|| -> Result<(), Error> {
            let mut inputs: Vec<Vec<u8>> = Vec::new();
            let mut targets = Vec::new();
            let mut done = 0u64;
            let mut tables = Vec::new();
            // Hands the coder the tables the backend has just given, if it gave any; false
            // once the coder has stopped on an error of its own, which it reports.
            let hand_on = |given: bool, tables: &mut Vec<u32>| {
                if !given {
                    return true;
                }
                let spare = spare_rx.try_recv().unwrap_or_default();
                tables_tx.send(std::mem::replace(tables, spare)).is_ok()
            };
            for (t, batch) in windows(model_steps, window) {
                inputs.resize_with(batch, Vec::new);
                targets.clear();
                let before = done;
                for (u, step) in inputs.iter_mut().enumerate() {
                    step.clear();
                    let first = (t + u) * stride;
                    step.extend((0..seg.active(first)).map(|s| match first {
                        0 => 0,
                        _ => data[seg.offset(s, first) - 1],
                    }));
                    targets.extend((0..seg.active(first)).map(|s| data[seg.offset(s, first)]));
                    done += bytes_of_step(seg, stride, t + u);
                }
                let steps: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
                let rate = learning_rate_q24(plan, done);
                let given = backend.forward_window_ahead(&steps, &targets, rate, &mut tables)?;
                if !hand_on(given, &mut tables) {
                    return Ok(());
                }
                if done / PROGRESS_INTERVAL != before / PROGRESS_INTERVAL {
                    progress(done);
                }
            }
            let given = backend.finish_windows(&mut tables)?;
            hand_on(given, &mut tables);
            Ok(())
        })();
        drop(tables_tx);
        with_coder(modelled, coder)
    })
}

/// The model's result and then the coder's, once the coder thread has ended (its channel
/// from the model closed, so it cannot wait for more); a panic on the coder's thread goes on
/// here.
fn with_coder(
    modelled: Result<(), Error>,
    coder: std::thread::ScopedJoinHandle<'_, Result<(), Error>>,
) -> Result<(), Error> {
    let coded = coder
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    modelled.and(coded)
}

/// The decoding path: one step at a time, each step's inputs the bytes just decoded.
fn run_step_by_step(
    backend: &mut dyn Backend,
    plan: &BlockPlan,
    seg: &Segments,
    progress: &mut dyn FnMut(u64),
    mut code: impl FnMut(usize, usize, &[u32], &mut [u8]) -> Result<(), Error>,
) -> Result<(), Error> {
    let window = plan.params.window as usize;
    let stride = plan.stride();
    let model_steps = seg.model_steps(stride);
    // The byte before each stream's next run. A stream's first step sees 0, as at the start
    // of the frame: segments are not contiguous with the stream's previous block.
    let mut inputs = vec![0u8; seg.streams()];
    let mut symbols = vec![0u8; seg.streams() * stride];
    let mut targets = Vec::with_capacity(window * seg.streams());
    let mut done = 0u64;
    for t in 0..model_steps {
        let sub_steps = seg.sub_steps(t, stride);
        let active = seg.active(sub_steps.start);
        let freqs = backend.forward(0, &[&inputs[..active]])?;
        let before = done;
        let symbols = &mut symbols[..active * sub_steps.len()];
        code(t, 0, tables_of(freqs, 0, active)?, symbols)?;
        targets.extend_from_slice(&symbols[..active]);
        // The next step's streams all have a byte in this step's last sub-step.
        let last = sub_steps.len() - 1;
        let ending = seg.active(sub_steps.end - 1);
        inputs[..ending].copy_from_slice(&symbols[last * active..last * active + ending]);
        done += bytes_of_step(seg, stride, t);
        if done / PROGRESS_INTERVAL != before / PROGRESS_INTERVAL {
            progress(done);
        }
        if ends_window(model_steps, window, t) {
            train(backend, plan, &targets, done)?;
            targets.clear();
        }
    }
    Ok(())
}

//! One block through the model: the input cut into streams, the LSTM run step by step on a
//! backend, and each byte coded through its stream's mixing stage. The encoder and the
//! decoder share this one schedule (`run_block`), which is what keeps their models in lockstep.

use crate::backend::Backend;
use crate::error::Error;
use crate::fixed::SYMBOLS;
use crate::model::params::ModelParams;
use crate::model::schedule;

/// How a block of `len` bytes is cut into `streams` contiguous segments of `segment` bytes
/// (the last ones shorter or empty); step `t` codes byte `t` of every segment that has one.
pub struct Segments {
    len: usize,
    streams: usize,
    segment: usize,
}

impl Segments {
    /// The cut of a block of `len ≥ 1` bytes into `streams ≥ 1` streams.
    pub fn new(len: usize, streams: usize) -> Segments {
        Segments {
            len,
            streams,
            segment: len.div_ceil(streams),
        }
    }

    /// Streams that have a byte at step `t`: always a prefix `0..n`, shrinking with `t`.
    fn active(&self, t: usize) -> usize {
        (self.len - t).div_ceil(self.segment).min(self.streams)
    }
}

/// One stream's table out of a backend's output.
fn as_table(table: &[u32]) -> Result<&[u32; SYMBOLS], Error> {
    table.try_into().map_err(|_| Error::InvalidTable)
}

/// Bytes between two progress reports.
const PROGRESS_INTERVAL: u64 = 1 << 14;

/// Where a block sits in its frame, and how it is cut.
pub struct BlockPlan<'a> {
    /// The frame's model.
    pub params: &'a ModelParams,
    /// Bytes of the frame coded before this block (the learning-rate schedule's position).
    pub position: u64,
    /// Bytes in the block, at least 1.
    pub len: usize,
    /// Streams the block is cut into, `1..=len`.
    pub streams: u32,
}

/// Runs the model over one block. `code(stream, offset, freqs)` codes (or decodes) the byte
/// at `offset` of the block, which belongs to `stream`, given the LSTM's table `freqs`, and
/// returns it. `known` is the block's data when it is known in advance (encoding, or replaying
/// a raw block): the backend then runs a whole window of steps at once; otherwise
/// (decoding) one step at a time. The model trains after every `window` steps and on the
/// block's last, partial window, so each block leaves the backend ready for the next.
/// `progress` receives the bytes of the block done so far, now and then.
pub fn run_block(
    backend: &mut dyn Backend,
    plan: &BlockPlan,
    known: Option<&[u8]>,
    progress: &mut dyn FnMut(u64),
    mut code: impl FnMut(usize, usize, &[u32; SYMBOLS]) -> Result<u8, Error>,
) -> Result<(), Error> {
    let seg = Segments::new(plan.len, plan.streams as usize);
    let window = plan.params.window as usize;
    // The previous symbol of each stream, step by step, for the steps being run. A stream's
    // first step sees 0, as at the start of the frame: segments are not contiguous with the
    // stream's previous block.
    let mut inputs: Vec<Vec<u8>> = vec![vec![0u8; seg.streams]];
    let mut targets = Vec::with_capacity(window * seg.streams);
    let mut done = 0u64;
    let mut t = 0;
    let train = |backend: &mut dyn Backend, targets: &mut Vec<u8>, done: u64| {
        let rate = schedule::learning_rate_q24(plan.params, plan.position + done, plan.streams);
        let result = backend.train(targets, rate);
        targets.clear();
        result
    };
    while t < seg.segment {
        let window_end = ((t / window + 1) * window).min(seg.segment);
        let batch = if known.is_some() { window_end - t } else { 1 };
        if let Some(data) = known {
            inputs.resize_with(batch, Vec::new);
            for (u, step) in inputs.iter_mut().enumerate() {
                step.clear();
                step.extend((0..seg.active(t + u)).map(|s| match t + u {
                    0 => 0,
                    tu => data[s * seg.segment + tu - 1],
                }));
            }
        }
        let steps: Vec<&[u8]> = (0..batch)
            .map(|u| &inputs[u][..seg.active(t + u)])
            .collect();
        let freqs = backend.forward(&steps)?;
        let before = done;
        let mut tables = freqs.chunks_exact(SYMBOLS);
        for u in t..t + batch {
            for s in 0..seg.active(u) {
                let table = as_table(tables.next().ok_or(Error::InvalidTable)?)?;
                let symbol = code(s, s * seg.segment + u, table)?;
                targets.push(symbol);
                if known.is_none() {
                    inputs[0][s] = symbol;
                }
                done += 1;
            }
        }
        t += batch;
        if done / PROGRESS_INTERVAL != before / PROGRESS_INTERVAL {
            progress(done);
        }
        if t % window == 0 || t == seg.segment {
            train(backend, &mut targets, done)?;
        }
    }
    progress(plan.len as u64);
    Ok(())
}

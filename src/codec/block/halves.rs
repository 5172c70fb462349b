//! The decoder's two alternating halves. A decoder step needs the previous step's bytes, so
//! with one whole step at a time the model and the coder take turns and each idles while the
//! other works. Cut each step's streams into two halves, H0 = `0..half` and H1 = `half..`:
//! the model computes H0 of step t+1 (which needs only H0's bytes of step t) while the coder
//! decodes H1 of step t, then H1 of step t+1 while the coder decodes H0 of step t+1.
//!
//! The backend still records each step whole (`Backend::forward` with a first stream), and the
//! coder still decodes every byte step by step and stream 0 upward, so the archive and the
//! shared mixing stage see exactly what the one-step loop gives them.

use std::collections::VecDeque;
use std::sync::mpsc;

use super::{BlockPlan, PROGRESS_INTERVAL, ends_window, train, with_coder};
use crate::backend::Backend;
use crate::error::Error;
use crate::fixed::SYMBOLS;
use crate::format::Segments;

/// Fewest streams of a block for which the decoder runs in halves.
///
/// Halves pay only where hiding the coder's time saves more than the second `forward` call of
/// every step costs. Measured, decoding with halves from 2 streams on against the one-step
/// loop (release builds, 2-core x86-64 shared with other jobs, load 4–7, the runs at raised
/// priority but the first lavapipe row's, prefixes of the 40 MB documentation text, seconds):
///
/// | input | level | streams | one step | halves |
/// |---|---:|---:|---:|---:|
/// | 300 KB | 2 | 4 | 4.0 | 5.5 |
/// | 300 KB | 2 | 16 | 3.6 | 4.0 |
/// | 300 KB | 2 | 32 | 3.8 | 4.0 |
/// | 300 KB | 2 | 64 | 3.6 | 3.5 |
/// | 300 KB | 2 | 128 | 4.1 | 4.1 |
/// | 600 KB | 2 | 256 | 9.0 | 9.1 |
/// | 2 MB | 2 | 64 | 23.9 | 24.1 |
/// | 2 MB | 2 | 256 | 29.9 | 30.2 |
/// | 2 MB | 5 | 16 | 63.0 | 69.9 |
/// | 100 KB, lavapipe | 1 | 64 | 11.7–12.5 | 11.5–12.8 |
/// | 100 KB, lavapipe | 1 | 256 | 11.9–15.8 | 11.8–12.3 |
///
/// On the CPU twin (and lavapipe, which computes on the same cores) the coder can only take
/// cores the model's workers use, so halves never won by more than the noise, and below 64
/// streams the extra call per step cost 5–40 %. A hardware GPU leaves the host's cores to the
/// coder, but every call waits out its round trip: from the H200 figures in README.md (about
/// 0.37 ms a step plus 6 µs a stream, the coder about 2 µs a byte on that host) halves would
/// cost it a quarter at 64 streams and 8 % at 128, and save about 6 % at 256, the presets'
/// widest blocks. Hence 256.
pub const MIN_STREAMS: u32 = 256;

/// One half of a step, between the model and the coder: the model sends its tables, the coder
/// sends it back with its symbols, and the model reuses both buffers, so no step allocates.
#[derive(Default)]
struct Part {
    step: usize,
    /// The half's first stream.
    first: usize,
    /// One table per stream of the half.
    tables: Vec<u32>,
    symbols: Vec<u8>,
}

/// The model's side: what came back from the coder, and what is still there.
struct ModelSide<'a> {
    back: mpsc::Receiver<Part>,
    /// `(step, first stream)` of the parts at the coder, oldest first (the coder returns them
    /// in that order).
    out: VecDeque<(usize, usize)>,
    spare: Vec<Part>,
    /// The previous symbol of each stream: 0 before its first.
    inputs: Vec<u8>,
    /// The symbols of the window so far, step by step.
    targets: Vec<u8>,
    /// Bytes of the block decoded.
    done: u64,
    progress: &'a mut dyn FnMut(u64),
}

impl ModelSide<'_> {
    /// Takes the oldest part back from the coder; `false` if the coder has stopped, which it
    /// does only on an error of its own, which it reports.
    fn take_back(&mut self) -> bool {
        let Ok(part) = self.back.recv() else {
            return false;
        };
        self.out.pop_front();
        let streams = part.first..part.first + part.symbols.len();
        self.inputs[streams].copy_from_slice(&part.symbols);
        self.targets.extend_from_slice(&part.symbols);
        let before = self.done;
        self.done += part.symbols.len() as u64;
        if self.done / PROGRESS_INTERVAL != before / PROGRESS_INTERVAL {
            (self.progress)(self.done);
        }
        self.spare.push(part);
        true
    }

    /// Takes parts back until the inputs of the part of step `step` from stream `first` are
    /// in: the same streams' part of step `step - 1`, and every part sent before it. `false`
    /// as `take_back`.
    fn wait_for_inputs(&mut self, step: usize, first: usize) -> bool {
        while let Some(&(s, f)) = self.out.front() {
            if s >= step || (s + 1 == step && f > first) {
                break;
            }
            if !self.take_back() {
                return false;
            }
        }
        true
    }
}

/// The decoding path in halves (see the module's comment). The model stays on the caller's
/// thread and the coder runs on a thread of its own, for the reason `run_ahead` gives. Both
/// halves' symbols of a window's last step are in before the model trains, so each window
/// costs one step without overlap.
pub(super) fn run_in_halves(
    backend: &mut dyn Backend,
    plan: &BlockPlan,
    seg: &Segments,
    progress: &mut dyn FnMut(u64),
    mut code: impl FnMut(usize, usize, &[u32], &mut [u8]) -> Result<(), Error> + Send,
) -> Result<(), Error> {
    debug_assert_eq!(plan.stride(), 1, "halves run one byte a stream a step");
    let window = plan.params.window as usize;
    let half = seg.streams().div_ceil(2);
    let (parts_tx, parts_rx) = mpsc::channel::<Part>();
    let (back_tx, back_rx) = mpsc::channel::<Part>();
    std::thread::scope(|scope| {
        let coder = scope.spawn(move || -> Result<(), Error> {
            // A closed channel means the model is done, or failed and reports it.
            while let Ok(mut part) = parts_rx.recv() {
                if part.tables.len() % SYMBOLS != 0 {
                    return Err(Error::InvalidTable);
                }
                part.symbols.resize(part.tables.len() / SYMBOLS, 0);
                code(part.step, part.first, &part.tables, &mut part.symbols)?;
                if back_tx.send(part).is_err() {
                    break;
                }
            }
            Ok(())
        });
        let mut side = ModelSide {
            back: back_rx,
            out: VecDeque::with_capacity(4),
            spare: Vec::with_capacity(4),
            inputs: vec![0; seg.streams()],
            targets: Vec::with_capacity(window * seg.streams()),
            done: 0,
            progress,
        };
        let modelled = (|| -> Result<(), Error> {
            for t in 0..seg.steps() {
                let active = seg.active(t);
                for (first, end) in [(0, active.min(half)), (half, active)] {
                    if first >= end {
                        continue;
                    }
                    if !side.wait_for_inputs(t, first) {
                        return Ok(());
                    }
                    let tables = backend.forward(first, &[&side.inputs[first..end]])?;
                    let mut part = side.spare.pop().unwrap_or_default();
                    part.step = t;
                    part.first = first;
                    part.tables.clear();
                    part.tables.extend_from_slice(tables);
                    if parts_tx.send(part).is_err() {
                        // The coder stopped on an error of its own, which it reports.
                        return Ok(());
                    }
                    side.out.push_back((t, first));
                }
                if ends_window(seg.steps(), window, t) {
                    while !side.out.is_empty() {
                        if !side.take_back() {
                            return Ok(());
                        }
                    }
                    train(backend, plan, &side.targets, side.done)?;
                    side.targets.clear();
                }
            }
            Ok(())
        })();
        drop(parts_tx);
        with_coder(modelled, coder)
    })
}

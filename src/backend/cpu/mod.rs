//! The CPU twin: the reference backend, in integer Rust. It defines the bits every other
//! backend must reproduce, and runs wherever no GPU is available. Its kernels run on the
//! vector instructions the CPU has (`simd`), with the same integers on every path.
//!
//! The forward pass records, for every step of the current window, what the backward pass
//! needs, in window-long buffers (stream-steps `j` in step order, active streams within a
//! step). `train` walks the window backwards to get every gradient of the pre-activations,
//! then updates each tensor from those in one pass, split by rows over the available cores.
//! Both passes run groups of streams on separate cores (`streams`); neither split changes a
//! bit of the result. A single stream's step is not split: its three matrix products take a
//! few microseconds, and splitting their rows over two threads (tried: `rayon::join` per
//! product) made a one-stream run of preset 5 twice as slow on a 2-core machine, the thread
//! hand-offs (mostly kernel time) costing far more than the halved products gain.

pub mod kernels;
pub mod simd;
mod streams;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

use crate::backend::Backend;
use crate::error::Error;
use crate::fixed::{ACT_FRAC, MASTER_FRAC, SYMBOLS, round_shift};
use crate::model::init::initial_weights;
use crate::model::layout::{Shape, TensorRole, layer_tensors, tensor_layer};
use crate::model::params::ModelParams;
use kernels::{Isa, Optimizer, RowPairs, RowsMut};
use rayon::prelude::*;

/// One parameter tensor and its optimizer state.
struct Param {
    /// Q24 master values.
    master: Vec<i32>,
    /// Q12 forward copy (matrices only; empty otherwise).
    forward: Vec<i16>,
    /// Adam's second moment, (Q20)².
    second_moment: Vec<u64>,
}

/// What one layer's forward pass leaves for the backward pass, for every stream-step of the
/// window (`n × …`, Q12).
#[derive(Default)]
struct LayerWindow {
    /// The matrix input: `[h of the layer below (this step), own h (previous step)]`.
    x: Vec<i16>,
    /// Gate activations (forget, output, candidate).
    gates: Vec<i32>,
    /// Cell state before the step.
    c_prev: Vec<i32>,
    /// tanh of the cell state after the step.
    tanh_c: Vec<i32>,
    /// Gradient of the gate pre-activations, filled by the backward pass (Q24).
    dz: Vec<i32>,
}

/// The current window's record.
#[derive(Default)]
struct Window {
    /// Active streams of each recorded step.
    active: Vec<usize>,
    /// Input symbol of each stream-step.
    symbols: Vec<u8>,
    layers: Vec<LayerWindow>,
    /// Output-head input: every layer's new hidden state, Q12.
    head_in: Vec<i16>,
    /// The frequency tables handed to the coder.
    freqs: Vec<u32>,
    /// The softmax probabilities the frequency tables were made from, Q16.
    probs: Vec<u32>,
    /// Gradient of the logits, filled by the backward pass (Q24).
    dlogits: Vec<i32>,
}

/// Scratch of one step.
#[derive(Default)]
struct Scratch {
    /// Per stream group: gate pre-activations and logits.
    z: Vec<Vec<i32>>,
    logits: Vec<Vec<i32>>,
    embedding_grad: Vec<i64>,
    /// Buffers of the matrices' `RowPairs` layouts (each layer's, then the head's).
    pairs: Vec<Vec<i16>>,
}

/// The CPU twin backend.
pub struct CpuBackend {
    shape: Shape,
    beta2_shift: u32,
    params: Vec<Param>,
    /// Hidden state per layer, `streams × cells`, Q12.
    h: Vec<Vec<i16>>,
    /// Cell state per layer, `streams × cells`, Q12.
    c: Vec<Vec<i32>>,
    window: Window,
    scratch: Scratch,
    /// Parts the stream groups and the weight update are split into (rayon's threads).
    workers: usize,
}

/// Appends `n` default elements to `v` and returns them.
fn grow<T: Copy + Default>(v: &mut Vec<T>, n: usize) -> &mut [T] {
    let start = v.len();
    v.resize(start + n, T::default());
    &mut v[start..]
}

/// Resizes `v` to `n` elements (contents unspecified: every kernel overwrites its output).
fn sized<T: Copy + Default>(v: &mut Vec<T>, n: usize) -> &mut [T] {
    v.resize(n, T::default());
    &mut v[..n]
}

impl CpuBackend {
    /// A freshly initialised model for `params` (which must be valid).
    pub fn new(params: &ModelParams) -> CpuBackend {
        let shape = Shape::new(params);
        let specs = shape.tensors();
        let params_vec = initial_weights(&shape, params.seed)
            .into_iter()
            .zip(&specs)
            .map(|(master, spec)| Param {
                forward: match spec.role {
                    TensorRole::Matrix => master
                        .iter()
                        .map(|&w| round_shift(w as i64, MASTER_FRAC - ACT_FRAC) as i16)
                        .collect(),
                    _ => Vec::new(),
                },
                second_moment: vec![0; master.len()],
                master,
            })
            .collect();
        let state = shape.streams * shape.cells;
        CpuBackend {
            shape,
            beta2_shift: params.beta2_shift as u32,
            params: params_vec,
            h: vec![vec![0; state]; shape.layers],
            c: vec![vec![0; state]; shape.layers],
            window: Window::default(),
            scratch: Scratch::default(),
            workers: rayon::current_num_threads().max(1),
        }
    }

    /// The Q24 master weights of every tensor, in `Shape::tensors` order.
    pub fn master_weights(&self) -> Vec<&[i32]> {
        self.params.iter().map(|p| p.master.as_slice()).collect()
    }

    /// Runs streams `first..first + inputs.len()` of a step, recording them in the window:
    /// a new step when `first == 0`, else the rest of the step last started, whose streams so
    /// far must end exactly at `first` (the rows then follow that step's, as for one call).
    fn forward_step(&mut self, first: usize, inputs: &[u8]) {
        let shape = self.shape;
        let Shape { layers, cells, .. } = shape;
        let streams = inputs.len();
        let state = first * cells..(first + streams) * cells;
        let groups = self.groups(streams);
        let win = &mut self.window;
        if first == 0 {
            assert!(
                win.active.len() < shape.window,
                "train() must follow every window"
            );
            win.active.push(streams);
        } else {
            match win.active.last_mut() {
                Some(so_far) if *so_far == first => *so_far += streams,
                _ => panic!("a step's part must start where the step's streams end"),
            }
        }
        win.symbols.extend_from_slice(inputs);
        win.layers.resize_with(layers, LayerWindow::default);

        // Each buffer's rows for this step, cut at the group boundaries.
        fn cut<'a, T>(
            mut rest: &'a mut [T],
            groups: &[(usize, usize)],
            width: usize,
        ) -> Vec<&'a mut [T]> {
            let mut out = Vec::with_capacity(groups.len());
            for &(lo, hi) in groups {
                let (part, tail) = std::mem::take(&mut rest).split_at_mut((hi - lo) * width);
                out.push(part);
                rest = tail;
            }
            out
        }
        let mut parts: Vec<streams::ForwardRows> = groups
            .iter()
            .map(|&(lo, hi)| streams::ForwardRows {
                symbols: &inputs[lo..hi],
                h: Vec::with_capacity(layers),
                c: Vec::with_capacity(layers),
                x: Vec::with_capacity(layers),
                gates: Vec::with_capacity(layers),
                c_prev: Vec::with_capacity(layers),
                tanh_c: Vec::with_capacity(layers),
                head_in: &mut [],
                freqs: &mut [],
                probs: &mut [],
            })
            .collect();
        let rows = shape.gate_rows();
        for (l, (lw, (h, c))) in win
            .layers
            .iter_mut()
            .zip(self.h.iter_mut().zip(self.c.iter_mut()))
            .enumerate()
        {
            let cols = shape.layer_inputs(l);
            let hs = cut(&mut h[state.clone()], &groups, cells);
            let cs = cut(&mut c[state.clone()], &groups, cells);
            let xs = cut(grow(&mut lw.x, streams * cols), &groups, cols);
            let gs = cut(grow(&mut lw.gates, streams * rows), &groups, rows);
            let ps = cut(grow(&mut lw.c_prev, state.len()), &groups, cells);
            let ts = cut(grow(&mut lw.tanh_c, state.len()), &groups, cells);
            for (part, (((((h, c), x), g), p), t)) in parts
                .iter_mut()
                .zip(hs.into_iter().zip(cs).zip(xs).zip(gs).zip(ps).zip(ts))
            {
                part.h.push(h);
                part.c.push(c);
                part.x.push(x);
                part.gates.push(g);
                part.c_prev.push(p);
                part.tanh_c.push(t);
            }
        }
        let head_cols = shape.head_inputs();
        let heads = cut(
            grow(&mut win.head_in, streams * head_cols),
            &groups,
            head_cols,
        );
        let freqs = cut(grow(&mut win.freqs, streams * SYMBOLS), &groups, SYMBOLS);
        let probs = cut(grow(&mut win.probs, streams * SYMBOLS), &groups, SYMBOLS);
        for (part, ((head_in, f), p)) in parts
            .iter_mut()
            .zip(heads.into_iter().zip(freqs).zip(probs))
        {
            part.head_in = head_in;
            part.freqs = f;
            part.probs = p;
        }
        let scratch = &mut self.scratch;
        scratch.z.resize_with(groups.len(), Vec::new);
        scratch.logits.resize_with(groups.len(), Vec::new);
        let params = &self.params;
        let run = |((part, z), logits)| streams::forward(&shape, params, part, z, logits);
        // One group runs here: handing it to a pool thread and waiting for it costs two
        // context switches per step (3 % of a one-stream step's time, measured on preset 5).
        if parts.len() == 1 {
            run((
                (parts.pop().unwrap(), &mut scratch.z[0]),
                &mut scratch.logits[0],
            ));
        } else {
            parts
                .into_par_iter()
                .zip(scratch.z.par_iter_mut())
                .zip(scratch.logits.par_iter_mut())
                .for_each(run);
        }
    }

    /// Stream groups for `streams` active streams: one per worker, as even as possible.
    fn groups(&self, streams: usize) -> Vec<(usize, usize)> {
        let size = streams.div_ceil(self.workers.min(streams).max(1)).max(1);
        (0..streams)
            .step_by(size)
            .map(|lo| (lo, (lo + size).min(streams)))
            .collect()
    }

    /// Back-propagates through the recorded window, filling every `dz` and `dlogits`: each
    /// stream group on its own thread, then the groups' rows put in window order.
    fn backward(&mut self, targets: &[u8]) {
        let rows = self.shape.gate_rows();
        let groups = self.groups(self.window.active.first().copied().unwrap_or(0));
        let mut buffers = std::mem::take(&mut self.scratch.pairs);
        let (shape, params, win) = (&self.shape, &self.params, &self.window);
        // Each matrix laid out once per window, for every group's input gradients.
        let head = shape.head_tensor();
        let isa = Isa::active();
        buffers.resize_with(shape.layers + 1, Vec::new);
        let matrices: Vec<RowPairs> = buffers
            .into_iter()
            .enumerate()
            .map(|(l, buffer)| {
                let (tensor, n, cols) = if l < shape.layers {
                    (layer_tensors(l)[0], rows, shape.layer_inputs(l))
                } else {
                    (head, SYMBOLS, shape.head_inputs())
                };
                RowPairs::with_buffer(isa, &params[tensor].forward, n, cols, buffer)
            })
            .collect();
        let results: Vec<streams::GroupGradients> = groups
            .par_iter()
            .map(|&(lo, hi)| streams::backward(shape, &matrices, win, targets, lo, hi))
            .collect();
        self.scratch.pairs = matrices.into_iter().map(RowPairs::into_buffer).collect();
        let win = &mut self.window;
        let total = win.symbols.len();
        sized(&mut win.dlogits, total * SYMBOLS);
        for lw in &mut win.layers {
            sized(&mut lw.dz, total * rows);
        }
        for group in &results {
            let mut at = 0;
            for &(first, count) in &group.steps {
                win.dlogits[first * SYMBOLS..(first + count) * SYMBOLS]
                    .copy_from_slice(&group.dlogits[at * SYMBOLS..(at + count) * SYMBOLS]);
                for (lw, dz) in win.layers.iter_mut().zip(&group.dz) {
                    lw.dz[first * rows..(first + count) * rows]
                        .copy_from_slice(&dz[at * rows..(at + count) * rows]);
                }
                at += count;
            }
        }
    }

    /// Updates every tensor from the gradients `backward` left, matrices split by rows over
    /// `workers` threads (the result does not depend on the split).
    fn update(&mut self, opt: &Optimizer) {
        let win = &self.window;
        let specs = self.shape.tensors();
        // Each tensor's window gradients: those of its layer's gate pre-activations and that
        // layer's matrix input, or the head's logits and input.
        let sources = |i: usize| match tensor_layer(&self.shape, i) {
            Some(l) => (win.layers[l].dz.as_slice(), win.layers[l].x.as_slice()),
            None => (win.dlogits.as_slice(), win.head_in.as_slice()),
        };
        let mut jobs: Vec<(usize, &[i32], &[i16], &mut Param)> = Vec::new();
        let mut rest = Vec::new();
        for (i, (p, spec)) in self.params.iter_mut().zip(&specs).enumerate() {
            let (dz, x) = sources(i);
            match spec.role {
                TensorRole::Matrix => jobs.push((spec.rows, dz, x, p)),
                role => rest.push((role, dz, p)),
            }
        }
        let workers = self.workers;
        let mut parts: Vec<(usize, &[i32], &[i16], RowsMut)> = Vec::new();
        for (rows, dz, x, p) in jobs {
            let cols = p.master.len() / rows;
            let per = rows.div_ceil(workers);
            let chunks = p
                .master
                .chunks_mut(per * cols)
                .zip(p.second_moment.chunks_mut(per * cols))
                .zip(p.forward.chunks_mut(per * cols));
            for (w, ((master, second_moment), forward)) in chunks.enumerate() {
                let part = RowsMut {
                    first_row: w * per,
                    master,
                    second_moment,
                    forward,
                };
                parts.push((rows, dz, x, part));
            }
        }
        parts
            .into_par_iter()
            .for_each(|(rows, dz, x, part)| kernels::matrix_update(opt, dz, x, rows, part));
        for (role, dz, p) in rest {
            if role == TensorRole::Embedding {
                kernels::embedding_update(
                    opt,
                    dz,
                    &win.symbols,
                    &mut p.master,
                    &mut p.second_moment,
                    &mut self.scratch.embedding_grad,
                );
            } else {
                kernels::bias_update(opt, dz, &mut p.master, &mut p.second_moment);
            }
        }
    }
}

impl Backend for CpuBackend {
    fn describe(&self) -> String {
        format!("cpu (integer twin, {})", simd::Isa::active().name())
    }

    fn forward(&mut self, first_stream: usize, steps: &[&[u8]]) -> Result<&[u32], Error> {
        assert!(
            first_stream == 0 || steps.len() == 1,
            "a call that continues a step runs that one step"
        );
        let start = self.window.freqs.len();
        for inputs in steps {
            self.forward_step(first_stream, inputs);
        }
        Ok(&self.window.freqs[start..])
    }

    fn train(&mut self, targets: &[u8], learning_rate_q24: u32) -> Result<(), Error> {
        self.backward(targets);
        let opt = Optimizer {
            lr_q24: i64::from(learning_rate_q24),
            beta2_shift: self.beta2_shift,
        };
        self.update(&opt);
        let win = &mut self.window;
        win.active.clear();
        win.symbols.clear();
        win.head_in.clear();
        win.freqs.clear();
        win.probs.clear();
        for lw in &mut win.layers {
            lw.x.clear();
            lw.gates.clear();
            lw.c_prev.clear();
            lw.tanh_c.clear();
        }
        Ok(())
    }
}

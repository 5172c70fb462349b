//! The CPU twin: the reference backend, in plain integer Rust. It defines the bits every other
//! backend must reproduce, and runs wherever no GPU is available.
//!
//! The forward pass records, for every step of the current window, what the backward pass
//! needs, in window-long buffers (stream-steps `j` in step order, active streams within a
//! step). `train` walks the window backwards to get every gradient of the pre-activations,
//! then updates each tensor from those in one pass, split by rows over the available cores.

pub mod kernels;

use crate::backend::Backend;
use crate::error::Error;
use crate::fixed::{ACT_FRAC, GRAD_LIMIT, MASTER_FRAC, SYMBOLS, clamp_i32, round_shift};
use crate::model::init::initial_weights;
use crate::model::layout::{Shape, TensorRole, layer_tensors};
use crate::model::params::ModelParams;
use kernels::{CellTrace, Optimizer, RowsMut};

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
    z: Vec<i32>,
    logits: Vec<i32>,
    dhead_in: Vec<i32>,
    dh: Vec<i32>,
    dx: Vec<i32>,
    from_above: Vec<i32>,
    embedding_grad: Vec<i64>,
}

/// The CPU twin backend.
pub struct CpuBackend {
    shape: Shape,
    learning_rate_q24: u32,
    beta2_shift: u32,
    params: Vec<Param>,
    /// Hidden state per layer, `streams × cells`, Q12.
    h: Vec<Vec<i16>>,
    /// Cell state per layer, `streams × cells`, Q12.
    c: Vec<Vec<i32>>,
    window: Window,
    /// Gradient carried to the previous step, per layer (hidden and cell state), Q24.
    dh_next: Vec<Vec<i32>>,
    dc_next: Vec<Vec<i32>>,
    scratch: Scratch,
    /// Threads the weight update is split over.
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
            learning_rate_q24: params.learning_rate_q24,
            beta2_shift: params.beta2_shift as u32,
            params: params_vec,
            h: vec![vec![0; state]; shape.layers],
            c: vec![vec![0; state]; shape.layers],
            window: Window::default(),
            dh_next: vec![vec![0; state]; shape.layers],
            dc_next: vec![vec![0; state]; shape.layers],
            scratch: Scratch::default(),
            workers: std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(8),
        }
    }

    /// The Q24 master weights of every tensor, in `Shape::tensors` order.
    pub fn master_weights(&self) -> Vec<&[i32]> {
        self.params.iter().map(|p| p.master.as_slice()).collect()
    }

    /// Back-propagates through the recorded window, filling every `dz` and `dlogits`.
    fn backward(&mut self, targets: &[u8]) {
        let Shape { layers, cells, .. } = self.shape;
        let head = self.shape.head_tensor();
        let head_cols = self.shape.head_inputs();
        let rows = self.shape.gate_rows();
        for l in 0..layers {
            self.dh_next[l].fill(0);
            self.dc_next[l].fill(0);
        }
        let win = &mut self.window;
        let total = win.symbols.len();
        sized(&mut win.dlogits, total * SYMBOLS);
        for lw in &mut win.layers {
            sized(&mut lw.dz, total * rows);
        }
        let sc = &mut self.scratch;
        let mut end = total;
        for &streams in win.active.iter().rev() {
            let start = end - streams;
            let n = streams * cells;
            let dlogits = &mut win.dlogits[start * SYMBOLS..end * SYMBOLS];
            kernels::output_grad(
                &win.probs[start * SYMBOLS..end * SYMBOLS],
                &targets[start..end],
                dlogits,
            );
            let dhead_in = sized(&mut sc.dhead_in, streams * head_cols);
            kernels::input_grad(streams, &self.params[head].forward, dlogits, dhead_in);
            for l in (0..layers).rev() {
                let dh = sized(&mut sc.dh, n);
                for s in 0..streams {
                    for j in 0..cells {
                        let k = s * cells + j;
                        let above = if l + 1 < layers {
                            sc.from_above[k] as i64
                        } else {
                            0
                        };
                        let sum = dhead_in[s * head_cols + l * cells + j] as i64
                            + self.dh_next[l][k] as i64
                            + above;
                        dh[k] = clamp_i32(sum, GRAD_LIMIT);
                    }
                }
                let lw = &mut win.layers[l];
                let trace = CellTrace {
                    gates: &lw.gates[start * rows..end * rows],
                    c_prev: &lw.c_prev[start * cells..end * cells],
                    tanh_c: &lw.tanh_c[start * cells..end * cells],
                };
                let dz = &mut lw.dz[start * rows..end * rows];
                kernels::cell_backward(cells, &trace, dh, &mut self.dc_next[l][..n], dz);
                let cols = self.shape.layer_inputs(l);
                let dx = sized(&mut sc.dx, streams * cols);
                let [wi, _, _] = layer_tensors(l);
                kernels::input_grad(streams, &self.params[wi].forward, dz, dx);
                let from_above = sized(&mut sc.from_above, n);
                for s in 0..streams {
                    let (below, own) = dx[s * cols..(s + 1) * cols].split_at(cols - cells);
                    self.dh_next[l][s * cells..(s + 1) * cells].copy_from_slice(own);
                    if l > 0 {
                        from_above[s * cells..(s + 1) * cells].copy_from_slice(below);
                    }
                }
            }
            end = start;
        }
    }

    /// Updates every tensor from the gradients `backward` left, matrices split by rows over
    /// `workers` threads (the result does not depend on the split).
    fn update(&mut self, opt: &Optimizer) {
        let win = &self.window;
        let head = self.shape.head_tensor();
        let mut jobs: Vec<(usize, &[i32], &[i16], &mut Param)> = Vec::new();
        let mut rest = Vec::new();
        for (i, p) in self.params.iter_mut().enumerate() {
            if i == head {
                jobs.push((SYMBOLS, &win.dlogits, &win.head_in, p));
            } else if i < head && i % 3 == 0 {
                let lw = &win.layers[i / 3];
                jobs.push((self.shape.gate_rows(), &lw.dz, &lw.x, p));
            } else {
                rest.push((i, p));
            }
        }
        let workers = self.workers;
        std::thread::scope(|scope| {
            let mut parts: Vec<Vec<(usize, &[i32], &[i16], RowsMut)>> =
                (0..workers).map(|_| Vec::new()).collect();
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
                    parts[w].push((rows, dz, x, part));
                }
            }
            let mut parts = parts.into_iter();
            let mine = parts.next().unwrap_or_default();
            for theirs in parts {
                scope.spawn(move || {
                    for (rows, dz, x, part) in theirs {
                        kernels::matrix_update(opt, dz, x, rows, part);
                    }
                });
            }
            for (rows, dz, x, part) in mine {
                kernels::matrix_update(opt, dz, x, rows, part);
            }
        });
        for (i, p) in rest {
            if i == head + 1 {
                kernels::bias_update(opt, &win.dlogits, &mut p.master, &mut p.second_moment);
            } else if i % 3 == 1 {
                kernels::embedding_update(
                    opt,
                    &win.layers[i / 3].dz,
                    &win.symbols,
                    &mut p.master,
                    &mut p.second_moment,
                    &mut self.scratch.embedding_grad,
                );
            } else {
                kernels::bias_update(
                    opt,
                    &win.layers[i / 3].dz,
                    &mut p.master,
                    &mut p.second_moment,
                );
            }
        }
    }
}

impl Backend for CpuBackend {
    fn describe(&self) -> String {
        "cpu (integer twin)".to_string()
    }

    fn forward(&mut self, inputs: &[u8]) -> Result<&[u32], Error> {
        assert!(
            self.window.active.len() < self.shape.window,
            "train() must follow every window"
        );
        let Shape { layers, cells, .. } = self.shape;
        let streams = inputs.len();
        let n = streams * cells;
        let rows = self.shape.gate_rows();
        let win = &mut self.window;
        win.active.push(streams);
        win.symbols.extend_from_slice(inputs);
        win.layers.resize_with(layers, LayerWindow::default);
        for l in 0..layers {
            let cols = self.shape.layer_inputs(l);
            let lw = &mut win.layers[l];
            let x = grow(&mut lw.x, streams * cols);
            for s in 0..streams {
                let own = &self.h[l][s * cells..(s + 1) * cells];
                if l == 0 {
                    x[s * cols..(s + 1) * cols].copy_from_slice(own);
                } else {
                    x[s * cols..s * cols + cells]
                        .copy_from_slice(&self.h[l - 1][s * cells..(s + 1) * cells]);
                    x[s * cols + cells..(s + 1) * cols].copy_from_slice(own);
                }
            }
            let [w, e, b] = layer_tensors(l).map(|i| &self.params[i]);
            let z = sized(&mut self.scratch.z, streams * rows);
            kernels::gates_forward(&w.forward, &e.master, &b.master, x, inputs, z);
            grow(&mut lw.c_prev, n).copy_from_slice(&self.c[l][..n]);
            kernels::cell_forward(
                cells,
                z,
                grow(&mut lw.gates, streams * rows),
                &mut self.c[l][..n],
                grow(&mut lw.tanh_c, n),
                &mut self.h[l][..n],
            );
        }
        let head_cols = self.shape.head_inputs();
        let head_in = grow(&mut win.head_in, streams * head_cols);
        for s in 0..streams {
            for l in 0..layers {
                head_in[s * head_cols + l * cells..s * head_cols + (l + 1) * cells]
                    .copy_from_slice(&self.h[l][s * cells..(s + 1) * cells]);
            }
        }
        let head = self.shape.head_tensor();
        let logits = sized(&mut self.scratch.logits, streams * SYMBOLS);
        kernels::head_forward(
            &self.params[head].forward,
            &self.params[head + 1].master,
            head_in,
            logits,
        );
        let probs = grow(&mut win.probs, streams * SYMBOLS);
        let freqs = grow(&mut win.freqs, streams * SYMBOLS);
        kernels::softmax_freq(logits, freqs, probs);
        Ok(freqs)
    }

    fn train(&mut self, targets: &[u8]) -> Result<(), Error> {
        self.backward(targets);
        let opt = Optimizer {
            lr_q24: self.learning_rate_q24 as i64,
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

//! What the fixed-point formats cost: the CPU twin's model and training schedule, once more in
//! plain floating point, with the ideal code length of both side by side.
//!
//! ```text
//! cargo bench --bench float_reference                  # alice29.txt, first 300,000 bytes of book1
//! cargo bench --bench float_reference -- FILE...       # chosen files
//! NNGPU_LEVEL=1 NNGPU_BENCH_LIMIT=50000 cargo bench --bench float_reference
//! NNGPU_SEEDS=5 cargo bench --bench float_reference    # five weight seeds, and their mean
//! ```
//!
//! Without file arguments it reads `tests/data/alice29.txt` and the first 300,000 bytes of
//! `book1` from `../shared/corpus` (or `NNGPU_CORPUS`), skipping a missing file.
//! `NNGPU_BENCH_LIMIT` caps the bytes read of every file, `NNGPU_LEVEL` picks the preset
//! (default 5), `NNGPU_SEEDS` the number of weight seeds (default 1: the preset's own; more
//! take the next seeds in turn); `NNGPU_FLOAT_MIN_GRAD=1` makes the float model's optimizer
//! ignore gradients below 2^−21 as the twin's does (see below). The model always runs one
//! stream. For each file and seed it prints:
//!
//! - `float`: the ideal code length, in bits per byte, of the float model: the mean of
//!   `-log2 p(actual byte)` under its softmax;
//! - `float16`: the same float model's probabilities put through the coder's 16-bit frequency
//!   table the way the twin builds it (`1 + ⌊p·(2^16 − 256)⌋`, the rest to the first largest
//!   logit), to separate the cost of the table from that of the model's arithmetic;
//! - `int`: the same ideal code length for the CPU twin, `-log2(freq/2^16)` of its frequency
//!   tables, driving `CpuBackend` through the `Backend` trait with `run_block`'s single-stream
//!   schedule (one forward step per byte, `train` after every full window except the last);
//! - `diff`: how much longer the integer code is than the float one, in percent;
//! - `archive`: the real archive of `nngpu::compress` (CPU backend, one stream), in bits/byte,
//!   as a check that the integer ideal code length is the one the coder achieves;
//! - the wall time of each of the three runs;
//! - with several seeds, a line with the mean and standard deviation of `float`, `int` and
//!   `diff` over the seeds;
//! - and `early_update_check`: how alike the two models' weight changes are over the first few
//!   windows, tensor by tensor (a check of the mirror, see there).
//!
//! One seed is a noisy measurement. Online training is chaotic: a change of the learning rate
//! by one Q24 unit (1.5·10^−5 relative) moves the twin's alice29.txt result at preset 5 between
//! 2.44 and 2.53 bits/byte, and f64 instead of f32 moves the float model's book1 result by
//! 1.5 %. Price the formats with the mean `diff` over several seeds (both models of one seed
//! start from the same weights, so the seeds pair them).
//!
//! # The float model
//!
//! It mirrors `src/backend/cpu/` (`kernels.rs`, `mod.rs`, `streams.rs`) operation by operation:
//! the LSTM with a tied input gate (`c = f·c + (1 − f)·g`, `h = o·tanh c`), layer `l`'s matrix
//! input `[h of layer l−1 (this step), own h (previous step)]`, the input byte's embedding added
//! to every layer's pre-activations, an output head over every layer's hidden state and a
//! softmax; truncated back-propagation over each window (hidden and cell state carry across
//! windows, their gradients start at zero), with gradients clipped to ±8 exactly where the twin
//! clamps them to `GRAD_LIMIT` (the head's input gradient, each layer's summed hidden-state
//! gradient, the cell-state gradients, the gate pre-activation gradients and every matrix-input
//! gradient); window-summed (not averaged) weight gradients; Adam with β1 = 0, β2 = 1 − 2^−13,
//! no bias correction, each second moment seeded with its first g², a zero gradient leaving a
//! weight and its moment untouched (the twin's "sparse Adam"), and the twin's implicit epsilon
//! (its second moment counts in units of 2^−40, so it never divides by less than √2^−40); the
//! same initial weights (the twin's Q24 masters times 2^−24). The clipping is part of the
//! training rule, not only of the format, and it matters: without it the float model codes the
//! first 300,000 bytes of book1 at 3.33 bits/byte instead of 2.68 (preset 5).
//!
//! What the float model deliberately does *not* copy, because the twin does it only to stay
//! within its integer formats (this is what the comparison prices):
//!
//! - no rounding anywhere: weights in the forward pass are not rounded to the Q12 copy,
//!   activations, cell and hidden states not to Q12, gradients not to Q24, the optimizer's
//!   gradient not to Q20, the learning-rate step not through the 0.2 % `rsqrt` table;
//! - sigmoid, tanh and exp are the real functions, not interpolated 1/64-step tables (the
//!   twin's exp table also ends at e^−16: a symbol more than 16 below the largest logit gets
//!   probability 0 as a training target and the floor 1/2^16 in the coder's table);
//! - no saturation of the gate pre-activations at ±8 (where the twin's tables end), of the
//!   logits at ±32, of the optimizer's gradient at ±2048 (`i32` Q20) or of the weights at
//!   ±8 (the `i16` range of the Q12 copy);
//! - the training target is the exact softmax, not the twin's `⌊p·2^16⌋`, and the float
//!   code length uses the exact softmax, without the coder's floor of 1/2^16 (`float16` adds
//!   that back);
//! - sums are in floating point in whatever order the loops take, where the twin's integer sums
//!   are exact; the twin's β2 decay `v − ⌊v/2^13⌋ + ⌊g²/2^13⌋` is taken without the floors.
//!
//! One consequence of the last two: a gradient below 2^−21 rounds to 0 in the twin, which then
//! neither steps nor seeds the second moment, while the float model seeds it with that tiny g²
//! and may later step up to 2^6.5·lr at once. This makes the pure float model less stable than
//! the twin: at preset 5 two of five seeds on book1's first 300,000 bytes code 3–8 % worse than
//! the twin (2.906 and 2.787 bits/byte against 2.764 and 2.711), and with
//! `NNGPU_FLOAT_MIN_GRAD=1` (gradients below 2^−21 ignored, as the twin's rounding ignores them)
//! the same runs give 2.711 and 2.724. That one rounding rule is thus worth pricing apart.
//!
//! The precision is `Real` (f32 unless edited; code lengths are summed in f64).
//!
//! # Results
//!
//! 2026-11-27, 2-core x86-64, `RAYON_NUM_THREADS=1`, `NNGPU_SEEDS=5`: mean `diff` (integer
//! code longer than float) ± the standard deviation over the five seeds, alice29.txt and the
//! first 300,000 bytes of book1; "float" is the pure float model, "float, min grad" the one
//! with `NNGPU_FLOAT_MIN_GRAD=1`.
//!
//! | preset | file | float | float, min grad | int | diff | diff, min grad |
//! |---|---|---:|---:|---:|---:|---:|
//! | 5 | alice29.txt | 2.4491 | 2.4316 | 2.4646 | +0.65 ± 1.91 % | +1.35 ± 1.06 % |
//! | 5 | book1 (300 KB) | 2.7416 | 2.6860 | 2.7027 | −1.34 ± 2.47 % | +0.62 ± 1.00 % |
//! | 1 | alice29.txt | 2.7407 | 2.7434 | 2.7505 | +0.36 ± 0.68 % | +0.26 ± 0.74 % |
//! | 1 | book1 (300 KB) | 2.9586 | 2.9585 | 2.9738 | +0.52 ± 0.89 % | +0.52 ± 0.60 % |
//!
//! The coder's 16-bit table (`float16`) adds 0.003–0.004 bits/byte to the float model.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use nngpu::Options;
use nngpu::backend::cpu::CpuBackend;
use nngpu::backend::{Backend, BackendChoice};
use nngpu::fixed::{FREQ_TOTAL, GRAD_FRAC, GRAD_LIMIT, MASTER_FRAC, SYMBOLS};
use nngpu::model::init::initial_weights;
use nngpu::model::layout::{GATES, Shape};
use nngpu::model::params::ModelParams;
use nngpu::model::{presets, schedule};

/// The float type of the reference model.
type Real = f32;

/// Windows trained before `early_update_check` compares the two models.
const CHECK_WINDOWS: usize = 3;

/// Bytes of `book1` read by default.
const BOOK1_DEFAULT_BYTES: usize = 300_000;

/// The twin's gradient clamp, `GRAD_LIMIT` (Q24) as a real number: 8.
fn clip_limit() -> Real {
    (GRAD_LIMIT as f64 / (1u64 << GRAD_FRAC) as f64) as Real
}

/// Clips a back-propagated gradient to `±clip_limit()`, as the twin's `clamp_i32(…, GRAD_LIMIT)`.
#[inline(always)]
fn clip(x: Real) -> Real {
    let limit = clip_limit();
    x.clamp(-limit, limit)
}

/// Dot product with eight partial sums, so the compiler can vectorise it.
#[inline(always)]
fn dot(a: &[Real], b: &[Real]) -> Real {
    let mut acc = [0.0 as Real; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let tail: Real = ar.iter().zip(br).map(|(x, y)| x * y).sum();
    acc.iter().sum::<Real>() + tail
}

/// `y += a·x`.
#[inline(always)]
fn axpy(y: &mut [Real], a: Real, x: &[Real]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// `y = W·x + bias` for a row-major `W` of `bias.len()` rows.
fn mat_vec(w: &[Real], bias: &[Real], x: &[Real]) -> Vec<Real> {
    w.chunks_exact(x.len())
        .zip(bias)
        .map(|(row, &b)| dot(row, x) + b)
        .collect()
}

/// `dx = clip(Wᵀ·dz)` for a row-major `W` of `dz.len()` rows: the twin's `input_grad`.
fn input_grad(w: &[Real], dz: &[Real]) -> Vec<Real> {
    let cols = w.len() / dz.len();
    let mut dx = vec![0.0; cols];
    for (row, &d) in w.chunks_exact(cols).zip(dz) {
        axpy(&mut dx, d, row);
    }
    dx.iter_mut().for_each(|v| *v = clip(*v));
    dx
}

/// The logistic function.
fn sigmoid(x: Real) -> Real {
    1.0 / (1.0 + (-x).exp())
}

/// One parameter tensor (row-major, `cols` wide), its Adam second moment and its window
/// gradient.
struct Param {
    w: Vec<Real>,
    v: Vec<Real>,
    grad: Vec<Real>,
    cols: usize,
}

impl Param {
    /// A tensor from the twin's Q24 master values, scaled to reals.
    fn from_q24(master: &[i32], cols: usize) -> Param {
        let scale = 1.0 / (1u64 << MASTER_FRAC) as f64;
        Param {
            w: master.iter().map(|&q| (q as f64 * scale) as Real).collect(),
            v: vec![0.0; master.len()],
            grad: vec![0.0; master.len()],
            cols,
        }
    }

    /// Row `r` of the values.
    fn row(&self, r: usize) -> &[Real] {
        &self.w[r * self.cols..(r + 1) * self.cols]
    }

    /// `grad[r] += scale · x` for row `r`.
    fn add_grad(&mut self, r: usize, scale: Real, x: &[Real]) {
        axpy(&mut self.grad[r * self.cols..(r + 1) * self.cols], scale, x);
    }

    /// Adds the outer product `dz ⊗ x` to the gradient of a matrix.
    fn add_outer(&mut self, dz: &[Real], x: &[Real]) {
        for (r, &d) in dz.iter().enumerate() {
            self.add_grad(r, d, x);
        }
    }

    /// One Adam step of every weight from its window gradient, which it then zeroes: the twin's
    /// `adam_step` (β1 = 0, no bias correction, `v` seeded with the first g², zero gradients
    /// skipped, `v` floored at the twin's unit 2^−40). A gradient below `opt.min_grad` in
    /// magnitude is taken as the twin takes one that rounds to 0 in Q20: no step, and `v` only
    /// decays.
    fn adam(&mut self, opt: &Adam) {
        let decay = (1.0 / (1u64 << opt.beta2_shift) as f64) as Real;
        let floor = (2f64.powi(-40)) as Real;
        for ((w, v), g) in self.w.iter_mut().zip(&mut self.v).zip(&mut self.grad) {
            let gv = std::mem::take(g);
            if gv == 0.0 {
                continue;
            }
            if gv.abs() < opt.min_grad {
                *v -= decay * *v;
                continue;
            }
            let sq = gv * gv;
            *v = if *v == 0.0 {
                sq
            } else {
                *v + decay * (sq - *v)
            };
            *w -= opt.lr * gv / v.max(floor).sqrt();
        }
    }
}

/// The optimizer's settings.
#[derive(Clone, Copy)]
struct Adam {
    lr: Real,
    beta2_shift: u32,
    /// Gradients smaller than this are treated as zero (0: none; `TWIN_MIN_GRAD`: as the twin).
    min_grad: Real,
}

/// The smallest optimizer gradient the twin does not round to 0: 2^−21, half a Q20 unit.
const TWIN_MIN_GRAD: f64 = 1.0 / (1u64 << 21) as f64;

/// One layer's parameters, in the twin's tensor order.
struct Layer {
    /// `3·cells × inputs`: rows forget, output, candidate.
    matrix: Param,
    /// `256 × 3·cells`.
    embedding: Param,
    /// `3·cells`.
    bias: Param,
}

/// What one layer's forward step leaves for the backward pass (the twin's `LayerWindow` row).
struct LayerTrace {
    x: Vec<Real>,
    /// Forget, output, candidate.
    gates: Vec<Real>,
    c_prev: Vec<Real>,
    tanh_c: Vec<Real>,
}

/// One recorded step of the window.
struct StepTrace {
    symbol: u8,
    layers: Vec<LayerTrace>,
    head_in: Vec<Real>,
    probs: Vec<Real>,
}

/// The float twin of the CPU backend, one stream.
struct FloatModel {
    cells: usize,
    adam: Adam,
    layers: Vec<Layer>,
    head: Param,
    head_bias: Param,
    h: Vec<Vec<Real>>,
    c: Vec<Vec<Real>>,
    trace: Vec<StepTrace>,
}

impl FloatModel {
    /// The model of `params` with the twin's initial weights; `min_grad` as in `Adam`.
    fn new(params: &ModelParams, min_grad: Real) -> FloatModel {
        let shape = Shape::new(params);
        let specs = shape.tensors();
        let masters = initial_weights(&shape, params.seed);
        let mut tensors = masters
            .iter()
            .zip(&specs)
            .map(|(m, spec)| Param::from_q24(m, spec.cols));
        let layers = (0..shape.layers)
            .map(|_| Layer {
                matrix: tensors.next().unwrap(),
                embedding: tensors.next().unwrap(),
                bias: tensors.next().unwrap(),
            })
            .collect();
        let head = tensors.next().unwrap();
        let head_bias = tensors.next().unwrap();
        FloatModel {
            cells: shape.cells,
            adam: Adam {
                lr: (params.learning_rate_q24 as f64 / (1u64 << 24) as f64) as Real,
                beta2_shift: params.beta2_shift as u32,
                min_grad,
            },
            layers,
            head,
            head_bias,
            h: vec![vec![0.0; shape.cells]; shape.layers],
            c: vec![vec![0.0; shape.cells]; shape.layers],
            trace: Vec::new(),
        }
    }

    /// One forward step with input byte `symbol`; returns the logits and records the step.
    fn forward(&mut self, symbol: u8) -> Vec<Real> {
        let cells = self.cells;
        let mut traces = Vec::with_capacity(self.layers.len());
        let mut head_in = Vec::with_capacity(self.layers.len() * cells);
        for l in 0..self.layers.len() {
            let mut x = Vec::with_capacity(2 * cells);
            if l > 0 {
                x.extend_from_slice(&self.h[l - 1]);
            }
            x.extend_from_slice(&self.h[l]);
            let p = &self.layers[l];
            let mut z = mat_vec(&p.matrix.w, &p.bias.w, &x);
            axpy(&mut z, 1.0, p.embedding.row(symbol as usize));
            let c_prev = self.c[l].clone();
            let (gates, tanh_c) = cell_forward(cells, &z, &mut self.c[l], &mut self.h[l]);
            head_in.extend_from_slice(&self.h[l]);
            traces.push(LayerTrace {
                x,
                gates,
                c_prev,
                tanh_c,
            });
        }
        let logits = mat_vec(&self.head.w, &self.head_bias.w, &head_in);
        self.trace.push(StepTrace {
            symbol,
            layers: traces,
            head_in,
            probs: softmax(&logits),
        });
        logits
    }

    /// Back-propagates through the recorded window (the twin's `streams::backward`),
    /// accumulating every weight gradient, then takes one Adam step and forgets the window.
    fn train(&mut self, targets: &[u8]) {
        let (cells, depth) = (self.cells, self.layers.len());
        let mut dh_next = vec![vec![0.0; cells]; depth];
        let mut dc_next = vec![vec![0.0; cells]; depth];
        let trace = std::mem::take(&mut self.trace);
        assert_eq!(trace.len(), targets.len());
        for (step, &target) in trace.iter().zip(targets).rev() {
            let mut dlogits = step.probs.clone();
            dlogits[target as usize] -= 1.0;
            self.head.add_outer(&dlogits, &step.head_in);
            axpy(&mut self.head_bias.grad, 1.0, &dlogits);
            let dhead_in = input_grad(&self.head.w, &dlogits);
            let mut from_above = vec![0.0; cells];
            for l in (0..depth).rev() {
                let dh: Vec<Real> = (0..cells)
                    .map(|j| {
                        let above = if l + 1 < depth { from_above[j] } else { 0.0 };
                        clip(dhead_in[l * cells + j] + dh_next[l][j] + above)
                    })
                    .collect();
                let lt = &step.layers[l];
                let dz = cell_backward(cells, lt, &dh, &mut dc_next[l]);
                let layer = &mut self.layers[l];
                layer.matrix.add_outer(&dz, &lt.x);
                axpy(&mut layer.bias.grad, 1.0, &dz);
                layer.embedding.add_grad(step.symbol as usize, 1.0, &dz);
                let dx = input_grad(&layer.matrix.w, &dz);
                let split = dx.len() - cells;
                dh_next[l].copy_from_slice(&dx[split..]);
                from_above = dx[..split].to_vec();
            }
        }
        let opt = self.adam;
        for layer in &mut self.layers {
            layer.matrix.adam(&opt);
            layer.embedding.adam(&opt);
            layer.bias.adam(&opt);
        }
        self.head.adam(&opt);
        self.head_bias.adam(&opt);
    }
}

/// The tied-input-gate LSTM cell (the twin's `cell_forward`): updates `c` and `h` from the
/// pre-activations `z` (forget, output, candidate) and returns the gates and tanh(c).
fn cell_forward(
    cells: usize,
    z: &[Real],
    c: &mut [Real],
    h: &mut [Real],
) -> (Vec<Real>, Vec<Real>) {
    let mut gates = vec![0.0; GATES * cells];
    let mut tanh_c = vec![0.0; cells];
    for j in 0..cells {
        let f = sigmoid(z[j]);
        let o = sigmoid(z[cells + j]);
        let g = z[2 * cells + j].tanh();
        gates[j] = f;
        gates[cells + j] = o;
        gates[2 * cells + j] = g;
        c[j] = f * c[j] + (1.0 - f) * g;
        tanh_c[j] = c[j].tanh();
        h[j] = o * tanh_c[j];
    }
    (gates, tanh_c)
}

/// Back-propagation through `cell_forward` (the twin's `cell_backward`, with its clips): `dh`
/// is the hidden state's gradient, `dc` the new cell state's on entry and the previous one's
/// on return; returns the gradient of the pre-activations.
fn cell_backward(cells: usize, t: &LayerTrace, dh: &[Real], dc: &mut [Real]) -> Vec<Real> {
    let mut dz = vec![0.0; GATES * cells];
    for j in 0..cells {
        let (f, o, g) = (t.gates[j], t.gates[cells + j], t.gates[2 * cells + j]);
        let th = t.tanh_c[j];
        let d_o = dh[j] * th;
        let d_t = dh[j] * o;
        let d_c = clip(dc[j] + d_t * (1.0 - th * th));
        let d_f = d_c * (t.c_prev[j] - g);
        let d_g = d_c * (1.0 - f);
        dc[j] = clip(d_c * f);
        dz[j] = clip(d_f * f * (1.0 - f));
        dz[cells + j] = clip(d_o * o * (1.0 - o));
        dz[2 * cells + j] = clip(d_g * (1.0 - g * g));
    }
    dz
}

/// The softmax of `logits`.
fn softmax(logits: &[Real]) -> Vec<Real> {
    let max = logits.iter().copied().fold(Real::NEG_INFINITY, Real::max);
    let e: Vec<Real> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: Real = e.iter().sum();
    e.iter().map(|&v| v / sum).collect()
}

/// `-log2 p(target)` under the softmax of `logits`, in f64.
fn softmax_bits(logits: &[Real], target: u8) -> f64 {
    let max = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &l| m.max(l as f64));
    let log_sum = logits
        .iter()
        .map(|&l| (l as f64 - max).exp())
        .sum::<f64>()
        .ln();
    (log_sum - (logits[target as usize] as f64 - max)) / std::f64::consts::LN_2
}

/// `-log2(freq/2^16)` of `target` in the frequency table the twin's `softmax_freq` would build
/// from these (float) logits: `1 + ⌊p·(2^16 − 256)⌋`, the remainder to the first largest logit.
fn table_bits(logits: &[Real], target: u8) -> f64 {
    let max = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &l| m.max(l as f64));
    let argmax = logits.iter().position(|&l| l as f64 == max).unwrap();
    let e: Vec<f64> = logits.iter().map(|&l| (l as f64 - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    let spread = (FREQ_TOTAL - SYMBOLS as u32) as f64;
    let freqs: Vec<u32> = e.iter().map(|v| 1 + (v * spread / sum) as u32).collect();
    let rest = FREQ_TOTAL - freqs.iter().sum::<u32>();
    let freq = freqs[target as usize] + if target as usize == argmax { rest } else { 0 };
    -(freq as f64 / FREQ_TOTAL as f64).log2()
}

/// Code lengths of one byte, in bits.
#[derive(Clone, Copy, Default)]
struct Cost {
    /// Under the model's own distribution.
    model: f64,
    /// Under the coder's 16-bit frequency table.
    table: f64,
}

/// A model that predicts each byte from the one before and trains on each finished window.
trait OnlineModel {
    /// Runs one step with input byte `input` and returns what `target` costs.
    fn step(&mut self, input: u8, target: u8) -> Cost;
    /// Trains on the steps since the last call with Adam's rate `learning_rate_q24`;
    /// `targets` are their actual bytes.
    fn train(&mut self, targets: &[u8], learning_rate_q24: u32);
}

impl OnlineModel for FloatModel {
    fn step(&mut self, input: u8, target: u8) -> Cost {
        let logits = self.forward(input);
        Cost {
            model: softmax_bits(&logits, target),
            table: table_bits(&logits, target),
        }
    }

    fn train(&mut self, targets: &[u8], learning_rate_q24: u32) {
        self.adam.lr = (f64::from(learning_rate_q24) / (1u64 << 24) as f64) as Real;
        FloatModel::train(self, targets);
    }
}

impl OnlineModel for CpuBackend {
    fn step(&mut self, input: u8, target: u8) -> Cost {
        let freqs = self.forward(0, &[&[input]]).expect("CPU twin forward");
        let bits = -(freqs[target as usize] as f64 / FREQ_TOTAL as f64).log2();
        Cost {
            model: bits,
            table: bits,
        }
    }

    fn train(&mut self, targets: &[u8], learning_rate_q24: u32) {
        Backend::train(self, targets, learning_rate_q24).expect("CPU twin train");
    }
}

/// `codec::block::run_block` for one stream: step `t` has input `data[t−1]` (0 at `t = 0`) and
/// target `data[t]`; training follows every full window except one that ends the data.
/// Returns the total code length.
fn run_schedule(model: &mut dyn OnlineModel, data: &[u8], params: &ModelParams) -> Cost {
    let window = params.window as usize;
    let mut total = Cost::default();
    let mut targets = Vec::with_capacity(window);
    for (t, &byte) in data.iter().enumerate() {
        let input = if t == 0 { 0 } else { data[t - 1] };
        let cost = model.step(input, byte);
        total.model += cost.model;
        total.table += cost.table;
        targets.push(byte);
        if (t + 1) % window == 0 && t + 1 < data.len() {
            model.train(
                &targets,
                schedule::learning_rate_q24(params, t as u64 + 1, 1),
            );
            targets.clear();
        }
    }
    total
}

/// The float model's weights, tensor by tensor, in the twin's `Shape::tensors` order.
fn float_weights(model: &FloatModel) -> Vec<&[Real]> {
    let mut out: Vec<&[Real]> = Vec::new();
    for layer in &model.layers {
        out.extend([
            &layer.matrix.w[..],
            &layer.embedding.w[..],
            &layer.bias.w[..],
        ]);
    }
    out.extend([&model.head.w[..], &model.head_bias.w[..]]);
    out
}

/// A check that the float model mirrors the twin: both train on the first `CHECK_WINDOWS`
/// windows of `data`, and for every tensor (in `Shape::tensors` order) this compares their
/// weight changes: cosine similarity and the ratio of their norms, float over integer.
///
/// Near 1 for both means the same gradients and Adam steps. (The first window alone checks
/// little more than signs: a first Adam step is ±lr, since `v` starts at g². Over more windows
/// the two drift apart by themselves: training is chaotic at the scale of the Q12 rounding,
/// and the float model against itself with its weights moved by ±2^−13 falls to cosines of
/// 0.2–0.8 after 10 windows of preset 5, as the twin against the float model does.)
fn early_update_check(params: &ModelParams, data: &[u8], min_grad: Real) -> Vec<(f64, f64)> {
    let window = (params.window as usize).min(data.len().saturating_sub(1));
    let span = (CHECK_WINDOWS * window).min(data.len().saturating_sub(1));
    let mut float = FloatModel::new(params, min_grad);
    let mut int = CpuBackend::new(params);
    let before: Vec<Vec<f64>> = int
        .master_weights()
        .iter()
        .map(|t| {
            t.iter()
                .map(|&q| q as f64 / (1u64 << MASTER_FRAC) as f64)
                .collect()
        })
        .collect();
    run_schedule(&mut float, &data[..span + 1], params);
    run_schedule(&mut int, &data[..span + 1], params);
    let after_int = int.master_weights();
    let after_float = float_weights(&float);
    before
        .iter()
        .zip(after_int.iter().zip(&after_float))
        .map(|(b, (ai, af))| {
            let (mut dot, mut ni, mut nf) = (0.0, 0.0, 0.0);
            for ((&b, &i), &f) in b.iter().zip(ai.iter()).zip(af.iter()) {
                let di = i as f64 / (1u64 << MASTER_FRAC) as f64 - b;
                let df = f as f64 - b;
                dot += di * df;
                ni += di * di;
                nf += df * df;
            }
            (
                dot / (ni * nf).sqrt().max(1e-300),
                (nf / ni.max(1e-300)).sqrt(),
            )
        })
        .collect()
}

/// Runs `f` and returns its result and the seconds it took.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let started = Instant::now();
    let out = f();
    (out, started.elapsed().as_secs_f64())
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Ideal code lengths of both models on one input, bits per byte, and their wall times.
struct Comparison {
    float: f64,
    float16: f64,
    int: f64,
    float_s: f64,
    int_s: f64,
}

impl Comparison {
    /// How much longer the integer code is than the float one, in percent.
    fn diff(&self) -> f64 {
        100.0 * (self.int - self.float) / self.float
    }
}

/// Runs the float model (with `min_grad` as in `Adam`) and the twin of `params` over `data`.
fn compare(params: &ModelParams, data: &[u8], min_grad: Real) -> Comparison {
    let bpb = |bits: f64| bits / data.len().max(1) as f64;
    let (float, float_s) =
        timed(|| run_schedule(&mut FloatModel::new(params, min_grad), data, params));
    let (int, int_s) = timed(|| run_schedule(&mut CpuBackend::new(params), data, params));
    Comparison {
        float: bpb(float.model),
        float16: bpb(float.table),
        int: bpb(int.table),
        float_s,
        int_s,
    }
}

/// The real archive of `nngpu::compress` (CPU twin, one stream): bits per byte and seconds.
fn archive_bpb(name: &str, data: &[u8], level: u8) -> Result<(f64, f64), String> {
    let options = Options {
        level,
        backend: BackendChoice::Cpu,
        adapter: None,
        streams: Some(1),
        ..Options::default()
    };
    let (archive, seconds) = timed(|| nngpu::compress(data, &options));
    let archive = archive.map_err(|e| format!("{name}: compression failed: {e}"))?;
    Ok((
        8.0 * archive.bytes.len() as f64 / data.len().max(1) as f64,
        seconds,
    ))
}

/// Mean and sample standard deviation.
fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

/// Measures one input with `seeds` weight seeds (the preset's, then the next ones) and prints
/// one line per seed, a mean line for several seeds, and `early_update_check` for the first.
/// The archive is made for the preset's own seed only (`nngpu::compress` takes no other).
fn measure(name: &str, data: &[u8], level: u8, seeds: u64, min_grad: Real) -> Result<(), String> {
    let mut params = presets::params_for(level, Some(data.len() as u64));
    params.streams = 1;
    let base_seed = params.seed;
    let mut runs = Vec::new();
    for k in 0..seeds {
        params.seed = base_seed.wrapping_add(k);
        let c = compare(&params, data, min_grad);
        let archive = if k == 0 {
            let (bpb, seconds) = archive_bpb(name, data, level)?;
            format!(
                "{bpb:>8.4}  {:>7.1} {:>7.1} {seconds:>7.1}",
                c.float_s, c.int_s
            )
        } else {
            format!("{:>8}  {:>7.1} {:>7.1} {:>7}", "-", c.float_s, c.int_s, "-")
        };
        println!(
            "{name:<14} {:>4} {:>8} {:>7.4} {:>8.4} {:>7.4} {:>+6.2}% {archive}",
            format!("+{k}"),
            data.len(),
            c.float,
            c.float16,
            c.int,
            c.diff(),
        );
        runs.push(c);
    }
    if runs.len() > 1 {
        let stat = |f: fn(&Comparison) -> f64| mean_sd(&runs.iter().map(f).collect::<Vec<_>>());
        let (float, int, diff) = (stat(|c| c.float), stat(|c| c.int), stat(Comparison::diff));
        println!(
            "{name:<14} mean of {} seeds (± sd): float {:.4} ± {:.4}, int {:.4} ± {:.4}, diff {:+.2} ± {:.2} %",
            runs.len(),
            float.0,
            float.1,
            int.0,
            int.1,
            diff.0,
            diff.1,
        );
    }
    params.seed = base_seed;
    let check: Vec<String> = early_update_check(&params, data, min_grad)
        .iter()
        .map(|(cos, ratio)| format!("{cos:.3}/{ratio:.2}"))
        .collect();
    println!(
        "{:<14} weight changes over {CHECK_WINDOWS} windows, float vs int, cos/norm ratio per tensor: {}",
        "",
        check.join(" ")
    );
    Ok(())
}

/// The files to measure and the bytes to read of each (`None`: all).
fn inputs() -> Vec<(PathBuf, Option<usize>)> {
    let named: Vec<(PathBuf, Option<usize>)> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .map(|a| (PathBuf::from(a), None))
        .collect();
    if !named.is_empty() {
        return named;
    }
    let corpus = env_var("NNGPU_CORPUS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"),
        PathBuf::from,
    );
    vec![
        (
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/alice29.txt"),
            None,
        ),
        (corpus.join("book1"), Some(BOOK1_DEFAULT_BYTES)),
    ]
}

fn run() -> Result<(), String> {
    let level = match env_var("NNGPU_LEVEL") {
        None => presets::DEFAULT_LEVEL,
        Some(v) => v
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|l| (presets::MIN_LEVEL..=presets::MAX_LEVEL).contains(l))
            .ok_or_else(|| format!("NNGPU_LEVEL={v}: expected 1..=9"))?,
    };
    let limit = env_var("NNGPU_BENCH_LIMIT")
        .map(|v| {
            v.trim()
                .parse::<usize>()
                .map_err(|e| format!("NNGPU_BENCH_LIMIT={v}: {e}"))
        })
        .transpose()?;
    let seeds = match env_var("NNGPU_SEEDS") {
        None => 1,
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| format!("NNGPU_SEEDS={v}: expected a count of at least 1"))?,
    };
    let twin_min_grad = env_var("NNGPU_FLOAT_MIN_GRAD").is_some_and(|v| v.trim() != "0");
    let min_grad = if twin_min_grad {
        TWIN_MIN_GRAD as Real
    } else {
        0.0
    };
    let p = presets::params_for(level, Some(0));
    println!(
        "level {level}: {} x {} cells, window {}, lr {:.6}, one stream; float = {}{}",
        p.layers,
        p.cells,
        p.window,
        p.learning_rate_q24 as f64 / (1u64 << 24) as f64,
        std::any::type_name::<Real>(),
        if twin_min_grad {
            ", its optimizer ignoring gradients below 2^-21 as the twin does"
        } else {
            ""
        },
    );
    println!(
        "{:<14} {:>4} {:>8} {:>7} {:>8} {:>7} {:>7} {:>8}  {:>7} {:>7} {:>7}",
        "file",
        "seed",
        "bytes",
        "float",
        "float16",
        "int",
        "diff",
        "archive",
        "float s",
        "int s",
        "arch s"
    );
    for (path, cap) in inputs() {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut data = match std::fs::read(&path) {
            Ok(data) => data,
            Err(e) => {
                println!("{name:<14} skipped: cannot read {}: {e}", path.display());
                continue;
            }
        };
        let cap = match (cap, limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(cap) = cap {
            data.truncate(cap);
        }
        measure(&name, &data, level, seeds, min_grad)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("float_reference: {e}");
            ExitCode::FAILURE
        }
    }
}

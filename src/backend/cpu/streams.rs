//! The per-step work of the CPU twin for one group of streams. Streams never interact within
//! a window (they share only the weights, which change between windows), so the twin splits
//! the active streams into groups and runs each group on its own core; the bits do not depend
//! on the split.

use super::kernels::{self, CellTrace, HiddenGrads, RowPairs};
use super::{Param, Window};
use crate::fixed::SYMBOLS;
use crate::model::layout::{Shape, layer_tensors};

/// One stream group's rows of one forward step: its state and the window rows it fills.
pub(super) struct ForwardRows<'a> {
    /// Input symbols of the group's streams.
    pub symbols: &'a [u8],
    /// Per layer: hidden state (in: previous step, out: this step) and cell state.
    pub h: Vec<&'a mut [i16]>,
    pub c: Vec<&'a mut [i32]>,
    /// Per layer: the window rows `x`, `gates`, `c_prev`, `tanh_c`.
    pub x: Vec<&'a mut [i16]>,
    pub gates: Vec<&'a mut [i32]>,
    pub c_prev: Vec<&'a mut [i32]>,
    pub tanh_c: Vec<&'a mut [i32]>,
    /// Window rows of the head input, frequency tables and softmax probabilities.
    pub head_in: &'a mut [i16],
    pub freqs: &'a mut [u32],
    pub probs: &'a mut [u32],
}

/// Runs one step of the model for one stream group.
pub(super) fn forward(
    shape: &Shape,
    params: &[Param],
    rows: ForwardRows,
    z: &mut Vec<i32>,
    logits: &mut Vec<i32>,
) {
    let ForwardRows {
        symbols,
        mut h,
        mut c,
        mut x,
        mut gates,
        mut c_prev,
        mut tanh_c,
        head_in,
        freqs,
        probs,
    } = rows;
    let cells = shape.cells;
    let streams = symbols.len();
    for l in 0..shape.layers {
        let (below, this) = h.split_at_mut(l);
        let [w, e, b] = layer_tensors(l).map(|i| &params[i]);
        let rows = kernels::LayerRows {
            x: &mut *x[l],
            gates: &mut *gates[l],
            c_prev: &mut *c_prev[l],
            tanh_c: &mut *tanh_c[l],
            h: &mut *this[0],
            c: &mut *c[l],
        };
        let h_below = below.last().map(|b| &**b);
        kernels::layer_forward(&w.forward, &e.master, &b.master, symbols, h_below, rows, z);
    }
    let head_cols = shape.head_inputs();
    for s in 0..streams {
        for l in 0..shape.layers {
            head_in[s * head_cols + l * cells..s * head_cols + (l + 1) * cells]
                .copy_from_slice(&h[l][s * cells..(s + 1) * cells]);
        }
    }
    let head = shape.head_tensor();
    kernels::head_softmax(
        &params[head].forward,
        &params[head + 1].master,
        head_in,
        logits,
        freqs,
        probs,
    );
}

/// Gradients of the pre-activations that one stream group's backward pass produced, in the
/// group's own order (its stream-steps, step by step); `steps` says where each step's rows
/// belong in the window.
#[derive(Default)]
pub(super) struct GroupGradients {
    /// `(first window row, rows)` of each step the group took part in, last step first.
    pub steps: Vec<(usize, usize)>,
    pub dlogits: Vec<i32>,
    /// Per layer.
    pub dz: Vec<Vec<i32>>,
}

/// Back-propagates through the whole window for streams `lo..hi`; `matrices` are each layer's
/// matrix and the head's, laid out for their input gradients.
pub(super) fn backward(
    shape: &Shape,
    matrices: &[RowPairs],
    win: &Window,
    targets: &[u8],
    lo: usize,
    hi: usize,
) -> GroupGradients {
    let Shape { layers, cells, .. } = *shape;
    let rows = shape.gate_rows();
    let head_cols = shape.head_inputs();
    let group = hi - lo;
    // Each layer's input gradient and cell-state gradient at the step after the current one:
    // zero at a stream's last step of the window, where back-propagation is truncated.
    let mut dx: Vec<Vec<i32>> = (0..layers)
        .map(|l| vec![0i32; group * shape.layer_inputs(l)])
        .collect();
    let mut dc = vec![vec![0i32; group * cells]; layers];
    let mut out = GroupGradients {
        dz: vec![Vec::new(); layers],
        ..Default::default()
    };
    let (mut dhead_in, mut dh) = (Vec::new(), Vec::new());
    let mut end = win.symbols.len();
    for &active in win.active.iter().rev() {
        let base = end - active;
        end = base;
        let streams = active.min(hi).saturating_sub(lo);
        if streams == 0 {
            continue;
        }
        let (first, last) = (base + lo, base + lo + streams);
        out.steps.push((first, streams));
        let n = streams * cells;
        let at = out.dlogits.len();
        out.dlogits.resize(at + streams * SYMBOLS, 0);
        let dlogits = &mut out.dlogits[at..];
        kernels::output_grad(
            &win.probs[first * SYMBOLS..last * SYMBOLS],
            &targets[first..last],
            dlogits,
        );
        dhead_in.resize(streams * head_cols, 0);
        matrices[layers].input_grad(streams, dlogits, &mut dhead_in);
        for l in (0..layers).rev() {
            let lw = &win.layers[l];
            let trace = CellTrace {
                gates: &lw.gates[first * rows..last * rows],
                c_prev: &lw.c_prev[first * cells..last * cells],
                tanh_c: &lw.tanh_c[first * cells..last * cells],
            };
            let dz_all = &mut out.dz[l];
            let at = dz_all.len();
            dz_all.resize(at + streams * rows, 0);
            let (this, above) = dx.split_at_mut(l + 1);
            let from = HiddenGrads {
                head: &dhead_in,
                head_offset: l * cells,
                above: above.first().map(|a| &a[..streams * 2 * cells]),
            };
            kernels::layer_backward(
                &matrices[l],
                &trace,
                from,
                &mut dh,
                &mut dc[l][..n],
                &mut dz_all[at..],
                &mut this[l][..streams * shape.layer_inputs(l)],
            );
        }
    }
    out
}

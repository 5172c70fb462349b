//! The CPU twin of the GPU kernels, in integer Rust. These functions *define* the model's
//! arithmetic; the shaders are tested against them bit for bit. `layer_forward`,
//! `head_softmax`, `output_grad`, `input_grad`, `layer_backward` and `matrix_update` each have
//! a shader of the same name; `bias_update` and `embedding_update` are both `vector_update`.
//! Several shaders fuse steps that stay separate functions here: `layer_forward` gathers a
//! layer's input, then runs `gates_forward` and `cell_forward`; `head_softmax` runs
//! `head_forward`, then `softmax_freq`; `layer_backward` sums a layer's hidden-state gradient,
//! then runs `cell_backward` and `input_grad`. The shader `symbol_order` only
//! lists the window's stream-steps by input symbol for `vector_update`'s embeddings, which
//! `embedding_update` sums in one pass instead. Each works on all active streams
//! of one step (`streams` rows of its per-stream inputs and outputs, row-major).
//!
//! The heavy work goes through three primitives with one path per instruction set (`Isa`):
//! `dot_rows` (forward products), `RowPairs` (input and weight gradients) and `adam_row`.
//! Their scalar paths are the reference; the vector paths (`super::x86`) give the same
//! integers, and `super::simd`'s tests hold them to it.

use crate::fixed::{
    self, ACT_FRAC, ADAM_GRAD_SHIFT, FREQ_TOTAL, FREQ_TOTAL_BITS, GRAD_LIMIT, LOGIT_LIMIT,
    MASTER_FRAC, MASTER_LIMIT, ONE, PREACT_LIMIT, RSQRT_FRAC, SYMBOLS, clamp_i32, round_shift,
};

pub use super::simd::Isa;
#[cfg(target_arch = "x86_64")]
use super::x86;
use crate::model::layout::GATES;

/// `out[r] = Σ_k w[r][k]·x[k]` for the first `out.len()` rows of the row-major Q12 matrix `w`
/// (`x.len()` columns) and a Q12 vector `x`: exact Q24 sums, whichever path `isa` picks.
#[inline]
pub fn dot_rows(isa: Isa, w: &[i16], x: &[i16], out: &mut [i64]) {
    match isa {
        Isa::Scalar => dot_rows_scalar(w, x, out),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` and `Isa::Avx512` are only used where the CPU has them.
        Isa::Avx2 => unsafe { x86::dot_rows_avx2(w, x, out) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::dot_rows_avx512(w, x, out) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => dot_rows_scalar(w, x, out),
    }
}

/// The reference `dot_rows`.
fn dot_rows_scalar(w: &[i16], x: &[i16], out: &mut [i64]) {
    for (o, row) in out.iter_mut().zip(w.chunks_exact(x.len())) {
        *o = dot_q24(row, x);
    }
}

/// Exact dot product of a Q12 weight row and a Q12 activation vector, Q24.
///
/// Chunks of 16 products are summed in `i32` (each product is below 2^27, see `fixed`), so
/// the compiler can use 16-bit multiply-add instructions; chunk sums are added in `i64`.
#[inline]
fn dot_q24(w: &[i16], x: &[i16]) -> i64 {
    debug_assert_eq!(w.len(), x.len());
    let mut total = 0i64;
    let mut wc = w.chunks_exact(16);
    let mut xc = x.chunks_exact(16);
    for (a, b) in (&mut wc).zip(&mut xc) {
        let mut s = 0i32;
        for k in 0..16 {
            s += a[k] as i32 * b[k] as i32;
        }
        total += s as i64;
    }
    for (a, b) in wc.remainder().iter().zip(xc.remainder()) {
        total += (*a as i32 * *b as i32) as i64;
    }
    total
}

/// Rows of a matrix-vector product computed per `dot_rows` call: the sums stay on the stack.
const ROW_BLOCK: usize = 64;

/// Calls `each(r, Σ_k w[r][k]·x[k])` for every row `r` of the `rows × x.len()` matrix `w`.
#[inline]
fn products(isa: Isa, w: &[i16], x: &[i16], rows: usize, mut each: impl FnMut(usize, i64)) {
    let cols = x.len();
    let mut sums = [0i64; ROW_BLOCK];
    for first in (0..rows).step_by(ROW_BLOCK) {
        let n = ROW_BLOCK.min(rows - first);
        dot_rows(isa, &w[first * cols..(first + n) * cols], x, &mut sums[..n]);
        for (i, &sum) in sums[..n].iter().enumerate() {
            each(first + i, sum);
        }
    }
}

/// Gate pre-activations of one layer: `z = round((W·x + E[symbol] + b) >> 12)`, clamped to
/// `±PREACT_LIMIT`, Q12. `w` is `rows × cols`, `x` is `streams × cols`, `z` is
/// `streams × rows`; `embedding` is `256 × rows` and `bias` is `rows`, both Q24.
pub fn gates_forward(
    w: &[i16],
    embedding: &[i32],
    bias: &[i32],
    x: &[i16],
    symbols: &[u8],
    z: &mut [i32],
) {
    let isa = Isa::active();
    let rows = bias.len();
    let cols = w.len() / rows;
    for (s, &symbol) in symbols.iter().enumerate() {
        let xs = &x[s * cols..(s + 1) * cols];
        let emb = &embedding[symbol as usize * rows..(symbol as usize + 1) * rows];
        let zs = &mut z[s * rows..(s + 1) * rows];
        products(isa, w, xs, rows, |r, dot| {
            let acc = dot + emb[r] as i64 + bias[r] as i64;
            zs[r] = clamp_i32(round_shift(acc, ACT_FRAC), PREACT_LIMIT);
        });
    }
}

/// The LSTM cell with a tied input gate, for every stream of `cells` cells:
/// `f = σ(z_f)`, `o = σ(z_o)`, `g = tanh(z_g)`, `c = f·c_prev + (1 - f)·g`, `h = o·tanh(c)`.
///
/// `z` and `gates` are `streams × 3·cells` (forget, output, candidate), Q12; `c` holds the
/// previous cell state on entry and the new one on return (Q12, always within `±ONE` because
/// it is a convex mix of values within `±ONE`, so `i32` products cannot overflow);
/// `tanh_c` and `h` receive tanh(c) and the new hidden state, Q12, `streams × cells`.
pub fn cell_forward(
    cells: usize,
    z: &[i32],
    gates: &mut [i32],
    c: &mut [i32],
    tanh_c: &mut [i32],
    h: &mut [i16],
) {
    let half = 1 << (ACT_FRAC - 1);
    for s in 0..c.len() / cells {
        let zs = &z[s * 3 * cells..(s + 1) * 3 * cells];
        let gs = &mut gates[s * 3 * cells..(s + 1) * 3 * cells];
        for j in 0..cells {
            let f = fixed::sigmoid(zs[j]);
            let o = fixed::sigmoid(zs[cells + j]);
            let g = fixed::tanh(zs[2 * cells + j]);
            gs[j] = f;
            gs[cells + j] = o;
            gs[2 * cells + j] = g;
            let k = s * cells + j;
            let c_new = (f * c[k] + (ONE - f) * g + half) >> ACT_FRAC;
            let t = fixed::tanh(c_new);
            c[k] = c_new;
            tanh_c[k] = t;
            h[k] = ((o * t + half) >> ACT_FRAC) as i16;
        }
    }
}

/// One layer's window rows and state for the streams of one step, all `streams × …`.
pub struct LayerRows<'a> {
    /// Receives the matrix input `[h_below, h]` (`h_below` only above layer 0), Q12.
    pub x: &'a mut [i16],
    /// Receives the gate activations (forget, output, candidate), Q12.
    pub gates: &'a mut [i32],
    /// Receives the cell state before the step, Q12.
    pub c_prev: &'a mut [i32],
    /// Receives tanh of the new cell state, Q12.
    pub tanh_c: &'a mut [i32],
    /// Hidden state: the previous step's on entry, this step's on return, Q12.
    pub h: &'a mut [i16],
    /// Cell state: the previous step's on entry, this step's on return, Q12.
    pub c: &'a mut [i32],
}

/// One step of one layer, the twin of `shaders/layer_forward.wgsl`: gathers the input
/// `x = [h_below, h]` of every stream (just `h` for layer 0, where `h_below` is `None`), then
/// `gates_forward` (into the scratch `z`) and `cell_forward`, keeping the previous cell state.
/// `w`, `embedding` and `bias` are as for `gates_forward`.
pub fn layer_forward(
    w: &[i16],
    embedding: &[i32],
    bias: &[i32],
    symbols: &[u8],
    h_below: Option<&[i16]>,
    rows: LayerRows,
    z: &mut Vec<i32>,
) {
    let streams = symbols.len();
    let cells = rows.h.len() / streams.max(1);
    let cols = rows.x.len() / streams.max(1);
    for s in 0..streams {
        let own = &rows.h[s * cells..(s + 1) * cells];
        let xs = &mut rows.x[s * cols..(s + 1) * cols];
        match h_below {
            None => xs.copy_from_slice(own),
            Some(below) => {
                xs[..cells].copy_from_slice(&below[s * cells..(s + 1) * cells]);
                xs[cells..].copy_from_slice(own);
            }
        }
    }
    z.resize(streams * bias.len(), 0);
    gates_forward(w, embedding, bias, rows.x, symbols, z);
    rows.c_prev.copy_from_slice(rows.c);
    cell_forward(cells, z, rows.gates, rows.c, rows.tanh_c, rows.h);
}

/// The output head and its frequency tables, the twin of `shaders/head_softmax.wgsl`:
/// `head_forward` (into the scratch `logits`), then `softmax_freq`. `x` is `streams × cols`,
/// `freqs` and `probs` are `streams × 256`.
pub fn head_softmax(
    w: &[i16],
    bias: &[i32],
    x: &[i16],
    logits: &mut Vec<i32>,
    freqs: &mut [u32],
    probs: &mut [u32],
) {
    logits.resize(freqs.len(), 0);
    head_forward(w, bias, x, logits);
    softmax_freq(logits, freqs, probs);
}

/// Output-head logits: `round((W·x + b) >> 12)`, clamped to `±LOGIT_LIMIT`, Q12.
/// `w` is `256 × cols`, `x` is `streams × cols`, `logits` is `streams × 256`.
pub fn head_forward(w: &[i16], bias: &[i32], x: &[i16], logits: &mut [i32]) {
    let isa = Isa::active();
    let cols = w.len() / SYMBOLS;
    for (xs, out) in x.chunks_exact(cols).zip(logits.chunks_exact_mut(SYMBOLS)) {
        products(isa, w, xs, SYMBOLS, |r, dot| {
            out[r] = clamp_i32(round_shift(dot + bias[r] as i64, ACT_FRAC), LOGIT_LIMIT);
        });
    }
}

/// Integer softmax to a frequency table: `e_i = exp(l_i - max)` in Q15 from the table,
/// `f_i = 1 + e_i·(2^16 - 256) / Σe`, and what rounding left of 2^16 goes to the first
/// symbol with the largest logit. Every entry is at least 1 and the total is exactly 2^16.
/// (`e_i ≤ 2^15` and `2^16 - 256 < 2^16`, so the product fits in `u32`.)
///
/// `probs` receives the softmax itself, `⌊e_i·2^16 / Σe⌋`, without the coder's floor of 1:
/// the training target. (Trained on the floored table, the model would be pushed towards
/// certainty forever on predictable data, since no symbol's floored probability reaches 1.)
pub fn softmax_freq(logits: &[i32], freqs: &mut [u32], probs: &mut [u32]) {
    for ((ls, fs), ps) in logits
        .chunks_exact(SYMBOLS)
        .zip(freqs.chunks_exact_mut(SYMBOLS))
        .zip(probs.chunks_exact_mut(SYMBOLS))
    {
        let mut max = ls[0];
        let mut argmax = 0;
        for (i, &l) in ls.iter().enumerate() {
            if l > max {
                max = l;
                argmax = i;
            }
        }
        let mut sum = 0u32;
        for (p, &l) in ps.iter_mut().zip(ls) {
            *p = fixed::exp_neg(max - l) as u32;
            sum += *p;
        }
        let spread = FREQ_TOTAL - SYMBOLS as u32;
        let mut total = 0u32;
        for (f, p) in fs.iter_mut().zip(ps.iter_mut()) {
            *f = 1 + *p * spread / sum;
            total += *f;
            *p = (*p << FREQ_TOTAL_BITS) / sum;
        }
        fs[argmax] += FREQ_TOTAL - total;
    }
}

/// Gradient of the coding loss with respect to the logits, Q24: `p_i - [i = target]` with
/// `p_i` the softmax probabilities (`probs` of `softmax_freq`, Q16).
pub fn output_grad(probs: &[u32], targets: &[u8], dlogits: &mut [i32]) {
    let to_q24 = crate::fixed::GRAD_FRAC - FREQ_TOTAL_BITS;
    for ((ps, &t), d) in probs
        .chunks_exact(SYMBOLS)
        .zip(targets)
        .zip(dlogits.chunks_exact_mut(SYMBOLS))
    {
        for (i, (d, &p)) in d.iter_mut().zip(ps).enumerate() {
            let y = if i == t as usize {
                FREQ_TOTAL as i32
            } else {
                0
            };
            *d = (p as i32 - y) << to_q24;
        }
    }
}

/// The reference row combination `out[k] = Σ_i c[i·stride]·m[i][k]` over the rows of the
/// row-major `n × out.len()` matrix `m`, in `i64`: each product is below 2^15 · 2^27 (input
/// gradients) or 2^27 · 2^12 (weight gradients), the sums below 2^61 (see `fixed`).
fn combine_rows_scalar(c: &[i32], stride: usize, m: &[i16], out: &mut [i64]) {
    out.fill(0);
    for (i, row) in m.chunks_exact(out.len()).enumerate() {
        let d = c[i * stride] as i64;
        for (o, &v) in out.iter_mut().zip(row) {
            *o += d * v as i64;
        }
    }
}

/// A row-major Q12 matrix `m` (`n × cols`: a weight matrix, or a window's matrix inputs)
/// laid out for the products that combine its rows, `out[k] = Σ_i c[i·stride]·m[i][k]` with
/// Q24 coefficients `|c| ≤ GRAD_LIMIT` (every `dz` is clamped so). The vector paths read the
/// rows in pairs, `pairs[p][2k + e] = m[2p + e][k]`, so that one 16-bit multiply-add takes
/// two rows of a column; an odd `n` is padded with a zero row, which adds nothing. The scalar
/// path reads `m` itself. All paths give the same exact `i64` sums.
pub struct RowPairs<'a> {
    isa: Isa,
    m: &'a [i16],
    n: usize,
    pairs: Vec<i16>,
}

impl<'a> RowPairs<'a> {
    /// The layout of the first `n` rows of `m` (`cols` wide) that `isa` reads.
    pub fn new(isa: Isa, m: &'a [i16], n: usize, cols: usize) -> RowPairs<'a> {
        RowPairs::with_buffer(isa, m, n, cols, Vec::new())
    }

    /// `new`, writing the layout into `buffer` (whose contents do not matter): a buffer
    /// recycled with `into_buffer` saves an allocation, and its page faults, per window.
    pub fn with_buffer(
        isa: Isa,
        m: &'a [i16],
        n: usize,
        cols: usize,
        mut pairs: Vec<i16>,
    ) -> RowPairs<'a> {
        pairs.clear();
        if isa != Isa::Scalar {
            pairs.resize(n.div_ceil(2) * 2 * cols, 0);
            for (rows, pair) in m[..n * cols]
                .chunks(2 * cols)
                .zip(pairs.chunks_exact_mut(2 * cols))
            {
                // Zips of whole rows, which the compiler turns into interleaving shuffles.
                let (first, second) = rows.split_at(cols);
                if second.is_empty() {
                    for (out, &a) in pair.chunks_exact_mut(2).zip(first) {
                        out[0] = a;
                        out[1] = 0;
                    }
                } else {
                    for ((out, &a), &b) in pair.chunks_exact_mut(2).zip(first).zip(second) {
                        out[0] = a;
                        out[1] = b;
                    }
                }
            }
        }
        RowPairs {
            isa,
            m: &m[..n * cols],
            n,
            pairs,
        }
    }

    /// The buffer the layout lives in, for the next `with_buffer`.
    pub fn into_buffer(self) -> Vec<i16> {
        self.pairs
    }

    /// The row combination for rows of any `i16` values (weights): each coefficient in three
    /// pieces of 10 bits (the last within ±2^7), 16 pairs per `i32` sum, so a lane holds at
    /// most 32 products below 2^10 · 2^15: below 2^30.
    pub fn combine_weights(&self, c: &[i32], stride: usize, out: &mut [i64]) {
        self.combine::<3, 10, 16>(c, stride, out);
    }

    /// The row combination for rows within `±ONE` (activations): each coefficient in two
    /// pieces of 15 bits (the last within ±2^12), 8 pairs per `i32` sum, so a lane holds at
    /// most 16 products below 2^15 · 2^12: below 2^31.
    pub fn combine_activations(&self, c: &[i32], stride: usize, out: &mut [i64]) {
        debug_assert!(self.m.iter().all(|&v| (v as i32).abs() <= ONE));
        self.combine::<2, 15, 8>(c, stride, out);
    }

    /// The row combination on this layout's path, with coefficients cut into `PIECES` pieces
    /// of `BITS` bits and `PAIRS` row pairs per `i32` sum (the callers prove the bound).
    fn combine<const PIECES: usize, const BITS: u32, const PAIRS: usize>(
        &self,
        c: &[i32],
        stride: usize,
        out: &mut [i64],
    ) {
        debug_assert!(c.iter().all(|v| v.unsigned_abs() <= GRAD_LIMIT as u32));
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Avx2` and `Isa::Avx512` are only used where the CPU has them.
            Isa::Avx2 => unsafe {
                x86::combine_pairs_avx2::<PIECES, BITS, PAIRS>(c, stride, &self.pairs, self.n, out)
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe {
                x86::combine_pairs_avx512::<PIECES, BITS, PAIRS>(
                    c,
                    stride,
                    &self.pairs,
                    self.n,
                    out,
                )
            },
            _ => combine_rows_scalar(c, stride, self.m, out),
        }
    }

    /// `input_grad` of this matrix (`rows × cols`, as laid out by `new`).
    pub fn input_grad(&self, streams: usize, dz: &[i32], dx: &mut [i32]) {
        let rows = dz.len() / streams;
        let cols = dx.len() / streams;
        debug_assert_eq!(rows, self.n);
        let mut acc = vec![0i64; cols];
        for (ds, out) in dz.chunks_exact(rows).zip(dx.chunks_exact_mut(cols)) {
            self.combine_weights(ds, 1, &mut acc);
            for (o, &a) in out.iter_mut().zip(&acc) {
                *o = clamp_i32(round_shift(a, ACT_FRAC), GRAD_LIMIT);
            }
        }
    }
}

/// Gradient with respect to a matrix's input, Q24:
/// `dx[s][k] = round(Σ_r W[r][k]·dz[s][r] >> 12)`, clamped to `±GRAD_LIMIT`. `w` is
/// `rows × cols`, `dz` is `streams × rows`, `dx` is `streams × cols`. (The backward pass
/// lays each matrix out once per window and calls `RowPairs::input_grad` itself.)
pub fn input_grad(streams: usize, w: &[i16], dz: &[i32], dx: &mut [i32]) {
    let rows = dz.len() / streams;
    let cols = dx.len() / streams;
    RowPairs::new(Isa::active(), w, rows, cols).input_grad(streams, dz, dx);
}

/// What `cell_backward` needs of one step's forward pass, all `streams × …` Q12.
pub struct CellTrace<'a> {
    /// Gate activations, `streams × 3·cells` (forget, output, candidate).
    pub gates: &'a [i32],
    /// Cell state before the step.
    pub c_prev: &'a [i32],
    /// tanh of the cell state after the step.
    pub tanh_c: &'a [i32],
}

/// Back-propagation through the cell of `cell_forward`.
///
/// On entry `dh` holds the gradient of the hidden state and `dc` that of the new cell state
/// (Q24); on return `dc` holds the gradient of the previous cell state and `dz` that of the
/// gate pre-activations (`streams × 3·cells`), all clamped to `±GRAD_LIMIT`. Products are
/// formed in `i64` and rounded back to Q24 after each multiplication by a Q12 factor.
pub fn cell_backward(cells: usize, trace: &CellTrace, dh: &[i32], dc: &mut [i32], dz: &mut [i32]) {
    let mul = |a: i64, b: i32| round_shift(a * b as i64, ACT_FRAC);
    let lim = |x: i64| clamp_i32(x, GRAD_LIMIT);
    for s in 0..dh.len() / cells {
        let gs = &trace.gates[s * 3 * cells..(s + 1) * 3 * cells];
        let zs = &mut dz[s * 3 * cells..(s + 1) * 3 * cells];
        for j in 0..cells {
            let k = s * cells + j;
            let (f, o, g) = (gs[j], gs[cells + j], gs[2 * cells + j]);
            let t = trace.tanh_c[k];
            let d_h = dh[k] as i64;
            let d_o = mul(d_h, t);
            let d_t = mul(d_h, o);
            let tanh_slope = ONE - mul(t as i64, t) as i32;
            let d_c = lim(dc[k] as i64 + mul(d_t, tanh_slope)) as i64;
            let d_f = mul(d_c, trace.c_prev[k] - g);
            let d_g = mul(d_c, ONE - f);
            dc[k] = lim(mul(d_c, f));
            let sig_slope = |a: i32| mul(a as i64, ONE - a) as i32;
            zs[j] = lim(mul(d_f, sig_slope(f)));
            zs[cells + j] = lim(mul(d_o, sig_slope(o)));
            zs[2 * cells + j] = lim(mul(d_g, ONE - mul(g as i64, g) as i32));
        }
    }
}

/// Where one layer's hidden-state gradient comes from at one step, all Q24, row-major over the
/// step's streams.
pub struct HiddenGrads<'a> {
    /// The head's input gradient, `streams × (layers · cells)`.
    pub head: &'a [i32],
    /// The layer's first column in `head` (`layer · cells`).
    pub head_offset: usize,
    /// The layer above's input gradient at this step, `streams × 2·cells`, whose first `cells`
    /// columns are this layer's hidden state; `None` at the top layer.
    pub above: Option<&'a [i32]>,
}

/// One step of back-propagation through one layer, the twin of
/// `shaders/layer_backward.wgsl`: the hidden-state gradient `dh = head + own + above`,
/// clamped to `±GRAD_LIMIT` (`own` being the last `cells` columns of `dx` on entry), then
/// `cell_backward` and the layer matrix's `input_grad`.
///
/// `matrix` is the layer's `3·cells × cols` matrix; on entry `dx` (`streams × cols`) holds the
/// input gradient of the step after this one and `dc` (`streams × cells`) that step's
/// cell-state gradient; on return they hold this step's, and `dz` (`streams × 3·cells`) the
/// gate pre-activations' gradient. `dh` is scratch.
pub fn layer_backward(
    matrix: &RowPairs,
    trace: &CellTrace,
    from: HiddenGrads,
    dh: &mut Vec<i32>,
    dc: &mut [i32],
    dz: &mut [i32],
    dx: &mut [i32],
) {
    let rows = matrix.n;
    let cells = rows / GATES;
    let streams = dz.len() / rows;
    let cols = dx.len() / streams.max(1);
    let head_cols = from.head.len() / streams.max(1);
    dh.resize(streams * cells, 0);
    for s in 0..streams {
        let head = &from.head[s * head_cols + from.head_offset..][..cells];
        let own = &dx[(s + 1) * cols - cells..(s + 1) * cols];
        for j in 0..cells {
            let above = from.above.map_or(0, |a| a[s * 2 * cells + j] as i64);
            dh[s * cells + j] = clamp_i32(head[j] as i64 + own[j] as i64 + above, GRAD_LIMIT);
        }
    }
    cell_backward(cells, trace, dh, dc, dz);
    matrix.input_grad(streams, dz, dx);
}

/// One Adam step (β1 = 0) of one weight from its window gradient `sum` (Q36).
///
/// `g = round(sum >> 16)` clamped to `±(2^31 - 1)` (Q20); `v ← v - (v >> β) + (g² >> β)`, or
/// `g²` while `v` is 0 (so a weight first touched late, such as a rare symbol's embedding,
/// does not take a step 2^(β/2) times too large); `w ← w - lr·g/√v` with `1/√v` from
/// `fixed::rsqrt`, clamped to `±MASTER_LIMIT`. A zero `sum` leaves both untouched (a
/// deterministic "sparse Adam": an unseen symbol's embedding keeps its state).
#[inline(always)]
fn adam_step(opt: &Optimizer, table: &[i32], sum: i64, v: &mut u64, w: &mut i32) {
    if sum == 0 {
        return;
    }
    let g = round_shift(sum, ADAM_GRAD_SHIFT).clamp(-(i32::MAX as i64), i32::MAX as i64);
    let sq = (g * g) as u64;
    *v = match *v {
        0 => sq,
        old => old - (old >> opt.beta2_shift) + (sq >> opt.beta2_shift),
    };
    let (mantissa, shift) = fixed::rsqrt(table, *v);
    let ratio = round_shift(g * mantissa, shift);
    let step = round_shift(opt.lr_q24 * ratio, RSQRT_FRAC);
    *w = clamp_i32(*w as i64 - step, MASTER_LIMIT);
}

/// The optimizer's settings for one update.
#[derive(Clone, Copy, Debug)]
pub struct Optimizer {
    /// Learning rate, Q24. (No bias correction: each second moment starts at its first g².)
    pub lr_q24: i64,
    /// Adam's β2 = 1 - 2^-beta2_shift.
    pub beta2_shift: u32,
}

/// Rows `rows` of a tensor with their optimizer state: Q24 master values, second moments and
/// (for matrices) the Q12 forward copy, each `rows.len() × cols`.
pub struct RowsMut<'a> {
    /// First row of the slice within its tensor.
    pub first_row: usize,
    /// Q24 master values.
    pub master: &'a mut [i32],
    /// Adam second moments.
    pub second_moment: &'a mut [u64],
    /// Q12 forward copy; empty for tensors without one.
    pub forward: &'a mut [i16],
}

/// `adam_step` on every weight of a row (`sums`, `v` and `w` of one length), and, unless
/// `forward` is empty, a fresh Q12 copy of every weight: `round(w >> 12)`. Same results on
/// every path `isa` picks.
pub fn adam_row(
    isa: Isa,
    opt: &Optimizer,
    sums: &[i64],
    v: &mut [u64],
    w: &mut [i32],
    forward: &mut [i16],
) {
    let table = &fixed::tables().rsqrt;
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` and `Isa::Avx512` are only used where the CPU has them.
        Isa::Avx2 => unsafe { adam_row_avx2(opt, table, sums, v, w, forward) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::adam_row_avx512(opt, table, sums, v, w, forward) },
        _ => adam_row_scalar(opt, table, sums, v, w, forward),
    }
}

/// The reference `adam_row`.
#[inline(always)]
fn adam_row_scalar(
    opt: &Optimizer,
    table: &[i32],
    sums: &[i64],
    v: &mut [u64],
    w: &mut [i32],
    forward: &mut [i16],
) {
    for ((&sum, v), w) in sums.iter().zip(v.iter_mut()).zip(w.iter_mut()) {
        adam_step(opt, table, sum, v, w);
    }
    for (f, &w) in forward.iter_mut().zip(w.iter()) {
        *f = round_shift(w as i64, MASTER_FRAC - ACT_FRAC) as i16;
    }
}

/// `adam_row_scalar` compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn adam_row_avx2(
    opt: &Optimizer,
    table: &[i32],
    sums: &[i64],
    v: &mut [u64],
    w: &mut [i32],
    forward: &mut [i16],
) {
    adam_row_scalar(opt, table, sums, v, w, forward)
}

/// Weight gradient and Adam step of the rows `part` of a `rows × cols` matrix:
/// `G[r][k] = Σ_j dz[j][r] · x[j][k]` (Q24 · Q12 = Q36) over the `n` stream-steps `j` of
/// the window (`dz` is `n × rows`, `x` is `n × cols`), then `adam_step` and a fresh Q12
/// copy. Each product is below 2^27 · 2^12 and a window holds at most 2^22 stream-steps,
/// so the `i64` sums are exact and their order is irrelevant.
pub fn matrix_update(opt: &Optimizer, dz: &[i32], x: &[i16], rows: usize, part: RowsMut) {
    let isa = Isa::active();
    let n = dz.len() / rows;
    let cols = x.len() / n.max(1);
    let steps = RowPairs::new(isa, x, n, cols);
    let mut acc = vec![0i64; cols];
    for (i, ((w, v), f)) in part
        .master
        .chunks_exact_mut(cols)
        .zip(part.second_moment.chunks_exact_mut(cols))
        .zip(part.forward.chunks_exact_mut(cols))
        .enumerate()
    {
        let r = part.first_row + i;
        steps.combine_activations(&dz[r..], rows, &mut acc);
        adam_row(isa, opt, &acc, v, w, f);
    }
}

/// Gradient and Adam step of a bias of `rows` values: `G[r] = Σ_j dz[j][r] << 12` (Q36).
pub fn bias_update(opt: &Optimizer, dz: &[i32], master: &mut [i32], second_moment: &mut [u64]) {
    let rows = master.len();
    let mut sums = vec![0i64; rows];
    for d in dz.chunks_exact(rows) {
        for (s, &dv) in sums.iter_mut().zip(d) {
            *s += (dv as i64) << ACT_FRAC;
        }
    }
    adam_row(Isa::active(), opt, &sums, second_moment, master, &mut []);
}

/// Gradient and Adam step of a `256 × rows` embedding: `G[σ][r] = Σ_{j: symbol_j = σ}
/// dz[j][r] << 12` (Q36), for the symbols that occur in the window (`grad` is scratch of
/// `256 × rows`, returned zeroed).
pub fn embedding_update(
    opt: &Optimizer,
    dz: &[i32],
    symbols: &[u8],
    master: &mut [i32],
    second_moment: &mut [u64],
    grad: &mut Vec<i64>,
) {
    let rows = master.len() / SYMBOLS;
    grad.resize(master.len(), 0);
    let mut seen = [false; SYMBOLS];
    for (d, &symbol) in dz.chunks_exact(rows).zip(symbols) {
        seen[symbol as usize] = true;
        for (g, &dv) in grad[symbol as usize * rows..][..rows].iter_mut().zip(d) {
            *g += (dv as i64) << ACT_FRAC;
        }
    }
    let isa = Isa::active();
    for symbol in (0..SYMBOLS).filter(|&s| seen[s]) {
        let range = symbol * rows..(symbol + 1) * rows;
        let sums = &mut grad[range.clone()];
        adam_row(
            isa,
            opt,
            sums,
            &mut second_moment[range.clone()],
            &mut master[range],
            &mut [],
        );
        sums.fill(0);
    }
}

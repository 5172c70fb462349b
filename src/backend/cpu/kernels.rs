//! The CPU twin of the GPU kernels, in plain integer Rust. These functions *define* the
//! model's arithmetic; the shaders are tested against them bit for bit. `gates_forward`,
//! `cell_forward`, `softmax_freq`, `output_grad`, `input_grad`, `cell_backward` and
//! `matrix_update` each have a shader of the same name; `head_forward` is the `gates_forward`
//! shader with the head's sizes, `bias_update` and `embedding_update` are both
//! `vector_update`, and the shaders `layer_input` and `head_input` only gather activations,
//! which the CPU twin does in place (`super::streams`). Each works on all active streams of one step (`streams` rows of its
//! per-stream inputs and outputs, row-major).

use crate::fixed::{
    self, ACT_FRAC, ADAM_GRAD_SHIFT, FREQ_TOTAL, FREQ_TOTAL_BITS, GRAD_LIMIT, LOGIT_LIMIT,
    MASTER_FRAC, MASTER_LIMIT, ONE, PREACT_LIMIT, RSQRT_FRAC, SYMBOLS, clamp_i32, round_shift,
};

/// Exact dot product of a Q12 weight row and a Q12 activation vector, Q24.
///
/// Chunks of 16 products are summed in `i32` (each product is below 2^27, see `fixed`), so
/// the compiler can use 16-bit multiply-add instructions; chunk sums are added in `i64`.
#[inline]
pub fn dot_q24(w: &[i16], x: &[i16]) -> i64 {
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
    let rows = bias.len();
    let cols = w.len() / rows;
    for (s, &symbol) in symbols.iter().enumerate() {
        let xs = &x[s * cols..(s + 1) * cols];
        let emb = &embedding[symbol as usize * rows..(symbol as usize + 1) * rows];
        for r in 0..rows {
            let acc = dot_q24(&w[r * cols..(r + 1) * cols], xs) + emb[r] as i64 + bias[r] as i64;
            z[s * rows + r] = clamp_i32(round_shift(acc, ACT_FRAC), PREACT_LIMIT);
        }
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

/// Output-head logits: `round((W·x + b) >> 12)`, clamped to `±LOGIT_LIMIT`, Q12.
/// `w` is `256 × cols`, `x` is `streams × cols`, `logits` is `streams × 256`.
pub fn head_forward(w: &[i16], bias: &[i32], x: &[i16], logits: &mut [i32]) {
    let cols = w.len() / SYMBOLS;
    for (xs, out) in x.chunks_exact(cols).zip(logits.chunks_exact_mut(SYMBOLS)) {
        for (r, l) in out.iter_mut().enumerate() {
            let acc = dot_q24(&w[r * cols..(r + 1) * cols], xs) + bias[r] as i64;
            *l = clamp_i32(round_shift(acc, ACT_FRAC), LOGIT_LIMIT);
        }
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

/// Compiles a kernel body twice, for the baseline target and for AVX2, and picks at run time.
/// Integer results do not depend on the instructions chosen, only the speed does.
macro_rules! with_avx2 {
    ($(#[$doc:meta])* pub fn $name:ident => $body:ident ($($arg:ident: $ty:ty),*)) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($arg: $ty),*) {
                    $body($($arg),*)
                }
                // SAFETY: the CPU supports AVX2, checked just above.
                return unsafe { avx2($($arg),*) };
            }
            $body($($arg),*)
        }
    };
}

with_avx2! {
    /// Gradient with respect to a matrix's input, Q24:
    /// `dx[s][k] = round(Σ_r W[r][k]·dz[s][r] >> 12)`, clamped to `±GRAD_LIMIT`. `w` is
    /// `rows × cols`, `dz` is `streams × rows`, `dx` is `streams × cols`.
    pub fn input_grad => input_grad_body(streams: usize, w: &[i16], dz: &[i32], dx: &mut [i32])
}
#[inline(always)]
fn input_grad_body(streams: usize, w: &[i16], dz: &[i32], dx: &mut [i32]) {
    let rows = dz.len() / streams;
    let cols = dx.len() / streams;
    let mut acc = vec![0i64; cols];
    for (ds, out) in dz.chunks_exact(rows).zip(dx.chunks_exact_mut(cols)) {
        acc.fill(0);
        for (&d, ws) in ds.iter().zip(w.chunks_exact(cols)) {
            for (a, &wv) in acc.iter_mut().zip(ws) {
                *a += wv as i64 * d as i64;
            }
        }
        for (o, &a) in out.iter_mut().zip(&acc) {
            *o = clamp_i32(round_shift(a, ACT_FRAC), GRAD_LIMIT);
        }
    }
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

#[inline(always)]
fn matrix_update_body(opt: &Optimizer, dz: &[i32], x: &[i16], rows: usize, part: RowsMut) {
    let n = dz.len() / rows;
    let cols = x.len() / n.max(1);
    let table = &fixed::tables().rsqrt;
    let mut acc = vec![0i64; cols];
    for (i, ((w, v), f)) in part
        .master
        .chunks_exact_mut(cols)
        .zip(part.second_moment.chunks_exact_mut(cols))
        .zip(part.forward.chunks_exact_mut(cols))
        .enumerate()
    {
        let r = part.first_row + i;
        acc.fill(0);
        for (j, xs) in x.chunks_exact(cols).enumerate() {
            let d = dz[j * rows + r] as i64;
            for (a, &xv) in acc.iter_mut().zip(xs) {
                *a += d * xv as i64;
            }
        }
        for k in 0..cols {
            adam_step(opt, table, acc[k], &mut v[k], &mut w[k]);
            f[k] = round_shift(w[k] as i64, MASTER_FRAC - ACT_FRAC) as i16;
        }
    }
}

with_avx2! {
    /// Weight gradient and Adam step of the rows `part` of a `rows × cols` matrix:
    /// `G[r][k] = Σ_j dz[j][r] · x[j][k]` (Q24 · Q12 = Q36) over the `n` stream-steps `j` of
    /// the window (`dz` is `n × rows`, `x` is `n × cols`), then `adam_step` and a fresh Q12
    /// copy. Each product is below 2^27 · 2^12 and a window holds at most 2^22 stream-steps,
    /// so the `i64` sums are exact and their order is irrelevant.
    pub fn matrix_update => matrix_update_body(opt: &Optimizer, dz: &[i32], x: &[i16], rows: usize, part: RowsMut)
}

/// Gradient and Adam step of a bias of `rows` values: `G[r] = Σ_j dz[j][r] << 12` (Q36).
pub fn bias_update(opt: &Optimizer, dz: &[i32], master: &mut [i32], second_moment: &mut [u64]) {
    let rows = master.len();
    let table = &fixed::tables().rsqrt;
    for r in 0..rows {
        let sum: i64 = dz.chunks_exact(rows).map(|d| d[r] as i64).sum();
        adam_step(
            opt,
            table,
            sum << ACT_FRAC,
            &mut second_moment[r],
            &mut master[r],
        );
    }
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
    let table = &fixed::tables().rsqrt;
    for symbol in (0..SYMBOLS).filter(|&s| seen[s]) {
        let range = symbol * rows..(symbol + 1) * rows;
        for i in range {
            let sum = std::mem::take(&mut grad[i]);
            adam_step(opt, table, sum, &mut second_moment[i], &mut master[i]);
        }
    }
}

//! The arithmetic contract: every value that can influence a probability, in one place.
//!
//! Encoder and decoder must compute the same bits on every backend (the CPU twin, any GPU
//! adapter), so nothing on the probability path is floating point. This module fixes the
//! fixed-point formats, the rounding rule, the saturation bounds and the nonlinearity tables;
//! the GPU backend injects the same constants and table contents into its shaders.
//!
//! Formats (`Qn` means "an integer holding x · 2^n"):
//! - activations (gates, cell state, hidden state, inputs of the matrix products): Q12 in
//!   `[-ONE, ONE]`, stored as `i16` where they feed a matrix product;
//! - weights: a Q24 `i32` master copy for the optimizer and a Q12 `i16` forward copy rounded
//!   from it; embeddings and biases are used in Q24 directly;
//! - pre-activations and logits: Q12 `i32`, clamped to `±PREACT_LIMIT` / `±LOGIT_LIMIT`;
//! - back-propagated gradients: Q24 `i32`, clamped to `±GRAD_LIMIT` (this is also the
//!   gradient clipping rule);
//! - weight gradients: Q36 `i64` sums;
//! - the optimizer's second moment: `u64` in units of (Q20 gradient)².
//!
//! Overflow is excluded by bounds, not hoped away: a Q12·Q12 product of a forward weight
//! (`|w| ≤ 32767`) and an activation (`|x| ≤ 4096`) is below 2^27, so any 16 of them sum in
//! `i32`, and longer sums are exact in `i64`. An input gradient sums products of a forward
//! weight and a gradient (`|g| ≤ GRAD_LIMIT` = 2^27), each below 2^15 · 2^27 = 2^42, over at
//! most 3 · `MAX_CELLS` = 3072 rows: below 2^54. A weight gradient sums products of a gradient
//! and an activation (or a gradient shifted left by 12), each at most 2^27 · 2^12 = 2^39, over
//! at most `MAX_STREAMS · MAX_WINDOW` = 2^22 stream-steps of a window: below 2^61. Both stay
//! inside `i64` (2^63). Since all such sums are exact, their order does not matter, which
//! leaves GPU reductions free.
//!
//! Rounding is round-half-up on an arithmetic shift, `(x + 2^(s-1)) >> s`, which WGSL and
//! Rust compute identically on `i32` and `i64`.

use std::sync::OnceLock;

/// Fraction bits of activations (Q12).
pub const ACT_FRAC: u32 = 12;
/// 1.0 in Q12.
pub const ONE: i32 = 1 << ACT_FRAC;
/// Fraction bits of master weights, embeddings and biases (Q24).
pub const MASTER_FRAC: u32 = 24;
/// Master weights are clamped to this magnitude so the rounded Q12 copy fits in `i16`.
pub const MASTER_LIMIT: i32 = 32767 << (MASTER_FRAC - ACT_FRAC);
/// Pre-activations of the gates, Q12: ±8.0, where the sigmoid and tanh tables end.
pub const PREACT_LIMIT: i32 = 8 << ACT_FRAC;
/// Logits, Q12: ±32.0, wide enough for probabilities near 1 on very predictable data.
pub const LOGIT_LIMIT: i32 = 32 << ACT_FRAC;
/// Fraction bits of back-propagated gradients (Q24).
pub const GRAD_FRAC: u32 = 24;
/// Back-propagated gradients are clamped to ±8.0 (Q24); this bounds every weight-gradient sum.
pub const GRAD_LIMIT: i32 = 8 << GRAD_FRAC;
/// Right shift from a Q36 weight gradient to the Q20 value the optimizer squares.
pub const ADAM_GRAD_SHIFT: u32 = 16;
/// Fraction bits of the reciprocal square roots in `rsqrt`'s table (Q16).
pub const RSQRT_FRAC: u32 = 16;
/// Entries of the reciprocal-square-root table: mantissas are normalised into `[256, 1024)`.
pub const RSQRT_ENTRIES: usize = 1024;
/// `rsqrt` shifts `v` right by an even amount until it has at most this many bits plus one.
pub const RSQRT_NORM_BITS: u32 = 9;
/// Bits of the frequency-table total: every table sums to 2^16.
pub const FREQ_TOTAL_BITS: u32 = 16;
/// Each of the 256 symbols gets at least 1 of `FREQ_TOTAL`.
pub const FREQ_TOTAL: u32 = 1 << FREQ_TOTAL_BITS;
/// Symbols in the alphabet.
pub const SYMBOLS: usize = 256;
/// Fraction bits of the exp table used by the softmax (Q15: e^0 = 32768).
pub const EXP_FRAC: u32 = 15;
/// Table inputs are sampled every 2^-TABLE_STEP_BITS (1/64).
pub const TABLE_STEP_BITS: u32 = 6;
/// Intervals in each table: sigmoid and tanh cover [-8, 8), exp covers e^-d for d in [0, 16).
pub const TABLE_INTERVALS: usize = 1024;

/// Round-half-up right shift of an `i64`: `(x + 2^(s-1)) >> s`, and `x` itself for `s = 0`.
#[inline(always)]
pub fn round_shift(x: i64, s: u32) -> i64 {
    (x + ((1i64 << s) >> 1)) >> s
}

/// Clamps an `i64` into `[-limit, limit]` and narrows it to `i32`.
#[inline(always)]
pub fn clamp_i32(x: i64, limit: i32) -> i32 {
    x.clamp(-(limit as i64), limit as i64) as i32
}

/// The three nonlinearity tables, each `TABLE_INTERVALS + 1` samples.
pub struct Tables {
    /// sigmoid(x) in Q12 at x = -8 + j/64.
    pub sigmoid: Vec<i32>,
    /// tanh(x) in Q12 at x = -8 + j/64.
    pub tanh: Vec<i32>,
    /// e^-d in Q15 at d = j/64.
    pub exp_neg: Vec<i32>,
    /// ⌊2^16 / √m⌋ for m in `0..RSQRT_ENTRIES` (m = 0 as m = 1).
    pub rsqrt: Vec<i32>,
}

/// The tables, computed once by integer code (no libm), so they are the same on every machine.
pub fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(build_tables)
}

/// Q62 fixed point for table generation.
const GEN_FRAC: u32 = 62;

/// Samples of e^-(j/64) the tables are built from: tanh's e^-2x and exp reach
/// j = `TABLE_INTERVALS`, the most any table needs.
const EXP_STEPS: usize = TABLE_INTERVALS + 1;

/// e^-(j/64) in Q62 for j in `0..EXP_STEPS`, by integer Taylor series and repeated
/// multiplication (a `const fn`, so the sigmoid table can be built at compile time).
const fn exp_neg_steps_q62() -> [u128; EXP_STEPS] {
    let one: u128 = 1 << GEN_FRAC;
    // e^-(1/64) = Σ (-1/64)^k / k!
    let mut term = one as i128;
    let mut sum = term;
    let mut k = 1;
    while k < 30i128 {
        term = -term / (64 * k);
        sum += term;
        k += 1;
    }
    let step = sum as u128;
    let mut out = [0; EXP_STEPS];
    let mut value = one;
    let mut j = 0;
    while j < EXP_STEPS {
        out[j] = value;
        value = (value * step + (one >> 1)) >> GEN_FRAC;
        j += 1;
    }
    out
}

/// Rounded `num / den` scaled by 2^bits, for non-negative operands.
const fn ratio_rounded(num: u128, den: u128, bits: u32) -> i32 {
    (((num << bits) * 2 + den) / (2 * den)) as i32
}

/// sigmoid(x) in Q12 at x = -8 + j/64, built at compile time: `sigmoid` reads it without any
/// first-use check, and the mixing stage's squash table is built from it at compile time too.
static SIGMOID: [i32; TABLE_INTERVALS + 1] = {
    let half = TABLE_INTERVALS / 2;
    let e = exp_neg_steps_q62();
    let one: u128 = 1 << GEN_FRAC;
    let mut t = [0; TABLE_INTERVALS + 1];
    let mut j = 0;
    while j <= TABLE_INTERVALS {
        // x = (j - half) / 64; sigmoid(x) = 1 / (1 + e^-x).
        let s = ratio_rounded(one, one + e[j.abs_diff(half)], ACT_FRAC);
        t[j] = if j >= half { s } else { ONE - s };
        j += 1;
    }
    t
};

fn build_tables() -> Tables {
    let half = TABLE_INTERVALS / 2;
    let e = exp_neg_steps_q62();
    let one: u128 = 1 << GEN_FRAC;
    let tanh = (0..=TABLE_INTERVALS)
        .map(|j| {
            // x = (j - half) / 64; tanh(x) = (1 - e^-2x) / (1 + e^-2x).
            let e2 = e[2 * j.abs_diff(half)];
            let t = ratio_rounded(one - e2, one + e2, ACT_FRAC);
            if j >= half { t } else { -t }
        })
        .collect();
    let exp_neg = (0..=TABLE_INTERVALS)
        .map(|j| ((e[j] + (1 << (GEN_FRAC - EXP_FRAC - 1))) >> (GEN_FRAC - EXP_FRAC)) as i32)
        .collect();
    let rsqrt = (0..RSQRT_ENTRIES as u64)
        .map(|m| ((1u64 << (2 * RSQRT_FRAC)) / m.max(1)).isqrt() as i32)
        .collect();
    Tables {
        sigmoid: SIGMOID.to_vec(),
        tanh,
        exp_neg,
        rsqrt,
    }
}

/// Linear interpolation in a table sampled every 1/64 of a Q12 input:
/// `t[i] + ((t[i+1] - t[i]) * frac + 32) >> 6` with `i = x >> 6`, `frac = x & 63`.
#[inline(always)]
const fn interpolate(table: &[i32], x: i32) -> i32 {
    let i = (x >> TABLE_STEP_BITS) as usize;
    let frac = x & ((1 << TABLE_STEP_BITS) - 1);
    let lo = table[i];
    let hi = table[i + 1];
    lo + (((hi - lo) * frac + (1 << (TABLE_STEP_BITS - 1))) >> TABLE_STEP_BITS)
}

/// sigmoid of a Q12 pre-activation, Q12 in `[0, ONE]`; inputs are clamped to `±PREACT_LIMIT`.
///
/// A `const fn`, so tables derived from it can be built at compile time.
#[inline(always)]
pub const fn sigmoid(z: i32) -> i32 {
    // `Ord::clamp` is not callable in a `const fn`.
    let z = if z < -PREACT_LIMIT {
        -PREACT_LIMIT
    } else if z > PREACT_LIMIT - 1 {
        PREACT_LIMIT - 1
    } else {
        z
    };
    interpolate(&SIGMOID, z + PREACT_LIMIT)
}

/// tanh of a Q12 value, Q12 in `[-ONE, ONE]`; inputs are clamped to `±PREACT_LIMIT`.
#[inline(always)]
pub fn tanh(z: i32) -> i32 {
    let x = z.clamp(-PREACT_LIMIT, PREACT_LIMIT - 1) + PREACT_LIMIT;
    interpolate(&tables().tanh, x)
}

/// e^-d for a Q12 distance `d ≥ 0`, Q15; 0 from d = 16 on.
#[inline(always)]
pub fn exp_neg(d: i32) -> i32 {
    if d >= (TABLE_INTERVALS as i32) << TABLE_STEP_BITS {
        0
    } else {
        interpolate(&tables().exp_neg, d)
    }
}

/// `1/√v` as `(mantissa, shift)`: `1/√v ≈ mantissa · 2^-(RSQRT_FRAC + shift)`, within 0.2 %
/// for `v ≥ 256` (exact table lookups for smaller `v`; `v = 0` is treated as 1).
///
/// `v` is normalised by an even power of two into `m ∈ [256, 1024)` (`v = m · 4^shift`), whose
/// reciprocal square root comes from a table of `⌊2^16 / √m⌋ = ⌊√⌊2^32 / m⌋⌋`.
/// `table` is `tables().rsqrt`, passed in so hot loops look it up once.
#[inline(always)]
pub fn rsqrt(table: &[i32], v: u64) -> (i64, u32) {
    let bits = 64 - v.leading_zeros();
    let shift = bits.saturating_sub(RSQRT_NORM_BITS) / 2;
    let m = (v >> (2 * shift)) as usize & (RSQRT_ENTRIES - 1);
    (table[m] as i64, shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_match_the_real_functions_within_one_unit() {
        let t = tables();
        for j in 0..=TABLE_INTERVALS {
            let x = (j as f64 - 512.0) / 64.0;
            let s = 4096.0 / (1.0 + (-x).exp());
            assert!(
                (t.sigmoid[j] as f64 - s).abs() <= 0.5 + 1e-9,
                "sigmoid at {x}"
            );
            assert!(
                (t.tanh[j] as f64 - 4096.0 * x.tanh()).abs() <= 0.5 + 1e-9,
                "tanh at {x}"
            );
            let e = 32768.0 * (-(j as f64) / 64.0).exp();
            assert!((t.exp_neg[j] as f64 - e).abs() <= 0.5 + 1e-9, "exp at {j}");
        }
    }

    #[test]
    fn nonlinearities_are_monotone_and_bounded_over_the_whole_input_range() {
        let mut prev = (i32::MIN, i32::MIN);
        for z in -PREACT_LIMIT - 10..PREACT_LIMIT + 10 {
            let (s, t) = (sigmoid(z), tanh(z));
            assert!((0..=ONE).contains(&s) && (-ONE..=ONE).contains(&t));
            assert!(s >= prev.0 && t >= prev.1, "not monotone at {z}");
            prev = (s, t);
        }
        assert_eq!(exp_neg(0), 1 << EXP_FRAC);
        assert_eq!(exp_neg(16 << ACT_FRAC), 0);
    }

    #[test]
    fn rsqrt_is_within_a_fifth_of_a_percent() {
        for v in (256u64..1 << 20)
            .step_by(7)
            .chain((0..62).map(|b| (1u64 << b) * 3 / 2))
        {
            let v = v.max(256);
            let (m, s) = rsqrt(&tables().rsqrt, v);
            let got = m as f64 / 2f64.powi((RSQRT_FRAC + s) as i32);
            let want = 1.0 / (v as f64).sqrt();
            assert!(
                (got / want - 1.0).abs() < 0.002,
                "rsqrt({v}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn round_shift_rounds_half_up() {
        assert_eq!(round_shift(6, 2), 2);
        assert_eq!(round_shift(5, 2), 1);
        assert_eq!(round_shift(-6, 2), -1);
        assert_eq!(round_shift(-7, 2), -2);
    }
}

//! The x86-64 vector paths of the kernels' three primitives (`kernels::dot_rows`,
//! `kernels::RowPairs`, `kernels::adam_row`). Each function computes exactly what its scalar
//! twin in `kernels` computes; the callers check the CPU features first (`Isa`).
//!
//! Why they are exact: a forward product term is below 2^27 (`crate::fixed`), so an `i32`
//! lane may sum 16 of them; every lane here sums at most 16 before it is widened to `i64`.
//! Gradient products (`i32 × i16`) split each `i32` coefficient into 16-bit pieces, so that
//! `vpmaddwd` forms them too; the piece sizes bound every `i32` lane below 2^31 (see
//! `combine_pairs_avx512`'s callers), and the pieces are put together again in `i64`. The Adam
//! step evaluates the scalar formula lane by lane in `i64`, with the same wrapping
//! multiplication (`vpmullq`) and arithmetic shifts.

use std::arch::x86_64::*;

use crate::fixed::{ACT_FRAC, ADAM_GRAD_SHIFT, MASTER_FRAC, MASTER_LIMIT, RSQRT_FRAC};

use super::kernels::Optimizer;

/// `out[r] = Σ_k w[r][k]·x[k]` (exact) for a row-major `out.len() × x.len()` matrix `w`:
/// `vpmaddwd` into eight `i32` lanes, widened to `i64` every 128 columns.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn dot_rows_avx2(w: &[i16], x: &[i16], out: &mut [i64]) {
    let cols = x.len();
    assert!(w.len() >= out.len() * cols);
    let body = cols - cols % 16;
    for (r, o) in out.iter_mut().enumerate() {
        let row = &w[r * cols..(r + 1) * cols];
        let mut total = _mm256_setzero_si256();
        let mut k = 0;
        while k < body {
            // 8 multiply-adds put 16 products in each i32 lane: the most that cannot overflow.
            let end = (k + 128).min(body);
            let mut acc = _mm256_setzero_si256();
            while k < end {
                // SAFETY: k + 16 ≤ body ≤ cols, within both slices.
                let (a, b) = unsafe {
                    (
                        _mm256_loadu_si256(row.as_ptr().add(k).cast()),
                        _mm256_loadu_si256(x.as_ptr().add(k).cast()),
                    )
                };
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
                k += 16;
            }
            let lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(acc));
            let hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256::<1>(acc));
            total = _mm256_add_epi64(total, _mm256_add_epi64(lo, hi));
        }
        let mut lanes = [0i64; 4];
        // SAFETY: `lanes` holds 32 bytes.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), total) };
        let tail: i64 = row[body..]
            .iter()
            .zip(&x[body..])
            .map(|(&a, &b)| a as i64 * b as i64)
            .sum();
        *o = lanes.iter().sum::<i64>() + tail;
    }
}

/// Lanes mask for the first `n` of `width` (at most 32) lanes.
#[inline(always)]
fn lanes(n: usize, width: usize) -> u32 {
    if n >= width {
        (((1u64) << width) - 1) as u32
    } else {
        ((1u64 << n) - 1) as u32
    }
}

/// `out[r] = Σ_k w[r][k]·x[k]` (exact), as `dot_rows_avx2` with 512-bit `vpmaddwd`, four
/// rows at a time (each chunk of `x` loaded once for the four).
///
/// # Safety
/// The CPU must support AVX-512 F and BW.
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn dot_rows_avx512(w: &[i16], x: &[i16], out: &mut [i64]) {
    let cols = x.len();
    assert!(w.len() >= out.len() * cols);
    let first = out.len() - out.len() % 4;
    for (b, sums) in out[..first].chunks_exact_mut(4).enumerate() {
        // SAFETY: rows 4b..4b + 4 are within `w` (asserted above).
        unsafe { dot_block_avx512::<4>(w, x, 4 * b, sums) };
    }
    for r in first..out.len() {
        // SAFETY: row r is within `w`.
        unsafe { dot_block_avx512::<1>(w, x, r, &mut out[r..r + 1]) };
    }
}

/// Rows `first..first + R` of `dot_rows_avx512` into `out`. Whole chunks of 32 columns are
/// plain loads; the last, partial chunk is a masked load, whose zeros add nothing.
///
/// # Safety
/// AVX-512 F and BW; `w` holds rows `first..first + R` of `x.len()` columns.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn dot_block_avx512<const R: usize>(w: &[i16], x: &[i16], first: usize, out: &mut [i64]) {
    let cols = x.len();
    let rows = w[first * cols..(first + R) * cols].as_ptr();
    let mut total = [_mm512_setzero_si512(); R];
    let mut k = 0;
    while k < cols {
        // 8 multiply-adds put 16 products in each i32 lane: the most that cannot overflow.
        let end = (k + 256).min(cols);
        let mut acc = [_mm512_setzero_si512(); R];
        while k < end {
            let m = if k + 32 <= end {
                u32::MAX
            } else {
                lanes(end - k, 32)
            };
            // SAFETY: the mask keeps every load below column `cols` of its row.
            unsafe {
                let xv = _mm512_maskz_loadu_epi16(m, x.as_ptr().add(k));
                for (i, a) in acc.iter_mut().enumerate() {
                    let wv = _mm512_maskz_loadu_epi16(m, rows.add(i * cols + k));
                    *a = _mm512_add_epi32(*a, _mm512_madd_epi16(wv, xv));
                }
            }
            k += 32;
        }
        for (t, a) in total.iter_mut().zip(acc) {
            let lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(a));
            let hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64::<1>(a));
            *t = _mm512_add_epi64(*t, _mm512_add_epi64(lo, hi));
        }
    }
    for (o, t) in out.iter_mut().zip(total) {
        *o = _mm512_reduce_add_epi64(t);
    }
}

/// `kernels::adam_step` on every weight of a row: lanes whose `sum` is 0 keep their weight
/// and second moment; `forward` (if not empty) receives every weight's Q12 copy.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, DQ, CD and VL; `table` is `fixed::tables().rsqrt`.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512cd,avx512vl")]
pub unsafe fn adam_row_avx512(
    opt: &Optimizer,
    table: &[i32],
    sums: &[i64],
    v: &mut [u64],
    w: &mut [i32],
    forward: &mut [i16],
) {
    let len = sums.len();
    assert!(v.len() == len && w.len() == len && (forward.is_empty() || forward.len() == len));
    assert!(table.len() >= crate::fixed::RSQRT_ENTRIES);
    let zero = _mm512_setzero_si512();
    let one = _mm512_set1_epi64(1);
    let g_limit = _mm512_set1_epi64(i32::MAX as i64);
    let w_limit = _mm512_set1_epi64(MASTER_LIMIT as i64);
    let lr = _mm512_set1_epi64(opt.lr_q24);
    let beta = _mm_cvtsi32_si128(opt.beta2_shift as i32);
    let mut k = 0;
    while k < len {
        let m = lanes(len - k, 8) as u8;
        // SAFETY: every load and store below is masked to the `len - k` lanes left.
        unsafe {
            let sum = _mm512_maskz_loadu_epi64(m, sums.as_ptr().add(k));
            let live = m & _mm512_cmpneq_epi64_mask(sum, zero);
            let old_w = _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(m, w.as_ptr().add(k)));
            let new_w = if live == 0 {
                old_w
            } else {
                // g = round(sum >> 16), clamped to ±(2^31 - 1): it fits vpmuldq's 32 bits.
                let half_g = _mm512_set1_epi64(1 << (ADAM_GRAD_SHIFT - 1));
                let g = _mm512_srai_epi64::<ADAM_GRAD_SHIFT>(_mm512_add_epi64(sum, half_g));
                let g = _mm512_min_epi64(
                    _mm512_max_epi64(g, _mm512_sub_epi64(zero, g_limit)),
                    g_limit,
                );
                let sq = _mm512_mul_epi32(g, g);
                let old = _mm512_maskz_loadu_epi64(m, v.as_ptr().add(k).cast());
                let decayed = _mm512_add_epi64(
                    _mm512_sub_epi64(old, _mm512_srl_epi64(old, beta)),
                    _mm512_srl_epi64(sq, beta),
                );
                let fresh = _mm512_cmpeq_epi64_mask(old, zero);
                let new_v = _mm512_mask_blend_epi64(fresh, decayed, sq);
                _mm512_mask_storeu_epi64(v.as_mut_ptr().add(k).cast(), live, new_v);
                // fixed::rsqrt: v = mantissa index · 4^shift, the mantissa from the table.
                let bits = _mm512_sub_epi64(_mm512_set1_epi64(64), _mm512_lzcnt_epi64(new_v));
                let over = _mm512_sub_epi64(
                    bits,
                    _mm512_set1_epi64(crate::fixed::RSQRT_NORM_BITS as i64),
                );
                let shift = _mm512_srli_epi64::<1>(_mm512_max_epi64(over, zero));
                let index = _mm512_and_si512(
                    _mm512_srlv_epi64(new_v, _mm512_add_epi64(shift, shift)),
                    _mm512_set1_epi64(crate::fixed::RSQRT_ENTRIES as i64 - 1),
                );
                let mantissa =
                    _mm512_cvtepi32_epi64(_mm512_i64gather_epi32::<4>(index, table.as_ptr()));
                // ratio = round(g·mantissa >> shift); the mantissa is below 2^17.
                let half = _mm512_srli_epi64::<1>(_mm512_sllv_epi64(one, shift));
                let ratio =
                    _mm512_srav_epi64(_mm512_add_epi64(_mm512_mul_epi32(g, mantissa), half), shift);
                let half_step = _mm512_set1_epi64(1 << (RSQRT_FRAC - 1));
                let step = _mm512_srai_epi64::<RSQRT_FRAC>(_mm512_add_epi64(
                    _mm512_mullo_epi64(lr, ratio),
                    half_step,
                ));
                let moved = _mm512_sub_epi64(old_w, step);
                let moved = _mm512_min_epi64(
                    _mm512_max_epi64(moved, _mm512_sub_epi64(zero, w_limit)),
                    w_limit,
                );
                _mm512_mask_cvtepi64_storeu_epi32(w.as_mut_ptr().add(k), live, moved);
                _mm512_mask_blend_epi64(live, old_w, moved)
            };
            if !forward.is_empty() {
                const DROP: u32 = MASTER_FRAC - ACT_FRAC;
                let half_f = _mm512_set1_epi64(1 << (DROP - 1));
                let f = _mm512_srai_epi64::<DROP>(_mm512_add_epi64(new_w, half_f));
                _mm512_mask_cvtepi64_storeu_epi16(forward.as_mut_ptr().add(k), m, f);
            }
        }
        k += 8;
    }
}

/// The `PIECES` pieces of each coefficient of a block of `PAIRS` row pairs, packed for
/// `vpmaddwd`: `c = Σ_q piece_q·2^(BITS·q)`, every piece but the last in `[0, 2^BITS)`, the last
/// `c >> BITS·(PIECES - 1)` (it must fit in `i16`). Entry `[q][p]` holds piece `q` of rows
/// `2p` and `2p + 1` (low and high half) of the block starting at pair `first`; a row past
/// `n` is 0.
#[inline(always)]
fn coefficient_pieces<const PIECES: usize, const BITS: u32, const PAIRS: usize>(
    c: &[i32],
    stride: usize,
    n: usize,
    first: usize,
) -> [[i32; PAIRS]; PIECES] {
    let mut out = [[0i32; PAIRS]; PIECES];
    for p in 0..PAIRS {
        for e in 0..2 {
            let j = 2 * (first + p) + e;
            if j < n {
                let v = c[j * stride];
                for (q, piece) in out.iter_mut().enumerate() {
                    let shifted = v >> (BITS * q as u32);
                    let part = if q + 1 < PIECES {
                        shifted & ((1 << BITS) - 1)
                    } else {
                        shifted
                    };
                    piece[p] |= (part & 0xffff) << (16 * e);
                }
            }
        }
    }
    out
}

/// `out[k] = Σ_i c[i·stride]·m[i][k]` (exact) over the `n` rows of `pairs` (`RowPairs`
/// layout, `out.len()` columns): each coefficient split into `PIECES` 16-bit pieces of `BITS`
/// bits, one `vpmaddwd` per piece and 32 products, `PAIRS` row pairs summed in `i32` before
/// they are widened. The caller picks the three so that no `i32` lane can overflow.
///
/// # Safety
/// The CPU must support AVX-512 F and BW.
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn combine_pairs_avx512<const PIECES: usize, const BITS: u32, const PAIRS: usize>(
    c: &[i32],
    stride: usize,
    pairs: &[i16],
    n: usize,
    out: &mut [i64],
) {
    let cols = out.len();
    let npairs = n.div_ceil(2);
    assert!(pairs.len() >= npairs * 2 * cols && (n == 0 || c.len() > (n - 1) * stride));
    out.fill(0);
    for first in (0..npairs).step_by(PAIRS) {
        let count = PAIRS.min(npairs - first);
        let pieces = coefficient_pieces::<PIECES, BITS, PAIRS>(c, stride, n, first);
        for kb in (0..cols).step_by(16) {
            let m = lanes(2 * (cols - kb), 32);
            let mut acc = [_mm512_setzero_si512(); PIECES];
            for p in 0..count {
                let at = (first + p) * 2 * cols + 2 * kb;
                // SAFETY: the mask keeps the load within pair row `first + p`'s columns.
                let xv = unsafe { _mm512_maskz_loadu_epi16(m, pairs.as_ptr().add(at)) };
                for (a, piece) in acc.iter_mut().zip(&pieces) {
                    let cv = _mm512_set1_epi32(piece[p]);
                    *a = _mm512_add_epi32(*a, _mm512_madd_epi16(xv, cv));
                }
            }
            let om = lanes(cols - kb, 16) as u16;
            for half in 0..2 {
                let hm = (om >> (8 * half)) as u8;
                if hm == 0 {
                    continue;
                }
                let mut sum = _mm512_setzero_si512();
                for (q, &a) in acc.iter().enumerate() {
                    let part = if half == 0 {
                        _mm512_castsi512_si256(a)
                    } else {
                        _mm512_extracti64x4_epi64::<1>(a)
                    };
                    let shift = _mm_cvtsi32_si128((BITS * q as u32) as i32);
                    sum =
                        _mm512_add_epi64(sum, _mm512_sll_epi64(_mm512_cvtepi32_epi64(part), shift));
                }
                // SAFETY: the mask keeps the access within `out[kb + 8·half..]`'s columns.
                unsafe {
                    let at = out.as_mut_ptr().add(kb + 8 * half);
                    let old = _mm512_maskz_loadu_epi64(hm, at);
                    _mm512_mask_storeu_epi64(at, hm, _mm512_add_epi64(old, sum));
                }
            }
        }
    }
}

/// `combine_pairs_avx512` with 256-bit registers; the last columns (fewer than 8) one by one.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn combine_pairs_avx2<const PIECES: usize, const BITS: u32, const PAIRS: usize>(
    c: &[i32],
    stride: usize,
    pairs: &[i16],
    n: usize,
    out: &mut [i64],
) {
    let cols = out.len();
    let npairs = n.div_ceil(2);
    assert!(pairs.len() >= npairs * 2 * cols && (n == 0 || c.len() > (n - 1) * stride));
    out.fill(0);
    let body = cols - cols % 8;
    for first in (0..npairs).step_by(PAIRS) {
        let count = PAIRS.min(npairs - first);
        let pieces = coefficient_pieces::<PIECES, BITS, PAIRS>(c, stride, n, first);
        for kb in (0..body).step_by(8) {
            let mut acc = [_mm256_setzero_si256(); PIECES];
            for p in 0..count {
                let at = (first + p) * 2 * cols + 2 * kb;
                // SAFETY: columns kb..kb + 8 ≤ body of pair row `first + p`.
                let xv = unsafe { _mm256_loadu_si256(pairs.as_ptr().add(at).cast()) };
                for (a, piece) in acc.iter_mut().zip(&pieces) {
                    let cv = _mm256_set1_epi32(piece[p]);
                    *a = _mm256_add_epi32(*a, _mm256_madd_epi16(xv, cv));
                }
            }
            for half in 0..2 {
                let mut sum = _mm256_setzero_si256();
                for (q, &a) in acc.iter().enumerate() {
                    let part = if half == 0 {
                        _mm256_castsi256_si128(a)
                    } else {
                        _mm256_extracti128_si256::<1>(a)
                    };
                    let shift = _mm_cvtsi32_si128((BITS * q as u32) as i32);
                    sum =
                        _mm256_add_epi64(sum, _mm256_sll_epi64(_mm256_cvtepi32_epi64(part), shift));
                }
                // SAFETY: columns kb + 4·half .. + 4 are below body ≤ cols.
                unsafe {
                    let at = out.as_mut_ptr().add(kb + 4 * half).cast::<__m256i>();
                    _mm256_storeu_si256(at, _mm256_add_epi64(_mm256_loadu_si256(at), sum));
                }
            }
        }
        for k in body..cols {
            for j in 2 * first..(2 * (first + count)).min(n) {
                out[k] += c[j * stride] as i64 * pairs[(j / 2) * 2 * cols + 2 * k + j % 2] as i64;
            }
        }
    }
}

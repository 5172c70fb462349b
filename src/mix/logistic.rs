//! The logistic domain the mixing stage works in: `stretch(p) = ln(p / (1 - p))` and its
//! inverse `squash`, both as integer tables.
//!
//! Probabilities are 12-bit (`1..=4095` of 4096); stretched values are Q8 log-odds clamped to
//! `±STRETCH_LIMIT` (±8.0). `squash` is built from the arithmetic contract's sigmoid table
//! (`fixed::sigmoid`, integer code, no libm) and `stretch` as its exact inverse over the
//! table, so both are the same on every machine.

use crate::coder::PROB_BITS;
use crate::fixed;

/// Largest magnitude of a stretched probability (Q8: 2047 ≈ 8.0).
pub const STRETCH_LIMIT: i32 = 2047;
/// Number of distinct probabilities, `2^PROB_BITS`.
pub const PROB_ONE: i32 = 1 << PROB_BITS;
/// Fraction bits of a stretched value.
pub const STRETCH_FRAC: u32 = 8;

/// Entries of the squash table: one per stretched value in `±STRETCH_LIMIT`.
const SQUASH_LEN: usize = 2 * STRETCH_LIMIT as usize + 1;

// Both tables are built at compile time, so a lookup is a plain indexed load: no first-use
// check, and the clamped index needs no bounds check.

/// squash(x) for x in `-STRETCH_LIMIT..=STRETCH_LIMIT`, at index `x + STRETCH_LIMIT`.
static SQUASH: [u16; SQUASH_LEN] = {
    let mut t = [0; SQUASH_LEN];
    let mut i = 0;
    while i < SQUASH_LEN {
        // fixed::sigmoid takes Q12 input and gives Q12 (= 12-bit probability) output.
        let x = i as i32 - STRETCH_LIMIT;
        let p = fixed::sigmoid(x << (fixed::ACT_FRAC - STRETCH_FRAC));
        // `Ord::clamp` is not callable at compile time.
        t[i] = if p < 1 {
            1
        } else if p > PROB_ONE - 1 {
            PROB_ONE - 1
        } else {
            p
        } as u16;
        i += 1;
    }
    t
};

/// stretch(p) for p in `0..PROB_ONE`: the smallest x with squash(x) ≥ p, so
/// stretch(squash(x)) ≤ x and the table is monotone.
static STRETCH: [i16; PROB_ONE as usize] = {
    let mut t = [0; PROB_ONE as usize];
    let mut x = -STRETCH_LIMIT;
    let mut p = 0;
    while p < PROB_ONE as usize {
        while x < STRETCH_LIMIT && (SQUASH[(x + STRETCH_LIMIT) as usize] as usize) < p {
            x += 1;
        }
        t[p] = x as i16;
        p += 1;
    }
    t
};

/// The 12-bit probability whose log-odds are `x` (Q8), in `1..=4095`; `x` is clamped to
/// `±STRETCH_LIMIT` first.
#[inline(always)]
pub fn squash(x: i32) -> i32 {
    i32::from(SQUASH[(x.clamp(-STRETCH_LIMIT, STRETCH_LIMIT) + STRETCH_LIMIT) as usize])
}

/// The Q8 log-odds of a 12-bit probability, in `±STRETCH_LIMIT`; `p` is clamped to
/// `0..PROB_ONE` first.
#[inline(always)]
pub fn stretch(p: i32) -> i32 {
    i32::from(STRETCH[p.clamp(0, PROB_ONE - 1) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squash_is_monotone_symmetric_and_in_range() {
        let mut last = 0;
        for x in -STRETCH_LIMIT..=STRETCH_LIMIT {
            let p = squash(x);
            assert!((1..PROB_ONE).contains(&p));
            assert!(p >= last);
            assert!((p + squash(-x) - PROB_ONE).abs() <= 1, "x = {x}");
            last = p;
        }
        assert_eq!(squash(0), PROB_ONE / 2);
    }

    #[test]
    fn stretch_inverts_squash() {
        for p in 1..PROB_ONE {
            let x = stretch(p);
            assert!(squash(x) >= p, "p = {p}");
            assert!(x == -STRETCH_LIMIT || squash(x - 1) < p, "p = {p}");
        }
    }
}

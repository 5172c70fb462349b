//! The logistic domain the mixing stage works in: `stretch(p) = ln(p / (1 - p))` and its
//! inverse `squash`, both as integer tables.
//!
//! Probabilities are 12-bit (`1..=4095` of 4096); stretched values are Q8 log-odds clamped to
//! `±STRETCH_LIMIT` (±8.0). `squash` is built from the arithmetic contract's sigmoid table
//! (`fixed::sigmoid`, integer code, no libm) and `stretch` as its exact inverse over the
//! table, so both are the same on every machine.

use std::sync::OnceLock;

use crate::coder::PROB_BITS;
use crate::fixed;

/// Largest magnitude of a stretched probability (Q8: 2047 ≈ 8.0).
pub const STRETCH_LIMIT: i32 = 2047;
/// Number of distinct probabilities, `2^PROB_BITS`.
pub const PROB_ONE: i32 = 1 << PROB_BITS;
/// Fraction bits of a stretched value.
pub const STRETCH_FRAC: u32 = 8;

struct Tables {
    /// squash(x) for x in `-STRETCH_LIMIT..=STRETCH_LIMIT`, at index `x + STRETCH_LIMIT`.
    squash: Vec<u16>,
    /// stretch(p) for p in `0..PROB_ONE`.
    stretch: Vec<i16>,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        // fixed::sigmoid takes Q12 input and gives Q12 (= 12-bit probability) output.
        let squash: Vec<u16> = (-STRETCH_LIMIT..=STRETCH_LIMIT)
            .map(|x| {
                fixed::sigmoid(x << (fixed::ACT_FRAC - STRETCH_FRAC)).clamp(1, PROB_ONE - 1) as u16
            })
            .collect();
        // stretch(p): the smallest x with squash(x) ≥ p, so stretch(squash(x)) ≤ x and the
        // table is monotone.
        let mut stretch = vec![0i16; PROB_ONE as usize];
        let mut x = -STRETCH_LIMIT;
        for (p, s) in stretch.iter_mut().enumerate() {
            while x < STRETCH_LIMIT && i32::from(squash[(x + STRETCH_LIMIT) as usize]) < p as i32 {
                x += 1;
            }
            *s = x as i16;
        }
        Tables { squash, stretch }
    })
}

/// The 12-bit probability whose log-odds are `x` (Q8), in `1..=4095`; `x` is clamped to
/// `±STRETCH_LIMIT` first.
#[inline(always)]
pub fn squash(x: i32) -> i32 {
    i32::from(tables().squash[(x.clamp(-STRETCH_LIMIT, STRETCH_LIMIT) + STRETCH_LIMIT) as usize])
}

/// The Q8 log-odds of a 12-bit probability, in `±STRETCH_LIMIT`; `p` is clamped to
/// `0..PROB_ONE` first.
#[inline(always)]
pub fn stretch(p: i32) -> i32 {
    i32::from(tables().stretch[p.clamp(0, PROB_ONE - 1) as usize])
}

/// Forces the tables to be built now (so the first coded bit does not pay for it).
pub fn init() {
    tables();
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

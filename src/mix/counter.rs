//! Adaptive bit probabilities packed in one `u32`: the building block of the context and match
//! models.
//!
//! A counter holds a probability of a 1 in Q22 (22 bits) and a hit count `n` (10 bits). Each
//! update moves the probability towards the bit by `1 / (n + 1.5)` of the distance, so a young
//! counter learns fast and an old one averages, and `n` stops at a limit that keeps it
//! adaptive. The probability is stored XOR 0.5, so an all-zero table means "every context at
//! 1/2, never seen": tables start as zeroed memory.

/// Fraction bits of a counter's probability.
const PROB_FRAC: u32 = 22;
/// Bits of the hit count, below the probability.
const COUNT_BITS: u32 = 10;
const COUNT_MASK: u32 = (1 << COUNT_BITS) - 1;
/// Stored probability is XORed with this, so zero means 1/2.
const HALF: u32 = 1 << (PROB_FRAC - 1);
/// Fraction bits of the reciprocal table.
const RECIP_FRAC: u32 = 16;

/// `2^16 / (n + 1.5)`, rounded, for every count (computed at compile time).
const RECIPROCALS: [i64; 1 << COUNT_BITS] = {
    let mut t = [0i64; 1 << COUNT_BITS];
    let mut n = 0;
    while n < t.len() {
        let den = 2 * n as i64 + 3;
        t[n] = ((2i64 << RECIP_FRAC) + den / 2) / den;
        n += 1;
    }
    t
};

/// The 12-bit probability of a 1 (`0..=4095`) a counter holds.
#[inline(always)]
pub fn p12(counter: u32) -> i32 {
    (((counter >> COUNT_BITS) ^ HALF) >> (PROB_FRAC - 12)) as i32
}

/// How many times a counter was updated, up to its limit.
#[inline(always)]
pub fn count(counter: u32) -> u32 {
    counter & COUNT_MASK
}

/// `counter` after seeing `bit`, its count capped at `limit` (at most 1023).
#[inline(always)]
pub fn update(counter: u32, bit: u8, limit: u32) -> u32 {
    let n = counter & COUNT_MASK;
    let p = i64::from((counter >> COUNT_BITS) ^ HALF);
    let target = if bit != 0 { (1i64 << PROB_FRAC) - 1 } else { 0 };
    // |delta| ≤ 2/3 of the distance to the target, so p stays within 0..2^22.
    let p = p + (((target - p) * RECIPROCALS[n as usize]) >> RECIP_FRAC);
    let n = (n + 1).min(limit);
    (((p as u32) ^ HALF) << COUNT_BITS) | n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_an_unseen_half() {
        assert_eq!(p12(0), 2048);
        assert_eq!(count(0), 0);
    }

    #[test]
    fn learns_towards_the_bits_and_stays_in_range() {
        let mut c = 0;
        for _ in 0..5000 {
            c = update(c, 1, 1023);
        }
        assert!(p12(c) >= 4090);
        for _ in 0..5000 {
            c = update(c, 0, 30);
        }
        assert!(p12(c) <= 5);
        assert_eq!(count(c), 30);
        // A fresh counter jumps most of the way at once.
        assert!(p12(update(0, 1, 1023)) > 3400);
    }
}

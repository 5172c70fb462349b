//! Adaptive probability maps (secondary estimation): a probability refined by what actually
//! followed that probability in the same small context.
//!
//! For each context, 33 Q16 probabilities sampled at stretched inputs −2048, −1920, …, 2048;
//! the output interpolates between the two samples around the input, and training moves the
//! nearer sample towards the coded bit by `1/2^rate` of the distance.

use super::logistic::{STRETCH_FRAC, squash, stretch};
use super::table;

/// Samples per context.
const SAMPLES: usize = 33;
/// log2 of the stretched distance between samples.
const SAMPLE_SHIFT: u32 = 7;

/// An adaptive probability map over `contexts` contexts. Refining only reads the map;
/// training, given the sample a refinement leaned on, is applied later in a fixed order.
#[derive(Clone, Debug)]
pub struct Apm {
    table: Vec<u16>,
    rate: u32,
}

impl Apm {
    /// Bytes a map of `contexts` contexts holds.
    pub fn bytes(contexts: usize) -> u64 {
        (contexts * SAMPLES * size_of::<u16>()) as u64
    }

    /// A map for `contexts` contexts that starts as the identity, learning at `1/2^rate`.
    pub fn new(contexts: usize, rate: u32) -> Apm {
        let row: Vec<u16> = (0..SAMPLES as i32)
            .map(|j| (squash((j - 16) << SAMPLE_SHIFT) * 16) as u16)
            .collect();
        Apm {
            table: row.repeat(contexts),
            rate,
        }
    }

    /// `p` (12-bit) refined in context `ctx` (below the map's context count), 12-bit, and the
    /// sample the refinement leaned on most, which `learn` trains.
    #[inline]
    pub fn refine(&self, p: i32, ctx: usize) -> (i32, u32) {
        let s = stretch(p) + (8 << STRETCH_FRAC); // 1..=4095
        let lo = (s >> SAMPLE_SHIFT) as usize;
        let w = s & ((1 << SAMPLE_SHIFT) - 1);
        let i = ctx * SAMPLES + lo;
        let nearest = i + (w >> (SAMPLE_SHIFT - 1)) as usize;
        let (a, b) = (i32::from(self.table[i]), i32::from(self.table[i + 1]));
        let refined = (a * ((1 << SAMPLE_SHIFT) - w) + b * w) >> (SAMPLE_SHIFT + 4);
        (refined, nearest as u32)
    }

    /// Starts loading context `ctx`'s samples into the cache (a hint with no effect on any
    /// value), for a context the next bit may use.
    #[inline(always)]
    pub fn prefetch(&self, ctx: usize) {
        if let Some(row) = self.table.get(ctx * SAMPLES..(ctx + 1) * SAMPLES) {
            table::prefetch(&row[0]);
            table::prefetch(&row[SAMPLES - 1]);
        }
    }

    /// Starts loading sample `nearest` (from `refine`) into the cache (a hint with no effect
    /// on any value), for a `learn` to come.
    #[inline(always)]
    pub fn prefetch_sample(&self, nearest: u32) {
        if let Some(sample) = self.table.get(nearest as usize) {
            table::prefetch(sample);
        }
    }

    /// Trains the sample `nearest` (from `refine`) on the coded `bit`.
    #[inline]
    pub fn learn(&mut self, nearest: u32, bit: u8) {
        let t = &mut self.table[nearest as usize];
        let target = if bit != 0 { 65535 } else { 0 };
        *t = (i32::from(*t) + ((target - i32::from(*t)) >> self.rate)) as u16;
    }
}

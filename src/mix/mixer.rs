//! Online logistic mixing: a weighted sum of stretched probabilities, trained after every bit
//! to reduce coding cost.
//!
//! Inputs are Q8 log-odds (`±STRETCH_LIMIT`), weights Q16, the output the Q8 log-odds of the
//! sum. A mixer holds several weight sets and a small context chooses one per bit, so the
//! blend can differ by bit position or by how long the current match is. Training is the
//! gradient of coding cost: `w += lr · x · (bit − p)`, in integers with round-half-up.

use super::logistic::{STRETCH_LIMIT, squash};
use crate::fixed::round_shift;

/// Fraction bits of a weight.
const WEIGHT_FRAC: u32 = 16;
/// Weights are clamped to ±this (±32.0): far beyond any useful blend, only a guard.
const WEIGHT_LIMIT: i32 = 32 << WEIGHT_FRAC;
/// Shift that turns `x · err · rate` into a Q16 weight step: with `x` in Q8 and `err` in Q12,
/// `rate` is the learning rate in units of 2^-12.
const STEP_SHIFT: u32 = 16;
/// Largest learning rate `learn` takes (units of 2^-12): what keeps its steps inside `i32`.
pub const MAX_RATE: i32 = 256;

/// A mixer of `N` inputs with a number of weight sets fixed at creation. The input count is a
/// type parameter so the dot product and the update compile to fixed, unrolled loops. Mixing
/// only reads the weights, so any number of streams may mix with them at once; training, given
/// what a mix returned, is applied later in a fixed order.
#[derive(Clone, Debug)]
pub struct Mixer<const N: usize> {
    weights: Vec<[i32; N]>,
}

impl<const N: usize> Mixer<N> {
    /// Bytes the weights of a mixer with `sets` weight sets hold.
    pub fn bytes(sets: usize) -> u64 {
        (sets * N * size_of::<i32>()) as u64
    }

    /// A mixer with `sets` weight sets, each starting at `initial` (Q16) for every input.
    pub fn new(sets: usize, initial: i32) -> Mixer<N> {
        Mixer {
            weights: vec![[initial; N]; sets],
        }
    }

    /// Mixes `x` with weight set `set` and returns the Q8 log-odds of the result, within
    /// `±STRETCH_LIMIT`. `set` must be below the mixer's set count.
    #[inline]
    pub fn mix(&self, x: &[i32; N], set: usize) -> i32 {
        let w = &self.weights[set];
        let dot: i64 = x
            .iter()
            .zip(w)
            .map(|(&x, &w)| i64::from(x) * i64::from(w))
            .sum();
        round_shift(dot, WEIGHT_FRAC).clamp(-STRETCH_LIMIT as i64, STRETCH_LIMIT as i64) as i32
    }

    /// Trains weight set `set` on the coded `bit`, with learning rate `rate` (units of 2^-12,
    /// in `0..=MAX_RATE`), given the inputs `x` it mixed and what `mix` returned for them
    /// (`mixed`, even if the weights have moved since).
    #[inline]
    pub fn learn(&mut self, x: &[i32; N], set: usize, mixed: i32, bit: u8, rate: i32) {
        debug_assert!((0..=MAX_RATE).contains(&rate));
        // In `i32` because it is exact there, and the update of whole weight sets then
        // vectorises: `p` is in 1..=4095, so |err| ≤ 4095 · MAX_RATE, and with |x| ≤
        // STRETCH_LIMIT, |x · err| + 2^15 ≤ 2047 · 4095 · 256 + 2^15 < 2^31. The weights are
        // within ±WEIGHT_LIMIT = ±2^21 and a step within ±2^15, so their sum fits too.
        let err = ((i32::from(bit) << 12) - squash(mixed)) * rate;
        let w = &mut self.weights[set];
        // Into a fresh array, then stored whole: a form the compiler vectorises.
        let mut next = [0; N];
        for i in 0..N {
            let step = (x[i] * err + (1 << (STEP_SHIFT - 1))) >> STEP_SHIFT;
            next[i] = (w[i] + step).clamp(-WEIGHT_LIMIT, WEIGHT_LIMIT);
        }
        *w = next;
    }
}

/// Widths (streams a block is coded in) up to which the mixers learn at their full rate.
const FULL_RATE_STREAMS: u64 = 8;

/// How much slower the mixers learn in a block of `streams` interleaved streams: a divisor in
/// Q8, 256 (none) up to `FULL_RATE_STREAMS` streams and `256 · √(streams / 8)` beyond, rounded
/// down.
///
/// Interleaved streams are unrelated texts, so the mixers' successive updates pull their
/// weights towards different blends; a slower rate averages them instead of chasing each. The
/// mixing stage alone (`benches/layout`), in the schedule: the first 8 MB of a documentation
/// text at `-2` −0.16 %, bible.txt at `-5` −0.42 %, 3 MB of HTML −0.33 %, a 2 MB URL list
/// −1.0 %; one and 8 streams unchanged. Dividing by `(streams / 8)^¾` or by `√(streams / 4)`
/// gained less on text.
fn width_divisor_q8(streams: usize) -> i64 {
    let streams = streams as u64;
    if streams <= FULL_RATE_STREAMS {
        return 256;
    }
    // √(streams / 8) in Q8 = √(streams · 2^16 / 8).
    ((streams << 16) / FULL_RATE_STREAMS).isqrt() as i64
}

/// `rate` (units of 2^-12) divided by `divisor_q8` (from `width_divisor_q8`), rounded to
/// nearest, at least 1.
fn slowed(rate: i32, divisor_q8: i64) -> i32 {
    ((i64::from(rate) * 256 + divisor_q8 / 2) / divisor_q8).max(1) as i32
}

/// Bits coded over which a decaying rate's excess over its floor halves.
const RATE_HALF_LIFE_BITS: u64 = 1 << 14;

/// A learning rate that falls from `start` towards `floor` as bits are coded.
#[derive(Clone, Copy, Debug)]
pub struct DecayingRate {
    /// The rate for the first bit (units of 2^-12).
    pub start: i32,
    /// The rate it tends to (units of 2^-12), at most `start`.
    pub floor: i32,
}

impl DecayingRate {
    /// The rate after `bits` coded bits: `floor + (start − floor) · h / (h + bits)` with
    /// `h = RATE_HALF_LIFE_BITS`, between `floor` and `start`.
    pub fn at(self, bits: u64) -> i32 {
        let excess =
            (self.start - self.floor) as u64 * RATE_HALF_LIFE_BITS / (RATE_HALF_LIFE_BITS + bits);
        self.floor + excess as i32
    }

    /// The fewest coded bits, above `bits`, at which `at` gives less than `at(bits)`
    /// (`u64::MAX` once it is the floor): until then it gives the same.
    pub fn changes_after(self, bits: u64) -> u64 {
        let span = (self.start - self.floor) as u64 * RATE_HALF_LIFE_BITS;
        let excess = span / (RATE_HALF_LIFE_BITS + bits);
        match excess {
            0 => u64::MAX,
            // The excess falls below `excess` once `h + b > span / excess`.
            _ => span / excess - RATE_HALF_LIFE_BITS + 1,
        }
    }
}

/// The mixers' learning rates as bits are coded: each `DecayingRate` slowed for the block's
/// width (`width_divisor_q8`, `slowed`), recomputed only when one of them can change, which
/// spares two divisions each per bit.
#[derive(Clone, Debug)]
pub struct MixerRates<const K: usize> {
    decaying: [DecayingRate; K],
    divisor_q8: i64,
    /// Bits coded so far, all streams together.
    bits: u64,
    /// The rates while `bits` is below `until`.
    now: [i32; K],
    until: u64,
}

impl<const K: usize> MixerRates<K> {
    /// The rates of `decaying` before the first bit, in a block of one stream.
    pub fn new(decaying: [DecayingRate; K]) -> MixerRates<K> {
        MixerRates {
            decaying,
            divisor_q8: width_divisor_q8(1),
            bits: 0,
            now: [0; K],
            until: 0,
        }
    }

    /// Slows the rates for a block of `streams` streams from the next bit on.
    pub fn set_width(&mut self, streams: usize) {
        let divisor_q8 = width_divisor_q8(streams);
        if divisor_q8 != self.divisor_q8 {
            self.divisor_q8 = divisor_q8;
            self.until = 0;
        }
    }

    /// The rates for the next bit (each `decaying` rate's `at` the bits coded so far, slowed
    /// for the width), which this call counts as coded.
    #[inline]
    pub fn next_bit(&mut self) -> [i32; K] {
        let bits = self.bits;
        if bits >= self.until {
            self.now = self.decaying.map(|r| slowed(r.at(bits), self.divisor_q8));
            self.until = self
                .decaying
                .iter()
                .map(|r| r.changes_after(bits))
                .min()
                .unwrap_or(u64::MAX);
        }
        self.bits += 1;
        self.now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mix::logistic::stretch;

    #[test]
    fn wide_blocks_slow_the_rate_by_the_square_root_of_the_width() {
        for streams in 0..=8 {
            assert_eq!(width_divisor_q8(streams), 256);
            assert_eq!(slowed(32, width_divisor_q8(streams)), 32);
        }
        assert_eq!(width_divisor_q8(32), 512);
        assert_eq!(slowed(32, width_divisor_q8(32)), 16);
        assert_eq!(slowed(7, width_divisor_q8(32)), 4);
        // √32 = 5.657: a floor of 32 becomes 5.66, rounded to 6; one of 1 stays 1.
        assert_eq!(width_divisor_q8(256), 1448);
        assert_eq!(slowed(32, width_divisor_q8(256)), 6);
        assert_eq!(slowed(1, width_divisor_q8(1 << 16)), 1);
        let mut last = 256;
        for streams in 9..5000 {
            let d = width_divisor_q8(streams);
            assert!(d >= last);
            last = d;
        }
    }

    #[test]
    fn cached_rates_are_the_rates_of_every_bit() {
        // Odd spans, a steep and a shallow decay, and one that is its floor from the start.
        let decaying =
            [(200, 17), (64, 3), (5, 5)].map(|(start, floor)| DecayingRate { start, floor });
        for r in decaying {
            for bits in (0..1u64 << 22).step_by(997).chain([0, 1, u64::MAX / 2]) {
                let next = r.changes_after(bits);
                assert!(next > bits);
                if next != u64::MAX {
                    assert_eq!(r.at(next - 1), r.at(bits), "{r:?} at {bits}");
                    assert!(r.at(next) < r.at(bits), "{r:?} at {bits}");
                } else {
                    assert_eq!(r.at(bits), r.floor);
                }
            }
        }
        let mut cached = MixerRates::new(decaying);
        for bits in 0..1u64 << 20 {
            if bits == 300_000 {
                cached.set_width(256);
            }
            let width = if bits < 300_000 { 1 } else { 256 };
            let expected = decaying.map(|r| slowed(r.at(bits), width_divisor_q8(width)));
            assert_eq!(cached.next_bit(), expected, "at {bits}");
        }
    }

    #[test]
    fn learns_to_trust_the_informative_input() {
        // Input 0 is always right (p = 0.9 for the coming bit), input 1 is noise.
        let mut m = Mixer::<2>::new(1, 0);
        let mut rng = crate::model::init::SplitMix64(3);
        for _ in 0..20_000 {
            let bit = (rng.next() & 1) as u8;
            let good = stretch(if bit == 1 { 3686 } else { 410 });
            let noise = stretch((rng.next() % 4000 + 48) as i32);
            let x = [good, noise];
            let mixed = m.mix(&x, 0);
            m.learn(&x, 0, mixed, bit, 96);
        }
        let [good, noise] = m.weights[0];
        assert!(good > 3 * noise.abs(), "{:?}", m.weights);
    }
}
